/*
 * test_envelope - the envelope record: round trips, and every kind of
 * damaged record is an error string, never a crash or a half envelope.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mta/util/buf.h"
#include "queue/queue.h"

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
env_equal(const struct queue_env *a, const struct queue_env *b)
{
	size_t i;

	if (strcmp(a->qid, b->qid) != 0 || !str_eq(a->sender, b->sender) ||
	    a->arrival != b->arrival || a->size != b->size ||
	    a->ret != b->ret || !str_eq(a->envid, b->envid) ||
	    a->flags != b->flags || !str_eq(a->client, b->client) ||
	    !str_eq(a->helo, b->helo) || a->nrcpt != b->nrcpt)
		return 0;
	for (i = 0; i < a->nrcpt; i++) {
		const struct queue_rcpt *r = &a->rcpts[i], *s = &b->rcpts[i];

		if (!str_eq(r->address, s->address) ||
		    !str_eq(r->orcpt, s->orcpt) || r->notify != s->notify ||
		    r->state != s->state || r->attempts != s->attempts ||
		    r->next_attempt != s->next_attempt ||
		    r->last_attempt != s->last_attempt ||
		    !str_eq(r->last_response, s->last_response) ||
		    !str_eq(r->dsn_status, s->dsn_status))
			return 0;
	}
	return 1;
}

static struct queue_env *
sample(void)
{
	struct queue_env *env = queue_env_new();
	struct queue_rcpt *r;

	memcpy(env->qid, "0123456789ABCDEF", QUEUE_ID_SIZE);
	free(env->sender);
	env->sender = strdup("alice@example.org");
	env->arrival = 1700000000;
	env->size = 12345;
	env->ret = DSN_RET_HDRS;
	env->envid = strdup("QQ314159");
	env->flags = QENV_8BITMIME | QENV_REQUIRETLS;
	env->client = strdup("mail.example.net[192.0.2.1]");
	env->helo = strdup("mail.example.net");
	r = queue_env_add_rcpt(env, "bob@example.com", "rfc822;bob@example.com",
	    DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	r->state = RCPT_DEFERRED;
	r->attempts = 3;
	r->next_attempt = 1700000900;
	r->last_attempt = 1700000600;
	r->last_response = strdup("4.4.1 mx.example.com[192.0.2.9] said: "
	                          "421 try later");
	r->dsn_status = strdup("4.4.1");
	r = queue_env_add_rcpt(env, "carol@example.com", NULL, 0);
	r->next_attempt = 1700000100;
	r = queue_env_add_rcpt(env, "dave@example.com", NULL, DSN_NOTIFY_NEVER);
	r->state = RCPT_HELD;
	r->next_attempt = 5;
	return env;
}

static buf_t *
encode(const struct queue_env *env)
{
	buf_t *b = buf_new(0);

	queue_env_encode(env, b);
	return b;
}

static void
test_round_trip(void)
{
	struct queue_env *env = sample(), *out = NULL, *dup;
	buf_t *b = encode(env);
	const char *why;

	why = queue_env_decode(buf_data(b), buf_len(b), &out);
	CHECK(why == NULL);
	CHECK(out != NULL);
	if (out)
		CHECK(env_equal(env, out));
	dup = queue_env_dup(env);
	CHECK(env_equal(env, dup));
	queue_env_free(dup);
	queue_env_free(out);

	/* The null sender, no optional fields, no recipients. */
	queue_env_free(env);
	env = queue_env_new();
	memcpy(env->qid, "FFFFFFFFFFFFFFFF", QUEUE_ID_SIZE);
	env->arrival = -1;
	buf_reset(b);
	queue_env_encode(env, b);
	why = queue_env_decode(buf_data(b), buf_len(b), &out);
	CHECK(why == NULL);
	if (out) {
		CHECK(env_equal(env, out));
		CHECK_STR(out->sender, "");
		CHECK(out->envid == NULL);
	}
	queue_env_free(out);
	queue_env_free(env);
	buf_free(b);
}

static void
test_next_due(void)
{
	struct queue_env *env = sample();

	/* carol (pending, 1700000100) beats bob (deferred, 1700000900);
	 * dave is held at 5 and does not count. */
	CHECK_INT(queue_env_next_due(env), 1700000100);
	env->rcpts[1].state = RCPT_DELIVERED;
	CHECK_INT(queue_env_next_due(env), 1700000900);
	env->rcpts[0].state = RCPT_FAILED;
	CHECK_INT(queue_env_next_due(env), -1);
	env->rcpts[2].state = RCPT_PENDING;
	env->rcpts[2].next_attempt = -7;
	CHECK_INT(queue_env_next_due(env), 0);
	CHECK_STR(queue_rcpt_state_name(RCPT_HELD), "held");
	CHECK_STR(queue_rcpt_state_name(RCPT_DEFERRED), "deferred");
	queue_env_free(env);
}

static void
test_truncated(void)
{
	struct queue_env *env = sample(), *out;
	buf_t *b = encode(env);
	size_t n, bad = 0;

	/* Every proper prefix is an error and yields no envelope. */
	for (n = 0; n < buf_len(b); n++) {
		char *copy = malloc(n ? n : 1);

		memcpy(copy, buf_data(b), n);
		out = (struct queue_env *)1;
		if (queue_env_decode(copy, n, &out) != NULL && out == NULL)
			bad++;
		free(copy);
	}
	CHECK_INT(bad, buf_len(b));
	queue_env_free(env);
	buf_free(b);
}

/* Decodes b with byte i replaced by v; returns the error or NULL. */
static const char *
decode_patched(buf_t *b, size_t i, unsigned char v)
{
	struct queue_env *out = NULL;
	char *copy = malloc(buf_len(b));
	const char *why;

	memcpy(copy, buf_data(b), buf_len(b));
	copy[i] = (char)v;
	why = queue_env_decode(copy, buf_len(b), &out);
	if (why)
		CHECK(out == NULL);
	queue_env_free(out);
	free(copy);
	return why;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
test_malformed(void)
{
	struct queue_env *env = queue_env_new(), *out = NULL;
	buf_t *b;
	const char *why;
	size_t off;
	unsigned char hdr[64];
	char *big;

	memcpy(env->qid, "0123456789ABCDEF", QUEUE_ID_SIZE);
	queue_env_add_rcpt(env, "x@y", NULL, 0);
	b = encode(env);

	CHECK(queue_env_decode("", 0, &out) != NULL && out == NULL);
	CHECK_STR(decode_patched(b, 0, 'X'), "not an envelope record");
	CHECK_STR(decode_patched(b, 3, '9'), "unknown envelope record version");
	CHECK_STR(decode_patched(b, 4, 'g'), "bad queue ID");
	/* Sender "" is at 20: its length 0xFF000000 is beyond the cap. */
	CHECK_STR(decode_patched(b, 20, 0xff), "sender address too long");
	CHECK_STR(decode_patched(b, 23, 0x7f), "truncated record");
	{
		char *copy = malloc(buf_len(b));

		memcpy(copy, buf_data(b), buf_len(b));
		memset(copy + 20, 0xff, 4);
		CHECK_STR(queue_env_decode(copy, buf_len(b), &out),
		    "null sender field");
		free(copy);
	}
	/* ret is after magic, qid, sender (4), arrival, size. */
	off = 4 + 16 + 4 + 8 + 8;
	CHECK_STR(decode_patched(b, off, 7), "bad RET value");
	/* nrcpt: after ret, flags, three null optional strings. */
	off += 1 + 4 + 4 * 3;
	CHECK_STR(decode_patched(b, off, 0x7f), "too many recipients");
	CHECK_STR(decode_patched(b, off + 3, 2), "truncated record");
	/* First recipient: address "x@y" (4 + 3), orcpt (4), notify, state. */
	off += 4;
	CHECK_STR(decode_patched(b, off + 4, 0), "NUL byte in a text field");
	CHECK_STR(decode_patched(b, off + 11, 0x10), "bad NOTIFY bits");
	CHECK_STR(decode_patched(b, off + 12, 9), "bad recipient state");

	/* Trailing bytes. */
	buf_putc(b, 0);
	why = queue_env_decode(buf_data(b), buf_len(b), &out);
	CHECK_STR(why, "trailing bytes after the last recipient");
	CHECK(out == NULL);
	buf_free(b);

	/* An over-long response is refused; the cap itself is fine. */
	big = malloc(4098);
	memset(big, 'r', 4097);
	big[4097] = '\0';
	env->rcpts[0].last_response = big;
	b = encode(env);
	why = queue_env_decode(buf_data(b), buf_len(b), &out);
	CHECK_STR(why, "last response too long");
	big[4096] = '\0';
	buf_reset(b);
	queue_env_encode(env, b);
	why = queue_env_decode(buf_data(b), buf_len(b), &out);
	CHECK(why == NULL);
	queue_env_free(out);
	buf_free(b);
	queue_env_free(env);

	/* A header claiming 100000 recipients with no bytes behind it is
	 * refused before any allocation for them. */
	b = buf_new(0);
	env = queue_env_new();
	memcpy(env->qid, "0123456789ABCDEF", QUEUE_ID_SIZE);
	queue_env_encode(env, b);
	memcpy(hdr, buf_data(b), buf_len(b));
	put_be32(hdr + buf_len(b) - 4, 100000);
	why = queue_env_decode(hdr, buf_len(b), &out);
	CHECK_STR(why, "truncated record");
	put_be32(hdr + buf_len(b) - 4, 100001);
	why = queue_env_decode(hdr, buf_len(b), &out);
	CHECK_STR(why, "too many recipients");
	queue_env_free(env);
	buf_free(b);
}

static void
test_many_rcpts(void)
{
	struct queue_env *env = queue_env_new(), *out = NULL;
	buf_t *b;
	char addr[64];
	size_t i;

	memcpy(env->qid, "0123456789ABCDEF", QUEUE_ID_SIZE);
	/* Filled directly: adding one at a time reallocates each time,
	 * which sanitizer builds make quadratic. */
	env->rcpts = calloc(100000, sizeof(*env->rcpts));
	for (i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "user%zu@example.com", i);
		env->rcpts[i].address = strdup(addr);
		env->rcpts[i].next_attempt = (int64_t)(100000 - i);
	}
	env->nrcpt = 100000;
	b = encode(env);
	CHECK(queue_env_decode(buf_data(b), buf_len(b), &out) == NULL);
	if (out) {
		CHECK_INT(out->nrcpt, 100000);
		CHECK_STR(out->rcpts[99999].address, "user99999@example.com");
		CHECK_INT(queue_env_next_due(out), 1);
	}
	queue_env_free(out);
	buf_free(b);
	queue_env_free(env);
}

/*
 * The seed "full" of the fuzz corpus was written by an independent
 * generator from the format description in envelope.c: decoding it must
 * give sample(), and encoding sample() must give it back byte for byte, so
 * an accidental format change (which would strand queued mail) fails here.
 */
static void
test_format_pinned(void)
{
	const char *src = getenv("STRICTMTA_SOURCE_DIR");
	char path[4096];
	char data[4096];
	struct queue_env *env = sample(), *out = NULL;
	buf_t *b = encode(env);
	FILE *fp;
	size_t n;

	if (src == NULL) {
		printf("STRICTMTA_SOURCE_DIR not set: format pin skipped\n");
		queue_env_free(env);
		buf_free(b);
		return;
	}
	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/queue_envelope/full",
	    src);
	fp = fopen(path, "rb");
	CHECK(fp != NULL);
	if (fp) {
		n = fread(data, 1, sizeof(data), fp);
		fclose(fp);
		CHECK(queue_env_decode(data, n, &out) == NULL);
		if (out)
			CHECK(env_equal(env, out));
		CHECK_INT(n, buf_len(b));
		CHECK(n == buf_len(b) && memcmp(data, buf_data(b), n) == 0);
	}
	queue_env_free(out);
	queue_env_free(env);
	buf_free(b);
}

int
main(void)
{
	test_round_trip();
	test_next_due();
	test_truncated();
	test_malformed();
	test_many_rcpts();
	test_format_pinned();
	return check_done();
}
