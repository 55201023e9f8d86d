/*
 * fuzz_control - the control request parser (any local client that can
 * open the socket reaches it) and the JSON string encoder the replies use.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/daemon/ctlproto.h"
#include "mta/util/buf.h"
#include "mta/util/json.h"
#include "mta/util/xalloc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct ctl_req *req = xmalloc(sizeof(*req));
	const char *why = ctl_parse_request((const char *)data, len, req);
	buf_t *b;
	char *s;
	size_t i;

	if (why == NULL) {
		/* What the parser accepts is within its limits. */
		if (req->nqid > CTL_MAX_QIDS || (req->all && req->nqid))
			abort();
		for (i = 0; i < req->nqid; i++)
			if (!qid_valid(req->qids[i]))
				abort();
	}
	free(req);

	/* The encoder's output never carries a raw control byte. */
	s = xmemdup(data, len);
	b = buf_new(0);
	json_put_string(b, s);
	for (i = 0; i < buf_len(b); i++)
		if ((unsigned char)buf_data(b)[i] < 0x20)
			abort();
	buf_free(b);
	free(s);
	return 0;
}
