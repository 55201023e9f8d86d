/*
 * fuzz_resolver_wire - the resolver's pure parsers of DNS data: TXT
 * character-strings, wire-format names, server addresses and trust anchor
 * text. The first byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mta/util/buf.h"
#include "resolver/resolver.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	buf_t *out = buf_new(1 << 16);
	unsigned char addr[16];
	unsigned port;
	size_t count;
	int family;

	if (len == 0) {
		buf_free(out);
		return 0;
	}
	switch (data[0] % 4) {
	case 0:
		(void)resolver_txt_join(data + 1, len - 1, out);
		break;
	case 1:
		(void)resolver_name_from_wire(data + 1, len - 1, out);
		break;
	case 2:
		(void)resolver_parse_server(
		    (const char *)data + 1, len - 1, &family, addr, &port);
		break;
	default:
		(void)resolver_check_anchors(
		    (const char *)data + 1, len - 1, &count);
	}
	buf_free(out);
	return 0;
}
