/*
 * fuzz_sendmail_opts - the sendmail command line (sendmail_parse_args).
 * The input split at NUL bytes is argv (argv[0] included, so mailq and
 * newaliases are reached; at most ARGS_MAX arguments). The result is
 * checked against sendmail.h: every string points into argv, values are
 * in range, errors come with a message; and taking the recipients out of
 * argv must leave the options exactly as they were.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "mta/sendmail/sendmail.h"

#define ARGS_MAX 64

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

/* The index of the argument (not argv[0]) that p points into, or -1. */
static int
arg_of(char **argv, int argc, const char *p)
{
	int i;

	for (i = 1; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return i;
	return -1;
}

static int
index_of(char **argv, int argc, const char *p)
{
	int i;

	for (i = 1; i < argc; i++)
		if (p == argv[i])
			return i;
	return -1;
}

static void
check_opts(const struct sendmail_opts *o, char **argv, int argc)
{
	const unsigned dsn = MAILDROP_NOTIFY_SUCCESS | MAILDROP_NOTIFY_FAILURE |
	                     MAILDROP_NOTIFY_DELAY;
	size_t i, n;
	int prev = 0, k, j, dashdash;

	CHECK(
	    o->mode >= SENDMAIL_MODE_DELIVER && o->mode <= SENDMAIL_MODE_NOOP);
	CHECK(!o->extract || o->mode == SENDMAIL_MODE_DELIVER);
	CHECK(o->dot_ends == 0 || o->dot_ends == 1);
	CHECK(o->verbose >= 0 && o->verbose < (argc + 1) * 4096);
	CHECK(!o->sender || arg_of(argv, argc, o->sender) > 0);
	CHECK(!o->fullname || arg_of(argv, argc, o->fullname) > 0);
	CHECK(!o->config || arg_of(argv, argc, o->config) > 0);
	if (o->envid) {
		CHECK(arg_of(argv, argc, o->envid) > 0);
		n = strlen(o->envid);
		CHECK(n > 0 && n <= MAILDROP_ENVID_MAX);
		for (i = 0; i < n; i++)
			CHECK(o->envid[i] > 0x20 && o->envid[i] < 0x7f);
	}
	/* RFC 3461 4.1: NEVER alone, or some of the other three. */
	CHECK(o->notify == 0 || o->notify == MAILDROP_NOTIFY_NEVER ||
	      (o->notify & ~dsn) == 0);
	CHECK(o->ret == 0 || o->ret == MAILDROP_RET_FULL ||
	      o->ret == MAILDROP_RET_HDRS);
	CHECK(
	    (o->flags & ~(unsigned)(MAILDROP_F_8BITMIME | MAILDROP_F_SMTPUTF8 |
	                            MAILDROP_F_REQUIRETLS)) == 0);
	CHECK(o->nrcpt <= (size_t)(argc > 0 ? argc - 1 : 0));
	CHECK(o->nrcpt == 0 || o->rcpts != NULL);
	/* Recipients are whole arguments, in order; one that looks like an
	 * option can only come after a "--". */
	for (i = 0; i < o->nrcpt; i++) {
		k = index_of(argv, argc, o->rcpts[i]);
		CHECK(k > prev);
		prev = k;
		if (o->rcpts[i][0] == '-' && o->rcpts[i][1] != '\0') {
			for (dashdash = 0, j = 1; j < k; j++)
				if (strcmp(argv[j], "--") == 0)
					dashdash = 1;
			CHECK(dashdash);
		}
	}
}

static int
same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *copy = malloc(len + 1), *p;
	char *argv[ARGS_MAX + 1], *rest[ARGS_MAX + 1];
	struct sendmail_opts o, o2;
	buf_t *err = buf_new(4096), *warn = buf_new(4096);
	buf_t *err2 = buf_new(4096), *warn2 = buf_new(4096);
	int argc = 0, nrest = 0, rc, rc2, i;
	size_t k;

	memcpy(copy, data, len);
	copy[len] = '\0';
	for (p = copy; len > 0 && p <= copy + len && argc < ARGS_MAX;
	     p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	rc = sendmail_parse_args(argc, argv, &o, err, warn);
	if (rc == 0) {
		CHECK(buf_len(err) == 0);
		check_opts(&o, argv, argc);
	} else {
		CHECK(rc == EX_USAGE && buf_len(err) > 0);
	}
	/* One warning a line. */
	CHECK(buf_len(warn) == 0 || buf_data(warn)[buf_len(warn) - 1] == '\n');

	if (rc == 0) {
		/* The same command line without its recipients. */
		for (i = 0; i < argc; i++) {
			for (k = 0; k < o.nrcpt && o.rcpts[k] != argv[i]; k++)
				;
			if (k == o.nrcpt)
				rest[nrest++] = argv[i];
		}
		rest[nrest] = NULL;
		rc2 = sendmail_parse_args(nrest, rest, &o2, err2, warn2);
		CHECK(rc2 == 0 && o2.nrcpt == 0);
		CHECK(o2.mode == o.mode && o2.extract == o.extract &&
		      o2.dot_ends == o.dot_ends && o2.verbose == o.verbose &&
		      o2.notify == o.notify && o2.ret == o.ret &&
		      o2.flags == o.flags);
		CHECK(same_str(o2.sender, o.sender) &&
		      same_str(o2.fullname, o.fullname) &&
		      same_str(o2.config, o.config) &&
		      same_str(o2.envid, o.envid));
		CHECK(buf_len(warn2) == buf_len(warn));
		sendmail_opts_free(&o2);
	}
	sendmail_opts_free(&o);
	buf_free(err);
	buf_free(warn);
	buf_free(err2);
	buf_free(warn2);
	free(copy);
	return 0;
}
