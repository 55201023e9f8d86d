/*
 * workq - worker threads for slow work; see workq.h.
 *
 * Jobs wait on `todo`; a worker takes one, runs it unlocked, moves it to
 * `done` and writes a byte to a pipe. The pipe's read event runs on the
 * loop thread and calls done_fn for everything on `done`, which holds at
 * most max_pending jobs, so one wake-up is bounded work. A pipe, as in
 * qcommit: it wakes the loop whether or not libevent was made
 * thread-aware, and a full pipe already holds a wake-up.
 *
 * `cancelled` is read and written on the loop thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "workq.h"

#define WORKQ_THREADS_MAX 16

struct workq_job {
	struct workq_job *next;
	workq_work_fn *work;
	workq_done_fn *done;
	void *arg;
	int cancelled;
};

struct jlist {
	struct workq_job *head, *tail;
};

struct workq {
	struct event_base *base;
	struct event *wake_ev;
	int pipefd[2];
	pthread_t threads[WORKQ_THREADS_MAX];
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct jlist todo, done; /* under lock */
	int stopping; /* under lock */
	size_t max_pending;
	size_t pending; /* loop thread only */
};

static void
jlist_push(struct jlist *l, struct workq_job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct workq_job *
jlist_pop(struct jlist *l)
{
	struct workq_job *j = l->head;

	if (j) {
		l->head = j->next;
		if (l->head == NULL)
			l->tail = NULL;
	}
	return j;
}

static void *
worker_main(void *arg)
{
	struct workq *wq = arg;
	struct workq_job *j;
	char c = 1;

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		while (!wq->stopping && wq->todo.head == NULL)
			pthread_cond_wait(&wq->cond, &wq->lock);
		if (wq->stopping)
			break;
		j = jlist_pop(&wq->todo);
		pthread_mutex_unlock(&wq->lock);
		j->work(j->arg);
		pthread_mutex_lock(&wq->lock);
		jlist_push(&wq->done, j);
		while (write(wq->pipefd[1], &c, 1) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct workq *wq = arg;
	struct jlist done;
	struct workq_job *j;
	char junk[256];

	(void)what;
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	pthread_mutex_lock(&wq->lock);
	done = wq->done;
	wq->done.head = wq->done.tail = NULL;
	pthread_mutex_unlock(&wq->lock);
	while ((j = jlist_pop(&done)) != NULL) {
		wq->pending--;
		j->done(j->arg, j->cancelled);
		free(j);
	}
}

workq_t *
workq_new(
    struct event_base *base, unsigned threads, size_t max_pending, buf_t *err)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));
	sigset_t all, old;
	unsigned i;

	if (threads == 0)
		threads = 1;
	if (threads > WORKQ_THREADS_MAX)
		threads = WORKQ_THREADS_MAX;
	wq->base = base;
	wq->max_pending = max_pending ? max_pending : 1;
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	if (pipe2(wq->pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
		buf_printf(err, "workq: pipe: %s", strerror(errno));
		wq->pipefd[0] = wq->pipefd[1] = -1;
		goto fail;
	}
	wq->wake_ev =
	    event_new(base, wq->pipefd[0], EV_READ | EV_PERSIST, wake_cb, wq);
	if (wq->wake_ev == NULL || event_add(wq->wake_ev, NULL) < 0) {
		buf_puts(err, "workq: cannot watch its pipe");
		goto fail;
	}
	/* Signals belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < threads; i++) {
		int e = pthread_create(&wq->threads[i], NULL, worker_main, wq);

		if (e != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			buf_printf(
			    err, "workq: pthread_create: %s", strerror(e));
			goto fail;
		}
		wq->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return wq;
fail:
	workq_free(wq);
	return NULL;
}

workq_job_t *
workq_submit(workq_t *wq, workq_work_fn *work, workq_done_fn *done, void *arg)
{
	struct workq_job *j;

	if (wq->pending >= wq->max_pending)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	wq->pending++;
	pthread_mutex_lock(&wq->lock);
	jlist_push(&wq->todo, j);
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	return j;
}

void
workq_cancel(workq_job_t *j)
{
	if (j)
		j->cancelled = 1;
}

size_t
workq_pending(const workq_t *wq)
{
	return wq->pending;
}

void
workq_free(workq_t *wq)
{
	struct workq_job *j;
	unsigned i;

	if (wq == NULL)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stopping = 1;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	/* Workers are gone: the lists are ours. Finished jobs keep their
	 * verdict; the ones never run are cancelled. */
	while ((j = jlist_pop(&wq->done)) != NULL) {
		j->done(j->arg, j->cancelled);
		free(j);
	}
	while ((j = jlist_pop(&wq->todo)) != NULL) {
		j->done(j->arg, 1);
		free(j);
	}
	if (wq->wake_ev)
		event_free(wq->wake_ev);
	if (wq->pipefd[0] >= 0) {
		close(wq->pipefd[0]);
		close(wq->pipefd[1]);
	}
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq);
}
