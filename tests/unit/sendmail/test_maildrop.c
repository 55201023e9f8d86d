/*
 * test_maildrop - the maildrop file: encode/parse round trip, every
 * truncation and a set of malformed files refused, write + read in a
 * temporary folder, no replacement of an existing file.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mta/sendmail/maildrop.h"
#include "mta/util/xalloc.h"

static struct maildrop_msg *
sample(void)
{
	struct maildrop_msg *m = maildrop_msg_new();
	static const char body[] = "Subject: x\r\n\r\nline1\r\n.\r\n..two\r\n";

	free(m->sender);
	m->sender = xstrdup("alice@example.org");
	maildrop_msg_add_rcpt(m, "bob@example.com");
	maildrop_msg_add_rcpt(m, "\"odd:name\"@example.net");
	m->notify = MAILDROP_NOTIFY_SUCCESS | MAILDROP_NOTIFY_FAILURE;
	m->ret = MAILDROP_RET_HDRS;
	m->envid = xstrdup("env-42");
	m->flags = MAILDROP_F_8BITMIME | MAILDROP_F_TLS_OPTIONAL;
	free(m->user);
	m->user = xstrdup("alice");
	m->uid = 1000;
	free(m->content);
	m->content = xmemdup(body, sizeof(body) - 1);
	m->len = sizeof(body) - 1;
	return m;
}

static void
check_same(const struct maildrop_msg *a, const struct maildrop_msg *b)
{
	size_t i;

	CHECK_STR(a->sender, b->sender);
	CHECK_INT(a->nrcpt, b->nrcpt);
	for (i = 0; i < a->nrcpt && i < b->nrcpt; i++)
		CHECK_STR(a->rcpts[i], b->rcpts[i]);
	CHECK_INT(a->notify, b->notify);
	CHECK_INT(a->ret, b->ret);
	CHECK((a->envid == NULL) == (b->envid == NULL));
	if (a->envid && b->envid)
		CHECK_STR(a->envid, b->envid);
	CHECK_INT(a->flags, b->flags);
	CHECK_STR(a->user, b->user);
	CHECK_INT(a->len, b->len);
	CHECK(a->len == b->len && memcmp(a->content, b->content, a->len) == 0);
}

static void
test_round_trip(void)
{
	struct maildrop_msg *m = sample(), *back = NULL;
	buf_t *b = buf_new(0);

	CHECK(maildrop_msg_check(m) == NULL);
	maildrop_encode(m, b);
	CHECK(maildrop_parse(buf_data(b), buf_len(b), &back) == NULL);
	CHECK(back != NULL);
	if (back) {
		check_same(m, back);
		CHECK_INT(back->uid, 1000);
	}
	maildrop_msg_free(back);

	/* The null sender, no optional records, empty content. */
	free(m->sender);
	m->sender = xstrdup("");
	m->notify = 0;
	m->ret = 0;
	free(m->envid);
	m->envid = NULL;
	m->flags = 0;
	free(m->content);
	m->content = xstrdup("");
	m->len = 0;
	buf_reset(b);
	maildrop_encode(m, b);
	CHECK(maildrop_parse(buf_data(b), buf_len(b), &back) == NULL);
	if (back)
		check_same(m, back);
	maildrop_msg_free(back);
	maildrop_msg_free(m);
	buf_free(b);
}

/* The format is fixed: a reader in another language relies on it. */
static void
test_exact_bytes(void)
{
	struct maildrop_msg *m = maildrop_msg_new();
	buf_t *b = buf_new(0);

	free(m->sender);
	m->sender = xstrdup("a@b");
	maildrop_msg_add_rcpt(m, "c@d");
	free(m->user);
	m->user = xstrdup("u");
	m->uid = 7;
	free(m->content);
	m->content = xstrdup("X: y\r\n");
	m->len = 6;
	maildrop_encode(m, b);
	CHECK_STR(
	    buf_data(b), "SMTAMD1\nS3:a@b\nR3:c@d\nU1:u\nI1:7\nC6:X: y\r\n\n");
	maildrop_msg_free(m);
	buf_free(b);
}

static void
test_truncated(void)
{
	struct maildrop_msg *m = sample(), *back;
	buf_t *b = buf_new(0);
	size_t n, refused = 0;

	maildrop_encode(m, b);
	/* Every proper prefix is refused, and nothing leaks or crashes. */
	for (n = 0; n < buf_len(b); n++) {
		back = (struct maildrop_msg *)1;
		if (maildrop_parse(buf_data(b), n, &back) != NULL &&
		    back == NULL)
			refused++;
		else
			maildrop_msg_free(back);
	}
	CHECK_INT(refused, buf_len(b));
	/* And a byte more. */
	buf_putc(b, 'x');
	CHECK_STR(maildrop_parse(buf_data(b), buf_len(b), &back),
	    "data after the content record");
	maildrop_msg_free(m);
	buf_free(b);
}

static void
expect_bad(const char *file, const char *why)
{
	struct maildrop_msg *back = NULL;
	const char *got = maildrop_parse(file, strlen(file), &back);

	CHECK_STR(got, why);
	CHECK(back == NULL);
	maildrop_msg_free(back);
}

static void
test_garbage(void)
{
	expect_bad("", "not a maildrop file (bad magic or version)");
	expect_bad("SMTAMD2\n", "not a maildrop file (bad magic or version)");
	expect_bad("SMTAMD1\n", "truncated: no content record");
	expect_bad("SMTAMD1\nS01:a\n", "bad record length");
	expect_bad("SMTAMD1\nS:a\n", "bad record length");
	expect_bad("SMTAMD1\nS99999999999:a\n", "bad record length");
	expect_bad("SMTAMD1\nS-1:a\n", "bad record length");
	expect_bad("SMTAMD1\nS3:a\n", "truncated record");
	expect_bad("SMTAMD1\nS1:ab", "truncated record");
	expect_bad("SMTAMD1\ns1:a\n", "bad record tag");
	expect_bad("SMTAMD1\nZ1:a\n", "unknown record tag");
	expect_bad("SMTAMD1\nS1:a\nS1:a\n", "duplicate record");
	expect_bad("SMTAMD1\nS1:\n\n", "bad sender record");
	expect_bad("SMTAMD1\nS0:\nR0:\n", "bad recipient record");
	expect_bad("SMTAMD1\nS0:\nR3:a\rb\n", "bad recipient record");
	expect_bad("SMTAMD1\nR1:a\nS0:\n", "records out of order");
	expect_bad("SMTAMD1\nS0:\nR1:a\nU1:u\nR1:b\n", "records out of order");
	expect_bad("SMTAMD1\nS0:\nR1:a\nN1:0\n", "bad notify record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nN1:3\n", "bad notify record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nN2:16\n", "bad notify record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nT1:3\n", "bad ret record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nE3:a b\n", "bad envid record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nF2:16\n", "bad flags record");
	expect_bad(
	    "SMTAMD1\nS0:\nR1:a\nU1:u\nI10:4294967296\n", "bad uid record");
	expect_bad(
	    "SMTAMD1\nS0:\nR1:a\nU1:u\nI1:0\nC2:a\n\n", "bare LF in content");
	expect_bad(
	    "SMTAMD1\nS0:\nR1:a\nU1:u\nI1:0\nC3:a\rb\n", "bare CR in content");
	{
		struct maildrop_msg *m = NULL;
		static const char f[] = "SMTAMD1\nS0:\nR1:a\nU1:u\nI1:0\n"
		                        "C4:\0a\r\n\n";

		CHECK_STR(
		    maildrop_parse(f, sizeof(f) - 1, &m), "NUL in content");
		CHECK(m == NULL);
	}
	expect_bad("SMTAMD1\nS0:\nR1:a\nU1:u\nI1:0\nC1:a\n",
	    "content does not end in CRLF");
	expect_bad("SMTAMD1\nR1:a\nU1:u\nI1:0\nC0:\n", "no sender record");
	expect_bad("SMTAMD1\nS0:\nU1:u\nI1:0\nC0:\n", "no recipient record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nI1:0\nC0:\n", "no user record");
	expect_bad("SMTAMD1\nS0:\nR1:a\nU1:u\nC0:\n", "no uid record");
	/* The smallest valid file. */
	{
		struct maildrop_msg *m = NULL;
		const char *f = "SMTAMD1\nS0:\nR1:a\nU0:\nI1:0\nC0:\n";

		CHECK(maildrop_parse(f, strlen(f), &m) == NULL);
		CHECK(m != NULL && m->nrcpt == 1 && m->len == 0);
		maildrop_msg_free(m);
	}
}

static void
test_check(void)
{
	struct maildrop_msg *m = sample();

	m->notify = MAILDROP_NOTIFY_NEVER | MAILDROP_NOTIFY_DELAY;
	CHECK_STR(maildrop_msg_check(m), "bad DSN NOTIFY value");
	m->notify = 0;
	free(m->content);
	m->content = xstrdup("a\nb\r\n");
	m->len = 5;
	CHECK_STR(maildrop_msg_check(m), "bare LF in content");
	maildrop_msg_free(m);
}

static int
count_files(const char *dir, int *tmp)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	*tmp = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, MAILDROP_TMP_PREFIX,
		        strlen(MAILDROP_TMP_PREFIX)) == 0)
			(*tmp)++;
		else if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

static void
test_write_read(void)
{
	char dir[] = "/tmp/strictmta-maildrop-XXXXXX";
	char qid[QID_SIZE], qid2[QID_SIZE], path[256];
	struct maildrop_msg *m = sample(), *back = NULL;
	buf_t *err = buf_new(4096);
	struct stat st;
	int tmp;

	CHECK(mkdtemp(dir) != NULL);
	CHECK_INT(maildrop_write(dir, m, qid, err), 0);
	CHECK_STR(buf_data(err), "");
	CHECK(qid_valid(qid));
	snprintf(path, sizeof(path), "%s/%s", dir, qid);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
	CHECK_INT(maildrop_read(path, &back, err), 0);
	if (back) {
		check_same(m, back);
		/* The file's owner, not the record, gives the uid. */
		CHECK_INT(back->uid, (long)getuid());
	}
	maildrop_msg_free(back);
	back = NULL;
	/* Same ID again: refused, the first file kept. */
	CHECK_INT(maildrop_write_id(dir, m, qid, err), -2);
	CHECK_INT(count_files(dir, &tmp), 1);
	CHECK_INT(tmp, 0);
	CHECK_INT(maildrop_write(dir, m, qid2, err), 0);
	CHECK(strcmp(qid, qid2) != 0);
	CHECK_INT(count_files(dir, &tmp), 2);
	/* A message the daemon could not import is never written. */
	buf_reset(err);
	free(m->content);
	m->content = xstrdup("bare\n");
	m->len = 5;
	CHECK_INT(maildrop_write(dir, m, qid2, err), -1);
	CHECK_STR(buf_data(err), "maildrop: refusing message: bare LF in "
	                         "content");
	CHECK_INT(count_files(dir, &tmp), 2);
	CHECK_INT(tmp, 0);
	/* Missing folder: an error naming the path. */
	buf_reset(err);
	free(m->content);
	m->content = xstrdup("");
	m->len = 0;
	CHECK_INT(maildrop_write("/nonexistent-strictmta", m, qid2, err), -1);
	CHECK(strstr(buf_data(err), "/nonexistent-strictmta/.tmp.") != NULL);
	/* Garbage files are refused by read. */
	snprintf(path, sizeof(path), "%s/garbage", dir);
	{
		FILE *fp = fopen(path, "w");

		fputs("SMTAMD1\nS0:\n", fp);
		fclose(fp);
	}
	buf_reset(err);
	CHECK_INT(maildrop_read(path, &back, err), -1);
	CHECK(back == NULL);
	CHECK(strstr(buf_data(err), "truncated") != NULL);
	buf_reset(err);
	CHECK_INT(maildrop_read(dir, &back, err), -1);
	CHECK(strstr(buf_data(err), "not a regular file") != NULL);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	maildrop_msg_free(m);
	buf_free(err);
}

int
main(void)
{
	test_round_trip();
	test_exact_bytes();
	test_truncated();
	test_garbage();
	test_check();
	test_write_read();
	return check_done();
}
