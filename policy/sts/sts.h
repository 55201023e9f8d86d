/*
 * sts - MTA-STS for delivery (RFC 8461): discovery, fetch, the persistent
 * cache, background refresh, and the TLS checks of enforce mode.
 *
 * sts_get() answers "which policy applies to this recipient domain now?"
 * asynchronously; concurrent requests for one domain share one TXT lookup
 * and one fetch. The rules (section numbers in sts.c):
 *   - a cached, unexpired policy whose id matches the TXT record is used
 *     without a fetch; a new id fetches; a failed fetch keeps the cached
 *     policy (5.1);
 *   - a missing, failing or invalid TXT record never removes or bypasses an
 *     unexpired cached policy (10.2: stripping the TXT record must not turn
 *     enforcement off);
 *   - policies of domains in use are refreshed in the background before
 *     they expire.
 *
 * Ownership: the verdict passed to a callback lives only during it.
 */
#ifndef STRICTMTA_STS_H
#define STRICTMTA_STS_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "mta/util/buf.h"
#include "policy/sts/sts_parse.h"

struct event_base;
struct config;
struct resolver;
typedef struct sts sts_t;

struct sts_verdict {
	const char *domain;
	const struct sts_policy *policy; /* NULL: no policy applies */
	const char *id; /* policy id, "" without */
	const char *source; /* "cache", "fetch", or "none" */
	const char *note; /* why no policy, or a warning kept for TLSRPT
	                     ("TXT lookup failed; cached policy used") */
	/* The domain publishes a policy that we could not fetch for a
	 * reason of our own (policy is NULL): mail must wait. */
	int local_failure;
};

typedef void sts_cb(void *arg, const struct sts_verdict *);

/* cache_path: the Berkeley DB file of the policy cache. */
sts_t *sts_new(struct event_base *, const struct config *, struct resolver *,
    const char *cache_path, buf_t *err);
void sts_free(sts_t *); /* cancels all; NULL is a no-op */

uint64_t sts_get(sts_t *, const char *domain, sts_cb *, void *arg);
/* Like sts_get, but fetches even when the cache is fresh (admin). */
uint64_t sts_refresh(sts_t *, const char *domain, sts_cb *, void *arg);
void sts_cancel(sts_t *, uint64_t id);
/* Removes a domain's cached policy (admin); 0, or 1 when absent. */
int sts_forget(sts_t *, const char *domain);

/* The cache, for `strictmta policy show|list` (text or JSON). */
void sts_describe(sts_t *, const char *domain, int json, buf_t *out);

/*
 * Enforce-mode TLS (RFC 8461 4.2): before the handshake, require TLS 1.2+
 * and a certificate valid for mx_host under the Web PKI (the SSL_CTX must
 * verify peers against the trusted roots); after it, say what was verified
 * or why not.
 */
void sts_ssl_setup(SSL *, const char *mx_host);
int sts_ssl_verified(SSL *, const char *mx_host, buf_t *desc);

#endif
