/*
 * test_queue - the Berkeley DB store: put/get/update/delete, the time
 * index, persistence, durability across a simulated kill -9, log removal,
 * and clear errors for a queue that cannot be opened.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/log.h"
#include "queue/queue.h"

static char topdir[64];

/*
 * Berkeley DB 5.3 leaks a few hundred bytes when recovery of a damaged
 * environment fails (test_open_errors); the daemon exits on that path.
 * LeakSanitizer reads this hook in sanitizer builds; elsewhere it is an
 * unused function.
 */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
	return "leak:libdb-5.3.so\n";
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh queue directory path (not yet created) under topdir. */
static const char *
qdir(const char *name)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/%s", topdir, name);
	return path;
}

static queue_t *
open_ok(const char *dir)
{
	buf_t *err = buf_new(1024);
	queue_t *q = queue_open(dir, err);

	if (q == NULL)
		fprintf(stderr, "queue_open: %s\n", buf_data(err));
	CHECK(q != NULL);
	buf_free(err);
	if (q == NULL)
		exit(1);
	return q;
}

static struct queue_env *
make_env(int64_t next, int nrcpt)
{
	struct queue_env *env = queue_env_new();
	int i;

	queue_new_id(env->qid);
	free(env->sender);
	env->sender = strdup("sender@example.org");
	env->arrival = 1000;
	env->size = 5;
	for (i = 0; i < nrcpt; i++) {
		char addr[32];

		snprintf(addr, sizeof(addr), "r%d@example.com", i);
		queue_env_add_rcpt(env, addr, NULL, DSN_NOTIFY_FAILURE)
		    ->next_attempt = next;
	}
	return env;
}

struct seen {
	char qids[64][QUEUE_ID_SIZE];
	int64_t due[64];
	int n;
	int update_to; /* nonzero: reschedule each visited message there */
	queue_t *q;
};

static int
record_visit(void *arg, const struct queue_env *env)
{
	struct seen *s = arg;

	if (s->n < 64) {
		memcpy(s->qids[s->n], env->qid, QUEUE_ID_SIZE);
		s->due[s->n] = queue_env_next_due(env);
		s->n++;
	}
	if (s->update_to) {
		struct queue_env *e = queue_env_dup(env);
		size_t i;

		for (i = 0; i < e->nrcpt; i++) {
			e->rcpts[i].state = RCPT_DEFERRED;
			e->rcpts[i].attempts++;
			e->rcpts[i].next_attempt = s->update_to;
		}
		CHECK_INT(queue_update(s->q, e), QUEUE_OK);
		queue_env_free(e);
	}
	return 0;
}

static void
test_put_get(void)
{
	queue_t *q = open_ok(qdir("basic"));
	struct queue_env *env = make_env(0, 2), *got = NULL;
	buf_t *content = buf_new(0), *err = buf_new(1024);
	struct queue_stats st;

	env->envid = strdup("ENV1");
	CHECK_INT(queue_put(q, env, "Hi\r\n\r\n", 6, err), QUEUE_OK);
	CHECK_INT(queue_sync(q, err), QUEUE_OK);
	CHECK_INT(queue_put(q, env, "again", 5, err), QUEUE_EEXIST);
	CHECK_INT(queue_get(q, env->qid, &got), QUEUE_OK);
	if (got) {
		CHECK_STR(got->sender, "sender@example.org");
		CHECK_STR(got->envid, "ENV1");
		CHECK_INT(got->nrcpt, 2);
		CHECK_STR(got->rcpts[1].address, "r1@example.com");
	}
	queue_env_free(got);
	CHECK_INT(queue_get_content(q, env->qid, content), QUEUE_OK);
	CHECK_INT(buf_len(content), 6);
	CHECK_STR(buf_data(content), "Hi\r\n\r\n");
	CHECK_INT(queue_get(q, "0000000000000000", &got), QUEUE_ENOTFOUND);
	CHECK(got == NULL);
	CHECK_INT(queue_get(q, "not-a-qid", &got), QUEUE_ENOTFOUND);
	CHECK_INT(queue_next_wakeup(q), 0);
	CHECK_INT(queue_failed(q), 0);

	CHECK_INT(queue_stats(q, &st), QUEUE_OK);
	CHECK_INT(st.messages, 1);
	CHECK_INT(st.rcpt_pending, 2);
	CHECK_INT(st.bytes, 5);
	CHECK_INT(st.oldest_arrival, 1000);

	CHECK_INT(queue_delete(q, env->qid), QUEUE_OK);
	CHECK_INT(queue_delete(q, env->qid), QUEUE_ENOTFOUND);
	CHECK_INT(queue_get(q, env->qid, &got), QUEUE_ENOTFOUND);
	buf_reset(content);
	CHECK_INT(queue_get_content(q, env->qid, content), QUEUE_ENOTFOUND);
	CHECK_INT(queue_next_wakeup(q), -1);
	CHECK_INT(queue_update(q, env), QUEUE_ENOTFOUND);
	queue_env_free(env);
	buf_free(content);
	buf_free(err);
	queue_close(q);
}

static void
test_due_order(void)
{
	queue_t *q = open_ok(qdir("due"));
	struct queue_env *e[4];
	int64_t times[4] = {300, 100, 200, 5000};
	struct seen s;
	int i;

	for (i = 0; i < 4; i++) {
		e[i] = make_env(times[i], 1);
		CHECK_INT(queue_put(q, e[i], "x", 1, NULL), QUEUE_OK);
	}
	CHECK_INT(queue_next_wakeup(q), 100);
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, 1000, 0, record_visit, &s), 3);
	CHECK_INT(s.n, 3);
	CHECK_STR(s.qids[0], e[1]->qid);
	CHECK_STR(s.qids[1], e[2]->qid);
	CHECK_STR(s.qids[2], e[0]->qid);

	/* max limits the visit. */
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, 1000, 2, record_visit, &s), 2);
	CHECK_STR(s.qids[1], e[2]->qid);

	/* Move the 100 message to 4000: the index follows, once. */
	e[1]->rcpts[0].state = RCPT_DEFERRED;
	e[1]->rcpts[0].next_attempt = 4000;
	CHECK_INT(queue_update(q, e[1]), QUEUE_OK);
	CHECK_INT(queue_next_wakeup(q), 200);
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, 10000, 0, record_visit, &s), 4);
	CHECK_STR(s.qids[0], e[2]->qid);
	CHECK_STR(s.qids[1], e[0]->qid);
	CHECK_STR(s.qids[2], e[1]->qid);
	CHECK_INT(s.due[2], 4000);
	CHECK_STR(s.qids[3], e[3]->qid);

	/* A visitor that reschedules what it sees (the scheduler's use):
	 * nothing is seen twice and nothing is left due. */
	memset(&s, 0, sizeof(s));
	s.q = q;
	s.update_to = 20000;
	CHECK_INT(queue_due(q, 10000, 0, record_visit, &s), 4);
	CHECK_INT(s.n, 4);
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, 10000, 0, record_visit, &s), 0);
	CHECK_INT(queue_next_wakeup(q), 20000);

	/* Held: out of the index; released: back in. */
	e[3]->rcpts[0].state = RCPT_HELD;
	CHECK_INT(queue_update(q, e[3]), QUEUE_OK);
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, 30000, 0, record_visit, &s), 3);
	for (i = 0; i < s.n; i++)
		CHECK(strcmp(s.qids[i], e[3]->qid) != 0);
	e[3]->rcpts[0].state = RCPT_DEFERRED;
	e[3]->rcpts[0].next_attempt = 50;
	CHECK_INT(queue_update(q, e[3]), QUEUE_OK);
	CHECK_INT(queue_next_wakeup(q), 50);

	/* All recipients final: removed whole. */
	for (i = 0; i < 4; i++) {
		struct queue_env *got = NULL;
		buf_t *c = buf_new(0);

		e[i]->rcpts[0].state = i % 2 ? RCPT_DELIVERED : RCPT_FAILED;
		CHECK_INT(queue_update(q, e[i]), QUEUE_OK);
		CHECK_INT(queue_get(q, e[i]->qid, &got), QUEUE_ENOTFOUND);
		CHECK_INT(queue_get_content(q, e[i]->qid, c), QUEUE_ENOTFOUND);
		buf_free(c);
		queue_env_free(e[i]);
	}
	CHECK_INT(queue_next_wakeup(q), -1);
	memset(&s, 0, sizeof(s));
	CHECK_INT(queue_due(q, INT64_MAX, 0, record_visit, &s), 0);
	queue_close(q);
}

static void
test_partial_final(void)
{
	queue_t *q = open_ok(qdir("partial"));
	struct queue_env *env = make_env(10, 3), *got = NULL;
	struct queue_stats st;

	CHECK_INT(queue_put(q, env, "abc", 3, NULL), QUEUE_OK);
	env->rcpts[0].state = RCPT_DELIVERED;
	env->rcpts[1].state = RCPT_HELD;
	env->rcpts[2].state = RCPT_FAILED;
	CHECK_INT(queue_update(q, env), QUEUE_OK);
	/* The held recipient keeps the message, but it is not scheduled. */
	CHECK_INT(queue_get(q, env->qid, &got), QUEUE_OK);
	CHECK_INT(queue_next_wakeup(q), -1);
	CHECK_INT(queue_stats(q, &st), QUEUE_OK);
	CHECK_INT(st.rcpt_held, 1);
	CHECK_INT(st.rcpt_pending, 0);
	queue_env_free(got);
	queue_env_free(env);
	queue_close(q);
}

static void
test_persistence(void)
{
	const char *dir = qdir("persist");
	queue_t *q = open_ok(dir);
	struct queue_env *env = make_env(77, 1), *got = NULL;
	buf_t *c = buf_new(0);

	CHECK_INT(queue_put(q, env, "persist", 7, NULL), QUEUE_OK);
	queue_close(q);
	q = open_ok(dir);
	CHECK_INT(queue_get(q, env->qid, &got), QUEUE_OK);
	CHECK_INT(queue_get_content(q, env->qid, c), QUEUE_OK);
	CHECK_STR(buf_data(c), "persist");
	CHECK_INT(queue_next_wakeup(q), 77);
	queue_env_free(got);
	queue_env_free(env);
	buf_free(c);
	queue_close(q);
}

struct collect {
	int n;
	int bad;
	size_t clen;
	queue_t *q;
};

static int
check_crash_msg(void *arg, const struct queue_env *env)
{
	struct collect *c = arg;
	buf_t *b = buf_new(0);

	c->n++;
	if (queue_get_content(c->q, env->qid, b) != QUEUE_OK ||
	    buf_len(b) != c->clen || env->nrcpt != 2)
		c->bad++;
	buf_free(b);
	return 0;
}

/*
 * A child puts and syncs N messages and then _exit()s without closing
 * (the database is left as after kill -9); the parent recovers and finds
 * every one whole.
 */
static void
test_crash(void)
{
	const char *dir = qdir("crash");
	enum { N = 300, CLEN = 3000 };
	struct collect c = {0, 0, CLEN, NULL};
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		buf_t *err = buf_new(1024);
		queue_t *q = queue_open(dir, err);
		char *content = malloc(CLEN);
		int i;

		if (q == NULL)
			_exit(2);
		memset(content, 'm', CLEN);
		for (i = 0; i < N; i++) {
			struct queue_env *env = make_env(i, 2);

			if (queue_put(q, env, content, CLEN, err) != QUEUE_OK)
				_exit(3);
			queue_env_free(env);
			/* Group commit: a sync per ten messages, and one
			 * last: every put before a sync must survive. */
			if (i % 10 == 9 && queue_sync(q, err) != QUEUE_OK)
				_exit(4);
		}
		if (queue_sync(q, err) != QUEUE_OK)
			_exit(4);
		_exit(0);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	c.q = open_ok(dir);
	CHECK_INT(queue_walk(c.q, check_crash_msg, &c), QUEUE_OK);
	CHECK_INT(c.n, N);
	CHECK_INT(c.bad, 0);
	CHECK_INT(queue_next_wakeup(c.q), 0);
	queue_close(c.q);
}

/*
 * A real kill -9 in the middle of a stream of put + sync: every message
 * the child reported as synced (acknowledged) is there after recovery.
 */
static void
test_kill9(void)
{
	const char *dir = qdir("kill9");
	char(*acked)[QUEUE_ID_SIZE] = calloc(20000, QUEUE_ID_SIZE);
	int fds[2], status, n = 0, missing = 0, i;
	char content[2000];
	queue_t *q;
	pid_t pid;

	memset(content, 'k', sizeof(content));
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		queue_t *cq;
		buf_t *err = buf_new(1024);

		close(fds[0]);
		if ((cq = queue_open(dir, err)) == NULL)
			_exit(2);
		for (i = 0; i < 20000; i++) {
			struct queue_env *env = make_env(0, 1);

			if (queue_put(cq, env, content, sizeof(content), err) !=
			        QUEUE_OK ||
			    queue_sync(cq, err) != QUEUE_OK)
				_exit(3);
			/* Acknowledge only after the sync. */
			if (write(fds[1], env->qid, QUEUE_ID_LEN) !=
			    QUEUE_ID_LEN)
				_exit(4);
			queue_env_free(env);
		}
		_exit(0);
	}
	close(fds[1]);
	/* Let it get going, then kill it mid-stream; the pipe keeps what
	 * it acknowledged before it died. */
	while (n < 20000) {
		char id[QUEUE_ID_LEN];
		size_t got = 0;
		ssize_t r = 0;

		while (got < QUEUE_ID_LEN &&
		       (r = read(fds[0], id + got, QUEUE_ID_LEN - got)) > 0)
			got += (size_t)r;
		if (got < QUEUE_ID_LEN)
			break;
		memcpy(acked[n], id, QUEUE_ID_LEN);
		acked[n][QUEUE_ID_LEN] = '\0';
		if (++n == 150)
			kill(pid, SIGKILL);
	}
	close(fds[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(n >= 150 && n < 20000);
	q = open_ok(dir);
	for (i = 0; i < n; i++) {
		buf_t *c = buf_new(0);

		if (queue_get_content(q, acked[i], c) != QUEUE_OK ||
		    buf_len(c) != sizeof(content))
			missing++;
		buf_free(c);
	}
	fprintf(stderr, "kill -9 after %d acknowledged messages: %d missing\n",
	    n, missing);
	CHECK_INT(missing, 0);
	queue_close(q);
	free(acked);
}

/* Several threads put, update, walk and delete at once: no operation
 * fails (deadlocks are retried inside) and the index stays exact. */
#define NTHREADS 4
#define PER_THREAD 150

struct worker {
	queue_t *q;
	int id, failures;
};

static int
due_touch(void *arg, const struct queue_env *env)
{
	struct worker *w = arg;
	struct queue_env *e = queue_env_dup(env);
	int rc;

	e->rcpts[0].state = RCPT_DEFERRED;
	e->rcpts[0].next_attempt = 1000000 + w->id;
	rc = queue_update(w->q, e);
	if (rc != QUEUE_OK && rc != QUEUE_ENOTFOUND)
		w->failures++;
	queue_env_free(e);
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		struct queue_env *env = make_env(i % 7, 2);

		if (queue_put(w->q, env, "body", 4, NULL) != QUEUE_OK)
			w->failures++;
		env->rcpts[0].state = RCPT_DELIVERED;
		env->rcpts[1].state = RCPT_DEFERRED;
		env->rcpts[1].next_attempt = 500 + i;
		if (queue_update(w->q, env) != QUEUE_OK)
			w->failures++;
		if (i % 3 == 0 && queue_delete(w->q, env->qid) != QUEUE_OK)
			w->failures++;
		if (i % 10 == 0 && queue_due(w->q, 600, 20, due_touch, w) < 0)
			w->failures++;
		if (i % 50 == 0 && queue_sync(w->q, NULL) != QUEUE_OK)
			w->failures++;
		queue_env_free(env);
	}
	return NULL;
}

struct index_check {
	int n, wrong;
};

static int
index_visit(void *arg, const struct queue_env *env)
{
	struct index_check *ic = arg;

	ic->n++;
	if (queue_env_next_due(env) < 0)
		ic->wrong++;
	return 0;
}

static void
test_threads(void)
{
	queue_t *q = open_ok(qdir("threads"));
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct queue_stats st;
	struct index_check ic = {0, 0};
	int i;

	for (i = 0; i < NTHREADS; i++) {
		w[i].q = q;
		w[i].id = i;
		w[i].failures = 0;
		CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(w[i].failures, 0);
	}
	CHECK_INT(queue_stats(q, &st), QUEUE_OK);
	CHECK_INT(st.messages, NTHREADS * (PER_THREAD - PER_THREAD / 3));
	/* Exactly one index entry per message left: a full due walk sees
	 * each once. */
	CHECK_INT(queue_due(q, INT64_MAX, 0, index_visit, &ic),
	    (long long)st.messages);
	CHECK_INT(ic.n, (long long)st.messages);
	CHECK_INT(ic.wrong, 0);
	queue_close(q);
}

/* A message larger than the database cache goes in and comes back. */
static void
test_big_message(void)
{
	queue_t *q = open_ok(qdir("big"));
	size_t len = 40u * 1024 * 1024, i;
	char *content = malloc(len);
	struct queue_env *env = make_env(0, 1);
	buf_t *back = buf_new(0);

	for (i = 0; i < len; i++)
		content[i] = (char)(i * 7 + i / 4093);
	env->size = len;
	CHECK_INT(queue_put(q, env, content, len, NULL), QUEUE_OK);
	CHECK_INT(queue_sync(q, NULL), QUEUE_OK);
	CHECK_INT(queue_get_content(q, env->qid, back), QUEUE_OK);
	CHECK(
	    buf_len(back) == len && memcmp(buf_data(back), content, len) == 0);
	CHECK_INT(queue_delete(q, env->qid), QUEUE_OK);
	queue_env_free(env);
	buf_free(back);
	free(content);
	queue_close(q);
}

static int
count_logs(const char *dir)
{
	char path[160];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "%s/db", dir);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "log.", 4) == 0)
			n++;
	closedir(d);
	return n;
}

/* Log files go away after a checkpoint once their messages have. */
static void
test_log_removal(void)
{
	const char *dir = qdir("logs");
	queue_t *q = open_ok(dir);
	char *content = malloc(100000);
	char qids[400][QUEUE_ID_SIZE];
	int i, before, after;

	memset(content, 'L', 100000);
	for (i = 0; i < 400; i++) {
		struct queue_env *env = make_env(0, 1);

		env->size = 100000;
		CHECK_INT(queue_put(q, env, content, 100000, NULL), QUEUE_OK);
		memcpy(qids[i], env->qid, QUEUE_ID_SIZE);
		queue_env_free(env);
	}
	CHECK_INT(queue_sync(q, NULL), QUEUE_OK);
	before = count_logs(dir);
	CHECK(before >= 4); /* 40 MB of content in 8 MB log files */
	for (i = 0; i < 400; i++)
		CHECK_INT(queue_delete(q, qids[i]), QUEUE_OK);
	CHECK_INT(queue_checkpoint(q), QUEUE_OK);
	CHECK_INT(queue_checkpoint(q), QUEUE_OK);
	after = count_logs(dir);
	CHECK(after >= 1 && after <= 2);
	{
		char path[160];
		struct stat sb;

		/* The emptied content file went back to the file system. */
		snprintf(path, sizeof(path), "%s/db/contents.db", dir);
		CHECK(stat(path, &sb) == 0);
		fprintf(stderr, "contents.db: %lld bytes after draining\n",
		    (long long)sb.st_size);
		CHECK(sb.st_size < 1000000);
	}
	fprintf(stderr, "log files: %d before, %d after checkpoint\n", before,
	    after);
	free(content);
	queue_close(q);
}

static void
test_open_errors(void)
{
	buf_t *err = buf_new(1024);
	const char *dir = qdir("file");
	queue_t *q, *q2;
	char path[160];
	int fd;

	/* The queue directory is a regular file. */
	fd = open(dir, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(queue_open(dir, err) == NULL);
	CHECK(strstr(buf_data(err), dir) != NULL);
	CHECK(strstr(buf_data(err), "not a directory") != NULL);
	fprintf(stderr, "expected error: %s\n", buf_data(err));

	/* A file where db/ should be. */
	dir = qdir("dbfile");
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/db", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(queue_open(dir, err) == NULL);
	CHECK(strstr(buf_data(err), path) != NULL);
	CHECK(strstr(buf_data(err), "not a directory") != NULL);

	/* The parent does not exist. */
	dir = qdir("no/such/dir");
	CHECK(queue_open(dir, err) == NULL);
	CHECK(strstr(buf_data(err), "No such file or directory") != NULL);

	/* A damaged database file. */
	dir = qdir("corrupt");
	q = open_ok(dir);
	queue_close(q);
	snprintf(path, sizeof(path), "%s/db/envelopes.db", dir);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "garbage, not a btree at all, no magic here........",
	          50) == 50);
	close(fd);
	CHECK(queue_open(dir, err) == NULL);
	CHECK(strstr(buf_data(err), "envelopes.db") != NULL);
	fprintf(stderr, "expected error: %s\n", buf_data(err));

	/* Permissions: root's queue opened by an unprivileged user (as
	 * root, drop to nobody in a child to see it). */
	if (geteuid() == 0) {
		int fds[2], status;
		pid_t pid;
		char msg[512] = "";
		ssize_t n;

		dir = qdir("private");
		q = open_ok(dir);
		queue_close(q);
		CHECK(pipe(fds) == 0);
		fflush(NULL);
		if ((pid = fork()) == 0) {
			close(fds[0]);
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(2);
			q = queue_open(dir, err);
			if (write(fds[1], buf_data(err), buf_len(err)) < 0)
				_exit(3);
			_exit(q == NULL ? 0 : 1);
		}
		close(fds[1]);
		n = read(fds[0], msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		close(fds[0]);
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK(strstr(msg, dir) != NULL);
		CHECK(strstr(msg, "Permission denied") != NULL);
		fprintf(stderr, "expected error: %s\n", msg);
	}

	/* Opened twice: the second is refused, not a second recovery. */
	dir = qdir("twice");
	q = open_ok(dir);
	q2 = queue_open(dir, err);
	CHECK(q2 == NULL);
	CHECK(strstr(buf_data(err), "in use") != NULL);
	queue_close(q2);
	queue_close(q);
	buf_free(err);
}

int
main(void)
{
	struct stat st;
	char dbdir[160];

	log_open("test_queue", "/dev/null");
	snprintf(topdir, sizeof(topdir), "/tmp/strictmta-queue-XXXXXX");
	if (mkdtemp(topdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_put_get();
	snprintf(dbdir, sizeof(dbdir), "%s/db", qdir("basic"));
	CHECK(stat(dbdir, &st) == 0 && (st.st_mode & 0777) == 0700);
	test_due_order();
	test_partial_final();
	test_persistence();
	test_big_message();
	test_crash();
	test_kill9();
	test_threads();
	test_log_removal();
	test_open_errors();
	rm_rf(topdir);
	return check_done();
}
