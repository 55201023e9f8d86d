/*
 * buf - a growable byte buffer with a hard size cap and a sticky error.
 *
 * Every string built from untrusted input goes through a buf so that no
 * caller computes lengths by hand. Appending past the cap sets the error
 * flag and drops the data; later appends are ignored until buf_reset(), so a
 * caller may build a whole reply and check buf_error() once at the end.
 * The data is always NUL-terminated (the NUL is not counted in the length).
 * The buf owns its storage; buf_data() is valid until the next change.
 */
#ifndef STRICTMTA_BUF_H
#define STRICTMTA_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf buf_t;

/* cap: the most bytes the buffer may ever hold (0 means 1 GiB). */
buf_t *buf_new(size_t cap);
void buf_free(buf_t *); /* NULL is a no-op */

void buf_reset(buf_t *);
int buf_error(const buf_t *); /* nonzero after an append went past cap */
size_t buf_len(const buf_t *);
const char *buf_data(const buf_t *);
char *buf_data_mut(buf_t *);
/* Hands the storage to the caller (free() it); the buf becomes empty. */
char *buf_steal(buf_t *, size_t *lenp);

int buf_append(buf_t *, const void *, size_t);
int buf_puts(buf_t *, const char *);
int buf_putc(buf_t *, int);
int buf_printf(buf_t *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *, const char *, va_list)
    __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (consumed input). */
void buf_consume(buf_t *, size_t n);
/* Shorten to n bytes (n <= length). */
void buf_truncate(buf_t *, size_t n);
/* Appends text with control and non-ASCII bytes shown as \xHH: for logs. */
int buf_put_printable(buf_t *, const void *, size_t);

#endif
