/*
 * dane_lookup - the DANE decision for one MX host (RFC 7672 2.2): look up
 * its TLSA records and say what TLS the delivery must use with it.
 *
 * Inputs come from the caller's address lookup of the host: the DNSSEC
 * status of its A/AAAA answer and its CNAME expansion. Outcomes:
 *   DANE_HOST_NONE     no DANE for this host (insecure address records,
 *                      or TLSA securely denied, or TLSA in an insecure
 *                      zone): the destination's other policy applies;
 *   DANE_HOST_USABLE   usable records: STARTTLS and authentication by
 *                      them are mandatory (dane.h);
 *   DANE_HOST_UNUSABLE records exist but none is usable: STARTTLS is
 *                      mandatory, without authentication (2.2, 3);
 *   DANE_HOST_FAILED   the TLSA lookup failed or was bogus: the host is
 *                      unusable for this attempt; never a downgrade.
 *
 * Ownership: the result passed to the callback lives only during it; the
 * records point into it. Cancel with dane_lookup_cancel().
 */
#ifndef STRICTMTA_DANE_LOOKUP_H
#define STRICTMTA_DANE_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "policy/dane/tlsa.h"
#include "resolver/resolver.h"

enum dane_host_state {
	DANE_HOST_NONE,
	DANE_HOST_USABLE,
	DANE_HOST_UNUSABLE,
	DANE_HOST_FAILED,
};

struct dane_host_result {
	const char *host; /* the MX host name asked about */
	enum dane_host_state state;
	const char *base; /* TLSA base domain (SNI, names), or NULL */
	const struct tlsa_rec *recs; /* every decoded record */
	size_t nrec;
	size_t nusable;
	const char *why; /* for logs and the deferral reason */
};

typedef void dane_lookup_cb(void *arg, const struct dane_host_result *);

/*
 * host: the MX host name; addr_status: DNSSEC status of its address
 * records; canonical: the name after CNAMEs (or host); cname_secure:
 * whether that expansion was secure. Returns an ID for cancel, or 0
 * when no lookup is needed because the address records are not secure
 * (2.2): then cb is never called and the host has no DANE.
 */
uint64_t dane_lookup(resolver_t *, const char *host,
    enum dnssec_status addr_status, const char *canonical, int cname_secure,
    dane_lookup_cb *, void *arg);
void dane_lookup_cancel(uint64_t id);

const char *dane_host_state_name(enum dane_host_state);

#endif
