/*
 * deliver - outbound delivery: takes due messages from the queue's time
 * index, groups recipients by destination, routes (transport_maps, MX,
 * address records), asks the TLS policy for each host, runs SMTP
 * sessions (mta/smtp/smtp.h) within the concurrency limits, records each
 * recipient's outcome in the queue, and returns failures to the sender as
 * one RFC 3464 DSN per message.
 *
 * Guarantees: a recipient's new state is written (queue_update +
 * queue_sync) only after the attempt ended, so a crash means the attempt
 * is simply made again: at least once, never lost. A failed recipient's
 * state is written only after its bounce is durable.
 *
 * Ownership: deliver_new() keeps cfg, the queue and the resolver (all must
 * outlive it) and owns everything else it creates. All calls and
 * callbacks happen on the event loop thread.
 */
#ifndef STRICTMTA_DELIVER_H
#define STRICTMTA_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "mta/smtp/smtp.h"
#include "policy/verdict/verdict.h"
#include "mta/util/buf.h"
#include "queue/qcommit.h"
#include "queue/queue.h"
#include "resolver/resolver.h"

struct event_base;
struct config;
typedef struct deliver deliver_t;

/*
 * NULL with err set when transport_maps or smtp_tls_CAfile is unusable.
 * The queue may be NULL and given later with deliver_set_queue(), before
 * the event loop runs: the daemon reads the files above as root and opens
 * the queue only after dropping root.
 */
deliver_t *deliver_new(struct event_base *, const struct config *, queue_t *,
    resolver_t *, buf_t *err);
/* Envelope updates and DSNs go through qc's writer thread from now on
 * (qc outlives the deliver). Without it they are written and synced on
 * the caller's thread, which only the unit tests do. */
void deliver_set_commit(deliver_t *, qcommit_t *qc);
/* Sets the queue of a deliver_new() made without one; once. */
void deliver_set_queue(deliver_t *, queue_t *);
/* Look at the time index now (new mail, flush, release). Cheap; the run
 * happens from the event loop. */
void deliver_kick(deliver_t *);
/* Stops every session and lookup at once; in-flight attempts are
 * forgotten (and made again after restart). NULL is a no-op. */
void deliver_free(deliver_t *);

struct deliver_stats {
	uint64_t sent, deferred, bounced, expired, dsns;
	uint64_t connections; /* TCP connections opened */
	uint64_t reused; /* transactions on a reused session */
	unsigned active_connections; /* now */
	unsigned messages_in_flight; /* now */
};
void deliver_get_stats(const deliver_t *, struct deliver_stats *);

/*
 * The TLS policy seam (policy/verdict/verdict.h). Before connecting to a
 * host, deliver asks the policy for a verdict. The default (no hook) is
 * smtp_tls_security_level ("dane" means "may" without the engine). The
 * engine (policy/verdict/tls_policy.h) may answer at once or later (DNS,
 * HTTPS), but always through done() from the event loop, never from
 * inside the call.
 */
void deliver_set_policy(
    deliver_t *, tls_verdict_fn *, tls_verdict_cancel_fn *, void *parg);
/* Delivery asks the DANE/MTA-STS engine from now on (tp outlives it),
 * and the engine's DANE is enabled on delivery's TLS context. */
struct tls_policy;
void deliver_use_tls_policy(deliver_t *, struct tls_policy *tp);
/* The TLS client context of every session (for dane_ctx_enable()); owned
 * by deliver, valid until deliver_free(). */
SSL_CTX *deliver_ssl_ctx(deliver_t *);

/*
 * Pure helpers, exposed for unit tests.
 */

/* Seconds to wait after the attempts-th failed attempt: doubling from
 * minimal_backoff_time, capped at maximal_backoff_time. */
long long deliver_backoff(const struct config *, unsigned attempts);
/*
 * After a temporary failure at now: sets *next and returns 0, or returns
 * -1 when the recipient has been queued longer than the queue lifetime
 * (bounce_queue_lifetime for a bounce) and must fail now.
 */
int deliver_retry_time(const struct config *, const struct queue_env *,
    unsigned attempts, int64_t now, int64_t *next);

/* transport_maps: "domain nexthop" lines, '#' comments. nexthop is
 * "[host]:port", "[host]", "host:port" or "host", optionally with a
 * "smtp:" prefix; brackets mean no MX lookup. ".domain" matches every
 * subdomain; an exact entry wins over a parent's ".domain". */
struct deliver_nexthop {
	char host[256];
	unsigned port;
	int no_mx;
};
typedef struct deliver_tmap deliver_tmap_t;
/* Returns NULL or "line N: what"; *mapp is the caller's (tmap_free). */
const char *deliver_tmap_parse(
    const char *text, size_t len, deliver_tmap_t **mapp);
const struct deliver_nexthop *deliver_tmap_lookup(
    const deliver_tmap_t *, const char *domain);
void deliver_tmap_free(deliver_tmap_t *);

/* RFC 5321 5.1: by preference, equals shuffled with rnd(arg) (any
 * uniform 32-bit source; injected for tests). */
struct deliver_mx {
	unsigned pref;
	char host[256];
};
void deliver_mx_sort(
    struct deliver_mx *, size_t n, uint32_t (*rnd)(void *), void *arg);

/* One RFC 3464 delivery status notification. */
struct deliver_dsn_rcpt {
	const char *address;
	const char *orcpt; /* NULL or "rfc822;..." (xtext) */
	const char *action; /* "failed", "delayed", "relayed" */
	const char *status; /* "5.1.1" */
	const char *remote_mta; /* NULL or the host name */
	const char *diagnostic; /* NULL or the reply "550 5.1.1 ..." */
	const char *reason; /* human text when no reply */
	int64_t last_attempt;
};
#define DELIVER_DSN_FAILED 0 /* non-delivery: returned to sender */
#define DELIVER_DSN_DELAYED 1 /* delay warning (delay_warning_time) */
#define DELIVER_DSN_RELAYED 2 /* NOTIFY=SUCCESS, next hop lacks DSN */
struct deliver_dsn {
	const char *reporting_mta; /* myhostname */
	const char *to; /* the original sender */
	const char *qid; /* original queue ID */
	const char *msgid; /* Message-ID value without <> */
	const char *boundary;
	const char *envid; /* NULL or decoded ENVID */
	int64_t arrival, now;
	int ret; /* enum dsn_ret; UNSPEC means full */
	int kind; /* DELIVER_DSN_* */
	const struct deliver_dsn_rcpt *rcpts;
	size_t nrcpt;
	const char *content; /* the original message */
	size_t len;
	size_t full_limit; /* bigger messages return headers only */
};
void deliver_dsn_build(const struct deliver_dsn *, buf_t *out);

#endif
