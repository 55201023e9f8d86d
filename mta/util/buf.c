/*
 * buf - a growable byte buffer with a hard size cap; see buf.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap;
	int error;
};

buf_t *
buf_new(size_t cap)
{
	buf_t *b = xcalloc(1, sizeof(*b));

	b->cap = cap ? cap : (size_t)1 << 30;
	b->alloc = 64;
	b->data = xmalloc(b->alloc);
	b->data[0] = '\0';
	return b;
}

void
buf_free(buf_t *b)
{
	if (b == NULL)
		return;
	free(b->data);
	free(b);
}

void
buf_reset(buf_t *b)
{
	b->len = 0;
	b->error = 0;
	b->data[0] = '\0';
}

int
buf_error(const buf_t *b)
{
	return b->error;
}

size_t
buf_len(const buf_t *b)
{
	return b->len;
}

const char *
buf_data(const buf_t *b)
{
	return b->data;
}

char *
buf_data_mut(buf_t *b)
{
	return b->data;
}

char *
buf_steal(buf_t *b, size_t *lenp)
{
	char *p = b->data;

	if (lenp)
		*lenp = b->len;
	b->alloc = 64;
	b->data = xmalloc(b->alloc);
	buf_reset(b);
	return p;
}

static int
reserve(buf_t *b, size_t more)
{
	size_t need;

	if (b->error)
		return -1;
	if (more > b->cap - b->len) {
		b->error = 1;
		return -1;
	}
	need = b->len + more + 1;
	if (need > b->alloc) {
		size_t n = b->alloc;

		while (n < need)
			n = n > ((size_t)-1) / 2 ? need : n * 2;
		b->data = xrealloc(b->data, n);
		b->alloc = n;
	}
	return 0;
}

int
buf_append(buf_t *b, const void *p, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(buf_t *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(buf_t *b, int c)
{
	char ch = (char)c;

	return buf_append(b, &ch, 1);
}

int
buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(buf_t *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	b->data[b->len] = '\0';
}

void
buf_truncate(buf_t *b, size_t n)
{
	if (n < b->len) {
		b->len = n;
		b->data[n] = '\0';
	}
}

int
buf_put_printable(buf_t *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			buf_putc(b, s[i]);
		else
			buf_printf(b, "\\x%02x", s[i]);
	}
	return b->error ? -1 : 0;
}
