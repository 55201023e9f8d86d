/*
 * deliver_conn - connections: for each address of the route, the host's
 * TLS verdict (the policy hook), REQUIRETLS and TLS-Required checks, the
 * SMTP session, and after a transaction the destination's next job or an
 * idle wait; see deliver_int.h.
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

static const char *const conn_state_names[] = {
    [CONN_POLICY] = "policy",
    [CONN_SESSION] = "session",
    [CONN_IDLE] = "idle",
};

void
conn_enter_state(struct conn *c, enum conn_state st)
{
	if (c->state != st)
		log_debug("%s: connection %p: %s -> %s", c->dest->name,
		    (void *)c, conn_state_names[c->state],
		    conn_state_names[st]);
	c->state = st;
}

/*
 * Connections
 */
static void
policy_default(deliver_t *d, struct tls_verdict *p)
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
	conn_enter_state(c, CONN_SESSION);
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
requiretls_check(const struct dest *t, struct tls_verdict *p)
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
tls_optional_apply(struct tls_verdict *p)
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
policy_done(void *arg, const struct tls_verdict *p)
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
void
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
		struct tls_verdict_req req;

		memset(&req, 0, sizeof(req));
		req.domain = t->name;
		req.host = t->hosts[host].name;
		req.port = t->nh.port;
		req.via_mx = t->hosts[host].via_mx;
		req.mx_dnssec = t->mx_dnssec;
		req.host_dnssec = t->hosts[host].addr_dnssec;
		req.nexthop = t->nexthop;
		conn_enter_state(c, CONN_POLICY);
		c->policy_id = d->policy(d->policy_arg, &req, policy_done, c);
		return;
	}
	{
		struct tls_verdict p;

		policy_default(d, &p);
		policy_done(c, &p);
	}
}

struct conn *
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

static void
quit_done(void *arg)
{
	struct quitting *q = arg;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->d->quitting = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	free(q);
}

static void
conn_quit(deliver_t *d, smtp_sess_t *sess)
{
	struct quitting *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->sess = sess;
	if (!smtp_sess_close(sess, quit_done, q)) {
		free(q);
		return;
	}
	q->next = d->quitting;
	if (q->next != NULL)
		q->next->prev = q;
	d->quitting = q;
}

void
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
		conn_quit(d, c->sess);
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
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_free(c);
}

/* After a transaction: the next job, idle, or close. */
void
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
	conn_enter_state(c, CONN_IDLE);
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
