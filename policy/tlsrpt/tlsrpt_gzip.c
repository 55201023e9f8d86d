/*
 * tlsrpt_gzip - RFC 1952 gzip member, RFC 1951 deflate (stored blocks,
 * 3.2.4, and one fixed-Huffman block, 3.2.6), for TLS reports (RFC 8460
 * 5.3). Outline:
 *   1. the 10-byte header (ID1 ID2 CM=8 FLG=0 MTIME XFL=0 OS=255);
 *   2. the deflate stream: greedy LZ77 matches found through a hash of
 *      the next three bytes (the last position with that hash only, so
 *      the work is linear in the input), coded with the fixed tables;
 *      stored blocks instead if those come out smaller;
 *   3. the trailer: CRC-32 and ISIZE, little-endian.
 * Reports are at most a few MB, so the whole input is one block.
 */
#include "policy/tlsrpt/tlsrpt_gzip.h"

#include <stdlib.h>
#include <string.h>

#include "mta/util/xalloc.h"

#define WINDOW 32768
#define MIN_MATCH 3
#define MAX_MATCH 258
#define HASH_BITS 14
#define HASH_SIZE (1u << HASH_BITS)
#define STORED_MAX 65535

uint32_t
tlsrpt_crc32(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= s[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return crc ^ 0xffffffffu;
}

struct bits {
	buf_t *out;
	uint64_t acc;
	unsigned n;
};

static void
bits_put(struct bits *b, uint32_t v, unsigned nbits)
{
	b->acc |= (uint64_t)v << b->n;
	b->n += nbits;
	while (b->n >= 8) {
		buf_putc(b->out, (int)(b->acc & 0xff));
		b->acc >>= 8;
		b->n -= 8;
	}
}

static void
bits_align(struct bits *b)
{
	if (b->n > 0)
		bits_put(b, 0, 8 - b->n);
}

/* Huffman codes go most significant bit first (RFC 1951 3.1.1). */
static void
bits_huff(struct bits *b, uint32_t code, unsigned len)
{
	uint32_t r = 0;

	for (unsigned i = 0; i < len; i++)
		r |= ((code >> i) & 1u) << (len - 1 - i);
	bits_put(b, r, len);
}

/* The fixed literal/length code of RFC 1951 3.2.6. */
static void
put_litlen(struct bits *b, unsigned v)
{
	if (v <= 143)
		bits_huff(b, 0x30 + v, 8);
	else if (v <= 255)
		bits_huff(b, 0x190 + (v - 144), 9);
	else if (v <= 279)
		bits_huff(b, v - 256, 7);
	else
		bits_huff(b, 0xc0 + (v - 280), 8);
}

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17,
    19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2,
    2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49,
    65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5,
    6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void
put_match(struct bits *b, unsigned len, unsigned dist)
{
	unsigned i = 28;

	while (len_base[i] > len)
		i--;
	put_litlen(b, 257 + i);
	if (len_extra[i])
		bits_put(b, len - len_base[i], len_extra[i]);
	i = 29;
	while (dist_base[i] > dist)
		i--;
	bits_huff(b, i, 5);
	if (dist_extra[i])
		bits_put(b, dist - dist_base[i], dist_extra[i]);
}

static uint32_t
hash3(const unsigned char *p)
{
	uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];

	return (v * 2654435761u) >> (32 - HASH_BITS);
}

static void
deflate_fixed(const unsigned char *s, size_t len, struct bits *b)
{
	/* Positions + 1, so 0 means none. */
	size_t *head = xcalloc(HASH_SIZE, sizeof(*head));
	size_t i = 0;

	bits_put(b, 1, 1); /* BFINAL */
	bits_put(b, 1, 2); /* BTYPE 01: fixed Huffman */
	while (i < len) {
		size_t best = 0, dist = 0;

		if (len - i >= MIN_MATCH) {
			uint32_t h = hash3(s + i);
			size_t cand = head[h];

			head[h] = i + 1;
			if (cand > 0 && i - (cand - 1) <= WINDOW) {
				size_t c = cand - 1, max = len - i, n = 0;

				if (max > MAX_MATCH)
					max = MAX_MATCH;
				while (n < max && s[c + n] == s[i + n])
					n++;
				if (n >= MIN_MATCH) {
					best = n;
					dist = i - c;
				}
			}
		}
		if (best > 0) {
			put_match(b, (unsigned)best, (unsigned)dist);
			/* Keep the table current inside the match too. */
			for (size_t k = i + 1;
			     k < i + best && len - k >= MIN_MATCH; k++)
				head[hash3(s + k)] = k + 1;
			i += best;
		} else {
			put_litlen(b, s[i]);
			i++;
		}
	}
	put_litlen(b, 256);
	bits_align(b);
	free(head);
}

static void
deflate_stored(const unsigned char *s, size_t len, struct bits *b)
{
	size_t off = 0;

	do {
		size_t n = len - off > STORED_MAX ? STORED_MAX : len - off;
		int last = off + n == len;

		bits_put(b, last ? 1u : 0u, 1);
		bits_put(b, 0, 2); /* BTYPE 00: stored */
		bits_align(b);
		bits_put(b, (uint32_t)n, 16);
		bits_put(b, (uint32_t)(~n & 0xffff), 16);
		buf_append(b->out, s + off, n);
		off += n;
	} while (off < len);
}

static void
put_le32(buf_t *out, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		buf_putc(out, (int)((v >> (8 * i)) & 0xff));
}

static int
gzip_write(const void *in, size_t len, uint32_t mtime, buf_t *out, int fixed)
{
	static const unsigned char id[4] = {0x1f, 0x8b, 8, 0};
	struct bits b = {out, 0, 0};

	buf_append(out, id, sizeof(id));
	put_le32(out, mtime);
	buf_putc(out, 0); /* XFL */
	buf_putc(out, 255); /* OS: unknown */
	if (fixed) {
		size_t start = buf_len(out);
		size_t blocks = len / STORED_MAX + 1;

		deflate_fixed(in, len, &b);
		if (!buf_error(out) &&
		    buf_len(out) - start > len + 5 * blocks) {
			buf_truncate(out, start);
			deflate_stored(in, len, &b);
		}
	} else {
		deflate_stored(in, len, &b);
	}
	put_le32(out, tlsrpt_crc32(in, len));
	put_le32(out, (uint32_t)(len & 0xffffffffu));
	return buf_error(out) ? -1 : 0;
}

int
tlsrpt_gzip(const void *in, size_t len, uint32_t mtime, buf_t *out)
{
	return gzip_write(in, len, mtime, out, 1);
}

int
tlsrpt_gzip_stored(const void *in, size_t len, uint32_t mtime, buf_t *out)
{
	return gzip_write(in, len, mtime, out, 0);
}
