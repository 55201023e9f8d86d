/*
 * dane - DANE for SMTP (RFC 7672) on top of OpenSSL's DANE support.
 *
 * This module decides which TLSA records are usable (tlsa.h) and hands
 * those to OpenSSL, which does all certificate matching: the project never
 * compares digests itself. Rules applied here, with their sections:
 *   - SNI is the TLSA base domain (RFC 7672 8.1);
 *   - DANE-EE(3) ignores names and validity dates (RFC 7671 5.1, RFC 7672
 *     3.1.1): DANE_FLAG_NO_DANE_EE_NAMECHECKS;
 *   - DANE-TA(2) checks the reference identifiers of RFC 7672 3.2.2: the
 *     TLSA base domain and, when it differs, the MX host name;
 *   - only DANE-TA/DANE-EE with selectors 0/1 and matching types 0/1/2 are
 *     usable (3.1); when records exist but none is usable, TLS is still
 *     mandatory, without authentication (2.2 and 3; the caller sees a
 *     count of 0 and uses the "encrypt" level).
 *
 * Ownership: the SSL objects are the caller's; nothing here keeps a
 * pointer after returning.
 */
#ifndef STRICTMTA_DANE_H
#define STRICTMTA_DANE_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "mta/util/buf.h"
#include "policy/dane/tlsa.h"

/* Enables DANE on a client SSL_CTX (once, at start). 0 or -1. */
int dane_ctx_enable(SSL_CTX *);

/*
 * Prepares ssl for a DANE-authenticated handshake with the MX host
 * mx_host whose TLSA records (recs, n) were found at base (the TLSA base
 * domain). Returns the number of usable records given to OpenSSL (0: TLS
 * mandatory, unauthenticated), or -1 with why set.
 */
int dane_ssl_setup(SSL *, const char *base, const char *mx_host,
    const struct tlsa_rec *recs, size_t n, buf_t *why);

/*
 * After the handshake: nonzero when the peer was authenticated by a TLSA
 * record; desc gets "dane: matched DANE-EE(3) 1 1 at depth 0" or the
 * reason it failed ("dane: no TLSA record matched the certificate").
 */
int dane_ssl_verified(SSL *, buf_t *desc);

/*
 * Verifies a chain (leaf first) offline with the same settings as a live
 * session; for the conformance tests and `strictmta check`. Returns the
 * number of usable records, and sets *verified and desc as above.
 */
int dane_verify_chain(const char *base, const char *mx_host,
    const struct tlsa_rec *recs, size_t n, STACK_OF(X509) * chain,
    int *verified, buf_t *desc);

#endif
