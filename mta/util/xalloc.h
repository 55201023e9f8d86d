/*
 * xalloc - allocation that never returns NULL.
 *
 * Running out of memory is a broken invariant for a daemon of this size:
 * these functions log and abort rather than hand NULL to callers that would
 * each need their own recovery path. The caller owns every returned block
 * and releases it with free().
 */
#ifndef STRICTMTA_XALLOC_H
#define STRICTMTA_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
/* Grow an array of nmemb elements of size; aborts on overflow. */
void *xreallocarray(void *, size_t nmemb, size_t size);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
/* Bytes, not a string: a NUL is appended so text can be used directly. */
char *xmemdup(const void *, size_t);

#endif
