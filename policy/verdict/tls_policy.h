/*
 * tls_policy - the TLS verdict for each host delivery connects to: DANE
 * first (RFC 7672), then MTA-STS (RFC 8461), then the configured default
 * (smtp_tls_security_level). Delivery asks it through tls_policy_request
 * (a tls_verdict_fn; mta/deliver attaches it, never the reverse).
 *
 * Order and precedence (RFC 8461 2: MTA-STS never overrides DANE):
 *   1. the host's address records are secure and it has usable TLSA
 *      records: level dane, authenticated by them; only unusable records:
 *      level encrypt; a failed or bogus TLSA lookup: skip the host with
 *      4.7.5;
 *   2. otherwise the recipient domain's MTA-STS policy: enforce: the host
 *      must match an mx pattern (else skip it with 4.7.5) and level
 *      sts-enforce (TLS 1.2+, Web PKI certificate for the host name);
 *      testing: the configured level, failures logged for TLS reports;
 *      none or no policy: the configured level;
 *   3. the configured default.
 *
 * Ownership: tls_policy_new() keeps cfg and the resolver, which must
 * outlive it; it owns the MTA-STS state (sts_t) and its cache file.
 */
#ifndef STRICTMTA_TLS_POLICY_H
#define STRICTMTA_TLS_POLICY_H

#include "mta/util/buf.h"
#include "policy/sts/sts.h"
#include "policy/verdict/verdict.h"
#include "resolver/resolver.h"

struct event_base;
struct config;
typedef struct tls_policy tls_policy_t;

/* The MTA-STS cache is queue_directory/policy/sts-cache.db (made if
 * missing, by the caller's account). */
tls_policy_t *tls_policy_new(
    struct event_base *, const struct config *, resolver_t *, buf_t *err);
void tls_policy_free(tls_policy_t *); /* NULL is a no-op */
/* Enables OpenSSL's DANE on the client context that sessions use (once);
 * without it hosts with TLSA records are deferred. */
void tls_policy_use_ctx(tls_policy_t *, SSL_CTX *);
/* tls_verdict_fn and tls_verdict_cancel_fn, parg the tls_policy_t. */
uint64_t tls_policy_request(void *parg, const struct tls_verdict_req *,
    tls_verdict_done *done, void *arg);
void tls_policy_cancel(void *parg, uint64_t id);
/* The MTA-STS state, for the admin commands (policy show/refresh/...). */
sts_t *tls_policy_sts(tls_policy_t *);
/* ops-exceptions: the operator's per-domain exceptions (exception.h),
 * applied to every verdict; for the admin commands, explain, metrics. */
struct tls_exceptions;
struct tls_exceptions *tls_policy_exceptions(tls_policy_t *);

#endif
