/*
 * ascii - character classes of the ABNF core rules (RFC 5234 B.1), for
 * the parsers of untrusted records. Unlike <ctype.h> they do not depend
 * on the locale and take any char, negative ones included.
 */
#ifndef STRICTMTA_ASCII_H
#define STRICTMTA_ASCII_H

static inline int
ascii_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static inline int
ascii_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static inline int
ascii_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

#endif
