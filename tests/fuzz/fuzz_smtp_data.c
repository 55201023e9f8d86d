/*
 * fuzz_smtp_data - the DATA reader on arbitrary bytes, fed whole and in
 * pieces whose sizes come from the first byte: both runs must agree on
 * where the data ends, on the error and on the content.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/proto/smtp_data.h"

static size_t
feed(const char *p, size_t len, size_t step, int forbid, buf_t *out,
    const char **err)
{
	struct smtp_data d;
	size_t pos = 0;

	smtp_data_init(&d, 4096, forbid);
	while (pos < len && !smtp_data_done(&d)) {
		size_t n = len - pos > step ? step : len - pos;
		size_t used = smtp_data_feed(&d, p + pos, n, out);

		if (used > n)
			abort();
		pos += used;
		if (used < n && !smtp_data_done(&d))
			abort();
	}
	*err = smtp_data_error(&d);
	return pos;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *e1, *e2;
	size_t step, u1, u2;
	buf_t *a, *b;
	int forbid;

	if (size == 0)
		return 0;
	step = (data[0] & 0x0f) + 1;
	forbid = !(data[0] & 0x80);
	p++;
	size--;
	a = buf_new(0);
	b = buf_new(0);
	u1 = feed(p, size, size ? size : 1, forbid, a, &e1);
	u2 = feed(p, size, step, forbid, b, &e2);
	if (u1 != u2 || (e1 == NULL) != (e2 == NULL) ||
	    (e1 && strcmp(e1, e2) != 0))
		abort();
	if (e1 == NULL && (buf_len(a) != buf_len(b) ||
	                      memcmp(buf_data(a), buf_data(b), buf_len(a))))
		abort();
	/* Without bare newlines allowed, stored content is CRLF text. */
	if (e1 == NULL && forbid) {
		const char *c = buf_data(a);
		size_t i, n = buf_len(a);

		for (i = 0; i < n; i++)
			if ((c[i] == '\n' && (i == 0 || c[i - 1] != '\r')) ||
			    (c[i] == '\r' && (i + 1 >= n || c[i + 1] != '\n')))
				abort();
	}
	buf_free(a);
	buf_free(b);
	return 0;
}
