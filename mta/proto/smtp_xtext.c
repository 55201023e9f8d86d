/*
 * smtp_xtext - see smtp_xtext.h.
 */
#include <string.h>

#include "smtp_xtext.h"

void
smtp_xtext_encode(const char *s, buf_t *out)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 33 || c > 126 || c == '+' || c == '=')
			buf_printf(out, "+%02X", c);
		else
			buf_putc(out, c);
	}
}

const char *
smtp_xtext_decode(
    const char *in, size_t len, char *out, size_t outsize, size_t *outlen)
{
	size_t i, o = 0;
	static const char hex[] = "0123456789ABCDEF";

	if (outsize == 0)
		return "501 5.5.4 Parameter value too long";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			const char *h1, *h2;

			/* RFC 3461 4: hexchar is "+" and two upper-case
			 * hex digits. */
			if (len - i < 3 || in[i + 1] == '\0' ||
			    in[i + 2] == '\0')
				return "501 5.5.4 Bad xtext encoding";
			h1 = strchr(hex, in[i + 1]);
			h2 = strchr(hex, in[i + 2]);
			if (h1 == NULL || h2 == NULL)
				return "501 5.5.4 Bad xtext encoding";
			c = (unsigned char)((h1 - hex) * 16 + (h2 - hex));
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return "501 5.5.4 Bad xtext encoding";
		}
		if (o + 1 >= outsize)
			return "501 5.5.4 Parameter value too long";
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return NULL;
}
