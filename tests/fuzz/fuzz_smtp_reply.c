/*
 * fuzz_smtp_reply - the SMTP client's reply parser and EHLO keyword
 * reader over arbitrary server bytes, plus the DATA encoder's guarantee
 * that no bare CR or LF ever leaves this host.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/proto/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct smtp_reply reply;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t left = size, used, n = 0;
	struct smtp_ehlo ehlo;
	buf_t *b = buf_new(0);
	const char *out;
	size_t i, olen;

	/* Every reply in the stream, as the session's read loop does. */
	while (left > 0 && n++ < 1000) {
		if (smtp_reply_parse(p, left, &reply, &used) != NULL ||
		    used == 0)
			break;
		if (used > left || reply.code < 200 || reply.code > 599 ||
		    reply.textlen >= sizeof(reply.text) ||
		    strlen(reply.text) > reply.textlen)
			abort();
		smtp_ehlo_parse(&reply, &ehlo);
		buf_reset(b);
		smtp_reply_format(&reply, b);
		p += used;
		left -= used;
	}

	/* The encoded body: CRLF only, never a line "." before the end. */
	buf_reset(b);
	smtp_data_encode((const char *)data, size, b);
	out = buf_data(b);
	olen = buf_len(b);
	if (olen < 3 || memcmp(out + olen - 3, ".\r\n", 3) != 0)
		abort();
	for (i = 0; i < olen; i++) {
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
		if (out[i] == '\r' && (i + 1 >= olen || out[i + 1] != '\n'))
			abort();
		if (i + 3 < olen - 3 && out[i] == '\n' && out[i + 1] == '.' &&
		    out[i + 2] == '\r')
			abort();
	}
	buf_free(b);
	return 0;
}
