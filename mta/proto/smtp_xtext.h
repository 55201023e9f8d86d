/*
 * smtp_xtext - xtext (RFC 3461 4), the encoding of ENVID, ORCPT and AUTH=
 * values: one encoder for the client, one strict decoder for everyone.
 */
#ifndef STRICTMTA_SMTP_XTEXT_H
#define STRICTMTA_SMTP_XTEXT_H

#include <stddef.h>

#include "mta/util/buf.h"

/* Appends s with '+', '=' and bytes outside 33..126 as +HH. */
void smtp_xtext_encode(const char *s, buf_t *out);
/*
 * Decodes xtext ("+" and two upper-case hex digits; nothing outside
 * 33..126, no '=') into out (NUL-terminated, at most outsize - 1 bytes);
 * *outlen may be NULL. Returns NULL or "501 5.5.4 ..." for bad xtext or
 * overflow.
 */
const char *smtp_xtext_decode(
    const char *in, size_t len, char *out, size_t outsize, size_t *outlen);

#endif
