/*
 * sts_cache - see sts_cache.h. Record format (version 1):
 *   "STSC1 <id> <fetched> <expires> <last_used>\n" then the policy text.
 *
 * The file (policy/store/pstore) is read whole at open into a hash table
 * that answers every get and walk; puts and deletes change the table at
 * once and are written (with a sync) by the store's writer thread: the
 * event loop never waits for the disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mta/util/hash.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/store/pstore.h"
#include "policy/sts/sts_cache.h"

/* A cached entry in memory. */
struct centry {
	struct centry *next; /* in its hash chain */
	struct sts_cache_entry e; /* e.body owned */
};

struct sts_cache {
	pstore_t *store;
	struct centry **tab;
	size_t nbuckets, n;
};

static size_t
key_hash(const struct sts_cache *c, const char *key)
{
	return hash_fnv1a(key, strlen(key), 0) % c->nbuckets;
}

static struct centry **
find_slot(struct sts_cache *c, const char *key)
{
	struct centry **pp = &c->tab[key_hash(c, key)];

	while (*pp != NULL && strcmp((*pp)->e.domain, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void
table_set(struct sts_cache *c, const char *key, struct sts_cache_entry *e)
{
	struct centry **pp = find_slot(c, key), *ce = *pp;

	if (ce == NULL) {
		ce = xcalloc(1, sizeof(*ce));
		*pp = ce;
		c->n++;
	} else {
		free(ce->e.body);
	}
	ce->e = *e;
	memcpy(ce->e.domain, key, strlen(key) + 1);
	free(e); /* the struct; its body lives on in the table */
}

static struct sts_cache_entry *
entry_copy(const struct sts_cache_entry *e)
{
	struct sts_cache_entry *out = xmalloc(sizeof(*out));

	*out = *e;
	out->body = xmemdup(e->body, e->len);
	return out;
}

/* A record at open; a damaged one is as none. */
static void
load_one(void *arg, const char *key, const void *val, size_t len)
{
	struct sts_cache *c = arg;
	struct sts_cache_entry *e;

	if (sts_cache_decode(val, len, &e) == NULL)
		table_set(c, key, e);
}

sts_cache_t *
sts_cache_open(const char *path, buf_t *err)
{
	sts_cache_t *c = xcalloc(1, sizeof(*c));

	c->nbuckets = 1024;
	c->tab = xcalloc(c->nbuckets, sizeof(*c->tab));
	c->store =
	    pstore_open(path, "the MTA-STS policy cache", load_one, c, err);
	if (c->store == NULL) {
		sts_cache_close(c);
		return NULL;
	}
	return c;
}

void
sts_cache_close(sts_cache_t *c)
{
	size_t i;

	if (c == NULL)
		return;
	/* Every write queued so far reaches the file first. */
	pstore_close(c->store);
	for (i = 0; i < c->nbuckets; i++) {
		struct centry *ce, *next;

		for (ce = c->tab[i]; ce != NULL; ce = next) {
			next = ce->next;
			free(ce->e.body);
			free(ce);
		}
	}
	free(c->tab);
	free(c);
}

void
sts_cache_entry_free(struct sts_cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->body);
	free(e);
}

void
sts_cache_encode(const struct sts_cache_entry *e, buf_t *out)
{
	buf_printf(out, "STSC1 %s %" PRId64 " %" PRId64 " %" PRId64 "\n", e->id,
	    e->fetched, e->expires, e->last_used);
	buf_append(out, e->body, e->len);
}

const char *
sts_cache_decode(const void *data, size_t len, struct sts_cache_entry **out)
{
	const char *s = data, *nl;
	char head[128];
	struct sts_cache_entry *e;
	long long fetched, expires, used;
	char id[STS_ID_MAX + 2];
	size_t hl;
	int n = 0;

	*out = NULL;
	if ((nl = memchr(s, '\n', len < 128 ? len : 128)) == NULL)
		return "no header line";
	hl = (size_t)(nl - s);
	memcpy(head, s, hl);
	head[hl] = '\0';
	if (sscanf(head, "STSC1 %33s %lld %lld %lld%n", id, &fetched, &expires,
	        &used, &n) != 4 ||
	    (size_t)n != hl)
		return "bad header line";
	if (strlen(id) > STS_ID_MAX)
		return "id too long";
	if (len - hl - 1 > STS_POLICY_MAX)
		return "policy too long";
	e = xcalloc(1, sizeof(*e));
	memcpy(e->id, id, strlen(id) + 1);
	e->fetched = fetched;
	e->expires = expires;
	e->last_used = used;
	e->len = len - hl - 1;
	e->body = xmemdup(nl + 1, e->len);
	*out = e;
	return NULL;
}

static void
lower_key(const char *domain, char key[256])
{
	size_t i, n = strnlen(domain, 255);

	for (i = 0; i < n; i++)
		key[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z')
		                    ? domain[i] + 32
		                    : domain[i]);
	/* MX and domain names compare without the root dot. */
	if (n && key[n - 1] == '.')
		n--;
	key[n] = '\0';
}

int
sts_cache_get(sts_cache_t *c, const char *domain, struct sts_cache_entry **out)
{
	char keybuf[256];
	struct centry *ce;

	lower_key(domain, keybuf);
	if ((ce = *find_slot(c, keybuf)) == NULL)
		return 1;
	*out = entry_copy(&ce->e);
	return 0;
}

int
sts_cache_put(sts_cache_t *c, const struct sts_cache_entry *e)
{
	char keybuf[256];
	buf_t *b = buf_new(STS_POLICY_MAX + 256);

	lower_key(e->domain, keybuf);
	sts_cache_encode(e, b);
	if (buf_error(b)) {
		buf_free(b);
		return -1;
	}
	table_set(c, keybuf, entry_copy(e));
	pstore_write(c->store, keybuf, b);
	buf_free(b);
	return 0;
}

int
sts_cache_delete(sts_cache_t *c, const char *domain)
{
	char keybuf[256];
	struct centry **pp, *ce;

	lower_key(domain, keybuf);
	pp = find_slot(c, keybuf);
	if ((ce = *pp) == NULL)
		return 1;
	*pp = ce->next;
	c->n--;
	free(ce->e.body);
	free(ce);
	pstore_write(c->store, keybuf, NULL);
	return 0;
}

static int
by_domain(const void *a, const void *b)
{
	const struct sts_cache_entry *x =
	    *(const struct sts_cache_entry *const *)a;
	const struct sts_cache_entry *y =
	    *(const struct sts_cache_entry *const *)b;

	return strcmp(x->domain, y->domain);
}

int
sts_cache_walk(sts_cache_t *c, sts_cache_visit_fn *fn, void *arg)
{
	struct sts_cache_entry **v = xcalloc(c->n + 1, sizeof(*v));
	size_t i, k = 0;
	int stop = 0;

	/* Copies first, so that fn may put or delete; in domain order, as
	 * the file's B-tree gave them (the CLI lists them so). */
	for (i = 0; i < c->nbuckets; i++) {
		struct centry *ce;

		for (ce = c->tab[i]; ce != NULL && k < c->n; ce = ce->next)
			v[k++] = entry_copy(&ce->e);
	}
	qsort(v, k, sizeof(*v), by_domain);
	for (i = 0; i < k; i++) {
		if (!stop)
			stop = fn(arg, v[i]);
		sts_cache_entry_free(v[i]);
	}
	free(v);
	return 0;
}
