/*
 * ctl_exception - see ctl_exception.h. Each change is logged with the
 * uid that made it; the table answers from memory and its writer thread
 * does the disk write, so these run on the loop. A change makes delivery
 * look at the queue again (daemon_queue_changed).
 */
#include <stdio.h>
#include <string.h>

#include "ctl_exception.h"
#include "daemon_int.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "policy/verdict/exception.h"
#include "policy/verdict/tls_policy.h"

int
ctl_exception_match(const char *line, size_t len)
{
	return len >= 10 && memcmp(line, "exception-", 10) == 0;
}

struct list_ctx {
	buf_t *out;
	int json;
	size_t n;
};

static void
list_visit(void *arg, const struct tls_exception *e)
{
	struct list_ctx *lc = arg;

	if (lc->json && lc->n)
		buf_putc(lc->out, ',');
	tls_exception_format(e, lc->json, lc->out);
	if (!lc->json)
		buf_putc(lc->out, '\n');
	lc->n++;
}

int
ctl_exception_handle(
    daemon_t *d, const char *line, size_t len, uid_t uid, buf_t *out)
{
	struct tls_exception_req req;
	struct tls_exception e;
	tls_exceptions_t *t;
	const char *why;
	int64_t now = clock_now();

	if ((why = tls_exception_parse_request(line, len, &req)) != NULL) {
		buf_puts(out, why);
		return -1;
	}
	if (d->tls_policy == NULL ||
	    (t = tls_policy_exceptions(d->tls_policy)) == NULL) {
		buf_puts(out, "TLS exceptions are not available");
		return -1;
	}
	switch (req.op) {
	case TLS_EXC_OP_LIST: {
		struct list_ctx lc = {out, req.json, 0};

		if (req.json)
			buf_puts(out, "{\"exceptions\":[");
		tls_exception_walk(t, now, list_visit, &lc);
		if (req.json)
			buf_printf(out, "],\"count\":%zu}\n", lc.n);
		else if (lc.n == 0)
			buf_puts(out, "no TLS exceptions in force\n");
		return 0;
	}
	case TLS_EXC_OP_REMOVE:
		if (tls_exception_remove(t, req.domain) != 0) {
			buf_printf(out, "%s: no TLS exception", req.domain);
			return -1;
		}
		log_info("tls-exception: domain=%s: removed by uid %ld",
		    req.domain, (long)uid);
		buf_printf(out, "%s: TLS exception removed\n", req.domain);
		daemon_queue_changed(d);
		return 0;
	case TLS_EXC_OP_ADD:
		break;
	}
	memset(&e, 0, sizeof(e));
	memcpy(e.domain, req.domain, sizeof(e.domain));
	e.level = req.level;
	e.added = now;
	e.expires = now + req.ttl;
	snprintf(e.who, sizeof(e.who), "uid %ld", (long)uid);
	memcpy(e.reason, req.reason, sizeof(e.reason));
	if ((why = tls_exception_add(t, &e)) != NULL) {
		buf_puts(out, why);
		return -1;
	}
	log_info("tls-exception: domain=%s, level=%s: added by uid %ld for "
	         "%llds, reason: %s",
	    e.domain, tls_level_name(e.level), (long)uid, (long long)req.ttl,
	    e.reason);
	tls_exception_format(&e, 0, out);
	buf_putc(out, '\n');
	daemon_queue_changed(d);
	return 0;
}
