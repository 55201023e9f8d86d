/*
 * opts - the sendmail command line (see sendmail.h for the choices made
 * where Postfix and Exim differ).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "sendmail.h"
#include "mta/util/xalloc.h"

/* Options that take an argument, attached ("-fuser") or next ("-f user"),
 * as in Sendmail's and Postfix's getopt strings. */
static const char opts_with_arg[] = "ABCFLNORVXbefhopr";
/* Options accepted without effect. */
static const char opts_ignored[] = "GUcimnx";

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* RFC 3461 4.1: NEVER, or a list of SUCCESS, FAILURE, DELAY. */
static int
parse_notify(const char *s, unsigned *out)
{
	unsigned bits = 0;
	const char *p = s;

	while (*p != '\0') {
		size_t n;

		while (*p == ',' || *p == ' ')
			p++;
		n = strcspn(p, ", ");
		if (n == 0)
			break;
		if (n == 5 && strncasecmp(p, "never", n) == 0)
			bits |= MAILDROP_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(p, "success", n) == 0)
			bits |= MAILDROP_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(p, "failure", n) == 0)
			bits |= MAILDROP_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(p, "delay", n) == 0)
			bits |= MAILDROP_NOTIFY_DELAY;
		else
			return -1;
		p += n;
	}
	if (bits == 0 ||
	    ((bits & MAILDROP_NOTIFY_NEVER) && bits != MAILDROP_NOTIFY_NEVER))
		return -1;
	*out = bits;
	return 0;
}

static int
envid_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > MAILDROP_ENVID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* "-q30m", "-q1h30m": Sendmail's daemon queue interval. We have no
 * such mode (the daemon runs its own queue), so it is accepted and does
 * nothing, as in Postfix. */
static int
is_interval(const char *s)
{
	if (!isdigit((unsigned char)*s))
		return 0;
	while (*s != '\0') {
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
		if (*s != '\0' && strchr("smhdw", *s) != NULL)
			s++;
	}
	return 1;
}

static int
set_mode(struct sendmail_opts *o, const char *arg, buf_t *err)
{
	if (strcmp(arg, "m") == 0)
		o->mode = SENDMAIL_MODE_DELIVER;
	else if (strcmp(arg, "p") == 0)
		o->mode = SENDMAIL_MODE_LIST;
	else if (strcmp(arg, "s") == 0)
		o->mode = SENDMAIL_MODE_SMTP;
	else if (strcmp(arg, "i") == 0)
		o->mode = SENDMAIL_MODE_NOOP; /* no alias database to build */
	else if (strcmp(arg, "d") == 0) {
		buf_printf(err, "-bd is not supported: run strictmtad");
		return EX_USAGE;
	} else {
		buf_printf(err, "-b%s is not supported", arg);
		return EX_USAGE;
	}
	return 0;
}

/* One option letter with its argument (NULL if it takes none). */
static int
apply(struct sendmail_opts *o, char c, const char *arg, buf_t *err, buf_t *warn)
{
	switch (c) {
	case 'B':
		if (strcmp(arg, "8BITMIME") == 0)
			o->flags |= MAILDROP_F_8BITMIME;
		else if (strcmp(arg, "7BIT") == 0)
			o->flags &= ~(unsigned)MAILDROP_F_8BITMIME;
		else {
			buf_printf(err, "-B option needs 8BITMIME or 7BIT");
			return EX_USAGE;
		}
		return 0;
	case 'C':
		o->config = arg;
		return 0;
	case 'F':
		o->fullname = arg;
		return 0;
	case 'N':
		if (parse_notify(arg, &o->notify) < 0)
			buf_printf(warn, "bad -N option value -- ignored\n");
		return 0;
	case 'R':
		if (strcasecmp(arg, "full") == 0)
			o->ret = MAILDROP_RET_FULL;
		else if (strcasecmp(arg, "hdrs") == 0)
			o->ret = MAILDROP_RET_HDRS;
		else
			buf_printf(warn, "bad -R option value -- ignored\n");
		return 0;
	case 'O':
		/* -O requiretls: the message is sent only over verified TLS
		 * (RFC 8689), as MAIL FROM ... REQUIRETLS. Other -O
		 * option=value settings are Sendmail tuning: ignored. */
		if (strcasecmp(arg, "requiretls") == 0)
			o->flags |= MAILDROP_F_REQUIRETLS;
		return 0;
	case 'V':
		if (envid_valid(arg))
			o->envid = arg;
		else
			buf_printf(warn, "bad -V option value -- ignored\n");
		return 0;
	case 'b':
		return set_mode(o, arg, err);
	case 'f':
	case 'r':
		o->sender = arg;
		return 0;
	case 'o':
		/* -oi is -i; every other -o<x> is Sendmail tuning that
		 * main.cf does here (-oem, -odi, -oA...): ignored. */
		if (strcmp(arg, "i") == 0)
			o->dot_ends = 0;
		return 0;
	case 'i':
		o->dot_ends = 0;
		return 0;
	case 't':
		o->extract = 1;
		return 0;
	case 'v':
		o->verbose++;
		return 0;
	case 'q':
		if (*arg == '\0' || ((*arg == 'R' || *arg == 'I') && arg[1]))
			/* -qR<site> and -qI<id>: the daemon has one
			 * flush; it tries everything that is due. */
			o->mode = SENDMAIL_MODE_FLUSH;
		else if (is_interval(arg))
			o->mode = SENDMAIL_MODE_NOOP;
		else {
			buf_printf(err, "-q%s: unsupported queue option", arg);
			return EX_USAGE;
		}
		return 0;
	default:
		/* A, L, X, e, h, p and the flags in opts_ignored. */
		return 0;
	}
}

int
sendmail_parse_args(
    int argc, char **argv, struct sendmail_opts *o, buf_t *err, buf_t *warn)
{
	const char *name = argc > 0 && argv[0] ? base_name(argv[0]) : "";
	int i, rc, only_rcpts = 0;

	memset(o, 0, sizeof(*o));
	o->dot_ends = 1;
	if (strcmp(name, "mailq") == 0)
		o->mode = SENDMAIL_MODE_LIST;
	else if (strcmp(name, "newaliases") == 0)
		o->mode = SENDMAIL_MODE_NOOP;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *p;

		if (only_rcpts || a[0] != '-' || a[1] == '\0') {
			o->rcpts = xreallocarray(
			    o->rcpts, o->nrcpt + 1, sizeof(*o->rcpts));
			o->rcpts[o->nrcpt++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_rcpts = 1;
			continue;
		}
		if (strcmp(a, "-SMTPUTF8") == 0) {
			o->flags |= MAILDROP_F_SMTPUTF8;
			continue;
		}
		/* A cluster of flags ("-ti"), the last may take an
		 * argument. */
		for (p = a + 1; *p != '\0'; p++) {
			const char *arg = NULL;
			char c = *p;

			if (c == 'q') {
				arg = p + 1;
			} else if (strchr(opts_with_arg, c) != NULL) {
				if (p[1] != '\0')
					arg = p + 1;
				else if (i + 1 < argc)
					arg = argv[++i];
				else {
					buf_printf(err,
					    "option requires an argument -- "
					    "'%c'",
					    c);
					return EX_USAGE;
				}
			} else if (strchr(opts_ignored, c) == NULL &&
			           c != 't' && c != 'v') {
				buf_printf(err, "invalid option -- '%c'", c);
				return EX_USAGE;
			}
			if ((rc = apply(o, c, arg, err, warn)) != 0)
				return rc;
			if (arg != NULL)
				break; /* the argument used the rest */
		}
	}
	if (o->extract && o->mode != SENDMAIL_MODE_DELIVER) {
		buf_printf(err, "the -t option can be used only in delivery "
		                "mode");
		return EX_USAGE;
	}
	return 0;
}

void
sendmail_opts_free(struct sendmail_opts *o)
{
	free(o->rcpts);
	o->rcpts = NULL;
	o->nrcpt = 0;
}
