/*
 * fuzz_tlsa - the TLSA RDATA decoder and usability rules.
 */
#include <stdint.h>
#include <stdlib.h>

#include "policy/dane/tlsa.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct tlsa_rec rec;

	if (tlsa_decode(data, len, &rec) == NULL) {
		if (rec.data + rec.len != data + len)
			abort();
		(void)tlsa_usable(&rec);
		(void)tlsa_usage_name(rec.usage);
	}
	return 0;
}
