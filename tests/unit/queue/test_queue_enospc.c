/*
 * test_queue_enospc - a full queue file system: new mail is refused with
 * QUEUE_ENOSPC and a message naming the queue, nothing committed is lost,
 * the queue still closes and reopens (recovery) cleanly, and mail is
 * accepted again once space is freed.
 *
 * Needs root to mount a small tmpfs; otherwise it says so and passes.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/log.h"
#include "queue/queue.h"

#define CLEN 100000
#define MAXMSG 2000

static char qids[MAXMSG][QUEUE_ID_SIZE];

struct count {
	queue_t *q;
	int n, bad;
};

static int
count_visit(void *arg, const struct queue_env *env)
{
	struct count *c = arg;
	buf_t *b = buf_new(0);

	c->n++;
	if (queue_get_content(c->q, env->qid, b) != QUEUE_OK ||
	    buf_len(b) != CLEN || buf_data(b)[CLEN - 1] != 'z')
		c->bad++;
	buf_free(b);
	return 0;
}

static int
count_all(queue_t *q, int *bad)
{
	struct count c = {q, 0, 0};

	CHECK_INT(queue_walk(q, count_visit, &c), QUEUE_OK);
	*bad = c.bad;
	return c.n;
}

static int
put_one(queue_t *q, const char *content, size_t len, char *qid, buf_t *err)
{
	struct queue_env *env = queue_env_new();
	int rc;

	queue_new_id(env->qid);
	memcpy(qid, env->qid, QUEUE_ID_SIZE);
	env->size = len;
	queue_env_add_rcpt(env, "full@example.com", NULL, 0);
	rc = queue_put(q, env, content, len, err);
	queue_env_free(env);
	if (rc == QUEUE_OK)
		rc = queue_sync(q, err);
	return rc;
}

static void
show_space(const char *mnt, const char *when)
{
	struct statvfs sv;
	char cmd[256];

	if (statvfs(mnt, &sv) == 0)
		fprintf(stderr, "%s: %llu KB free\n", when,
		    (unsigned long long)sv.f_bavail * sv.f_frsize / 1024);
	snprintf(cmd, sizeof(cmd), "ls -la %s/q/db >&2", mnt);
	if (getenv("SHOWDB"))
		if (system(cmd) != 0)
			fprintf(stderr, "ls failed\n");
}

int
main(void)
{
	char mnt[64] = "/tmp/strictmta-enospc-XXXXXX", dir[128];
	buf_t *err = buf_new(2048);
	char *content = malloc(CLEN), extra[QUEUE_ID_SIZE];
	queue_t *q;
	int i, n = 0, rc = QUEUE_OK, bad;

	log_open("test_queue_enospc", "/dev/null");
	if (geteuid() != 0) {
		printf("not root: cannot mount a small file system; skipped\n");
		return 0;
	}
	if (mkdtemp(mnt) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* In a mount namespace of our own, the tmpfs goes away with this
	 * process even if it dies half way. */
	if (unshare(CLONE_NEWNS) == 0)
		(void)mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=128m") < 0) {
		printf(
		    "mount tmpfs on %s: %s; skipped\n", mnt, strerror(errno));
		rmdir(mnt);
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/q", mnt);
	memset(content, 'z', CLEN);

	q = queue_open(dir, err);
	CHECK(q != NULL);
	if (q == NULL) {
		fprintf(stderr, "queue_open: %s\n", buf_data(err));
		goto out;
	}
	for (i = 0; i < MAXMSG; i++) {
		if ((rc = put_one(q, content, CLEN, qids[n], err)) != QUEUE_OK)
			break;
		n++;
	}
	fprintf(stderr, "%d messages of %d bytes fit; then: %s\n", n, CLEN,
	    buf_data(err));
	CHECK_INT(rc, QUEUE_ENOSPC);
	CHECK(n > 50);
	CHECK(strstr(buf_data(err), dir) != NULL);
	/* Small messages are refused too: the reserve is for what is
	 * already queued. */
	CHECK_INT(put_one(q, "tiny", 4, extra, err), QUEUE_ENOSPC);
	CHECK_INT(count_all(q, &bad), n);
	CHECK_INT(bad, 0);

	/* Still works for what is queued: delivery removes mail, and then
	 * there is room again. */
	for (i = 0; i < n / 2; i++)
		CHECK_INT(queue_delete(q, qids[i]), QUEUE_OK);
	CHECK_INT(queue_sync(q, err), QUEUE_OK);
	CHECK_INT(queue_checkpoint(q), QUEUE_OK);
	show_space(mnt, "after deleting half");
	CHECK_INT(put_one(q, content, CLEN, extra, err), QUEUE_OK);
	show_space(mnt, "after one more");
	queue_close(q);

	/* Reopen (recovery) on the nearly full file system. */
	q = queue_open(dir, err);
	CHECK(q != NULL);
	if (q == NULL) {
		fprintf(stderr, "reopen: %s\n", buf_data(err));
		goto out;
	}
	CHECK_INT(count_all(q, &bad), n - n / 2 + 1);
	CHECK_INT(bad, 0);
	queue_close(q);
out:
	free(content);
	buf_free(err);
	if (umount(mnt) < 0)
		perror("umount");
	rmdir(mnt);
	return check_done();
}
