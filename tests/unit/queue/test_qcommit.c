/*
 * test_qcommit - group commit: many messages submitted at once from the
 * event loop share few fsyncs, every callback runs on the loop thread
 * with QUEUE_OK, a cancelled ticket gets no callback, and qcommit_free
 * drains what is still pending.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/log.h"
#include "queue/qcommit.h"

#define NMSG 200

static pthread_t loop_thread;

struct state {
	struct event_base *base;
	qcommit_t *qc;
	queue_t *q;
	int calls, ok, wrong_thread, bad_qid;
	int called[NMSG];
	char qids[NMSG][QUEUE_ID_SIZE];
	uint64_t tickets[NMSG];
};

struct slot {
	struct state *st;
	int i;
};

static struct slot slots[NMSG];

static void
done(void *arg, int err, const char *qid)
{
	struct slot *sl = arg;
	struct state *st = sl->st;

	st->calls++;
	st->called[sl->i]++;
	if (err == QUEUE_OK)
		st->ok++;
	if (!pthread_equal(pthread_self(), loop_thread))
		st->wrong_thread++;
	if (strcmp(qid, st->qids[sl->i]) != 0)
		st->bad_qid++;
	if (st->calls == NMSG - 1) /* one was cancelled */
		event_base_loopexit(st->base, NULL);
}

static struct queue_env *
make_env(char qid[QUEUE_ID_SIZE])
{
	struct queue_env *env = queue_env_new();

	queue_new_id(env->qid);
	memcpy(qid, env->qid, QUEUE_ID_SIZE);
	env->size = 1000;
	queue_env_add_rcpt(env, "rcpt@example.com", NULL, 0);
	return env;
}

/* Submits everything from inside the loop, as the SMTP server would. */
static void
submit_all(evutil_socket_t fd, short what, void *arg)
{
	struct state *st = arg;
	int i;

	(void)fd;
	(void)what;
	for (i = 0; i < NMSG; i++) {
		char *content = malloc(1000);

		memset(content, 'c', 1000);
		slots[i].st = st;
		slots[i].i = i;
		st->tickets[i] = qcommit_submit(st->qc, make_env(st->qids[i]),
		    content, 1000, done, &slots[i]);
	}
	/* The client of message 7 hung up after the dot. */
	qcommit_cancel(st->qc, st->tickets[7]);
}

static void
give_up(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fprintf(stderr, "timed out waiting for callbacks\n");
	event_base_loopexit(arg, NULL);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

int
main(void)
{
	static struct state st;
	char dir[64] = "/tmp/strictmta-qcommit-XXXXXX";
	struct timeval limit = {60, 0};
	struct qcommit_stats qs;
	struct event *timer;
	buf_t *err = buf_new(1024);
	int i, unique = 1;

	log_open("test_qcommit", "/dev/null");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	evthread_use_pthreads();
	loop_thread = pthread_self();
	st.base = event_base_new();
	st.q = queue_open(dir, err);
	if (st.q == NULL) {
		fprintf(stderr, "queue_open: %s\n", buf_data(err));
		return 1;
	}
	st.qc = qcommit_new(st.q, st.base);
	CHECK(st.qc != NULL);

	event_base_once(st.base, -1, EV_TIMEOUT, submit_all, &st, NULL);
	timer = evtimer_new(st.base, give_up, st.base);
	evtimer_add(timer, &limit);
	event_base_dispatch(st.base);

	CHECK_INT(st.calls, NMSG - 1);
	CHECK_INT(st.ok, NMSG - 1);
	CHECK_INT(st.wrong_thread, 0);
	CHECK_INT(st.bad_qid, 0);
	CHECK_INT(st.called[7], 0);
	for (i = 0; i < NMSG; i++)
		if (i != 7)
			CHECK_INT(st.called[i], 1);
	for (i = 1; i < NMSG; i++)
		if (st.tickets[i] == st.tickets[i - 1])
			unique = 0;
	CHECK(unique);

	qcommit_get_stats(st.qc, &qs);
	fprintf(stderr, "qcommit: %llu messages, %llu batches, %llu syncs\n",
	    (unsigned long long)qs.messages, (unsigned long long)qs.batches,
	    (unsigned long long)qs.syncs);
	CHECK_INT(qs.messages, NMSG);
	CHECK(qs.syncs < qs.messages); /* group commit happened */
	CHECK(qs.syncs >= 1);

	/* Every message, the cancelled one too, is in the queue. */
	for (i = 0; i < NMSG; i++) {
		struct queue_env *env = NULL;

		CHECK_INT(queue_get(st.q, st.qids[i], &env), QUEUE_OK);
		queue_env_free(env);
	}

	/* qcommit_free drains: submitted and not yet reported messages are
	 * committed and reported before it returns. */
	memset(st.called, 0, sizeof(st.called));
	st.calls = st.ok = 0;
	for (i = 0; i < 10; i++) {
		char *content = malloc(10);

		memcpy(content, "0123456789", 10);
		slots[i].st = &st;
		slots[i].i = i;
		qcommit_submit(
		    st.qc, make_env(st.qids[i]), content, 10, done, &slots[i]);
	}
	qcommit_free(st.qc);
	CHECK_INT(st.calls, 10);
	CHECK_INT(st.ok, 10);
	for (i = 0; i < 10; i++) {
		struct queue_env *env = NULL;

		CHECK_INT(queue_get(st.q, st.qids[i], &env), QUEUE_OK);
		queue_env_free(env);
	}
	qcommit_free(NULL);

	event_free(timer);
	event_base_free(st.base);
	queue_close(st.q);
	buf_free(err);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done();
}
