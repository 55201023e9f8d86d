/*
 * fuzz_sts_policy - the MTA-STS policy body parser and MX matching.
 */
#include <stdint.h>
#include <stdlib.h>

#include "policy/sts/sts_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct sts_policy *p;

	if (sts_policy_parse((const char *)data, len, &p) == NULL) {
		if (p->mode != STS_MODE_NONE && p->nmx == 0)
			abort();
		(void)sts_policy_match(p, "mail.example.com");
		sts_policy_free(p);
	}
	return 0;
}
