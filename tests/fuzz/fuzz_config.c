/*
 * fuzz_config - the config line parser and time parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *name, *value;
	size_t namelen, valuelen;
	char *s;

	if (config_parse_assignment((const char *)data, len, &name, &namelen,
	        &value, &valuelen) == NULL) {
		if (name < (const char *)data ||
		    name + namelen > (const char *)data + len ||
		    value + valuelen > (const char *)data + len)
			abort();
	}
	s = malloc(len + 1);
	memcpy(s, data, len);
	s[len] = '\0';
	(void)config_parse_time(s);
	free(s);
	return 0;
}
