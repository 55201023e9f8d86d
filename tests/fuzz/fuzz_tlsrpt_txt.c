/*
 * fuzz_tlsrpt_txt - the _smtp._tls TXT record parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/tlsrpt/tlsrpt_txt.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct tlsrpt_rua rua;
	size_t i;

	if (tlsrpt_txt_parse((const char *)data, len, &rua) == NULL) {
		if (rua.n == 0 || rua.n > TLSRPT_RUA_MAX)
			abort();
		for (i = 0; i < rua.n; i++)
			if (strlen(rua.uri[i]) == 0 ||
			    strlen(rua.uri[i]) > TLSRPT_URI_MAX)
				abort();
	}
	return 0;
}
