/*
 * test_tls_policy - the verdict engine, hermetic and table-driven: the
 * resolver's answers come from its own cache (resolver_cache_put; the
 * stub server is a port where nobody listens, so anything not planted
 * would time out and fail the case), the MTA-STS policies from a cache
 * file written first. Each case plants its DNS, asks for one host, and
 * checks the level, the skip status, the source and the reason, as
 * docs/tls-policy.md orders them: DANE, then MTA-STS, then the
 * configured level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "check.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "policy/sts/sts_cache.h"
#include "policy/verdict/tls_policy.h"

static struct event_base *base;
static char dir[64], anchor[128];

static const char *const enforce_policy =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.example\r\n"
    "max_age: 86400\r\n";
static const char *const testing_policy =
    "version: STSv1\r\nmode: testing\r\nmx: mx.testing.example\r\n"
    "max_age: 86400\r\n";

static void
plant(resolver_t *r, const char *name, int type, enum resolver_rcode rcode,
    enum dnssec_status sec, const struct resolver_rr *rrs, size_t n)
{
	struct resolver_answer a;

	memset(&a, 0, sizeof(a));
	a.qname = name;
	a.qtype = type;
	a.rcode = rcode;
	a.dnssec = sec;
	a.canonical = name;
	a.cname_secure = sec == DNSSEC_SECURE;
	a.ttl = 3600;
	a.nrr = n;
	a.rr = rrs;
	resolver_cache_put(r, &a);
}

static void
plant_a(resolver_t *r, const char *name, enum dnssec_status sec)
{
	struct resolver_rr rr;

	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_A;
	rr.u.addr.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.25", rr.u.addr.addr);
	plant(r, name, RESOLVER_A, RESOLVER_OK, sec, &rr, 1);
}

/* One TLSA record: usage selector mtype, then 32 bytes of digest. */
static void
plant_tlsa(resolver_t *r, const char *host, int usage, int selector, int mtype,
    enum resolver_rcode rcode, enum dnssec_status sec)
{
	static unsigned char rdata[3 + 32];
	struct resolver_rr rr;
	char name[300];

	snprintf(name, sizeof(name), "_25._tcp.%s", host);
	rdata[0] = (unsigned char)usage;
	rdata[1] = (unsigned char)selector;
	rdata[2] = (unsigned char)mtype;
	memset(rdata + 3, 0xab, 32);
	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_TLSA;
	rr.u.tlsa.rdata = rdata;
	rr.u.tlsa.len = sizeof(rdata);
	plant(r, name, RESOLVER_TLSA, rcode, sec, &rr,
	    rcode == RESOLVER_OK ? 1 : 0);
}

static void
plant_sts_txt(resolver_t *r, const char *domain, const char *id)
{
	struct resolver_rr rr;
	char name[300], text[64];

	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	if (id == NULL) {
		plant(r, name, RESOLVER_TXT, RESOLVER_NXDOMAIN, DNSSEC_INSECURE,
		    NULL, 0);
		return;
	}
	snprintf(text, sizeof(text), "v=STSv1; id=%s;", id);
	memset(&rr, 0, sizeof(rr));
	rr.type = RESOLVER_TXT;
	rr.u.txt.text = text;
	rr.u.txt.len = strlen(text);
	plant(r, name, RESOLVER_TXT, RESOLVER_OK, DNSSEC_INSECURE, &rr, 1);
}

struct answer {
	int done;
	struct tls_verdict v;
};

static void
on_verdict(void *arg, const struct tls_verdict *v)
{
	struct answer *ans = arg;

	ans->v = *v;
	/* The setup is the connection's to free; the test only looks. */
	if (v->tls_setup_free != NULL)
		v->tls_setup_free(v->tls_setup_arg);
	ans->v.tls_setup_free = NULL;
	ans->done++;
}

struct tcase {
	const char *name;
	const char *level_cfg; /* smtp_tls_security_level */
	const char *domain, *host;
	int nexthop;
	/* DNS planted */
	enum dnssec_status host_sec;
	int tlsa; /* 0 none (NXDOMAIN), 1 usable 3 1 1, 2 unusable 0 0 1,
	             3 bogus */
	const char *sts_id; /* TXT id, or NULL: no _mta-sts record */
	/* expected */
	enum tls_level level;
	const char *status; /* "" to use the host */
	const char *source;
	const char *reason_has; /* NULL: not checked */
	int has_setup;
};

static const struct tcase cases[] = {
    {"DANE-EE usable", "dane", "dane.example", "mx.dane.example", 0,
        DNSSEC_SECURE, 1, NULL, TLS_LEV_DANE, "", "dane", "usable TLSA", 1},
    {"only unusable TLSA: TLS, unauthenticated", "dane", "dane.example",
        "mx2.dane.example", 0, DNSSEC_SECURE, 2, NULL, TLS_LEV_ENCRYPT, "",
        "dane", NULL, 0},
    {"bogus TLSA: the host waits", "dane", "dane.example", "mx3.dane.example",
        0, DNSSEC_SECURE, 3, NULL, TLS_LEV_DANE, "4.7.5", "dane", "TLSA", 0},
    {"insecure host: no DANE, no policy", "dane", "plain.example",
        "mx.plain.example", 0, DNSSEC_INSECURE, 0, NULL, TLS_LEV_MAY, "",
        "config", NULL, 0},
    {"DANE wins over MTA-STS", "dane", "sts.example", "mx4.dane.example", 0,
        DNSSEC_SECURE, 1, "20260101", TLS_LEV_DANE, "", "dane", NULL, 1},
    {"MTA-STS enforce, listed MX", "dane", "sts.example", "mx.sts.example", 0,
        DNSSEC_INSECURE, 0, "20260101", TLS_LEV_STS_ENFORCE, "", "mta-sts",
        "sts-enforce id=20260101", 1},
    {"MTA-STS enforce, MX not listed", "dane", "sts.example",
        "other.sts.example", 0, DNSSEC_INSECURE, 0, "20260101",
        TLS_LEV_STS_ENFORCE, "4.7.5", "mta-sts", "is not listed", 0},
    {"MTA-STS testing: the configured level", "encrypt", "testing.example",
        "mx.testing.example", 0, DNSSEC_INSECURE, 0, "20260102",
        TLS_LEV_ENCRYPT, "", "mta-sts-testing", "sts-testing", 0},
    {"a next hop gets no MTA-STS policy", "dane", "sts.example",
        "relay.example", 1, DNSSEC_INSECURE, 0, "20260101", TLS_LEV_MAY, "",
        "config", NULL, 0},
    {"address literal: no DNS at all", "encrypt", "sts.example", "192.0.2.7", 1,
        DNSSEC_INSECURE, 0, NULL, TLS_LEV_ENCRYPT, "", "config",
        "address literal", 0},
    {"dane-only: no TLSA, the host waits", "dane-only", "plain.example",
        "mx5.plain.example", 0, DNSSEC_INSECURE, 0, NULL, TLS_LEV_MAY, "4.7.5",
        "config", "dane-only", 0},
    {"dane-only: DANE is enough", "dane-only", "dane.example",
        "mx6.dane.example", 0, DNSSEC_SECURE, 1, NULL, TLS_LEV_DANE, "", "dane",
        NULL, 1},
    {"secure: Web PKI for the host", "secure", "plain.example",
        "mx7.plain.example", 0, DNSSEC_INSECURE, 0, NULL, TLS_LEV_SECURE, "",
        "config", NULL, 0},
    {"none: clear where nothing asks", "none", "plain.example",
        "mx8.plain.example", 0, DNSSEC_INSECURE, 0, NULL, TLS_LEV_NONE, "",
        "config", NULL, 0},
    {"none never weakens DANE", "none", "dane.example", "mx9.dane.example", 0,
        DNSSEC_SECURE, 1, NULL, TLS_LEV_DANE, "", "dane", NULL, 1},
};

static void
write_sts_cache(void)
{
	char pdir[128], path[160];
	buf_t *err = buf_new(256);
	struct sts_cache_entry e;
	sts_cache_t *c;

	snprintf(pdir, sizeof(pdir), "%s/policy", dir);
	mkdir(pdir, 0700);
	snprintf(path, sizeof(path), "%s/sts-cache.db", pdir);
	c = sts_cache_open(path, err);
	CHECK(c != NULL);
	memset(&e, 0, sizeof(e));
	snprintf(e.domain, sizeof(e.domain), "sts.example");
	snprintf(e.id, sizeof(e.id), "20260101");
	e.fetched = clock_now();
	e.expires = e.fetched + 86400;
	e.last_used = e.fetched;
	e.body = (char *)enforce_policy;
	e.len = strlen(enforce_policy);
	CHECK(sts_cache_put(c, &e) == 0);
	snprintf(e.domain, sizeof(e.domain), "testing.example");
	snprintf(e.id, sizeof(e.id), "20260102");
	e.body = (char *)testing_policy;
	e.len = strlen(testing_policy);
	CHECK(sts_cache_put(c, &e) == 0);
	sts_cache_close(c);
	buf_free(err);
}

static void
run_case(const struct tcase *tc, SSL_CTX *ctx)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(512);
	resolver_t *r;
	tls_policy_t *tp;
	struct tls_verdict_req req;
	struct answer ans;
	int i;

	config_set(cfg, "queue_directory", dir, err);
	config_set(cfg, "dns_resolver_mode", "stub", err);
	config_set(cfg, "dns_stub_resolvers", "127.0.0.1@9", err);
	config_set(cfg, "dnssec_trust_anchor_file", anchor, err);
	config_set(cfg, "dns_timeout", "1s", err);
	config_set(cfg, "smtp_tls_security_level", tc->level_cfg, err);
	CHECK(buf_len(err) == 0);
	r = resolver_new(base, cfg, err);
	CHECK(r != NULL);
	tp = tls_policy_new(base, cfg, r, err);
	if (tp == NULL) {
		fprintf(stderr, "%s: tls_policy_new: %s\n", tc->name,
		    buf_data(err));
		CHECK(0);
		return;
	}
	tls_policy_use_ctx(tp, ctx);
	plant_a(r, tc->host, tc->host_sec);
	if (tc->tlsa == 1)
		plant_tlsa(r, tc->host, 3, 1, 1, RESOLVER_OK, tc->host_sec);
	else if (tc->tlsa == 2)
		plant_tlsa(r, tc->host, 0, 0, 1, RESOLVER_OK, tc->host_sec);
	else if (tc->tlsa == 3)
		plant_tlsa(
		    r, tc->host, 3, 1, 1, RESOLVER_TEMPFAIL, DNSSEC_BOGUS);
	else
		plant_tlsa(
		    r, tc->host, 0, 0, 0, RESOLVER_NXDOMAIN, tc->host_sec);
	plant_sts_txt(r, tc->domain, tc->sts_id);
	memset(&req, 0, sizeof(req));
	req.domain = tc->domain;
	req.host = tc->host;
	req.port = 25;
	req.via_mx = !tc->nexthop;
	req.mx_dnssec = tc->host_sec;
	req.host_dnssec = tc->host_sec;
	req.nexthop = tc->nexthop;
	memset(&ans, 0, sizeof(ans));
	CHECK(tls_policy_request(tp, &req, on_verdict, &ans) != 0);
	/* Never from inside the call. */
	CHECK(ans.done == 0);
	/* Planted answers come from zero timers: a few turns, no waiting
	 * (anything asked of the dead server would take dns_timeout). */
	for (i = 0; i < 200 && ans.done == 0; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	if (ans.done != 1) {
		fprintf(
		    stderr, "%s: no verdict from planted answers\n", tc->name);
		CHECK(0);
	} else {
		int ok = ans.v.level == tc->level &&
		         strcmp(ans.v.status, tc->status) == 0 &&
		         ans.v.source != NULL &&
		         strcmp(ans.v.source, tc->source) == 0 &&
		         (tc->reason_has == NULL ||
		             strstr(ans.v.reason, tc->reason_has) != NULL) &&
		         (ans.v.tls_setup != NULL) == tc->has_setup;

		if (!ok)
			fprintf(stderr,
			    "%s: got level=%s status=%s source=%s reason=%s "
			    "setup=%d\n",
			    tc->name, tls_level_name(ans.v.level), ans.v.status,
			    ans.v.source ? ans.v.source : "(null)",
			    ans.v.reason, ans.v.tls_setup != NULL);
		CHECK(ok);
	}
	tls_policy_free(tp);
	resolver_free(r);
	config_free(cfg);
	buf_free(err);
}

int
main(void)
{
	SSL_CTX *ctx;
	FILE *fp;
	int fd;
	size_t i;

	log_open("test_tls_policy", "-");
	snprintf(dir, sizeof(dir), "/tmp/strictmta-verdict-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(anchor, sizeof(anchor), "%s/root.key", dir);
	fd = open(anchor, O_WRONLY | O_CREAT, 0600);
	fp = fdopen(fd, "w");
	fputs(". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E88040"
	      "9BBC683457104237C7F8EC8D\n",
	    fp);
	fclose(fp);
	/* The CA bundle of the MTA-STS fetcher (never used: no fetch). */
	write_sts_cache();
	base = event_base_new();
	ctx = SSL_CTX_new(TLS_client_method());
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], ctx);
	SSL_CTX_free(ctx);
	event_base_free(base);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	return check_done();
}
