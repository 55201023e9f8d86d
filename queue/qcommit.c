/*
 * qcommit - group commit on a writer thread; see qcommit.h.
 *
 * The loop thread appends submissions to `waiting` and signals the writer.
 * The writer moves everything waiting (up to QCOMMIT_BATCH_MAX) into
 * `batch`, puts each message in its own transaction (so one bad message
 * fails alone), flushes the log once, moves the batch to `done` and writes
 * one byte to a pipe. The pipe's read event runs on the loop thread and
 * calls the callbacks one at a time, taking each item off `done` under the
 * lock, so a callback may cancel another ticket or submit more.
 *
 * A pipe rather than event_active(): it wakes the loop whether or not the
 * base was made thread-aware, and it cannot lose a wake-up.
 *
 * Cancelling only marks the item: the message is committed all the same
 * (the client may have gone after the final dot; a duplicate is better
 * than a loss).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "qcommit.h"

/* Bounds the time one message waits behind the others in a batch. */
#define QCOMMIT_BATCH_MAX 1000
/* The writer checkpoints the queue this often (seconds), off the loop. */
#define QCOMMIT_CHECKPOINT_SECS 60

struct qitem {
	struct qitem *next;
	uint64_t ticket;
	struct queue_env *env; /* freed by the writer after the put */
	char *content;
	size_t len;
	qcommit_done_fn *fn;
	void *arg;
	int err;
	int cancelled;
	int update; /* 0: queue_put; else QCOMMIT_KEEP_HOLDS-style flags + 1 */
	int checkpoint; /* neither: a checkpoint asked for */
	char qid[QUEUE_ID_SIZE];
};

struct qlist {
	struct qitem *head, *tail;
	size_t n;
};

struct qcommit {
	queue_t *q;
	struct event_base *base;
	struct event *ev;
	int pipefd[2];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	struct qlist waiting, batch, done;
	int stopping;
	uint64_t next_ticket;
	struct qcommit_stats stats;
};

static void
qlist_push(struct qlist *l, struct qitem *it)
{
	it->next = NULL;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->n++;
}

static struct qitem *
qlist_pop(struct qlist *l)
{
	struct qitem *it = l->head;

	if (it) {
		l->head = it->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->n--;
		it->next = NULL;
	}
	return it;
}

/* Appends all of src to dst; src becomes empty. */
static void
qlist_move(struct qlist *dst, struct qlist *src)
{
	if (src->head == NULL)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->n += src->n;
	memset(src, 0, sizeof(*src));
}

static struct qitem *
qlist_find(struct qlist *l, uint64_t ticket)
{
	struct qitem *it;

	for (it = l->head; it; it = it->next)
		if (it->ticket == ticket)
			return it;
	return NULL;
}

static void
wake_loop(qcommit_t *qc)
{
	char c = 1;

	/* A full pipe already holds a wake-up: EAGAIN is fine. */
	while (write(qc->pipefd[1], &c, 1) < 0 && errno == EINTR)
		;
}

static void
commit_batch(qcommit_t *qc, struct qlist *b)
{
	buf_t *err = buf_new(1024);
	struct qitem *it;
	size_t ok = 0;
	int rc;

	for (it = b->head; it; it = it->next) {
		buf_reset(err);
		if (it->checkpoint) {
			it->err = queue_checkpoint_now(qc->q);
			continue;
		}
		if (it->update) {
			if ((it->update - 1) & QCOMMIT_KEEP_HOLDS)
				queue_keep_holds(qc->q, it->env);
			it->err = queue_update(qc->q, it->env);
			if (it->err == QUEUE_OK)
				ok++;
			else if (it->err != QUEUE_ENOTFOUND)
				log_warn("%s: queue update failed", it->qid);
			queue_env_free(it->env);
			it->env = NULL;
			continue;
		}
		it->err = queue_put(qc->q, it->env, it->content, it->len, err);
		if (it->err == QUEUE_EEXIST) {
			/* Already stored by an earlier attempt. */
			it->err = QUEUE_OK;
		} else if (it->err != QUEUE_OK) {
			log_warn("%s: queue write failed: %s", it->qid,
			    buf_data(err));
			/* Keep the contract: only QUEUE_OK, QUEUE_ENOSPC or
			 * QUEUE_ERR reach the callback. */
			if (it->err != QUEUE_ENOSPC)
				it->err = QUEUE_ERR;
		}
		if (it->err == QUEUE_OK)
			ok++;
		queue_env_free(it->env);
		it->env = NULL;
		free(it->content);
		it->content = NULL;
	}
	if (ok > 0) {
		buf_reset(err);
		rc = queue_sync(qc->q, err);
		if (rc != QUEUE_OK) {
			/* Committed but perhaps not on disk: it must not be
			 * acknowledged. The client retries; at worst the
			 * message is delivered twice. */
			log_err("queue sync failed: %s", buf_data(err));
			for (it = b->head; it; it = it->next)
				if (it->err == QUEUE_OK)
					it->err = rc == QUEUE_ENOSPC
					              ? QUEUE_ENOSPC
					              : QUEUE_ERR;
		}
	}
	buf_free(err);
	pthread_mutex_lock(&qc->lock);
	qc->stats.messages += b->n;
	qc->stats.batches++;
	if (ok > 0)
		qc->stats.syncs++;
	pthread_mutex_unlock(&qc->lock);
}

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void *
writer_main(void *arg)
{
	qcommit_t *qc = arg;
	struct qlist local;
	struct timespec until;
	time_t next_ckpt = mono_now() + QCOMMIT_CHECKPOINT_SECS;
	int empty;

	pthread_mutex_lock(&qc->lock);
	for (;;) {
		while (qc->waiting.head == NULL && !qc->stopping) {
			if (mono_now() >= next_ckpt) {
				/* Checkpoints take a while under load and
				 * remove old log files: here, not on the
				 * event loop. */
				pthread_mutex_unlock(&qc->lock);
				(void)queue_checkpoint(qc->q);
				next_ckpt =
				    mono_now() + QCOMMIT_CHECKPOINT_SECS;
				pthread_mutex_lock(&qc->lock);
				continue;
			}
			until.tv_sec = next_ckpt;
			until.tv_nsec = 0;
			pthread_cond_timedwait(&qc->cond, &qc->lock, &until);
		}
		if (qc->waiting.head == NULL)
			break; /* stopping and drained */
		while (qc->waiting.head && qc->batch.n < QCOMMIT_BATCH_MAX)
			qlist_push(&qc->batch, qlist_pop(&qc->waiting));
		/* The items stay on qc->batch, where qcommit_cancel() finds
		 * them; only this thread touches their env and content. */
		local = qc->batch;
		pthread_mutex_unlock(&qc->lock);

		commit_batch(qc, &local);

		pthread_mutex_lock(&qc->lock);
		empty = qc->done.head == NULL;
		qlist_move(&qc->done, &qc->batch);
		if (empty)
			wake_loop(qc);
		if (mono_now() >= next_ckpt) { /* never idle: still do it */
			pthread_mutex_unlock(&qc->lock);
			(void)queue_checkpoint(qc->q);
			next_ckpt = mono_now() + QCOMMIT_CHECKPOINT_SECS;
			pthread_mutex_lock(&qc->lock);
		}
	}
	pthread_mutex_unlock(&qc->lock);
	return NULL;
}

static void
item_free(struct qitem *it)
{
	queue_env_free(it->env);
	free(it->content);
	free(it);
}

/* Reports finished items; on the loop thread (or from qcommit_free). */
static void
report_done(qcommit_t *qc)
{
	struct qitem *it;

	for (;;) {
		pthread_mutex_lock(&qc->lock);
		it = qlist_pop(&qc->done);
		pthread_mutex_unlock(&qc->lock);
		if (it == NULL)
			break;
		if (!it->cancelled && it->fn)
			it->fn(it->arg, it->err, it->qid);
		item_free(it);
	}
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	qcommit_t *qc = arg;
	char drain[64];

	(void)what;
	/* Drain before reporting: a wake-up written while we report is
	 * kept for the next round. */
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	report_done(qc);
}

qcommit_t *
qcommit_new(queue_t *q, struct event_base *base)
{
	qcommit_t *qc = xcalloc(1, sizeof(*qc));
	pthread_condattr_t ca;
	sigset_t all, old;
	int i, rc;

	qc->q = q;
	qc->base = base;
	qc->next_ticket = 1;
	if (pipe2(qc->pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_err("qcommit: pipe: %s", strerror(errno));
		free(qc);
		return NULL;
	}
	pthread_mutex_init(&qc->lock, NULL);
	/* The writer's timed wait counts on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&qc->cond, &ca);
	pthread_condattr_destroy(&ca);
	qc->ev =
	    event_new(base, qc->pipefd[0], EV_READ | EV_PERSIST, on_wake, qc);
	if (qc->ev == NULL || event_add(qc->ev, NULL) < 0) {
		log_err("qcommit: cannot add the wake-up event");
		goto fail;
	}
	/* Signals belong to the loop thread, not the writer. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&qc->thread, NULL, writer_main, qc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_err("qcommit: cannot start the writer thread: %s",
		    strerror(rc));
		goto fail;
	}
	return qc;

fail:
	if (qc->ev)
		event_free(qc->ev);
	for (i = 0; i < 2; i++)
		close(qc->pipefd[i]);
	pthread_mutex_destroy(&qc->lock);
	pthread_cond_destroy(&qc->cond);
	free(qc);
	return NULL;
}

void
qcommit_free(qcommit_t *qc)
{
	if (qc == NULL)
		return;
	pthread_mutex_lock(&qc->lock);
	qc->stopping = 1;
	pthread_cond_signal(&qc->cond);
	pthread_mutex_unlock(&qc->lock);
	pthread_join(qc->thread, NULL);
	/* Everything submitted is now committed; tell whoever still
	 * listens. */
	report_done(qc);
	event_free(qc->ev);
	close(qc->pipefd[0]);
	close(qc->pipefd[1]);
	pthread_mutex_destroy(&qc->lock);
	pthread_cond_destroy(&qc->cond);
	free(qc);
}

/* Hands it to the writer; returns its ticket. */
static uint64_t
enqueue(qcommit_t *qc, struct qitem *it)
{
	uint64_t ticket;

	pthread_mutex_lock(&qc->lock);
	ticket = it->ticket = qc->next_ticket++;
	qlist_push(&qc->waiting, it);
	pthread_cond_signal(&qc->cond);
	pthread_mutex_unlock(&qc->lock);
	return ticket;
}

/* An item for env (NULL for a checkpoint) with its callback. */
static struct qitem *
item_new(struct queue_env *env, qcommit_done_fn *fn, void *arg)
{
	struct qitem *it = xcalloc(1, sizeof(*it));

	it->env = env;
	it->fn = fn;
	it->arg = arg;
	if (env != NULL) {
		memcpy(it->qid, env->qid, sizeof(it->qid));
		it->qid[QUEUE_ID_LEN] = '\0';
	}
	return it;
}

uint64_t
qcommit_submit(qcommit_t *qc, struct queue_env *env, char *content, size_t len,
    qcommit_done_fn *fn, void *arg)
{
	struct qitem *it = item_new(env, fn, arg);

	it->content = content;
	it->len = len;
	return enqueue(qc, it);
}

uint64_t
qcommit_update(qcommit_t *qc, struct queue_env *env, int flags,
    qcommit_done_fn *fn, void *arg)
{
	struct qitem *it = item_new(env, fn, arg);

	it->update = flags + 1;
	return enqueue(qc, it);
}

uint64_t
qcommit_checkpoint(qcommit_t *qc, qcommit_done_fn *fn, void *arg)
{
	struct qitem *it = item_new(NULL, fn, arg);

	it->checkpoint = 1;
	return enqueue(qc, it);
}

void
qcommit_cancel(qcommit_t *qc, uint64_t ticket)
{
	struct qitem *it;

	pthread_mutex_lock(&qc->lock);
	if ((it = qlist_find(&qc->waiting, ticket)) == NULL &&
	    (it = qlist_find(&qc->batch, ticket)) == NULL)
		it = qlist_find(&qc->done, ticket);
	if (it)
		it->cancelled = 1;
	pthread_mutex_unlock(&qc->lock);
}

void
qcommit_get_stats(qcommit_t *qc, struct qcommit_stats *st)
{
	pthread_mutex_lock(&qc->lock);
	*st = qc->stats;
	pthread_mutex_unlock(&qc->lock);
}
