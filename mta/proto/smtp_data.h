/*
 * smtp_data - the DATA reader: a state machine fed the bytes that follow
 * the 354 reply, in pieces of any size, that finds the end of the message
 * and undoes dot-stuffing (RFC 5321 4.5.2).
 *
 * Pure: no I/O, no libevent; the SMTP listener and `sendmail -bs` share
 * it. The reader is a plain struct the caller owns (stack or embedded);
 * content goes to a caller-owned buf_t.
 *
 * Rules (RFC 5321 4.1.1.4, 2.3.8, 4.5.3.1.6; RFC 5322 2.3):
 *  - The end of data is CRLF "." CRLF and nothing else. The CRLF before
 *    the dot may be the one that ended the DATA command: a message that is
 *    just ".\r\n" is empty. Bytes after the terminator are not consumed
 *    (pipelined commands follow).
 *  - A line starting with "." loses that dot; a line of just "." ends
 *    the data.
 *  - A bare LF (not after CR) or bare CR (not before LF) is never a line
 *    boundary. With forbid_bare (smtpd_forbid_bare_newline=yes, the
 *    default), the message is refused with 554 5.5.2 once the real end of
 *    data is seen; otherwise the bytes are kept as content. This is what
 *    keeps every SMTP smuggling sequence (<LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>,
 *    <CR><CR><LF>.<CR><CR><LF>, ...) inside the message or refused: none of
 *    them ends the data, and each contains a bare CR or LF.
 *  - A NUL byte is refused (554 5.6.0): RFC 5322 and RFC 6152 (8BITMIME)
 *    forbid it, and "<CRLF><NUL>.<CRLF>" style sequences thereby get the
 *    same treatment as bare newlines.
 *  - A text line longer than 1000 octets incl. CRLF (RFC 5321 4.5.3.1.6)
 *    is refused with "500 5.5.2 Line too long", the reply that RFC 5321
 *    4.5.3.1.10 names for it.
 *  - More than size_limit bytes of content: 552 5.3.4 (RFC 1870).
 * After the first error the reader keeps looking for the end of data but
 * stores nothing more; the first error is the one reported.
 */
#ifndef STRICTMTA_SMTP_DATA_H
#define STRICTMTA_SMTP_DATA_H

#include <stddef.h>

#include "mta/util/buf.h"

#define SMTP_TEXT_LINE_MAX 1000 /* incl. CRLF, RFC 5321 4.5.3.1.6 */

enum smtp_data_state {
	SMTP_DATA_SOL, /* at the start of a line */
	SMTP_DATA_DOT, /* a "." at the start of a line */
	SMTP_DATA_DOT_CR, /* "." CR at the start of a line */
	SMTP_DATA_TEXT, /* inside a line */
	SMTP_DATA_CR, /* CR inside a line */
	SMTP_DATA_DONE, /* the terminator was consumed */
};

struct smtp_data {
	enum smtp_data_state state;
	size_t size_limit; /* content bytes; 0: no limit */
	int forbid_bare;
	size_t linelen; /* wire bytes of the current line so far */
	size_t size; /* content bytes counted so far */
	const char *error;
	int bare_lf, bare_cr; /* seen (also with forbid_bare off) */
};

void smtp_data_init(struct smtp_data *, size_t size_limit, int forbid_bare);

/*
 * Feeds len bytes; appends content to out (unless an error is pending).
 * Returns the number of bytes consumed: all of them, or fewer when the end
 * of data was reached (then smtp_data_done() is nonzero).
 */
size_t smtp_data_feed(
    struct smtp_data *, const char *in, size_t len, buf_t *out);
int smtp_data_done(const struct smtp_data *);
/* NULL, or the reply for the final dot ("554 5.5.2 ..."). Also set when
 * out overflowed its cap (552 5.3.4). */
const char *smtp_data_error(const struct smtp_data *);

#endif
