/*
 * smtpd_anvil - client keys and failure counters for the listener's
 * limits; see smtpd_int.h. Named after Postfix's anvil(8), which keeps
 * the same kind of counts in a separate process; here they are small
 * enough to live in the listener.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <arpa/inet.h>

#include "mta/util/hash.h"
#include "mta/util/xalloc.h"
#include "smtpd_int.h"

/* Slots looked at for one key: a key lives in one of these. */
#define RATE_PROBES 8

void
smtpd_client_key(
    const struct sockaddr *sa, unsigned v6_prefix, struct smtpd_client_key *key)
{
	static const unsigned char v4mapped[12] = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	unsigned i;

	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET) {
		key->family = AF_INET;
		memcpy(
		    key->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return;
	}
	if (sa->sa_family != AF_INET6)
		return;
	const unsigned char *a =
	    ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
		key->family = AF_INET;
		memcpy(key->addr, a + 12, 4);
		return;
	}
	key->family = AF_INET6;
	if (v6_prefix > 128)
		v6_prefix = 128;
	for (i = 0; i < 16; i++) {
		unsigned bits = v6_prefix > i * 8 ? v6_prefix - i * 8 : 0;

		if (bits >= 8)
			key->addr[i] = a[i];
		else if (bits > 0)
			key->addr[i] =
			    (unsigned char)(a[i] & (0xff << (8 - bits)));
	}
}

int
smtpd_client_key_eq(
    const struct smtpd_client_key *a, const struct smtpd_client_key *b)
{
	return a->family == b->family &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

void
smtpd_client_key_format(const struct smtpd_client_key *key, unsigned v6_prefix,
    char *out, size_t size)
{
	char text[INET6_ADDRSTRLEN];

	if (key->family == AF_INET &&
	    inet_ntop(AF_INET, key->addr, text, sizeof(text)) != NULL)
		snprintf(out, size, "%s", text);
	else if (key->family == AF_INET6 &&
	         inet_ntop(AF_INET6, key->addr, text, sizeof(text)) != NULL)
		snprintf(out, size, v6_prefix >= 128 ? "%s" : "%s/%u", text,
		    v6_prefix);
	else
		snprintf(out, size, "?");
}

struct rate_slot {
	uint64_t hash; /* 0: free */
	int64_t window_start;
	unsigned count;
};

struct smtpd_rate {
	struct rate_slot *slots;
	size_t n;
	unsigned window;
	uint64_t seed;
};

smtpd_rate_t *
smtpd_rate_new(size_t slots, unsigned window_secs)
{
	struct smtpd_rate *r = xcalloc(1, sizeof(*r));

	r->n = slots < RATE_PROBES ? RATE_PROBES : slots;
	r->slots = xcalloc(r->n, sizeof(*r->slots));
	r->window = window_secs ? window_secs : 1;
	/* A seed the clients cannot guess, so that they cannot aim keys
	 * at one slot to push each other's counts out. */
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(r->seed))
		r->seed = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL;
	return r;
}

void
smtpd_rate_free(smtpd_rate_t *r)
{
	if (r == NULL)
		return;
	free(r->slots);
	free(r);
}

/* FNV-1a over seed and key; never 0 (0 marks a free slot). */
static uint64_t
rate_hash(const struct smtpd_rate *r, const void *key, size_t len)
{
	uint64_t h = hash_fnv1a(key, len, r->seed);

	h ^= h >> 29;
	return h ? h : 1;
}

static struct rate_slot *
rate_find(
    struct smtpd_rate *r, const void *key, size_t len, int64_t now, int create)
{
	uint64_t h = rate_hash(r, key, len);
	struct rate_slot *victim = NULL;
	size_t i;

	for (i = 0; i < RATE_PROBES; i++) {
		struct rate_slot *sl = &r->slots[(h + i) % r->n];

		if (sl->hash == h) {
			if (now - sl->window_start >= (int64_t)r->window) {
				sl->window_start = now;
				sl->count = 0;
			}
			return sl;
		}
		if (victim == NULL || sl->hash == 0 ||
		    (victim->hash != 0 &&
		        sl->window_start < victim->window_start))
			victim = sl;
	}
	if (!create)
		return NULL;
	victim->hash = h;
	victim->window_start = now;
	victim->count = 0;
	return victim;
}

unsigned
smtpd_rate_add(smtpd_rate_t *r, const void *key, size_t len, int64_t now)
{
	struct rate_slot *sl = rate_find(r, key, len, now, 1);

	if (sl->count < ~0u)
		sl->count++;
	return sl->count;
}

unsigned
smtpd_rate_get(smtpd_rate_t *r, const void *key, size_t len, int64_t now)
{
	struct rate_slot *sl = rate_find(r, key, len, now, 0);

	return sl ? sl->count : 0;
}
