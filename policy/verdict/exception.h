/*
 * exception - per-domain TLS exceptions that expire: the one way an
 * operator lowers (or sets) the TLS level that the policy engine computed
 * for a recipient domain, e.g. a DANE domain whose TLSA rollover broke,
 * lowered to "encrypt" for 48 hours. Nothing else may lower a level.
 *
 * Store: queue_directory/policy/exceptions.db, a Berkeley DB btree,
 * domain -> record (tls_exception_encode). The table is read whole at
 * open and answers every lookup from memory; adds and removes take effect
 * at once and are written, with a sync, by the module's own writer thread:
 * the event loop never waits for the disk. Expired entries are removed
 * (and logged) by a one-second timer on the loop and ignored by lookups
 * in between.
 *
 * Bounds: TLS_EXC_MAX entries, reasons TLS_EXC_REASON_MAX bytes of
 * printable ASCII, TTL at most TLS_EXC_TTL_MAX seconds. Only levels that
 * need no verification data can be set (none, may, encrypt): dane,
 * sts-enforce and secure come from the domain's own DNS and policy.
 *
 * Ownership: the caller owns every struct tls_exception it passes in or
 * gets back (plain values, no pointers inside). tls_exceptions_close()
 * waits for the pending writes.
 */
#ifndef STRICTMTA_EXCEPTION_H
#define STRICTMTA_EXCEPTION_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"
#include "policy/verdict/verdict.h"

struct event_base;

#define TLS_EXC_MAX 1000
#define TLS_EXC_DOMAIN_MAX 253
#define TLS_EXC_REASON_MAX 200
#define TLS_EXC_WHO_MAX 64
#define TLS_EXC_TTL_MAX (90LL * 86400) /* 90 days */
#define TLS_EXC_RECORD_MAX 512

struct tls_exception {
	char domain[TLS_EXC_DOMAIN_MAX + 1]; /* lower case */
	enum tls_level level;
	int64_t added, expires; /* unix seconds */
	char who[TLS_EXC_WHO_MAX + 1]; /* "uid 0" */
	char reason[TLS_EXC_REASON_MAX + 1];
};

typedef struct tls_exceptions tls_exceptions_t;

/* base may be NULL (no expiry timer: tools, tests). */
tls_exceptions_t *tls_exceptions_open(
    struct event_base *base, const char *path, buf_t *err);
void tls_exceptions_close(tls_exceptions_t *); /* NULL is a no-op */

/* 1 and *out set when domain (any case) has an exception in force at now,
 * else 0. t may be NULL (no exceptions configured): 0. */
int tls_exception_find(const tls_exceptions_t *t, const char *domain,
    int64_t now, struct tls_exception *out);
/* Adds or replaces; NULL, or why not (table full, invalid entry). */
const char *tls_exception_add(tls_exceptions_t *, const struct tls_exception *);
/* 0 removed, 1 absent. */
int tls_exception_remove(tls_exceptions_t *, const char *domain);
/* Exceptions in force at now (the metric). */
size_t tls_exception_count(const tls_exceptions_t *, int64_t now);
/* Removes and logs the entries expired at now; returns how many. */
size_t tls_exception_expire(tls_exceptions_t *, int64_t now);
/* Every entry in force at now, in domain order of insertion. */
typedef void tls_exception_visit_fn(void *arg, const struct tls_exception *);
void tls_exception_walk(
    const tls_exceptions_t *, int64_t now, tls_exception_visit_fn *, void *arg);
/* Nonzero when this use should be logged (at most once a minute per
 * domain), so that a busy domain does not flood the log. */
int tls_exception_log_due(tls_exceptions_t *, const char *domain, int64_t now);

/* ---- pure parts (unit-tested and fuzzed) ---- */

/* "90s", "30m", "48h", "7d" (a bare number is seconds), 1 s up to
 * TLS_EXC_TTL_MAX. NULL, or an error string. */
const char *tls_exception_parse_duration(
    const char *s, size_t len, int64_t *secs);
/* Checks an entry as add() and decode() accept it. NULL, or why not. */
const char *tls_exception_check(const struct tls_exception *);
/* The record is "TLSX1 <level> <added> <expires> <who>\n<reason>", the
 * domain being the key. */
void tls_exception_encode(const struct tls_exception *, buf_t *out);
const char *tls_exception_decode(const char *domain, const void *data,
    size_t len, struct tls_exception *out);
/*
 * The control requests (one line, no newline, printable ASCII):
 *   "exception-add DOMAIN LEVEL DURATION REASON..." (the reason is the
 *   rest of the line), "exception-list [--json]", "exception-remove
 *   DOMAIN". The domain is lowered to lower case. NULL, or the error.
 */
enum tls_exception_op { TLS_EXC_OP_ADD, TLS_EXC_OP_LIST, TLS_EXC_OP_REMOVE };
struct tls_exception_req {
	enum tls_exception_op op;
	int json;
	char domain[TLS_EXC_DOMAIN_MAX + 1];
	enum tls_level level;
	int64_t ttl;
	char reason[TLS_EXC_REASON_MAX + 1];
};
#define TLS_EXC_REQUEST_MAX 600
const char *tls_exception_parse_request(
    const char *line, size_t len, struct tls_exception_req *);
/* One entry as text "domain level=... expires=..." or a JSON object. */
void tls_exception_format(const struct tls_exception *, int json, buf_t *out);

#endif
