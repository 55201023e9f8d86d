/*
 * queue - the durable mail queue: a Berkeley DB 5.3 transactional
 * environment under queue_directory/db.
 *
 * Databases (all in one environment, all changed in one transaction per
 * operation):
 *   envelopes  qid -> encoded envelope (queue_env_encode)
 *   contents   qid -> message content (headers and body, CRLF lines)
 *   schedule   8-byte big-endian next-attempt time + qid -> empty: the time
 *              index the scheduler walks (queue_due), so it never scans
 *              the whole queue. A message appears once, at the earliest
 *              next attempt of its pending or deferred recipients; held,
 *              delivered and failed recipients are not scheduled.
 *
 * Durability: queue_put() commits without waiting for the disk; the caller
 * makes one or many commits durable with one queue_sync() (one log flush,
 * i.e. one fsync): group commit. Only after queue_sync() returns 0 may a
 * message be acknowledged. qcommit.h wraps this in a thread so that the
 * event loop never waits on the disk.
 *
 * Threads: a queue_t may be used from several threads at once (DB_THREAD).
 * Ownership: the caller owns every queue_env it passes in or gets back and
 * frees it with queue_env_free().
 */
#ifndef STRICTMTA_QUEUE_H
#define STRICTMTA_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"
#include "mta/util/qid.h"

typedef struct queue queue_t;

/* Queue IDs are mta/util/qid.h's (16 uppercase hex digits, sorting by
 * arrival); the queue's names for the same sizes. */
#define QUEUE_ID_LEN QID_LEN
#define QUEUE_ID_SIZE QID_SIZE

/* Errors (negative). QUEUE_ENOSPC maps to 452 4.3.1. */
#define QUEUE_OK 0
#define QUEUE_ERR -1 /* other failure; the message names it */
#define QUEUE_ENOSPC -2 /* disk full */
#define QUEUE_ENOTFOUND -3 /* no such queue ID */
#define QUEUE_EEXIST -4 /* queue_put: that queue ID is already stored */

enum rcpt_state {
	RCPT_PENDING = 0, /* never tried */
	RCPT_DEFERRED, /* tried, temporary failure; next_attempt set */
	RCPT_DELIVERED,
	RCPT_FAILED,
	RCPT_HELD, /* on hold by the admin; not scheduled */
};

/* RFC 3461 NOTIFY bits; 0 means not given (default: FAILURE). */
#define DSN_NOTIFY_NEVER 0x1
#define DSN_NOTIFY_SUCCESS 0x2
#define DSN_NOTIFY_FAILURE 0x4
#define DSN_NOTIFY_DELAY 0x8

enum dsn_ret { DSN_RET_UNSPEC = 0, DSN_RET_FULL, DSN_RET_HDRS };

/* Envelope flags. */
#define QENV_8BITMIME 0x01 /* BODY=8BITMIME */
#define QENV_SMTPUTF8 0x02 /* SMTPUTF8 given */
#define QENV_REQUIRETLS 0x04 /* MAIL FROM ... REQUIRETLS (RFC 8689) */
#define QENV_TLS_OPTIONAL 0x08 /* "TLS-Required: No" header (RFC 8689 5) */
#define QENV_BOUNCE 0x10 /* a DSN we generated (null sender) */
#define QENV_WARNED 0x20 /* delay warning sent */
#define QENV_TLSRPT 0x40 /* our TLS report (RFC 8460): not counted */

struct queue_rcpt {
	char *address; /* owned; as given in RCPT TO, no <> */
	char *orcpt; /* owned or NULL; ORCPT value, "rfc822;a@b" */
	unsigned notify; /* DSN_NOTIFY_* bits */
	enum rcpt_state state;
	unsigned attempts;
	int64_t next_attempt; /* unix seconds; 0 = as soon as possible */
	int64_t last_attempt;
	char *last_response; /* owned or NULL: "4.4.1 host[addr] said: ..." */
	char *dsn_status; /* owned or NULL: enhanced code "5.1.1" */
};

struct queue_env {
	char qid[QUEUE_ID_SIZE];
	char *sender; /* owned; "" for the null sender */
	int64_t arrival; /* unix seconds */
	uint64_t size; /* content bytes */
	enum dsn_ret ret;
	char *envid; /* owned or NULL; ENVID, xtext-decoded */
	unsigned flags; /* QENV_* */
	char *client; /* owned or NULL; "name[addr]" or "local" */
	char *helo; /* owned or NULL */
	struct queue_rcpt *rcpts;
	size_t nrcpt;
};

struct queue_env *queue_env_new(void);
void queue_env_free(struct queue_env *); /* NULL is a no-op */
struct queue_env *queue_env_dup(const struct queue_env *);
/* Copies address and orcpt (orcpt may be NULL). Returns the new recipient. */
struct queue_rcpt *queue_env_add_rcpt(struct queue_env *, const char *address,
    const char *orcpt, unsigned notify);
/* Earliest next_attempt among pending/deferred recipients; -1 if none. */
int64_t queue_env_next_due(const struct queue_env *);
const char *queue_rcpt_state_name(enum rcpt_state);

/*
 * The envelope record format (one record per message; stored in the
 * database and used by nothing else). The decoder is a pure function with
 * length limits, fuzzed: it returns NULL or an error string.
 */
void queue_env_encode(const struct queue_env *, buf_t *out);
const char *queue_env_decode(
    const void *data, size_t len, struct queue_env **envp);

/*
 * Opens (creating if needed, with recovery) the queue under dir. On error
 * returns NULL with a message naming the path and the cause in err.
 */
queue_t *queue_open(const char *dir, buf_t *err);
void queue_close(queue_t *); /* checkpoints; NULL is a no-op */
/* Nonzero once the database environment has failed for good (a Berkeley
 * DB panic): every operation fails until the queue is closed and opened
 * again (recovery), so the daemon should restart. */
int queue_failed(queue_t *);

/* A new unique queue ID (thread-safe); see mta/util/qid.h. */
void queue_new_id(char qid[QUEUE_ID_SIZE]);

/*
 * Stores a new message: env (its qid must be set, see queue_new_id) and
 * the content. Not yet durable: see queue_sync(). Returns QUEUE_OK,
 * QUEUE_ENOSPC or QUEUE_ERR (err says why; err may be NULL), or
 * QUEUE_EEXIST when that queue ID is already stored (nothing changed; a
 * repeated maildrop import).
 */
int queue_put(queue_t *, const struct queue_env *, const void *content,
    size_t len, buf_t *err);
/*
 * Free space the queue's file system must keep beyond twice a new
 * message's size, or queue_put() returns QUEUE_ENOSPC without writing
 * (config queue_minfree). 0 (the default) means 33 MB: the database cache,
 * log buffer and two log files, so that checkpoints and recovery still
 * find room.
 */
void queue_set_minfree(queue_t *, uint64_t bytes);
/* Makes every commit so far durable (one log flush). */
int queue_sync(queue_t *, buf_t *err);

/* Reads one envelope; *envp is the caller's. QUEUE_ENOTFOUND if absent. */
int queue_get(queue_t *, const char *qid, struct queue_env **envp);
/* Reads the content into out (appended). */
int queue_get_content(queue_t *, const char *qid, buf_t *out);
/*
 * Replaces the envelope (recipient states after an attempt, hold, ...)
 * and moves the message in the time index. A message whose recipients
 * are all delivered or failed is removed whole (envelope, content, index)
 * in the same transaction. Durable at the next queue_sync(); the daemon
 * syncs after each delivery batch.
 */
int queue_update(queue_t *, const struct queue_env *);
/*
 * An admin may hold recipients while a delivery attempt is under way; the
 * attempt's copy of the envelope predates that. A recipient of env that
 * the attempt did not finish (delivered or failed) is set held when the
 * stored envelope says so. Call it just before queue_update().
 */
void queue_keep_holds(queue_t *, struct queue_env *env);
int queue_delete(queue_t *, const char *qid);

/*
 * Calls fn for each message due at or before now, in next-attempt order,
 * at most max messages; fn returns nonzero to stop. The env passed to fn is
 * freed after fn returns (dup it to keep it). fn may call queue_update()
 * or queue_delete() on the queue. max 0 means no limit. Returns the number
 * of messages visited, or a negative QUEUE_* error.
 */
typedef int queue_visit_fn(void *arg, const struct queue_env *);
int queue_due(queue_t *, int64_t now, size_t max, queue_visit_fn *, void *);
/* The same; skip(arg, qid) nonzero passes a message over before its
 * envelope is read (one already in hand). */
typedef int queue_skip_fn(void *arg, const char *qid);
int queue_due_skip(queue_t *, int64_t now, size_t max, queue_skip_fn *skip,
    queue_visit_fn *, void *);
/*
 * A change of many messages in slices, in schedule order, without a full
 * scan first (a flush of everything): each call reads at most max keys of
 * the time index after pos, and for each message calls fn on its
 * envelope inside one transaction under the envelope's write lock; fn
 * returns how many recipients it changed, and a change is written (and
 * the message moved in the index) in that transaction. pos starts zeroed;
 * keys added after the first call beyond the last key then seen are left
 * alone. changed[] (max entries) gets the changed messages, *nchanged
 * their number. Returns the keys read (0: done) or a QUEUE_* error.
 */
struct queue_pos {
	unsigned char key[8 + QUEUE_ID_LEN];
	int64_t limit; /* the last key's time at the first call */
	int started;
};
struct queue_changed {
	char qid[QUEUE_ID_SIZE];
	unsigned n;
};
typedef unsigned queue_change_fn(void *arg, struct queue_env *);
int queue_change_slice(queue_t *, struct queue_pos *, size_t max,
    queue_change_fn *, void *, struct queue_changed *changed, size_t *nchanged);
/* Calls fn for every message in queue ID (arrival) order. */
int queue_walk(queue_t *, queue_visit_fn *, void *);
/* Earliest scheduled time in the index, or -1 when nothing is scheduled. */
int64_t queue_next_wakeup(queue_t *);

struct queue_stats {
	uint64_t messages, bytes;
	uint64_t rcpt_pending, rcpt_deferred, rcpt_held;
	int64_t oldest_arrival; /* 0 when empty */
};
int queue_stats(queue_t *, struct queue_stats *);

/* Checkpoints and removes log files no longer needed; the daemon calls it
 * every minute so that disk use follows the queue's content. */
int queue_checkpoint(queue_t *);
/* The same, and compacts the files whatever was removed (on request). */
int queue_checkpoint_now(queue_t *);

#endif
