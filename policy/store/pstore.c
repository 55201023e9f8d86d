/*
 * pstore - see pstore.h.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <db.h>

#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/store/pstore.h"

/* A write for the writer thread: record NULL deletes key. */
struct pwrite {
	struct pwrite *next;
	char key[PSTORE_KEY_MAX + 1];
	char *record;
	size_t len;
};

struct pstore {
	DB *db; /* after open: the writer thread's alone */
	char *path;
	char *what;
	pthread_t writer;
	int have_writer;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pwrite *head, **tail; /* under lock */
	int stopping; /* under lock */
};

/*
 * Berkeley DB creates a database as "__db.NAME" beside it and renames it
 * into place; when it finds that file it waits, without end, for the
 * process it takes to be creating it. One left by a start that failed in
 * between (or a crash) would hang every later start. Only the daemon opens
 * these files (it holds the pid file lock), so such a file is stale.
 */
static void
remove_stale_temp(const char *path)
{
	const char *slash = strrchr(path, '/');
	char tmp[4096];
	int n;

	if (slash == NULL)
		n = snprintf(tmp, sizeof(tmp), "__db.%s", path);
	else
		n = snprintf(tmp, sizeof(tmp), "%.*s/__db.%s",
		    (int)(slash - path), path, slash + 1);
	if (n > 0 && (size_t)n < sizeof(tmp))
		(void)unlink(tmp);
}

static void
write_one(struct pstore *s, struct pwrite *w)
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
		r = s->db->put(s->db, NULL, &key, &val, 0);
	} else {
		r = s->db->del(s->db, NULL, &key, 0);
		if (r == DB_NOTFOUND)
			r = 0;
	}
	if (r == 0)
		r = s->db->sync(s->db, 0);
	if (r != 0)
		log_warn("cannot write %s %s for %s: %s", s->what, s->path,
		    w->key, db_strerror(r));
}

static void *
writer_main(void *arg)
{
	struct pstore *s = arg;
	struct pwrite *w;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		if ((w = s->head) == NULL)
			break; /* stopping, and every write done */
		s->head = w->next;
		if (s->head == NULL)
			s->tail = &s->head;
		pthread_mutex_unlock(&s->lock);
		write_one(s, w);
		free(w->record);
		free(w);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void
pstore_write(pstore_t *s, const char *key, buf_t *record)
{
	struct pwrite *w = xcalloc(1, sizeof(*w));

	snprintf(w->key, sizeof(w->key), "%s", key);
	if (record != NULL)
		w->record = buf_steal(record, &w->len);
	pthread_mutex_lock(&s->lock);
	*s->tail = w;
	s->tail = &w->next;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Every record to load (before the writer starts). */
static int
load_all(struct pstore *s, pstore_load_fn *load, void *arg, buf_t *err)
{
	DBC *cur;
	DBT key, val;
	int r;

	if ((r = s->db->cursor(s->db, NULL, &cur, 0)) != 0) {
		buf_printf(err, "%s: %s", s->path, db_strerror(r));
		return -1;
	}
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	while ((r = cur->get(cur, &key, &val, DB_NEXT)) == 0) {
		char k[PSTORE_KEY_MAX + 1];

		if (key.size == 0 || key.size > PSTORE_KEY_MAX ||
		    memchr(key.data, '\0', key.size) != NULL) {
			log_warn("%s: a bad key skipped", s->path);
			continue;
		}
		memcpy(k, key.data, key.size);
		k[key.size] = '\0';
		load(arg, k, val.data, val.size);
	}
	cur->close(cur);
	if (r != DB_NOTFOUND) {
		buf_printf(err, "%s: %s", s->path, db_strerror(r));
		return -1;
	}
	return 0;
}

pstore_t *
pstore_open(const char *path, const char *what, pstore_load_fn *load, void *arg,
    buf_t *err)
{
	pstore_t *s;
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
		buf_printf(
		    err, "cannot open %s %s: %s", what, path, db_strerror(r));
		db->close(db, 0);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->db = db;
	s->path = xstrdup(path);
	s->what = xstrdup(what);
	s->tail = &s->head;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (load_all(s, load, arg, err) < 0)
		goto fail;
	/* Signals belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&s->writer, NULL, writer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		buf_printf(err, "%s: cannot start the writer of %s: %s", path,
		    what, strerror(r));
		goto fail;
	}
	s->have_writer = 1;
	return s;
fail:
	pstore_close(s);
	return NULL;
}

void
pstore_close(pstore_t *s)
{
	if (s == NULL)
		return;
	if (s->have_writer) {
		/* Every write queued so far reaches the file first. */
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->writer, NULL);
	}
	s->db->close(s->db, 0);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->what);
	free(s->path);
	free(s);
}

const char *
pstore_path(const pstore_t *s)
{
	return s->path;
}
