/*
 * sts_cache - see sts_cache.h. Record format (version 1):
 *   "STSC1 <id> <fetched> <expires> <last_used>\n" then the policy text.
 *
 * The file is read whole at open into a hash table that answers every
 * get and walk; puts and deletes change the table at once and are written
 * (with a sync) by a writer thread that alone uses the Berkeley DB handle
 * after open: the event loop never waits for the disk. Close drains the
 * writes before it closes the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <db.h>

#include "mta/util/hash.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/sts/sts_cache.h"

/* A cached entry in memory. */
struct centry {
	struct centry *next; /* in its hash chain */
	struct sts_cache_entry e; /* e.body owned */
};

/* A write for the writer thread: record NULL deletes key. */
struct cwrite {
	struct cwrite *next;
	char key[256];
	char *record;
	size_t len;
};

struct sts_cache {
	DB *db; /* after open: the writer thread's alone */
	char *path;
	struct centry **tab;
	size_t nbuckets, n;
	pthread_t writer;
	int have_writer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cwrite *head, **tail; /* under lock */
	int stopping; /* under lock */
};

/*
 * Berkeley DB creates a database as "__db.NAME" beside it and renames it
 * into place; when it finds that file it waits, without end, for the
 * process it takes to be creating it. One left by a start that failed in
 * between (or a crash) would hang every later start. Only the daemon opens
 * its cache (it holds the pid file lock), so such a file is stale.
 */
static void
remove_stale_temp(const char *path)
{
	const char *slash = strrchr(path, '/');
	buf_t *tmp = buf_new(4096);

	if (slash != NULL)
		buf_printf(
		    tmp, "%.*s/__db.%s", (int)(slash - path), path, slash + 1);
	else
		buf_printf(tmp, "__db.%s", path);
	if (!buf_error(tmp))
		(void)unlink(buf_data(tmp));
	buf_free(tmp);
}

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

static void *
writer_main(void *arg)
{
	struct sts_cache *c = arg;
	struct cwrite *w;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if ((w = c->head) == NULL)
			break; /* stopping, and every write done */
		c->head = w->next;
		if (c->head == NULL)
			c->tail = &c->head;
		pthread_mutex_unlock(&c->lock);
		{
			DBT key, val;
			int r;

			memset(&key, 0, sizeof(key));
			memset(&val, 0, sizeof(val));
			key.data = w->key;
			key.size = (u_int32_t)strlen(w->key);
			if (w->record != NULL) {
				val.data = w->record;
				val.size = (u_int32_t)w->len;
				r = c->db->put(c->db, NULL, &key, &val, 0);
			} else {
				r = c->db->del(c->db, NULL, &key, 0);
				if (r == DB_NOTFOUND)
					r = 0;
			}
			if (r == 0)
				r = c->db->sync(c->db, 0);
			if (r != 0)
				log_warn(
				    "mta-sts: cannot write the policy cache "
				    "%s for %s: %s",
				    c->path, w->key, db_strerror(r));
		}
		free(w->record);
		free(w);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void
queue_write(struct sts_cache *c, const char *key, buf_t *record)
{
	struct cwrite *w = xcalloc(1, sizeof(*w));

	memcpy(w->key, key, strlen(key) + 1);
	if (record != NULL)
		w->record = buf_steal(record, &w->len);
	pthread_mutex_lock(&c->lock);
	*c->tail = w;
	c->tail = &w->next;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Reads every record into the table (before the writer starts). */
static int
load_all(struct sts_cache *c, buf_t *err)
{
	DBC *cur;
	DBT key, val;
	int r;

	if ((r = c->db->cursor(c->db, NULL, &cur, 0)) != 0) {
		buf_printf(err, "%s: %s", c->path, db_strerror(r));
		return -1;
	}
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	while ((r = cur->get(cur, &key, &val, DB_NEXT)) == 0) {
		struct sts_cache_entry *e;
		char k[256];

		if (key.size == 0 || key.size >= 256 ||
		    sts_cache_decode(val.data, val.size, &e) != NULL)
			continue; /* a damaged record is as none */
		memcpy(k, key.data, key.size);
		k[key.size] = '\0';
		table_set(c, k, e);
	}
	cur->close(cur);
	if (r != DB_NOTFOUND) {
		buf_printf(err, "%s: %s", c->path, db_strerror(r));
		return -1;
	}
	return 0;
}

sts_cache_t *
sts_cache_open(const char *path, buf_t *err)
{
	sts_cache_t *c;
	DB *db;
	sigset_t all, old;
	int r;

	remove_stale_temp(path);
	if ((r = db_create(&db, NULL, 0)) != 0) {
		buf_printf(err, "%s: %s", path, db_strerror(r));
		return NULL;
	}
	r = db->open(db, NULL, path, NULL, DB_BTREE, DB_CREATE, 0600);
	if (r != 0) {
		buf_printf(err, "cannot open the MTA-STS policy cache %s: %s",
		    path, db_strerror(r));
		db->close(db, 0);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->db = db;
	c->path = xstrdup(path);
	c->nbuckets = 1024;
	c->tab = xcalloc(c->nbuckets, sizeof(*c->tab));
	c->tail = &c->head;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (load_all(c, err) < 0)
		goto fail;
	/* Signals belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&c->writer, NULL, writer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		buf_printf(err, "%s: cannot start the cache writer: %s", path,
		    strerror(r));
		goto fail;
	}
	c->have_writer = 1;
	return c;
fail:
	sts_cache_close(c);
	return NULL;
}

void
sts_cache_close(sts_cache_t *c)
{
	size_t i;

	if (c == NULL)
		return;
	if (c->have_writer) {
		/* Every write queued so far reaches the file first. */
		pthread_mutex_lock(&c->lock);
		c->stopping = 1;
		pthread_cond_signal(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->writer, NULL);
	}
	c->db->close(c->db, 0);
	for (i = 0; i < c->nbuckets; i++) {
		struct centry *ce, *next;

		for (ce = c->tab[i]; ce != NULL; ce = next) {
			next = ce->next;
			free(ce->e.body);
			free(ce);
		}
	}
	free(c->tab);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->path);
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
	queue_write(c, keybuf, b);
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
	queue_write(c, keybuf, NULL);
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
