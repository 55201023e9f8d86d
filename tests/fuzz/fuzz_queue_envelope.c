/*
 * fuzz_queue_envelope - the envelope record decoder. Besides not
 * crashing, a record it accepts must be canonical: encoding the decoded
 * envelope gives back exactly the input, so nothing is lost or invented
 * between the database and memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/buf.h"
#include "queue/queue.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct queue_env *env = NULL, *dup;
	const char *why;
	buf_t *out;

	why = queue_env_decode(data, len, &env);
	if (why != NULL) {
		if (env != NULL || why[0] == '\0')
			abort();
		return 0;
	}
	if (env == NULL)
		abort();
	out = buf_new(0);
	queue_env_encode(env, out);
	if (buf_len(out) != len || memcmp(buf_data(out), data, len) != 0)
		abort();
	/* The helpers must cope with anything the decoder accepts. */
	dup = queue_env_dup(env);
	(void)queue_env_next_due(dup);
	if (dup->nrcpt > 0)
		(void)queue_rcpt_state_name(dup->rcpts[0].state);
	queue_env_free(dup);
	queue_env_free(env);
	buf_free(out);
	return 0;
}
