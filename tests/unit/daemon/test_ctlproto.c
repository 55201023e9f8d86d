/*
 * test_ctlproto - the control request parser, the JSON and mailq
 * renderings, and the peer check of the control socket.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mta/daemon/ctlproto.h"
#include "mta/util/buf.h"
#include "mta/util/json.h"

#define ID1 "0123456789ABCDEF"
#define ID2 "FEDCBA9876543210"

static const char *
parse(const char *s, struct ctl_req *req)
{
	return ctl_parse_request(s, strlen(s), req);
}

static void
test_parse_ok(void)
{
	struct ctl_req *req = malloc(sizeof(*req));

	CHECK(parse("list", req) == NULL);
	CHECK_INT(req->cmd, CTL_LIST);
	CHECK_INT(req->json, 0);
	CHECK(parse("list --json", req) == NULL);
	CHECK_INT(req->json, 1);
	CHECK(parse("show " ID1, req) == NULL);
	CHECK_INT(req->cmd, CTL_SHOW);
	CHECK_INT(req->nqid, 1);
	CHECK_STR(req->qids[0], ID1);
	CHECK(parse("show " ID1 " --json", req) == NULL);
	CHECK_INT(req->json, 1);
	CHECK(parse("delete " ID1 " " ID2, req) == NULL);
	CHECK_INT(req->cmd, CTL_DELETE);
	CHECK_INT(req->nqid, 2);
	CHECK_STR(req->qids[1], ID2);
	CHECK(parse("delete --all", req) == NULL);
	CHECK_INT(req->all, 1);
	CHECK_INT(req->nqid, 0);
	CHECK(parse("hold " ID1, req) == NULL);
	CHECK_INT(req->cmd, CTL_HOLD);
	CHECK(parse("release " ID1, req) == NULL);
	CHECK_INT(req->cmd, CTL_RELEASE);
	CHECK(parse("flush", req) == NULL);
	CHECK_INT(req->cmd, CTL_FLUSH);
	CHECK_INT(req->nqid, 0);
	CHECK(parse("flush " ID2, req) == NULL);
	CHECK_INT(req->nqid, 1);
	CHECK(parse("stats --json", req) == NULL);
	CHECK_INT(req->cmd, CTL_STATS);
	CHECK(parse("show " ID1 " --content", req) == NULL);
	CHECK_INT(req->content, 1);
	CHECK(parse("policy-list --json", req) == NULL);
	CHECK_INT(req->cmd, CTL_POLICY_LIST);
	CHECK(parse("policy-show enforce.sts.test --json", req) == NULL);
	CHECK_INT(req->cmd, CTL_POLICY_SHOW);
	CHECK_STR(req->domain, "enforce.sts.test");
	CHECK_INT(req->json, 1);
	CHECK(parse("policy-refresh example.org", req) == NULL);
	CHECK_INT(req->cmd, CTL_POLICY_REFRESH);
	CHECK(parse("policy-forget example.org", req) == NULL);
	CHECK_INT(req->cmd, CTL_POLICY_FORGET);
	CHECK_STR(req->domain, "example.org");
	free(req);
}

static void
test_parse_errors(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", "empty request"},
	    {"bogus", "unknown command (expected list, show, delete, "
	              "hold, release, flush, stats or "
	              "policy-list/show/refresh/forget)"},
	    {"LIST", "unknown command (expected list, show, delete, "
	             "hold, release, flush, stats or "
	             "policy-list/show/refresh/forget)"},
	    {"policy-show", "give a domain"},
	    {"list --content", "--content is an option of show only"},
	    {"show " ID1 " --content --json",
	        "give --content or --json, not both"},
	    {"policy-show a.example b.example", "give one domain"},
	    {"policy-show a_b.example", "not a domain name"},
	    {"policy-forget a.example --json",
	        "--json is not an option of this command"},
	    {" list", "malformed request (leading or trailing space)"},
	    {"list ", "malformed request (leading or trailing space)"},
	    {"show  " ID1, "malformed request (two spaces in a row)"},
	    {"list\t--json", "control or non-ASCII character in request"},
	    {"list --all", "--all is not an option of this command"},
	    {"hold --json " ID1, "--json is not an option of this command"},
	    {"list --verbose", "unknown option"},
	    {"list " ID1, "this command takes no queue ID"},
	    {"show", "give a queue ID"},
	    {"show " ID1 " " ID2, "give one queue ID"},
	    {"show 0123456789abcdef", "not a queue ID (16 hex digits)"},
	    {"show 0123", "not a queue ID (16 hex digits)"},
	    {"delete", "give queue IDs or --all"},
	    {"delete --all " ID1, "give queue IDs or --all, not both"},
	    {"hold", "give a queue ID"},
	    {"release", "give a queue ID"},
	    {"show aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	        "argument too long"},
	};
	struct ctl_req *req = malloc(sizeof(*req));
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = parse(cases[i].in, req);

		CHECK_STR(got, cases[i].want);
	}
	/* A NUL inside the length is refused, not a shorter request. */
	CHECK(ctl_parse_request("list\0x", 6, req) != NULL);
	free(req);
}

static void
test_parse_limits(void)
{
	struct ctl_req *req = malloc(sizeof(*req));
	buf_t *b = buf_new(0);
	size_t i;

	buf_puts(b, "hold");
	for (i = 0; i < CTL_MAX_QIDS; i++)
		buf_puts(b, " " ID1);
	/* 4 + 512 * 17 bytes: over CONTROL_REQUEST_MAX (8192). */
	CHECK_STR(ctl_parse_request(buf_data(b), buf_len(b), req),
	    "request too long");
	buf_reset(b);
	buf_puts(b, "hold");
	for (i = 0; i < 400; i++)
		buf_puts(b, " " ID1);
	CHECK(ctl_parse_request(buf_data(b), buf_len(b), req) == NULL);
	CHECK_INT(req->nqid, 400);
	buf_free(b);
	free(req);
}

static void
test_json_string(void)
{
	buf_t *b = buf_new(0);

	json_put_string(b, "a\"b\\c\n\x01");
	CHECK_STR(buf_data(b), "\"a\\\"b\\\\c\\u000a\\u0001\"");
	buf_reset(b);
	json_put_string(b, NULL);
	CHECK_STR(buf_data(b), "null");
	buf_reset(b);
	/* Valid UTF-8 passes; a stray byte and an overlong form do not. */
	json_put_string(b, "J\xc3\xbcrgen");
	CHECK_STR(buf_data(b), "\"J\xc3\xbcrgen\"");
	buf_reset(b);
	json_put_string(b, "x\xffy\xc0\xaf");
	CHECK_STR(buf_data(b), "\"x\\ufffdy\\ufffd\\ufffd\"");
	buf_reset(b);
	json_put_string(b, "\xe2\x82");
	CHECK_STR(buf_data(b), "\"\\ufffd\\ufffd\"");
	buf_free(b);
}

static struct queue_env *
sample_env(void)
{
	struct queue_env *env = queue_env_new();
	struct queue_rcpt *r;

	memcpy(env->qid, ID1, QID_SIZE);
	free(env->sender);
	env->sender = strdup("alice@example.org");
	env->arrival = 1700000000;
	env->size = 2048;
	env->client = strdup("local");
	env->flags = QENV_8BITMIME;
	r = queue_env_add_rcpt(
	    env, "bob@example.net", NULL, DSN_NOTIFY_FAILURE);
	(void)r;
	r = queue_env_add_rcpt(env, "carol@example.com", "rfc822;carol@x", 0);
	r->state = RCPT_DEFERRED;
	r->attempts = 2;
	r->last_response = strdup("4.4.1 mx.example.com[192.0.2.1] said: "
	                          "421 busy\r\n");
	return env;
}

static void
test_json_entry(void)
{
	struct queue_env *env = sample_env();
	buf_t *b = buf_new(0);

	ctl_json_entry(b, env);
	CHECK(strstr(buf_data(b),
	          "{\"queue_id\":\"" ID1 "\",\"size\":2048,"
	          "\"arrival\":1700000000,"
	          "\"sender\":\"alice@example.org\"") == buf_data(b));
	CHECK(strstr(buf_data(b), "\"flags\":[\"8bitmime\"]") != NULL);
	CHECK(strstr(buf_data(b), "\"held\":false") != NULL);
	CHECK(strstr(buf_data(b),
	          "{\"address\":\"bob@example.net\",\"orcpt\":null,"
	          "\"notify\":[\"failure\"],\"state\":\"pending\"") != NULL);
	CHECK(strstr(buf_data(b), "\"state\":\"deferred\",\"attempts\":2") !=
	      NULL);
	CHECK(strstr(buf_data(b), "421 busy\\u000d\\u000a\"") != NULL);
	CHECK(buf_data(b)[buf_len(b) - 1] == '}');
	queue_env_free(env);
	buf_free(b);
}

static void
test_list_entry(void)
{
	struct queue_env *env = sample_env();
	buf_t *b = buf_new(0);
	const char *s;
	size_t i;

	ctl_list_entry(b, env);
	s = buf_data(b);
	CHECK(strncmp(s, ID1 "      2048 ", 27) == 0);
	CHECK(strstr(s, "  alice@example.org\n") != NULL);
	CHECK(strstr(s, "bob@example.net (pending)\n") != NULL);
	CHECK(strstr(s, "carol@example.com (deferred, 2 attempts)\n") != NULL);
	/* The response is made printable: no raw CR reaches a terminal. */
	CHECK(strstr(s, "421 busy\\x0d\\x0a\n") != NULL);
	CHECK(strchr(s, '\r') == NULL);

	/* All undelivered recipients held: the '!' mark, like mailq. */
	for (i = 0; i < env->nrcpt; i++)
		env->rcpts[i].state = RCPT_HELD;
	CHECK(ctl_env_held(env));
	buf_reset(b);
	ctl_list_entry(b, env);
	CHECK(strncmp(buf_data(b), ID1 "!", 17) == 0);
	env->rcpts[0].state = RCPT_DELIVERED;
	CHECK(ctl_env_held(env));
	env->rcpts[1].state = RCPT_PENDING;
	CHECK(!ctl_env_held(env));

	/* The null sender shows as MAILER-DAEMON. */
	env->sender[0] = '\0';
	buf_reset(b);
	ctl_list_entry(b, env);
	CHECK(strstr(buf_data(b), "  MAILER-DAEMON\n") != NULL);

	buf_reset(b);
	ctl_list_footer(b, 0, 0);
	CHECK_STR(buf_data(b), "Mail queue is empty\n");
	buf_reset(b);
	ctl_list_footer(b, 3, 1);
	CHECK_STR(buf_data(b), "-- 3 Kbytes in 1 Request.\n");
	buf_reset(b);
	ctl_list_footer(b, 10, 4);
	CHECK_STR(buf_data(b), "-- 10 Kbytes in 4 Requests.\n");
	queue_env_free(env);
	buf_free(b);
}

static void
test_show_entry(void)
{
	struct queue_env *env = sample_env();
	buf_t *b = buf_new(0);
	const char content[] = "Subject: hi\r\nX-Folded: a\r\n\tb\x1b\r\n"
	                       "\r\nsecret body\r\n";

	ctl_show_entry(b, env, content, sizeof(content) - 1);
	CHECK(strstr(buf_data(b), "sender: <alice@example.org>\n") != NULL);
	CHECK(strstr(buf_data(b),
	          "recipient: <carol@example.com> state=deferred attempts=2 "
	          "orcpt=rfc822;carol@x\n") != NULL);
	CHECK(
	    strstr(buf_data(b),
	        "-- header --\nSubject: hi\nX-Folded: a\n\tb\\x1b\n") != NULL);
	CHECK(strstr(buf_data(b), "secret body") == NULL);
	queue_env_free(env);
	buf_free(b);
}

static void
test_peer(void)
{
	gid_t admin = 4242, groups[] = {10, 4242};

	CHECK(ctl_peer_allowed(0, 0, NULL, 0, 999, NULL));
	CHECK(ctl_peer_allowed(999, 999, NULL, 0, 999, NULL));
	CHECK(!ctl_peer_allowed(1000, 1000, NULL, 0, 999, NULL));
	/* admin_group unset: a member of any group is still refused. */
	CHECK(!ctl_peer_allowed(1000, 4242, groups, 2, 999, NULL));
	CHECK(ctl_peer_allowed(1000, 4242, NULL, 0, 999, &admin));
	CHECK(ctl_peer_allowed(1000, 1000, groups, 2, 999, &admin));
	CHECK(!ctl_peer_allowed(1000, 1000, groups, 1, 999, &admin));
}

int
main(void)
{
	test_parse_ok();
	test_parse_errors();
	test_parse_limits();
	test_json_string();
	test_json_entry();
	test_list_entry();
	test_show_entry();
	test_peer();
	return check_done();
}
