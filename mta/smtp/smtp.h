/*
 * smtp - the outbound SMTP client: TLS security levels, the reply parser,
 * message encoding, and one client session (a named state machine over a
 * libevent bufferevent, optionally wrapped in TLS after STARTTLS).
 *
 * The session knows one server address and one message at a time; which
 * server to try, what to do with the results and when to reuse or close
 * a connection is decided by deliver/ (mta/deliver/deliver.h).
 *
 * RFCs: 5321 (4.1 commands, 4.2 replies, 4.5.2 dot-stuffing, 4.5.3.2
 * timeouts), 3207 STARTTLS, 2920 PIPELINING, 1870 SIZE, 6152 8BITMIME,
 * 6531 SMTPUTF8, 3461 DSN, 2034/3463 enhanced status codes.
 *
 * Decisions: a message flagged SMTPUTF8 goes only to a server offering
 * SMTPUTF8, else it fails with 5.6.7 (RFC 6531 3.5, no downgrade). A
 * message flagged 8BITMIME whose content really has 8-bit bytes goes
 * only to a server offering 8BITMIME, else it fails with 5.6.3 (RFC 6152
 * 3 allows this instead of converting to 7-bit MIME, which we never do:
 * the message arrives byte-identical or not at all); declared 8BITMIME
 * but 7-bit content goes out without BODY=. A message larger than the
 * server's SIZE fails with 5.3.4 before MAIL (RFC 1870).
 */
#ifndef STRICTMTA_SMTP_H
#define STRICTMTA_SMTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mta/proto/smtp_reply.h"
#include "mta/util/buf.h"
#include "policy/verdict/verdict.h"

struct event_base;
struct config;

/*
 * TLS: one client context for all sessions: the default verify paths or
 * smtp_tls_CAfile; verification is recorded, not enforced (the session
 * enforces it per level). NULL with err set when the CA file is unusable.
 */
SSL_CTX *smtp_tls_ctx_new(const struct config *, buf_t *err);
void smtp_tls_ctx_free(SSL_CTX *);

/* What one session learned about TLS, for the log and TLS reports. */
struct smtp_tls_info {
	int active; /* handshake completed */
	char protocol[16]; /* "TLSv1.3" */
	char cipher[64]; /* "TLS_AES_256_GCM_SHA384" */
	int verified; /* chain trusted and name matched */
	char verify[16]; /* "verified", "untrusted", "name-mismatch" */
	char reason[128]; /* OpenSSL's reason when not verified */
	char match[64]; /* DANE: the record that matched, e.g.
	                   "DANE-EE(3) 1 1 depth 0"; "" otherwise */
};

/*
 * One message transaction. Owned by the caller; must stay valid until
 * the SMTP_EV_DONE or SMTP_EV_FAIL callback for it. The session writes
 * each recipient's result into rcpts[i].
 */
struct smtp_msg_rcpt {
	const char *address;
	const char *orcpt; /* NULL, or "rfc822;..." as received (xtext) */
	unsigned notify; /* DSN_NOTIFY_* bits, 0 = not given */
	/* Results: code 0 means no answer yet (treat as temporary). */
	int code;
	char status[SMTP_STATUS_SIZE];
	char reply[600]; /* "550 5.1.1 ... ", printable */
	int local; /* decided here (SIZE, SMTPUTF8...), not a reply */
};

struct smtp_msg {
	const char *qid;
	const char *sender;
	const char *envid; /* NULL or decoded ENVID */
	unsigned flags; /* QENV_* */
	int ret; /* enum dsn_ret */
	const char *content;
	size_t len;
	struct smtp_msg_rcpt *rcpts;
	size_t nrcpt;
};

typedef struct smtp_sess smtp_sess_t;

enum smtp_event {
	/* Connected, greeted, EHLO (and STARTTLS) done: send a message. */
	SMTP_EV_READY,
	/* The transaction ended (the results are in the message); the
	 * session is ready for the next message or smtp_sess_close(). */
	SMTP_EV_DONE,
	/* The session is unusable; see smtp_sess_failure(). The message
	 * given to smtp_sess_send(), if any, has partial results. */
	SMTP_EV_FAIL,
};

/* Where a failed session stopped: deliver uses it to pick what next. */
enum smtp_fail_stage {
	SMTP_FAIL_CONNECT, /* TCP connect, or closed before greeting */
	SMTP_FAIL_GREETING, /* greeting or EHLO/HELO refused */
	SMTP_FAIL_TLS, /* STARTTLS refused or handshake failed */
	SMTP_FAIL_POLICY, /* TLS needed but not offered / not verified */
	SMTP_FAIL_REUSE, /* a reused session died before MAIL */
	SMTP_FAIL_TRANSACTION, /* during MAIL .. end of data */
};

struct smtp_failure {
	enum smtp_fail_stage stage;
	int code; /* 4xx/5xx reply, or 0 (I/O) */
	char status[SMTP_STATUS_SIZE]; /* "4.4.1" etc. */
	char reason[600]; /* printable, for logs and DSNs */
};

typedef void smtp_sess_cb(void *arg, smtp_sess_t *, enum smtp_event);
/* Called with the SSL before the handshake: the DANE seam (TLSA). */
/* The policy's set-up of the SSL (policy/verdict/verdict.h). */
typedef tls_setup_fn smtp_tls_setup_fn;

struct smtp_sess_opts {
	const char *helo_name;
	const char *host; /* server name: SNI, name check, logs */
	enum tls_level level;
	int no_tls; /* retry in clear (fallback): no STARTTLS */
	SSL_CTX *ssl_ctx; /* NULL: no TLS possible */
	smtp_tls_setup_fn *tls_setup;
	void *tls_setup_arg;
	/* The destination's own policy (DANE, MTA-STS) requires TLS: a
	 * failure to get it defers with 4.7.5 rather than 4.7.4. */
	int policy_required;
};

/*
 * Starts connecting to addr. cfg supplies the timeouts and must outlive
 * the session. The callback runs from the event loop, never from inside
 * a call of this module, and may free or close the session.
 */
smtp_sess_t *smtp_sess_new(struct event_base *, const struct config *,
    const struct smtp_sess_opts *, const struct sockaddr *, socklen_t,
    smtp_sess_cb *, void *arg);
/* Starts a transaction (after READY or DONE). */
void smtp_sess_send(smtp_sess_t *, struct smtp_msg *);
/*
 * Sends QUIT (if the session is idle) and frees the session later, by
 * itself; no more session callbacks. Returns 0 when the session was freed
 * at once, 1 when it lives on until the QUIT is answered or times out:
 * then closed (may be NULL) runs from the event loop once it has freed
 * itself. The owner keeps such sessions and frees any still open at
 * shutdown with smtp_sess_free(), which never runs closed.
 */
typedef void smtp_sess_closed_fn(void *arg);
int smtp_sess_close(smtp_sess_t *, smtp_sess_closed_fn *closed, void *arg);
/* Frees at once, no QUIT, no callbacks. NULL is a no-op. */
void smtp_sess_free(smtp_sess_t *);

const struct smtp_failure *smtp_sess_failure(const smtp_sess_t *);
const struct smtp_tls_info *smtp_sess_tls(const smtp_sess_t *);
const struct smtp_ehlo *smtp_sess_ehlo(const smtp_sess_t *);
/* "host[addr]:port" of the server. */
const char *smtp_sess_relay(const smtp_sess_t *);
unsigned smtp_sess_ntrans(const smtp_sess_t *); /* transactions begun */
/* Microseconds spent connecting and greeting/TLS (for delays=). */
int64_t smtp_sess_setup_usec(const smtp_sess_t *);

#endif
