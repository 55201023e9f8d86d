/*
 * sts_cache - the persistent MTA-STS policy cache (RFC 8461 5.1): one
 * Berkeley DB btree file, domain -> entry, that survives restarts.
 *
 * The policy text is stored as it was served and parsed again on load, so
 * the parser stays the one judge of what a policy means. An entry is kept
 * after it expires (the admin CLI shows it); callers check expires.
 *
 * Ownership: entries returned by sts_cache_get() are the caller's
 * (sts_cache_entry_free()). The whole cache is held in memory (read at
 * open); each put or delete takes effect at once and is written to disk,
 * with a sync, by the cache's own writer thread, never the caller's;
 * sts_cache_close() waits for those writes.
 */
#ifndef STRICTMTA_STS_CACHE_H
#define STRICTMTA_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"
#include "policy/sts/sts_parse.h"

typedef struct sts_cache sts_cache_t;

struct sts_cache_entry {
	char domain[256];
	char id[STS_ID_MAX + 1];
	int64_t fetched; /* when the policy was fetched */
	int64_t expires; /* fetched + max_age */
	int64_t last_used; /* last delivery that asked for it */
	char *body; /* policy text, owned */
	size_t len;
};

/* One process at a time (the daemon, under its pid file lock): a
 * temporary file that an interrupted creation left is removed. */
sts_cache_t *sts_cache_open(const char *path, buf_t *err);
void sts_cache_close(sts_cache_t *); /* NULL is a no-op */

/* 0 and *out set, 1 when absent, -1 on a read error or a corrupt entry. */
int sts_cache_get(
    sts_cache_t *, const char *domain, struct sts_cache_entry **out);
int sts_cache_put(sts_cache_t *, const struct sts_cache_entry *);
int sts_cache_delete(sts_cache_t *, const char *domain); /* 1 if absent */
typedef int sts_cache_visit_fn(void *arg, const struct sts_cache_entry *);
int sts_cache_walk(sts_cache_t *, sts_cache_visit_fn *, void *arg);
void sts_cache_entry_free(struct sts_cache_entry *);

/* The record format, pure and capped (fuzzed with the policy parser). */
void sts_cache_encode(const struct sts_cache_entry *, buf_t *out);
const char *sts_cache_decode(
    const void *data, size_t len, struct sts_cache_entry **out);

#endif
