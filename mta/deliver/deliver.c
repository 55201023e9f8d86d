/*
 * deliver - scheduling: messages, jobs, destinations and the queue run;
 * see deliver.h, and deliver_int.h for the other files of the engine.
 *
 * Outline:
 *   run_queue: queue_due() -> messages in flight (struct dmsg), started
 *     in slices of RCPTS_PER_TURN recipients -> one job per (destination,
 *     up to default_destination_recipient_limit recipients) -> the
 *     destination's job list.
 *   dest_pump: route the destination once (deliver_route.c); hand jobs
 *     to idle connections, open new ones within default_process_limit
 *     and default_destination_concurrency_limit (deliver_conn.c).
 *   conn: walks the route's addresses: policy verdict for the host, SMTP
 *     session; the next address on connect failure, a refused greeting,
 *     or a TLS failure; after a transaction takes the next job of its
 *     destination (RSET between), up to smtp_connection_reuse_count_limit,
 *     idling at most smtp_connection_cache_time_limit.
 *   job_done (deliver_result.c): per recipient 2xx delivered, 4xx
 *     deferred with backoff, 5xx failed; envelope updates go to the
 *     commit thread, several a message coalesced every ENV_FLUSH_MSEC.
 *     When the last job of a message ends, failures become one DSN, and
 *     the failed states are written once it is durable.
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

#include "mta/deliver/deliver_int.h"
#include "policy/verdict/tls_policy.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "mta/util/xalloc.h"

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
	if (t->njobs == 0 && t->nconn == 0 && t->route_state != ROUTE_RESOLVING)
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

	if (t->route_state == ROUTE_READY && clock_now() >= t->route_expires) {
		/* Stale route: close idle sessions; once none is left,
		 * look the destination up again. Busy sessions finish
		 * their message and close (conn_after_job). */
		struct conn *next;

		for (c = t->conns; c != NULL; c = next) {
			next = c->next;
			if (c->state == CONN_IDLE)
				conn_free(c);
		}
		if (t->nconn > 0)
			return;
		route_enter_state(t, ROUTE_NONE);
	}
	if (t->route_state == ROUTE_NONE)
		route_start(t, dest_pump);
	if (t->route_state == ROUTE_RESOLVING)
		return;
	if (t->route_state == ROUTE_FAILED) {
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
		if (c->state != CONN_IDLE ||
		    c->reuse + 1 >=
		        (unsigned)d->cfg->smtp_connection_reuse_count_limit)
			continue;
		conn_enter_state(c, CONN_SESSION);
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
		return 0; /* not read: due_skip passed it over */
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = queue_env_dup(env);
	l->bytes += env->size;
	return 0;
}

/* Messages in flight, or with a write in the writer's hands, need no
 * reading (the index lists them until their next attempt is written). */
static int
due_skip(void *arg, const char *qid)
{
	struct due_list *l = arg;

	return msg_find(l->d, qid) != NULL || write_pending(l->d, qid);
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
	msg_add(d, m);
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

	while (d->due_next < d->ndue && budget < RCPTS_PER_TURN) {
		struct queue_env *env = d->due[d->due_next];

		d->due[d->due_next++] = NULL;
		budget += msg_start(d, env, now);
	}
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
	queue_due_skip(
	    d->q, clock_now(), d->nmsgs + 200, due_skip, due_visit, &l);
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

/* A queue run soon (KICK_COALESCE_MSEC): after a message finished. */
static void
deliver_kick_soon(deliver_t *d)
{
	struct timeval tv = {0, KICK_COALESCE_MSEC * 1000};

	/* Its own timer: d->timer may be armed for much later. */
	if (!evtimer_pending(d->soon_ev, NULL))
		evtimer_add(d->soon_ev, &tv);
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
	d->msg_gone = deliver_kick_soon;
	d->start_ev = event_new(base, -1, 0, start_cb, d);
	d->flush_ev = evtimer_new(base, flush_cb, d);
	d->soon_ev = evtimer_new(base, timer_cb, d);
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
deliver_use_tls_policy(deliver_t *d, struct tls_policy *tp)
{
	tls_policy_use_ctx(tp, d->ssl);
	deliver_set_policy(d, tls_policy_request, tls_policy_cancel, tp);
}

void
deliver_set_policy(
    deliver_t *d, tls_verdict_fn *fn, tls_verdict_cancel_fn *cancel, void *arg)
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
	while (d->quitting != NULL) {
		struct quitting *q = d->quitting;

		d->quitting = q->next;
		smtp_sess_free(q->sess);
		free(q);
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
	event_free(d->soon_ev);
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
