/*
 * deliver - scheduling, routing, sessions and results; see deliver.h.
 *
 * Outline:
 *   run_queue: queue_due() -> messages in flight (struct dmsg) -> one job
 *     per (destination, up to default_destination_recipient_limit
 *     recipients) -> the destination's job list.
 *   dest_pump: route the destination once (transport_maps, else MX
 *     (RFC 5321 5.1, RFC 7505), then A/AAAA of each host); hand jobs to
 *     idle connections, open new ones within default_process_limit and
 *     default_destination_concurrency_limit.
 *   conn: walks the route's addresses: policy verdict for the host, SMTP
 *     session; the next address on connect failure, a refused greeting,
 *     or a TLS failure; after a transaction takes the next job of its
 *     destination (RSET between), up to smtp_connection_reuse_count_limit,
 *     idling at most smtp_connection_cache_time_limit.
 *   job_done: per recipient 2xx delivered, 4xx deferred with backoff,
 *     5xx failed; queue_update + queue_sync after every job. When the
 *     last job of a message ends, failures become one DSN (queue_put +
 *     queue_sync) before the failed states are written.
 *
 * Doubt defers: a TEMPFAIL or bogus MX answer defers (4.4.3) and never
 * falls back to address records (RFC 7672 2.1.1, RFC-NOTES).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "mta/util/xalloc.h"

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

#define DEST_REQUIRETLS 1
#define DEST_TLS_OPTIONAL 2

struct job;
struct dest;
struct conn;

/* A message with attempts in progress. */
struct dmsg {
	struct dmsg *next;
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
	int route_state; /* 0 none, 1 resolving, 2 ready, 3 failed */
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
	struct deliver_policy pol;
	int no_tls; /* fallback to clear for this address */
	int idle;
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
	unsigned nmsgs;
	uint64_t msg_bytes; /* content held by msgs */
	struct dest *dests;
	struct dest *dest_tab[DEST_BUCKETS];
	unsigned ndests;
	unsigned nconn;
	deliver_policy_fn *policy;
	deliver_policy_cancel_fn *policy_cancel;
	void *policy_arg;
	struct deliver_stats st;
	int running; /* inside run_queue */
	struct event *pump_ev; /* pump_all, from the top of the loop */
	/* A queue run in slices: due messages not yet started. */
	struct queue_env **due;
	size_t ndue, due_next;
	struct event *start_ev;
	struct event *flush_ev; /* writes dirty envelopes (ENV_FLUSH_MSEC) */
	qcommit_t *commit; /* the writer thread, or NULL (unit tests) */
	struct qwrite *qwrites; /* ours, in the writer's hands */
	unsigned *pending; /* PENDING_BUCKETS counts */
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

static void dest_pump(struct dest *);
static void conn_next_addr(struct conn *);
static void conn_free(struct conn *);
static void msg_job_finished(deliver_t *, struct dmsg *);

/*
 * Small helpers
 */
static const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at && at[1] ? at + 1 : NULL;
}

static uint32_t
rand32(void *arg)
{
	uint32_t v = 0;

	(void)arg;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)clock_now_usec();
	return v;
}

/* Seconds for delay= and delays=, Postfix-like: 0.12, 3.4, 120. */
static const char *
secs(char *out, size_t len, int64_t usec)
{
	double v = usec < 0 ? 0.0 : (double)usec / 1e6;

	if (v < 0.01)
		snprintf(out, len, "0");
	else if (v < 10)
		snprintf(out, len, "%.2g", v);
	else
		snprintf(out, len, "%.0f", v);
	return out;
}

/*
 * Messages and jobs
 */
static struct dmsg *
msg_find(deliver_t *d, const char *qid)
{
	struct dmsg *m;

	for (m = d->msgs; m != NULL; m = m->next)
		if (strcmp(m->env->qid, qid) == 0)
			return m;
	return NULL;
}

static void
msg_free(deliver_t *d, struct dmsg *m)
{
	struct dmsg **pp;
	size_t i;

	for (pp = &d->msgs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			d->nmsgs--;
			d->msg_bytes -= m->len;
			break;
		}
	}
	for (i = 0; i < m->env->nrcpt; i++) {
		free(m->fail_remote[i]);
		free(m->fail_diag[i]);
	}
	free(m->fail_remote);
	free(m->fail_diag);
	free(m->failed);
	free(m->relayed);
	free(m->content);
	queue_env_free(m->env);
	free(m);
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->idx);
	free(j->r);
	free(j);
}

static struct job *
job_new(struct dmsg *m)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->m = m;
	j->t_created = clock_now_usec();
	j->smsg.qid = m->env->qid;
	j->smsg.sender = m->env->sender;
	j->smsg.envid = m->env->envid;
	j->smsg.flags = m->env->flags;
	j->smsg.ret = m->env->ret;
	j->smsg.content = m->content;
	j->smsg.len = m->len;
	m->njobs++;
	return j;
}

static void
job_add_rcpt(struct job *j, size_t i)
{
	const struct queue_rcpt *qr = &j->m->env->rcpts[i];
	struct smtp_msg_rcpt *r;

	j->idx = xreallocarray(j->idx, j->smsg.nrcpt + 1, sizeof(*j->idx));
	j->r = xreallocarray(j->r, j->smsg.nrcpt + 1, sizeof(*j->r));
	j->idx[j->smsg.nrcpt] = i;
	r = &j->r[j->smsg.nrcpt];
	memset(r, 0, sizeof(*r));
	r->address = qr->address;
	r->orcpt = qr->orcpt;
	r->notify = qr->notify;
	j->smsg.nrcpt++;
	j->smsg.rcpts = j->r;
}

/*
 * Results
 */
struct attempt {
	const char *relay; /* "host[addr]:port" or "none" */
	const char *host; /* remote MTA name or NULL */
	const struct smtp_tls_info *tls;
	const struct deliver_policy *pol;
	const struct smtp_failure *fail; /* for recipients without reply */
	int fail_permanent; /* fail is final (REQUIRETLS refused) */
	int remote_dsn; /* the server offered DSN (RFC 3461) */
	int64_t setup_usec;
};

/* The arrival to the microsecond: the queue ID holds it (qid.h), the
 * envelope only whole seconds. An ID made in another second (a clock
 * step, an imported file) falls back to the envelope's. */
static int64_t
arrival_usec(const struct queue_env *env)
{
	long long us = qid_usec(env->qid);

	if (us >= 0 && us / 1000000 >= env->arrival - 1 &&
	    us / 1000000 <= env->arrival + 1)
		return (int64_t)us;
	return env->arrival * 1000000;
}

static void
log_rcpt(deliver_t *d, struct job *j, size_t k, const struct attempt *a,
    const char *status, const char *dsn, const char *text, int64_t now_us)
{
	const struct queue_env *env = j->m->env;
	buf_t *b = buf_new(4096);
	int64_t arr = arrival_usec(env);
	int64_t qa = j->t_created - arr, ca = a->setup_usec;
	int64_t sent = j->t_sent ? j->t_sent : now_us;
	int64_t qb = sent - j->t_created - ca;
	char s1[32], s2[32], s3[32], s4[32], s5[32];

	buf_printf(b, "%s: to=<", env->qid);
	buf_put_printable(b, j->r[k].address, strlen(j->r[k].address));
	buf_printf(b,
	    ">, relay=%s, delay=%s, delays=%s/%s/%s/%s, "
	    "dsn=%s, status=%s (",
	    a->relay, secs(s1, 32, now_us - arr), secs(s2, 32, qa),
	    secs(s3, 32, qb), secs(s4, 32, ca), secs(s5, 32, now_us - sent),
	    dsn, status);
	buf_puts(b, text);
	buf_puts(b, ")");
	if (a->pol != NULL) {
		buf_printf(b, ", level=%s", tls_level_name(a->pol->level));
		if (a->pol->source != NULL)
			buf_printf(b, ", policy=%s", a->pol->source);
		if (a->pol->reason[0])
			buf_printf(b, " (%s)", a->pol->reason);
	}
	/* Say it when the header was there and we did not act on it. */
	if ((env->flags & QENV_TLS_OPTIONAL) && !d->cfg->tls_required_no_enable)
		buf_puts(b, ", TLS-Required: No ignored "
		            "(tls_required_no_enable = no)");
	if (a->tls != NULL && a->tls->active) {
		buf_printf(b, ", tls=%s:%s verified=%s", a->tls->protocol,
		    a->tls->cipher, a->tls->verified ? "yes" : "no");
		if (a->tls->match[0])
			buf_printf(b, " match=\"%s\"", a->tls->match);
		if (!a->tls->verified)
			buf_printf(b, " reason=\"%s\"", a->tls->reason);
	} else if (a->tls != NULL) {
		buf_puts(b, ", tls=none");
	}
	log_info("%s", buf_data(b));
	buf_free(b);
}

static void
set_str(char **p, const char *s)
{
	free(*p);
	*p = s ? xstrdup(s) : NULL;
}

/*
 * Applies the results of one job to its message, logs one line per
 * recipient and writes the envelope (queue_update + queue_sync).
 */
static void
job_done(deliver_t *d, struct job *j, const struct attempt *a)
{
	struct dmsg *m = j->m;
	int64_t now = clock_now(), now_us = clock_now_usec();
	size_t k;
	buf_t *b = buf_new(1024);

	for (k = 0; k < j->smsg.nrcpt; k++) {
		struct smtp_msg_rcpt *r = &j->r[k];
		size_t i = j->idx[k];
		struct queue_rcpt *qr = &m->env->rcpts[i];
		char status[SMTP_STATUS_SIZE];
		const char *text;
		int cls = r->code / 100, remote = r->code != 0 && !r->local;

		buf_reset(b);
		if (r->code != 0) {
			snprintf(status, sizeof(status), "%s", r->status);
			text = r->reply;
		} else if (a->fail != NULL) {
			snprintf(status, sizeof(status), "%s", a->fail->status);
			/* No answer: temporary, unless a policy decided. */
			cls = a->fail_permanent ? 5 : 4;
			status[0] = (char)('0' + cls);
			text = a->fail->reason;
		} else {
			snprintf(status, sizeof(status), "4.4.2");
			text = "no result";
			cls = 4;
		}
		if (remote && a->host != NULL &&
		    strncmp(text, "host ", 5) != 0) {
			buf_printf(b, "host %s said: %s", a->relay, text);
		} else {
			buf_puts(b, text);
		}
		qr->last_attempt = now;
		set_str(&qr->dsn_status, status);
		set_str(&qr->last_response, buf_data(b));
		if (cls == 2) {
			qr->state = RCPT_DELIVERED;
			/* RFC 3461 5.2.2.3: the next hop will not report
			 * success, so we do: a "relayed" DSN. */
			if ((qr->notify & DSN_NOTIFY_SUCCESS) &&
			    !(qr->notify & DSN_NOTIFY_NEVER) &&
			    !a->remote_dsn) {
				m->relayed[i] = 1;
				set_str(&m->fail_remote[i], a->host);
				set_str(&m->fail_diag[i], r->reply);
			}
			qr->attempts++;
			d->st.sent++;
			log_rcpt(d, j, k, a, "sent", status, text, now_us);
		} else if (cls == 5) {
			qr->attempts++;
			m->failed[i] = 1;
			set_str(&m->fail_remote[i], remote ? a->host : NULL);
			set_str(&m->fail_diag[i], remote ? r->reply : NULL);
			d->st.bounced++;
			log_rcpt(d, j, k, a, "bounced", status, text, now_us);
		} else {
			int64_t next;

			qr->attempts++;
			if (deliver_retry_time(
			        d->cfg, m->env, qr->attempts, now, &next) < 0) {
				m->failed[i] = 1;
				set_str(&m->fail_remote[i],
				    remote ? a->host : NULL);
				set_str(
				    &m->fail_diag[i], remote ? r->reply : NULL);
				d->st.expired++;
				log_rcpt(d, j, k, a, "expired", status, text,
				    now_us);
			} else {
				qr->state = RCPT_DEFERRED;
				qr->next_attempt = next;
				d->st.deferred++;
				log_rcpt(d, j, k, a, "deferred", status, text,
				    now_us);
			}
		}
	}
	buf_free(b);
	m->dirty = 1;
	job_free(j);
	msg_job_finished(d, m);
}

/* A job that never reached a server: every recipient gets one outcome. */
static void
job_fail_local(deliver_t *d, struct job *j, int code, const char *status,
    const char *reason)
{
	struct attempt a;
	struct smtp_failure f;
	size_t k;

	memset(&a, 0, sizeof(a));
	memset(&f, 0, sizeof(f));
	a.relay = "none";
	snprintf(f.status, sizeof(f.status), "%s", status);
	snprintf(f.reason, sizeof(f.reason), "%s", reason);
	a.fail = &f;
	for (k = 0; k < j->smsg.nrcpt; k++) {
		if (code / 100 == 5) {
			/* Local permanent failure: no remote reply. */
			j->r[k].code = 0;
		}
	}
	if (code / 100 == 5) {
		struct dmsg *m = j->m;
		int64_t now = clock_now(), now_us = clock_now_usec();

		for (k = 0; k < j->smsg.nrcpt; k++) {
			size_t i = j->idx[k];
			struct queue_rcpt *qr = &m->env->rcpts[i];

			qr->attempts++;
			qr->last_attempt = now;
			set_str(&qr->dsn_status, status);
			set_str(&qr->last_response, reason);
			m->failed[i] = 1;
			d->st.bounced++;
			log_rcpt(
			    d, j, k, &a, "bounced", status, reason, now_us);
		}
		m->dirty = 1;
		job_free(j);
		msg_job_finished(d, m);
		return;
	}
	job_done(d, j, &a);
}

/*
 * Bounces
 */
static int
wants_failure_dsn(const struct queue_rcpt *r)
{
	if (r->notify & DSN_NOTIFY_NEVER)
		return 0;
	return r->notify == 0 || (r->notify & DSN_NOTIFY_FAILURE);
}

/* Returns 0 when the failures may now be written (DSN durable or none
 * needed), -1 to keep them pending (they are retried later). */
static int
wants_delay_dsn(const struct queue_rcpt *r)
{
	if (r->notify & DSN_NOTIFY_NEVER)
		return 0;
	return r->notify == 0 || (r->notify & DSN_NOTIFY_DELAY);
}

static void write_env(deliver_t *, struct dmsg *, int apply_failures, int);

static unsigned
pending_bucket(const char *qid)
{
	uint32_t h = 2166136261u;

	for (; *qid; qid++) {
		h ^= (unsigned char)*qid;
		h *= 16777619u;
	}
	return h % PENDING_BUCKETS;
}

/* A collision only makes another message wait for the next run. */
static int
write_pending(const deliver_t *d, const char *qid)
{
	return d->pending != NULL && d->pending[pending_bucket(qid)] > 0;
}

static struct qwrite *
qwrite_new(deliver_t *d, const char *qid, int kind)
{
	struct qwrite *w = xcalloc(1, sizeof(*w));

	w->d = d;
	w->kind = kind;
	snprintf(w->qid, sizeof(w->qid), "%s", qid);
	if (d->pending == NULL)
		d->pending = xcalloc(PENDING_BUCKETS, sizeof(*d->pending));
	d->pending[pending_bucket(w->qid)]++;
	w->next = d->qwrites;
	if (d->qwrites)
		d->qwrites->prev = w;
	d->qwrites = w;
	return w;
}

static void
qwrite_free(struct qwrite *w)
{
	deliver_t *d = w->d;

	d->pending[pending_bucket(w->qid)]--;
	if (w->prev)
		w->prev->next = w->next;
	else
		d->qwrites = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void
update_done(void *arg, int err, const char *qid)
{
	struct qwrite *w = arg;

	if (err != QUEUE_OK && err != QUEUE_ENOTFOUND)
		log_warn("%s: cannot update the queue (attempt will be "
		         "repeated)",
		    qid);
	qwrite_free(w);
}

static const char *
dsn_kind_name(int kind)
{
	return kind == DELIVER_DSN_DELAYED   ? "delay"
	       : kind == DELIVER_DSN_RELAYED ? "success"
	                                     : "non-delivery";
}

/* The DSN is durable (or not): a message waiting for its failure DSN
 * gets its failures written now, or kept for a retry. */
static void
dsn_done(void *arg, int err, const char *bqid)
{
	struct qwrite *w = arg;
	deliver_t *d = w->d;
	struct dmsg *m = w->m;

	(void)bqid;
	if (err == QUEUE_OK) {
		d->st.dsns++;
		log_info("%s: sender %s notification: %s", w->qid,
		    dsn_kind_name(w->kind), w->bqid);
	} else {
		log_warn("%s: cannot queue the DSN", w->qid);
	}
	qwrite_free(w);
	if (m != NULL) {
		write_env(d, m, err == QUEUE_OK, 1);
		msg_free(d, m);
		deliver_kick(d);
	}
}

/*
 * Queues one DSN to the sender (kind: DELIVER_DSN_*): failures, a delay
 * warning for the recipients still deferred, or a "relayed" notice.
 * Returns 0 when it is durable or none is due, -1 on failure, and 1 when
 * the writer thread has it: then a failure DSN ends the message from
 * dsn_done.
 */
static int
send_bounce(deliver_t *d, struct dmsg *m, int kind)
{
	static const char *const actions[] = {"failed", "delayed", "relayed"};
	struct queue_env *env = m->env, *benv;
	struct deliver_dsn_rcpt *dr;
	struct deliver_dsn dsn;
	char bqid[QUEUE_ID_SIZE], boundary[64], msgid[320];
	const char *me = d->cfg->myhostname && *d->cfg->myhostname
	                     ? d->cfg->myhostname
	                     : "localhost";
	size_t i, n = 0;
	buf_t *out, *err;
	int rc;

	if (env->sender[0] == '\0' || (env->flags & QENV_BOUNCE)) {
		log_info(
		    "%s: no DSN for a message with the null sender", env->qid);
		return 0;
	}
	dr = xcalloc(env->nrcpt, sizeof(*dr));
	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (kind == DELIVER_DSN_DELAYED
		        ? (r->state != RCPT_DEFERRED || m->failed[i] ||
		              !wants_delay_dsn(r))
		    : kind == DELIVER_DSN_RELAYED
		        ? !m->relayed[i]
		        : (!m->failed[i] || !wants_failure_dsn(r)))
			continue;
		dr[n].address = r->address;
		dr[n].orcpt = r->orcpt;
		dr[n].action = actions[kind];
		dr[n].status = r->dsn_status ? r->dsn_status : "5.0.0";
		dr[n].remote_mta = m->fail_remote[i];
		dr[n].diagnostic = m->fail_diag[i];
		dr[n].reason = r->last_response;
		dr[n].last_attempt = r->last_attempt;
		n++;
	}
	if (n == 0) {
		free(dr);
		return 0;
	}
	queue_new_id(bqid);
	snprintf(boundary, sizeof(boundary), "%s.%08x/%s", bqid, rand32(NULL),
	    "strictmta");
	snprintf(msgid, sizeof(msgid), "%s@%s", bqid, me);
	memset(&dsn, 0, sizeof(dsn));
	dsn.reporting_mta = me;
	dsn.to = env->sender;
	dsn.qid = env->qid;
	dsn.msgid = msgid;
	dsn.boundary = boundary;
	dsn.envid = env->envid;
	dsn.arrival = env->arrival;
	dsn.now = clock_now();
	dsn.ret = kind != DELIVER_DSN_FAILED ? DSN_RET_HDRS : env->ret;
	/* RFC 8689 4.3: a report about a REQUIRETLS message carries only
	 * its header, and travels with REQUIRETLS itself. */
	if (env->flags & QENV_REQUIRETLS)
		dsn.ret = DSN_RET_HDRS;
	dsn.kind = kind;
	dsn.rcpts = dr;
	dsn.nrcpt = n;
	dsn.content = m->content;
	dsn.len = m->len;
	dsn.full_limit = DSN_FULL_LIMIT;
	out = buf_new(0);
	deliver_dsn_build(&dsn, out);
	free(dr);
	benv = queue_env_new();
	memcpy(benv->qid, bqid, sizeof(bqid));
	/* queue_env_new() already made the null sender. */
	benv->arrival = clock_now();
	benv->size = buf_len(out);
	benv->flags = QENV_BOUNCE | (env->flags & QENV_REQUIRETLS);
	/* An 8-bit original inside, or a UTF-8 sender: say so (RFC 6152,
	 * RFC 6531), so that the DSN is not sent where it cannot go. */
	if (smtp_has_8bit(buf_data(out), buf_len(out)))
		benv->flags |= QENV_8BITMIME;
	if (smtp_has_8bit(env->sender, strlen(env->sender)))
		benv->flags |= QENV_SMTPUTF8;
	benv->client = xstrdup("local");
	queue_env_add_rcpt(benv, env->sender, NULL, DSN_NOTIFY_NEVER);
	if (d->commit != NULL) {
		struct qwrite *w = qwrite_new(d, env->qid, kind);
		size_t len;
		char *content = buf_steal(out, &len);

		memcpy(w->bqid, bqid, sizeof(bqid));
		if (kind == DELIVER_DSN_FAILED)
			w->m = m;
		w->ticket =
		    qcommit_submit(d->commit, benv, content, len, dsn_done, w);
		buf_free(out);
		return 1;
	}
	err = buf_new(512);
	rc = queue_put(d->q, benv, buf_data(out), buf_len(out), err);
	if (rc == QUEUE_OK)
		rc = queue_sync(d->q, err);
	if (rc != QUEUE_OK) {
		log_warn(
		    "%s: cannot queue the DSN: %s", env->qid, buf_data(err));
	} else {
		d->st.dsns++;
		log_info("%s: sender %s notification: %s", env->qid,
		    dsn_kind_name(kind), bqid);
	}
	buf_free(err);
	buf_free(out);
	queue_env_free(benv);
	return rc == QUEUE_OK ? 0 : -1;
}

/*
 * Writes the envelope. Failures are applied only when their DSN is
 * durable (or none is due); until then those recipients keep their old
 * state in the queue, so a crash retries them rather than losing them.
 */
static void
write_env(deliver_t *d, struct dmsg *m, int apply_failures, int sync)
{
	buf_t *err;
	size_t i;
	int rc;

	m->dirty = 0;

	for (i = 0; i < m->env->nrcpt; i++) {
		if (!m->failed[i])
			continue;
		if (apply_failures) {
			m->env->rcpts[i].state = RCPT_FAILED;
			m->failed[i] = 0;
		} else if (m->njobs == 0) {
			/* The DSN could not be queued: try it all later. */
			m->env->rcpts[i].state = RCPT_DEFERRED;
			m->env->rcpts[i].next_attempt =
			    clock_now() + d->cfg->minimal_backoff_time;
		}
	}
	if (d->commit != NULL) {
		struct qwrite *w = qwrite_new(d, m->env->qid, -1);

		w->ticket = qcommit_update(d->commit, queue_env_dup(m->env),
		    QCOMMIT_KEEP_HOLDS, update_done, w);
		return;
	}
	err = buf_new(512);
	queue_keep_holds(d->q, m->env);
	rc = queue_update(d->q, m->env);
	if (rc == QUEUE_OK && sync)
		rc = queue_sync(d->q, err);
	if (rc != QUEUE_OK && rc != QUEUE_ENOTFOUND)
		log_warn("%s: cannot update the queue: %s (attempt will be "
		         "repeated)",
		    m->env->qid, buf_data(err));
	buf_free(err);
}

/* Writes the envelopes of unfinished messages that changed, all with
 * one log flush: a message with a thousand destinations costs a few
 * writes a second, not one per destination. A crash in between delivers
 * a recipient again (a duplicate, never a loss). */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	deliver_t *d = arg;
	buf_t *err = buf_new(512);
	struct dmsg *m;
	unsigned n = 0;

	(void)fd;
	(void)what;
	for (m = d->msgs; m != NULL; m = m->next)
		if (m->dirty) {
			write_env(d, m, 0, 0);
			n++;
		}
	if (n > 0 && d->commit == NULL && queue_sync(d->q, err) != QUEUE_OK)
		log_warn("cannot flush the queue log: %s", buf_data(err));
	buf_free(err);
}

static void
msg_job_finished(deliver_t *d, struct dmsg *m)
{
	size_t i;
	int anyfail = 0, rc;

	m->njobs--;
	if (m->njobs > 0) {
		/* Record deliveries and deferrals soon (never deliver
		 * twice if we can help it), keep failures for the one DSN
		 * at the end. */
		struct timeval tv = {0, ENV_FLUSH_MSEC * 1000};

		m->dirty = 1;
		if (!evtimer_pending(d->flush_ev, NULL))
			evtimer_add(d->flush_ev, &tv);
		return;
	}
	for (i = 0; i < m->env->nrcpt; i++)
		anyfail |= m->failed[i];
	/* Optional delay warning, once per message (QENV_WARNED). */
	if (d->cfg->delay_warning_time > 0 && !(m->env->flags & QENV_WARNED) &&
	    clock_now() - m->env->arrival >= d->cfg->delay_warning_time &&
	    m->env->sender[0] != '\0' && !(m->env->flags & QENV_BOUNCE) &&
	    queue_env_next_due(m->env) >= 0 &&
	    send_bounce(d, m, DELIVER_DSN_DELAYED) >= 0)
		m->env->flags |= QENV_WARNED;
	for (i = 0; i < m->env->nrcpt && !m->relayed[i]; i++)
		;
	if (i < m->env->nrcpt)
		send_bounce(d, m, DELIVER_DSN_RELAYED); /* best effort */
	rc = anyfail ? send_bounce(d, m, DELIVER_DSN_FAILED) : 0;
	if (rc == 1)
		return; /* dsn_done ends the message */
	write_env(d, m, rc == 0, 1);
	msg_free(d, m);
	deliver_kick(d);
}

/*
 * Routing
 */
static void route_done(struct dest *);
static struct host_addrs *host_addrs_for(struct dest *, unsigned);

static void route_fail(struct dest *t, int code, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
route_fail(struct dest *t, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	t->route_state = 3;
	t->fail_code = code;
	snprintf(t->fail_status, sizeof(t->fail_status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(t->fail_reason, sizeof(t->fail_reason), fmt, ap);
	va_end(ap);
	log_info("%s: routing: %s", t->name, t->fail_reason);
}

static int
parse_literal(const char *host, unsigned port, struct route_addr *a)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
	const char *h = host;

	memset(a, 0, sizeof(*a));
	if (strncasecmp(h, "ipv6:", 5) == 0)
		h += 5;
	if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s6);
		return 0;
	}
	return -1;
}

static int
want_family(const deliver_t *d, int family)
{
	const char *p = d->cfg->inet_protocols;

	if (strcmp(p, "ipv4") == 0)
		return family == AF_INET;
	if (strcmp(p, "ipv6") == 0)
		return family == AF_INET6;
	return 1;
}

static void
addr_cb(void *arg, const struct resolver_answer *ans)
{
	struct host_cb_arg *ha = arg;
	struct dest *t = ha->t;
	struct route_host *h = &t->hosts[ha->host];
	struct host_addrs *ad = host_addrs_for(t, ha->host);
	size_t i;

	h->lookups[ha->slot] = 0;
	if (ans->ttl > 0 && ans->ttl < t->ttl)
		t->ttl = ans->ttl;
	if (ans->dnssec == DNSSEC_BOGUS || ans->rcode == RESOLVER_TEMPFAIL) {
		h->tempfail = 1;
		log_info("%s: address lookup for %s failed: %s%s%s", t->name,
		    h->name, ans->dnssec == DNSSEC_BOGUS ? "DNSSEC bogus" : "",
		    ans->why ? " " : "", ans->why ? ans->why : "");
	} else if (ans->rcode == RESOLVER_OK) {
		if (h->addr_dnssec == DNSSEC_SECURE ||
		    h->addr_dnssec == DNSSEC_INDETERMINATE)
			h->addr_dnssec = ans->dnssec;
		for (i = 0; i < ans->nrr && ad->n < MAX_ADDRS; i++) {
			const struct resolver_rr *rr = &ans->rr[i];
			struct route_addr *a = &ad->v[ad->n];

			if (rr->type != RESOLVER_A && rr->type != RESOLVER_AAAA)
				continue;
			memset(a, 0, sizeof(*a));
			a->host = (int)ha->host;
			if (rr->u.addr.family == AF_INET) {
				struct sockaddr_in *s4 = (void *)&a->ss;

				s4->sin_family = AF_INET;
				s4->sin_port = htons((uint16_t)t->nh.port);
				memcpy(&s4->sin_addr, rr->u.addr.addr, 4);
				a->len = sizeof(*s4);
			} else {
				struct sockaddr_in6 *s6 = (void *)&a->ss;

				s6->sin6_family = AF_INET6;
				s6->sin6_port = htons((uint16_t)t->nh.port);
				memcpy(&s6->sin6_addr, rr->u.addr.addr, 16);
				a->len = sizeof(*s6);
			}
			ad->n++;
		}
	}
	if (--h->pending == 0 && --t->hosts_pending == 0)
		route_done(t);
}

static struct host_addrs *
host_addrs_for(struct dest *t, unsigned host)
{
	if (t->scratch == NULL)
		t->scratch = xcalloc(MAX_HOSTS, sizeof(*t->scratch));
	return &t->scratch[host];
}

static void
scratch_free(struct dest *t)
{
	free(t->scratch);
	t->scratch = NULL;
}

static void
add_family(struct dest *t, const struct host_addrs *ad, int family)
{
	unsigned i;

	for (i = 0; i < ad->n && t->naddrs < MAX_ADDRS; i++)
		if (family == 0 || ad->v[i].ss.ss_family == family)
			t->addrs[t->naddrs++] = ad->v[i];
}

static void
route_done(struct dest *t)
{
	deliver_t *d = t->d;
	const char *pref = d->cfg->smtp_address_preference;
	unsigned i, ntemp = 0;

	t->naddrs = 0;
	for (i = 0; i < t->nhosts; i++) {
		struct host_addrs *ad = host_addrs_for(t, i);

		ntemp += t->hosts[i].tempfail;
		if (strcmp(pref, "ipv6") == 0) {
			add_family(t, ad, AF_INET6);
			add_family(t, ad, AF_INET);
		} else if (strcmp(pref, "ipv4") == 0) {
			add_family(t, ad, AF_INET);
			add_family(t, ad, AF_INET6);
		} else {
			add_family(t, ad, 0);
		}
	}
	scratch_free(t);
	if (t->naddrs == 0) {
		if (ntemp > 0)
			route_fail(t, 450, "4.4.3",
			    "address lookup failed for the mail exchangers "
			    "of %s",
			    t->name);
		else
			route_fail(t, 550, "5.4.4",
			    "no address records for the mail exchangers of "
			    "%s",
			    t->name);
	} else {
		t->route_state = 2;
		/* Follow DNS changes: at most the smallest TTL, bounded. */
		t->route_expires =
		    clock_now() + (t->ttl < ROUTE_MIN_AGE ? ROUTE_MIN_AGE
		                      : t->ttl > ROUTE_MAX_AGE
		                          ? ROUTE_MAX_AGE
		                          : (int64_t)t->ttl);
		log_debug("%s: route ready, %u hosts, %u addresses", t->name,
		    t->nhosts, t->naddrs);
	}
	dest_pump(t);
}

/* Starts A/AAAA lookups for every host. */
static void
lookup_hosts(struct dest *t)
{
	deliver_t *d = t->d;
	unsigned i, n = t->nhosts;

	t->hosts_pending = n;
	for (i = 0; i < n; i++) {
		struct route_host *h = &t->hosts[i];
		static const int types[2] = {RESOLVER_A, RESOLVER_AAAA};
		static const int fams[2] = {AF_INET, AF_INET6};
		int s;

		h->addr_dnssec = DNSSEC_SECURE;
		h->pending = 0;
		for (s = 0; s < 2; s++)
			if (want_family(d, fams[s]))
				h->pending++;
		for (s = 0; s < 2; s++) {
			struct host_cb_arg *ha;

			if (!want_family(d, fams[s]))
				continue;
			ha = &t->cbarg[i][s];
			ha->t = t;
			ha->host = i;
			ha->slot = s;
			h->lookups[s] = resolver_lookup(
			    d->res, h->name, types[s], addr_cb, ha);
		}
	}
}

static void
mx_cb(void *arg, const struct resolver_answer *ans)
{
	struct dest *t = arg;
	deliver_t *d = t->d;
	struct deliver_mx mx[MAX_HOSTS];
	size_t i, n = 0;
	const char *me = d->cfg->myhostname;

	t->mx_lookup = 0;
	if (ans->ttl > 0 && ans->ttl < t->ttl)
		t->ttl = ans->ttl;
	t->mx_dnssec = ans->dnssec;
	if (ans->dnssec == DNSSEC_BOGUS) {
		route_fail(t, 450, "4.4.3",
		    "MX lookup for %s failed: DNSSEC validation failed%s%s",
		    t->nh.host, ans->why ? ": " : "", ans->why ? ans->why : "");
		dest_pump(t);
		return;
	}
	switch (ans->rcode) {
	case RESOLVER_TEMPFAIL:
		route_fail(t, 450, "4.4.3", "MX lookup for %s failed%s%s",
		    t->nh.host, ans->why ? ": " : "", ans->why ? ans->why : "");
		dest_pump(t);
		return;
	case RESOLVER_NXDOMAIN:
		route_fail(t, 550, "5.1.2",
		    "Host or domain name not found: %s (NXDOMAIN)", t->nh.host);
		dest_pump(t);
		return;
	case RESOLVER_NODATA:
		/* RFC 5321 5.1: no MX RRset: the domain is its own MX. */
		snprintf(t->hosts[0].name, sizeof(t->hosts[0].name), "%s",
		    t->nh.host);
		t->hosts[0].pref = 0;
		t->hosts[0].via_mx = 0;
		t->nhosts = 1;
		lookup_hosts(t);
		return;
	case RESOLVER_OK:
		break;
	}
	for (i = 0; i < ans->nrr && n < MAX_HOSTS; i++) {
		if (ans->rr[i].type != RESOLVER_MX)
			continue;
		mx[n].pref = ans->rr[i].u.mx.preference;
		snprintf(
		    mx[n].host, sizeof(mx[n].host), "%s", ans->rr[i].u.mx.host);
		n++;
	}
	/* RFC 7505: a single "MX 0 ." means no mail at all. */
	if (n == 1 && mx[0].host[0] == '\0') {
		route_fail(t, 556, "5.1.10",
		    "Recipient address has null MX: %s accepts no mail",
		    t->nh.host);
		dest_pump(t);
		return;
	}
	deliver_mx_sort(mx, n, rand32, NULL);
	t->nhosts = 0;
	for (i = 0; i < n; i++) {
		if (mx[i].host[0] == '\0')
			continue; /* a null MX among others: ignore it */
		/* RFC 5321 5.1: when we are an MX, use only better ones. */
		if (me != NULL && *me != '\0' &&
		    strcasecmp(mx[i].host, me) == 0)
			break;
		snprintf(t->hosts[t->nhosts].name, 256, "%s", mx[i].host);
		t->hosts[t->nhosts].pref = mx[i].pref;
		t->hosts[t->nhosts].via_mx = 1;
		t->nhosts++;
	}
	if (t->nhosts == 0) {
		route_fail(t, 554, "5.4.6", "mail for %s loops back to myself",
		    t->name);
		dest_pump(t);
		return;
	}
	lookup_hosts(t);
}

static void
route_start(struct dest *t)
{
	deliver_t *d = t->d;
	const struct deliver_nexthop *nh =
	    deliver_tmap_lookup(d->tmap, t->name);
	size_t l = strlen(t->name);

	t->route_state = 1;
	t->ttl = UINT32_MAX;
	memset(t->dead_until, 0, sizeof(t->dead_until));
	t->mx_dnssec = DNSSEC_INDETERMINATE;
	t->nexthop = nh != NULL;
	if (nh != NULL) {
		t->nh = *nh;
	} else if (t->name[0] == '[' && l > 2 && t->name[l - 1] == ']') {
		t->nexthop = 1;
		/* An address literal (RFC 5321 4.1.3). */
		snprintf(t->nh.host, sizeof(t->nh.host), "%.*s", (int)(l - 2),
		    t->name + 1);
		t->nh.port = 25;
		t->nh.no_mx = 1;
	} else {
		snprintf(t->nh.host, sizeof(t->nh.host), "%s", t->name);
		t->nh.port = 25;
		t->nh.no_mx = 0;
	}
	if (t->nh.no_mx) {
		struct route_addr a;

		snprintf(t->hosts[0].name, sizeof(t->hosts[0].name), "%s",
		    t->nh.host);
		t->hosts[0].via_mx = 0;
		t->nhosts = 1;
		if (parse_literal(t->nh.host, t->nh.port, &a) == 0) {
			t->hosts[0].addr_dnssec = DNSSEC_INSECURE;
			t->addrs[0] = a;
			t->naddrs = 1;
			t->route_state = 2;
			t->route_expires = clock_now() + ROUTE_MAX_AGE;
			dest_pump(t);
			return;
		}
		if (d->res == NULL)
			goto no_resolver;
		lookup_hosts(t);
		return;
	}
	if (d->res == NULL)
		goto no_resolver;
	t->mx_lookup =
	    resolver_lookup(d->res, t->nh.host, RESOLVER_MX, mx_cb, t);
	return;
no_resolver:
	/* Only tests run without a resolver: nothing but literals. */
	route_fail(t, 450, "4.4.3", "no resolver for %s", t->nh.host);
	dest_pump(t);
}

/*
 * Connections
 */
static void
policy_default(deliver_t *d, struct deliver_policy *p)
{
	memset(p, 0, sizeof(*p));
	if (tls_level_parse(d->cfg->smtp_tls_security_level, &p->level) < 0)
		p->level = TLS_LEV_MAY;
	/* "dane" without a DANE module: opportunistic, as documented. */
	if (p->level == TLS_LEV_DANE || p->level == TLS_LEV_STS_ENFORCE)
		p->level = TLS_LEV_MAY;
	if (strcmp(d->cfg->smtp_tls_security_level, "dane-only") == 0) {
		memcpy(p->status, "4.7.5", 6);
		snprintf(p->reason, sizeof(p->reason),
		    "dane-only without a DANE module");
	}
	p->source = "config";
}

static void
policy_release(struct conn *c)
{
	deliver_t *d = c->dest->d;

	if (c->policy_id != 0 && d->policy_cancel != NULL)
		d->policy_cancel(d->policy_arg, c->policy_id);
	c->policy_id = 0;
	if (c->pol.tls_setup_free != NULL)
		c->pol.tls_setup_free(c->pol.tls_setup_arg);
	memset(&c->pol, 0, sizeof(c->pol));
	c->policy_host = -1;
}

static void sess_cb(void *, smtp_sess_t *, enum smtp_event);

static void
conn_connect(struct conn *c)
{
	struct dest *t = c->dest;
	deliver_t *d = t->d;
	const struct route_addr *a = &t->addrs[c->addr];
	struct smtp_sess_opts o;

	memset(&o, 0, sizeof(o));
	o.helo_name = d->cfg->smtp_helo_name && *d->cfg->smtp_helo_name
	                  ? d->cfg->smtp_helo_name
	                  : d->cfg->myhostname;
	o.host = t->hosts[a->host].name;
	o.level = c->pol.level;
	o.no_tls = c->no_tls;
	o.ssl_ctx = d->ssl;
	o.tls_setup = c->pol.tls_setup;
	o.tls_setup_arg = c->pol.tls_setup_arg;
	o.policy_required = c->pol.source != NULL &&
	                    strcmp(c->pol.source, "config") != 0 &&
	                    tls_level_must_encrypt(c->pol.level);
	d->st.connections++;
	c->sess = smtp_sess_new(d->base, d->cfg, &o,
	    (const struct sockaddr *)&a->ss, a->len, sess_cb, c);
}

/*
 * RFC 8689 4.2.1: a REQUIRETLS message goes only to an MX whose name is
 * DNSSEC-validated (then DANE, or level secure: the Web PKI for that
 * name) or validated by an MTA-STS policy, with a verified certificate.
 * Anything else is refused for this host with 5.7.10; a temporary policy
 * failure keeps its own 4.x.x status. Stricter than the RFC: a testing-mode
 * MTA-STS policy does not qualify, since its verdict does not verify the
 * certificate (docs/tls-policy.md).
 */
static void
requiretls_check(const struct dest *t, struct deliver_policy *p)
{
	const char *why;

	if (p->level == TLS_LEV_STS_ENFORCE)
		return;
	if (p->level == TLS_LEV_DANE || p->level == TLS_LEV_SECURE) {
		if (t->nexthop || t->mx_dnssec == DNSSEC_SECURE)
			return;
		why = "the MX RRset is not DNSSEC-validated";
	} else if (tls_level_must_encrypt(p->level)) {
		why = "TLS is required but no DANE or MTA-STS policy "
		      "verifies the server";
	} else {
		why = "neither DANE nor an enforced MTA-STS policy protects "
		      "this destination";
	}
	memcpy(p->status, "5.7.10", 7);
	snprintf(p->reason, sizeof(p->reason), "REQUIRETLS: %s", why);
}

/*
 * RFC 8689 5, when tls_required_no_enable says so: the sender of a
 * message with "TLS-Required: No" asks that the recipient's DANE or
 * MTA-STS policy be ignored. The host is used with opportunistic TLS;
 * levels of our own configuration (encrypt, secure) still hold, since
 * the header speaks for the sender about the recipient's policy only.
 */
static void
tls_optional_apply(struct deliver_policy *p)
{
	char was[128];

	if (p->source == NULL || strcmp(p->source, "config") == 0)
		return;
	if (strcmp(p->source, "mta-sts-testing") == 0)
		return;
	snprintf(was, sizeof(was), "%s%s%s", tls_level_name(p->level),
	    p->status[0] ? " " : "", p->status);
	if (p->tls_setup_free != NULL)
		p->tls_setup_free(p->tls_setup_arg);
	p->tls_setup = NULL;
	p->tls_setup_free = NULL;
	p->tls_setup_arg = NULL;
	p->status[0] = '\0';
	p->level = TLS_LEV_MAY;
	snprintf(p->reason, sizeof(p->reason),
	    "TLS-Required: No applied, %s policy not enforced (was %s)",
	    p->source, was);
}

static void
policy_done(void *arg, const struct deliver_policy *p)
{
	struct conn *c = arg;
	struct dest *t = c->dest;

	c->policy_id = 0;
	c->pol = *p;
	if (t->requiretls && p->status[0] == '\0')
		requiretls_check(t, &c->pol);
	if (t->cls & DEST_TLS_OPTIONAL)
		tls_optional_apply(&c->pol);
	if (c->pol.status[0] != '\0') {
		/* The policy says this host cannot be used now. */
		const char *host = t->hosts[t->addrs[c->addr].host].name;
		int h = t->addrs[c->addr].host;

		memset(&c->lastfail, 0, sizeof(c->lastfail));
		c->have_fail = 1;
		c->lastfail.stage = SMTP_FAIL_POLICY;
		if (strcmp(c->pol.status, "5.7.10") == 0)
			c->rtls_refused = 1;
		else
			c->other_fail = 1;
		snprintf(c->lastfail.status, sizeof(c->lastfail.status), "%s",
		    c->pol.status);
		snprintf(c->lastfail.reason, sizeof(c->lastfail.reason),
		    "%s (policy %s, host %s)", c->pol.reason,
		    c->pol.source ? c->pol.source : "?", host);
		log_info(
		    "%s: skipping host %s: %s", t->name, host, c->pol.reason);
		/* Skip every address of this host. */
		while (
		    c->addr + 1 < t->naddrs && t->addrs[c->addr + 1].host == h)
			c->addr++;
		c->addr++;
		conn_next_addr(c);
		return;
	}
	conn_connect(c);
}

/* Tries the address at c->addr, or ends the job when none are left. */
static void
conn_next_addr(struct conn *c)
{
	struct dest *t = c->dest;
	deliver_t *d = t->d;
	int host;
	unsigned k;

	/* Skip an address marked dead while a live one remains later. */
	while (c->addr < t->naddrs && t->dead_until[c->addr] > clock_now()) {
		for (k = c->addr + 1;
		     k < t->naddrs && t->dead_until[k] > clock_now(); k++)
			;
		if (k == t->naddrs)
			break;
		c->addr++;
	}
	if (c->addr >= t->naddrs) {
		struct attempt a;
		struct smtp_failure f = c->lastfail;
		struct job *j = c->job;

		memset(&a, 0, sizeof(a));
		a.relay = "none";
		if (!c->have_fail) {
			snprintf(f.status, sizeof(f.status), "4.4.1");
			snprintf(f.reason, sizeof(f.reason),
			    "no usable address for %s", t->name);
		}
		a.fail = &f;
		/* RFC 8689 4.2.1: no host can take the promise and nothing
		 * temporary stood in the way: return the message now. */
		a.fail_permanent = c->rtls_refused && !c->other_fail;
		c->rtls_refused = c->other_fail = 0;
		c->job = NULL;
		if (j != NULL)
			job_done(d, j, &a);
		conn_free(c);
		return;
	}
	host = t->addrs[c->addr].host;
	if (c->policy_host == host) {
		conn_connect(c);
		return;
	}
	policy_release(c);
	c->policy_host = host;
	if (d->policy != NULL) {
		struct deliver_policy_req req;

		memset(&req, 0, sizeof(req));
		req.domain = t->name;
		req.host = t->hosts[host].name;
		req.port = t->nh.port;
		req.via_mx = t->hosts[host].via_mx;
		req.mx_dnssec = t->mx_dnssec;
		req.host_dnssec = t->hosts[host].addr_dnssec;
		req.nexthop = t->nexthop;
		c->policy_id = d->policy(d->policy_arg, &req, policy_done, c);
		return;
	}
	{
		struct deliver_policy p;

		policy_default(d, &p);
		policy_done(c, &p);
	}
}

static struct conn *
conn_new(struct dest *t, struct job *j)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->dest = t;
	c->job = j;
	c->policy_host = -1;
	c->next = t->conns;
	t->conns = c;
	t->nconn++;
	t->d->nconn++;
	return c;
}

static void dest_maybe_free(struct dest *);

static void
conn_free(struct conn *c)
{
	struct dest *t = c->dest;
	deliver_t *d = t->d;
	struct conn **pp;

	for (pp = &t->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	t->nconn--;
	d->nconn--;
	if (c->idle_timer != NULL)
		event_free(c->idle_timer);
	if (c->sess != NULL)
		smtp_sess_close(c->sess);
	policy_release(c);
	if (c->job != NULL) {
		/* Not attempted: back to the front of the list. */
		c->job->next = t->jobs;
		t->jobs = c->job;
		if (t->jobs_tail == &t->jobs)
			t->jobs_tail = &c->job->next;
		t->njobs++;
	}
	free(c);
	/* A slot is free: any destination may use it. Done from the
	 * event loop so that no caller's dest or conn goes away under
	 * it. */
	event_active(d->pump_ev, EV_TIMEOUT, 1);
}

static void
pump_all_cb(evutil_socket_t fd, short what, void *arg)
{
	deliver_t *d = arg;
	struct dest *o, *next;

	(void)fd;
	(void)what;
	/* dest_pump() frees at most its own dest; next is kept. */
	for (o = d->dests; o != NULL; o = next) {
		next = o->next;
		if (o->njobs > 0)
			dest_pump(o);
		else
			dest_maybe_free(o);
	}
}

static struct job *
dest_take_job(struct dest *t)
{
	struct job *j = t->jobs;

	if (j == NULL)
		return NULL;
	t->jobs = j->next;
	if (t->jobs == NULL)
		t->jobs_tail = &t->jobs;
	t->njobs--;
	j->next = NULL;
	return j;
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_free(c);
}

/* After a transaction: the next job, idle, or close. */
static void
conn_after_job(struct conn *c)
{
	struct dest *t = c->dest;
	deliver_t *d = t->d;
	struct job *j;

	/* reuse counts the messages after the first one. A stale route
	 * ends the session so that the destination is looked up again. */
	if (clock_now() >= t->route_expires ||
	    c->reuse + 1 >=
	        (unsigned)d->cfg->smtp_connection_reuse_count_limit) {
		conn_free(c);
		return;
	}
	if ((j = dest_take_job(t)) != NULL) {
		c->job = j;
		c->reuse++;
		d->st.reused++;
		j->t_sent = clock_now_usec();
		smtp_sess_send(c->sess, &j->smsg);
		return;
	}
	if (d->cfg->smtp_connection_cache_time_limit <= 0) {
		conn_free(c);
		return;
	}
	c->idle = 1;
	if (c->idle_timer == NULL)
		c->idle_timer = evtimer_new(d->base, idle_cb, c);
	{
		struct timeval tv = {
		    (time_t)d->cfg->smtp_connection_cache_time_limit, 0};

		evtimer_add(c->idle_timer, &tv);
	}
}

static void
sess_cb(void *arg, smtp_sess_t *s, enum smtp_event ev)
{
	struct conn *c = arg;
	struct dest *t = c->dest;
	deliver_t *d = t->d;
	struct attempt a;
	const struct smtp_failure *f;
	struct smtp_tls_info tls;
	char relay[320];

	memset(&a, 0, sizeof(a));
	a.relay = smtp_sess_relay(s);
	a.host = t->hosts[t->addrs[c->addr].host].name;
	a.tls = smtp_sess_tls(s);
	a.pol = &c->pol;
	a.remote_dsn = (smtp_sess_ehlo(s)->ext & SMTP_EXT_DSN) != 0;
	switch (ev) {
	case SMTP_EV_READY:
		c->setup_usec = smtp_sess_setup_usec(s);
		if (c->job == NULL) {
			conn_after_job(c);
			return;
		}
		c->job->t_sent = clock_now_usec();
		smtp_sess_send(s, &c->job->smsg);
		return;
	case SMTP_EV_DONE: {
		struct job *j = c->job;

		a.setup_usec = c->reuse == 0 ? c->setup_usec : 0;
		c->job = NULL;
		if (j != NULL)
			job_done(d, j, &a);
		conn_after_job(c);
		return;
	}
	case SMTP_EV_FAIL:
		break;
	}
	/* Copies: everything below may free the session. */
	c->sess = NULL;
	c->lastfail = *smtp_sess_failure(s);
	c->have_fail = 1;
	c->other_fail = 1;
	f = &c->lastfail;
	tls = *smtp_sess_tls(s);
	snprintf(relay, sizeof(relay), "%s", smtp_sess_relay(s));
	a.tls = &tls;
	a.relay = relay;
	if (c->job == NULL || f->stage == SMTP_FAIL_REUSE) {
		/* Idle or reused session died before MAIL: the job was
		 * not attempted; conn_free puts it back. */
		log_debug("%s: cached session to %s ended: %s", t->name,
		    a.relay, f->reason);
		smtp_sess_free(s);
		conn_free(c);
		return;
	}
	if (f->stage == SMTP_FAIL_TRANSACTION) {
		struct job *j = c->job;

		a.fail = f;
		a.setup_usec = c->reuse == 0 ? c->setup_usec : 0;
		c->job = NULL;
		smtp_sess_free(s);
		job_done(d, j, &a);
		conn_free(c);
		return;
	}
	log_info("%s: %s", c->job->m->env->qid, f->reason);
	smtp_sess_free(s);
	/* Sendmail's TLSFallbacktoClear, only where nothing asks for TLS:
	 * config level "may" and no DANE/MTA-STS verdict. */
	if (f->stage == SMTP_FAIL_TLS && !c->no_tls &&
	    d->cfg->smtp_tls_fallback_to_clear && c->pol.level == TLS_LEV_MAY &&
	    c->pol.source != NULL && strcmp(c->pol.source, "config") == 0) {
		log_info("%s: retrying %s without TLS", t->name, a.relay);
		c->no_tls = 1;
		conn_connect(c);
		return;
	}
	if (f->stage == SMTP_FAIL_CONNECT || f->stage == SMTP_FAIL_GREETING)
		t->dead_until[c->addr] = clock_now() + DEAD_HOST_TIME;
	c->no_tls = 0;
	c->addr++;
	conn_next_addr(c);
}

/*
 * Destinations
 */
static unsigned
dest_bucket(const char *domain, int cls)
{
	uint32_t h = 2166136261u ^ (uint32_t)cls;

	for (; *domain; domain++) {
		h ^= (unsigned char)tolower((unsigned char)*domain);
		h *= 16777619u;
	}
	return h % DEST_BUCKETS;
}

/* The destination for domain; NULL when MAX_DESTS are in memory and
 * this is not one of them. */
static struct dest *
dest_get(deliver_t *d, const char *domain, int cls)
{
	unsigned b = dest_bucket(domain, cls);
	struct dest *t;
	size_t i;

	for (t = d->dest_tab[b]; t != NULL; t = t->hnext)
		if (t->cls == cls && strcasecmp(t->name, domain) == 0)
			return t;
	if (d->ndests >= MAX_DESTS)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->d = d;
	t->cls = cls;
	t->requiretls = (cls & DEST_REQUIRETLS) != 0;
	t->name = xstrdup(domain);
	for (i = 0; t->name[i]; i++)
		t->name[i] = (char)tolower((unsigned char)t->name[i]);
	t->jobs_tail = &t->jobs;
	t->next = d->dests;
	d->dests = t;
	t->hnext = d->dest_tab[b];
	d->dest_tab[b] = t;
	d->ndests++;
	return t;
}

static void
dest_free(struct dest *t)
{
	deliver_t *d = t->d;
	struct dest **pp;
	unsigned i;

	for (pp = &d->dests; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	for (pp = &d->dest_tab[dest_bucket(t->name, t->cls)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	}
	d->ndests--;
	if (t->mx_lookup != 0)
		resolver_cancel(d->res, t->mx_lookup);
	for (i = 0; i < t->nhosts; i++) {
		int s;

		for (s = 0; s < 2; s++) {
			if (t->hosts[i].lookups[s] != 0)
				resolver_cancel(d->res, t->hosts[i].lookups[s]);
		}
	}
	scratch_free(t);
	free(t->name);
	free(t);
}

static void
dest_maybe_free(struct dest *t)
{
	if (t->njobs == 0 && t->nconn == 0 && t->route_state != 1)
		dest_free(t);
}

static void
dest_enqueue(struct dest *t, struct job *j)
{
	j->next = NULL;
	*t->jobs_tail = j;
	t->jobs_tail = &j->next;
	t->njobs++;
}

static void
dest_pump(struct dest *t)
{
	deliver_t *d = t->d;
	struct conn *c;
	struct job *j;

	if (t->route_state == 2 && clock_now() >= t->route_expires) {
		/* Stale route: close idle sessions; once none is left,
		 * look the destination up again. Busy sessions finish
		 * their message and close (conn_after_job). */
		struct conn *next;

		for (c = t->conns; c != NULL; c = next) {
			next = c->next;
			if (c->idle)
				conn_free(c);
		}
		if (t->nconn > 0)
			return;
		t->route_state = 0;
	}
	if (t->route_state == 0)
		route_start(t);
	if (t->route_state == 1)
		return;
	if (t->route_state == 3) {
		/* Every job of the destination gets the routing verdict. */
		while ((j = dest_take_job(t)) != NULL)
			job_fail_local(
			    d, j, t->fail_code, t->fail_status, t->fail_reason);
		/* Forgotten once idle (pump_all): the next run looks
		 * again. */
		event_active(d->pump_ev, EV_TIMEOUT, 1);
		return;
	}
	/* Idle sessions first: no new connection when one is open. */
	for (c = t->conns; c != NULL && t->njobs > 0; c = c->next) {
		if (!c->idle ||
		    c->reuse + 1 >=
		        (unsigned)d->cfg->smtp_connection_reuse_count_limit)
			continue;
		c->idle = 0;
		evtimer_del(c->idle_timer);
		c->job = dest_take_job(t);
		c->reuse++;
		d->st.reused++;
		c->job->t_sent = clock_now_usec();
		smtp_sess_send(c->sess, &c->job->smsg);
	}
	/* New connections: another one only when four jobs wait per open
	 * connection, so that a stream of messages shares a few sessions
	 * (reuse) rather than one session per message, while a backlog
	 * still reaches the concurrency limit. */
	while (t->njobs > 0 &&
	       t->nconn <
	           (unsigned)d->cfg->default_destination_concurrency_limit &&
	       d->nconn < (unsigned)d->cfg->default_process_limit &&
	       (t->nconn == 0 || t->njobs >= 4 * t->nconn)) {
		c = conn_new(t, dest_take_job(t));
		conn_next_addr(c);
	}
}

/*
 * The queue run
 */
struct due_list {
	struct queue_env **v;
	size_t n;
	uint64_t bytes;
	deliver_t *d;
};

static int
due_visit(void *arg, const struct queue_env *env)
{
	struct due_list *l = arg;

	/* Bounded memory: the rest waits for the next run. */
	if (l->d->nmsgs + l->n >= MAX_IN_FLIGHT ||
	    ((l->n > 0 || l->d->nmsgs > 0) &&
	        l->d->msg_bytes + l->bytes + env->size > MAX_IN_FLIGHT_BYTES))
		return 1;
	if (msg_find(l->d, env->qid) != NULL || write_pending(l->d, env->qid))
		return 0;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = queue_env_dup(env);
	l->bytes += env->size;
	return 0;
}

/* Splits one due message into jobs per destination, in time linear in
 * its recipients. Recipients whose destination cannot be held now
 * (MAX_DESTS) stay as they are and come back in a later run. Returns
 * the number of recipients looked at. */
static size_t
msg_start(deliver_t *d, struct queue_env *env, int64_t now)
{
	struct dmsg *m = xcalloc(1, sizeof(*m));
	buf_t *content = buf_new(0);
	struct dest **touched;
	size_t i, k, ntouched = 0, waiting = 0;
	long long limit = d->cfg->default_destination_recipient_limit;
	int cls =
	    (env->flags & QENV_REQUIRETLS) ? DEST_REQUIRETLS
	    : (env->flags & QENV_TLS_OPTIONAL) && d->cfg->tls_required_no_enable
	        ? DEST_TLS_OPTIONAL
	        : 0;

	if (queue_get_content(d->q, env->qid, content) != QUEUE_OK) {
		log_warn("%s: cannot read the message content; will retry",
		    env->qid);
		buf_free(content);
		queue_env_free(env);
		free(m);
		return 1;
	}
	m->env = env;
	m->content = buf_steal(content, &m->len);
	buf_free(content);
	m->failed = xcalloc(env->nrcpt ? env->nrcpt : 1, 1);
	m->relayed = xcalloc(env->nrcpt ? env->nrcpt : 1, 1);
	m->fail_remote = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(char *));
	m->fail_diag = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(char *));
	m->next = d->msgs;
	d->msgs = m;
	d->nmsgs++;
	d->msg_bytes += m->len;
	m->njobs = 1; /* held while the jobs are made */
	touched = xcalloc(env->nrcpt + 1, sizeof(*touched));
	for (i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpts[i];
		const char *dom;
		struct dest *t;

		if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
			continue;
		if (r->next_attempt > now)
			continue;
		dom = rcpt_domain(r->address);
		if (dom == NULL) {
			struct job *j = job_new(m);

			job_add_rcpt(j, i);
			job_fail_local(d, j, 550, "5.1.3",
			    "bad address syntax: no domain");
			continue;
		}
		t = dest_get(d, dom, cls);
		if (t == NULL) {
			waiting++;
			continue;
		}
		if (t->build_msg != m) {
			t->build_msg = m;
			t->build_job = NULL;
			touched[ntouched++] = t;
		}
		if (t->build_job != NULL &&
		    t->build_job->smsg.nrcpt >= (size_t)limit) {
			dest_enqueue(t, t->build_job);
			t->build_job = NULL;
		}
		if (t->build_job == NULL)
			t->build_job = job_new(m);
		job_add_rcpt(t->build_job, i);
	}
	if (waiting > 0)
		log_info("%s: %zu recipients wait: %u destinations are in "
		         "memory already",
		    env->qid, waiting, d->ndests);
	log_debug("%s: %zu destinations", env->qid, ntouched);
	for (k = 0; k < ntouched; k++) {
		struct dest *t = touched[k];

		if (t->build_job != NULL)
			dest_enqueue(t, t->build_job);
		t->build_job = NULL;
		t->build_msg = NULL;
	}
	for (k = 0; k < ntouched; k++)
		dest_pump(touched[k]);
	free(touched);
	/* Drop the hold; with no job at all this writes the envelope,
	 * which moves a stale time index entry. */
	msg_job_finished(d, m);
	return env->nrcpt ? env->nrcpt : 1;
}

static void
arm_timer(deliver_t *d)
{
	int64_t next = queue_next_wakeup(d->q), now = clock_now();
	long long wait = d->cfg->queue_run_delay;
	struct timeval tv;

	if (next >= 0) {
		long long w = (long long)(next - now);

		if (w < 1)
			w = 1; /* due but in flight: look again soon */
		if (w < wait)
			wait = w;
	}
	tv.tv_sec = (time_t)wait;
	tv.tv_usec = 0;
	evtimer_add(d->timer, &tv);
}

/* Starts due messages until RCPTS_PER_TURN recipients have been looked
 * at, then lets the loop run and goes on from start_ev. */
static void
start_slice(deliver_t *d)
{
	int64_t now = clock_now();
	size_t budget = 0;

	d->running = 1;
	while (d->due_next < d->ndue && budget < RCPTS_PER_TURN) {
		struct queue_env *env = d->due[d->due_next];

		d->due[d->due_next++] = NULL;
		budget += msg_start(d, env, now);
	}
	d->running = 0;
	if (d->due_next < d->ndue) {
		event_active(d->start_ev, EV_TIMEOUT, 1);
		return;
	}
	free(d->due);
	d->due = NULL;
	d->ndue = d->due_next = 0;
	arm_timer(d);
}

static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_slice(arg);
}

static void
run_queue(deliver_t *d)
{
	struct due_list l;

	if (d->due != NULL)
		return; /* a run is still being started */
	memset(&l, 0, sizeof(l));
	l.d = d;
	queue_due(d->q, clock_now(), d->nmsgs + 200, due_visit, &l);
	d->due = l.v;
	d->ndue = l.n;
	d->due_next = 0;
	start_slice(d);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_queue(arg);
}

void
deliver_kick(deliver_t *d)
{
	struct timeval tv = {0, 0};

	if (d == NULL)
		return;
	/* Coalesced: many kicks in one loop pass make one run. */
	evtimer_add(d->timer, &tv);
}

deliver_t *
deliver_new(struct event_base *base, const struct config *cfg, queue_t *q,
    resolver_t *res, buf_t *err)
{
	deliver_t *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->cfg = cfg;
	d->q = q;
	d->res = res;
	if ((d->ssl = smtp_tls_ctx_new(cfg, err)) == NULL) {
		free(d);
		return NULL;
	}
	if (cfg->transport_maps != NULL && cfg->transport_maps[0] != '\0') {
		FILE *fp = fopen(cfg->transport_maps, "r");
		buf_t *text = buf_new(64 << 20);
		char chunk[8192];
		size_t n;
		const char *e;

		if (fp == NULL) {
			buf_printf(err, "transport_maps %s: %s",
			    cfg->transport_maps, strerror(errno));
			buf_free(text);
			smtp_tls_ctx_free(d->ssl);
			free(d);
			return NULL;
		}
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			buf_append(text, chunk, n);
		fclose(fp);
		e = buf_error(text) ? "file too large"
		                    : deliver_tmap_parse(buf_data(text),
		                          buf_len(text), &d->tmap);
		buf_free(text);
		if (e != NULL) {
			buf_printf(err, "transport_maps %s: %s",
			    cfg->transport_maps, e);
			smtp_tls_ctx_free(d->ssl);
			free(d);
			return NULL;
		}
	}
	d->timer = evtimer_new(base, timer_cb, d);
	d->pump_ev = event_new(base, -1, 0, pump_all_cb, d);
	d->start_ev = event_new(base, -1, 0, start_cb, d);
	d->flush_ev = evtimer_new(base, flush_cb, d);
	deliver_kick(d);
	return d;
}

void
deliver_set_commit(deliver_t *d, qcommit_t *qc)
{
	d->commit = qc;
}

void
deliver_set_queue(deliver_t *d, queue_t *q)
{
	if (d->q != NULL || q == NULL)
		abort();
	d->q = q;
}

void
deliver_set_policy(deliver_t *d, deliver_policy_fn *fn,
    deliver_policy_cancel_fn *cancel, void *arg)
{
	d->policy = fn;
	d->policy_cancel = cancel;
	d->policy_arg = arg;
}

SSL_CTX *
deliver_ssl_ctx(deliver_t *d)
{
	return d->ssl;
}

void
deliver_free(deliver_t *d)
{
	if (d == NULL)
		return;
	while (d->dests != NULL) {
		struct dest *t = d->dests;
		struct job *j;

		while (t->conns != NULL) {
			struct conn *c = t->conns;

			t->conns = c->next;
			smtp_sess_free(c->sess);
			if (c->policy_id != 0 && d->policy_cancel != NULL)
				d->policy_cancel(d->policy_arg, c->policy_id);
			if (c->pol.tls_setup_free != NULL)
				c->pol.tls_setup_free(c->pol.tls_setup_arg);
			if (c->idle_timer != NULL)
				event_free(c->idle_timer);
			job_free(c->job);
			free(c);
		}
		while ((j = dest_take_job(t)) != NULL)
			job_free(j);
		dest_free(t);
	}
	/* Changes not yet written: written now, before the queue closes.
	 * The writer commits what it was given; only our callbacks go. A
	 * message that waited for its failure DSN is tried again after the
	 * restart (its failures were not written: at worst a second DSN). */
	flush_cb(-1, 0, d);
	while (d->qwrites != NULL) {
		qcommit_cancel(d->commit, d->qwrites->ticket);
		qwrite_free(d->qwrites);
	}
	free(d->pending);
	while (d->msgs != NULL)
		msg_free(d, d->msgs);
	if (d->due != NULL) {
		size_t i;

		for (i = d->due_next; i < d->ndue; i++)
			queue_env_free(d->due[i]);
		free(d->due);
	}
	event_free(d->timer);
	event_free(d->pump_ev);
	event_free(d->start_ev);
	event_free(d->flush_ev);
	deliver_tmap_free(d->tmap);
	smtp_tls_ctx_free(d->ssl);
	free(d);
}

void
deliver_get_stats(const deliver_t *d, struct deliver_stats *s)
{
	*s = d->st;
	s->active_connections = d->nconn;
	s->messages_in_flight = d->nmsgs;
}
