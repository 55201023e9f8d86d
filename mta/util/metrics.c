/*
 * metrics - see metrics.h. Rendering follows the Prometheus exposition
 * text format 0.0.4: "# HELP", "# TYPE", then one "name{labels} value"
 * line per series. Label values are restricted to a safe alphabet, so no
 * escaping is ever needed.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/metrics.h"

#define METRICS_NAME_MAX 64
#define METRICS_VALUES_MAX 96

struct metrics_series {
	char values[METRICS_VALUES_MAX];
	_Atomic int64_t v;
};

struct metrics_family {
	enum metrics_type type;
	char name[METRICS_NAME_MAX];
	char labels[METRICS_NAME_MAX * METRICS_LABELS_MAX];
	char help[160];
	unsigned nlabels;
	_Atomic unsigned nseries;
	struct metrics_series series[METRICS_SERIES_MAX];
};

static pthread_mutex_t mx = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_family families[METRICS_FAMILIES_MAX];
static _Atomic unsigned nfamilies;

static int
name_ok(const char *s, int commas)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= METRICS_NAME_MAX * (commas ? METRICS_LABELS_MAX : 1))
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		        (commas && s[i] == ',')))
			return 0;
	return 1;
}

metrics_family_t *
metrics_family(enum metrics_type type, const char *name, const char *labels,
    const char *help)
{
	struct metrics_family *f = NULL;
	unsigned i, n;
	const char *p;

	if (!name_ok(name, 0) || (labels && !name_ok(labels, 1)))
		abort();
	pthread_mutex_lock(&mx);
	n = atomic_load(&nfamilies);
	for (i = 0; i < n; i++)
		if (strcmp(families[i].name, name) == 0)
			f = &families[i];
	if (f == NULL) {
		if (n == METRICS_FAMILIES_MAX)
			abort();
		f = &families[n];
		memset(f, 0, sizeof(*f));
		f->type = type;
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(
		    f->labels, sizeof(f->labels), "%s", labels ? labels : "");
		snprintf(f->help, sizeof(f->help), "%s", help);
		if (labels)
			for (f->nlabels = 1, p = labels; *p; p++)
				f->nlabels += *p == ',';
		atomic_store(&nfamilies, n + 1);
	}
	pthread_mutex_unlock(&mx);
	return f;
}

static int
value_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= METRICS_VALUES_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		        s[i] == '.' || s[i] == '-' || s[i] == ','))
			return 0;
	return 1;
}

/* The values as this family's count of comma-separated words, else the
 * "other" series (same count). */
static void
normalise(const struct metrics_family *f, const char *values, char *out,
    size_t outlen)
{
	unsigned k = 1, i;
	const char *p;

	if (f->nlabels == 0) {
		out[0] = '\0';
		return;
	}
	if (values && value_ok(values)) {
		for (p = values; *p; p++)
			k += *p == ',';
		if (k == f->nlabels && values[0] != ',' &&
		    strstr(values, ",,") == NULL &&
		    values[strlen(values) - 1] != ',') {
			snprintf(out, outlen, "%s", values);
			return;
		}
	}
	out[0] = '\0';
	for (i = 0; i < f->nlabels; i++)
		snprintf(out + strlen(out), outlen - strlen(out), "%sother",
		    i ? "," : "");
}

static struct metrics_series *
series_of(struct metrics_family *f, const char *values)
{
	char v[METRICS_VALUES_MAX];
	unsigned i, n;
	struct metrics_series *s = NULL;

	normalise(f, values, v, sizeof(v));
	n = atomic_load(&f->nseries);
	for (i = 0; i < n; i++)
		if (strcmp(f->series[i].values, v) == 0)
			return &f->series[i];
	pthread_mutex_lock(&mx);
	n = atomic_load(&f->nseries);
	for (i = 0; i < n && s == NULL; i++)
		if (strcmp(f->series[i].values, v) == 0)
			s = &f->series[i];
	if (s == NULL && n < METRICS_SERIES_MAX - 1) {
		s = &f->series[n];
		snprintf(s->values, sizeof(s->values), "%s", v);
		atomic_store(&s->v, 0);
		atomic_store(&f->nseries, n + 1);
	}
	pthread_mutex_unlock(&mx);
	if (s == NULL && strstr(v, "other") != v) {
		/* Full: the last slot is for "other", whatever comes. */
		return series_of(f, "\x01");
	}
	if (s == NULL) {
		pthread_mutex_lock(&mx);
		s = &f->series[METRICS_SERIES_MAX - 1];
		if (s->values[0] == '\0') {
			snprintf(s->values, sizeof(s->values), "%s", v);
			atomic_store(&f->nseries, METRICS_SERIES_MAX);
		}
		pthread_mutex_unlock(&mx);
	}
	return s;
}

void
metrics_add(metrics_family_t *f, const char *values, uint64_t n)
{
	atomic_fetch_add(&series_of(f, values)->v, (int64_t)n);
}

void
metrics_set(metrics_family_t *f, const char *values, int64_t v)
{
	atomic_store(&series_of(f, values)->v, v);
}

/* name="value",... from the two comma lists. */
static void
put_labels(buf_t *out, const char *names, const char *values)
{
	const char *n = names, *v = values;

	if (names[0] == '\0')
		return;
	buf_putc(out, '{');
	while (*n) {
		size_t nl = strcspn(n, ","), vl = strcspn(v, ",");

		buf_printf(out, "%.*s=\"%.*s\"", (int)nl, n, (int)vl, v);
		n += nl;
		v += vl;
		if (*n == ',') {
			buf_putc(out, ',');
			n++;
			if (*v == ',')
				v++;
		}
	}
	buf_putc(out, '}');
}

void
metrics_render(buf_t *out)
{
	unsigned i, j, n = atomic_load(&nfamilies);

	for (i = 0; i < n; i++) {
		struct metrics_family *f = &families[i];
		unsigned ns = atomic_load(&f->nseries);

		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name,
		    f->help, f->name,
		    f->type == METRICS_COUNTER ? "counter" : "gauge");
		if (ns == 0 && f->nlabels == 0)
			buf_printf(out, "%s 0\n", f->name);
		for (j = 0; j < ns; j++) {
			buf_puts(out, f->name);
			put_labels(out, f->labels, f->series[j].values);
			buf_printf(out, " %lld\n",
			    (long long)atomic_load(&f->series[j].v));
		}
	}
}

void
metrics_reset(void)
{
	pthread_mutex_lock(&mx);
	atomic_store(&nfamilies, 0);
	pthread_mutex_unlock(&mx);
}

const char *
metrics_parse_listen(
    const char *s, char *host, unsigned hostlen, unsigned *port)
{
	const char *colon, *h = s;
	size_t hl;
	unsigned char a[16];
	char tmp[64];
	unsigned long p = 0;
	const char *q;

	if (s == NULL || s[0] == '\0')
		return "empty address";
	if (strlen(s) > 60)
		return "address too long";
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (e == NULL || e[1] != ':')
			return "expected [v6-address]:port";
		h = s + 1;
		hl = (size_t)(e - h);
		colon = e + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "expected host:port";
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL)
			return "an IPv6 address goes in brackets: [::1]:port";
	}
	if (hl == 0 || hl >= sizeof(tmp) || hl >= hostlen)
		return "expected host:port";
	memcpy(tmp, h, hl);
	tmp[hl] = '\0';
	for (q = colon + 1; *q; q++) {
		if (*q < '0' || *q > '9' || p > 65535)
			return "the port is not a number from 1 to 65535";
		p = p * 10 + (unsigned long)(*q - '0');
	}
	if (colon[1] == '\0' || p == 0 || p > 65535)
		return "the port is not a number from 1 to 65535";
	if (strcmp(tmp, "localhost") == 0)
		memcpy(tmp, "127.0.0.1", 10);
	if (inet_pton(AF_INET, tmp, a) == 1) {
		if (a[0] != 127)
			return "not a loopback address (127.0.0.0/8 or [::1]): "
			       "the metrics endpoint has no authentication";
	} else if (inet_pton(AF_INET6, tmp, a) == 1) {
		static const unsigned char one[16] = {[15] = 1};

		if (memcmp(a, one, 16) != 0)
			return "not a loopback address (127.0.0.0/8 or [::1]): "
			       "the metrics endpoint has no authentication";
	} else {
		return "not an IP address (give 127.0.0.1:PORT or [::1]:PORT)";
	}
	snprintf(host, hostlen, "%s", tmp);
	*port = (unsigned)p;
	return NULL;
}
