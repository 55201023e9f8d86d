/*
 * json - the one JSON string writer (RFC 8259 7) for every --json output
 * and the control protocol: quotes and backslashes escaped, control
 * characters as \u00XX, valid UTF-8 kept as it is, and any byte that is
 * not part of valid UTF-8 written as U+FFFD, so that the output is always
 * valid JSON whatever a client or a DNS answer put into the text.
 */
#ifndef STRICTMTA_JSON_H
#define STRICTMTA_JSON_H

#include "mta/util/buf.h"

/* s as a JSON string; NULL as null. */
void json_put_string(buf_t *out, const char *s);

#endif
