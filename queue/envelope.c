/*
 * envelope - the in-memory envelope (struct queue_env) and its record
 * format in the envelopes database; see queue.h.
 *
 * Record format, version 1. Binary and length-prefixed rather than text,
 * so that no field needs escaping and the decoder never searches for a
 * delimiter. All integers are big-endian.
 *
 *   magic    4 bytes "SQE1" (the last byte is the version)
 *   qid      16 bytes, uppercase hex (qid_valid)
 *   sender   str
 *   arrival  i64
 *   size     u64
 *   ret      u8 (enum dsn_ret)
 *   flags    u32 (QENV_*)
 *   envid    ostr
 *   client   ostr
 *   helo     ostr
 *   nrcpt    u32, then per recipient:
 *     address       str
 *     orcpt         ostr
 *     notify        u8 (DSN_NOTIFY_* bits)
 *     state         u8 (enum rcpt_state)
 *     attempts      u32
 *     next_attempt  i64
 *     last_attempt  i64
 *     last_response ostr
 *     dsn_status    ostr
 *
 *   str   u32 length, then that many bytes (no NUL inside)
 *   ostr  u32 length or 0xFFFFFFFF for NULL, then the bytes
 *
 * Nothing may follow the last recipient. The decoder checks the remaining
 * length before every read and caps every field (QENV_MAX_*), so a damaged
 * record is an error string, never an overread or a huge allocation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/qid.h"
#include "mta/util/xalloc.h"
#include "queue.h"

#define QENV_MAGIC "SQE1"
#define QENV_NULL 0xFFFFFFFFu

/* Field caps. Addresses: RFC 5321 allows 256 octets for a path, but
 * SMTPUTF8 and source routes in the wild go beyond; 1024 is generous. */
#define QENV_MAX_ADDRESS 1024
#define QENV_MAX_RCPTS 100000
#define QENV_MAX_RESPONSE 4096
#define QENV_MAX_ENVID 1024
#define QENV_MAX_HOST 1024
#define QENV_MAX_STATUS 32
/* The smallest encoded recipient: lets the decoder reject a count that
 * the remaining bytes cannot hold before allocating for it. */
#define QENV_MIN_RCPT_LEN (4 + 4 + 1 + 1 + 4 + 8 + 8 + 4 + 4)

struct queue_env *
queue_env_new(void)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));

	env->sender = xstrdup("");
	return env;
}

static void
rcpt_clear(struct queue_rcpt *r)
{
	free(r->address);
	free(r->orcpt);
	free(r->last_response);
	free(r->dsn_status);
}

void
queue_env_free(struct queue_env *env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; i < env->nrcpt; i++)
		rcpt_clear(&env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->envid);
	free(env->client);
	free(env->helo);
	free(env);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct queue_env *
queue_env_dup(const struct queue_env *src)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));
	size_t i;

	memcpy(env->qid, src->qid, sizeof(env->qid));
	env->sender = xstrdup(src->sender ? src->sender : "");
	env->arrival = src->arrival;
	env->size = src->size;
	env->ret = src->ret;
	env->envid = dup_or_null(src->envid);
	env->flags = src->flags;
	env->client = dup_or_null(src->client);
	env->helo = dup_or_null(src->helo);
	if (src->nrcpt > 0) {
		env->rcpts =
		    xreallocarray(NULL, src->nrcpt, sizeof(*env->rcpts));
		for (i = 0; i < src->nrcpt; i++) {
			const struct queue_rcpt *s = &src->rcpts[i];
			struct queue_rcpt *d = &env->rcpts[i];

			*d = *s;
			d->address = xstrdup(s->address ? s->address : "");
			d->orcpt = dup_or_null(s->orcpt);
			d->last_response = dup_or_null(s->last_response);
			d->dsn_status = dup_or_null(s->dsn_status);
		}
	}
	env->nrcpt = src->nrcpt;
	return env;
}

struct queue_rcpt *
queue_env_add_rcpt(struct queue_env *env, const char *address,
    const char *orcpt, unsigned notify)
{
	struct queue_rcpt *r;

	env->rcpts =
	    xreallocarray(env->rcpts, env->nrcpt + 1, sizeof(*env->rcpts));
	r = &env->rcpts[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->orcpt = dup_or_null(orcpt);
	r->notify = notify;
	r->state = RCPT_PENDING;
	return r;
}

int64_t
queue_env_next_due(const struct queue_env *env)
{
	int64_t due = -1;
	size_t i;

	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		int64_t t;

		if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
			continue;
		/* The index key has no sign: "as soon as possible" and
		 * any time before the epoch are the same thing. */
		t = r->next_attempt < 0 ? 0 : r->next_attempt;
		if (due < 0 || t < due)
			due = t;
	}
	return due;
}

const char *
queue_rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_DEFERRED:
		return "deferred";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_FAILED:
		return "failed";
	case RCPT_HELD:
		return "held";
	}
	return "unknown";
}

/* Encoding. */

static void
put_u32(buf_t *out, uint32_t v)
{
	unsigned char b[4];

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
	buf_append(out, b, sizeof(b));
}

static void
put_u64(buf_t *out, uint64_t v)
{
	put_u32(out, (uint32_t)(v >> 32));
	put_u32(out, (uint32_t)v);
}

static void
put_u8(buf_t *out, unsigned v)
{
	buf_putc(out, (int)(v & 0xff));
}

static void
put_str(buf_t *out, const char *s)
{
	size_t n;

	if (s == NULL) {
		put_u32(out, QENV_NULL);
		return;
	}
	n = strlen(s);
	/* A string over 4 GiB cannot be described; write what the decoder
	 * will reject rather than a length that wraps. */
	put_u32(out, n >= QENV_NULL ? QENV_NULL - 1 : (uint32_t)n);
	buf_append(out, s, n);
}

void
queue_env_encode(const struct queue_env *env, buf_t *out)
{
	size_t i;

	buf_append(out, QENV_MAGIC, 4);
	buf_append(out, env->qid, QUEUE_ID_LEN);
	put_str(out, env->sender ? env->sender : "");
	put_u64(out, (uint64_t)env->arrival);
	put_u64(out, env->size);
	put_u8(out, (unsigned)env->ret);
	put_u32(out, env->flags);
	put_str(out, env->envid);
	put_str(out, env->client);
	put_str(out, env->helo);
	put_u32(out, (uint32_t)env->nrcpt);
	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		put_str(out, r->address ? r->address : "");
		put_str(out, r->orcpt);
		put_u8(out, r->notify);
		put_u8(out, (unsigned)r->state);
		put_u32(out, r->attempts);
		put_u64(out, (uint64_t)r->next_attempt);
		put_u64(out, (uint64_t)r->last_attempt);
		put_str(out, r->last_response);
		put_str(out, r->dsn_status);
	}
}

/* Decoding: a cursor over the record; every read checks what is left. */

struct rd {
	const unsigned char *p;
	size_t left;
	const char *err;
};

static int
get_bytes(struct rd *rd, void *dst, size_t n)
{
	if (rd->err)
		return -1;
	if (n > rd->left) {
		rd->err = "truncated record";
		return -1;
	}
	memcpy(dst, rd->p, n);
	rd->p += n;
	rd->left -= n;
	return 0;
}

static uint32_t
get_u32(struct rd *rd)
{
	unsigned char b[4];

	if (get_bytes(rd, b, sizeof(b)) < 0)
		return 0;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static uint64_t
get_u64(struct rd *rd)
{
	uint64_t hi = get_u32(rd);

	return hi << 32 | get_u32(rd);
}

static unsigned
get_u8(struct rd *rd)
{
	unsigned char b = 0;

	(void)get_bytes(rd, &b, 1);
	return b;
}

/*
 * Reads a str (nullable: an ostr) of at most cap bytes. what names the
 * field in the error. Returns an allocated string or NULL.
 */
static char *
get_str(struct rd *rd, size_t cap, int nullable, const char *what,
    const char *toolong)
{
	uint32_t n = get_u32(rd);
	char *s;

	if (rd->err)
		return NULL;
	if (n == QENV_NULL) {
		if (!nullable)
			rd->err = what;
		return NULL;
	}
	if (n > cap) {
		rd->err = toolong;
		return NULL;
	}
	if (n > rd->left) {
		rd->err = "truncated record";
		return NULL;
	}
	if (memchr(rd->p, '\0', n) != NULL) {
		rd->err = "NUL byte in a text field";
		return NULL;
	}
	s = xmemdup(rd->p, n);
	rd->p += n;
	rd->left -= n;
	return s;
}

const char *
queue_env_decode(const void *data, size_t len, struct queue_env **envp)
{
	struct rd rd = {data, len, NULL};
	struct queue_env *env;
	char magic[4];
	uint32_t nrcpt, i;
	unsigned v;

	*envp = NULL;
	if (get_bytes(&rd, magic, sizeof(magic)) < 0)
		return rd.err;
	if (memcmp(magic, QENV_MAGIC, 3) != 0)
		return "not an envelope record";
	if (magic[3] != QENV_MAGIC[3])
		return "unknown envelope record version";

	env = xcalloc(1, sizeof(*env));
	if (get_bytes(&rd, env->qid, QUEUE_ID_LEN) == 0 && !qid_valid(env->qid))
		rd.err = "bad queue ID";
	env->sender = get_str(&rd, QENV_MAX_ADDRESS, 0, "null sender field",
	    "sender address too long");
	env->arrival = (int64_t)get_u64(&rd);
	env->size = get_u64(&rd);
	v = get_u8(&rd);
	if (!rd.err && v > DSN_RET_HDRS)
		rd.err = "bad RET value";
	env->ret = (enum dsn_ret)v;
	env->flags = get_u32(&rd);
	env->envid = get_str(&rd, QENV_MAX_ENVID, 1, "", "ENVID too long");
	env->client =
	    get_str(&rd, QENV_MAX_HOST, 1, "", "client name too long");
	env->helo = get_str(&rd, QENV_MAX_HOST, 1, "", "HELO name too long");
	nrcpt = get_u32(&rd);
	if (!rd.err && nrcpt > QENV_MAX_RCPTS)
		rd.err = "too many recipients";
	if (!rd.err && nrcpt > rd.left / QENV_MIN_RCPT_LEN)
		rd.err = "truncated record";
	if (!rd.err && nrcpt > 0)
		env->rcpts = xcalloc(nrcpt, sizeof(*env->rcpts));
	for (i = 0; i < nrcpt && !rd.err; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		/* Counted first so that queue_env_free() frees what a
		 * failed read leaves half filled. */
		env->nrcpt++;
		r->address = get_str(&rd, QENV_MAX_ADDRESS, 0,
		    "null recipient address", "recipient address too long");
		r->orcpt = get_str(
		    &rd, QENV_MAX_ADDRESS + 16, 1, "", "ORCPT too long");
		r->notify = get_u8(&rd);
		if (!rd.err && (r->notify & ~0xfu) != 0)
			rd.err = "bad NOTIFY bits";
		v = get_u8(&rd);
		if (!rd.err && v > RCPT_HELD)
			rd.err = "bad recipient state";
		r->state = (enum rcpt_state)v;
		r->attempts = get_u32(&rd);
		r->next_attempt = (int64_t)get_u64(&rd);
		r->last_attempt = (int64_t)get_u64(&rd);
		r->last_response = get_str(
		    &rd, QENV_MAX_RESPONSE, 1, "", "last response too long");
		r->dsn_status =
		    get_str(&rd, QENV_MAX_STATUS, 1, "", "DSN status too long");
	}
	if (!rd.err && rd.left != 0)
		rd.err = "trailing bytes after the last recipient";
	if (rd.err) {
		queue_env_free(env);
		return rd.err;
	}
	*envp = env;
	return NULL;
}
