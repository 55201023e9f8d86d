/*
 * test_workq - work runs off the loop thread, every accepted job's done
 * callback runs once on the loop thread (cancelled ones say so), the
 * queue refuses work beyond its bound, and freeing cancels what is left.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "mta/util/workq.h"

static pthread_t loop_thread;

struct job {
	int id;
	unsigned sleep_usec;
	int worked_off_loop;
	int done_calls, done_on_loop, cancelled;
};

static unsigned done_total;

static void
work(void *arg)
{
	struct job *j = arg;

	j->worked_off_loop = !pthread_equal(pthread_self(), loop_thread);
	usleep(j->sleep_usec);
}

static void
done(void *arg, int cancelled)
{
	struct job *j = arg;

	j->done_calls++;
	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	j->cancelled = cancelled;
	done_total++;
}

int
main(void)
{
	struct event_base *base = event_base_new();
	buf_t *err = buf_new(256);
	workq_t *wq;
	struct job jobs[8] = {{0}};
	int i, guard = 0;

	loop_thread = pthread_self();
	wq = workq_new(base, 2, 6, err);
	CHECK(wq != NULL);
	for (i = 0; i < 8; i++) {
		jobs[i].id = i;
		jobs[i].sleep_usec = 20000;
	}
	for (i = 0; i < 6; i++)
		CHECK(workq_submit(wq, work, done, &jobs[i]) != NULL);
	/* The seventh is refused: the bound holds. */
	CHECK(workq_submit(wq, work, done, &jobs[6]) == NULL);
	CHECK(workq_pending(wq) == 6);
	workq_cancel(NULL);
	while (done_total < 6 && guard++ < 500)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(done_total == 6);
	CHECK(workq_pending(wq) == 0);
	for (i = 0; i < 6; i++) {
		CHECK(jobs[i].done_calls == 1);
		CHECK(jobs[i].done_on_loop);
		CHECK(jobs[i].worked_off_loop);
		CHECK(!jobs[i].cancelled);
	}
	/* Cancel one that is queued: its done still runs, saying so. */
	jobs[6].sleep_usec = 200000;
	CHECK(workq_submit(wq, work, done, &jobs[6]) != NULL);
	{
		workq_job_t *j7 = workq_submit(wq, work, done, &jobs[7]);

		CHECK(j7 != NULL);
		workq_cancel(j7);
	}
	guard = 0;
	while (done_total < 8 && guard++ < 500)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(jobs[7].done_calls == 1 && jobs[7].cancelled);
	CHECK(jobs[6].done_calls == 1 && !jobs[6].cancelled);
	/* Free with work outstanding: every done runs once. */
	jobs[0].done_calls = jobs[1].done_calls = 0;
	CHECK(workq_submit(wq, work, done, &jobs[0]) != NULL);
	CHECK(workq_submit(wq, work, done, &jobs[1]) != NULL);
	workq_free(wq);
	CHECK(jobs[0].done_calls == 1 && jobs[1].done_calls == 1);
	event_base_free(base);
	buf_free(err);
	return check_done();
}
