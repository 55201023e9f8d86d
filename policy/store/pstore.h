/*
 * pstore - a small keyed Berkeley DB file for the policy layer's state
 * (the MTA-STS policy cache, the TLS exceptions): read whole at open,
 * then written by a thread of its own, so that the event loop that
 * changes the owner's in-memory table never waits for the disk.
 *
 * Ownership: the owner keeps its table and decodes records itself; the
 * store owns the DB handle (the writer thread's alone after open) and
 * every queued write. pstore_close() drains the writes, then closes.
 */
#ifndef STRICTMTA_PSTORE_H
#define STRICTMTA_PSTORE_H

#include <stddef.h>

#include "mta/util/buf.h"

#define PSTORE_KEY_MAX 255

typedef struct pstore pstore_t;

/* One stored record, at open: key is NUL-terminated (1..PSTORE_KEY_MAX
 * bytes; others are skipped before this is called). */
typedef void pstore_load_fn(
    void *arg, const char *key, const void *val, size_t len);

/*
 * Opens (creating, mode 0600) path, calls load for every record, then
 * starts the writer. what names the file in errors and log lines ("the
 * MTA-STS policy cache"). NULL and err filled on failure.
 */
pstore_t *pstore_open(const char *path, const char *what, pstore_load_fn *load,
    void *arg, buf_t *err);
/* Queues a write of key: record's bytes (taken; record is emptied), or a
 * delete when record is NULL. Written and synced by the writer, in order;
 * a failure is logged. */
void pstore_write(pstore_t *, const char *key, buf_t *record);
void pstore_close(pstore_t *); /* NULL is a no-op */
const char *pstore_path(const pstore_t *);

#endif
