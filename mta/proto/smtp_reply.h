/*
 * smtp_reply - SMTP replies as the client reads them (RFC 5321 4.2,
 * enhanced status codes RFC 3463), the EHLO keywords, and DATA encoding
 * (dot-stuffing, CRLF only). Pure and capped: part of the protocol
 * library (mta/proto), with no queue, event loop or TLS.
 */
#ifndef STRICTMTA_SMTP_REPLY_H
#define STRICTMTA_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"

/*
 * Replies (RFC 5321 4.2). Caps: a line is at most SMTP_REPLY_LINE_MAX
 * bytes including CRLF, a reply at most SMTP_REPLY_LINES_MAX lines.
 */
#define SMTP_REPLY_LINE_MAX 512
#define SMTP_REPLY_LINES_MAX 100
#define SMTP_STATUS_SIZE 16

struct smtp_reply {
	int code; /* 200..599 */
	char status[SMTP_STATUS_SIZE]; /* enhanced code "2.0.0" or "" */
	size_t nlines;
	/* The text of each line after "DDD-"/"DDD ", lines joined by '\n',
	 * NUL-terminated. Bytes are as received (make printable to log). */
	char text[SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINE_MAX];
	size_t textlen;
};

/*
 * Parses one complete reply at the start of data[0..len). Returns NULL
 * and sets *used to the bytes consumed; *used == 0 means the reply is not
 * complete yet (read more). Otherwise returns an error string ("reply
 * line too long", ...) and the connection should be dropped. A line may
 * end in CRLF or a bare LF.
 */
const char *smtp_reply_parse(
    const char *data, size_t len, struct smtp_reply *, size_t *used);
/* Checks "x.y.z" per RFC 3463 (class 2, 4 or 5; 1-3 and 1-3 digits). */
int smtp_status_valid(const char *s, size_t len);
/* Appends "250 2.0.0 text" with lines joined by spaces, printable. */
void smtp_reply_format(const struct smtp_reply *, buf_t *out);

/* Service extensions from an EHLO reply (RFC 5321 4.1.1.1). */
#define SMTP_EXT_STARTTLS 0x01
#define SMTP_EXT_PIPELINING 0x02
#define SMTP_EXT_SIZE 0x04
#define SMTP_EXT_8BITMIME 0x08
#define SMTP_EXT_SMTPUTF8 0x10
#define SMTP_EXT_DSN 0x20
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x40
#define SMTP_EXT_CHUNKING 0x80
#define SMTP_EXT_REQUIRETLS 0x100 /* RFC 8689 */

struct smtp_ehlo {
	unsigned ext; /* SMTP_EXT_* */
	uint64_t size; /* SIZE limit; 0 = none announced */
};
void smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);

/*
 * Message encoding for DATA (RFC 5321 4.5.2): dot-stuffs and turns every
 * bare CR or bare LF into CRLF so that no bare newline ever leaves this
 * host (SMTP smuggling); ends with CRLF "." CRLF. Appends to out.
 */
void smtp_data_encode(const char *content, size_t len, buf_t *out);
/* Nonzero when any byte has the high bit set (needs 8BITMIME). */
int smtp_has_8bit(const char *s, size_t len);

#endif
