/*
 * tls_policy - DANE, then MTA-STS, then the default, for each host; see
 * tls_policy.h. Steps of one request:
 *   1. address lookup of the host (answered from the resolver's cache in
 *      practice) for its DNSSEC status and CNAME expansion;
 *   2. dane_lookup() when those are secure (RFC 7672 2.2);
 *   3. sts_get() for the recipient domain when DANE did not decide;
 *   4. done() with the verdict; for dane and sts-enforce a tls_setup
 *      callback that prepares the SSL (records, names, TLS 1.2+).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <event2/event.h>

#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/metrics.h"
#include "mta/util/xalloc.h"
#include "policy/dane/dane.h"
#include "policy/dane/dane_lookup.h"
#include "policy/verdict/tls_policy.h"
#include "mta/util/clock.h" /* ops-exceptions */
#include "policy/verdict/exception.h"

struct tls_policy {
	struct event_base *base;
	const struct config *cfg;
	resolver_t *resolver;
	sts_t *sts;
	enum tls_level default_level;
	int dane_only; /* smtp_tls_security_level = dane-only */
	int dane_ready; /* the client SSL_CTX has DANE enabled */
	uint64_t next_id;
	struct tp_req *reqs;
	tls_exceptions_t *exc; /* ops-exceptions: operator overrides */
};

struct tp_req {
	tls_policy_t *tp;
	uint64_t id;
	char domain[256];
	char host[256];
	enum dnssec_status host_dnssec;
	int skip_dane; /* smtp_dns_support_level without dnssec */
	int nexthop; /* transport_maps route: no MTA-STS */
	uint64_t addr_lookup, dane_id, sts_id;
	struct event *literal_ev; /* an address literal: answered at once */
	tls_verdict_done *done;
	void *arg;
	struct tp_req *next;
};

/* What the SSL needs for DANE: kept until the connection ends. */
struct dane_setup {
	char base[256];
	char host[256];
	size_t nrec;
	struct tlsa_rec *recs;
	unsigned char **data;
};

static void
dane_setup_free(void *arg)
{
	struct dane_setup *s = arg;
	size_t i;

	for (i = 0; i < s->nrec; i++)
		free(s->data[i]);
	free(s->data);
	free(s->recs);
	free(s);
}

static int
dane_setup_ssl(void *arg, SSL *ssl)
{
	struct dane_setup *s = arg;
	buf_t *why = buf_new(256);
	int rc = 0;

	/* Fail closed: without its TLSA records loaded the session would be
	 * verified by the Web PKI only, which DANE does not allow. */
	if (dane_ssl_setup(ssl, s->base, s->host, s->recs, s->nrec, why) < 0) {
		log_warn("dane: %s: host skipped", buf_data(why));
		rc = -1;
	}
	buf_free(why);
	return rc;
}

static void
sts_setup_free(void *arg)
{
	free(arg);
}

static int
sts_setup_ssl(void *arg, SSL *ssl)
{
	sts_ssl_setup(ssl, arg);
	return 0;
}

/* queue_directory/policy/sts-cache.db, the folder made (0700) if
 * missing: by the caller's account, mail_owner in the daemon. */
static char *
sts_cache_path(const struct config *cfg, buf_t *err)
{
	buf_t *path = buf_new(4096);
	char *s;

	buf_printf(path, "%s/policy", cfg->queue_directory);
	if (mkdir(buf_data(path), 0700) < 0 && errno != EEXIST) {
		buf_printf(err, "%s: %s", buf_data(path), strerror(errno));
		buf_free(path);
		return NULL;
	}
	buf_puts(path, "/sts-cache.db");
	s = buf_steal(path, NULL);
	buf_free(path);
	return s;
}

tls_policy_t *
tls_policy_new(struct event_base *base, const struct config *cfg,
    resolver_t *resolver, buf_t *err)
{
	tls_policy_t *tp = xcalloc(1, sizeof(*tp));
	char *path;

	tp->base = base;
	tp->cfg = cfg;
	tp->resolver = resolver;
	/* DANE and MTA-STS apply whatever the level; "dane" is Postfix's
	 * name for exactly that (DANE where published, else may), and
	 * "dane-only" makes a host without usable TLSA records wait. */
	tp->dane_only = strcmp(cfg->smtp_tls_security_level, "dane-only") == 0;
	if (tp->dane_only || tls_level_parse(cfg->smtp_tls_security_level,
	                         &tp->default_level) < 0)
		tp->default_level = TLS_LEV_MAY;
	if (tp->default_level == TLS_LEV_DANE ||
	    tp->default_level == TLS_LEV_STS_ENFORCE)
		tp->default_level = TLS_LEV_MAY;
	/* ops-exceptions: beside the MTA-STS cache. */
	if ((path = sts_cache_path(cfg, err)) == NULL) {
		free(tp);
		return NULL;
	}
	memcpy(strrchr(path, '/') + 1, "exceptions.db", 14);
	tp->exc = tls_exceptions_open(base, path, err);
	free(path);
	if (tp->exc == NULL) {
		free(tp);
		return NULL;
	}
	if (cfg->mta_sts_enable) {
		if ((path = sts_cache_path(cfg, err)) == NULL) {
			tls_exceptions_close(tp->exc);
			free(tp);
			return NULL;
		}
		tp->sts = sts_new(base, cfg, resolver, path, err);
		free(path);
		if (tp->sts == NULL) {
			tls_exceptions_close(tp->exc);
			free(tp);
			return NULL;
		}
	}
	return tp;
}

static void
req_unlink(tls_policy_t *tp, struct tp_req *r)
{
	struct tp_req **pp;

	for (pp = &tp->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void
req_cancel_lookups(struct tp_req *r)
{
	if (r->addr_lookup)
		resolver_cancel(r->tp->resolver, r->addr_lookup);
	if (r->dane_id)
		dane_lookup_cancel(r->dane_id);
	if (r->sts_id && r->tp->sts)
		sts_cancel(r->tp->sts, r->sts_id);
	r->addr_lookup = r->dane_id = r->sts_id = 0;
	if (r->literal_ev != NULL)
		event_free(r->literal_ev);
	r->literal_ev = NULL;
}

void
tls_policy_free(tls_policy_t *tp)
{
	if (tp == NULL)
		return;
	while (tp->reqs) {
		struct tp_req *r = tp->reqs;

		tp->reqs = r->next;
		req_cancel_lookups(r);
		free(r);
	}
	sts_free(tp->sts);
	tls_exceptions_close(tp->exc);
	free(tp);
}

sts_t *
tls_policy_sts(tls_policy_t *tp)
{
	return tp->sts;
}

tls_exceptions_t *
tls_policy_exceptions(tls_policy_t *tp)
{
	return tp->exc;
}

/*
 * ops-exceptions: an operator's exception for the recipient domain
 * replaces whatever was computed (a 4.7.5 skip included), and says so in
 * the reason, so that the log, the queue and TLS reports show it; this is
 * the only path by which a level is lowered.
 */
static void set_reason(struct tls_verdict *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
exception_apply(struct tp_req *r, struct tls_verdict *v)
{
	struct tls_exception e;
	int64_t now = clock_now();
	char was[48], until[32];
	time_t tt;
	struct tm tm;

	if (!tls_exception_find(r->tp->exc, r->domain, now, &e))
		return;
	snprintf(was, sizeof(was), "%s%s%s", tls_level_name(v->level),
	    v->status[0] ? ", skip " : "", v->status);
	tt = (time_t)e.expires;
	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(until, sizeof(until), "@%lld", (long long)e.expires);
	if (tls_exception_log_due(r->tp->exc, r->domain, now))
		log_info("tls-exception: domain=%s, host=%s: used: level %s "
		         "instead of %s (source %s), expires %s, reason: %s",
		    r->domain, r->host, tls_level_name(e.level), was, v->source,
		    until, e.reason);
	if (v->tls_setup_free != NULL)
		v->tls_setup_free(v->tls_setup_arg);
	v->tls_setup = NULL;
	v->tls_setup_free = NULL;
	v->tls_setup_arg = NULL;
	v->status[0] = '\0';
	v->level = e.level;
	v->source = "exception";
	/* Delivery's log line already says "level=..., policy=exception". */
	set_reason(
	    v, "was %s; reason %.120s; expires %s", was, e.reason, until);
}

/* Reasons are cut to fit: they name hosts and domains of any length. */
static void set_reason(struct tls_verdict *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void exception_apply(struct tp_req *, struct tls_verdict *);

/* Ends a request with verdict v (consumed: done() is called once). */
static void
finish(struct tp_req *r, struct tls_verdict *v)
{
	if (r->tp->dane_only && v->status[0] == '\0' &&
	    v->level != TLS_LEV_DANE) {
		memcpy(v->status, "4.7.5", 6);
		set_reason(v,
		    "no usable DANE TLSA records for %.160s "
		    "(smtp_tls_security_level = dane-only)",
		    r->host);
		if (v->tls_setup_free != NULL)
			v->tls_setup_free(v->tls_setup_arg);
		v->tls_setup = NULL;
		v->tls_setup_free = NULL;
		v->tls_setup_arg = NULL;
	}
	exception_apply(r, v);
	log_info("tls-policy: domain=%s, host=%s, level=%s, source=%s%s%s%s%s",
	    r->domain, r->host, tls_level_name(v->level), v->source,
	    v->status[0] ? ", skip=" : "", v->status,
	    v->reason[0] ? ", reason=" : "", v->reason);
	req_unlink(r->tp, r);
	if (r->literal_ev != NULL)
		event_free(r->literal_ev);
	r->done(r->arg, v);
	free(r);
}

static void
set_reason(struct tls_verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

static void
init_verdict(struct tls_verdict *v, enum tls_level level, const char *source)
{
	memset(v, 0, sizeof(*v));
	v->level = level;
	v->source = source;
}

static void
on_sts(void *arg, const struct sts_verdict *sv)
{
	struct tp_req *r = arg;
	struct tls_verdict v;

	r->sts_id = 0;
	/* explain-metrics: where the MTA-STS answer came from. */
	metrics_add(metrics_family(METRICS_COUNTER,
	                "strictmta_sts_results_total", "source,mode",
	                "MTA-STS answers for delivery: source (cache, fetch, "
	                "none) and mode"),
	    sv->policy == NULL
	        ? (sv->local_failure ? "none,unknown" : "none,none")
	    : sv->policy->mode == STS_MODE_ENFORCE
	        ? (strcmp(sv->source, "fetch") == 0 ? "fetch,enforce"
	                                            : "cache,enforce")
	    : sv->policy->mode == STS_MODE_TESTING
	        ? (strcmp(sv->source, "fetch") == 0 ? "fetch,testing"
	                                            : "cache,testing")
	        : (strcmp(sv->source, "fetch") == 0 ? "fetch,none"
	                                            : "cache,none"),
	    1);
	if (sv->policy == NULL && sv->local_failure) {
		/* The domain publishes a policy and our side could not read
		 * it: that is doubt, and doubt defers. */
		init_verdict(&v, TLS_LEV_STS_ENFORCE, "mta-sts");
		memcpy(v.status, "4.7.5", 6);
		set_reason(&v, "MTA-STS policy of %s unknown: %s", r->domain,
		    sv->note ? sv->note : "local error");
		finish(r, &v);
		return;
	}
	if (sv->policy == NULL || sv->policy->mode == STS_MODE_NONE) {
		init_verdict(&v, r->tp->default_level, "config");
		finish(r, &v);
		return;
	}
	if (sv->policy->mode == STS_MODE_TESTING) {
		/* 5: deliver as without a policy; record what enforce would
		 * have refused, for TLS reports. */
		init_verdict(&v, r->tp->default_level, "mta-sts-testing");
		if (!sts_policy_match(sv->policy, r->host))
			log_info("sts-testing: domain=%s, id=%s: MX host %s "
			         "is not listed in the policy (enforce "
			         "would defer)",
			    r->domain, sv->id, r->host);
		snprintf(
		    v.reason, sizeof(v.reason), "sts-testing id=%s", sv->id);
		finish(r, &v);
		return;
	}
	init_verdict(&v, TLS_LEV_STS_ENFORCE, "mta-sts");
	if (!sts_policy_match(sv->policy, r->host)) {
		/* 4.1: only MX hosts that match a pattern are candidates. */
		memcpy(v.status, "4.7.5", 6);
		set_reason(&v,
		    "MX host %s is not listed in the enforce MTA-STS "
		    "policy of %s, id %s",
		    r->host, r->domain, sv->id);
		finish(r, &v);
		return;
	}
	set_reason(&v, "sts-enforce id=%s", sv->id);
	v.tls_setup = sts_setup_ssl;
	v.tls_setup_arg = xstrdup(r->host);
	v.tls_setup_free = sts_setup_free;
	finish(r, &v);
}

static void
no_dane(struct tp_req *r)
{
	struct tls_verdict v;

	/* RFC 8461 3.4 ties the policy to the domain whose MX records are
	 * used; a next hop set by transport_maps (a smart host) is not the
	 * recipient domain's MX, so its policy does not apply to it. */
	if (r->tp->sts && !r->nexthop) {
		r->sts_id = sts_get(r->tp->sts, r->domain, on_sts, r);
		return;
	}
	init_verdict(&v, r->tp->default_level, "config");
	finish(r, &v);
}

static void
on_dane(void *arg, const struct dane_host_result *res)
{
	struct tp_req *r = arg;
	struct tls_verdict v;
	struct dane_setup *s;
	size_t i;

	r->dane_id = 0;
	/* explain-metrics: the TLSA outcome per host (docs/metrics.md). */
	metrics_add(
	    metrics_family(METRICS_COUNTER, "strictmta_dane_results_total",
	        "result", "DANE TLSA outcomes per host asked about"),
	    res->state == DANE_HOST_USABLE     ? "usable"
	    : res->state == DANE_HOST_UNUSABLE ? "unusable"
	    : res->state == DANE_HOST_FAILED   ? "tempfail"
	                                       : "insecure",
	    1);
	switch (res->state) {
	case DANE_HOST_NONE:
		no_dane(r);
		return;
	case DANE_HOST_FAILED:
		/* 2.1.1 and 2.2: never a downgrade; this host waits. */
		init_verdict(&v, TLS_LEV_DANE, "dane");
		memcpy(v.status, "4.7.5", 6);
		set_reason(&v, "%s", res->why);
		finish(r, &v);
		return;
	case DANE_HOST_UNUSABLE:
		/* RFC 7672 2.2 and 3: published but unusable records still
		 * mean STARTTLS is mandatory, unauthenticated. */
		init_verdict(&v, TLS_LEV_ENCRYPT, "dane");
		set_reason(&v, "%s", res->why);
		finish(r, &v);
		return;
	case DANE_HOST_USABLE:
		break;
	}
	if (!r->tp->dane_ready) {
		/* Fail closed: without OpenSSL's DANE the records cannot be
		 * checked, and a PKIX pass would not be what they ask. */
		init_verdict(&v, TLS_LEV_DANE, "dane");
		memcpy(v.status, "4.7.5", 6);
		set_reason(
		    &v, "DANE is unavailable on this host's TLS context");
		finish(r, &v);
		return;
	}
	init_verdict(&v, TLS_LEV_DANE, "dane");
	set_reason(&v, "%s", res->why);
	s = xcalloc(1, sizeof(*s));
	snprintf(s->base, sizeof(s->base), "%s", res->base);
	snprintf(s->host, sizeof(s->host), "%s", r->host);
	s->recs = xcalloc(res->nrec + 1, sizeof(*s->recs));
	s->data = xcalloc(res->nrec + 1, sizeof(*s->data));
	for (i = 0; i < res->nrec; i++) {
		s->recs[i] = res->recs[i];
		s->data[i] = res->recs[i].len
		                 ? (unsigned char *)xmemdup(
		                       res->recs[i].data, res->recs[i].len)
		                 : NULL;
		s->recs[i].data = s->data[i];
	}
	s->nrec = res->nrec;
	v.tls_setup = dane_setup_ssl;
	v.tls_setup_arg = s;
	v.tls_setup_free = dane_setup_free;
	finish(r, &v);
}

static void
on_addr(void *arg, const struct resolver_answer *a)
{
	struct tp_req *r = arg;
	enum dnssec_status status = r->host_dnssec;
	const char *canonical = r->host;
	int cname_secure = 0;

	r->addr_lookup = 0;
	if (r->skip_dane) {
		no_dane(r);
		return;
	}
	if (a->rcode == RESOLVER_OK) {
		status = a->dnssec;
		canonical = a->canonical;
		cname_secure = a->cname_secure;
	}
	r->dane_id = dane_lookup(r->tp->resolver, r->host, status, canonical,
	    cname_secure, on_dane, r);
	if (r->dane_id == 0)
		no_dane(r);
}

/*
 * An address literal ("[192.0.2.1]" in transport_maps, a relayhost by
 * address) has no name: no TLSA base domain (RFC 7672 2.2 needs a host
 * name) and no MTA-STS policy domain. Its level is the configured one,
 * with "dane" read as "may", and no DNS query is made for it, so that a
 * smart host configured by address never waits for DNS.
 */
static int
is_address_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

static void
on_literal(evutil_socket_t fd, short what, void *arg)
{
	struct tp_req *r = arg;
	struct tls_verdict v;

	(void)fd;
	(void)what;
	init_verdict(&v, r->tp->default_level, "config");
	set_reason(&v, "address literal: no TLSA, no MTA-STS");
	finish(r, &v);
}

uint64_t
tls_policy_request(void *parg, const struct tls_verdict_req *req,
    tls_verdict_done *done, void *arg)
{
	tls_policy_t *tp = parg;
	struct tp_req *r = xcalloc(1, sizeof(*r));

	r->tp = tp;
	r->id = ++tp->next_id;
	snprintf(r->domain, sizeof(r->domain), "%s", req->domain);
	snprintf(r->host, sizeof(r->host), "%s", req->host);
	r->host_dnssec = req->host_dnssec;
	r->nexthop = req->nexthop;
	r->done = done;
	r->arg = arg;
	r->next = tp->reqs;
	tp->reqs = r;
	r->skip_dane = strcmp(tp->cfg->smtp_dns_support_level, "dnssec") != 0;
	if (is_address_literal(r->host)) {
		/* done() from the loop, never from inside this call. */
		r->literal_ev = evtimer_new(tp->base, on_literal, r);
		if (r->literal_ev == NULL)
			abort(); /* out of memory, as xmalloc */
		event_active(r->literal_ev, EV_TIMEOUT, 1);
		return r->id;
	}
	/* Even without DANE this starts with a lookup, so that done() is
	 * always called from the loop, never from inside this call. */
	r->addr_lookup =
	    resolver_lookup(tp->resolver, r->host, RESOLVER_A, on_addr, r);
	return r->id;
}

void
tls_policy_cancel(void *parg, uint64_t id)
{
	tls_policy_t *tp = parg;
	struct tp_req *r;

	for (r = tp->reqs; r; r = r->next)
		if (r->id == id) {
			req_cancel_lookups(r);
			req_unlink(tp, r);
			free(r);
			return;
		}
}

void
tls_policy_use_ctx(tls_policy_t *tp, SSL_CTX *ctx)
{
	/* OpenSSL's DANE needs enabling on the context once (the digest
	 * algorithms); each DANE session then enables it on its SSL. */
	tp->dane_ready = ctx != NULL && dane_ctx_enable(ctx) == 0;
	if (!tp->dane_ready)
		log_warn("dane: cannot enable DANE on the TLS context; hosts "
		         "with TLSA records will be deferred");
}
