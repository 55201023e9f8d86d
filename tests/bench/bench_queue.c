/*
 * bench_queue - messages per second into the queue, made durable:
 *   1. one queue_put + queue_sync (fsync) per message;
 *   2. qcommit with C concurrent senders (each submits its next message
 *      when the previous one is acknowledged, like SMTP clients);
 *   3. qcommit with all N submitted at once.
 *
 * usage: bench_queue [N [SIZE [C [DIR]]]]   (defaults 2000 10240 50, a
 * temporary directory under /var/tmp, removed afterwards)
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "mta/util/buf.h"
#include "mta/util/log.h"
#include "queue/qcommit.h"

static size_t msg_size;

static double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct queue_env *
make_env(void)
{
	struct queue_env *env = queue_env_new();

	queue_new_id(env->qid);
	free(env->sender);
	env->sender = strdup("bench@example.org");
	env->size = msg_size;
	queue_env_add_rcpt(env, "rcpt@example.com", NULL, 0);
	return env;
}

static char *
make_content(void)
{
	char *c = malloc(msg_size);
	size_t i;

	for (i = 0; i < msg_size; i++)
		c[i] = (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	return c;
}

static queue_t *
open_fresh(const char *dir, const char *name)
{
	char path[4096];
	buf_t *err = buf_new(1024);
	queue_t *q;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((q = queue_open(path, err)) == NULL) {
		fprintf(stderr, "queue_open: %s\n", buf_data(err));
		exit(1);
	}
	buf_free(err);
	return q;
}

static void
report(const char *what, int n, double secs, uint64_t syncs)
{
	printf("%-34s %6d msgs %8.2f s %9.0f msgs/s %6llu fsyncs\n", what, n,
	    secs, n / secs, (unsigned long long)syncs);
}

struct run {
	struct event_base *base;
	qcommit_t *qc;
	int n, submitted, acked, failed;
};

static void submit_next(struct run *r);

static void
done(void *arg, int err, const char *qid)
{
	struct run *r = arg;

	(void)qid;
	r->acked++;
	if (err != QUEUE_OK)
		r->failed++;
	if (r->acked == r->n)
		event_base_loopexit(r->base, NULL);
	else
		submit_next(r);
}

static void
submit_next(struct run *r)
{
	if (r->submitted >= r->n)
		return;
	r->submitted++;
	qcommit_submit(r->qc, make_env(), make_content(), msg_size, done, r);
}

struct start {
	struct run *r;
	int c;
};

static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct start *s = arg;
	int i;

	(void)fd;
	(void)what;
	for (i = 0; i < s->c; i++)
		submit_next(s->r);
}

static void
bench_qcommit(const char *dir, const char *name, int n, int c)
{
	struct run r;
	struct start s = {&r, c};
	struct qcommit_stats st;
	queue_t *q = open_fresh(dir, name);
	char what[64];
	double t0;

	memset(&r, 0, sizeof(r));
	r.n = n;
	r.base = event_base_new();
	r.qc = qcommit_new(q, r.base);
	t0 = now_sec();
	event_base_once(r.base, -1, EV_TIMEOUT, start_cb, &s, NULL);
	event_base_dispatch(r.base);
	qcommit_get_stats(r.qc, &st);
	snprintf(what, sizeof(what), "qcommit, %d concurrent", c);
	report(what, n, now_sec() - t0, st.syncs);
	if (r.failed)
		printf("  %d failed\n", r.failed);
	qcommit_free(r.qc);
	event_base_free(r.base);
	queue_close(q);
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
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int c = argc > 3 ? atoi(argv[3]) : 50;
	char tmp[64] = "/var/tmp/strictmta-bench-XXXXXX";
	const char *dir;
	buf_t *err = buf_new(1024);
	queue_t *q;
	double t0;
	int i;

	msg_size = argc > 2 ? (size_t)atol(argv[2]) : 10240;
	if (n <= 0 || c <= 0 || msg_size == 0) {
		fprintf(stderr, "usage: bench_queue [N [SIZE [C [DIR]]]]\n");
		return 2;
	}
	if (argc > 4)
		dir = argv[4];
	else if ((dir = mkdtemp(tmp)) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_open("bench_queue", "/dev/null");
	evthread_use_pthreads();
	printf("%d messages of %zu bytes in %s\n", n, msg_size, dir);

	q = open_fresh(dir, "sync-each");
	t0 = now_sec();
	for (i = 0; i < n; i++) {
		struct queue_env *env = make_env();
		char *content = make_content();

		if (queue_put(q, env, content, msg_size, err) != QUEUE_OK ||
		    queue_sync(q, err) != QUEUE_OK) {
			fprintf(stderr, "%s\n", buf_data(err));
			return 1;
		}
		queue_env_free(env);
		free(content);
	}
	report("put + sync per message", n, now_sec() - t0, (uint64_t)n);
	queue_close(q);

	bench_qcommit(dir, "qcommit-c", n, c);
	bench_qcommit(dir, "qcommit-all", n, n);

	buf_free(err);
	if (argc <= 4)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
