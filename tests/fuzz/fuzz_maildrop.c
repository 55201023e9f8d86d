/*
 * fuzz_maildrop - the maildrop file parser (any local user can drop a
 * file, so its bytes are untrusted), and over the same input what the
 * setgid sendmail does with a user's message: the stdin reader, the header
 * fix-ups with -t and the address-list parser. A file that parses must
 * encode back to the same bytes (the format has one spelling per message),
 * and the reader's output must have CRLF line endings only and no NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/sendmail/maildrop.h"
#include "mta/sendmail/sendmail.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct maildrop_msg *m = NULL;
	char **list = NULL;
	size_t n = 0, i;

	if (maildrop_parse(data, len, &m) == NULL) {
		buf_t *b = buf_new(0);

		if (m == NULL || maildrop_msg_check(m) != NULL)
			abort();
		maildrop_encode(m, b);
		if (buf_len(b) != len || memcmp(buf_data(b), data, len) != 0)
			abort();
		buf_free(b);
		maildrop_msg_free(m);
	} else if (m != NULL) {
		abort();
	}
	{
		struct sendmail_reader *r =
		    sendmail_reader_new(len & 1, 1 << 20);
		struct sendmail_hdr_params p = {1, "Received: x", "From: f",
		    "Date: d", "Message-ID: <m@x>"};
		struct sendmail_hdr_result res;
		buf_t *out = buf_new(0);
		size_t clen;
		char *content;

		(void)sendmail_reader_feed(r, (const char *)data, len);
		content = sendmail_reader_finish(r, &clen);
		(void)sendmail_fix_headers(content, clen, &p, out, &res);
		if (memchr(buf_data(out), '\0', buf_len(out)) != NULL)
			abort();
		for (i = 0; i < buf_len(out); i++)
			if ((buf_data(out)[i] == '\n') !=
			        (i > 0 && buf_data(out)[i - 1] == '\r') ||
			    (buf_data(out)[i] == '\r' &&
			        (i + 1 >= buf_len(out) ||
			            buf_data(out)[i + 1] != '\n')))
				abort();
		sendmail_hdr_result_free(&res);
		buf_free(out);
		free(content);
		sendmail_reader_free(r);
	}
	(void)sendmail_addrlist_parse((const char *)data, len, &list, &n);
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return 0;
}
