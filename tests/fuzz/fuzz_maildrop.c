/*
 * fuzz_maildrop - the maildrop file parser (any local user can drop a
 * file, so its bytes are untrusted), and the sendmail address-list parser
 * over the same input. A file that parses must encode back to the same
 * bytes: the format has one spelling per message.
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
	(void)sendmail_addrlist_parse((const char *)data, len, &list, &n);
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return 0;
}
