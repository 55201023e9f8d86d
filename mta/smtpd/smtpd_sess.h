/*
 * smtpd_sess - the session and listener state shared by the files of the
 * SMTP listener; not for other modules.
 *
 *   smtpd.c         sessions: the input loop, commands, DATA, commit
 *   smtpd_listen.c  listening sockets, accepting, connection limits
 *   smtpd_tls.c     the server TLS context, STARTTLS, TLS log lines
 *   smtpd_sasl.c    AUTH (RFC 4954): the dialogue, checks on a worker
 *                   thread, failure delays and limits
 *
 * The smtpd owns its listeners and sessions; a session owns its
 * bufferevent, events, transaction and pending AUTH check (cancelled when
 * the session goes). Everything here runs on the loop thread.
 */
#ifndef STRICTMTA_SMTPD_SESS_H
#define STRICTMTA_SMTPD_SESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mta/util/buf.h"
#include "mta/util/config.h"
#include "mta/util/workq.h"
#include "queue/qcommit.h"
#include "queue/queue.h"
#include "mta/proto/smtp_cmd.h"
#include "mta/proto/smtp_data.h"
#include "smtpd.h"
#include "smtpd_int.h"

#define SMTPD_MAX_LISTENERS 64

enum sess_state {
	S_CMD, /* reading commands */
	S_AUTH_PLAIN, /* waiting for the PLAIN response after "334 " */
	S_AUTH_USER, /* LOGIN: waiting for the user name */
	S_AUTH_PASS, /* LOGIN: waiting for the password */
	S_AUTH_CHECK, /* password on a worker, or a failure's delay: no input */
	S_DATA, /* reading message content */
	S_COMMIT, /* the message is with qcommit */
	S_CLOSING, /* last reply written; freeing when it is sent */
};

struct listener {
	struct smtpd *sd;
	struct evconnlistener *lev;
	struct event *retry_ev; /* re-enables accepting after EMFILE */
	int implicit_tls;
};

struct session {
	struct smtpd *sd;
	struct session *prev, *next;
	struct bufferevent *bev;
	struct event *resume_ev, *close_ev;
	/* phase_ev: TLS handshake and EHLO deadlines; deadline_ev: the
	 * whole session (smtpd_session_time_limit). */
	struct event *phase_ev, *deadline_ev;
	unsigned close_polls;
	int tls_closed; /* close_notify sent */
	int handshaking; /* a TLS handshake is under way */
	enum sess_state state;

	struct sockaddr_storage ss;
	char addr[INET6_ADDRSTRLEN]; /* "127.0.0.1" */
	char client[INET6_ADDRSTRLEN + 8]; /* "[127.0.0.1]" */
	struct smtpd_client_key key; /* what connection limits count */
	int in_mynetworks;
	int in_general_pool; /* holds a slot outside the reserve */
	int tls;
	int helo_kind; /* 0 none, SMTP_VERB_HELO or SMTP_VERB_EHLO */
	char helo[SMTP_DOMAIN_MAX + 1];
	int authenticated;
	char sasl_method[8];
	char sasl_user[256];
	char login_user[512];

	/* AUTH in progress or in its failure delay (smtpd_sasl.c). */
	struct sasl_check *auth_check;
	struct event *auth_delay_ev;
	unsigned auth_failures;
	const char *auth_reply; /* sent when the delay ends */

	/* The transaction: env is non-NULL between MAIL and its end. */
	struct queue_env *env;
	char sender_log[SMTP_PATH_MAX * 4 + 1];
	buf_t *content;
	struct smtp_data reader;
	uint64_t ticket;

	unsigned errors;
	int discard_line; /* dropping an over-long line up to its LF */
	char last_cmd[16]; /* "RCPT": for "lost connection after X" */
	enum smtp_verb verb; /* of the command being answered */
	int verb_counted;
	unsigned cnt_all[SMTP_VERB_COUNT], cnt_ok[SMTP_VERB_COUNT];
	char line[SMTP_AUTH_LINE_MAX + 1];
};

struct smtpd {
	struct event_base *base;
	const struct config *cfg;
	qcommit_t *commit;
	void (*on_queued)(void *, const char *);
	void *arg;
	SSL_CTX *ssl_ctx;
	smtpd_passwd_t *passwd;
	workq_t *authq; /* password checks; NULL when AUTH is off */
	smtpd_rate_t *auth_fail_client, *auth_fail_user;
	struct smtpd_netlist mynetworks;
	char hostname[256];
	char banner[512];
	struct listener *listeners[SMTPD_MAX_LISTENERS];
	size_t nlisteners;
	struct session *sessions;
	unsigned general_active; /* sessions in the general pool */
	struct smtpd_stats stats;
};

/* smtpd.c */
void smtpd_enter_state(struct session *, enum sess_state);
void smtpd_set_last_cmd(struct session *, const char *name);
/* One reply line (CRLF added); counts errors for the session. */
void smtpd_reply(struct session *, const char *text);
void smtpd_replyf(struct session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_sess_reset_all(struct session *);
void smtpd_set_read_timeout(struct session *, int on);
/* Runs the input loop again after the other sessions' turn. */
void smtpd_resume_soon(struct session *);
void smtpd_sess_setup_bev(struct session *);
void smtpd_sess_close(struct session *);
void smtpd_sess_free(struct session *);
/* A session for an accepted fd (owned from now on) and its greeting. */
void smtpd_sess_new(struct smtpd *, int fd, const struct sockaddr *, socklen_t,
    int implicit_tls, const char *addr, const char *client,
    const struct smtpd_client_key *, int in_mynetworks);
/* Arms phase_ev for secs (0 disarms); its expiry ends the session. */
void smtpd_sess_phase_timeout(struct session *, unsigned secs);

/* smtpd_listen.c */
/* The session leaves the general pool (it authenticated). */
void smtpd_listen_promote(struct session *);
void smtpd_listen_release(struct session *);

/* smtpd_tls.c */
SSL *smtpd_tls_ssl(const struct session *);
void smtpd_tls_describe(const struct session *, buf_t *);
void smtpd_tls_log_errors(struct session *, const char *after);
SSL_CTX *smtpd_tls_ctx_new(const struct config *, buf_t *err);
void smtpd_tls_starttls(struct session *);

/* smtpd_sasl.c */
int smtpd_sasl_start(struct smtpd *, buf_t *err);
void smtpd_sasl_stop(struct smtpd *);
int smtpd_sasl_offered(const struct session *);
void smtpd_sasl_auth(struct session *, const struct smtp_cmd *);
void smtpd_sasl_line(struct session *, const char *line, size_t len);
/* Drops a pending check or delay (the session is going). */
void smtpd_sasl_cancel(struct session *);

#endif
