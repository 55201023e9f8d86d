/*
 * tlsrpt_dkim - DKIM signatures (RFC 6376) for the TLS reports strictmta
 * mails (RFC 8460 5.3: reports by mail SHOULD be DKIM-signed by the
 * submitter). relaxed/relaxed only, rsa-sha256 (RFC 6376 3.3.1) or
 * ed25519-sha256 (RFC 8463), chosen by the key's type, signed with
 * OpenSSL EVP.
 *
 *   tlsrpt_dkim_load   reads the PEM private key; the daemon calls it as
 *                      root before it drops privileges (the file may then
 *                      be readable by root only). The path is walked with
 *                      safepath: no links, folders root's only;
 *   tlsrpt_dkim_sign   the DKIM-Signature header field for one message;
 *   tlsrpt_dkim_canon_header / _canon_body   the relaxed forms (3.4.2,
 *                      3.4.4), exposed for the unit tests.
 *
 * Input messages are our own (CRLF line ends, headers then an empty line).
 * The signer owns its key; tlsrpt_dkim_free(NULL) is a no-op.
 */
#ifndef STRICTMTA_TLSRPT_DKIM_H
#define STRICTMTA_TLSRPT_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"

typedef struct tlsrpt_dkim tlsrpt_dkim_t;

/* NULL with one line in err ("tlsrpt_dkim_key_file PATH: why"). */
tlsrpt_dkim_t *tlsrpt_dkim_load(
    const char *path, const char *domain, const char *selector, buf_t *err);
void tlsrpt_dkim_free(tlsrpt_dkim_t *);
/* "rsa-sha256" or "ed25519-sha256". */
const char *tlsrpt_dkim_algorithm(const tlsrpt_dkim_t *);

/*
 * Appends "DKIM-Signature: ...\r\n" (folded) to out for msg, signing the
 * header fields named in headers (colon-separated, e.g. "from:to:subject")
 * that msg has, with t= now. Returns 0, or -1 with err set.
 */
int tlsrpt_dkim_sign(tlsrpt_dkim_t *, const char *msg, size_t len,
    const char *headers, int64_t now, buf_t *out, buf_t *err);

/* One header field (name:value, maybe folded, no final CRLF) relaxed,
 * with "\r\n" appended unless crlf is 0. */
void tlsrpt_dkim_canon_header(
    const char *field, size_t len, int crlf, buf_t *out);
/* A body relaxed. */
void tlsrpt_dkim_canon_body(const char *body, size_t len, buf_t *out);

#endif
