/*
 * hash - the one string hash of the project's tables: FNV-1a, 64 bits.
 * seed is XORed into the offset basis; a table that clients can fill
 * (smtpd_anvil) passes a random one so that they cannot aim keys at one
 * slot.
 */
#ifndef STRICTMTA_HASH_H
#define STRICTMTA_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
hash_fnv1a(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	while (len-- > 0) {
		h ^= *s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#endif
