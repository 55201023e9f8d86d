/*
 * test_resolver_cache - the resolver without a DNS server: cache expiry
 * with a fake clock, eviction, negative and bogus answers, callbacks only
 * from the loop, cancel, shared queries, config errors.
 *
 * The only network use is a stub upstream on 127.0.0.1:9 (discard), which
 * gives no answer: lookups that miss the cache end as TEMPFAIL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "resolver/resolver.h"

#define T0 2000000000LL

static char anchor_path[64];
static struct event_base *base;

struct got {
	int calls;
	struct resolver_answer a; /* shallow; strings copied below */
	char qname[256], canonical[256], why[256], mx0[256], txt0[256];
	size_t nrr;
	resolver_t *r; /* for callbacks that act on the resolver */
	uint64_t cancel; /* id to cancel from inside the callback */
	int in_lookup; /* set while resolver_lookup() runs */
};

static int in_lookup;

static void
record(void *arg, const struct resolver_answer *a)
{
	struct got *g = arg;

	g->calls++;
	g->in_lookup = in_lookup;
	g->a = *a;
	snprintf(g->qname, sizeof(g->qname), "%s", a->qname);
	snprintf(g->canonical, sizeof(g->canonical), "%s", a->canonical);
	snprintf(g->why, sizeof(g->why), "%s", a->why ? a->why : "");
	g->nrr = a->nrr;
	g->mx0[0] = g->txt0[0] = '\0';
	if (a->nrr > 0 && a->rr[0].type == RESOLVER_MX)
		snprintf(g->mx0, sizeof(g->mx0), "%s", a->rr[0].u.mx.host);
	if (a->nrr > 0 && a->rr[0].type == RESOLVER_TXT)
		snprintf(g->txt0, sizeof(g->txt0), "%.*s",
		    (int)a->rr[0].u.txt.len, a->rr[0].u.txt.text);
	if (g->cancel)
		resolver_cancel(g->r, g->cancel);
}

static uint64_t
lookup(resolver_t *r, const char *name, int type, struct got *g)
{
	uint64_t id;

	in_lookup = 1;
	id = resolver_lookup(r, name, type, record, g);
	in_lookup = 0;
	return id;
}

/*
 * Runs the loop until *done reaches want, for at most about secs seconds
 * (counted in sleeps: clock_now_usec() is frozen by the fake clock).
 */
static void
run_until(const int *done, int want, int secs)
{
	int i;

	for (i = 0; i < secs * 500 && *done < want; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (*done < want)
			usleep(2000);
	}
}

static resolver_t *
new_resolver(const char *cache_size, const char *mode, const char *servers,
    const char *anchors, buf_t *err)
{
	struct config *cfg = config_new();
	resolver_t *r;

	buf_reset(err);
	if (config_set(cfg, "dns_resolver_mode", mode, err) < 0 ||
	    config_set(cfg, "dns_stub_resolvers", servers, err) < 0 ||
	    config_set(cfg, "dnssec_trust_anchor_file", anchors, err) < 0 ||
	    config_set(cfg, "dns_timeout", "1s", err) < 0 ||
	    config_set(cfg, "dns_cache_size", cache_size, err) < 0) {
		fprintf(stderr, "config: %s\n", buf_data(err));
		abort();
	}
	r = resolver_new(base, cfg, err);
	config_free(cfg);
	return r;
}

static resolver_t *
stub_resolver(const char *cache_size)
{
	buf_t *err = buf_new(1024);
	resolver_t *r =
	    new_resolver(cache_size, "stub", "127.0.0.1@9", anchor_path, err);

	if (r == NULL) {
		fprintf(stderr, "resolver_new: %s\n", buf_data(err));
		abort();
	}
	buf_free(err);
	return r;
}

static void
put_mx(resolver_t *r, const char *name, uint32_t ttl, const char *host)
{
	struct resolver_rr rr;
	struct resolver_answer a;

	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_MX;
	rr.u.mx.preference = 10;
	snprintf(rr.u.mx.host, sizeof(rr.u.mx.host), "%s", host);
	memset(&a, 0, sizeof(a));
	a.qname = name;
	a.qtype = RESOLVER_MX;
	a.rcode = RESOLVER_OK;
	a.dnssec = DNSSEC_SECURE;
	a.canonical = name;
	a.cname_secure = 1;
	a.ttl = ttl;
	a.nrr = 1;
	a.rr = &rr;
	resolver_cache_put(r, &a);
}

static void
test_hit_and_expiry(void)
{
	resolver_t *r = stub_resolver("100");
	struct resolver_stats st;
	struct got g = {0};

	clock_set_fake(T0);
	put_mx(r, "Example.ORG.", 300, "mx.example.org");

	lookup(r, "example.org", RESOLVER_MX, &g);
	CHECK_INT(g.calls, 0); /* never from inside resolver_lookup */
	run_until(&g.calls, 1, 5);
	CHECK_INT(g.calls, 1);
	CHECK_INT(g.in_lookup, 0);
	CHECK_INT(g.a.rcode, RESOLVER_OK);
	CHECK_INT(g.a.dnssec, DNSSEC_SECURE);
	CHECK_INT(g.a.ttl, 300);
	CHECK_STR(g.qname, "example.org");
	CHECK_STR(g.mx0, "mx.example.org");

	/* the TTL counts down with the clock */
	clock_set_fake(T0 + 100);
	g.calls = 0;
	lookup(r, "EXAMPLE.org.", RESOLVER_MX, &g);
	run_until(&g.calls, 1, 5);
	CHECK_INT(g.calls, 1);
	CHECK_INT(g.a.ttl, 200);

	clock_set_fake(T0 + 299);
	g.calls = 0;
	lookup(r, "example.org", RESOLVER_MX, &g);
	run_until(&g.calls, 1, 5);
	CHECK_INT(g.a.ttl, 1);
	resolver_get_stats(r, &st);
	CHECK_INT(st.cache_hits, 3);
	CHECK_INT(st.queries, 0);

	/* at the TTL the entry is gone: a real query is asked */
	clock_set_fake(T0 + 300);
	g.calls = 0;
	lookup(r, "example.org", RESOLVER_MX, &g);
	resolver_get_stats(r, &st);
	CHECK_INT(st.cache_hits, 3);
	CHECK_INT(st.queries, 1);
	CHECK_INT(st.lookups, 4);
	/* freeing with a query in flight cancels it, no callback */
	resolver_free(r);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_INT(g.calls, 0);
	clock_set_fake(0);
}

static void
test_cancel(void)
{
	resolver_t *r = stub_resolver("100");
	struct got g1 = {0}, g2 = {0}, g3 = {0};
	uint64_t id1, id2;

	clock_set_fake(T0);
	put_mx(r, "a.example", 60, "mx.a.example");
	id1 = lookup(r, "a.example", RESOLVER_MX, &g1);
	id2 = lookup(r, "a.example", RESOLVER_MX, &g2);
	CHECK(id1 != 0 && id2 != 0 && id1 != id2);
	resolver_cancel(r, id1); /* a cache hit not yet delivered */
	lookup(r, "a.example", RESOLVER_MX, &g3);
	run_until(&g3.calls, 1, 5);
	CHECK_INT(g1.calls, 0);
	CHECK_INT(g2.calls, 1);
	CHECK_INT(g3.calls, 1);
	resolver_cancel(r, id2); /* delivered already: harmless */
	resolver_cancel(r, 999999);

	/* a callback cancels its sibling (same answer, same round) */
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	g1.r = r;
	lookup(r, "a.example", RESOLVER_MX, &g1);
	g1.cancel = lookup(r, "a.example", RESOLVER_MX, &g2);
	run_until(&g1.calls, 1, 5);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_INT(g1.calls, 1);
	CHECK_INT(g2.calls, 0);

	/* a pending query: cancel one of two waiters */
	clock_set_fake(T0 + 1000);
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	id1 = lookup(r, "pending.example", RESOLVER_A, &g1);
	lookup(r, "pending.example", RESOLVER_A, &g2);
	resolver_cancel(r, id1);
	run_until(&g2.calls, 1, 10);
	CHECK_INT(g1.calls, 0);
	CHECK_INT(g2.calls, 1);
	CHECK_INT(g2.a.rcode, RESOLVER_TEMPFAIL);
	resolver_free(r);
	clock_set_fake(0);
}

static void
test_shared_and_tempfail(void)
{
	resolver_t *r = stub_resolver("100");
	struct resolver_stats st;
	struct got g[5];
	int i;

	memset(g, 0, sizeof(g));
	for (i = 0; i < 5; i++)
		lookup(r, "shared.example", RESOLVER_TLSA, &g[i]);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 1);
	CHECK_INT(st.lookups, 5);
	/* all waiters of one query are answered in the same loop turn */
	run_until(&g[0].calls, 1, 10);
	for (i = 0; i < 5; i++) {
		CHECK_INT(g[i].calls, 1);
		CHECK_INT(g[i].in_lookup, 0);
		CHECK_INT(g[i].a.rcode, RESOLVER_TEMPFAIL);
		CHECK_INT(g[i].nrr, 0);
		CHECK(g[i].why[0] != '\0');
	}
	/* a temporary failure is kept for dns_failure_cache_time (10 s):
	 * the next connection does not wait dns_timeout again */
	memset(g, 0, sizeof(g));
	lookup(r, "shared.example", RESOLVER_TLSA, &g[0]);
	run_until(&g[0].calls, 1, 10);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 1);
	CHECK_INT(g[0].a.rcode, RESOLVER_TEMPFAIL);
	/* and asked again once that time is over */
	clock_set_fake(clock_now() + 11);
	memset(g, 0, sizeof(g));
	lookup(r, "shared.example", RESOLVER_TLSA, &g[0]);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 2);
	clock_set_fake(0);
	resolver_free(r);
}

static void
test_negative_bogus_eviction(void)
{
	resolver_t *r = stub_resolver("2");
	struct resolver_answer a;
	struct resolver_rr rr;
	struct resolver_stats st;
	struct got g = {0};

	clock_set_fake(T0);
	memset(&a, 0, sizeof(a));
	a.qname = "gone.example";
	a.qtype = RESOLVER_A;
	a.rcode = RESOLVER_NXDOMAIN;
	a.dnssec = DNSSEC_SECURE;
	a.ttl = 30;
	resolver_cache_put(r, &a);
	lookup(r, "gone.example", RESOLVER_A, &g);
	run_until(&g.calls, 1, 5);
	CHECK_INT(g.a.rcode, RESOLVER_NXDOMAIN);
	CHECK_INT(g.a.ttl, 30);
	CHECK_STR(g.canonical, "gone.example");

	/* TEMPFAIL is not stored; BOGUS is, and keeps no records */
	a.qname = "tmp.example";
	a.rcode = RESOLVER_TEMPFAIL;
	a.dnssec = DNSSEC_INDETERMINATE;
	resolver_cache_put(r, &a);
	a.qname = "bogus.example";
	a.dnssec = DNSSEC_BOGUS;
	a.why = "DNSSEC validation failed (bogus)";
	resolver_cache_put(r, &a);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 0);
	memset(&g, 0, sizeof(g));
	lookup(r, "bogus.example", RESOLVER_A, &g);
	run_until(&g.calls, 1, 5);
	CHECK_INT(g.a.rcode, RESOLVER_TEMPFAIL);
	CHECK_INT(g.a.dnssec, DNSSEC_BOGUS);
	CHECK_STR(g.why, "DNSSEC validation failed (bogus)");
	resolver_get_stats(r, &st);
	CHECK_INT(st.cache_hits, 2);
	CHECK_INT(st.queries, 0);

	/* the cache holds 2: a third answer evicts the oldest */
	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_TXT;
	rr.u.txt.text = "v=STSv1; id=20240101";
	rr.u.txt.len = strlen(rr.u.txt.text);
	a.qname = "_mta-sts.example";
	a.qtype = RESOLVER_TXT;
	a.rcode = RESOLVER_OK;
	a.dnssec = DNSSEC_INSECURE;
	a.why = NULL;
	a.ttl = 60;
	a.nrr = 1;
	a.rr = &rr;
	resolver_cache_put(r, &a);
	rr.u.txt.text = "overwritten"; /* the cache holds its own copy */
	memset(&g, 0, sizeof(g));
	lookup(r, "_mta-sts.example", RESOLVER_TXT, &g);
	run_until(&g.calls, 1, 5);
	CHECK_STR(g.txt0, "v=STSv1; id=20240101");
	memset(&g, 0, sizeof(g));
	lookup(r, "gone.example", RESOLVER_A, &g); /* evicted: a query */
	resolver_get_stats(r, &st);
	CHECK_INT(st.cache_hits, 3);
	CHECK_INT(st.queries, 1);

	/* clear drops everything */
	resolver_cache_clear(r);
	memset(&g, 0, sizeof(g));
	lookup(r, "_mta-sts.example", RESOLVER_TXT, &g);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 2);
	resolver_free(r);
	clock_set_fake(0);
}

static void
test_bad_lookups(void)
{
	resolver_t *r = stub_resolver("0");
	struct got g = {0}, h = {0};
	struct resolver_stats st;
	uint64_t id;

	put_mx(r, "nocache.example", 60, "mx"); /* cache size 0: dropped */
	lookup(r, "bad..name", RESOLVER_MX, &g);
	lookup(r, "x.example", 2 /* NS */, &h);
	CHECK_INT(g.calls + h.calls, 0);
	run_until(&h.calls, 1, 5);
	CHECK_INT(g.calls, 1);
	CHECK_INT(g.a.rcode, RESOLVER_TEMPFAIL);
	CHECK_STR(g.why, "invalid domain name");
	CHECK_INT(h.calls, 1);
	CHECK_STR(h.why, "unsupported type");
	memset(&g, 0, sizeof(g));
	id = lookup(r, "nocache.example", RESOLVER_MX, &g);
	resolver_get_stats(r, &st);
	CHECK_INT(st.cache_hits, 0);
	CHECK_INT(st.queries, 1);
	/* no cache: the last cancel withdraws the query from getdns */
	resolver_cancel(r, id);
	memset(&h, 0, sizeof(h));
	lookup(r, "nocache.example", RESOLVER_MX, &h);
	resolver_get_stats(r, &st);
	CHECK_INT(st.queries, 2);
	run_until(&h.calls, 1, 10);
	CHECK_INT(g.calls, 0);
	CHECK_INT(h.calls, 1);
	CHECK_INT(h.a.rcode, RESOLVER_TEMPFAIL);
	resolver_free(r);
}

static void
expect_new_error(const char *mode, const char *servers, const char *anchors,
    const char *want)
{
	buf_t *err = buf_new(1024);
	resolver_t *r = new_resolver("10", mode, servers, anchors, err);

	CHECK(r == NULL);
	if (strstr(buf_data(err), want) == NULL) {
		fprintf(
		    stderr, "error \"%s\" lacks \"%s\"\n", buf_data(err), want);
		CHECK(0);
	}
	resolver_free(r);
	buf_free(err);
}

static void
test_config_errors(void)
{
	char bad[64];
	FILE *fp;
	int fd;

	expect_new_error("stub", "", anchor_path, "empty in stub mode");
	expect_new_error("stub", "1.2.3.4@99999", anchor_path,
	    "dns_stub_resolvers: 1.2.3.4@99999: port out of range");
	expect_new_error("stub", "127.0.0.1 dns.example", anchor_path,
	    "dns.example: not an IPv4 or IPv6 address");
	expect_new_error("stub", "127.0.0.1", "/nonexistent/root.key",
	    "dnssec_trust_anchor_file: /nonexistent/root.key: No such file");
	expect_new_error(
	    "recursive", "", "/nonexistent/root.key", "/nonexistent/root.key");

	snprintf(bad, sizeof(bad), "/tmp/strictmta-ta-XXXXXX");
	fd = mkstemp(bad);
	fp = fdopen(fd, "w");
	fputs(". IN A 127.0.0.1\n", fp);
	fclose(fp);
	expect_new_error(
	    "stub", "127.0.0.1", bad, "record is not DS or DNSKEY");
	unlink(bad);
}

int
main(void)
{
	FILE *fp;
	int fd;

	snprintf(anchor_path, sizeof(anchor_path), "/tmp/strictmta-ta-XXXXXX");
	fd = mkstemp(anchor_path);
	fp = fdopen(fd, "w");
	fputs(". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E88040"
	      "9BBC683457104237C7F8EC8D\n",
	    fp);
	fclose(fp);
	base = event_base_new();

	test_hit_and_expiry();
	test_cancel();
	test_shared_and_tempfail();
	test_negative_bogus_eviction();
	test_bad_lookups();
	test_config_errors();

	event_base_free(base);
	unlink(anchor_path);
	return check_done();
}
