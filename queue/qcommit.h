/*
 * qcommit - group commit of new messages off the event loop.
 *
 * A writer thread takes submitted messages and envelope updates,
 * queue_put()s or queue_update()s all that are waiting, in order, calls
 * queue_sync() once for the batch, and then reports each result back on
 * the event loop's thread. So the SMTP listener never waits
 * on the disk, and many messages finishing at once share one fsync.
 *
 * Ownership: qcommit_submit() takes env and content (freed by qcommit).
 * The done callback runs on the event loop thread; after qcommit_cancel()
 * of its ticket it is not called (the message is still committed: the
 * client may have hung up after sending the final dot).
 *
 * The writer thread also calls queue_checkpoint() every minute while it
 * has nothing to commit, so the event loop need not.
 */
#ifndef STRICTMTA_QCOMMIT_H
#define STRICTMTA_QCOMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

struct event_base;
typedef struct qcommit qcommit_t;

/* err: QUEUE_OK, QUEUE_ENOSPC or QUEUE_ERR; qid is the message's ID. */
typedef void qcommit_done_fn(void *arg, int err, const char *qid);

/* Needs evthread_use_pthreads() before the base was created. Returns NULL
 * (logged) if the thread or its wake-up pipe cannot be made. */
qcommit_t *qcommit_new(queue_t *, struct event_base *);
/* Finishes the pending batch, then stops the thread. NULL is a no-op.
 * Every message submitted is committed first, and callbacks not yet run
 * (and not cancelled) are called from here; so do not call it from inside
 * a done callback. */
void qcommit_free(qcommit_t *);

uint64_t qcommit_submit(qcommit_t *, struct queue_env *env, char *content,
    size_t len, qcommit_done_fn *, void *arg);
/*
 * Replaces a stored envelope (queue_update; with QCOMMIT_KEEP_HOLDS after
 * queue_keep_holds), in order with the submissions before it and durable
 * with the same batch's one sync. Takes env. fn may be NULL; err
 * QUEUE_ENOTFOUND when the message is gone (an admin deleted it).
 */
#define QCOMMIT_KEEP_HOLDS 1
uint64_t qcommit_update(qcommit_t *, struct queue_env *env, int flags,
    qcommit_done_fn *, void *arg);
/* A checkpoint with compaction (queue_checkpoint_now) on the writer,
 * after what was submitted before it; fn gets its result, qid "". */
uint64_t qcommit_checkpoint(qcommit_t *, qcommit_done_fn *, void *arg);
void qcommit_cancel(qcommit_t *, uint64_t ticket);

struct qcommit_stats {
	uint64_t messages, batches, syncs;
};
void qcommit_get_stats(qcommit_t *, struct qcommit_stats *);

#endif
