/*
 * smtpd - the SMTP listener: an RFC 5321 ESMTP server on libevent that
 * takes mail from clients and hands it to the queue through qcommit.
 *
 * Extensions: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152),
 * SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034), DSN (RFC 3461),
 * STARTTLS (RFC 3207), AUTH PLAIN/LOGIN over TLS only (RFC 4954, RFC 8314),
 * REQUIRETLS over TLS only (RFC 8689); implicit TLS listeners (RFC 8314).
 * Relaying is allowed for clients in mynetworks and authenticated clients
 * only; everyone else gets 554 5.7.1 at RCPT.
 *
 * A message is acknowledged ("250 2.0.0 Ok: queued as QID") only after
 * qcommit reports it durable.
 *
 * Ownership: the smtpd borrows base, cfg and commit (they outlive it) and
 * owns its listeners, sessions and TLS context. Everything runs on the
 * event loop's thread.
 */
#ifndef STRICTMTA_SMTPD_H
#define STRICTMTA_SMTPD_H

#include <stdint.h>

#include "mta/util/buf.h"
#include "mta/util/config.h"
#include "queue/qcommit.h"

struct event_base;

typedef struct smtpd smtpd_t;

struct smtpd_params {
	struct event_base *base;
	const struct config *cfg; /* borrowed; outlives the smtpd */
	qcommit_t *commit; /* borrowed; may be NULL until smtpd_set_commit */
	/* called on the loop after a message is durably queued (may be NULL) */
	void (*on_queued)(void *arg, const char *qid);
	void *arg;
};

/*
 * Loads TLS cert/key (smtpd_tls_cert_file/key_file) and the SASL password
 * file; NULL with a clear message in err on a bad file.
 */
smtpd_t *smtpd_new(const struct smtpd_params *, buf_t *err);
/* Sets the commit of an smtpd made without one (the daemon opens the
 * queue after the privilege drop), once, before a listener is added. */
void smtpd_set_commit(smtpd_t *, qcommit_t *);
/*
 * Binds and listens on "host:port" or "[v6]:port" (SO_REUSEADDR,
 * nonblocking, before privileges are dropped); returns the fd or -1 with
 * err ("127.0.0.1:25: address already in use").
 */
int smtpd_bind(const char *addrport, buf_t *err);
/* Starts accepting on fd (the smtpd owns it from now on, even on error);
 * implicit_tls nonzero for RFC 8314 listeners. Returns 0 or -1 with err. */
int smtpd_add_listener(smtpd_t *, int fd, int implicit_tls, buf_t *err);
/* Graceful shutdown: closes the listeners; sessions finish on their own. */
void smtpd_stop_accepting(smtpd_t *);
void smtpd_free(smtpd_t *); /* closes sessions; NULL no-op */

struct smtpd_stats {
	uint64_t connections, messages, rejected;
	unsigned active;
};
void smtpd_get_stats(smtpd_t *, struct smtpd_stats *);

#endif
