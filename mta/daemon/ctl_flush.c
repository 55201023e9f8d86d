/*
 * ctl_flush - a flush of the whole queue in slices; see ctl_flush.h.
 *
 * Why slices: with 100,000 messages queued a flush that first collects
 * every ID and then rewrites every envelope keeps delivery waiting for
 * all of it (1.9 s). Here each slice reads at most FLUSH_SLICE index keys,
 * changes each message in its own transaction, and the first slice that
 * changed something kicks delivery at once (deliver_kick only arms a
 * libevent timer: safe from this thread with evthread_use_pthreads). A
 * message deferred again while the flush goes on is not flushed twice:
 * its last attempt is newer than the flush.
 */
#include <sys/types.h>

#include "ctl_flush.h"
#include "daemon.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"

#define FLUSH_SLICE 256

unsigned
ctl_flush_env(struct queue_env *env, int64_t now, int64_t since)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		if ((r->state == RCPT_DEFERRED || r->state == RCPT_PENDING) &&
		    r->next_attempt > now && r->last_attempt <= since) {
			r->next_attempt = now;
			n++;
		}
	}
	return n;
}

struct flush_arg {
	int64_t since;
};

static unsigned
flush_fn(void *arg, struct queue_env *env)
{
	struct flush_arg *fa = arg;

	return ctl_flush_env(env, clock_now(), fa->since);
}

long
ctl_flush_all(daemon_t *d, uid_t uid, buf_t *out)
{
	struct queue_changed changed[FLUSH_SLICE];
	struct queue_pos pos = {{0}, 0, 0};
	struct flush_arg fa = {clock_now()};
	size_t nch, i;
	long total = 0;
	int n, kicked = 0;

	while ((n = queue_change_slice(d->queue, &pos, FLUSH_SLICE, flush_fn,
	            &fa, changed, &nch)) > 0) {
		for (i = 0; i < nch; i++) {
			log_info("%s: flushed by uid %ld (%u recipient%s)",
			    changed[i].qid, (long)uid, changed[i].n,
			    changed[i].n == 1 ? "" : "s");
			buf_printf(out, "%s: flushed\n", changed[i].qid);
		}
		total += (long)nch;
		if (nch > 0 && !kicked) {
			daemon_queue_changed(d);
			kicked = 1;
		}
	}
	if (n < 0) {
		buf_reset(out);
		buf_printf(out,
		    "queue read error during the flush (%ld "
		    "message%s flushed before it)",
		    total, total == 1 ? "" : "s");
	}
	if (total > 0 && queue_sync(d->queue, NULL) != QUEUE_OK)
		log_warn("queue sync after flushed failed");
	buf_printf(
	    out, "%ld message%s flushed\n", total, total == 1 ? "" : "s");
	return n < 0 ? -1 : total;
}
