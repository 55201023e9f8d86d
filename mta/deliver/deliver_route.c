/*
 * deliver_route - a destination's route: its transport_maps next hop or
 * its MX RRset (RFC 5321 5.1, null MX RFC 7505, implicit MX), then the
 * address records of each host; see deliver_int.h. Doubt defers: a
 * TEMPFAIL or bogus MX answer defers (4.4.3) and never falls back to
 * address records (RFC 7672 2.1.1).
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
 * Routing
 */
/* The route is ready or failed: the owner's callback takes over (it may
 * free t). */
static void
route_finish(struct dest *t)
{
	t->route_cb(t);
}

static const char *const route_state_names[] = {
    [ROUTE_NONE] = "none",
    [ROUTE_RESOLVING] = "resolving",
    [ROUTE_READY] = "ready",
    [ROUTE_FAILED] = "failed",
};

void
route_enter_state(struct dest *t, enum route_state st)
{
	if (t->route_state != st)
		log_debug("%s: route %s -> %s", t->name,
		    route_state_names[t->route_state], route_state_names[st]);
	t->route_state = st;
}

static void route_done(struct dest *);
static struct host_addrs *host_addrs_for(struct dest *, unsigned);

static void route_fail(struct dest *t, int code, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
route_fail(struct dest *t, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	route_enter_state(t, ROUTE_FAILED);
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

void
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
		route_enter_state(t, ROUTE_READY);
		/* Follow DNS changes: at most the smallest TTL, bounded. */
		t->route_expires =
		    clock_now() + (t->ttl < ROUTE_MIN_AGE ? ROUTE_MIN_AGE
		                      : t->ttl > ROUTE_MAX_AGE
		                          ? ROUTE_MAX_AGE
		                          : (int64_t)t->ttl);
		log_debug("%s: route ready, %u hosts, %u addresses", t->name,
		    t->nhosts, t->naddrs);
	}
	route_finish(t);
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
		route_finish(t);
		return;
	}
	switch (ans->rcode) {
	case RESOLVER_TEMPFAIL:
		route_fail(t, 450, "4.4.3", "MX lookup for %s failed%s%s",
		    t->nh.host, ans->why ? ": " : "", ans->why ? ans->why : "");
		route_finish(t);
		return;
	case RESOLVER_NXDOMAIN:
		route_fail(t, 550, "5.1.2",
		    "Host or domain name not found: %s (NXDOMAIN)", t->nh.host);
		route_finish(t);
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
		route_finish(t);
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
		route_finish(t);
		return;
	}
	lookup_hosts(t);
}

void
route_start(struct dest *t, route_done_fn *done)
{
	t->route_cb = done;
	deliver_t *d = t->d;
	const struct deliver_nexthop *nh =
	    deliver_tmap_lookup(d->tmap, t->name);
	size_t l = strlen(t->name);

	route_enter_state(t, ROUTE_RESOLVING);
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
			route_enter_state(t, ROUTE_READY);
			t->route_expires = clock_now() + ROUTE_MAX_AGE;
			route_finish(t);
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
	route_finish(t);
}
