/*
 * sts - MTA-STS policy discovery, cache and refresh (RFC 8461 3, 5, 10.2);
 * see sts.h. Steps for one domain:
 *   1. read the cached entry, if any;
 *   2. TXT lookup of _mta-sts.<domain> (3.1; the resolver follows CNAMEs);
 *      no record, several, an invalid one, or a DNS failure: use the
 *      cached policy while it is unexpired, else no policy (5.1, 10.2);
 *   3. same id as the fresh cached policy: use it, no fetch (5.1);
 *   4. otherwise resolve mta-sts.<domain> and fetch (3.3, sts_fetch.c);
 *      success replaces the cache entry; failure keeps the cached policy
 *      in force while unexpired (5.1);
 *   5. answer every waiter; record last use for the refresh timer, which
 *      re-fetches policies in use once half their max_age has passed.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/x509v3.h>

#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/json.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/sts/sts.h"
#include "policy/sts/sts_cache.h"
#include "policy/sts/sts_fetch.h"
#include "resolver/resolver.h"

#define STS_REFRESH_INTERVAL 600 /* seconds between refresh scans */
#define STS_IN_USE_WINDOW (30 * 86400) /* "in use": asked for lately */
#define STS_MAX_ADDRS 8
#define STS_USE_RECORD_INTERVAL 3600 /* seconds between last_used writes */
#define STS_FAIL_SLOTS 256 /* remembered failed fetches */
#define STS_FAIL_RETRY 300 /* 3.3: at most one fetch a 5 min */

/* A failed fetch of one domain's policy with one id. */
struct sts_failure {
	char domain[256];
	char id[STS_ID_MAX + 1];
	int64_t when;
};

struct sts_waiter {
	uint64_t id;
	sts_cb *cb;
	void *arg;
	struct sts_waiter *next;
};

struct sts_req {
	sts_t *sts;
	char domain[256];
	int force;
	struct sts_waiter *waiters;
	struct sts_cache_entry *cached; /* unexpired cached entry or NULL */
	char txt_id[STS_ID_MAX + 1];
	uint64_t txt_lookup, addr_lookup[2], fetch;
	int addr_pending;
	char *addrs[STS_MAX_ADDRS];
	size_t naddr;
	buf_t *note;
	int local_failure; /* the fetch failed for a reason of ours */
	struct sts_req *next;
};

struct sts {
	struct event_base *base;
	resolver_t *resolver;
	sts_fetcher_t *fetcher;
	sts_cache_t *cache;
	struct event *refresh_timer;
	uint64_t next_id;
	struct sts_req *reqs;
	struct sts_failure failures[STS_FAIL_SLOTS];
	size_t next_failure;
};

/* RFC 8461 3.3: a failed fetch is not repeated for the same id within
 * five minutes, so that a broken policy host is not hammered by every
 * message. Returns nonzero when (domain, id) failed that recently. */
static int
failed_recently(const sts_t *s, const char *domain, const char *id)
{
	int64_t now = clock_now();
	size_t i;

	for (i = 0; i < STS_FAIL_SLOTS; i++)
		if (s->failures[i].when &&
		    now - s->failures[i].when < STS_FAIL_RETRY &&
		    strcmp(s->failures[i].id, id) == 0 &&
		    strcmp(s->failures[i].domain, domain) == 0)
			return 1;
	return 0;
}

static void
remember_failure(sts_t *s, const char *domain, const char *id)
{
	struct sts_failure *f = &s->failures[s->next_failure];

	s->next_failure = (s->next_failure + 1) % STS_FAIL_SLOTS;
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->when = clock_now();
}

static void on_refresh_timer(evutil_socket_t, short, void *);

sts_t *
sts_new(struct event_base *base, const struct config *cfg,
    struct resolver *resolver, const char *cache_path, buf_t *err)
{
	sts_t *s = xcalloc(1, sizeof(*s));
	struct timeval tv = {STS_REFRESH_INTERVAL, 0};

	s->base = base;
	s->resolver = resolver;
	if ((s->cache = sts_cache_open(cache_path, err)) == NULL ||
	    (s->fetcher = sts_fetcher_new(base, cfg, err)) == NULL) {
		sts_free(s);
		return NULL;
	}
	s->refresh_timer = event_new(base, -1, EV_PERSIST, on_refresh_timer, s);
	event_add(s->refresh_timer, &tv);
	return s;
}

static void
req_free(struct sts_req *r)
{
	size_t i;

	while (r->waiters) {
		struct sts_waiter *w = r->waiters;

		r->waiters = w->next;
		free(w);
	}
	if (r->txt_lookup)
		resolver_cancel(r->sts->resolver, r->txt_lookup);
	for (i = 0; i < 2; i++)
		if (r->addr_lookup[i])
			resolver_cancel(r->sts->resolver, r->addr_lookup[i]);
	if (r->fetch)
		sts_fetch_cancel(r->sts->fetcher, r->fetch);
	for (i = 0; i < r->naddr; i++)
		free(r->addrs[i]);
	sts_cache_entry_free(r->cached);
	buf_free(r->note);
	free(r);
}

void
sts_free(sts_t *s)
{
	if (s == NULL)
		return;
	while (s->reqs) {
		struct sts_req *r = s->reqs;

		s->reqs = r->next;
		req_free(r);
	}
	if (s->refresh_timer)
		event_free(s->refresh_timer);
	sts_fetcher_free(s->fetcher);
	sts_cache_close(s->cache);
	free(s);
}

static void
unlink_req(sts_t *s, struct sts_req *r)
{
	struct sts_req **pp;

	for (pp = &s->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

/* Answers every waiter with policy (NULL: none) and ends the request. */
static void
finish(struct sts_req *r, const char *body, size_t len, const char *id,
    const char *source)
{
	sts_t *s = r->sts;
	struct sts_policy *policy = NULL;
	struct sts_verdict v;

	if (body && sts_policy_parse(body, len, &policy) != NULL)
		policy = NULL; /* a corrupt cache entry: as no policy */
	/* "In use" only steers the refresh scan (30-day window): record it
	 * at most hourly, so that a busy domain does not cost a cache write
	 * and its fsync on the event loop for every delivery. */
	if (policy && r->cached && strcmp(source, "cache") == 0 &&
	    clock_now() - r->cached->last_used >= STS_USE_RECORD_INTERVAL) {
		r->cached->last_used = clock_now();
		sts_cache_put(s->cache, r->cached);
	}
	memset(&v, 0, sizeof(v));
	v.domain = r->domain;
	v.policy = policy;
	v.id = policy ? id : "";
	v.source = policy ? source : "none";
	v.note = buf_len(r->note) ? buf_data(r->note) : NULL;
	v.local_failure = policy == NULL && r->local_failure;
	log_info("mta-sts: domain=%s, policy=%s, mode=%s, id=%s, source=%s%s%s",
	    r->domain, policy ? "yes" : "no",
	    policy ? sts_mode_name(policy->mode) : "-", v.id[0] ? v.id : "-",
	    v.source, v.note ? ", note=" : "", v.note ? v.note : "");
	unlink_req(s, r);
	while (r->waiters) {
		struct sts_waiter *w = r->waiters;

		r->waiters = w->next;
		w->cb(w->arg, &v);
		free(w);
	}
	sts_policy_free(policy);
	req_free(r);
}

static void
finish_cached_or_none(struct sts_req *r)
{
	if (r->cached)
		finish(
		    r, r->cached->body, r->cached->len, r->cached->id, "cache");
	else
		finish(r, NULL, 0, "", "none");
}

static void
on_fetch(void *arg, const struct sts_fetch_result *res)
{
	struct sts_req *r = arg;
	struct sts_cache_entry e;

	r->fetch = 0;
	if (res->error) {
		buf_reset(r->note);
		buf_printf(r->note, "policy fetch failed: %s", res->error);
		log_warn(
		    "mta-sts: domain=%s: %s", r->domain, buf_data(r->note));
		/* A local failure says nothing about the remote: not
		 * remembered as the domain's, and no "no policy" verdict. */
		if (res->local)
			r->local_failure = 1;
		else
			remember_failure(r->sts, r->domain, r->txt_id);
		finish_cached_or_none(r);
		return;
	}
	memset(&e, 0, sizeof(e));
	memcpy(e.domain, r->domain, strlen(r->domain) + 1);
	memcpy(e.id, r->txt_id, strlen(r->txt_id) + 1);
	e.fetched = clock_now();
	e.expires = e.fetched + res->policy->max_age;
	e.last_used = e.fetched;
	e.body = (char *)res->body;
	e.len = res->len;
	if (sts_cache_put(r->sts->cache, &e) < 0)
		log_warn("mta-sts: domain=%s: cannot write the policy cache",
		    r->domain);
	finish(r, res->body, res->len, r->txt_id, "fetch");
}

static void
start_fetch(struct sts_req *r)
{
	if (r->naddr == 0) {
		buf_reset(r->note);
		buf_printf(r->note,
		    "policy fetch failed: mta-sts.%s has no address",
		    r->domain);
		finish_cached_or_none(r);
		return;
	}
	r->fetch = sts_fetch(r->sts->fetcher, r->domain,
	    (const char *const *)r->addrs, r->naddr, on_fetch, r);
}

static void
on_addr(void *arg, const struct resolver_answer *a)
{
	struct sts_req *r = arg;
	size_t i;

	r->addr_lookup[a->qtype == RESOLVER_AAAA] = 0;
	if (a->rcode == RESOLVER_OK && a->dnssec != DNSSEC_BOGUS)
		for (i = 0; i < a->nrr && r->naddr < STS_MAX_ADDRS; i++) {
			char text[INET6_ADDRSTRLEN];
			const struct resolver_rr *rr = &a->rr[i];

			if (rr->type != RESOLVER_A && rr->type != RESOLVER_AAAA)
				continue;
			inet_ntop(rr->u.addr.family, rr->u.addr.addr, text,
			    sizeof(text));
			r->addrs[r->naddr++] = xstrdup(text);
		}
	if (--r->addr_pending == 0)
		start_fetch(r);
}

static void
on_txt(void *arg, const struct resolver_answer *a)
{
	struct sts_req *r = arg;
	const char **txts;
	size_t *lens, i, n = 0;
	const char *why = NULL;
	enum sts_txt_result tr = STS_TXT_NONE;
	char host[300];

	r->txt_lookup = 0;
	if (a->rcode == RESOLVER_TEMPFAIL || a->dnssec == DNSSEC_BOGUS) {
		buf_printf(r->note, "TXT lookup failed: %s",
		    a->why ? a->why : resolver_rcode_name(a->rcode));
		tr = STS_TXT_INVALID;
	} else if (a->rcode == RESOLVER_OK) {
		txts = xcalloc(a->nrr + 1, sizeof(*txts));
		lens = xcalloc(a->nrr + 1, sizeof(*lens));
		for (i = 0; i < a->nrr; i++)
			if (a->rr[i].type == RESOLVER_TXT) {
				txts[n] = a->rr[i].u.txt.text;
				lens[n++] = a->rr[i].u.txt.len;
			}
		tr = sts_txt_select(txts, lens, n, r->txt_id, &why);
		free(txts);
		free(lens);
		if (tr != STS_TXT_FOUND)
			buf_printf(r->note, "%s", why);
	} else {
		buf_puts(r->note, "no _mta-sts TXT record");
	}
	if (tr != STS_TXT_FOUND) {
		/* 10.2: a cached policy outlives a vanished TXT record. */
		finish_cached_or_none(r);
		return;
	}
	if (r->cached && !r->force && strcmp(r->cached->id, r->txt_id) == 0) {
		finish(
		    r, r->cached->body, r->cached->len, r->cached->id, "cache");
		return;
	}
	if (!r->force && failed_recently(r->sts, r->domain, r->txt_id)) {
		buf_printf(r->note,
		    "policy fetch for id %s failed less than 5 minutes ago; "
		    "not retried yet (RFC 8461 3.3)",
		    r->txt_id);
		finish_cached_or_none(r);
		return;
	}
	snprintf(host, sizeof(host), "mta-sts.%s", r->domain);
	r->addr_pending = 2;
	r->addr_lookup[0] =
	    resolver_lookup(r->sts->resolver, host, RESOLVER_A, on_addr, r);
	r->addr_lookup[1] =
	    resolver_lookup(r->sts->resolver, host, RESOLVER_AAAA, on_addr, r);
}

static uint64_t
request(sts_t *s, const char *domain, int force, sts_cb *cb, void *arg)
{
	struct sts_waiter *w = xcalloc(1, sizeof(*w));
	struct sts_req *r;
	struct sts_cache_entry *e = NULL;
	char txtname[300];
	size_t dl = strnlen(domain, 255);

	w->id = ++s->next_id;
	w->cb = cb;
	w->arg = arg;
	if (dl && domain[dl - 1] == '.')
		dl--;
	for (r = s->reqs; r; r = r->next)
		if (strlen(r->domain) == dl &&
		    strncasecmp(r->domain, domain, dl) == 0 &&
		    (r->force || !force))
			break;
	if (r) {
		w->next = r->waiters;
		r->waiters = w;
		return w->id;
	}
	r = xcalloc(1, sizeof(*r));
	r->sts = s;
	r->force = force;
	r->note = buf_new(1024);
	memcpy(r->domain, domain, dl);
	r->domain[dl] = '\0';
	r->waiters = w;
	if (sts_cache_get(s->cache, r->domain, &e) == 0) {
		if (e->expires > clock_now())
			r->cached = e;
		else
			sts_cache_entry_free(e);
	}
	r->next = s->reqs;
	s->reqs = r;
	snprintf(txtname, sizeof(txtname), "_mta-sts.%s", r->domain);
	r->txt_lookup =
	    resolver_lookup(s->resolver, txtname, RESOLVER_TXT, on_txt, r);
	return w->id;
}

uint64_t
sts_get(sts_t *s, const char *domain, sts_cb *cb, void *arg)
{
	return request(s, domain, 0, cb, arg);
}

uint64_t
sts_refresh(sts_t *s, const char *domain, sts_cb *cb, void *arg)
{
	return request(s, domain, 1, cb, arg);
}

void
sts_cancel(sts_t *s, uint64_t id)
{
	struct sts_req *r;
	struct sts_waiter **pp;

	/* The request itself runs on: its result fills the cache. */
	for (r = s->reqs; r; r = r->next)
		for (pp = &r->waiters; *pp; pp = &(*pp)->next)
			if ((*pp)->id == id) {
				struct sts_waiter *w = *pp;

				*pp = w->next;
				free(w);
				return;
			}
}

int
sts_forget(sts_t *s, const char *domain)
{
	return sts_cache_delete(s->cache, domain);
}

static void
refresh_done(void *arg, const struct sts_verdict *v)
{
	(void)arg;
	(void)v;
}

struct refresh_scan {
	sts_t *sts;
	int64_t now;
	char (*domains)[256];
	size_t n;
};

static int
refresh_visit(void *arg, const struct sts_cache_entry *e)
{
	struct refresh_scan *scan = arg;
	int64_t max_age = e->expires - e->fetched;

	if (scan->now - e->last_used > STS_IN_USE_WINDOW)
		return 0;
	if (scan->now - e->fetched < max_age / 2 &&
	    scan->now - e->fetched < 86400)
		return 0;
	scan->domains =
	    xreallocarray(scan->domains, scan->n + 1, sizeof(*scan->domains));
	memcpy(scan->domains[scan->n++], e->domain, sizeof(e->domain));
	return scan->n >= 1000;
}

static void
on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	struct refresh_scan scan = {arg, clock_now(), NULL, 0};
	size_t i;

	(void)fd;
	(void)what;
	/* 10.2: refresh policies in use before they expire, so that an
	 * attacker who blocks one fetch cannot wait out the cache. */
	sts_cache_walk(scan.sts->cache, refresh_visit, &scan);
	for (i = 0; i < scan.n; i++)
		request(scan.sts, scan.domains[i], 1, refresh_done, NULL);
	free(scan.domains);
}

struct describe_ctx {
	buf_t *out;
	int json;
	int count;
	int64_t now;
};

static int
describe_visit(void *arg, const struct sts_cache_entry *e)
{
	struct describe_ctx *d = arg;
	struct sts_policy *p = NULL;
	const char *why = sts_policy_parse(e->body, e->len, &p);
	size_t i;

	if (d->json) {
		buf_puts(d->out, d->count ? ",\n  {" : "\n  {");
		buf_puts(d->out, "\"domain\": ");
		json_put_string(d->out, e->domain);
		buf_puts(d->out, ", \"id\": ");
		json_put_string(d->out, e->id);
		buf_printf(d->out,
		    ", \"fetched\": %" PRId64 ", \"expires\": %" PRId64
		    ", \"last_used\": %" PRId64 ", \"expired\": %s, "
		    "\"source\": ",
		    e->fetched, e->expires, e->last_used,
		    e->expires <= d->now ? "true" : "false");
		buf_puts(d->out, "\"https://mta-sts.");
		buf_puts(d->out, e->domain);
		buf_puts(d->out, "/.well-known/mta-sts.txt\"");
		if (p) {
			buf_printf(d->out,
			    ", \"mode\": \"%s\", \"max_age\": %ld, \"mx\": [",
			    sts_mode_name(p->mode), p->max_age);
			for (i = 0; i < p->nmx; i++) {
				if (i)
					buf_puts(d->out, ", ");
				json_put_string(d->out, p->mx[i]);
			}
			buf_puts(d->out, "]");
		} else {
			buf_puts(d->out, ", \"error\": ");
			json_put_string(d->out, why);
		}
		buf_puts(d->out, "}");
	} else {
		buf_printf(d->out,
		    "%s: id=%s mode=%s age=%" PRId64 "s expires_in=%" PRId64
		    "s%s\n",
		    e->domain, e->id, p ? sts_mode_name(p->mode) : "invalid",
		    d->now - e->fetched, e->expires - d->now,
		    e->expires <= d->now ? " (expired)" : "");
		if (p)
			for (i = 0; i < p->nmx; i++)
				buf_printf(d->out, "    mx: %s\n", p->mx[i]);
		buf_printf(d->out,
		    "    source: https://mta-sts.%s/.well-known/mta-sts.txt\n",
		    e->domain);
	}
	d->count++;
	sts_policy_free(p);
	return 0;
}

void
sts_describe(sts_t *s, const char *domain, int json, buf_t *out)
{
	struct describe_ctx d = {out, json, 0, clock_now()};
	struct sts_cache_entry *e;

	if (json)
		buf_puts(out, "[");
	if (domain) {
		if (sts_cache_get(s->cache, domain, &e) == 0) {
			describe_visit(&d, e);
			sts_cache_entry_free(e);
		}
	} else {
		sts_cache_walk(s->cache, describe_visit, &d);
	}
	if (json)
		buf_puts(out, d.count ? "\n]\n" : "]\n");
	else if (d.count == 0)
		buf_printf(out, "%s\n",
		    domain ? "no cached MTA-STS policy for that domain"
		           : "no cached MTA-STS policies");
}

void
sts_ssl_setup(SSL *ssl, const char *mx_host)
{
	char host[256];
	size_t n = strnlen(mx_host, sizeof(host) - 1);

	memcpy(host, mx_host, n);
	if (n && host[n - 1] == '.')
		n--;
	host[n] = '\0';
	/* 4.2: TLS 1.2 or later; the name is the MX host's, with the
	 * wildcard rules of RFC 6125 (whole left-most label only). */
	SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
	SSL_set_tlsext_host_name(ssl, host);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set1_host(ssl, host);
}

int
sts_ssl_verified(SSL *ssl, const char *mx_host, buf_t *desc)
{
	long result = SSL_get_verify_result(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);

	if (peer == NULL) {
		buf_puts(desc, "sts: no server certificate");
		return 0;
	}
	if (result != X509_V_OK) {
		buf_printf(desc, "sts: certificate not valid for %s: %s",
		    mx_host, X509_verify_cert_error_string(result));
		return 0;
	}
	buf_printf(desc, "sts: certificate valid for %s (Web PKI)", mx_host);
	return 1;
}
