/*
 * tlsa - TLSA record data (RFC 6698 2.1) and its usability for SMTP
 * (RFC 7672 3.1, RFC 7671), as pure functions.
 *
 * tlsa_decode() reads one record's RDATA; tlsa_usable() says whether
 * OpenSSL should be given it. A record that fails either is "unusable":
 * it still counts as a published TLSA record, so TLS stays mandatory for
 * the host (RFC 7672 2.2 and 3; see policy/dane/dane.h), but it can never
 * authenticate the server.
 */
#ifndef STRICTMTA_TLSA_H
#define STRICTMTA_TLSA_H

#include <stddef.h>

#define TLSA_DATA_MAX 8192 /* a full certificate (matching type 0) */

enum tlsa_usage {
	TLSA_PKIX_TA = 0,
	TLSA_PKIX_EE = 1,
	TLSA_DANE_TA = 2,
	TLSA_DANE_EE = 3,
};

struct tlsa_rec {
	unsigned usage, selector, mtype;
	const unsigned char *data; /* points into the RDATA given */
	size_t len;
};

/* Decodes rdata of len bytes; data in rec borrows from rdata. */
const char *tlsa_decode(
    const unsigned char *rdata, size_t len, struct tlsa_rec *rec);
/* NULL when usable for SMTP, else why not ("usage PKIX-TA(0) is
 * unusable for SMTP (RFC 7672 3.1.3)", "SHA2-256 digest is not 32
 * bytes", ...). */
const char *tlsa_usable(const struct tlsa_rec *);
/* "DANE-EE(3)" style names for logs. */
const char *tlsa_usage_name(unsigned usage);

#endif
