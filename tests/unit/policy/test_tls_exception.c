/*
 * test_tls_exception - the pure parts of the exception table: durations,
 * control requests, the stored record, and the table's add, find and
 * expiry without an event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "policy/verdict/exception.h"

static const char *
dur(const char *s, int64_t *v)
{
	const char *why = tls_exception_parse_duration(s, strlen(s), v);

	return why ? why : "";
}

static const char *
req(const char *s, struct tls_exception_req *r)
{
	const char *why = tls_exception_parse_request(s, strlen(s), r);

	return why ? why : "";
}

int
main(void)
{
	int64_t v = 0;
	struct tls_exception_req r;
	struct tls_exception e, got;
	tls_exceptions_t *t;
	buf_t *b = buf_new(1024), *err = buf_new(256);
	char dir[] = "/tmp/smta-exc-XXXXXX", path[64];

	CHECK_STR(dur("90s", &v), "");
	CHECK(v == 90);
	CHECK_STR(dur("48h", &v), "");
	CHECK(v == 48 * 3600);
	CHECK_STR(dur("7d", &v), "");
	CHECK(v == 7 * 86400);
	CHECK_STR(dur("30", &v), "");
	CHECK(v == 30);
	CHECK(*dur("", &v) != '\0');
	CHECK(*dur("0s", &v) != '\0');
	CHECK(*dur("soon", &v) != '\0');
	CHECK(*dur("91d", &v) != '\0'); /* over TLS_EXC_TTL_MAX */
	CHECK(*dur("99999999999999999999s", &v) != '\0');

	CHECK_STR(req("exception-add Example.ORG encrypt 48h TLSA rollover "
	              "broken",
	              &r),
	    "");
	CHECK(r.op == TLS_EXC_OP_ADD);
	CHECK_STR(r.domain, "example.org");
	CHECK(r.level == TLS_LEV_ENCRYPT);
	CHECK(r.ttl == 48 * 3600);
	CHECK_STR(r.reason, "TLSA rollover broken");
	CHECK_STR(req("exception-list --json", &r), "");
	CHECK(r.op == TLS_EXC_OP_LIST && r.json);
	CHECK_STR(req("exception-remove example.org", &r), "");
	CHECK(r.op == TLS_EXC_OP_REMOVE);
	/* Only levels that need nothing from the domain itself. */
	CHECK(*req("exception-add example.org dane 1h x", &r) != '\0');
	CHECK(*req("exception-add example.org secure 1h x", &r) != '\0');
	CHECK(*req("exception-add example.org encrypt 1h", &r) != '\0');
	CHECK(*req("exception-add bad..domain encrypt 1h x", &r) != '\0');
	CHECK(*req("exception-add example.org encrypt 1h a\tb", &r) != '\0');
	CHECK(*req("exception-nonsense", &r) != '\0');

	/* The record round-trips; a damaged one is refused. */
	memset(&e, 0, sizeof(e));
	snprintf(e.domain, sizeof(e.domain), "example.org");
	e.level = TLS_LEV_ENCRYPT;
	e.added = 1000;
	e.expires = 1000 + 3600;
	snprintf(e.who, sizeof(e.who), "uid 0");
	snprintf(e.reason, sizeof(e.reason), "rollover");
	tls_exception_encode(&e, b);
	CHECK(tls_exception_decode(
	          "example.org", buf_data(b), buf_len(b), &got) == NULL);
	CHECK(got.level == e.level && got.expires == e.expires);
	CHECK_STR(got.reason, "rollover");
	CHECK(tls_exception_decode("example.org", "TLSX1 dane", 10, &got) !=
	      NULL);
	CHECK(tls_exception_decode("example.org", "", 0, &got) != NULL);

	/* The table: found while in force, gone after expiry. */
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/exceptions.db", dir);
	t = tls_exceptions_open(NULL, path, err);
	CHECK(t != NULL);
	CHECK(tls_exception_add(t, &e) == NULL);
	CHECK(tls_exception_find(t, "EXAMPLE.org", 2000, &got) == 1);
	CHECK(tls_exception_count(t, 2000) == 1);
	CHECK(tls_exception_find(t, "example.org", 1000 + 3600, &got) == 0);
	CHECK(tls_exception_expire(t, 1000 + 3600) == 1);
	CHECK(tls_exception_count(t, 0) == 0);
	CHECK(tls_exception_remove(t, "example.org") == 1);
	tls_exceptions_close(t);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	buf_free(b);
	buf_free(err);
	return check_done();
}
