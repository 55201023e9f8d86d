/*
 * test_deliver_pure - retry arithmetic (with a fake clock), transport_maps,
 * MX ordering with injected randomness, and the RFC 3464 DSN structure.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"

static void
test_backoff(void)
{
	struct config *cfg = config_new();
	struct queue_env *env = queue_env_new();
	int64_t now, next;

	/* Defaults: 300s doubling to 4000s. */
	CHECK_INT(deliver_backoff(cfg, 1), 300);
	CHECK_INT(deliver_backoff(cfg, 2), 600);
	CHECK_INT(deliver_backoff(cfg, 3), 1200);
	CHECK_INT(deliver_backoff(cfg, 4), 2400);
	CHECK_INT(deliver_backoff(cfg, 5), 4000);
	CHECK_INT(deliver_backoff(cfg, 1000), 4000);
	CHECK_INT(deliver_backoff(cfg, 0), 300);

	clock_set_fake(1700000000);
	now = clock_now();
	env->arrival = now;
	CHECK_INT(deliver_retry_time(cfg, env, 1, now, &next), 0);
	CHECK_INT(next, now + 300);
	/* Near the end of the 5 day lifetime: the last try is at the end. */
	now = env->arrival + 5 * 86400 - 100;
	clock_set_fake(now);
	CHECK_INT(deliver_retry_time(cfg, env, 9, clock_now(), &next), 0);
	CHECK_INT(next, env->arrival + 5 * 86400);
	/* Past the lifetime: fail. */
	clock_set_fake(env->arrival + 5 * 86400);
	CHECK_INT(deliver_retry_time(cfg, env, 10, clock_now(), &next), -1);
	/* Bounces have their own lifetime. */
	config_set(cfg, "bounce_queue_lifetime", "1d", NULL);
	env->flags = QENV_BOUNCE;
	clock_set_fake(env->arrival + 86400 + 1);
	CHECK_INT(deliver_retry_time(cfg, env, 2, clock_now(), &next), -1);
	/* maximal_queue_lifetime = 0: fail at the first temporary error. */
	env->flags = 0;
	config_set(cfg, "maximal_queue_lifetime", "0", NULL);
	clock_set_fake(env->arrival);
	CHECK_INT(deliver_retry_time(cfg, env, 1, clock_now(), &next), -1);
	clock_set_fake(0);
	queue_env_free(env);
	config_free(cfg);
}

static void
test_tmap(void)
{
	const char *text = "# comment\n"
	                   "example.com [mx.example.net]:2525\n"
	                   "  .example.com   relay.example.net\n"
	                   ".sub.example.com smtp:[127.0.0.1]\n"
	                   "\n"
	                   "lit.test [::1]:26\n";
	deliver_tmap_t *m;
	const struct deliver_nexthop *nh;

	CHECK(deliver_tmap_parse(text, strlen(text), &m) == NULL);
	nh = deliver_tmap_lookup(m, "EXAMPLE.com");
	CHECK(nh != NULL);
	if (nh) {
		CHECK_STR(nh->host, "mx.example.net");
		CHECK_INT(nh->port, 2525);
		CHECK_INT(nh->no_mx, 1);
	}
	nh = deliver_tmap_lookup(m, "a.example.com");
	CHECK(nh != NULL);
	if (nh) {
		CHECK_STR(nh->host, "relay.example.net");
		CHECK_INT(nh->port, 25);
		CHECK_INT(nh->no_mx, 0);
	}
	nh = deliver_tmap_lookup(m, "x.sub.example.com");
	CHECK(nh != NULL && strcmp(nh->host, "127.0.0.1") == 0);
	CHECK(deliver_tmap_lookup(m, "sub.example.com") != NULL &&
	      strcmp(deliver_tmap_lookup(m, "sub.example.com")->host,
	          "relay.example.net") == 0);
	CHECK(deliver_tmap_lookup(m, "other.org") == NULL);
	CHECK(deliver_tmap_lookup(m, "notexample.com") == NULL);
	nh = deliver_tmap_lookup(m, "lit.test");
	CHECK(nh != NULL && strcmp(nh->host, "::1") == 0 && nh->port == 26);
	deliver_tmap_free(m);

	CHECK_STR(
	    deliver_tmap_parse("a.test\n", 7, &m), "line 1: missing next hop");
	CHECK(m == NULL);
	CHECK_STR(
	    deliver_tmap_parse("\na.test [x\n", 11, &m), "line 2: missing ']'");
	CHECK_STR(
	    deliver_tmap_parse("a.test [x]:0\n", 13, &m), "line 1: bad port");
	CHECK_STR(deliver_tmap_parse("a.test [x]:99999\n", 17, &m),
	    "line 1: bad port");
	CHECK_STR(deliver_tmap_parse("a.test x y\n", 11, &m),
	    "line 1: junk after next hop");
	CHECK_STR(deliver_tmap_parse("a.test [x]y\n", 12, &m),
	    "line 1: junk after ']'");
	CHECK(deliver_tmap_lookup(NULL, "a.test") == NULL);
}

struct seq {
	const uint32_t *v;
	size_t n, i;
};

static uint32_t
seq_rnd(void *arg)
{
	struct seq *s = arg;

	return s->v[s->i++ % s->n];
}

static void
test_mx_sort(void)
{
	struct deliver_mx mx[5] = {
	    {20, "c"},
	    {10, "a"},
	    {30, "e"},
	    {10, "b"},
	    {20, "d"},
	};
	static const uint32_t zeros[] = {0};
	struct seq s = {zeros, 1, 0};
	int seen_a_first = 0, seen_b_first = 0, i;

	deliver_mx_sort(mx, 5, seq_rnd, &s);
	CHECK_INT(mx[0].pref, 10);
	CHECK_INT(mx[1].pref, 10);
	CHECK_INT(mx[2].pref, 20);
	CHECK_INT(mx[3].pref, 20);
	CHECK_INT(mx[4].pref, 30);
	CHECK_STR(mx[4].host, "e");
	/* With rnd always 0, Fisher-Yates swaps the last with the first:
	 * "a b" -> "b a". */
	CHECK_STR(mx[0].host, "b");
	CHECK_STR(mx[1].host, "a");
	/* Both orders happen among equals, never across preferences. */
	for (i = 0; i < 64; i++) {
		uint32_t r[1] = {(uint32_t)i};
		struct seq s2 = {r, 1, 0};
		struct deliver_mx m2[3] = {{5, "x"}, {1, "a"}, {1, "b"}};

		deliver_mx_sort(m2, 3, seq_rnd, &s2);
		CHECK_STR(m2[2].host, "x");
		if (strcmp(m2[0].host, "a") == 0)
			seen_a_first = 1;
		else
			seen_b_first = 1;
	}
	CHECK(seen_a_first && seen_b_first);
	deliver_mx_sort(mx, 0, seq_rnd, &s);
}

/* Finds the body of MIME part n (0-based) between boundary lines. */
static char *
part(const char *msg, const char *boundary, int n, char **headers)
{
	char delim[128];
	const char *p = msg, *start, *end, *body;
	int i;

	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	for (i = 0; i <= n; i++) {
		p = strstr(p, delim);
		if (p == NULL)
			return NULL;
		p += strlen(delim);
	}
	start = p;
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	end = strstr(start, delim);
	if (end == NULL)
		return NULL;
	body = strstr(start, "\r\n\r\n");
	if (body == NULL || body > end)
		return NULL;
	*headers = strndup(start, (size_t)(body - start));
	return strndup(body + 4, (size_t)(end - body - 4));
}

static void
test_dsn(void)
{
	const char *orig = "Received: from x\r\nSubject: hello\r\n"
	                   "Message-ID: <1@x>\r\n\r\nbody line\r\n.dot\r\n";
	struct deliver_dsn_rcpt r[2] = {
	    {"bob@example.com", "rfc822;Bob+2Bx@example.com", "failed", "5.1.1",
	        "mx.example.com", "550 5.1.1 No such user", NULL, 1700000100},
	    {"carol@null.test", NULL, "failed", "5.1.10", NULL, NULL,
	        "Recipient address has null MX", 1700000100},
	};
	struct deliver_dsn d = {
	    .reporting_mta = "mta.example.org",
	    .to = "alice@example.org",
	    .qid = "0123456789ABCDEF",
	    .msgid = "BOUNCE@mta.example.org",
	    .boundary = "B0UND/ary",
	    .envid = "env-1",
	    .arrival = 1700000000,
	    .now = 1700000200,
	    .ret = DSN_RET_HDRS,
	    .rcpts = r,
	    .nrcpt = 2,
	    .content = orig,
	    .len = strlen(orig),
	    .full_limit = 50000,
	};
	buf_t *b = buf_new(0);
	char *h, *body;
	const char *msg;

	deliver_dsn_build(&d, b);
	msg = buf_data(b);
	CHECK(strstr(msg, "Content-Type: multipart/report; "
	                  "report-type=delivery-status;\r\n"
	                  "\tboundary=\"B0UND/ary\"\r\n") != NULL);
	CHECK(strncmp(msg, "From: MAILER-DAEMON@mta.example.org", 35) == 0);
	CHECK(strstr(msg, "\r\nTo: <alice@example.org>\r\n") != NULL);
	CHECK(strstr(msg, "\r\nAuto-Submitted: auto-replied\r\n") != NULL);
	CHECK(strstr(msg, "\r\n--B0UND/ary--\r\n") != NULL);
	/* No bare LF anywhere. */
	{
		size_t i;
		int bare = 0;

		for (i = 0; i < buf_len(b); i++)
			if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
				bare = 1;
		CHECK(!bare);
	}
	body = part(msg, "B0UND/ary", 0, &h);
	CHECK(body != NULL && strstr(h, "text/plain") != NULL);
	CHECK(body != NULL && strstr(body, "<bob@example.com>: host "
	                                   "mx.example.com said: 550 5.1.1 "
	                                   "No such user") != NULL);
	free(body);
	free(h);
	body = part(msg, "B0UND/ary", 1, &h);
	CHECK(body != NULL);
	CHECK(h != NULL &&
	      strstr(h, "Content-Type: message/delivery-status") != NULL);
	if (body != NULL) {
		CHECK(strncmp(body, "Reporting-MTA: dns; mta.example.org\r\n",
		          37) == 0);
		CHECK(strstr(body, "Original-Envelope-Id: env-1\r\n") != NULL);
		CHECK(strstr(body, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 "
		                   "+0000\r\n") != NULL);
		CHECK(
		    strstr(body, "\r\n\r\nFinal-Recipient: rfc822; "
		                 "bob@example.com\r\n"
		                 "Original-Recipient: rfc822;Bob+x@example.com"
		                 "\r\nAction: failed\r\nStatus: 5.1.1\r\n"
		                 "Remote-MTA: dns; mx.example.com\r\n"
		                 "Diagnostic-Code: smtp; 550 5.1.1 No such "
		                 "user\r\nLast-Attempt-Date: ") != NULL);
		CHECK(strstr(body, "\r\n\r\nFinal-Recipient: rfc822; "
		                   "carol@null.test\r\nAction: failed\r\n"
		                   "Status: 5.1.10\r\n") != NULL);
	}
	free(body);
	free(h);
	body = part(msg, "B0UND/ary", 2, &h);
	CHECK(h != NULL && strstr(h, "text/rfc822-headers") != NULL);
	CHECK(body != NULL && strstr(body, "Subject: hello") != NULL);
	CHECK(body != NULL && strstr(body, "body line") == NULL);
	free(body);
	free(h);

	/* RET=FULL (and unspecified): the whole message. */
	buf_reset(b);
	d.ret = DSN_RET_UNSPEC;
	d.envid = NULL;
	deliver_dsn_build(&d, b);
	body = part(buf_data(b), "B0UND/ary", 2, &h);
	CHECK(h != NULL && strstr(h, "message/rfc822") != NULL);
	CHECK(body != NULL && strcmp(body, orig) == 0);
	CHECK(strstr(buf_data(b), "Original-Envelope-Id") == NULL);
	free(body);
	free(h);
	/* Too big for full: headers only. */
	buf_reset(b);
	d.full_limit = 10;
	deliver_dsn_build(&d, b);
	body = part(buf_data(b), "B0UND/ary", 2, &h);
	CHECK(h != NULL && strstr(h, "text/rfc822-headers") != NULL);
	free(body);
	free(h);
	buf_free(b);
}

int
main(void)
{
	test_backoff();
	test_tmap();
	test_mx_sort();
	test_dsn();
	return check_done();
}
