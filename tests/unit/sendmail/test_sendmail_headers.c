/*
 * test_sendmail_headers - the stdin reader (dot handling, line endings,
 * mbox From lines), address lists (display names, comments, groups,
 * folding), -t extraction, Bcc removal, added headers, and a whole
 * submission into a temporary maildrop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "mta/sendmail/sendmail.h"
#include "mta/util/xalloc.h"

static char *
read_all(int dot_ends, const char *in, size_t chunk, int *status)
{
	struct sendmail_reader *r = sendmail_reader_new(dot_ends, 1 << 20);
	size_t len = strlen(in), off = 0;
	char *out;
	int rc = 0;

	/* Feed in pieces, to catch state lost between calls. */
	while (off < len && rc == 0) {
		size_t n = len - off < chunk ? len - off : chunk;

		rc = sendmail_reader_feed(r, in + off, n);
		off += n;
	}
	if (status)
		*status = rc;
	out = sendmail_reader_finish(r, NULL);
	sendmail_reader_free(r);
	return out;
}

static void
expect_read(int dot_ends, const char *in, const char *want, int want_status)
{
	size_t chunks[] = {1, 2, 3, 7, 4096};
	size_t i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		int st;
		char *got = read_all(dot_ends, in, chunks[i], &st);

		CHECK_STR(got, want);
		CHECK_INT(st, want_status);
		free(got);
	}
}

static void
test_reader(void)
{
	/* sendmail-cli.json behaviour vectors. */
	expect_read(1, "Subject: x\n\nline1\n.\nline3\n",
	    "Subject: x\r\n\r\nline1\r\n", 1);
	expect_read(0, "Subject: x\n\nline1\n.\nline3\n",
	    "Subject: x\r\n\r\nline1\r\n.\r\nline3\r\n", 0);
	expect_read(0, "Subject: x\n\n.\n", "Subject: x\r\n\r\n.\r\n", 0);
	expect_read(1, "Subject: x\n\n..two dots\n",
	    "Subject: x\r\n\r\n..two dots\r\n", 0);
	expect_read(1, "Subject: x\n\n. \nmore\n",
	    "Subject: x\r\n\r\n. \r\nmore\r\n", 0);
	expect_read(1, "Subject: x\r\n\r\nline1\r\n.\r\nline3\r\n",
	    "Subject: x\r\n\r\nline1\r\n", 1);
	expect_read(
	    1, "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n", 0);
	expect_read(1,
	    "From someone@example.com Fri Jan  5 12:55:00 2024\n"
	    "Subject: x\n\nbody\n",
	    "Subject: x\r\n\r\nbody\r\n", 0);
	expect_read(1, ">From a\n>>From b\nSubject: x\n\nFrom here\n",
	    "Subject: x\r\n\r\nFrom here\r\n", 0);
	/* Our own choices: bare CR, no final newline, mixed endings. */
	expect_read(1, "a\rb\r\r\nc", "a b \r\nc\r\n", 0);
	expect_read(1, "a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n", 0);
	{
		struct sendmail_reader *r = sendmail_reader_new(1, 100);
		char *out;
		size_t len;

		CHECK_INT(sendmail_reader_feed(r, "a\0b\n", 4), 0);
		out = sendmail_reader_finish(r, &len);
		CHECK_INT(len, 5);
		CHECK(memcmp(out, "a b\r\n", 5) == 0);
		free(out);
		sendmail_reader_free(r);
	}
	expect_read(1, "", "", 0);
	expect_read(1, ".", "", 0);
	expect_read(1, "x\n.", "x\r\n", 0);
	/* The size cap. */
	{
		struct sendmail_reader *r = sendmail_reader_new(1, 10);
		char *out;

		CHECK_INT(sendmail_reader_feed(r, "12345\n", 6), 0);
		CHECK_INT(sendmail_reader_feed(r, "123\n", 4), -1);
		out = sendmail_reader_finish(r, NULL);
		free(out);
		sendmail_reader_free(r);
	}
}

static void
expect_list(const char *in, const char *want_err, const char *want)
{
	char **list = NULL;
	size_t n = 0, i;
	buf_t *joined = buf_new(0);
	const char *err = sendmail_addrlist_parse(in, strlen(in), &list, &n);

	for (i = 0; i < n; i++) {
		buf_printf(joined, "%s%s", i ? "|" : "", list[i]);
		free(list[i]);
	}
	free(list);
	if (want_err == NULL)
		CHECK(err == NULL);
	else
		CHECK_STR(err, want_err);
	if (want != NULL)
		CHECK_STR(buf_data(joined), want);
	buf_free(joined);
}

static void
test_addrlist(void)
{
	expect_list("a@example.com", NULL, "a@example.com");
	expect_list("a@example.com, b@example.com", NULL,
	    "a@example.com|b@example.com");
	expect_list("Alice <a@example.com>, \"Bob, Jr.\" <b@example.com>", NULL,
	    "a@example.com|b@example.com");
	expect_list(
	    "a@example.com (Alice, the (first))", NULL, "a@example.com");
	expect_list("(c) a@example.com", NULL, "a@example.com");
	expect_list("Friends: a@example.com, B <b@example.com>;, c@x", NULL,
	    "a@example.com|b@example.com|c@x");
	expect_list("undisclosed-recipients:;", NULL, "");
	expect_list("<@relay.example:a@example.com>", NULL, "a@example.com");
	expect_list(
	    "\"john doe\"@example.com", NULL, "\"john doe\"@example.com");
	expect_list("a@[192.0.2.1]", NULL, "a@[192.0.2.1]");
	expect_list("a@example.com,\r\n\tb@example.com", NULL,
	    "a@example.com|b@example.com");
	expect_list("<>", NULL, "");
	expect_list(",,a,,", NULL, "a");
	expect_list("root", NULL, "root");
	expect_list("Team: a@x", NULL, "a@x");
	expect_list("a@x (oops", "unterminated comment", NULL);
	expect_list("\"oops", "unterminated quoted string", NULL);
	expect_list("<a@x", "unterminated '<'", NULL);
	expect_list("a@x>", "unbalanced '>'", NULL);
	expect_list("<<a@x>>", "nested '<'", NULL);
	expect_list("a;", "';' outside a group", NULL);
	expect_list("((((((((((((((((((((((((((((((((((x))))))))))))))))))))))"
	            "))))))))))))",
	    "comments nested too deeply", NULL);
}

static void
test_qualify(void)
{
	char *q;

	CHECK_STR(
	    (q = sendmail_qualify("root", "example.org")), "root@example.org");
	free(q);
	CHECK_STR((q = sendmail_qualify("<a@b>", "example.org")), "a@b");
	free(q);
	CHECK_STR((q = sendmail_qualify("", "example.org")), "");
	free(q);
	CHECK_STR((q = sendmail_qualify("\"a@b\"", "example.org")),
	    "\"a@b\"@example.org");
	free(q);
	CHECK((q = sendmail_qualify("a\nb@c", "x")) == NULL);
	CHECK((q = sendmail_qualify("@c", "x")) == NULL);
}

/* The table leaves trailing fields zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct hdr_case {
	const char *in;
	int extract;
	const char *want;
	const char *rcpts;
	int tls_optional;
};

static const struct hdr_case hdr_cases[] = {
    /* t-bcc-removed */
    {"To: a@example.com\r\nCc: b@example.com\r\nBcc: c@example.com\r\n"
     "Subject: x\r\n\r\nbody\r\n",
        1,
        "R: 1\r\nTo: a@example.com\r\nCc: b@example.com\r\n"
        "Subject: x\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\nbody\r\n",
        "a@example.com|b@example.com|c@example.com"},
    /* t-resent-takes-precedence */
    {"To: a@example.com\r\nResent-To: r@example.com\r\n"
     "Resent-Bcc: rb@example.com\r\nSubject: x\r\n\r\nbody\r\n",
        1,
        "R: 1\r\nTo: a@example.com\r\nResent-To: r@example.com\r\n"
        "Subject: x\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\nbody\r\n",
        "r@example.com|rb@example.com"},
    /* Folded To:, case-insensitive names, display names, groups. */
    {"tO: Alice <a@example.com>,\r\n Bob <b@example.com>\r\n"
     "CC: list: c@example.com;\r\nbcc:\r\n\td@example.com\r\n"
     "From: me@x\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
     "Message-ID: <1@x>\r\n\r\nbody\r\n",
        1,
        "R: 1\r\ntO: Alice <a@example.com>,\r\n Bob <b@example.com>\r\n"
        "CC: list: c@example.com;\r\nFrom: me@x\r\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <1@x>\r\n\r\nbody\r\n",
        "a@example.com|b@example.com|c@example.com|d@example.com"},
    /* Without -t: nothing extracted, Bcc still removed (Postfix). */
    {"To: a@example.com\r\nBcc: c@example.com\r\n\r\nbody\r\n", 0,
        "R: 1\r\nTo: a@example.com\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\n"
        "body\r\n",
        ""},
    /* No header at all: an empty line goes between. */
    {"just a body line\r\nmore\r\n", 0,
        "R: 1\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\njust a body line\r\nmore\r\n", ""},
    /* A body that starts without the empty line. */
    {"Subject: x\r\nnot a header\r\n", 0,
        "R: 1\r\nSubject: x\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\n"
        "not a header\r\n",
        ""},
    /* Callers other than the reader may end without CRLF. */
    {"Subject: x\r\n\r\na", 0,
        "R: 1\r\nSubject: x\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\na", ""},
    {"a", 0, "R: 1\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\na", ""},
    /* Empty message. */
    {"", 0, "R: 1\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\n", ""},
    /* Return-Path and Content-Length go; TLS-Required: No is seen. */
    {"Return-Path: <x@y>\r\nContent-Length: 3\r\nTLS-Required:  no \r\n"
     "\r\nb\r\n",
        0, "R: 1\r\nTLS-Required:  no \r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\nb\r\n",
        "", 1},
    /* A header-looking line in the body is body. */
    {"Subject: x\r\n\r\nBcc: stays@example.com\r\n", 1,
        "R: 1\r\nSubject: x\r\nF: 1\r\nD: 1\r\nM: 1\r\n\r\n"
        "Bcc: stays@example.com\r\n",
        ""},
};

static void
test_fix_headers(void)
{
	struct sendmail_hdr_params p = {0, "R: 1", "F: 1", "D: 1", "M: 1"};
	size_t i, j;

	for (i = 0; i < sizeof(hdr_cases) / sizeof(hdr_cases[0]); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		struct sendmail_hdr_result res;
		buf_t *out = buf_new(0), *rc = buf_new(0);

		p.extract = c->extract;
		CHECK(sendmail_fix_headers(
		          c->in, strlen(c->in), &p, out, &res) == NULL);
		CHECK_STR(buf_data(out), c->want);
		for (j = 0; j < res.nrcpt; j++)
			buf_printf(rc, "%s%s", j ? "|" : "", res.rcpts[j]);
		CHECK_STR(buf_data(rc), c->rcpts);
		CHECK_INT(res.tls_optional, c->tls_optional);
		CHECK_INT(res.eightbit, 0);
		sendmail_hdr_result_free(&res);
		buf_free(out);
		buf_free(rc);
	}
	/* A broken recipient header is an error with -t. */
	{
		struct sendmail_hdr_result res;
		buf_t *out = buf_new(0);
		const char *in = "To: <a@x\r\n\r\nb\r\n";

		p.extract = 1;
		CHECK_STR(sendmail_fix_headers(in, strlen(in), &p, out, &res),
		    "unterminated '<'");
		sendmail_hdr_result_free(&res);
		buf_reset(out);
		in = "Subject: caf\xc3\xa9\r\n\r\n";
		CHECK(sendmail_fix_headers(in, strlen(in), &p, out, &res) ==
		      NULL);
		CHECK_INT(res.eightbit, 1);
		sendmail_hdr_result_free(&res);
		buf_free(out);
	}
}

static void
test_format(void)
{
	buf_t *b = buf_new(0);

	sendmail_format_from("Cron Daemon", "root@x", b);
	CHECK_STR(buf_data(b), "Cron Daemon <root@x>");
	buf_reset(b);
	sendmail_format_from("Doe, John", "j@x", b);
	CHECK_STR(buf_data(b), "\"Doe, John\" <j@x>");
	buf_reset(b);
	sendmail_format_from("a \"q\" \\", "j@x", b);
	CHECK_STR(buf_data(b), "\"a \\\"q\\\" \\\\\" <j@x>");
	buf_reset(b);
	/* No header injection through -F. */
	sendmail_format_from("x\r\nBcc: evil@example.com", "j@x", b);
	CHECK(strchr(buf_data(b), '\n') == NULL);
	CHECK(strchr(buf_data(b), '\r') == NULL);
	buf_reset(b);
	sendmail_format_from("", "j@x", b);
	CHECK_STR(buf_data(b), "j@x");
	buf_reset(b);
	sendmail_format_from(NULL, "j@x", b);
	CHECK_STR(buf_data(b), "j@x");
	buf_reset(b);
	setenv("TZ", "UTC", 1);
	tzset();
	sendmail_format_date(1700000000, b);
	CHECK_STR(buf_data(b), "Tue, 14 Nov 2023 22:13:20 +0000");
	buf_reset(b);
	setenv("TZ", "EST5", 1); /* fixed -0500, no DST rules */
	tzset();
	sendmail_format_date(1700000000, b);
	CHECK_STR(buf_data(b), "Tue, 14 Nov 2023 17:13:20 -0500");
	setenv("TZ", "UTC", 1);
	tzset();
	buf_free(b);
}

/* A whole submission from an fd into a temporary maildrop. */
static struct maildrop_msg *
submit(
    const char *dir, const char *input, const char **argv, int *rc, buf_t *err)
{
	struct sendmail_opts o;
	struct sendmail_ident id = {"alice", 1000, "Alice Example"};
	struct config *cfg = config_new();
	buf_t *warn = buf_new(1024), *cfgerr = buf_new(1024);
	struct maildrop_msg *m = NULL;
	char path[512], qid[QID_SIZE], *args[32];
	int argc = 0, fd;
	FILE *fp;

	while (argv[argc] != NULL && argc < 31) {
		args[argc] = (char *)argv[argc];
		argc++;
	}
	args[argc] = NULL;
	config_set(cfg, "queue_directory", dir, cfgerr);
	config_set(cfg, "myhostname", "host.example.org", cfgerr);
	config_set(cfg, "mydomain", "example.org", cfgerr);
	CHECK_INT(sendmail_parse_args(argc, args, &o, err, warn), 0);
	snprintf(path, sizeof(path), "%s/input", dir);
	fp = fopen(path, "w+");
	fputs(input, fp);
	fflush(fp);
	rewind(fp);
	fd = fileno(fp);
	*rc = sendmail_submit(&o, cfg, &id, fd, qid, err);
	fclose(fp);
	unlink(path);
	if (*rc == 0) {
		snprintf(path, sizeof(path), "%s/maildrop/%s", dir, qid);
		CHECK_INT(maildrop_read(path, &m, err), 0);
		unlink(path);
	}
	sendmail_opts_free(&o);
	config_free(cfg);
	buf_free(warn);
	buf_free(cfgerr);
	return m;
}

static int
has_rcpt(const struct maildrop_msg *m, const char *a)
{
	size_t i;

	for (i = 0; m && i < m->nrcpt; i++)
		if (strcmp(m->rcpts[i], a) == 0)
			return 1;
	return 0;
}

static void
test_submit(void)
{
	char dir[] = "/tmp/strictmta-sendmail-XXXXXX", md[512], cmd[600];
	buf_t *err = buf_new(4096);
	struct maildrop_msg *m;
	int rc;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(md, sizeof(md), "%s/maildrop", dir);

	/* No maildrop folder yet: try again later. */
	{
		const char *argv[] = {"sendmail", "a@b", NULL};

		m = submit(dir, "x\n", argv, &rc, err);
		CHECK_INT(rc, EX_TEMPFAIL);
		CHECK(strstr(buf_data(err), "maildrop") != NULL);
	}
	CHECK(mkdir(md, 0700) == 0);
	{
		const char *argv[] = {
		    "sendmail", "-t", "-F", "Cron Daemon", "extra", NULL};

		buf_reset(err);
		m = submit(dir,
		    "To: A <a@example.com>, b\nBcc: c@example.com\n"
		    "Subject: x\n\nbody\n.\nignored\n",
		    argv, &rc, err);
		CHECK_INT(rc, 0);
		CHECK(m != NULL);
		if (m) {
			/* Postfix's choice: arguments are added. */
			CHECK_INT(m->nrcpt, 4);
			CHECK(has_rcpt(m, "extra@example.org"));
			CHECK(has_rcpt(m, "a@example.com"));
			CHECK(has_rcpt(m, "b@example.org"));
			CHECK(has_rcpt(m, "c@example.com"));
			CHECK_STR(m->sender, "alice@example.org");
			CHECK_STR(m->user, "alice");
			CHECK(strstr(m->content, "Bcc") == NULL);
			CHECK(strstr(m->content, "ignored") == NULL);
			CHECK(
			    strstr(m->content,
			        "From: Cron Daemon <alice@example.org>\r\n") !=
			    NULL);
			CHECK(strstr(m->content, "Message-ID: <") != NULL);
			CHECK(strstr(m->content, "@host.example.org>\r\n") !=
			      NULL);
			CHECK(strstr(m->content, "\r\nDate: ") != NULL);
			CHECK(strncmp(m->content,
			          "Received: by host.example.org (strictmta, "
			          "from userid 1000)\r\n",
			          60) == 0);
			CHECK(m->len > 5 && strcmp(m->content + m->len - 8,
			                        "\r\nbody\r\n") == 0);
		}
		maildrop_msg_free(m);
	}
	{
		/* -t argument already in the header: once (duplicates go). */
		const char *argv[] = {"sendmail", "-t", "a@example.com", NULL};

		m = submit(dir, "To: a@example.com, b@example.com\n\nx\n", argv,
		    &rc, err);
		CHECK_INT(rc, 0);
		CHECK(m && m->nrcpt == 2);
		maildrop_msg_free(m);
	}
	{
		const char *argv[] = {"sendmail", "-i", "-f", "<>", "-N",
		    "never", "-R", "hdrs", "-V", "E1", "--", "r@x, s@y", NULL};

		m = submit(dir, "From: Real <real@example.com>\n\n.\n", argv,
		    &rc, err);
		CHECK_INT(rc, 0);
		if (m) {
			CHECK_STR(m->sender, "");
			CHECK_INT(m->nrcpt, 2);
			CHECK_INT(m->notify, MAILDROP_NOTIFY_NEVER);
			CHECK_INT(m->ret, MAILDROP_RET_HDRS);
			CHECK_STR(m->envid, "E1");
			/* The existing From: is kept, -i keeps the dot. */
			CHECK(strstr(m->content,
			          "From: Real <real@example.com>\r\n") != NULL);
			CHECK(strstr(m->content, "From: alice") == NULL);
			CHECK(strstr(m->content, "\r\n\r\n.\r\n") != NULL);
		}
		maildrop_msg_free(m);
	}
	{
		const char *argv[] = {"sendmail", "-t", NULL};

		buf_reset(err);
		m = submit(dir, "Subject: x\n\nbody\n", argv, &rc, err);
		CHECK_INT(rc, EX_USAGE);
		CHECK_STR(buf_data(err),
		    "No recipient addresses found in message header");
	}
	{
		const char *argv[] = {"sendmail", NULL};

		buf_reset(err);
		m = submit(dir, "Subject: x\n\nbody\n", argv, &rc, err);
		CHECK_INT(rc, EX_USAGE);
	}
	{
		const char *argv[] = {"sendmail", "<a@x", NULL};

		buf_reset(err);
		m = submit(dir, "x\n", argv, &rc, err);
		CHECK_INT(rc, EX_USAGE);
	}
	{
		/* -f with a display name; -f "" is the null sender. */
		const char *argv1[] = {
		    "sendmail", "-f", "Joe <joe>", "a@b", NULL};
		const char *argv2[] = {"sendmail", "-f", "", "a@b", NULL};
		const char *argv3[] = {
		    "sendmail", "-f", "a@x, b@y", "a@b", NULL};

		m = submit(dir, "x\n", argv1, &rc, err);
		CHECK_INT(rc, 0);
		CHECK(m && strcmp(m->sender, "joe@example.org") == 0);
		maildrop_msg_free(m);
		m = submit(dir, "x\n", argv2, &rc, err);
		CHECK_INT(rc, 0);
		CHECK(m && strcmp(m->sender, "") == 0);
		maildrop_msg_free(m);
		buf_reset(err);
		m = submit(dir, "x\n", argv3, &rc, err);
		CHECK_INT(rc, EX_USAGE);
		CHECK_STR(buf_data(err), "bad sender address");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	buf_free(err);
}

int
main(void)
{
	test_reader();
	test_addrlist();
	test_qualify();
	test_fix_headers();
	test_format();
	test_submit();
	return check_done();
}
