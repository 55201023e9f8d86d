/*
 * fuzz_sts_cache - the MTA-STS cache record decoder (data read back from
 * the policy cache file) and a round trip of what it accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/buf.h"
#include "policy/sts/sts_cache.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct sts_cache_entry *e, *again;
	buf_t *b;

	if (sts_cache_decode(data, len, &e) != NULL)
		return 0;
	b = buf_new(0);
	sts_cache_encode(e, b);
	if (sts_cache_decode(buf_data(b), buf_len(b), &again) != NULL ||
	    again->len != e->len || memcmp(again->body, e->body, e->len) != 0 ||
	    strcmp(again->id, e->id) != 0 || again->expires != e->expires)
		abort();
	sts_cache_entry_free(again);
	sts_cache_entry_free(e);
	buf_free(b);
	return 0;
}
