/*
 * test_smtp_data - the DATA reader: dot-stuffing, CRLF.CRLF as the only
 * end, the SMTP smuggling sequences (each refused with 554 5.5.2 and
 * never taken as the end), line and size limits, and input in pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mta/proto/smtp_data.h"

struct run {
	const char *error;
	int done;
	size_t used;
	char content[4096];
	size_t clen;
};

/* Feeds wire in pieces of step bytes (0: all at once). */
static void
run(const char *wire, size_t len, size_t step, size_t limit, int forbid,
    struct run *r)
{
	struct smtp_data d;
	buf_t *out = buf_new(0);
	size_t pos = 0;

	smtp_data_init(&d, limit, forbid);
	while (pos < len && !smtp_data_done(&d)) {
		size_t n = step && len - pos > step ? step : len - pos;
		size_t used = smtp_data_feed(&d, wire + pos, n, out);

		pos += used;
		if (used < n)
			break;
	}
	r->done = smtp_data_done(&d);
	r->error = smtp_data_error(&d);
	r->used = pos;
	r->clen = buf_len(out) < sizeof(r->content) ? buf_len(out)
	                                            : sizeof(r->content);
	memcpy(r->content, buf_data(out), r->clen);
	buf_free(out);
}

struct vec {
	const char *name;
	const char *wire;
	size_t len; /* 0: strlen */
	int done;
	const char *content; /* when no error */
	const char *remain; /* unread bytes after the end */
	const char *error; /* prefix of the error reply */
};

static const struct vec vecs[] = {
    {"empty", ".\r\nNEXT\r\n", 0, 1, "", "NEXT\r\n", NULL},
    {"lines", "hello\r\nworld\r\n.\r\nNEXT\r\n", 0, 1, "hello\r\nworld\r\n",
        "NEXT\r\n", NULL},
    {"dots", "..one\r\n...two\r\n.\r\nNEXT\r\n", 0, 1, ".one\r\n..two\r\n",
        "NEXT\r\n", NULL},
    {"dot-stuffed-line", "a\r\n..\r\n.\r\n", 0, 1, "a\r\n.\r\n", "", NULL},
    {"dot-in-middle", "a.b\r\n.x\r\n.\r\n", 0, 1, "a.b\r\nx\r\n", "", NULL},
    {"empty-lines", "\r\n\r\n.\r\n", 0, 1, "\r\n\r\n", "", NULL},
    {"unterminated", "hello\r\n", 0, 0, "hello\r\n", NULL, NULL},
    {"split-dot", "hello\r\n.", 0, 0, "hello\r\n", NULL, NULL},
    {"dot-cr-eof", "x\r\n.\r", 0, 0, "x\r\n", NULL, NULL},
    /* Smuggling sequences (vectors smtp-smuggling.json): none ends the
     * data; every one is refused once the real end arrives. */
    {"lf-dot-lf", "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", 0, 1, NULL, "",
        "554 5.5.2"},
    {"lf-dot-cr", "a\n.\rMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"cr-dot-lf", "a\r.\nMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"cr-dot-cr", "a\r.\rMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"lf-dot-crlf", "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n", 0, 1, NULL,
        "QUIT\r\n", "554 5.5.2"},
    {"cr-dot-crlf", "a\r.\r\nMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"crlf-dot-lf", "a\r\n.\nMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"crlf-dot-cr", "a\r\n.\rMAIL\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"crlf-nul-dot-crlf", "a\r\n\0.\r\nMAIL\r\n.\r\n", 16, 1, NULL, "",
        "554 5.6.0"},
    {"crlf-dot-nul-crlf", "a\r\n.\0\r\nMAIL\r\n.\r\n", 16, 1, NULL, "",
        "554 5.6.0"},
    {"crlf-dot-cr-crlf", "a\r\n.\r\r\nMAIL\r\n.\r\n", 0, 1, NULL, "",
        "554 5.5.2"},
    {"crcrlf-dot-crcrlf", "a\r\r\n.\r\r\nMAIL\r\n.\r\n", 0, 1, NULL, "",
        "554 5.5.2"},
    {"bare-lf-at-start", "\n.\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"bare-cr-at-start", "\r.\r\n.\r\n", 0, 1, NULL, "", "554 5.5.2"},
    {"gosmtp-dot-cr", ".\rx\r\n.\r\nNEXT", 0, 1, NULL, "NEXT",
        "554 5.5.2 Error: bare <CR>"},
    {"aiosmtpd", "Subject: A test\r\n\r\nTesting\n.\r\nNO SMUGGLING\n\r\n.\r\n",
        0, 1, NULL, "", "554 5.5.2 Error: bare <LF>"},
};

static void
test_vectors(void)
{
	size_t i, step;
	static const size_t steps[] = {0, 1, 2, 3, 7};

	for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		const struct vec *v = &vecs[i];
		size_t len = v->len ? v->len : strlen(v->wire);

		for (step = 0; step < sizeof(steps) / sizeof(steps[0]);
		     step++) {
			struct run r;
			int ok = 1;

			run(v->wire, len, steps[step], 0, 1, &r);
			if (r.done != v->done)
				ok = 0;
			if (v->error) {
				if (!r.error || strncmp(r.error, v->error,
				                    strlen(v->error)) != 0)
					ok = 0;
			} else if (r.error) {
				ok = 0;
			}
			if (v->content &&
			    (r.clen != strlen(v->content) ||
			        memcmp(r.content, v->content, r.clen) != 0))
				ok = 0;
			if (v->remain && (len - r.used != strlen(v->remain) ||
			                     memcmp(v->wire + r.used, v->remain,
			                         len - r.used) != 0))
				ok = 0;
			CHECK(ok);
			if (!ok)
				fprintf(stderr,
				    "  vector %s step %zu: done=%d error=%s "
				    "used=%zu\n",
				    v->name, steps[step], r.done,
				    r.error ? r.error : "(none)", r.used);
		}
	}
}

/* With smtpd_forbid_bare_newline=no the bytes stay content, and still
 * nothing but CRLF.CRLF ends the data. */
static void
test_bare_allowed(void)
{
	struct run r;
	static const char w[] = "first\n.second\r\nx\r.\ry\r\n.\r\nNEXT";

	run(w, strlen(w), 0, 0, 0, &r);
	CHECK(r.done);
	CHECK(r.error == NULL);
	CHECK_INT(r.clen, strlen("first\n.second\r\nx\r.\ry\r\n"));
	CHECK(memcmp(r.content, "first\n.second\r\nx\r.\ry\r\n", r.clen) == 0);
	CHECK_STR(w + r.used, "NEXT");
}

static void
test_line_limit(void)
{
	static char w[3000];
	struct run r;
	size_t n;

	/* 998 bytes + CRLF = 1000: allowed. */
	memset(w, 'a', 998);
	memcpy(w + 998, "\r\n.\r\n", 6);
	run(w, strlen(w), 0, 0, 1, &r);
	CHECK(r.done);
	CHECK(r.error == NULL);
	CHECK_INT(r.clen, 1000);
	/* A stuffed dot counts: ".", then 998 bytes, CRLF = 1001. */
	w[0] = '.';
	memset(w + 1, 'a', 998);
	memcpy(w + 999, "\r\n.\r\n", 6);
	run(w, strlen(w), 0, 0, 1, &r);
	CHECK_STR(r.error, "500 5.5.2 Line too long");
	/* 999 bytes + CRLF: refused, in any piece size. */
	memset(w, 'b', 999);
	memcpy(w + 999, "\r\n.\r\nQUIT\r\n", 12);
	for (n = 0; n < 3; n++) {
		run(w, strlen(w), n * 5, 0, 1, &r);
		CHECK(r.done);
		CHECK_STR(r.error, "500 5.5.2 Line too long");
		CHECK_STR(w + r.used, "QUIT\r\n");
	}
	/* A very long line never ends the data by itself. */
	memset(w, 'c', 2500);
	memcpy(w + 2500, "\r\n.\r\n", 6);
	run(w, strlen(w), 0, 0, 1, &r);
	CHECK(r.done);
	CHECK_STR(r.error, "500 5.5.2 Line too long");
}

static void
test_size_limit(void)
{
	struct run r;
	static const char w[] = "0123456789\r\n0123456789\r\n.\r\nNEXT";

	run(w, strlen(w), 0, 24, 1, &r);
	CHECK(r.done);
	CHECK(r.error == NULL);
	CHECK_INT(r.clen, 24);
	run(w, strlen(w), 0, 23, 1, &r);
	CHECK(r.done);
	CHECK_STR(r.error, "552 5.3.4 Message size exceeds fixed limit");
	CHECK_STR(w + r.used, "NEXT");
	run(w, strlen(w), 3, 23, 1, &r);
	CHECK_STR(r.error, "552 5.3.4 Message size exceeds fixed limit");

	/* Errors come in byte order whatever the pieces: here the size
	 * limit is passed (byte 51) long before the line limit (byte
	 * 1001), so 552 it is, fed whole or in any piece size. */
	{
		static char big[1300];
		size_t k;
		static const size_t steps[] = {0, 1, 7, 999, 1000};

		memset(big, 'x', 1200);
		memcpy(big + 1200, "\r\n.\r\n", 6);
		for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			run(big, 1206, steps[k], 50, 1, &r);
			CHECK(r.done);
			CHECK_STR(r.error,
			    "552 5.3.4 Message size exceeds fixed limit");
		}
	}

	/* The first error is the one reported. */
	run("a\nb\r\n0123456789012345678901234567890\r\n.\r\n", 39, 0, 10, 1,
	    &r);
	CHECK_STR(r.error, "554 5.5.2 Error: bare <LF> received");

	/* A full output buf (its cap) counts as too big, too. */
	{
		struct smtp_data d;
		buf_t *out = buf_new(8);

		smtp_data_init(&d, 0, 1);
		smtp_data_feed(&d, "0123456789\r\n.\r\n", 15, out);
		CHECK(smtp_data_done(&d));
		CHECK_STR(smtp_data_error(&d),
		    "552 5.3.4 Message size exceeds fixed limit");
		buf_free(out);
	}
}

/* Each vector from the shared file's byte sequences, placed inside a
 * message: the reader must not end there. Reads the JSON only to know the
 * file is there; the sequences are hard-coded above from the same list. */
static void
test_shared_vectors_present(void)
{
	const char *dir = getenv("STRICTMTA_VECTORS");
	char path[4096];
	FILE *fp;

	if (dir == NULL) {
		printf("STRICTMTA_VECTORS not set: skipping the presence check "
		       "of smtp-smuggling.json\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/smtp-smuggling.json", dir);
	fp = fopen(path, "r");
	if (fp == NULL) {
		printf("%s absent: skipping\n", path);
		return;
	}
	{
		char text[65536];
		size_t n = fread(text, 1, sizeof(text) - 1, fp);
		static const char *const ids[] = {"lf-dot-lf", "lf-dot-cr",
		    "cr-dot-lf", "cr-dot-cr", "lf-dot-crlf", "cr-dot-crlf",
		    "crlf-dot-lf", "crlf-dot-cr", "crlf-nul-dot-crlf",
		    "crlf-dot-nul-crlf", "crlf-dot-cr-crlf",
		    "crcrlf-dot-crcrlf"};
		size_t i;

		text[n] = '\0';
		/* Every sequence the file names is one we test above. */
		for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			char key[64];

			snprintf(key, sizeof(key), "\"%s\"", ids[i]);
			CHECK(strstr(text, key) != NULL);
		}
	}
	fclose(fp);
}

int
main(void)
{
	test_vectors();
	test_bare_allowed();
	test_line_limit();
	test_size_limit();
	test_shared_vectors_present();
	return check_done();
}
