/*
 * deliver_int - what the files of the delivery engine share; not for
 * other modules (deliver.h is the interface).
 *
 *   deliver.c         scheduling: destinations, the queue run, the
 *                     public functions
 *   deliver_msg.c     messages in flight, jobs, a destination's job list
 *   deliver_route.c   routing: transport_maps, MX (RFC 5321 5.1, RFC
 *                     7505), address records
 *   deliver_conn.c    connections: the TLS verdict per host, REQUIRETLS,
 *                     the SMTP session, reuse
 *   deliver_result.c  results per recipient, DSNs, envelope writes
 *                     through the commit thread
 *
 * Ownership: the deliver owns its messages (dmsg), destinations and
 * their jobs and connections; a job belongs to its destination's list
 * until a connection takes it, then to that connection until its result
 * is applied. Everything runs on the event loop's thread.
 */
#ifndef STRICTMTA_DELIVER_INT_H
#define STRICTMTA_DELIVER_INT_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "mta/deliver/deliver.h"
#include "mta/util/config.h"
#include "mta/util/hash.h"

#define MAX_IN_FLIGHT 1000 /* messages held in memory at once */
#define MAX_IN_FLIGHT_BYTES ((uint64_t)256 << 20) /* and their content */
#define MAX_HOSTS 32 /* MX hosts used per destination */
#define MAX_ADDRS 64 /* addresses tried per destination */
#define DSN_FULL_LIMIT 50000
#define DEAD_HOST_TIME 60 /* seconds an unreachable address is tried last */
#define ROUTE_MIN_AGE 10 /* a route is used at least this long (s) */
#define ROUTE_MAX_AGE 3600 /* and at most this long */
/* Destinations in memory; recipients for others wait in the queue. */
#define MAX_DESTS 1000
#define DEST_BUCKETS 1024
/* Recipients made into jobs per loop turn; then the other events. */
#define RCPTS_PER_TURN 2000
/* Envelope updates of unfinished messages are written together, this
 * often (ms), with one log flush for all of them. */
#define ENV_FLUSH_MSEC 200
/* Buckets counting queue writes in the writer's hands, by queue ID hash:
 * a message with one is not started again until it is written. */
#define PENDING_BUCKETS 65536
/* Messages in flight by queue ID: a queue run asks for each it sees. */
#define MSG_BUCKETS 2048
/* A finished message makes a queue run at most this soon (ms): a run
 * that every completion made at once would read the whole in-flight
 * part of the index again each time. */
#define KICK_COALESCE_MSEC 50

#define DEST_REQUIRETLS 1
#define DEST_TLS_OPTIONAL 2

struct job;
struct dest;
struct conn;

/*
 * The files of the engine form layers, each calling only those below:
 *   deliver.c (scheduling) -> deliver_conn.c -> deliver_result.c
 *                          -> deliver_route.c
 *   all of them            -> deliver_msg.c (messages, jobs), deliver_pure.c
 * What goes up is a callback that its owner registers: a route that is
 * ready or failed calls its route_done_fn; a message that has left the
 * engine calls the deliver's msg_gone.
 */
typedef void route_done_fn(struct dest *);
typedef void msg_gone_fn(deliver_t *);

/* A destination's route. */
enum route_state {
	ROUTE_NONE, /* not looked up (or stale: to look up again) */
	ROUTE_RESOLVING, /* MX and address lookups in flight */
	ROUTE_READY, /* addrs[] usable until route_expires */
	ROUTE_FAILED, /* every job gets fail_code/fail_status */
};

/* A delivery connection. */
enum conn_state {
	CONN_POLICY, /* waiting for the TLS verdict of the next address */
	CONN_SESSION, /* an SMTP session: connecting, or a transaction */
	CONN_IDLE, /* a session kept open for the destination's next job */
};

/* A message with attempts in progress. */
struct dmsg {
	struct dmsg *next, *prev;
	struct dmsg *hnext; /* in d->msg_tab, by queue ID */
	struct queue_env *env;
	char *content;
	size_t len;
	int njobs; /* jobs not yet done */
	int dirty;
	/* Failures waiting for their DSN before they are written. */
	unsigned char *failed;
	unsigned char *relayed; /* NOTIFY=SUCCESS to a hop without DSN */
	char **fail_remote; /* remote MTA name or NULL */
	char **fail_diag; /* remote reply or NULL */
};

struct job {
	struct job *next;
	struct dmsg *m;
	size_t *idx; /* indexes into m->env->rcpts */
	struct smtp_msg smsg;
	struct smtp_msg_rcpt *r;
	int64_t t_created; /* usec */
	int64_t t_sent;
};

struct route_host {
	char name[256];
	unsigned pref;
	int via_mx;
	enum dnssec_status addr_dnssec;
	int tempfail; /* address lookup failed: try later */
	uint64_t lookups[2];
	int pending;
};

struct route_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int host;
};

struct host_cb_arg {
	struct dest *t;
	unsigned host;
	int slot;
};

/* Collected address answers, kept per host until all are in. */
struct host_addrs {
	struct route_addr v[MAX_ADDRS];
	unsigned n;
};

struct dest {
	struct dest *next;
	struct dest *hnext; /* in d->dest_tab */
	deliver_t *d;
	char *name; /* recipient domain, lowercase */
	/* Messages that carry REQUIRETLS (RFC 8689), and those whose
	 * TLS-Required: No is honoured, get destinations of their own, so
	 * that no session mixes them with others. cls: DEST_ bits. */
	int cls;
	int requiretls;
	struct job *jobs, **jobs_tail;
	unsigned njobs;
	/* The job msg_start is filling for this destination. */
	struct dmsg *build_msg;
	struct job *build_job;
	struct conn *conns;
	unsigned nconn;
	/* Route: resolving, then ready or failed. */
	enum route_state route_state;
	route_done_fn *route_cb; /* given to route_start */
	int64_t route_expires; /* ready route: re-resolve after (TTL) */
	uint32_t ttl; /* smallest TTL seen while resolving */
	struct deliver_nexthop nh;
	int nexthop; /* nh from transport_maps or an address literal */
	enum dnssec_status mx_dnssec;
	uint64_t mx_lookup;
	struct route_host hosts[MAX_HOSTS];
	unsigned nhosts, hosts_pending;
	struct route_addr addrs[MAX_ADDRS];
	unsigned naddrs;
	struct host_addrs *scratch; /* while resolving */
	/* Addresses that just failed to connect or greet: other sessions
	 * of this destination try them last (Postfix's dead hosts). */
	int64_t dead_until[MAX_ADDRS];
	struct host_cb_arg cbarg[MAX_HOSTS][2]; /* resolver callback args */
	int fail_code;
	char fail_status[SMTP_STATUS_SIZE];
	char fail_reason[512];
};

struct conn {
	struct conn *next;
	struct dest *dest;
	smtp_sess_t *sess;
	struct job *job;
	unsigned addr; /* index into dest->addrs */
	int policy_host; /* host index the verdict is for, -1 none */
	uint64_t policy_id;
	struct tls_verdict pol;
	int no_tls; /* fallback to clear for this address */
	enum conn_state state;
	struct event *idle_timer;
	unsigned reuse;
	int64_t setup_usec;
	int have_fail;
	/* Hosts refused because of REQUIRETLS, and hosts that failed for any
	 * other reason: only the first alone makes a permanent failure. */
	int rtls_refused, other_fail;
	struct smtp_failure lastfail;
};

struct deliver {
	struct event_base *base;
	const struct config *cfg;
	queue_t *q;
	resolver_t *res;
	SSL_CTX *ssl;
	deliver_tmap_t *tmap;
	struct event *timer;
	struct dmsg *msgs;
	struct dmsg *msg_tab[MSG_BUCKETS];
	unsigned nmsgs;
	uint64_t msg_bytes; /* content held by msgs */
	struct dest *dests;
	struct dest *dest_tab[DEST_BUCKETS];
	unsigned ndests;
	unsigned nconn;
	tls_verdict_fn *policy;
	tls_verdict_cancel_fn *policy_cancel;
	void *policy_arg;
	struct deliver_stats st;
	struct event *pump_ev; /* pump_all, from the top of the loop */
	/* A queue run in slices: due messages not yet started. */
	struct queue_env **due;
	size_t ndue, due_next;
	struct event *start_ev;
	struct event *flush_ev; /* writes dirty envelopes (ENV_FLUSH_MSEC) */
	struct event *soon_ev; /* deliver_kick_soon's run */
	qcommit_t *commit; /* the writer thread, or NULL (unit tests) */
	struct qwrite *qwrites; /* ours, in the writer's hands */
	unsigned *pending; /* PENDING_BUCKETS counts */
	struct quitting *quitting; /* sessions still saying QUIT */
	msg_gone_fn *msg_gone; /* a message left the engine: deliver.c */
};

/* A session handed to smtp_sess_close that has not yet freed itself:
 * ours to free if deliver_free comes first. */
struct quitting {
	struct quitting *prev, *next;
	deliver_t *d;
	smtp_sess_t *sess;
};

/* A write of ours that the writer thread holds: its callback is
 * cancelled by deliver_free, and its message is not started again
 * before it is written. */
struct qwrite {
	struct qwrite *prev, *next;
	deliver_t *d;
	uint64_t ticket;
	char qid[QUEUE_ID_SIZE]; /* the message the write is about */
	int kind; /* a DELIVER_DSN_* kind, or -1: an envelope update */
	char bqid[QUEUE_ID_SIZE]; /* a DSN's own ID */
	struct dmsg *m; /* a failure DSN: the message that waits for it */
};

/* What one attempt at a job came to: for job_done and its log lines. */
struct attempt {
	const char *relay; /* "host[addr]:port" or "none" */
	const char *host; /* remote MTA name or NULL */
	const struct smtp_tls_info *tls;
	const struct tls_verdict *pol;
	const struct smtp_failure *fail; /* for recipients without reply */
	int fail_permanent; /* fail is final (REQUIRETLS refused) */
	int remote_dsn; /* the server offered DSN (RFC 3461) */
	int64_t setup_usec;
};

/* FNV-1a of a queue ID, for the tables keyed by one. */
static inline uint32_t
qid_hash(const char *qid)
{
	return (uint32_t)hash_fnv1a(qid, strlen(qid), 0);
}

/* deliver_msg.c: messages, jobs, a destination's job list */
void job_add_rcpt(struct job *j, size_t i);
void job_free(struct job *j);
struct job *job_new(struct dmsg *m);
struct dmsg *msg_find(deliver_t *d, const char *qid);
void msg_add(deliver_t *d, struct dmsg *m);
void msg_free(deliver_t *d, struct dmsg *m);
uint32_t rand32(void *arg);
const char *rcpt_domain(const char *addr);
const char *secs(char *out, size_t len, int64_t usec);

struct job *dest_take_job(struct dest *t);

/* deliver_result.c: results, DSNs, envelope writes */
void flush_cb(evutil_socket_t fd, short what, void *arg);
void job_done(deliver_t *d, struct job *j, const struct attempt *a);
void job_fail_local(deliver_t *d, struct job *j, int code, const char *status,
    const char *reason);
void msg_job_finished(deliver_t *d, struct dmsg *m);
void qwrite_free(struct qwrite *w);
int write_pending(const deliver_t *d, const char *qid);

/* deliver_route.c: routing */
void route_enter_state(struct dest *t, enum route_state st);
/* Looks the route up; done(t) runs when it is ready or failed, maybe
 * before route_start returns. */
void route_start(struct dest *t, route_done_fn *done);
void scratch_free(struct dest *t);

/* deliver_conn.c: connections and sessions */
void conn_enter_state(struct conn *c, enum conn_state st);
void conn_after_job(struct conn *c);
void conn_free(struct conn *c);
struct conn *conn_new(struct dest *t, struct job *j);
void conn_next_addr(struct conn *c);

#endif
