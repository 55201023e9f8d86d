/*
 * deliver_result - what a job's outcome does: one log line per recipient
 * (Postfix's fields: relay, delay, delays, dsn, status, and the TLS
 * verdict), the recipient's new state, DSNs (RFC 3464) and the envelope
 * writes, through the commit thread; see deliver_int.h.
 *
 * A failure is written only once its DSN is durable (or none is due), so
 * a crash retries it rather than losing it.
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
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "mta/util/xalloc.h"

/*
 * Results
 */

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
void
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
void
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
	return qid_hash(qid) % PENDING_BUCKETS;
}

/* A collision only makes another message wait for the next run. */
int
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

void
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
		d->msg_gone(d);
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
void
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

void
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
	/* The last job: the final write below (or dsn_done's) carries the
	 * changes; flush_cb must not write this message meanwhile. */
	m->dirty = 0;
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
	d->msg_gone(d);
}
