/*
 * test_smtp_cmd - the SMTP command parsers: line cutting, verbs, paths,
 * ESMTP parameters, xtext, limits and the reply each error gives.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "mta/proto/smtp_cmd.h"
#include "mta/proto/smtp_xtext.h"

static void
test_line_find(void)
{
	size_t ll, used;
	char big[600];

	CHECK_INT(smtp_line_find("NOOP\r\nQUIT\r\n", 12, 512, &ll, &used),
	    SMTP_LINE_OK);
	CHECK_INT(ll, 4);
	CHECK_INT(used, 6);
	CHECK_INT(smtp_line_find("NOOP\nQUIT", 9, 512, &ll, &used),
	    SMTP_LINE_BARE_LF);
	CHECK_INT(ll, 4);
	CHECK_INT(used, 5);
	CHECK_INT(
	    smtp_line_find("NOOP\r", 5, 512, &ll, &used), SMTP_LINE_PARTIAL);
	CHECK_INT(smtp_line_find("", 0, 512, &ll, &used), SMTP_LINE_PARTIAL);
	memset(big, 'a', sizeof(big));
	CHECK_INT(smtp_line_find(big, 512, 512, &ll, &used), SMTP_LINE_TOOLONG);
	CHECK_INT(used, 0);
	big[550] = '\n';
	CHECK_INT(smtp_line_find(big, sizeof(big), 512, &ll, &used),
	    SMTP_LINE_TOOLONG);
	CHECK_INT(used, 551);
	/* 510 bytes + CRLF = 512: exactly at the limit. */
	big[510] = '\r';
	big[511] = '\n';
	CHECK_INT(
	    smtp_line_find(big, sizeof(big), 512, &ll, &used), SMTP_LINE_OK);
	CHECK_INT(ll, 510);
	big[510] = 'a';
	big[511] = 'a';
	big[511] = '\r';
	big[512] = '\n';
	CHECK_INT(smtp_line_find(big, sizeof(big), 512, &ll, &used),
	    SMTP_LINE_TOOLONG);
}

struct verb_case {
	const char *line;
	int verb; /* expected verb on success */
	int code; /* 0: success, else the reply code */
	const char *arg;
};

static const struct verb_case verb_cases[] = {
    {"EHLO mx.example.org", SMTP_VERB_EHLO, 0, "mx.example.org"},
    {"ehlo   client.example  ", SMTP_VERB_EHLO, 0, "client.example"},
    {"HeLo x", SMTP_VERB_HELO, 0, "x"},
    {"EHLO", SMTP_VERB_EHLO, 501, NULL},
    {"MAIL FROM:<a@b.c>", SMTP_VERB_MAIL, 0, "FROM:<a@b.c>"},
    {"RCPT TO:<a@b.c>", SMTP_VERB_RCPT, 0, "TO:<a@b.c>"},
    {"DATA", SMTP_VERB_DATA, 0, NULL},
    {"DATA x", SMTP_VERB_DATA, 501, NULL},
    {"RSET", SMTP_VERB_RSET, 0, NULL},
    {"NOOP", SMTP_VERB_NOOP, 0, NULL},
    {"NOOP hello", SMTP_VERB_NOOP, 0, "hello"},
    {"QUIT", SMTP_VERB_QUIT, 0, NULL},
    {"VRFY postmaster", SMTP_VERB_VRFY, 0, "postmaster"},
    {"VRFY", SMTP_VERB_VRFY, 501, NULL},
    {"HELP", SMTP_VERB_HELP, 0, NULL},
    {"STARTTLS", SMTP_VERB_STARTTLS, 0, NULL},
    {"starttls now", SMTP_VERB_STARTTLS, 501, NULL},
    {"AUTH PLAIN AGZvbwBiYXI=", SMTP_VERB_AUTH, 0, "PLAIN AGZvbwBiYXI="},
    {"EXPN list", SMTP_VERB_UNKNOWN, 502, NULL},
    {"BDAT 10 LAST", SMTP_VERB_UNKNOWN, 502, NULL},
    {"MAILX FROM:<>", SMTP_VERB_UNKNOWN, 502, NULL},
    {"", SMTP_VERB_UNKNOWN, 500, NULL},
    {" NOOP", SMTP_VERB_UNKNOWN, 500, NULL},
    {"NOOP\rQUIT", SMTP_VERB_UNKNOWN, 500, NULL},
    {"MAIL FROM:<a@b>\x00", SMTP_VERB_UNKNOWN, 500, NULL},
    {"NOOP \t", SMTP_VERB_UNKNOWN, 500, NULL},
};

static void
test_verbs(void)
{
	size_t i;

	for (i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]); i++) {
		const struct verb_case *c = &verb_cases[i];
		struct smtp_cmd cmd;
		size_t len = strlen(c->line);
		const char *err;

		if (strstr(c->line, "<a@b>") && c->code == 500)
			len++; /* include the NUL */
		err = smtp_cmd_parse(c->line, len, &cmd);
		if (c->code == 0) {
			CHECK(err == NULL);
			if (err)
				fprintf(stderr, "  case %zu: %s\n", i, err);
			CHECK_INT(cmd.verb, c->verb);
			if (c->arg) {
				CHECK_INT(cmd.arglen, strlen(c->arg));
				CHECK(cmd.arg &&
				      memcmp(cmd.arg, c->arg, cmd.arglen) == 0);
			} else {
				CHECK_INT(cmd.arglen, 0);
			}
		} else {
			CHECK_INT(smtp_reply_code(err), c->code);
			if (smtp_reply_code(err) != c->code)
				fprintf(stderr, "  case %zu: %s\n", i,
				    err ? err : "(null)");
		}
	}
	CHECK_STR(smtp_verb_name(SMTP_VERB_EHLO), "ehlo");
	CHECK_STR(smtp_verb_name(SMTP_VERB_COUNT), "unknown");
}

static void
test_line_limits(void)
{
	char line[13000];
	struct smtp_cmd cmd;

	/* 510 bytes without CRLF is the most a command may have. */
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', sizeof(line) - 5);
	CHECK(smtp_cmd_parse(line, 510, &cmd) == NULL);
	CHECK_INT(smtp_reply_code(smtp_cmd_parse(line, 511, &cmd)), 500);
	/* AUTH lines may be longer (RFC 4954 4). */
	memcpy(line, "AUTH ", 5);
	CHECK(smtp_cmd_parse(line, 2000, &cmd) == NULL);
	CHECK_INT(smtp_reply_code(smtp_cmd_parse(line, 12287, &cmd)), 500);
}

static void
test_helo(void)
{
	CHECK(smtp_cmd_check_helo("mx.example.org", 14) == NULL);
	CHECK(smtp_cmd_check_helo("[127.0.0.1]", 11) == NULL);
	CHECK(smtp_cmd_check_helo("a b", 3) != NULL);
	CHECK(smtp_cmd_check_helo("a(b)", 4) != NULL);
	CHECK(smtp_cmd_check_helo("caf\xc3\xa9", 5) != NULL);
}

struct mail_case {
	const char *arg;
	int code;
	const char *path;
};

static const struct mail_case mail_cases[] = {
    {"FROM:<a@example.org>", 0, "a@example.org"},
    {"from:<a@example.org>", 0, "a@example.org"},
    {"FROM: <a@example.org>", 0, "a@example.org"},
    {"FROM:<>", 0, ""},
    {"FROM:<\"john doe\"@example.org>", 0, "\"john doe\"@example.org"},
    {"FROM:<\"a\\\"b\"@example.org>", 0, "\"a\\\"b\"@example.org"},
    {"FROM:<@relay.example,@r2.example:a@example.org>", 0, "a@example.org"},
    {"FROM:<a@[192.0.2.1]>", 0, "a@[192.0.2.1]"},
    {"FROM:<a@[IPv6:2001:db8::1]>", 0, "a@[IPv6:2001:db8::1]"},
    {"FROM:<a.b+tag@sub.example.org>", 0, "a.b+tag@sub.example.org"},
    {"FROM:<a@example.org> SIZE=1000", 0, "a@example.org"},
    {"FROM:<a@example.org>  BODY=8BITMIME  SMTPUTF8", 0, "a@example.org"},
    {"FROM:<a@example.org> RET=HDRS ENVID=QQ+2B1", 0, "a@example.org"},
    {"FROM:<a@example.org> REQUIRETLS", 0, "a@example.org"},
    {"FROM:<a@example.org> AUTH=<>", 0, "a@example.org"},
    {"FROM:<caf\xc3\xa9@example.org> SMTPUTF8", 0, "caf\xc3\xa9@example.org"},
    {"FROM:<a@b\xc3\xbc.example> SMTPUTF8", 0, "a@b\xc3\xbc.example"},
    {"FROM:a@example.org", 501, NULL},
    {"FROM:<a@example.org", 501, NULL},
    {"FROM:<a>", 501, NULL},
    {"FROM:<a..b@example.org>", 501, NULL},
    {"FROM:<.a@example.org>", 501, NULL},
    {"FROM:<a.@example.org>", 501, NULL},
    {"FROM:<a@-example.org>", 501, NULL},
    {"FROM:<a@example..org>", 501, NULL},
    {"FROM:<a@[300.1.1.1]>", 501, NULL},
    {"FROM:<a b@example.org>", 501, NULL},
    {"FROM:<a@example.org>x", 501, NULL},
    {"TO:<a@example.org>", 501, NULL},
    {"FROM:<postmaster>", 501, NULL},
    {"FROM:<a@example.org> SIZE=", 501, NULL},
    {"FROM:<a@example.org> SIZE=12x", 501, NULL},
    {"FROM:<a@example.org> SIZE=1 SIZE=2", 501, NULL},
    {"FROM:<a@example.org> SIZE=99999999999999999999", 552, NULL},
    {"FROM:<a@example.org> BODY=BINARYMIME", 501, NULL},
    {"FROM:<a@example.org> SMTPUTF8=yes", 501, NULL},
    {"FROM:<a@example.org> RET=ALL", 501, NULL},
    {"FROM:<a@example.org> ENVID=a+2", 501, NULL},
    {"FROM:<a@example.org> ENVID=a+0A", 501, NULL},
    {"FROM:<a@example.org> ENVID=a+2b", 501, NULL},
    {"FROM:<a@example.org> XFOO=1", 555, NULL},
    {"FROM:<a@example.org> =1", 501, NULL},
    {"FROM:<caf\xc3\xa9@example.org>", 553, NULL},
    {"FROM:<caf\xc3@example.org> SMTPUTF8", 553, NULL},
    {"FROM:<a@example.org> REQUIRETLS REQUIRETLS", 501, NULL},
};

static void
test_mail(void)
{
	size_t i;
	struct smtp_mail_args m;
	char buf[400];

	for (i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		const char *err =
		    smtp_cmd_parse_mail(c->arg, strlen(c->arg), &m);

		if (smtp_reply_code(err) != c->code)
			fprintf(stderr, "  mail case %zu (%s): %s\n", i, c->arg,
			    err ? err : "(ok)");
		CHECK_INT(smtp_reply_code(err), c->code);
		if (c->code == 0 && err == NULL)
			CHECK_STR(m.path, c->path);
	}
	/* Parameter values. */
	CHECK(smtp_cmd_parse_mail("FROM:<a@b.example> SIZE=12345 "
	                          "BODY=8bitmime SMTPUTF8 RET=FULL "
	                          "ENVID=ab+2Bc+3Dd REQUIRETLS",
	          strlen("FROM:<a@b.example> SIZE=12345 BODY=8bitmime SMTPUTF8 "
	                 "RET=FULL ENVID=ab+2Bc+3Dd REQUIRETLS"),
	          &m) == NULL);
	CHECK_INT(m.has_size, 1);
	CHECK_INT(m.size, 12345);
	CHECK_INT(m.body, SMTP_BODY_8BITMIME);
	CHECK_INT(m.smtputf8, 1);
	CHECK_INT(m.ret, SMTP_RET_FULL);
	CHECK_INT(m.has_envid, 1);
	CHECK_STR(m.envid, "ab+c=d");
	CHECK_INT(m.requiretls, 1);
	/* Sender-specific enhanced code (RFC 3463 X.1.7). */
	CHECK_STR(smtp_cmd_parse_mail("FROM:<a>", 8, &m),
	    "501 5.1.7 Bad address syntax: domain required");

	/* Length limits: local part 64, domain 255, path 256. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "FROM:<", 6);
	memset(buf + 6, 'l', 64);
	memcpy(buf + 70, "@example.org>", 13);
	CHECK(smtp_cmd_parse_mail(buf, strlen(buf), &m) == NULL);
	memset(buf + 6, 'l', 65);
	memcpy(buf + 71, "@example.org>", 13);
	CHECK_STR(smtp_cmd_parse_mail(buf, strlen(buf), &m),
	    "501 5.1.7 Local part too long");
	/* "<" + 11 + 4 labels of 60 with 3 dots + ">" = 256: allowed;
	 * one more byte in the local part makes 257. */
	{
		int k, n;

		for (k = 0; k < 2; k++) {
			n = snprintf(buf, sizeof(buf), "FROM:<%s@",
			    k ? "aaaaaaaaaaa" : "aaaaaaaaaa");
			memset(buf + n, 'd', 243);
			buf[n + 60] = buf[n + 121] = buf[n + 182] = '.';
			memcpy(buf + n + 243, ">", 2);
			if (k == 0)
				CHECK(smtp_cmd_parse_mail(
				          buf, strlen(buf), &m) == NULL);
			else
				CHECK_STR(
				    smtp_cmd_parse_mail(buf, strlen(buf), &m),
				    "501 5.1.7 Path too long");
		}
	}
}

struct rcpt_case {
	const char *arg;
	int utf8;
	int code;
	const char *path;
	unsigned notify;
	const char *orcpt;
};

static const struct rcpt_case rcpt_cases[] = {
    {"TO:<b@example.org>", 0, 0, "b@example.org", 0, NULL},
    {"TO:<Postmaster>", 0, 0, "postmaster", 0, NULL},
    {"TO:<b@example.org> NOTIFY=SUCCESS,FAILURE", 0, 0, "b@example.org",
        SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, NULL},
    {"TO:<b@example.org> NOTIFY=never", 0, 0, "b@example.org",
        SMTP_NOTIFY_NEVER, NULL},
    {"TO:<b@example.org> NOTIFY=DELAY ORCPT=rfc822;b+40example.org", 0, 0,
        "b@example.org", SMTP_NOTIFY_DELAY, "rfc822;b+40example.org"},
    {"TO:<b@example.org> ORCPT=rfc822;b@example.org", 0, 0, "b@example.org", 0,
        "rfc822;b@example.org"},
    {"TO:<\xc3\xbc@example.org>", 1, 0, "\xc3\xbc@example.org", 0, NULL},
    {"TO:<\xc3\xbc@example.org>", 0, 553, NULL, 0, NULL},
    {"TO:<>", 0, 501, NULL, 0, NULL},
    {"TO:<b>", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> NOTIFY=NEVER,SUCCESS", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> NOTIFY=SUCCESS,", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> NOTIFY=SOMETIMES", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> NOTIFY=DELAY NOTIFY=DELAY", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> ORCPT=rfc822", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> ORCPT=;b@example.org", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> ORCPT=rfc822;b+4", 0, 501, NULL, 0, NULL},
    {"TO:<b@example.org> SIZE=10", 0, 555, NULL, 0, NULL},
    {"FROM:<b@example.org>", 0, 501, NULL, 0, NULL},
};

static void
test_rcpt(void)
{
	size_t i;
	struct smtp_rcpt_args r;

	for (i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		const char *err =
		    smtp_cmd_parse_rcpt(c->arg, strlen(c->arg), c->utf8, &r);

		if (smtp_reply_code(err) != c->code)
			fprintf(stderr, "  rcpt case %zu (%s): %s\n", i, c->arg,
			    err ? err : "(ok)");
		CHECK_INT(smtp_reply_code(err), c->code);
		if (c->code != 0 || err != NULL)
			continue;
		CHECK_STR(r.path, c->path);
		CHECK_INT(r.notify, c->notify);
		CHECK_INT(r.has_orcpt, c->orcpt != NULL);
		if (c->orcpt)
			CHECK_STR(r.orcpt, c->orcpt);
	}
	CHECK_STR(smtp_cmd_parse_rcpt("TO:<b>", 6, 0, &r),
	    "501 5.1.3 Bad address syntax: domain required");
}

static void
test_xtext(void)
{
	char out[8];
	size_t n;

	CHECK(smtp_xtext_decode("a+2Bb", 5, out, sizeof(out), &n) == NULL);
	CHECK_STR(out, "a+b");
	CHECK_INT(n, 3);
	CHECK(smtp_xtext_decode("", 0, out, sizeof(out), &n) == NULL);
	CHECK_INT(n, 0);
	CHECK(smtp_xtext_decode("+", 1, out, sizeof(out), &n) != NULL);
	CHECK(smtp_xtext_decode("+4", 2, out, sizeof(out), &n) != NULL);
	CHECK(smtp_xtext_decode("+4g", 3, out, sizeof(out), &n) != NULL);
	CHECK(smtp_xtext_decode("a=b", 3, out, sizeof(out), &n) != NULL);
	CHECK(smtp_xtext_decode("a b", 3, out, sizeof(out), &n) != NULL);
	CHECK(smtp_xtext_decode("1234567", 7, out, sizeof(out), &n) == NULL);
	CHECK(smtp_xtext_decode("12345678", 8, out, sizeof(out), &n) != NULL);
	CHECK(smtp_utf8_valid("caf\xc3\xa9", 5));
	CHECK(!smtp_utf8_valid("caf\xc3", 4));
	CHECK(!smtp_utf8_valid("\xc0\xaf", 2)); /* overlong */
	CHECK(!smtp_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
	CHECK(smtp_utf8_valid("\xf0\x9f\x98\x80", 4));
	CHECK_INT(smtp_reply_code("250 ok"), 250);
	CHECK_INT(smtp_reply_code("25"), 0);
	CHECK_INT(smtp_reply_code(NULL), 0);
}

int
main(void)
{
	test_line_find();
	test_verbs();
	test_line_limits();
	test_helo();
	test_mail();
	test_rcpt();
	test_xtext();
	return check_done();
}
