/*
 * test_sendmail_opts - the command line: every option of
 * shared/vectors/sendmail-cli.json, the exit code for unknown ones, mode
 * by argv[0], "--", clusters and attached arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "check.h"
#include "mta/sendmail/sendmail.h"

/* The table leaves trailing fields zero: that is the point of it. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define ARGS_MAX 16

struct opt_case {
	const char *option; /* the option as named in the vectors, or "" */
	const char *argv[ARGS_MAX];
	int rc;
	enum sendmail_mode mode;
	int extract, dot_ends;
	const char *sender, *fullname, *config, *envid;
	unsigned notify;
	int ret;
	unsigned flags;
	size_t nrcpt;
	const char *first_rcpt;
	int warns; /* a warning expected */
};

#define D SENDMAIL_MODE_DELIVER
static const struct opt_case cases[] = {
    {"-t", {"sendmail", "-t"}, 0, D, 1, 1},
    {"-i", {"sendmail", "-i", "a@b"}, 0, D, 0, 0, .nrcpt = 1},
    {"-oi", {"sendmail", "-oi", "a@b"}, 0, D, 0, 0, .nrcpt = 1},
    {"", {"sendmail", "-o", "i", "a@b"}, 0, D, 0, 0, .nrcpt = 1},
    {"-f", {"sendmail", "-f", "me@x", "a@b"}, 0, D, 0, 1, "me@x", .nrcpt = 1},
    {"", {"sendmail", "-fme@x", "a@b"}, 0, D, 0, 1, "me@x", .nrcpt = 1},
    {"", {"sendmail", "-f", "<>", "a@b"}, 0, D, 0, 1, "<>", .nrcpt = 1},
    {"-r", {"sendmail", "-r", "me@x", "a@b"}, 0, D, 0, 1, "me@x", .nrcpt = 1},
    {"-F", {"sendmail", "-FCronDaemon", "a@b"}, 0, D, 0, 1, NULL, "CronDaemon",
        .nrcpt = 1},
    {"", {"sendmail", "-F", "Cron Daemon", "a@b"}, 0, D, 0, 1, NULL,
        "Cron Daemon", .nrcpt = 1},
    {"-bs", {"sendmail", "-bs"}, 0, SENDMAIL_MODE_SMTP, 0, 1},
    {"-bp", {"sendmail", "-bp"}, 0, SENDMAIL_MODE_LIST, 0, 1},
    {"-bm", {"sendmail", "-bm", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-bi", {"sendmail", "-bi"}, 0, SENDMAIL_MODE_NOOP, 0, 1},
    {"-bv", {"sendmail", "-bv", "a@b"}, EX_USAGE},
    {"", {"sendmail", "-bd"}, EX_USAGE},
    {"-q", {"sendmail", "-q"}, 0, SENDMAIL_MODE_FLUSH, 0, 1},
    {"", {"sendmail", "-q30m"}, 0, SENDMAIL_MODE_NOOP, 0, 1},
    {"", {"sendmail", "-q1h30m"}, 0, SENDMAIL_MODE_NOOP, 0, 1},
    {"", {"sendmail", "-qRexample.com"}, 0, SENDMAIL_MODE_FLUSH, 0, 1},
    {"", {"sendmail", "-qX"}, EX_USAGE},
    {"-v", {"sendmail", "-v", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-N", {"sendmail", "-N", "success,delay", "a@b"}, 0, D, 0, 1,
        .notify = MAILDROP_NOTIFY_SUCCESS | MAILDROP_NOTIFY_DELAY, .nrcpt = 1},
    {"", {"sendmail", "-Nnever", "a@b"}, 0, D, 0, 1,
        .notify = MAILDROP_NOTIFY_NEVER, .nrcpt = 1},
    {"", {"sendmail", "-N", "never,success", "a@b"}, 0, D, 0, 1, .nrcpt = 1,
        .warns = 1},
    {"", {"sendmail", "-N", "sometimes", "a@b"}, 0, D, 0, 1, .nrcpt = 1,
        .warns = 1},
    {"-R", {"sendmail", "-R", "hdrs", "a@b"}, 0, D, 0, 1,
        .ret = MAILDROP_RET_HDRS, .nrcpt = 1},
    {"", {"sendmail", "-RFULL", "a@b"}, 0, D, 0, 1, .ret = MAILDROP_RET_FULL,
        .nrcpt = 1},
    {"", {"sendmail", "-R", "body", "a@b"}, 0, D, 0, 1, .nrcpt = 1, .warns = 1},
    {"-V", {"sendmail", "-V", "envid-1", "a@b"}, 0, D, 0, 1, .envid = "envid-1",
        .nrcpt = 1},
    {"", {"sendmail", "-V", "has space", "a@b"}, 0, D, 0, 1, .nrcpt = 1,
        .warns = 1},
    {"-oem", {"sendmail", "-oem", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-oep", {"sendmail", "-oep", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-odi", {"sendmail", "-odi", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-odb", {"sendmail", "-odb", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-B", {"sendmail", "-B", "8BITMIME", "a@b"}, 0, D, 0, 1,
        .flags = MAILDROP_F_8BITMIME, .nrcpt = 1},
    {"", {"sendmail", "-B7BIT", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"", {"sendmail", "-B", "8bitmime", "a@b"}, EX_USAGE},
    {"", {"sendmail", "-SMTPUTF8", "a@b"}, 0, D, 0, 1,
        .flags = MAILDROP_F_SMTPUTF8, .nrcpt = 1},
    {"-n", {"sendmail", "-n", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-G", {"sendmail", "-G", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-h", {"sendmail", "-h", "30", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-m", {"sendmail", "-m", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-U", {"sendmail", "-U", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-om", {"sendmail", "-om", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"-C", {"sendmail", "-C", "/x/main.cf", "a@b"}, 0, D, 0, 1,
        .config = "/x/main.cf", .nrcpt = 1},
    {"-oA", {"sendmail", "-oA/etc/aliases", "-bi"}, 0, SENDMAIL_MODE_NOOP, 0,
        1},
    {"-X", {"sendmail", "-X", "/tmp/log", "a@b"}, 0, D, 0, 1, .nrcpt = 1},
    {"--", {"sendmail", "-i", "--", "-not-an-option@example.com"}, 0, D, 0, 0,
        .nrcpt = 1, .first_rcpt = "-not-an-option@example.com"},
    /* Clusters, permutation, errors. */
    {"", {"sendmail", "-ti"}, 0, D, 1, 0},
    {"", {"sendmail", "-tif", "me@x"}, 0, D, 1, 0, "me@x"},
    {"", {"sendmail", "a@b", "-f", "me@x", "c@d"}, 0, D, 0, 1, "me@x",
        .nrcpt = 2, .first_rcpt = "a@b"},
    {"", {"sendmail", "-Z", "a@b"}, EX_USAGE},
    {"", {"sendmail", "-iZ", "a@b"}, EX_USAGE},
    {"", {"sendmail", "-f"}, EX_USAGE},
    {"", {"sendmail", "-t", "-bp"}, EX_USAGE},
    {"", {"sendmail", "-t", "-bs"}, EX_USAGE},
    {"", {"/usr/bin/mailq"}, 0, SENDMAIL_MODE_LIST, 0, 1},
    {"", {"newaliases"}, 0, SENDMAIL_MODE_NOOP, 0, 1},
    /* Real callers (sendmail-cli.json real_callers). */
    {"",
        {"sendmail", "-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f",
            "root"},
        0, D, 1, 0, "root", "CronDaemon"},
    {"", {"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}, 0, D,
        0, 0, NULL, "CronDaemon", .flags = MAILDROP_F_8BITMIME, .nrcpt = 1},
    {"",
        {"/usr/sbin/sendmail", "-oem", "-oi", "-f", "me@x", "-N",
            "failure,delay", "-R", "hdrs", "-V", "abc", "--", "a@b", "c@d"},
        0, D, 0, 0, "me@x", .notify = 12, .ret = MAILDROP_RET_HDRS,
        .envid = "abc", .nrcpt = 2},
    {"", {"sendmail", "-i", "-f", "me@x", "a@b", "c@d"}, 0, D, 0, 0, "me@x",
        .nrcpt = 2},
    {"", {"sendmail", "-t", "-i"}, 0, D, 1, 0},
    {"", {"sendmail", "-i", "-m", "-v", "a@b"}, 0, D, 0, 0, .nrcpt = 1},
    {"", {"sendmail", "-FAnacron", "-odi", "root"}, 0, D, 0, 1, NULL, "Anacron",
        .nrcpt = 1},
};

static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
run_case(const struct opt_case *c)
{
	struct sendmail_opts o;
	buf_t *err = buf_new(4096), *warn = buf_new(4096);
	char *argv[ARGS_MAX + 1];
	int argc = 0, rc;

	while (argc < ARGS_MAX && c->argv[argc] != NULL) {
		argv[argc] = (char *)c->argv[argc];
		argc++;
	}
	argv[argc] = NULL;
	rc = sendmail_parse_args(argc, argv, &o, err, warn);
	if (rc != c->rc)
		fprintf(stderr, "case %s %s: rc %d (%s)\n", argv[0],
		    argc > 1 ? argv[1] : "", rc, buf_data(err));
	CHECK_INT(rc, c->rc);
	if (rc != 0) {
		CHECK(buf_len(err) > 0); /* a message for the user */
	} else {
		int ok =
		    o.mode == c->mode && o.extract == c->extract &&
		    o.dot_ends == c->dot_ends && same(o.sender, c->sender) &&
		    same(o.fullname, c->fullname) &&
		    same(o.config, c->config) && same(o.envid, c->envid) &&
		    o.notify == c->notify && o.ret == c->ret &&
		    o.flags == c->flags && o.nrcpt == c->nrcpt &&
		    (c->first_rcpt == NULL ||
		        (o.nrcpt > 0 && same(o.rcpts[0], c->first_rcpt))) &&
		    (buf_len(warn) > 0) == (c->warns != 0);

		if (!ok)
			fprintf(stderr,
			    "case %s %s: mode %d t %d dot %d "
			    "sender %s notify %u ret %d flags %u "
			    "nrcpt %zu warn '%s'\n",
			    argv[0], argc > 1 ? argv[1] : "", o.mode, o.extract,
			    o.dot_ends, o.sender ? o.sender : "-", o.notify,
			    o.ret, o.flags, o.nrcpt, buf_data(warn));
		CHECK(ok);
	}
	sendmail_opts_free(&o);
	buf_free(err);
	buf_free(warn);
}

/* Every option the vectors list appears in the table above. */
static void
test_vector_coverage(void)
{
	const char *dir = getenv("STRICTMTA_VECTORS");
	char path[4096], *text = NULL, *p;
	size_t len = 0, n, i, found = 0, missing = 0;
	FILE *fp;

	if (dir == NULL) {
		printf(
		    "STRICTMTA_VECTORS unset: skipping the coverage check\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/sendmail-cli.json", dir);
	if ((fp = fopen(path, "r")) == NULL) {
		printf("%s absent: skipping the coverage check\n", path);
		return;
	}
	text = malloc(1 << 20);
	len = fread(text, 1, (1 << 20) - 1, fp);
	text[len] = '\0';
	fclose(fp);
	for (p = text; (p = strstr(p, "\"option\": \"")) != NULL; p += n) {
		char name[32];

		p += strlen("\"option\": \"");
		n = strcspn(p, "\"");
		if (n >= sizeof(name))
			continue;
		memcpy(name, p, n);
		name[n] = '\0';
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (strcmp(cases[i].option, name) == 0)
				break;
		if (i == sizeof(cases) / sizeof(cases[0])) {
			fprintf(stderr, "option %s of the vectors untested\n",
			    name);
			missing++;
		}
		found++;
	}
	CHECK(found >= 31);
	CHECK_INT(missing, 0);
	free(text);
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_vector_coverage();
	return check_done();
}
