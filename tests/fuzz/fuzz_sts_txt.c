/*
 * fuzz_sts_txt - the _mta-sts TXT record parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/sts/sts_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char id[STS_ID_MAX + 1];

	if (sts_txt_parse((const char *)data, len, id) == NULL &&
	    (strlen(id) == 0 || strlen(id) > STS_ID_MAX))
		abort();
	return 0;
}
