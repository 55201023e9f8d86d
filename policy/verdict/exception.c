/*
 * exception - see exception.h. The table is a bounded array (at most
 * TLS_EXC_MAX entries, searched linearly: a lookup per delivery decision
 * over a few entries costs less than a hash); the file is a
 * policy/store/pstore, written by its own thread.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mta/util/clock.h"
#include "mta/util/json.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/store/pstore.h"
#include "policy/verdict/exception.h"

struct xent {
	struct tls_exception e;
	int64_t last_logged; /* last "used" log line */
};

struct tls_exceptions {
	pstore_t *store;
	struct xent *v;
	size_t n;
	struct event *timer;
};

/* ---- pure parts ---- */

const char *
tls_exception_parse_duration(const char *s, size_t len, int64_t *secs)
{
	int64_t n = 0, mult = 1;
	size_t i, digits;

	if (len == 0)
		return "empty duration";
	if (len > 12)
		return "duration too long";
	switch (s[len - 1]) {
	case 's':
		len--;
		break;
	case 'm':
		mult = 60;
		len--;
		break;
	case 'h':
		mult = 3600;
		len--;
		break;
	case 'd':
		mult = 86400;
		len--;
		break;
	case 'w':
		mult = 7 * 86400;
		len--;
		break;
	}
	for (i = 0, digits = 0; i < len; i++, digits++) {
		if (!isdigit((unsigned char)s[i]))
			return "duration is a number with s, m, h, d or w "
			       "(e.g. 30m, 48h, 7d)";
		n = n * 10 + (s[i] - '0');
	}
	if (digits == 0)
		return "duration needs a number (e.g. 48h)";
	/* At most 11 digits: no overflow before this check. */
	if (n == 0)
		return "duration must be positive";
	if (n > TLS_EXC_TTL_MAX / mult)
		return "duration longer than 90 days";
	*secs = n * mult;
	return NULL;
}

static int
valid_domain(const char *d)
{
	size_t i, len = strlen(d);

	if (len == 0 || len > TLS_EXC_DOMAIN_MAX || d[0] == '.' ||
	    d[0] == '-' || d[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!(islower((unsigned char)d[i]) ||
		        isdigit((unsigned char)d[i]) || d[i] == '-' ||
		        d[i] == '.' || d[i] == '_') ||
		    (d[i] == '.' && d[i + 1] == '.'))
			return 0;
	return 1;
}

static int
printable(const char *s, size_t max, int spaces)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= max || (unsigned char)s[i] > 0x7e ||
		    (unsigned char)s[i] < (spaces ? 0x20 : 0x21))
			return 0;
	return 1;
}

const char *
tls_exception_check(const struct tls_exception *e)
{
	if (!valid_domain(e->domain))
		return "not a domain name (lower case letters, digits, '-', "
		       "'.')";
	if (e->level > TLS_LEV_ENCRYPT)
		return "an exception sets none, may or encrypt: dane, "
		       "sts-enforce and secure come from the domain's own "
		       "policy";
	if (e->added <= 0 || e->expires <= e->added ||
	    e->expires - e->added > TLS_EXC_TTL_MAX)
		return "expiry must be after the time added, within 90 days";
	if (e->reason[0] == '\0' ||
	    !printable(e->reason, TLS_EXC_REASON_MAX, 1))
		return "reason must be 1-200 printable ASCII characters";
	if (e->who[0] == '\0' || !printable(e->who, TLS_EXC_WHO_MAX, 1))
		return "who must be printable ASCII";
	return NULL;
}

void
tls_exception_encode(const struct tls_exception *e, buf_t *out)
{
	buf_printf(out, "TLSX1 %s %" PRId64 " %" PRId64 " %s\n%s",
	    tls_level_name(e->level), e->added, e->expires, e->who, e->reason);
}

/* Reads a decimal (no sign) from *p, at most 19 digits. */
static int
get_num(const char **p, const char *end, int64_t *v)
{
	int64_t n = 0;
	int digits = 0;

	while (*p < end && isdigit((unsigned char)**p)) {
		if (++digits > 18)
			return -1;
		n = n * 10 + (**p - '0');
		(*p)++;
	}
	*v = n;
	return digits ? 0 : -1;
}

const char *
tls_exception_decode(
    const char *domain, const void *data, size_t len, struct tls_exception *out)
{
	const char *s = data, *p, *end = s + len, *nl, *lw;
	char word[16];
	size_t wl, dl = strlen(domain);
	const char *why;

	memset(out, 0, sizeof(*out));
	if (len > TLS_EXC_RECORD_MAX)
		return "record too long";
	if (dl > TLS_EXC_DOMAIN_MAX)
		return "key too long";
	memcpy(out->domain, domain, dl + 1);
	if (len < 6 || memcmp(s, "TLSX1 ", 6) != 0)
		return "not a version 1 exception record";
	if ((nl = memchr(s, '\n', len)) == NULL)
		return "no header line";
	p = s + 6;
	for (lw = p; p < nl && *p != ' '; p++)
		;
	wl = (size_t)(p - lw);
	if (wl == 0 || wl >= sizeof(word) || p >= nl)
		return "bad level";
	memcpy(word, lw, wl);
	word[wl] = '\0';
	if (tls_level_parse(word, &out->level) < 0)
		return "unknown level";
	p++;
	if (get_num(&p, nl, &out->added) < 0 || p >= nl || *p++ != ' ')
		return "bad time added";
	if (get_num(&p, nl, &out->expires) < 0 || p >= nl || *p++ != ' ')
		return "bad expiry";
	wl = (size_t)(nl - p);
	if (wl == 0 || wl > TLS_EXC_WHO_MAX)
		return "bad who";
	memcpy(out->who, p, wl);
	out->who[wl] = '\0';
	wl = (size_t)(end - nl - 1);
	if (wl > TLS_EXC_REASON_MAX)
		return "reason too long";
	memcpy(out->reason, nl + 1, wl);
	out->reason[wl] = '\0';
	if (memchr(nl + 1, '\0', wl) != NULL ||
	    memchr(p, '\0', (size_t)(nl - p)) != NULL)
		return "NUL in record";
	if ((why = tls_exception_check(out)) != NULL)
		return why;
	return NULL;
}

/* The next space-delimited word of [*p, end): its start and length. */
static size_t
next_word(const char **p, const char *end, const char **w)
{
	const char *s = *p;

	*w = s;
	while (s < end && *s != ' ')
		s++;
	*p = s < end ? s + 1 : s;
	return (size_t)(s - *w);
}

const char *
tls_exception_parse_request(
    const char *line, size_t len, struct tls_exception_req *req)
{
	const char *p = line, *end = line + len, *w, *why;
	size_t wl, i;
	char word[16];

	memset(req, 0, sizeof(*req));
	if (len == 0 || len > TLS_EXC_REQUEST_MAX)
		return "bad request length";
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] > 0x7e)
			return "control or non-ASCII character in request";
	wl = next_word(&p, end, &w);
	if (wl == 13 && memcmp(w, "exception-add", 13) == 0)
		req->op = TLS_EXC_OP_ADD;
	else if (wl == 14 && memcmp(w, "exception-list", 14) == 0)
		req->op = TLS_EXC_OP_LIST;
	else if (wl == 16 && memcmp(w, "exception-remove", 16) == 0)
		req->op = TLS_EXC_OP_REMOVE;
	else
		return "unknown exception command (add, list, remove)";
	if (req->op == TLS_EXC_OP_LIST) {
		if (p == end && (w + wl) == end)
			return NULL;
		wl = next_word(&p, end, &w);
		if (wl != 6 || memcmp(w, "--json", 6) != 0 || w + wl != end)
			return "exception list takes only --json";
		req->json = 1;
		return NULL;
	}
	wl = next_word(&p, end, &w);
	if (wl == 0 || wl > TLS_EXC_DOMAIN_MAX)
		return "give a domain";
	for (i = 0; i < wl; i++)
		req->domain[i] = (char)tolower((unsigned char)w[i]);
	req->domain[wl] = '\0';
	if (!valid_domain(req->domain))
		return "not a domain name";
	if (req->op == TLS_EXC_OP_REMOVE)
		return w + wl == end ? NULL : "exception remove takes a domain";
	wl = next_word(&p, end, &w);
	if (wl == 0 || wl >= sizeof(word))
		return "give a level (none, may or encrypt)";
	memcpy(word, w, wl);
	word[wl] = '\0';
	if (tls_level_parse(word, &req->level) < 0)
		return "unknown level";
	if (req->level > TLS_LEV_ENCRYPT)
		return "an exception sets none, may or encrypt";
	wl = next_word(&p, end, &w);
	if ((why = tls_exception_parse_duration(w, wl, &req->ttl)) != NULL)
		return why;
	wl = (size_t)(end - p);
	if (wl == 0 || w + 1 >= end)
		return "give a reason";
	if (wl > TLS_EXC_REASON_MAX)
		return "reason longer than 200 characters";
	memcpy(req->reason, p, wl);
	req->reason[wl] = '\0';
	return NULL;
}

static void
put_time(buf_t *out, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		buf_printf(out, "@%" PRId64, t);
	else
		buf_puts(out, s);
}

void
tls_exception_format(const struct tls_exception *e, int json, buf_t *out)
{
	if (json) {
		buf_puts(out, "{\"domain\":");
		json_put_string(out, e->domain);
		buf_puts(out, ",\"level\":");
		json_put_string(out, tls_level_name(e->level));
		buf_printf(out, ",\"added\":%" PRId64 ",\"expires\":%" PRId64,
		    e->added, e->expires);
		buf_puts(out, ",\"who\":");
		json_put_string(out, e->who);
		buf_puts(out, ",\"reason\":");
		json_put_string(out, e->reason);
		buf_putc(out, '}');
		return;
	}
	buf_printf(
	    out, "%s level=%s expires=", e->domain, tls_level_name(e->level));
	put_time(out, e->expires);
	buf_puts(out, " added=");
	put_time(out, e->added);
	buf_printf(out, " by %s reason=", e->who);
	buf_put_printable(out, e->reason, strlen(e->reason));
}

/* ---- the store ---- */

/* A record at open: a bad one is skipped with a log line. */
static void
load_one(void *arg, const char *dom, const void *val, size_t len)
{
	struct tls_exceptions *t = arg;
	struct tls_exception e;
	const char *why;

	if (strlen(dom) > TLS_EXC_DOMAIN_MAX)
		why = "domain too long";
	else
		why = tls_exception_decode(dom, val, len, &e);
	if (why != NULL) {
		log_warn(
		    "tls-exception: entry for %.253s skipped: %s", dom, why);
		return;
	}
	if (t->n >= TLS_EXC_MAX)
		return;
	t->v[t->n].e = e;
	t->v[t->n].last_logged = 0;
	t->n++;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tls_exception_expire(arg, clock_now());
}

tls_exceptions_t *
tls_exceptions_open(struct event_base *base, const char *path, buf_t *err)
{
	struct tls_exceptions *t = xcalloc(1, sizeof(*t));

	t->v = xcalloc(TLS_EXC_MAX, sizeof(*t->v));
	t->store = pstore_open(path, "the TLS exceptions", load_one, t, err);
	if (t->store == NULL)
		goto fail;
	if (base != NULL) {
		struct timeval tv = {1, 0};

		t->timer = event_new(base, -1, EV_PERSIST, on_timer, t);
		if (t->timer == NULL || event_add(t->timer, &tv) < 0) {
			buf_printf(
			    err, "%s: cannot start the expiry timer", path);
			goto fail;
		}
	}
	return t;
fail:
	tls_exceptions_close(t);
	return NULL;
}

void
tls_exceptions_close(tls_exceptions_t *t)
{
	if (t == NULL)
		return;
	if (t->timer != NULL)
		event_free(t->timer);
	pstore_close(t->store);
	free(t->v);
	free(t);
}

static ssize_t
find_index(const tls_exceptions_t *t, const char *domain)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcasecmp(t->v[i].e.domain, domain) == 0)
			return (ssize_t)i;
	return -1;
}

int
tls_exception_find(const tls_exceptions_t *t, const char *domain, int64_t now,
    struct tls_exception *out)
{
	ssize_t i;

	if (t == NULL || (i = find_index(t, domain)) < 0 ||
	    t->v[i].e.expires <= now)
		return 0;
	*out = t->v[i].e;
	return 1;
}

const char *
tls_exception_add(tls_exceptions_t *t, const struct tls_exception *e)
{
	const char *why;
	ssize_t i;
	buf_t *rec;

	if ((why = tls_exception_check(e)) != NULL)
		return why;
	if ((i = find_index(t, e->domain)) < 0) {
		if (t->n >= TLS_EXC_MAX)
			return "too many exceptions (at most 1000)";
		i = (ssize_t)t->n++;
	}
	t->v[i].e = *e;
	t->v[i].last_logged = 0;
	rec = buf_new(TLS_EXC_RECORD_MAX);
	tls_exception_encode(e, rec);
	pstore_write(t->store, e->domain, rec);
	buf_free(rec);
	return NULL;
}

static void
remove_at(tls_exceptions_t *t, size_t i)
{
	pstore_write(t->store, t->v[i].e.domain, NULL);
	t->v[i] = t->v[--t->n];
}

int
tls_exception_remove(tls_exceptions_t *t, const char *domain)
{
	ssize_t i = find_index(t, domain);

	if (i < 0)
		return 1;
	remove_at(t, (size_t)i);
	return 0;
}

size_t
tls_exception_count(const tls_exceptions_t *t, int64_t now)
{
	size_t i, n = 0;

	if (t == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		n += t->v[i].e.expires > now;
	return n;
}

size_t
tls_exception_expire(tls_exceptions_t *t, int64_t now)
{
	size_t i = 0, n = 0;

	while (i < t->n) {
		const struct tls_exception *e = &t->v[i].e;

		if (e->expires > now) {
			i++;
			continue;
		}
		log_info("tls-exception: domain=%s, level=%s: expired, "
		         "removed; the domain's own policy applies again",
		    e->domain, tls_level_name(e->level));
		remove_at(t, i);
		n++;
	}
	return n;
}

void
tls_exception_walk(const tls_exceptions_t *t, int64_t now,
    tls_exception_visit_fn *fn, void *arg)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].e.expires > now)
			fn(arg, &t->v[i].e);
}

int
tls_exception_log_due(tls_exceptions_t *t, const char *domain, int64_t now)
{
	ssize_t i = find_index(t, domain);

	if (i < 0 || now - t->v[i].last_logged < 60)
		return 0;
	t->v[i].last_logged = now;
	return 1;
}
