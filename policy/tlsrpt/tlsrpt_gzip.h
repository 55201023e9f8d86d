/*
 * tlsrpt_gzip - a small gzip writer (RFC 1952 member around an RFC 1951
 * deflate stream) for TLS reports, since no compression library may be
 * linked. RFC 8460 5.3 wants the report gzip-compressed.
 *
 *   tlsrpt_gzip        compresses with fixed-Huffman blocks and a greedy
 *                      LZ77 (one candidate per 3-byte hash); falls back to
 *                      stored blocks when that would be larger;
 *   tlsrpt_gzip_stored stored blocks only (the unit tests compare both);
 *   tlsrpt_crc32       the CRC-32 of RFC 1952 8.
 *
 * Writer only: nothing here parses input, so there is no fuzz target. The
 * caller owns in and out; the result is appended to out (whose cap bounds
 * it: -1 when the buf overflowed).
 */
#ifndef STRICTMTA_TLSRPT_GZIP_H
#define STRICTMTA_TLSRPT_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"

/* mtime: the MTIME field (0 = none). Returns 0, or -1 if out overflowed. */
int tlsrpt_gzip(const void *in, size_t len, uint32_t mtime, buf_t *out);
int tlsrpt_gzip_stored(const void *in, size_t len, uint32_t mtime, buf_t *out);

uint32_t tlsrpt_crc32(const void *p, size_t len);

#endif
