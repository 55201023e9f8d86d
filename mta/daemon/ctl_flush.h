/*
 * ctl_flush - "strictmta queue flush" of the whole queue, for the control
 * server's reader thread: in slices of the time index (queue_change_slice),
 * so that delivery starts after the first slice rather than after a walk of
 * every envelope. Owns nothing; the caller owns out.
 */
#ifndef STRICTMTA_CTL_FLUSH_H
#define STRICTMTA_CTL_FLUSH_H

#include <stdint.h>

#include "daemon_int.h"
#include "queue/queue.h"

/* Makes env's deferred (and not yet due) recipients due at now, except
 * those attempted after since; returns how many changed. */
unsigned ctl_flush_env(struct queue_env *env, int64_t now, int64_t since);
/* Flushes every message; appends "QID: flushed" lines and the count to
 * out. Returns how many messages changed, or -1 on a queue error. */
long ctl_flush_all(daemon_t *d, uid_t uid, buf_t *out);

#endif
