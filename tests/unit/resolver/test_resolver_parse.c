/*
 * test_resolver_parse - the resolver's pure parsers: TXT joining, wire
 * names, upstream addresses, trust anchor text, type names.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "mta/util/buf.h"
#include "resolver/resolver.h"

static void
test_txt(void)
{
	static const struct {
		const char *rdata;
		size_t len;
		const char *want; /* NULL: expect an error */
		size_t wantlen;
	} cases[] = {
	    {"\x0bv=STSv1; id", 12, "v=STSv1; id", 11},
	    /* RFC 8461 3.1: strings of one record are joined as is */
	    {"\x08v=STSv1;\x05 id=1", 15, "v=STSv1; id=1", 13},
	    {"\x00", 1, "", 0},
	    {"\x03"
	     "a\0b",
	        4, "a\0b", 3},
	    {"", 0, NULL, 0},
	    {"\x05"
	     "abc",
	        4, NULL, 0},
	    {"\x02"
	     "ab\x02"
	     "c",
	        5, NULL, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_t *b = buf_new(0);
		const char *e = resolver_txt_join(
		    (const unsigned char *)cases[i].rdata, cases[i].len, b);

		if (cases[i].want == NULL) {
			CHECK(e != NULL);
		} else {
			CHECK(e == NULL);
			CHECK_INT(buf_len(b), cases[i].wantlen);
			CHECK(memcmp(buf_data(b), cases[i].want,
			          cases[i].wantlen) == 0);
		}
		buf_free(b);
	}
	/* The cap of the output buffer is honoured. */
	{
		buf_t *b = buf_new(4);

		CHECK(resolver_txt_join(
		          (const unsigned char *)"\x05hello", 6, b) != NULL);
		buf_free(b);
	}
}

static void
expect_name(const char *wire, size_t len, const char *want)
{
	buf_t *b = buf_new(1024);
	const char *e =
	    resolver_name_from_wire((const unsigned char *)wire, len, b);

	if (want == NULL) {
		CHECK(e != NULL);
	} else {
		CHECK(e == NULL);
		CHECK_STR(buf_data(b), want);
	}
	buf_free(b);
}

static void
test_names(void)
{
	char big[400];
	size_t i;

	expect_name("\0", 1, "");
	expect_name("\x03mx1\x07"
	            "example\x03"
	            "com\0",
	    17, "mx1.example.com");
	expect_name("\x03"
	            "A.b\0",
	    5, "A\\.b");
	expect_name("\x02"
	            "a\\\0",
	    4, "a\\\\");
	expect_name("\x03"
	            "a b\0",
	    5, "a\\032b");
	expect_name("\x01\xff\0", 3, "\\255");
	expect_name("", 0, NULL); /* empty */
	expect_name("\x03"
	            "abc",
	    4, NULL); /* no root label */
	expect_name("\x05"
	            "ab\0",
	    4, NULL); /* label past end */
	expect_name("\xc0\x0c", 2, NULL); /* compression pointer */
	expect_name("\x40"
	            "a",
	    2, NULL); /* label type 01 */
	/* 5 labels of 63 bytes: longer than 255 */
	for (i = 0; i < 5 * 64; i += 64) {
		big[i] = 63;
		memset(big + i + 1, 'a', 63);
	}
	big[5 * 64] = 0;
	expect_name(big, 5 * 64 + 1, NULL);
	/* 3 labels of 63 and one of 61: 255 bytes, the maximum */
	for (i = 0; i < 3 * 64; i += 64) {
		big[i] = 63;
		memset(big + i + 1, 'a', 63);
	}
	big[192] = 61;
	memset(big + 193, 'b', 61);
	big[254] = 0;
	{
		buf_t *b = buf_new(1024);

		CHECK(resolver_name_from_wire((unsigned char *)big, 255, b) ==
		      NULL);
		CHECK_INT(buf_len(b), 253);
		buf_free(b);
	}
	big[192] = 62;
	memset(big + 193, 'b', 62);
	big[255] = 0;
	expect_name(big, 256, NULL);
}

static void
test_servers(void)
{
	unsigned char addr[16], want[16];
	unsigned port;
	int family;

	CHECK(resolver_parse_server("127.53.0.2", 10, &family, addr, &port) ==
	      NULL);
	CHECK_INT(family, AF_INET);
	CHECK_INT(port, 53);
	CHECK(memcmp(addr, "\x7f\x35\x00\x02", 4) == 0);
	CHECK(resolver_parse_server(
	          "127.0.0.1@5353", 14, &family, addr, &port) == NULL);
	CHECK_INT(port, 5353);
	CHECK(resolver_parse_server("::1@54", 6, &family, addr, &port) == NULL);
	CHECK_INT(family, AF_INET6);
	CHECK_INT(port, 54);
	inet_pton(AF_INET6, "::1", want);
	CHECK(memcmp(addr, want, 16) == 0);
	/* length is honoured: only "10.0.0.1" of the longer string */
	CHECK(resolver_parse_server("10.0.0.1@53x", 8, &family, addr, &port) ==
	      NULL);
	CHECK_INT(port, 53);
	CHECK_STR(resolver_parse_server("", 0, &family, addr, &port),
	    "missing address");
	CHECK_STR(resolver_parse_server("@53", 3, &family, addr, &port),
	    "missing address");
	CHECK_STR(resolver_parse_server("1.2.3.4@", 8, &family, addr, &port),
	    "bad port");
	CHECK_STR(resolver_parse_server("1.2.3.4@0", 9, &family, addr, &port),
	    "port out of range");
	CHECK_STR(
	    resolver_parse_server("1.2.3.4@65536", 13, &family, addr, &port),
	    "port out of range");
	CHECK_STR(resolver_parse_server("1.2.3.4@5x", 10, &family, addr, &port),
	    "bad port");
	CHECK_STR(
	    resolver_parse_server("1.2.3.4@123456", 14, &family, addr, &port),
	    "bad port");
	CHECK_STR(
	    resolver_parse_server("dns.example", 11, &family, addr, &port),
	    "not an IPv4 or IPv6 address");
	CHECK_STR(resolver_parse_server("1.2.3.4.5", 9, &family, addr, &port),
	    "not an IPv4 or IPv6 address");
}

static const char root_ds[] =
    ". IN DS 20326 8 2 "
    "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";

static void
test_anchors(void)
{
	const char *multi = "; root keys\n"
	                    "$TTL 3600\n"
	                    ". IN DS 20326 8 2 ( "
	                    "E06D44B80B8F1D39A95C0B0D7C65D084\n"
	                    "  58E880409BBC683457104237C7F8EC8D )\n"
	                    "test. 3600 IN DNSKEY 257 3 13 "
	                    "Yw1/3GcnZFtWFDOg18eqqpvcOMrK1qSngzS8ODfngMDc55+p"
	                    "kC16cSYBAEOVjBKwSpuIvKUBPEV4OXDnM0BhaQ==\n";
	size_t n;
	int i;

	/* getdns 1.6 once read an uninitialised length here: repeat. */
	for (i = 0; i < 20; i++) {
		CHECK(resolver_check_anchors(root_ds, strlen(root_ds), &n) ==
		      NULL);
		CHECK_INT(n, 1);
	}
	CHECK(resolver_check_anchors(multi, strlen(multi), &n) == NULL);
	CHECK_INT(n, 2);
	CHECK_STR(resolver_check_anchors("", 0, &n), "no DS or DNSKEY records");
	CHECK_STR(resolver_check_anchors("; nothing\n", 10, &n),
	    "no DS or DNSKEY records");
	CHECK_STR(resolver_check_anchors(". IN A 127.0.0.1\n", 17, &n),
	    "record is not DS or DNSKEY");
	CHECK_STR(resolver_check_anchors("x\0y", 3, &n),
	    "NUL byte in trust anchor file");
	CHECK(resolver_check_anchors(". IN DS zz\n", 11, &n) != NULL);
}

static void
test_types(void)
{
	CHECK_INT(resolver_type_from_name("MX"), RESOLVER_MX);
	CHECK_INT(resolver_type_from_name("tlsa"), RESOLVER_TLSA);
	CHECK_INT(resolver_type_from_name("TXT"), RESOLVER_TXT);
	CHECK_INT(resolver_type_from_name("AAAA"), RESOLVER_AAAA);
	CHECK_INT(resolver_type_from_name("A"), RESOLVER_A);
	CHECK_INT(resolver_type_from_name("NS"), 0);
	CHECK_STR(resolver_type_name(RESOLVER_TLSA), "TLSA");
	CHECK(resolver_type_name(2) == NULL);
	CHECK_STR(resolver_dnssec_name(DNSSEC_BOGUS), "bogus");
	CHECK_STR(resolver_rcode_name(RESOLVER_NXDOMAIN), "nxdomain");
}

static void
test_format(void)
{
	static const unsigned char tlsa[] = {3, 1, 1, 0xab, 0x01};
	struct resolver_rr rr[5];
	struct resolver_answer a;
	buf_t *b = buf_new(0);

	memset(rr, 0, sizeof(rr));
	rr[0].type = RESOLVER_MX;
	rr[0].u.mx.preference = 0; /* null MX */
	rr[1].type = RESOLVER_A;
	rr[1].u.addr.family = AF_INET;
	memcpy(rr[1].u.addr.addr, "\xc0\x00\x02\x01", 4);
	rr[2].type = RESOLVER_AAAA;
	rr[2].u.addr.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", rr[2].u.addr.addr);
	rr[3].type = RESOLVER_TXT;
	rr[3].u.txt.text = "v=1\n;x";
	rr[3].u.txt.len = 6;
	rr[4].type = RESOLVER_TLSA;
	rr[4].u.tlsa.rdata = tlsa;
	rr[4].u.tlsa.len = sizeof(tlsa);
	memset(&a, 0, sizeof(a));
	a.qname = a.canonical = "x.example";
	a.rcode = RESOLVER_OK;
	a.dnssec = DNSSEC_INSECURE;
	a.ttl = 42;
	a.nrr = 5;
	a.rr = rr;
	resolver_format_answer(&a, b);
	CHECK_STR(buf_data(b),
	    "rcode=ok dnssec=insecure ttl=42 canonical=x.example "
	    "cname_secure=0 rrs=5\n"
	    "MX 0 .\n"
	    "A 192.0.2.1\n"
	    "AAAA 2001:db8::1\n"
	    "TXT v=1\\x0a;x\n"
	    "TLSA 3 1 1 ab01\n");
	buf_reset(b);
	a.nrr = 0;
	a.rcode = RESOLVER_TEMPFAIL;
	a.dnssec = DNSSEC_BOGUS;
	a.why = "DNSSEC validation failed (bogus)";
	resolver_format_answer(&a, b);
	CHECK_STR(buf_data(b),
	    "rcode=tempfail dnssec=bogus ttl=42 canonical=x.example "
	    "cname_secure=0 rrs=0\n"
	    "why=DNSSEC validation failed (bogus)\n");
	buf_free(b);
}

int
main(void)
{
	test_txt();
	test_names();
	test_servers();
	test_anchors();
	test_types();
	test_format();
	return check_done();
}
