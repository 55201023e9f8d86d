/*
 * fuzz_tls_exception - the exception control request and the stored
 * record decoder: what a client and what the database file hand us.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/verdict/exception.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct tls_exception_req r;
	struct tls_exception e;
	int64_t secs;

	if (tls_exception_parse_request((const char *)data, len, &r) == NULL) {
		if (strlen(r.domain) > TLS_EXC_DOMAIN_MAX ||
		    strlen(r.reason) > TLS_EXC_REASON_MAX)
			abort();
		if (r.op == TLS_EXC_OP_ADD &&
		    (r.ttl < 1 || r.ttl > TLS_EXC_TTL_MAX))
			abort();
	}
	if (tls_exception_decode("example.org", data, len, &e) == NULL &&
	    tls_exception_check(&e) != NULL)
		abort();
	if (tls_exception_parse_duration((const char *)data, len, &secs) ==
	        NULL &&
	    (secs < 1 || secs > TLS_EXC_TTL_MAX))
		abort();
	return 0;
}
