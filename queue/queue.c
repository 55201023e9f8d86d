/*
 * queue - the Berkeley DB queue store; see queue.h.
 *
 * Layout under queue_directory:
 *   db/            the environment (mode 0700): log files log.NNNNNNNNNN
 *   db/envelopes.db, db/contents.db, db/schedule.db,
 *   db/tails.db    (B-trees)
 *
 * Content: contents.db holds the longest head of a message that fills its
 * overflow pages exactly (a multiple of the page's payload), tails.db the
 * rest (shorter than a page's payload) on 16 KiB leaf pages, packed with
 * other tails: a message no longer wastes half an overflow page on
 * average (5 KB: 1.12x its size in the two files, not 1.2x). A message
 * without a tail record (written before tails.db existed, or a multiple of
 * the payload) is its head alone; one without a head record (shorter than
 * a payload) its tail alone: a queue written by an older version reads
 * as it is, with no migration.
 *                  (no region files: DB_PRIVATE, see queue_open)
 *   db/queue.lock  flock()ed while open: DB_RECOVER must never run while
 *                  another process has the environment open.
 *
 * Every change is one transaction committed with DB_TXN_NOSYNC; the log
 * reaches the disk at queue_sync() (one log flush covers every commit
 * before it) so callers batch fsyncs: group commit. A deadlock between
 * threads aborts one transaction, which is retried a bounded number of
 * times.
 *
 * The schedule index holds exactly one key per message that has a pending
 * or deferred recipient: the message's earliest next attempt. queue_due()
 * repairs a key that does not match its envelope (it deletes it), so a
 * stale key can cost one wasted read but never a lost or doubled visit.
 */
#include <db.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "mta/util/xalloc.h"
#include "queue.h"

/* Sizes: a 1 MiB log buffer lets a batch of ordinary messages reach the
 * disk in one write; 8 MiB log files are removed as soon as a checkpoint
 * no longer needs them, so the log tracks the queue's content. */
#define QUEUE_CACHE_BYTES (16u * 1024 * 1024)
#define QUEUE_LOG_BUFFER (1u * 1024 * 1024)
#define QUEUE_LOG_FILE_MAX (8u * 1024 * 1024)
/* Bodies above a quarter page go to overflow pages, whole pages each:
 * 2 KiB pages hold a 5 KB message in 3 (1.2x its size), where 16 KiB
 * pages took one whole 16 KiB page (3x); a 100 KB one costs 1.03x. */
#define QUEUE_CONTENT_PAGESIZE 2048
#define QUEUE_TAIL_PAGESIZE 16384
/* Berkeley DB's overflow page header (P_OVERHEAD). */
#define QUEUE_OVERFLOW_HEADER 26
#define QUEUE_DEADLOCK_RETRIES 50
/* Removed bytes that make queue_checkpoint() compact the files. */
#define QUEUE_COMPACT_AFTER (16u * 1024 * 1024)
/* Free space kept beyond each new message (see queue_put): room for
 * every page the cache may still have to write, the log buffer, and the
 * current and the next log file, so that a checkpoint, a clean close and
 * recovery after a crash still succeed when new mail is refused. */
#define QUEUE_RESERVE_DEFAULT                                                  \
	((uint64_t)QUEUE_CACHE_BYTES + QUEUE_LOG_BUFFER +                      \
	    2ull * QUEUE_LOG_FILE_MAX)

#define SCHED_KEY_LEN (8 + QUEUE_ID_LEN)

struct queue {
	DB_ENV *env;
	DB *envelopes, *contents, *schedule, *tails;
	u_int32_t
	    head_unit; /* content bytes one contents.db overflow page holds */
	char *dir; /* queue_directory */
	char *dbdir; /* queue_directory/db */
	int lockfd;
	int opening; /* errcall: collect messages, do not log */
	pthread_mutex_t lock; /* guards dberr */
	buf_t *dberr; /* the last message from Berkeley DB */
	uint64_t minfree; /* bytes kept free beyond a new message */
	/* Berkeley DB reported ENOSPC underneath since the last good sync:
	 * its later errors (EIO from a cache full of unwritable pages) are
	 * the full disk too. */
	atomic_int nospace;
	/* Bytes removed since the last compaction (+1 KiB a message). */
	atomic_uint_fast64_t removed_bytes;
	atomic_int panicked; /* DB_EVENT_PANIC seen */
};

/* Berkeley DB's own explanations ("BDB0062 ..."): kept for the error
 * message while opening, logged afterwards. */
static void
queue_errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
	queue_t *q = env->app_private;

	(void)pfx;
	if (q == NULL)
		return;
	if (strstr(msg, strerror(ENOSPC)) != NULL)
		atomic_store(&q->nospace, 1);
	pthread_mutex_lock(&q->lock);
	/* While opening, keep them all: the first usually names the file
	 * and the cause, the last only says that opening failed. */
	if (!q->opening)
		buf_reset(q->dberr);
	/* A damaged file repeats one complaint for every page it reads:
	 * say each once. */
	if (q->opening && strstr(buf_data(q->dberr), msg) != NULL) {
		pthread_mutex_unlock(&q->lock);
		return;
	}
	if (buf_len(q->dberr) > 0)
		buf_puts(q->dberr, "; ");
	buf_put_printable(q->dberr, msg, strlen(msg));
	pthread_mutex_unlock(&q->lock);
	if (!q->opening)
		log_warn("queue %s: berkeley db: %s", q->dbdir, msg);
}

static void
queue_event(DB_ENV *env, u_int32_t event, void *info)
{
	queue_t *q = env->app_private;

	(void)info;
	if (event == DB_EVENT_PANIC && q)
		atomic_store(&q->panicked, 1);
	if (event == DB_EVENT_PANIC)
		log_err("queue %s: database environment panic; every queue "
		        "operation fails until the daemon restarts (recovery)",
		    q ? q->dbdir : "?");
}

static int
is_nospace(int ret)
{
	return ret == ENOSPC || ret == EDQUOT || ret == EFBIG;
}

/* Maps a Berkeley DB result to QUEUE_*, with a message in err. */
static int
queue_result(queue_t *q, int ret, const char *what, const char *qid, buf_t *err)
{
	int code;

	switch (ret) {
	case 0:
		return QUEUE_OK;
	case DB_NOTFOUND:
		code = QUEUE_ENOTFOUND;
		break;
	case DB_KEYEXIST:
		code = QUEUE_EEXIST;
		break;
	default:
		code = is_nospace(ret) || atomic_load(&q->nospace)
		           ? QUEUE_ENOSPC
		           : QUEUE_ERR;
		break;
	}
	if (err) {
		buf_reset(err);
		if (code == QUEUE_EEXIST)
			buf_printf(
			    err, "queue ID %s already in the queue", qid);
		else
			buf_printf(err, "queue %s: %s%s%s: %s", q->dbdir, what,
			    qid ? " " : "", qid ? qid : "", db_strerror(ret));
	}
	if ((code == QUEUE_ERR || code == QUEUE_ENOSPC) && qid)
		log_warn(
		    "%s: queue %s failed: %s", qid, what, db_strerror(ret));
	else if (code == QUEUE_ERR || code == QUEUE_ENOSPC)
		log_warn("queue %s: %s failed: %s", q->dbdir, what,
		    db_strerror(ret));
	return code;
}

static void
dbt_init(DBT *d, const void *data, size_t len)
{
	memset(d, 0, sizeof(*d));
	d->data = (void *)data;
	d->size = (u_int32_t)len;
}

static void
sched_key(unsigned char key[SCHED_KEY_LEN], int64_t when, const char *qid)
{
	uint64_t t = when < 0 ? 0 : (uint64_t)when;
	int i;

	for (i = 0; i < 8; i++)
		key[i] = (unsigned char)(t >> (56 - 8 * i));
	memcpy(key + 8, qid, QUEUE_ID_LEN);
}

static int64_t
sched_time(const unsigned char *key)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < 8; i++)
		t = t << 8 | key[i];
	return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

/*
 * Runs op in a transaction, committed without sync; retried when Berkeley
 * DB picks it as a deadlock victim. Returns a Berkeley DB result.
 */
typedef int txn_op(queue_t *, DB_TXN *, void *);

static int
queue_txn(queue_t *q, txn_op *op, void *arg)
{
	DB_TXN *txn;
	int ret, tries;

	for (tries = 0; tries < QUEUE_DEADLOCK_RETRIES; tries++) {
		if ((ret = q->env->txn_begin(q->env, NULL, &txn, 0)) != 0)
			return ret;
		if ((ret = op(q, txn, arg)) != 0) {
			(void)txn->abort(txn);
			if (ret == DB_LOCK_DEADLOCK ||
			    ret == DB_LOCK_NOTGRANTED)
				continue;
			return ret;
		}
		return txn->commit(txn, DB_TXN_NOSYNC);
	}
	return ret;
}

/* Opening. */

static int
ensure_dir(const char *path, buf_t *err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			buf_printf(err, "queue directory %s: %s", path,
			    strerror(errno));
			return -1;
		}
		if (mkdir(path, 0700) < 0) {
			buf_printf(err, "cannot create queue directory %s: %s",
			    path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		buf_printf(err, "queue directory %s: not a directory", path);
		return -1;
	}
	if (access(path, R_OK | W_OK | X_OK) < 0) {
		buf_printf(
		    err, "queue directory %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
open_error(queue_t *q, buf_t *err, const char *what, const char *path, int ret)
{
	buf_printf(err, "%s %s: %s", what, path, db_strerror(ret));
	pthread_mutex_lock(&q->lock);
	if (buf_len(q->dberr) > 0)
		buf_printf(err, " (%s)", buf_data(q->dberr));
	pthread_mutex_unlock(&q->lock);
}

static int
open_db(queue_t *q, DB **dbp, const char *name, u_int32_t pagesize, buf_t *err)
{
	DB *db;
	int ret;

	*dbp = NULL;
	if ((ret = db_create(&db, q->env, 0)) != 0) {
		open_error(
		    q, err, "cannot create database handle for", q->dbdir, ret);
		return -1;
	}
	if (pagesize)
		(void)db->set_pagesize(db, pagesize);
	ret = db->open(db, NULL, name, NULL, DB_BTREE,
	    DB_CREATE | DB_THREAD | DB_AUTO_COMMIT, 0600);
	if (ret != 0) {
		buf_t *path = buf_new(0);

		buf_printf(path, "%s/%s", q->dbdir, name);
		open_error(
		    q, err, "cannot open queue database", buf_data(path), ret);
		buf_free(path);
		(void)db->close(db, 0);
		return -1;
	}
	*dbp = db;
	return 0;
}

static void
queue_free(queue_t *q)
{
	if (q->tails)
		(void)q->tails->close(q->tails, 0);
	if (q->schedule)
		(void)q->schedule->close(q->schedule, 0);
	if (q->contents)
		(void)q->contents->close(q->contents, 0);
	if (q->envelopes)
		(void)q->envelopes->close(q->envelopes, 0);
	if (q->env)
		(void)q->env->close(q->env, 0);
	if (q->lockfd >= 0)
		close(q->lockfd); /* releases the flock */
	pthread_mutex_destroy(&q->lock);
	buf_free(q->dberr);
	free(q->dir);
	free(q->dbdir);
	free(q);
}

queue_t *
queue_open(const char *dir, buf_t *err)
{
	queue_t *q = xcalloc(1, sizeof(*q));
	buf_t *path = buf_new(0);
	u_int32_t flags;
	int ret;

	buf_reset(err);
	q->lockfd = -1;
	q->opening = 1;
	pthread_mutex_init(&q->lock, NULL);
	q->dberr = buf_new(2048);
	q->minfree = QUEUE_RESERVE_DEFAULT;
	q->dir = xstrdup(dir);
	buf_printf(path, "%s/db", dir);
	q->dbdir = buf_steal(path, NULL);

	if (ensure_dir(q->dir, err) < 0 || ensure_dir(q->dbdir, err) < 0)
		goto fail;

	buf_printf(path, "%s/queue.lock", q->dbdir);
	q->lockfd = open(buf_data(path), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (q->lockfd < 0) {
		buf_printf(err, "cannot open queue lock file %s: %s",
		    buf_data(path), strerror(errno));
		goto fail;
	}
	if (flock(q->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			buf_printf(err,
			    "queue %s is in use by another process (%s is "
			    "locked)",
			    q->dbdir, buf_data(path));
		else
			buf_printf(err, "cannot lock %s: %s", buf_data(path),
			    strerror(errno));
		goto fail;
	}

	if ((ret = db_env_create(&q->env, 0)) != 0) {
		open_error(q, err, "cannot create database environment for",
		    q->dbdir, ret);
		goto fail;
	}
	q->env->app_private = q;
	q->env->set_errcall(q->env, queue_errcall);
	(void)q->env->set_event_notify(q->env, queue_event);
	(void)q->env->set_cachesize(q->env, 0, QUEUE_CACHE_BYTES, 1);
	(void)q->env->set_lg_bsize(q->env, QUEUE_LOG_BUFFER);
	(void)q->env->set_lg_max(q->env, QUEUE_LOG_FILE_MAX);
	(void)q->env->set_lk_detect(q->env, DB_LOCK_DEFAULT);
	(void)q->env->set_lk_max_locks(q->env, 20000);
	(void)q->env->set_lk_max_objects(q->env, 20000);
	(void)q->env->set_lk_max_lockers(q->env, 2000);
	(void)q->env->set_tx_max(q->env, 1000);
	(void)q->env->log_set_config(q->env, DB_LOG_AUTO_REMOVE, 1);
	/* DB_PRIVATE: the regions (cache, locks, log buffer) live in this
	 * process's memory, not in mapped files under db/. Only one process
	 * opens the queue (see queue.lock), and a mapped region file on a
	 * full file system turns a page fault into SIGBUS. */
	flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG |
	        DB_INIT_MPOOL | DB_RECOVER | DB_THREAD | DB_PRIVATE;
	if ((ret = q->env->open(q->env, q->dbdir, flags, 0600)) != 0) {
		open_error(q, err, "cannot open queue database environment",
		    q->dbdir, ret);
		goto fail;
	}
	if (open_db(q, &q->envelopes, "envelopes.db", 0, err) < 0 ||
	    open_db(q, &q->contents, "contents.db", QUEUE_CONTENT_PAGESIZE,
	        err) < 0 ||
	    open_db(q, &q->schedule, "schedule.db", 0, err) < 0 ||
	    open_db(q, &q->tails, "tails.db", QUEUE_TAIL_PAGESIZE, err) < 0)
		goto fail;
	{
		/* The file's own page size (an older queue's may differ). */
		u_int32_t ps = QUEUE_CONTENT_PAGESIZE;

		(void)q->contents->get_pagesize(q->contents, &ps);
		q->head_unit = ps - QUEUE_OVERFLOW_HEADER;
	}
	q->opening = 0;
	buf_free(path);
	log_info("queue %s: opened", q->dbdir);
	return q;

fail:
	if (buf_len(err) == 0)
		buf_printf(err, "cannot open queue %s", q->dbdir);
	buf_free(path);
	queue_free(q);
	return NULL;
}

int
queue_failed(queue_t *q)
{
	return atomic_load(&q->panicked);
}

void
queue_close(queue_t *q)
{
	if (q == NULL)
		return;
	(void)queue_checkpoint(q);
	queue_free(q);
}

void
queue_new_id(char qid[QUEUE_ID_SIZE])
{
	qid_new(qid);
}

static int checkpoint(queue_t *, uint64_t compact_after);

/* Storing. */

struct put_arg {
	const struct queue_env *env;
	buf_t *record;
	const void *content;
	size_t len;
};

static int
put_op(queue_t *q, DB_TXN *txn, void *a)
{
	struct put_arg *pa = a;
	unsigned char sk[SCHED_KEY_LEN];
	int64_t due = queue_env_next_due(pa->env);
	size_t head;
	DBT key, data;
	int ret;

	dbt_init(&key, pa->env->qid, QUEUE_ID_LEN);
	dbt_init(&data, buf_data(pa->record), buf_len(pa->record));
	ret = q->envelopes->put(q->envelopes, txn, &key, &data, DB_NOOVERWRITE);
	if (ret != 0)
		return ret;
	/* The head fills whole overflow pages; the tail packs on leaves. A
	 * head shorter than the overflow threshold would sit on a leaf. */
	head = pa->len / q->head_unit * q->head_unit;
	if (head > 0) {
		dbt_init(&data, pa->content, head);
		ret = q->contents->put(q->contents, txn, &key, &data, 0);
		if (ret != 0)
			return ret;
	}
	if (head < pa->len || pa->len == 0) {
		dbt_init(
		    &data, (const char *)pa->content + head, pa->len - head);
		ret = q->tails->put(q->tails, txn, &key, &data, 0);
		if (ret != 0)
			return ret;
	}
	if (due < 0)
		return 0;
	sched_key(sk, due, pa->env->qid);
	dbt_init(&key, sk, sizeof(sk));
	dbt_init(&data, "", 0);
	return q->schedule->put(q->schedule, txn, &key, &data, 0);
}

void
queue_set_minfree(queue_t *q, uint64_t bytes)
{
	q->minfree = bytes ? bytes : QUEUE_RESERVE_DEFAULT;
}

/*
 * A new message needs room twice (in the log and in the database) plus a
 * reserve, so that updates and deletions of what is already queued, and
 * the log file switch after a checkpoint, still find room. Refusing at
 * the door keeps Berkeley DB away from a truly full disk, where it can
 * only fail.
 */
static int
space_for(queue_t *q, size_t len)
{
	struct statvfs sv;
	uint64_t avail;

	if (statvfs(q->dbdir, &sv) < 0)
		return 1; /* cannot tell: let the write decide */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return avail >= q->minfree && avail - q->minfree >= 2 * (uint64_t)len;
}

/*
 * Before a change that removes or rewrites what is queued: when the file
 * system is into the reserve, checkpoint first so that old log files go.
 * A delete logs the data it deletes (for undo), so a run of deliveries on
 * a full disk would otherwise fill it with log and fail.
 */
static void
relieve(queue_t *q)
{
	if (!space_for(q, 0))
		(void)checkpoint(q, QUEUE_LOG_FILE_MAX);
}

int
queue_put(queue_t *q, const struct queue_env *env, const void *content,
    size_t len, buf_t *err)
{
	struct put_arg pa = {env, NULL, content, len};
	int ret, code;

	if (!qid_valid(env->qid)) {
		if (err) {
			buf_reset(err);
			buf_puts(err, "queue_put: bad queue ID");
		}
		return QUEUE_ERR;
	}
	if (len > UINT32_MAX - 1) {
		if (err) {
			buf_reset(err);
			buf_printf(err, "%s: message too large for the queue",
			    env->qid);
		}
		return QUEUE_ERR;
	}
	/* Short of space: a checkpoint may free whole log files, and
	 * compaction the pages of whatever left the queue since the last. */
	if (!space_for(q, len) &&
	    (checkpoint(q, 1) != QUEUE_OK || !space_for(q, len))) {
		if (err) {
			buf_reset(err);
			buf_printf(err,
			    "queue %s: not enough free space for a message of "
			    "%zu bytes",
			    q->dbdir, len);
		}
		log_warn("%s: queue file system full: %s is short of free "
		         "space",
		    env->qid, q->dbdir);
		return QUEUE_ENOSPC;
	}
	pa.record = buf_new(0);
	queue_env_encode(env, pa.record);
	ret = queue_txn(q, put_op, &pa);
	buf_free(pa.record);
	code = queue_result(q, ret, "put", env->qid, err);
	if (code == QUEUE_OK) {
		buf_t *line = buf_new(2048);

		if (env->sender)
			buf_put_printable(
			    line, env->sender, strlen(env->sender));
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)",
		    env->qid, buf_data(line), (unsigned long long)env->size,
		    env->nrcpt);
		buf_free(line);
	}
	return code;
}

int
queue_sync(queue_t *q, buf_t *err)
{
	int ret = q->env->log_flush(q->env, NULL);

	if (ret == 0)
		atomic_store(&q->nospace, 0);
	return queue_result(q, ret, "log flush", NULL, err);
}

/* Reading. */

/* Reads one record (malloc'd) outside any transaction. */
static int
read_record(queue_t *q, DB *db, DB_TXN *txn, const char *qid, u_int32_t flags,
    DBT *data)
{
	DBT key;
	int ret, tries;

	dbt_init(&key, qid, QUEUE_ID_LEN);
	for (tries = 0; tries < QUEUE_DEADLOCK_RETRIES; tries++) {
		memset(data, 0, sizeof(*data));
		data->flags = DB_DBT_MALLOC;
		ret = db->get(db, txn, &key, data, flags);
		/* Inside a transaction the caller retries as a whole. */
		if (txn || ret != DB_LOCK_DEADLOCK)
			break;
	}
	(void)q;
	return ret;
}

static int
decode_record(const char *qid, DBT *data, struct queue_env **envp)
{
	const char *why;

	why = queue_env_decode(data->data, data->size, envp);
	free(data->data);
	data->data = NULL;
	if (why) {
		log_err("%s: damaged envelope record: %s", qid, why);
		return QUEUE_ERR;
	}
	return QUEUE_OK;
}

int
queue_get(queue_t *q, const char *qid, struct queue_env **envp)
{
	DBT data;
	int ret;

	*envp = NULL;
	if (!qid_valid(qid))
		return QUEUE_ENOTFOUND;
	ret = read_record(q, q->envelopes, NULL, qid, 0, &data);
	if (ret != 0)
		return queue_result(q, ret, "get", qid, NULL);
	return decode_record(qid, &data, envp);
}

int
queue_get_content(queue_t *q, const char *qid, buf_t *out)
{
	DBT data;
	int ret, found;

	if (!qid_valid(qid))
		return QUEUE_ENOTFOUND;
	/* Head, then tail; either may be absent (see the top), not both. A
	 * message removed between the two reads has no tail any more: the
	 * caller's envelope read decides whether it still exists. */
	ret = read_record(q, q->contents, NULL, qid, 0, &data);
	if (ret != 0 && ret != DB_NOTFOUND)
		return queue_result(q, ret, "get content", qid, NULL);
	found = ret == 0;
	if (found) {
		ret = buf_append(out, data.data, data.size);
		free(data.data);
		if (ret < 0)
			goto too_large;
	}
	ret = read_record(q, q->tails, NULL, qid, 0, &data);
	if (ret != 0 && (ret != DB_NOTFOUND || !found))
		return queue_result(q, ret, "get content", qid, NULL);
	if (ret == DB_NOTFOUND)
		return QUEUE_OK;
	ret = buf_append(out, data.data, data.size);
	free(data.data);
	if (ret < 0) {
	too_large:
		log_err("%s: content does not fit the caller's buffer", qid);
		return QUEUE_ERR;
	}
	return QUEUE_OK;
}

/* Changing. */

static int
all_final(const struct queue_env *env)
{
	size_t i;

	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state != RCPT_DELIVERED &&
		    env->rcpts[i].state != RCPT_FAILED)
			return 0;
	return 1;
}

static int
sched_del(queue_t *q, DB_TXN *txn, int64_t when, const char *qid)
{
	unsigned char sk[SCHED_KEY_LEN];
	DBT key;
	int ret;

	sched_key(sk, when, qid);
	dbt_init(&key, sk, sizeof(sk));
	ret = q->schedule->del(q->schedule, txn, &key, 0);
	return ret == DB_NOTFOUND ? 0 : ret;
}

/*
 * The old envelope under a write lock, for its schedule key. A damaged
 * old record gives *old_due = -1: its key, if any, is left for
 * queue_due() to remove.
 */
static int
old_due_time(queue_t *q, DB_TXN *txn, const char *qid, int64_t *old_due,
    uint64_t *old_size)
{
	struct queue_env *old;
	DBT data;
	int ret;

	*old_due = -1;
	*old_size = 0;
	ret = read_record(q, q->envelopes, txn, qid, DB_RMW, &data);
	if (ret != 0)
		return ret;
	if (decode_record(qid, &data, &old) == QUEUE_OK) {
		*old_due = queue_env_next_due(old);
		*old_size = old->size;
		queue_env_free(old);
	}
	return 0;
}

static int
remove_whole(queue_t *q, DB_TXN *txn, const char *qid)
{
	DBT key;
	int ret;

	dbt_init(&key, qid, QUEUE_ID_LEN);
	if ((ret = q->envelopes->del(q->envelopes, txn, &key, 0)) != 0)
		return ret;
	ret = q->contents->del(q->contents, txn, &key, 0);
	if (ret != 0 && ret != DB_NOTFOUND)
		return ret;
	ret = q->tails->del(q->tails, txn, &key, 0);
	return ret == DB_NOTFOUND ? 0 : ret;
}

/* Counts what left the queue, so that queue_checkpoint() compacts the
 * files only when there is space to give back. */
static void
note_removed(queue_t *q, const char *qid, uint64_t size)
{
	atomic_fetch_add(&q->removed_bytes, size + 1024);
	log_info("%s: removed", qid);
}

struct update_arg {
	const struct queue_env *env;
	buf_t *record;
	int removed;
	uint64_t size; /* of the stored message */
};

static int write_env(queue_t *, DB_TXN *, struct update_arg *, int64_t);

static int
update_op(queue_t *q, DB_TXN *txn, void *a)
{
	struct update_arg *ua = a;
	const char *qid = ua->env->qid;
	int64_t old_due;
	int ret;

	ua->removed = 0;
	if ((ret = old_due_time(q, txn, qid, &old_due, &ua->size)) != 0)
		return ret;
	return write_env(q, txn, ua, old_due);
}

/* The write half of an update: the envelope replaced (or the message
 * removed) and its index key moved from old_due. */
static int
write_env(queue_t *q, DB_TXN *txn, struct update_arg *ua, int64_t old_due)
{
	const char *qid = ua->env->qid;
	int64_t due = queue_env_next_due(ua->env);
	unsigned char sk[SCHED_KEY_LEN];
	DBT key, data;
	int ret;

	if (old_due >= 0 && (old_due != due || ua->record == NULL))
		if ((ret = sched_del(q, txn, old_due, qid)) != 0)
			return ret;
	if (ua->record == NULL) {
		ua->removed = 1;
		return remove_whole(q, txn, qid);
	}
	dbt_init(&key, qid, QUEUE_ID_LEN);
	dbt_init(&data, buf_data(ua->record), buf_len(ua->record));
	if ((ret = q->envelopes->put(q->envelopes, txn, &key, &data, 0)) != 0)
		return ret;
	if (due < 0 || due == old_due)
		return 0;
	sched_key(sk, due, qid);
	dbt_init(&key, sk, sizeof(sk));
	dbt_init(&data, "", 0);
	return q->schedule->put(q->schedule, txn, &key, &data, 0);
}

int
queue_update(queue_t *q, const struct queue_env *env)
{
	struct update_arg ua = {env, NULL, 0, 0};
	int ret;

	if (!qid_valid(env->qid))
		return QUEUE_ENOTFOUND;
	relieve(q);
	if (!all_final(env)) {
		ua.record = buf_new(0);
		queue_env_encode(env, ua.record);
	}
	ret = queue_txn(q, update_op, &ua);
	buf_free(ua.record);
	if (ret == 0 && ua.removed)
		note_removed(q, env->qid, ua.size);
	return queue_result(q, ret, "update", env->qid, NULL);
}

void
queue_keep_holds(queue_t *q, struct queue_env *env)
{
	struct queue_env *cur = NULL;
	size_t i;

	if (queue_get(q, env->qid, &cur) != QUEUE_OK)
		return;
	if (cur->nrcpt == env->nrcpt)
		for (i = 0; i < env->nrcpt; i++)
			if (cur->rcpts[i].state == RCPT_HELD &&
			    env->rcpts[i].state != RCPT_DELIVERED &&
			    env->rcpts[i].state != RCPT_FAILED &&
			    strcmp(cur->rcpts[i].address,
			        env->rcpts[i].address) == 0)
				env->rcpts[i].state = RCPT_HELD;
	queue_env_free(cur);
}

struct delete_arg {
	char qid[QUEUE_ID_SIZE];
	uint64_t size;
};

static int
delete_op(queue_t *q, DB_TXN *txn, void *a)
{
	struct delete_arg *da = a;
	const char *qid = da->qid;
	int64_t old_due;
	int ret;

	if ((ret = old_due_time(q, txn, qid, &old_due, &da->size)) != 0)
		return ret;
	if (old_due >= 0 && (ret = sched_del(q, txn, old_due, qid)) != 0)
		return ret;
	return remove_whole(q, txn, qid);
}

int
queue_delete(queue_t *q, const char *qid)
{
	struct delete_arg da;
	int ret;

	if (!qid_valid(qid))
		return QUEUE_ENOTFOUND;
	memcpy(da.qid, qid, sizeof(da.qid));
	da.size = 0;
	relieve(q);
	ret = queue_txn(q, delete_op, &da);
	if (ret == 0)
		note_removed(q, da.qid, da.size);
	return queue_result(q, ret, "delete", da.qid, NULL);
}

/* Walking. */

struct sched_entry {
	int64_t when;
	char qid[QUEUE_ID_SIZE];
};

/*
 * Collects the schedule keys due at or before now (at most max; 0: no
 * limit) with the cursor closed afterwards, so that the visitor may
 * update the queue without waiting on a lock its own walk holds.
 */
static int
collect_due(
    queue_t *q, int64_t now, size_t max, struct sched_entry **vp, size_t *np)
{
	struct sched_entry *v = NULL;
	size_t n = 0, alloc = 0;
	DBC *cur;
	DBT key, data;
	u_int32_t op;
	int ret, tries;

	for (tries = 0; tries < QUEUE_DEADLOCK_RETRIES; tries++) {
		n = 0;
		op = DB_FIRST;
		ret = q->schedule->cursor(
		    q->schedule, NULL, &cur, DB_READ_COMMITTED);
		if (ret != 0)
			break;
		memset(&key, 0, sizeof(key));
		memset(&data, 0, sizeof(data));
		key.flags = DB_DBT_REALLOC;
		data.flags = DB_DBT_REALLOC;
		while ((max == 0 || n < max) &&
		       (ret = cur->get(cur, &key, &data, op)) == 0) {
			op = DB_NEXT;
			if (key.size != SCHED_KEY_LEN) {
				log_warn("queue %s: schedule key of %u bytes "
				         "ignored",
				    q->dbdir, key.size);
				continue;
			}
			if (sched_time(key.data) > now)
				break;
			if (n == alloc) {
				alloc = alloc ? alloc * 2 : 64;
				v = xreallocarray(v, alloc, sizeof(*v));
			}
			v[n].when = sched_time(key.data);
			memcpy(v[n].qid, (char *)key.data + 8, QUEUE_ID_LEN);
			v[n].qid[QUEUE_ID_LEN] = '\0';
			n++;
		}
		free(key.data);
		free(data.data);
		(void)cur->close(cur);
		if (ret == DB_NOTFOUND)
			ret = 0;
		if (ret != DB_LOCK_DEADLOCK)
			break;
	}
	*vp = v;
	*np = n;
	return ret;
}

struct stale_arg {
	int64_t when;
	const char *qid;
};

/* Deletes a schedule key if, under the envelope's lock, it is stale. */
static int
stale_op(queue_t *q, DB_TXN *txn, void *a)
{
	struct stale_arg *sa = a;
	int64_t due;
	uint64_t size;
	int ret = old_due_time(q, txn, sa->qid, &due, &size);

	if (ret == DB_NOTFOUND)
		due = -1;
	else if (ret != 0)
		return ret;
	if (due == sa->when)
		return 0;
	return sched_del(q, txn, sa->when, sa->qid);
}

int
queue_due(queue_t *q, int64_t now, size_t max, queue_visit_fn *fn, void *arg)
{
	return queue_due_skip(q, now, max, NULL, fn, arg);
}

int
queue_due_skip(queue_t *q, int64_t now, size_t max, queue_skip_fn *skip,
    queue_visit_fn *fn, void *arg)
{
	struct sched_entry *v;
	size_t n, i;
	int ret, visited = 0;

	if ((ret = collect_due(q, now, max, &v, &n)) != 0)
		return queue_result(q, ret, "schedule walk", NULL, NULL);
	for (i = 0; i < n; i++) {
		struct queue_env *env = NULL;
		int rc;

		if (skip != NULL && skip(arg, v[i].qid))
			continue;
		rc = queue_get(q, v[i].qid, &env);
		int64_t due = env ? queue_env_next_due(env) : -1;

		if (rc == QUEUE_OK && due == v[i].when) {
			visited++;
			rc = fn(arg, env);
			queue_env_free(env);
			if (rc != 0)
				break;
			continue;
		}
		queue_env_free(env);
		if (rc == QUEUE_OK || rc == QUEUE_ENOTFOUND) {
			struct stale_arg sa = {v[i].when, v[i].qid};

			log_debug("%s: schedule entry at %lld is stale",
			    v[i].qid, (long long)v[i].when);
			(void)queue_txn(q, stale_op, &sa);
		}
	}
	free(v);
	return visited;
}

int64_t
queue_next_wakeup(queue_t *q)
{
	DBC *cur;
	DBT key, data;
	int64_t when = -1;
	int ret = DB_LOCK_DEADLOCK, tries;

	for (tries = 0;
	     tries < QUEUE_DEADLOCK_RETRIES && ret == DB_LOCK_DEADLOCK;
	     tries++) {
		ret = q->schedule->cursor(
		    q->schedule, NULL, &cur, DB_READ_COMMITTED);
		if (ret != 0)
			break;
		memset(&key, 0, sizeof(key));
		memset(&data, 0, sizeof(data));
		key.flags = DB_DBT_MALLOC;
		data.flags = DB_DBT_MALLOC;
		ret = cur->get(cur, &key, &data, DB_FIRST);
		if (ret == 0) {
			if (key.size == SCHED_KEY_LEN)
				when = sched_time(key.data);
			free(key.data);
			free(data.data);
		}
		(void)cur->close(cur);
	}
	/* On a failure, -1 leaves it to the periodic queue run
	 * (queue_run_delay) rather than spinning on a broken database. */
	if (ret != 0 && ret != DB_NOTFOUND)
		(void)queue_result(q, ret, "schedule read", NULL, NULL);
	return when;
}

/*
 * Visits envelopes in queue ID order in chunks: each chunk is read with a
 * cursor that is closed before the visitor runs (see collect_due). Queue
 * IDs never change, so resuming after the last ID seen is exact.
 */
#define WALK_CHUNK 256

struct walk_rec {
	char qid[QUEUE_ID_SIZE];
	void *data;
	u_int32_t size;
};

static int
walk_chunk(queue_t *q, const char *after, struct walk_rec *v, size_t *np)
{
	DBC *cur;
	DBT key, data;
	char kbuf[QUEUE_ID_SIZE];
	u_int32_t op;
	size_t n = 0;
	int ret;

	if ((ret = q->envelopes->cursor(
	         q->envelopes, NULL, &cur, DB_READ_COMMITTED)) != 0)
		return ret;
	memset(&key, 0, sizeof(key));
	key.data = kbuf;
	key.ulen = sizeof(kbuf);
	key.flags = DB_DBT_USERMEM;
	if (after[0]) {
		memcpy(kbuf, after, QUEUE_ID_LEN);
		key.size = QUEUE_ID_LEN;
		op = DB_SET_RANGE;
	} else {
		op = DB_FIRST;
	}
	while (n < WALK_CHUNK) {
		memset(&data, 0, sizeof(data));
		data.flags = DB_DBT_MALLOC;
		if ((ret = cur->get(cur, &key, &data, op)) != 0)
			break;
		op = DB_NEXT;
		if (key.size != QUEUE_ID_LEN ||
		    (after[0] && memcmp(kbuf, after, QUEUE_ID_LEN) == 0)) {
			free(data.data);
			continue;
		}
		memcpy(v[n].qid, kbuf, QUEUE_ID_LEN);
		v[n].qid[QUEUE_ID_LEN] = '\0';
		v[n].data = data.data;
		v[n].size = data.size;
		n++;
	}
	(void)cur->close(cur);
	*np = n;
	if (ret == DB_NOTFOUND || ret == 0)
		return 0;
	while (n > 0)
		free(v[--n].data);
	*np = 0;
	return ret;
}

int
queue_walk(queue_t *q, queue_visit_fn *fn, void *arg)
{
	struct walk_rec *v = xcalloc(WALK_CHUNK, sizeof(*v));
	char after[QUEUE_ID_SIZE] = "";
	size_t n, i;
	int ret = 0, tries = 0, stop = 0;

	while (!stop) {
		ret = walk_chunk(q, after, v, &n);
		if (ret == DB_LOCK_DEADLOCK && ++tries < QUEUE_DEADLOCK_RETRIES)
			continue;
		if (ret != 0 || n == 0)
			break;
		for (i = 0; i < n; i++) {
			struct queue_env *env;
			DBT data;

			memset(&data, 0, sizeof(data));
			data.data = v[i].data;
			data.size = v[i].size;
			if (!stop &&
			    decode_record(v[i].qid, &data, &env) == QUEUE_OK) {
				stop = fn(arg, env) != 0;
				queue_env_free(env);
			}
			free(data.data);
		}
		memcpy(after, v[n - 1].qid, QUEUE_ID_SIZE);
		if (n < WALK_CHUNK)
			break;
	}
	free(v);
	return queue_result(q, ret, "walk", NULL, NULL);
}

struct stats_arg {
	struct queue_stats *st;
};

static int
stats_visit(void *arg, const struct queue_env *env)
{
	struct queue_stats *st = arg;
	size_t i;

	st->messages++;
	st->bytes += env->size;
	if (st->oldest_arrival == 0 || env->arrival < st->oldest_arrival)
		st->oldest_arrival = env->arrival;
	for (i = 0; i < env->nrcpt; i++) {
		switch (env->rcpts[i].state) {
		case RCPT_PENDING:
			st->rcpt_pending++;
			break;
		case RCPT_DEFERRED:
			st->rcpt_deferred++;
			break;
		case RCPT_HELD:
			st->rcpt_held++;
			break;
		default:
			break;
		}
	}
	return 0;
}

int
queue_stats(queue_t *q, struct queue_stats *st)
{
	memset(st, 0, sizeof(*st));
	return queue_walk(q, stats_visit, st);
}

int
queue_checkpoint(queue_t *q)
{
	return checkpoint(q, QUEUE_COMPACT_AFTER);
}

int
queue_checkpoint_now(queue_t *q)
{
	return checkpoint(q, 0);
}

/* Checkpoints, and compacts when at least compact_after bytes left. */
static int
checkpoint(queue_t *q, uint64_t compact_after)
{
	DB *dbs[4] = {q->envelopes, q->contents, q->schedule, q->tails};
	int ret, i;

	ret = q->env->txn_checkpoint(q->env, 0, 0, 0);
	if (ret != 0)
		return queue_result(q, ret, "checkpoint", NULL, NULL);
	/* DB_LOG_AUTO_REMOVE removes logs as checkpoints free them; this
	 * makes sure of it even when the setting was lost. */
	ret = q->env->log_archive(q->env, NULL, DB_ARCH_REMOVE);
	if (ret != 0)
		return queue_result(q, ret, "log archive", NULL, NULL);
	/* Give emptied pages back to the file system, so that a queue that
	 * drained after a flood shrinks. Compaction walks whole files, so it
	 * waits until enough was removed to be worth it. Best effort: a
	 * deadlock with a writer just leaves pages for next time. */
	if (atomic_load(&q->removed_bytes) < compact_after)
		return QUEUE_OK;
	atomic_store(&q->removed_bytes, 0);
	for (i = 0; i < 4; i++) {
		DB_COMPACT c;

		memset(&c, 0, sizeof(c));
		(void)dbs[i]->compact(
		    dbs[i], NULL, NULL, NULL, &c, DB_FREE_SPACE, NULL);
	}
	return QUEUE_OK;
}

/* Changing in slices (queue_change_slice). */

struct change_arg {
	const char *qid;
	int64_t when; /* its index key's time */
	queue_change_fn *fn;
	void *fnarg;
	unsigned n; /* recipients changed */
};

static int
change_op(queue_t *q, DB_TXN *txn, void *a)
{
	struct change_arg *ca = a;
	struct queue_env *env = NULL;
	struct update_arg ua;
	DBT data;
	int ret;

	ca->n = 0;
	ret = read_record(q, q->envelopes, txn, ca->qid, DB_RMW, &data);
	if (ret == DB_NOTFOUND)
		return 0; /* gone meanwhile (delivered, deleted) */
	if (ret != 0)
		return ret;
	if (decode_record(ca->qid, &data, &env) != QUEUE_OK)
		return 0;
	/* A stale key (the message moved): it is visited at its own. */
	if (queue_env_next_due(env) != ca->when ||
	    (ca->n = ca->fn(ca->fnarg, env)) == 0) {
		queue_env_free(env);
		return 0;
	}
	memset(&ua, 0, sizeof(ua));
	ua.env = env;
	ua.record = buf_new(0);
	queue_env_encode(env, ua.record);
	ret = write_env(q, txn, &ua, ca->when);
	buf_free(ua.record);
	queue_env_free(env);
	return ret;
}

/* The time of the last key in the index, or -1 when it is empty. */
static int
last_key_time(queue_t *q, int64_t *when)
{
	DBC *cur;
	DBT key, data;
	int ret;

	*when = -1;
	if ((ret = q->schedule->cursor(
	         q->schedule, NULL, &cur, DB_READ_COMMITTED)) != 0)
		return ret;
	memset(&key, 0, sizeof(key));
	memset(&data, 0, sizeof(data));
	key.flags = DB_DBT_MALLOC;
	data.flags = DB_DBT_MALLOC;
	ret = cur->get(cur, &key, &data, DB_LAST);
	if (ret == 0) {
		if (key.size == SCHED_KEY_LEN)
			*when = sched_time(key.data);
		free(key.data);
		free(data.data);
	}
	(void)cur->close(cur);
	return ret == DB_NOTFOUND ? 0 : ret;
}

/* Up to max keys after pos (not after pos->limit), cursor closed after. */
static int
collect_after(queue_t *q, struct queue_pos *pos, size_t max,
    struct sched_entry *v, size_t *np)
{
	unsigned char kbuf[SCHED_KEY_LEN];
	DBC *cur;
	DBT key, data;
	u_int32_t op = DB_SET_RANGE;
	size_t n = 0;
	int ret;

	*np = 0;
	if ((ret = q->schedule->cursor(
	         q->schedule, NULL, &cur, DB_READ_COMMITTED)) != 0)
		return ret;
	memcpy(kbuf, pos->key, SCHED_KEY_LEN);
	memset(&key, 0, sizeof(key));
	memset(&data, 0, sizeof(data));
	key.data = kbuf;
	key.size = SCHED_KEY_LEN;
	key.ulen = sizeof(kbuf);
	key.flags = DB_DBT_USERMEM;
	data.flags = DB_DBT_MALLOC;
	while (n < max && (ret = cur->get(cur, &key, &data, op)) == 0) {
		op = DB_NEXT;
		free(data.data);
		data.data = NULL;
		if (key.size != SCHED_KEY_LEN ||
		    memcmp(kbuf, pos->key, SCHED_KEY_LEN) == 0)
			continue;
		if (sched_time(kbuf) > pos->limit)
			break;
		v[n].when = sched_time(kbuf);
		memcpy(v[n].qid, kbuf + 8, QUEUE_ID_LEN);
		v[n].qid[QUEUE_ID_LEN] = '\0';
		n++;
	}
	(void)cur->close(cur);
	*np = n;
	if (n > 0)
		sched_key(pos->key, v[n - 1].when, v[n - 1].qid);
	return ret == DB_NOTFOUND || ret == 0 ? 0 : ret;
}

int
queue_change_slice(queue_t *q, struct queue_pos *pos, size_t max,
    queue_change_fn *fn, void *arg, struct queue_changed *changed,
    size_t *nchanged)
{
	struct sched_entry *v;
	size_t n = 0, i;
	int ret = 0, tries;

	*nchanged = 0;
	if (max == 0)
		return 0;
	if (!pos->started) {
		/* Bounded by what is queued now: mail deferred again after
		 * a change lands beyond it and is not changed twice. */
		if ((ret = last_key_time(q, &pos->limit)) != 0)
			return queue_result(
			    q, ret, "schedule read", NULL, NULL);
		memset(pos->key, 0, sizeof(pos->key));
		pos->started = 1;
	}
	v = xcalloc(max, sizeof(*v));
	for (tries = 0; tries < QUEUE_DEADLOCK_RETRIES; tries++)
		if ((ret = collect_after(q, pos, max, v, &n)) !=
		    DB_LOCK_DEADLOCK)
			break;
	if (ret != 0) {
		free(v);
		return queue_result(q, ret, "schedule walk", NULL, NULL);
	}
	for (i = 0; i < n; i++) {
		struct change_arg ca = {v[i].qid, v[i].when, fn, arg, 0};

		relieve(q);
		if ((ret = queue_txn(q, change_op, &ca)) != 0) {
			(void)queue_result(q, ret, "update", v[i].qid, NULL);
			continue;
		}
		if (ca.n > 0) {
			memcpy(changed[*nchanged].qid, v[i].qid, QUEUE_ID_SIZE);
			changed[(*nchanged)++].n = ca.n;
		}
	}
	free(v);
	return (int)n;
}
