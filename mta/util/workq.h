/*
 * workq - work that must not run on the event loop (password hashing, and
 * anything else slow and self-contained) done by a few worker threads,
 * with the result handed back on the loop thread.
 *
 * Ownership: the caller owns `arg` throughout. work_fn(arg) runs on a
 * worker thread and may touch only arg (and data that nobody changes
 * while workers run); done_fn(arg, cancelled) then runs on the loop
 * thread exactly once per accepted job, also for a cancelled job (with
 * cancelled = 1, so that the owner can free arg), also from workq_free.
 *
 * The queue is bounded: workq_submit refuses work beyond max_pending, so
 * that a flood costs the submitter a refusal, not memory.
 */
#ifndef STRICTMTA_WORKQ_H
#define STRICTMTA_WORKQ_H

#include <stddef.h>

#include "mta/util/buf.h"

struct event_base;

typedef struct workq workq_t;
typedef struct workq_job workq_job_t;

typedef void workq_work_fn(void *arg);
typedef void workq_done_fn(void *arg, int cancelled);

/* NULL with the reason in err (thread or pipe creation failed). */
workq_t *workq_new(
    struct event_base *, unsigned threads, size_t max_pending, buf_t *err);
/* NULL when max_pending jobs are already queued or running. */
workq_job_t *workq_submit(workq_t *, workq_work_fn *, workq_done_fn *, void *);
/* done_fn will say cancelled = 1; the work itself may still run. */
void workq_cancel(workq_job_t *);
/* Jobs accepted whose done_fn has not run yet. */
size_t workq_pending(const workq_t *);
/* Joins the threads; every job not yet done gets done_fn(arg, 1). */
void workq_free(workq_t *);

#endif
