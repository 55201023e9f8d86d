/*
 * sts_fetch - fetches MTA-STS policy files over HTTPS (RFC 8461 3.3) with
 * libcurl's multi interface driven by the daemon's libevent loop: no call
 * here ever blocks the loop.
 *
 * The policy host's addresses come from the caller (looked up through the
 * project's resolver and pinned with CURLOPT_RESOLVE), so that curl never
 * does DNS of its own. Rules enforced: HTTPS only, the certificate valid
 * for mta-sts.<domain> under the Web PKI (mta_sts_CAfile, else
 * smtp_tls_CAfile, else the system bundle: read once per process by
 * sts_fetch_load_ca, which the daemon calls before it drops root, so
 * that a fetch never opens a file),
 * TLS 1.2 or later, no redirects, only status 200, media type text/plain,
 * a body of at most 64 KiB, a time limit (mta_sts_fetch_timeout).
 *
 * Ownership: the result given to the callback, and everything it points
 * to, belongs to the fetcher and lives only during the callback. A fetch
 * cancelled with sts_fetch_cancel() never calls back.
 */
#ifndef STRICTMTA_STS_FETCH_H
#define STRICTMTA_STS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"
#include "policy/sts/sts_parse.h"

struct event_base;
struct config;
typedef struct sts_fetcher sts_fetcher_t;

struct sts_fetch_result {
	const char *domain;
	const struct sts_policy *policy; /* NULL when the fetch failed */
	const char *body; /* the policy text as served */
	size_t len;
	long http_status; /* 0 when no HTTP response arrived */
	const char *error; /* NULL on success, else why, for logs and CLI */
	/* The failure is ours (no CA bundle, no memory, a set-up error),
	 * not the policy host's: nothing was learned about the policy. */
	int local;
};

typedef void sts_fetch_cb(void *arg, const struct sts_fetch_result *);

/*
 * Reads the CA bundle into memory for every fetcher of this process (the
 * first call does; later ones return 0). -1 with "mta_sts_CAfile PATH:
 * why" in err when it cannot be read.
 */
int sts_fetch_load_ca(const struct config *, buf_t *err);
/* Loads the CA bundle if no one did; NULL with its error then. */
sts_fetcher_t *sts_fetcher_new(
    struct event_base *, const struct config *, buf_t *err);
void sts_fetcher_free(sts_fetcher_t *); /* cancels all; NULL no-op */

/*
 * Fetches the policy of domain from the policy host at addrs (numeric
 * IPv4 or IPv6 strings, naddr >= 1). Returns an ID for sts_fetch_cancel().
 */
uint64_t sts_fetch(sts_fetcher_t *, const char *domain,
    const char *const *addrs, size_t naddr, sts_fetch_cb *, void *arg);
void sts_fetch_cancel(sts_fetcher_t *, uint64_t id);

#endif
