/*
 * test_smtp_reply - reply parser, enhanced codes, EHLO keywords, DATA
 * encoding, xtext and the TLS level scale.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mta/proto/smtp_xtext.h"
#include "mta/smtp/smtp.h"

static struct smtp_reply r;

static const char *
parse(const char *s, size_t *used)
{
	return smtp_reply_parse(s, strlen(s), &r, used);
}

static void
test_reply_table(void)
{
	static const struct {
		const char *in;
		const char *err; /* NULL: ok */
		size_t used; /* 0: incomplete */
		int code;
		const char *status;
		const char *text;
	} t[] = {
	    {"220 mx ESMTP\r\n", NULL, 14, 220, "", "mx ESMTP"},
	    {"250 2.0.0 Ok queued\r\n", NULL, 21, 250, "2.0.0",
	        "2.0.0 Ok queued"},
	    {"550-5.1.1 no\r\n550 5.1.1 such\r\nrest", NULL, 30, 550, "5.1.1",
	        "5.1.1 no\n5.1.1 such"},
	    {"250\r\n", NULL, 5, 250, "", ""},
	    {"250 ok\n", NULL, 7, 250, "", "ok"},
	    {"250-one\r\n", NULL, 0, 0, NULL, NULL},
	    {"250 partial", NULL, 0, 0, NULL, NULL},
	    {"", NULL, 0, 0, NULL, NULL},
	    /* class of the enhanced code must match the reply */
	    {"550 2.0.0 odd\r\n", NULL, 15, 550, "", "2.0.0 odd"},
	    {"451 4.7.1234 long detail\r\n", NULL, 26, 451, "",
	        "4.7.1234 long detail"},
	    {"450 4.2.0\r\n", NULL, 11, 450, "4.2.0", "4.2.0"},
	    {"25 x\r\n", "reply line does not start with a code", 0, 0, NULL,
	        NULL},
	    {"199 x\r\n", "reply code out of range", 0, 0, NULL, NULL},
	    {"260 x\r\n", "reply code out of range", 0, 0, NULL, NULL},
	    {"600 x\r\n", "reply code out of range", 0, 0, NULL, NULL},
	    {"250x\r\n", "bad separator after reply code", 0, 0, NULL, NULL},
	    {"250-a\r\n251 b\r\n", "reply code changes between lines", 0, 0,
	        NULL, NULL},
	};
	size_t i, used;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *err = parse(t[i].in, &used);

		if (t[i].err != NULL) {
			CHECK_STR(err, t[i].err);
			continue;
		}
		CHECK(err == NULL);
		CHECK_INT(used, t[i].used);
		if (used == 0 || err != NULL)
			continue;
		CHECK_INT(r.code, t[i].code);
		CHECK_STR(r.status, t[i].status);
		CHECK_STR(r.text, t[i].text);
	}
}

static void
test_reply_caps(void)
{
	char *big = malloc(200 * 20 + 1024);
	size_t used, i, n;

	/* 511 bytes + CRLF = 513: over the 512 cap. */
	n = 0;
	memcpy(big, "250 ", 4);
	n = 4;
	while (n < 511)
		big[n++] = 'x';
	memcpy(big + n, "\r\n", 3);
	CHECK_STR(parse(big, &used), "reply line too long");
	/* 510 + CRLF = 512 is fine. */
	big[510] = '\r';
	big[511] = '\n';
	big[512] = '\0';
	CHECK(parse(big, &used) == NULL);
	CHECK_INT(used, 512);
	/* No newline within 512 bytes: an error, not "wait for more". */
	memset(big + 4, 'y', 600);
	big[604] = '\0';
	CHECK_STR(parse(big, &used), "reply line too long");
	/* 100 lines are fine, 101 are not. */
	for (n = 0, i = 0; i < 99; i++) {
		memcpy(big + n, "250-l\r\n", 7);
		n += 7;
	}
	memcpy(big + n, "250 e\r\n", 8);
	CHECK(parse(big, &used) == NULL);
	CHECK_INT(r.nlines, 100);
	for (n = 0, i = 0; i < 100; i++) {
		memcpy(big + n, "250-l\r\n", 7);
		n += 7;
	}
	memcpy(big + n, "250 e\r\n", 8);
	CHECK_STR(parse(big, &used), "too many reply lines");
	free(big);
}

static void
test_format(void)
{
	buf_t *b = buf_new(1000);
	size_t used;

	parse("550-5.1.1 a\r\n550 5.1.1 b\x01\r\n", &used);
	smtp_reply_format(&r, b);
	CHECK_STR(buf_data(b), "550 5.1.1 a 5.1.1 b\\x01");
	buf_reset(b);
	parse("250\r\n", &used);
	smtp_reply_format(&r, b);
	CHECK_STR(buf_data(b), "250");
	buf_free(b);
}

static void
test_ehlo(void)
{
	struct smtp_ehlo e;
	size_t used;

	parse("250-mx.example says hi STARTTLS\r\n250-PIPELINING\r\n"
	      "250-size 1000\r\n250-8BITMIME\r\n250-DSN\r\n"
	      "250-STARTTLSX\r\n250 SMTPUTF8\r\n",
	    &used);
	smtp_ehlo_parse(&r, &e);
	CHECK_INT(e.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	                     SMTP_EXT_8BITMIME | SMTP_EXT_DSN |
	                     SMTP_EXT_SMTPUTF8);
	CHECK_INT(e.size, 1000);
	parse("250-mx\r\n250-SIZE\r\n250 STARTTLS\r\n", &used);
	smtp_ehlo_parse(&r, &e);
	CHECK_INT(e.ext, SMTP_EXT_SIZE | SMTP_EXT_STARTTLS);
	CHECK_INT(e.size, 0);
	parse("250 mx only\r\n", &used);
	smtp_ehlo_parse(&r, &e);
	CHECK_INT(e.ext, 0);
}

static void
check_encode(const char *in, const char *want)
{
	buf_t *b = buf_new(0);

	smtp_data_encode(in, strlen(in), b);
	CHECK_STR(buf_data(b), want);
	buf_free(b);
}

static void
test_encode(void)
{
	check_encode("", ".\r\n");
	check_encode("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
	check_encode("a\r\nb", "a\r\nb\r\n.\r\n");
	check_encode(".\r\n", "..\r\n.\r\n");
	check_encode(
	    "x\r\n.hidden\r\n..two\r\n", "x\r\n..hidden\r\n...two\r\n.\r\n");
	/* Bare LF and bare CR become CRLF; the smuggling sequence
	 * "\n.\r\n" inside the body becomes a stuffed line. */
	check_encode("a\nb\rc\r\n", "a\r\nb\r\nc\r\n.\r\n");
	check_encode(
	    "a\n.\r\nMAIL FROM:<x>\r\n", "a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n");
	check_encode("a\r\r\nb", "a\r\n\r\nb\r\n.\r\n");
}

static void
test_xtext(void)
{
	buf_t *b = buf_new(100);

	char dec[16];
	size_t n;

	smtp_xtext_encode("a+b=c d", b);
	CHECK_STR(buf_data(b), "a+2Bb+3Dc+20d");
	/* What the encoder makes, the decoder takes back. */
	CHECK(smtp_xtext_decode(
	          buf_data(b), buf_len(b), dec, sizeof(dec), &n) == NULL);
	CHECK_STR(dec, "a+b=c d");
	CHECK(n == 7);
	CHECK(smtp_xtext_decode("a+2", 3, dec, sizeof(dec), NULL) != NULL);
	CHECK(smtp_xtext_decode("a+zz", 4, dec, sizeof(dec), NULL) != NULL);
	buf_free(b);
	CHECK(smtp_has_8bit("abc\xc3\xa9", 5));
	CHECK(!smtp_has_8bit("abc", 3));
}

static void
test_levels(void)
{
	enum tls_level l;

	CHECK(!tls_level_must_encrypt(TLS_LEV_MAY));
	CHECK(tls_level_must_encrypt(TLS_LEV_ENCRYPT));
	CHECK(!tls_level_must_match(TLS_LEV_ENCRYPT));
	CHECK(tls_level_must_match(TLS_LEV_DANE));
	CHECK(tls_level_must_match(TLS_LEV_STS_ENFORCE));
	CHECK_INT(tls_level_parse("encrypt", &l), 0);
	CHECK_INT(l, TLS_LEV_ENCRYPT);
	CHECK_INT(tls_level_parse("bogus", &l), -1);
	CHECK_STR(tls_level_name(TLS_LEV_DANE), "dane");
	CHECK(smtp_status_valid("5.1.10", 6));
	CHECK(!smtp_status_valid("3.1.1", 5));
	CHECK(!smtp_status_valid("5.1.", 4));
	CHECK(!smtp_status_valid("5.1234.1", 8));
}

int
main(void)
{
	test_reply_table();
	test_reply_caps();
	test_format();
	test_ehlo();
	test_encode();
	test_xtext();
	test_levels();
	return check_done();
}
