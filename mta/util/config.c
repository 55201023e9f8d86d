/*
 * config - see config.h. The table in config_table.h drives everything.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "xalloc.h"

enum cfg_type { T_STR, T_LIST, T_INT, T_SIZE, T_TIME, T_BOOL };

struct cfg_def {
	const char *name;
	enum cfg_type type;
	const char *def;
	long long min, max;
	const char *choices;
	const char *doc;
	size_t offset;
};

static const struct cfg_def cfg_defs[] = {
#define CFG(name, type, def, min, max, choices, doc)                           \
	{#name, T_##type, def, min, max, choices, doc,                         \
	    offsetof(struct config, name)},
#include "config_table.h"
#undef CFG
};

#define CFG_COUNT (sizeof(cfg_defs) / sizeof(cfg_defs[0]))
#define CFG_LINE_MAX 4096
#define CFG_VALUE_MAX 65536

static const struct cfg_def *
find_def(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < CFG_COUNT; i++)
		if (strlen(cfg_defs[i].name) == len &&
		    memcmp(cfg_defs[i].name, name, len) == 0)
			return &cfg_defs[i];
	return NULL;
}

static int
is_text(enum cfg_type t)
{
	return t == T_STR || t == T_LIST;
}

long long
config_parse_time(const char *s)
{
	char *end;
	long long n, mult = 1;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		switch (*end) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case 'w':
			mult = 604800;
			break;
		default:
			return -1;
		}
		if (end[1])
			return -1;
	}
	if (n > LLONG_MAX / mult)
		return -1;
	return n * mult;
}

static int
set_value(
    struct config *cfg, const struct cfg_def *d, const char *value, buf_t *err)
{
	char *field = (char *)cfg + d->offset;
	long long n;
	char *end;

	switch (d->type) {
	case T_STR:
	case T_LIST:
		if (d->choices[0]) {
			const char *c = d->choices;
			size_t vl = strlen(value);
			int ok = 0;

			while (*c) {
				size_t l = strcspn(c, "|");

				if (l == vl && strncmp(c, value, l) == 0)
					ok = 1;
				c += l;
				if (*c == '|')
					c++;
			}
			if (!ok) {
				buf_printf(err, "%s: '%s' is not one of %s",
				    d->name, value, d->choices);
				return -1;
			}
		}
		/* explain-metrics: the endpoint has no authentication. */
		if (strcmp(d->name, "metrics_listen") == 0 && value[0]) {
			char h[64];
			unsigned port;
			const char *why =
			    metrics_parse_listen(value, h, sizeof(h), &port);

			if (why) {
				buf_printf(
				    err, "%s: '%s': %s", d->name, value, why);
				return -1;
			}
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case T_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0)
			*(int *)field = 1;
		else if (strcmp(value, "no") == 0 ||
		         strcmp(value, "false") == 0)
			*(int *)field = 0;
		else {
			buf_printf(
			    err, "%s: '%s' is not yes or no", d->name, value);
			return -1;
		}
		return 0;
	case T_TIME:
		n = config_parse_time(value);
		if (n < 0) {
			buf_printf(err,
			    "%s: '%s' is not a time (a number with s, m, h, "
			    "d or w)",
			    d->name, value);
			return -1;
		}
		break;
	case T_INT:
	case T_SIZE:
		errno = 0;
		n = strtoll(value, &end, 10);
		if (errno || end == value || *end) {
			buf_printf(
			    err, "%s: '%s' is not a number", d->name, value);
			return -1;
		}
		break;
	default:
		abort();
	}
	if (n < d->min || n > d->max) {
		buf_printf(err, "%s: %s is out of range (%lld to %lld)",
		    d->name, value, d->min, d->max);
		return -1;
	}
	*(long long *)field = n;
	return 0;
}

struct config *
config_new(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	buf_t *err = buf_new(1024);
	size_t i;

	for (i = 0; i < CFG_COUNT; i++)
		if (set_value(cfg, &cfg_defs[i], cfg_defs[i].def, err) < 0)
			abort(); /* a default outside its own bounds */
	buf_free(err);
	return cfg;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_COUNT; i++)
		if (is_text(cfg_defs[i].type))
			free(*(char **)((char *)cfg + cfg_defs[i].offset));
	free(cfg->source);
	free(cfg);
}

int
config_set(struct config *cfg, const char *name, const char *value, buf_t *err)
{
	const struct cfg_def *d = find_def(name, strlen(name));

	if (d == NULL) {
		buf_printf(err, "%s: unknown parameter", name);
		return -1;
	}
	return set_value(cfg, d, value, err);
}

const char *
config_parse_assignment(const char *line, size_t len, const char **name,
    size_t *namelen, const char **value, size_t *valuelen)
{
	size_t i = 0, start, end;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	start = i;
	while (i < len && (isalnum((unsigned char)line[i]) || line[i] == '_'))
		i++;
	if (i == start)
		return "expected a parameter name";
	*name = line + start;
	*namelen = i - start;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i >= len || line[i] != '=')
		return "expected '=' after the parameter name";
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	end = len;
	while (end > i && isspace((unsigned char)line[end - 1]))
		end--;
	for (start = i; start < end; start++)
		if (line[start] == '\0' || (unsigned char)line[start] < 0x09 ||
		    line[start] == 0x7f)
			return "control character in value";
	*value = line + i;
	*valuelen = end - i;
	return NULL;
}

/* Applies one logical line (continuations already joined). */
static int
apply_line(struct config *cfg, const char *path, unsigned lineno,
    const char *line, size_t len, buf_t *err)
{
	const char *name, *value, *why;
	size_t namelen, valuelen;
	const struct cfg_def *d;
	char *v;
	int r;

	why = config_parse_assignment(
	    line, len, &name, &namelen, &value, &valuelen);
	if (why) {
		buf_printf(err, "%s:%u: %s", path, lineno, why);
		return -1;
	}
	if ((d = find_def(name, namelen)) == NULL) {
		buf_printf(err, "%s:%u: %.*s: unknown parameter", path, lineno,
		    (int)namelen, name);
		return -1;
	}
	v = xmemdup(value, valuelen);
	buf_printf(err, "%s:%u: ", path, lineno);
	r = set_value(cfg, d, v, err);
	free(v);
	if (r == 0)
		buf_reset(err);
	return r;
}

/* Reads fp (closed here) as the file named path. */
static int
load_stream(struct config *cfg, FILE *fp, const char *path, buf_t *err)
{
	char line[CFG_LINE_MAX];
	buf_t *logical = buf_new(CFG_VALUE_MAX);
	unsigned lineno = 0, start_line = 0;
	int r = 0;

	free(cfg->source);
	cfg->source = xstrdup(path);
	while (r == 0 && fgets(line, sizeof(line), fp)) {
		size_t len = strlen(line);

		lineno++;
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			buf_printf(err, "%s:%u: line longer than %d bytes",
			    path, lineno, CFG_LINE_MAX - 2);
			r = -1;
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (line[0] == '#')
			continue;
		if (strspn(line, " \t") == len)
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			/* Postfix style: leading white space continues. */
			if (buf_len(logical) == 0) {
				buf_printf(err,
				    "%s:%u: continuation line with no "
				    "parameter before it",
				    path, lineno);
				r = -1;
				break;
			}
			buf_putc(logical, ' ');
			buf_puts(logical, line + strspn(line, " \t"));
			continue;
		}
		if (buf_len(logical))
			r = apply_line(cfg, path, start_line, buf_data(logical),
			    buf_len(logical), err);
		buf_reset(logical);
		buf_puts(logical, line);
		start_line = lineno;
	}
	if (r == 0 && buf_error(logical)) {
		buf_printf(err, "%s:%u: value too long", path, start_line);
		r = -1;
	}
	if (r == 0 && buf_len(logical))
		r = apply_line(cfg, path, start_line, buf_data(logical),
		    buf_len(logical), err);
	if (r == 0 && ferror(fp)) {
		buf_printf(err, "%s: read error: %s", path, strerror(errno));
		r = -1;
	}
	fclose(fp);
	buf_free(logical);
	if (r == 0)
		r = config_expand(cfg, err);
	return r;
}

int
config_load(struct config *cfg, const char *path, buf_t *err)
{
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		buf_printf(err, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	return load_stream(cfg, fp, path, err);
}

int
config_load_fd(struct config *cfg, int fd, const char *name, buf_t *err)
{
	FILE *fp;

	if ((fp = fdopen(fd, "r")) == NULL) {
		buf_printf(err, "%s: cannot read: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return load_stream(cfg, fp, name, err);
}

static const char *
text_value(const struct config *cfg, const char *name, size_t len)
{
	const struct cfg_def *d = find_def(name, len);

	if (d == NULL || !is_text(d->type))
		return NULL;
	return *(char *const *)((const char *)cfg + d->offset);
}

int
config_expand(struct config *cfg, buf_t *err)
{
	size_t i;
	int pass;

	/* Two passes so that one level of nesting resolves; no loops. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < CFG_COUNT; i++) {
			char **field;
			const char *s, *ref;
			buf_t *out;

			if (!is_text(cfg_defs[i].type))
				continue;
			field = (char **)((char *)cfg + cfg_defs[i].offset);
			if (strchr(*field, '$') == NULL)
				continue;
			out = buf_new(CFG_VALUE_MAX);
			for (s = *field; *s;) {
				size_t n;
				int braced;

				if (*s != '$') {
					buf_putc(out, *s++);
					continue;
				}
				braced = s[1] == '{';
				s += 1 + braced;
				n = strspn(s,
				    "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
				ref = text_value(cfg, s, n);
				if (ref == NULL || (braced && s[n] != '}')) {
					if (pass == 1) {
						buf_printf(err,
						    "%s: %s: bad reference "
						    "$%.*s",
						    cfg->source ? cfg->source
						                : "config",
						    cfg_defs[i].name, (int)n,
						    s);
						buf_free(out);
						return -1;
					}
					buf_putc(out, '$');
					if (braced)
						buf_putc(out, '{');
					continue;
				}
				buf_puts(out, ref);
				s += n + braced;
			}
			free(*field);
			*field = buf_steal(out, NULL);
			buf_free(out);
		}
	}
	return 0;
}

static void
print_value(const struct config *cfg, const struct cfg_def *d, FILE *fp)
{
	const char *field = (const char *)cfg + d->offset;

	switch (d->type) {
	case T_STR:
	case T_LIST:
		fprintf(fp, "%s = %s\n", d->name, *(char *const *)field);
		break;
	case T_BOOL:
		fprintf(fp, "%s = %s\n", d->name,
		    *(const int *)field ? "yes" : "no");
		break;
	case T_TIME:
		fprintf(fp, "%s = %llds\n", d->name, *(const long long *)field);
		break;
	default:
		fprintf(fp, "%s = %lld\n", d->name, *(const long long *)field);
	}
}

void
config_print(const struct config *cfg, FILE *fp, int only_changed)
{
	struct config *defaults = only_changed ? config_new() : NULL;
	size_t i;

	for (i = 0; i < CFG_COUNT; i++) {
		const struct cfg_def *d = &cfg_defs[i];

		if (defaults) {
			const char *a = (const char *)cfg + d->offset;
			const char *b = (const char *)defaults + d->offset;

			if (is_text(d->type) ? strcmp(*(char *const *)a,
			                           *(char *const *)b) == 0
			    : d->type == T_BOOL
			        ? *(const int *)a == *(const int *)b
			        : *(const long long *)a ==
			              *(const long long *)b)
				continue;
		}
		print_value(cfg, d, fp);
	}
	config_free(defaults);
}

void
config_doc_markdown(FILE *fp)
{
	static const char *type_names[] = {
	    "text", "list", "number", "bytes", "time", "yes/no"};
	size_t i;

	fprintf(fp, "| parameter | type | default | meaning |\n");
	fprintf(fp, "| --- | --- | --- | --- |\n");
	for (i = 0; i < CFG_COUNT; i++) {
		const struct cfg_def *d = &cfg_defs[i];

		fprintf(fp, "| `%s` | %s%s%s | `%s` | %s |\n", d->name,
		    type_names[d->type], d->choices[0] ? ": " : "", d->choices,
		    d->def, d->doc);
	}
}

int
config_list_next(const char **cursor, char *out, size_t outlen)
{
	const char *s = *cursor;
	size_t n;

	s += strspn(s, " \t,");
	if (*s == '\0') {
		*cursor = s;
		return 0;
	}
	n = strcspn(s, " \t,");
	if (n >= outlen)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*cursor = s + n;
	return 1;
}
