/*
 * test_resolver_conv - from a getdns reply to the resolver's answer
 * (resolver_conv.c). Each case is a DNS message built here, turned into a
 * dict by getdns_wire2msg_dict() as getdns does with what it receives,
 * with the DNSSEC status getdns would add; the answer is compared as
 * resolver_format_answer() prints it.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>

#include "check.h"
#include "mta/util/buf.h"
#include "resolver/resolver_int.h"

/* The table leaves trailing fields zero: that is the point of it. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

enum { AN = 1, NS }; /* sections */
#define T_A 1
#define T_NS 2
#define T_CNAME 5
#define T_SOA 6
#define T_MX 15
#define T_TXT 16
#define T_AAAA 28
#define T_TLSA 52

/*
 * One record. rdata is text for the type: an address (A, AAAA), a name
 * (CNAME, NS), "PREF NAME" (MX), one character-string (TXT), the MINIMUM
 * field (SOA); raw/rawlen, when set, are the RDATA bytes instead.
 */
struct rr_spec {
	int section;
	const char *owner;
	int type;
	uint32_t ttl;
	const char *rdata;
	const char *raw;
	size_t rawlen;
};

#define RRS_MAX 6

struct conv_case {
	const char *what;
	int qtype;
	const char *qname; /* NULL: no question section */
	unsigned rcode;
	uint32_t dnssec; /* GETDNS_DNSSEC_*; 0: no dnssec_status */
	struct rr_spec rr[RRS_MAX];
	const char *want; /* resolver_format_answer() */
};

static const struct conv_case cases[] = {
    {"smallest TTL of the records", T_A, "mx.example", 0, GETDNS_DNSSEC_SECURE,
        {{AN, "mx.example", T_A, 300, "192.0.2.1"},
            {AN, "mx.example", T_A, 200, "192.0.2.2"}},
        "rcode=ok dnssec=secure ttl=200 canonical=mx.example "
        "cname_secure=1 rrs=2\nA 192.0.2.1\nA 192.0.2.2\n"},
    {"other owners and types are not taken", T_A, "mx.example", 0,
        GETDNS_DNSSEC_INSECURE,
        {{AN, "other.example", T_A, 300, "192.0.2.7"},
            {AN, "mx.example", T_AAAA, 300, "2001:db8::1"},
            {AN, "MX.Example", T_A, 300, "192.0.2.1"}},
        "rcode=ok dnssec=insecure ttl=300 canonical=mx.example "
        "cname_secure=1 rrs=1\nA 192.0.2.1\n"},
    {"AAAA", T_AAAA, "mx.example", 0, 0,
        {{AN, "mx.example", T_AAAA, 60, "2001:db8::25"}},
        "rcode=ok dnssec=indeterminate ttl=60 canonical=mx.example "
        "cname_secure=1 rrs=1\nAAAA 2001:db8::25\n"},
    {"CNAME chain, insecure", T_MX, "example", 0, GETDNS_DNSSEC_INSECURE,
        {{AN, "example", T_CNAME, 60, "alias.example"},
            {AN, "alias.example", T_MX, 300, "10 mx.example"},
            {AN, "example", T_MX, 300, "20 wrong.example"}},
        "rcode=ok dnssec=insecure ttl=60 canonical=alias.example "
        "cname_secure=0 rrs=1\nMX 10 mx.example\n"},
    {"CNAME chain, secure", T_MX, "example", 0, GETDNS_DNSSEC_SECURE,
        {{AN, "alias.example", T_MX, 300, "10 mx.example"},
            {AN, "example", T_CNAME, 600, "alias.example"}},
        "rcode=ok dnssec=secure ttl=300 canonical=alias.example "
        "cname_secure=1 rrs=1\nMX 10 mx.example\n"},
    {"null MX", T_MX, "example", 0, GETDNS_DNSSEC_SECURE,
        {{AN, "example", T_MX, 300, "0 ."}},
        "rcode=ok dnssec=secure ttl=300 canonical=example cname_secure=1 "
        "rrs=1\nMX 0 .\n"},
    {"TXT", T_TXT, "_mta-sts.example", 0, GETDNS_DNSSEC_INSECURE,
        {{AN, "_mta-sts.example", T_TXT, 300, "v=STSv1; id=1"}},
        "rcode=ok dnssec=insecure ttl=300 canonical=_mta-sts.example "
        "cname_secure=1 rrs=1\nTXT v=STSv1; id=1\n"},
    {"TLSA", T_TLSA, "_25._tcp.mx.example", 0, GETDNS_DNSSEC_SECURE,
        {{AN, "_25._tcp.mx.example", T_TLSA, 300, NULL, "\3\1\1\xab\x01", 5}},
        "rcode=ok dnssec=secure ttl=300 canonical=_25._tcp.mx.example "
        "cname_secure=1 rrs=1\nTLSA 3 1 1 ab01\n"},
    {"positive TTL capped at a day", T_A, "mx.example", 0, 0,
        {{AN, "mx.example", T_A, 90000, "192.0.2.1"}},
        "rcode=ok dnssec=indeterminate ttl=86400 canonical=mx.example "
        "cname_secure=1 rrs=1\nA 192.0.2.1\n"},
    {"NXDOMAIN: SOA MINIMUM below its TTL", T_A, "no.example", 3,
        GETDNS_DNSSEC_SECURE, {{NS, "example", T_SOA, 3600, "300"}},
        "rcode=nxdomain dnssec=secure ttl=300 canonical=no.example "
        "cname_secure=1 rrs=0\n"},
    {"NODATA: SOA TTL below its MINIMUM", T_MX, "example", 0,
        GETDNS_DNSSEC_INSECURE, {{NS, "example", T_SOA, 120, "300"}},
        "rcode=nodata dnssec=insecure ttl=120 canonical=example "
        "cname_secure=1 rrs=0\n"},
    {"negative TTL capped at three hours", T_MX, "example", 0, 0,
        {{NS, "example", T_SOA, 86400, "86400"}},
        "rcode=nodata dnssec=indeterminate ttl=10800 canonical=example "
        "cname_secure=1 rrs=0\n"},
    {"NODATA without SOA: not cached", T_TLSA, "_25._tcp.mx.example", 0,
        GETDNS_DNSSEC_INSECURE, {{0}},
        "rcode=nodata dnssec=insecure ttl=0 canonical=_25._tcp.mx.example "
        "cname_secure=1 rrs=0\n"},
    {"referral", T_A, "mx.example", 0, GETDNS_DNSSEC_INSECURE,
        {{NS, "example", T_NS, 3600, "ns.example"}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=mx.example "
        "cname_secure=0 rrs=0\nwhy=referral instead of an answer "
        "(upstream does not recurse?)\n"},
    {"SERVFAIL", T_MX, "example", 2, 0, {{0}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=example "
        "cname_secure=0 rrs=0\nwhy=DNS rcode SERVFAIL\n"},
    {"REFUSED", T_MX, "example", 5, GETDNS_DNSSEC_INSECURE, {{0}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=example "
        "cname_secure=0 rrs=0\nwhy=DNS rcode REFUSED\n"},
    {"NOTIMP", T_MX, "example", 4, 0, {{0}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=example "
        "cname_secure=0 rrs=0\nwhy=DNS rcode other (4)\n"},
    {"bogus: no records, kept a minute", T_A, "mx.example", 0,
        GETDNS_DNSSEC_BOGUS, {{AN, "mx.example", T_A, 300, "192.0.2.1"}},
        "rcode=tempfail dnssec=bogus ttl=60 canonical=mx.example "
        "cname_secure=0 rrs=0\nwhy=DNSSEC validation failed (bogus)\n"},
    {"no question", T_A, NULL, 0, GETDNS_DNSSEC_INSECURE, {{0}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=q.example "
        "cname_secure=0 rrs=0\nwhy=malformed reply\n"},
    /* Found by fuzz_resolver_conv: these failures kept the DNSSEC status
     * of the reply, so a TEMPFAIL could say "secure" (resolver.h: a
     * failure other than bogus is indeterminate). */
    {"A record of wrong length", T_A, "mx.example", 0, GETDNS_DNSSEC_INSECURE,
        {{AN, "mx.example", T_A, 300, NULL, "\xc0\x00\x02", 3}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=mx.example "
        "cname_secure=0 rrs=0\nwhy=A record of wrong length\n"},
    {"CNAME loop", T_A, "a.example", 0, GETDNS_DNSSEC_SECURE,
        {{AN, "a.example", T_CNAME, 60, "b.example"},
            {AN, "b.example", T_CNAME, 60, "a.example"}},
        "rcode=tempfail dnssec=indeterminate ttl=0 canonical=a.example "
        "cname_secure=0 rrs=0\nwhy=CNAME chain too long or looping\n"},
};

struct wire {
	unsigned char b[4096];
	size_t n;
};

static void
put(struct wire *w, const void *p, size_t len)
{
	if (w->n + len > sizeof(w->b))
		abort(); /* a test case too large for the builder */
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void
put16(struct wire *w, unsigned v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};

	put(w, b, 2);
}

static void
put32(struct wire *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

static void
put_name(struct wire *w, const char *name)
{
	while (*name && strcmp(name, ".") != 0) {
		size_t n = strcspn(name, ".");
		unsigned char len = (unsigned char)n;

		put(w, &len, 1);
		put(w, name, n);
		name += n;
		if (*name == '.')
			name++;
	}
	put(w, "", 1);
}

static void
put_rdata(struct wire *w, const struct rr_spec *rr)
{
	unsigned char addr[16];
	unsigned char len;

	if (rr->raw) {
		put(w, rr->raw, rr->rawlen);
		return;
	}
	switch (rr->type) {
	case T_A:
		CHECK(inet_pton(AF_INET, rr->rdata, addr) == 1);
		put(w, addr, 4);
		break;
	case T_AAAA:
		CHECK(inet_pton(AF_INET6, rr->rdata, addr) == 1);
		put(w, addr, 16);
		break;
	case T_CNAME:
	case T_NS:
		put_name(w, rr->rdata);
		break;
	case T_MX:
		put16(w, (unsigned)atoi(rr->rdata));
		put_name(w, strchr(rr->rdata, ' ') + 1);
		break;
	case T_TXT:
		len = (unsigned char)strlen(rr->rdata);
		put(w, &len, 1);
		put(w, rr->rdata, len);
		break;
	case T_SOA:
		put_name(w, "ns.example");
		put_name(w, "hostmaster.example");
		put32(w, 1);
		put32(w, 7200);
		put32(w, 3600);
		put32(w, 1209600);
		put32(w, (uint32_t)strtoul(rr->rdata, NULL, 10));
		break;
	default:
		abort();
	}
}

/* The reply dict of a case, as getdns would hand it over. */
static getdns_dict *
build_reply(const struct conv_case *c)
{
	struct wire w = {{0}, 0};
	getdns_dict *reply = NULL;
	size_t i, count[3] = {0, 0, 0}, at;
	int sect;

	put16(&w, 0x1234);
	put16(&w, 0x8180 | c->rcode); /* QR RD RA */
	put16(&w, c->qname ? 1 : 0);
	for (i = 0; i < RRS_MAX && c->rr[i].section; i++)
		count[c->rr[i].section]++;
	put16(&w, (unsigned)count[AN]);
	put16(&w, (unsigned)count[NS]);
	put16(&w, 0);
	if (c->qname) {
		put_name(&w, c->qname);
		put16(&w, (unsigned)c->qtype);
		put16(&w, 1);
	}
	for (sect = AN; sect <= NS; sect++)
		for (i = 0; i < RRS_MAX && c->rr[i].section; i++) {
			if (c->rr[i].section != sect)
				continue;
			put_name(&w, c->rr[i].owner);
			put16(&w, (unsigned)c->rr[i].type);
			put16(&w, 1);
			put32(&w, c->rr[i].ttl);
			at = w.n;
			put16(&w, 0);
			put_rdata(&w, &c->rr[i]);
			w.b[at] = (unsigned char)((w.n - at - 2) >> 8);
			w.b[at + 1] = (unsigned char)(w.n - at - 2);
		}
	CHECK(getdns_wire2msg_dict(w.b, w.n, &reply) == GETDNS_RETURN_GOOD);
	if (reply && c->dnssec)
		getdns_dict_set_int(reply, "dnssec_status", c->dnssec);
	return reply;
}

static void
check_stored(
    const struct resolver_stored *s, const char *what, const char *want)
{
	buf_t *b = buf_new(0);

	resolver_format_answer(&s->a, b);
	if (strcmp(buf_data(b), want) != 0)
		fprintf(stderr, "case '%s':\n%s", what, buf_data(b));
	CHECK_STR(buf_data(b), want);
	buf_free(b);
}

static void
test_replies(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct conv_case *c = &cases[i];
		getdns_dict *reply = build_reply(c);
		struct resolver_stored *s = resolver_stored_new(
		    c->qname ? c->qname : "q.example", c->qtype);

		if (reply == NULL)
			continue;
		resolver_conv_reply(s, reply);
		check_stored(s, c->what, c->want);
		resolver_stored_unref(s);
		getdns_dict_destroy(reply);
	}
}

/* The envelope: status and replies_tree around the reply. */
static void
test_responses(void)
{
	static const struct {
		uint32_t status;
		int replies; /* -1 no replies_tree, 0 empty, 1 the reply */
		const char *want;
	} env[] = {
	    {GETDNS_RESPSTATUS_GOOD, 1,
	        "rcode=ok dnssec=secure ttl=200 canonical=mx.example "
	        "cname_secure=1 rrs=2\nA 192.0.2.1\nA 192.0.2.2\n"},
	    {GETDNS_RESPSTATUS_ALL_BOGUS_ANSWERS, 0,
	        "rcode=tempfail dnssec=bogus ttl=60 canonical=mx.example "
	        "cname_secure=0 rrs=0\nwhy=DNSSEC validation failed "
	        "(bogus)\n"},
	    {GETDNS_RESPSTATUS_ALL_TIMEOUT, 0,
	        "rcode=tempfail dnssec=indeterminate ttl=0 "
	        "canonical=mx.example cname_secure=0 rrs=0\nwhy=DNS "
	        "timeout\n"},
	    {GETDNS_RESPSTATUS_GOOD, -1,
	        "rcode=tempfail dnssec=indeterminate ttl=0 "
	        "canonical=mx.example cname_secure=0 rrs=0\nwhy=no DNS "
	        "reply\n"},
	};
	getdns_dict *reply = build_reply(&cases[0]);
	size_t i;

	CHECK(reply != NULL);
	for (i = 0; reply && i < sizeof(env) / sizeof(env[0]); i++) {
		getdns_dict *resp = getdns_dict_create();
		getdns_list *list = getdns_list_create();
		struct resolver_stored *s =
		    resolver_stored_new("mx.example", T_A);

		getdns_dict_set_int(resp, "status", env[i].status);
		if (env[i].replies > 0)
			getdns_list_set_dict(list, 0, reply);
		if (env[i].replies >= 0)
			getdns_dict_set_list(resp, "replies_tree", list);
		resolver_conv_response(s, resp);
		check_stored(s, "response", env[i].want);
		resolver_stored_unref(s);
		getdns_list_destroy(list);
		getdns_dict_destroy(resp);
	}
	getdns_dict_destroy(reply);
}

/* A copy owns its strings and records and says the same. */
static void
test_copy(void)
{
	getdns_dict *reply = build_reply(&cases[3]); /* CNAME, MX */
	struct resolver_stored *s = resolver_stored_new("example", T_MX), *c;

	CHECK(reply != NULL);
	if (reply == NULL)
		return;
	resolver_conv_reply(s, reply);
	c = resolver_stored_copy(&s->a);
	resolver_stored_unref(s);
	getdns_dict_destroy(reply);
	check_stored(c, "copy", cases[3].want);
	CHECK_INT(c->refs, 1);
	resolver_stored_unref(c);
}

int
main(void)
{
	test_replies();
	test_responses();
	test_copy();
	return check_done();
}
