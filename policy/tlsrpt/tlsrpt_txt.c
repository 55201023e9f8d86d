/*
 * tlsrpt_txt - the _smtp._tls TXT record (RFC 8460 3). See tlsrpt_txt.h.
 */
#include <string.h>
#include <strings.h>

#include "mta/util/ascii.h"
#include "policy/tlsrpt/tlsrpt_txt.h"

#define VERSION "v=TLSRPTv1"

/* RFC 3986 characters that may appear unencoded in a URI, less the three
 * that RFC 8460 3 says MUST be encoded (",", "!", ";"). */
static int
is_uri_char(char c)
{
	return ascii_is_alnum(c) ||
	       (c != '\0' && strchr("-._~:/?#[]@$&'()*+=", c));
}

/* Checks one URI u[0..n) and keeps it when its scheme is usable. */
static const char *
take_uri(const char *u, size_t n, struct tlsrpt_rua *out)
{
	size_t i, s;

	if (n == 0)
		return "empty URI in rua";
	if (n > TLSRPT_URI_MAX)
		return "rua URI too long";
	for (i = 0; i < n; i++) {
		if (u[i] == '%') {
			if (i + 2 >= n)
				return "incomplete %-escape in rua URI";
			if (!ascii_is_hex(u[i + 1]) || !ascii_is_hex(u[i + 2]))
				return "bad %-escape in rua URI";
			i += 2;
		} else if (!is_uri_char(u[i])) {
			return "bad character in rua URI";
		}
	}
	if (!((u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z')))
		return "rua URI without a scheme";
	for (s = 1; s < n && (ascii_is_alnum(u[s]) || strchr("+-.", u[s])); s++)
		;
	if (s >= n || u[s] != ':')
		return "rua URI without a scheme";
	if (s == 6 && strncasecmp(u, "mailto", 6) == 0) {
		const char *at = memchr(u + 7, '@', n - 7);

		if (n == 7)
			return "empty mailto: URI";
		if (at == NULL || at == u + 7 || at == u + n - 1)
			return "mailto: URI without an address";
	} else if (s == 5 && strncasecmp(u, "https", 5) == 0) {
		const char *h = u + 6, *end = u + n, *e;

		if (n < 8 || h[0] != '/' || h[1] != '/')
			return "https: URI without a host";
		h += 2;
		for (e = h; e < end && *e != '/' && *e != '?' && *e != '#'; e++)
			;
		if (e == h)
			return "https: URI without a host";
		if (memchr(h, '.', (size_t)(e - h)) == NULL)
			return "https: URI host is a single label";
	} else {
		return NULL; /* another scheme: ignored (3: two supported) */
	}
	if (out->n == TLSRPT_RUA_MAX)
		return "too many rua URIs";
	memcpy(out->uri[out->n], u, n);
	out->uri[out->n][n] = '\0';
	out->n++;
	return NULL;
}

const char *
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out)
{
	size_t p = sizeof(VERSION) - 1, i, start;
	int have_rua = 0;
	const char *why;

	memset(out, 0, sizeof(*out));
	if (len > TLSRPT_TXT_MAX)
		return "record too long";
	if (len < p || memcmp(txt, VERSION, p) != 0)
		return "record does not start with v=TLSRPTv1";
	for (;;) {
		while (p < len && ascii_is_wsp(txt[p]))
			p++;
		if (p == len)
			break;
		if (txt[p] != ';')
			return "trailing characters after a field";
		p++;
		while (p < len && ascii_is_wsp(txt[p]))
			p++;
		if (p == len)
			break; /* one trailing field-delim */
		start = p;
		if (!ascii_is_alnum(txt[p]))
			return "bad field name";
		for (p++; p < len && (ascii_is_alnum(txt[p]) ||
		                         strchr("_-.", txt[p]) != NULL);
		     p++)
			if (p - start > 31)
				return "field name too long";
		if (p - start > 32)
			return "field name too long";
		if (p == len || txt[p] != '=')
			return "field without '='";
		if (p - start == 3 && memcmp(txt + start, "rua", 3) == 0) {
			p++;
			for (;;) {
				for (i = p; i < len && !ascii_is_wsp(txt[i]) &&
				            txt[i] != ',' && txt[i] != ';';
				     i++)
					;
				if ((why = take_uri(txt + p, i - p, out)))
					return why;
				p = i;
				while (p < len && ascii_is_wsp(txt[p]))
					p++;
				if (p == len || txt[p] != ',')
					break;
				p++;
				while (p < len && ascii_is_wsp(txt[p]))
					p++;
			}
			have_rua = 1;
		} else {
			start = ++p;
			while (p < len && (unsigned char)txt[p] >= 0x21 &&
			       (unsigned char)txt[p] <= 0x7e && txt[p] != '=' &&
			       txt[p] != ';')
				p++;
			if (p == start)
				return "empty extension value";
			if (p < len && txt[p] == '=')
				return "'=' in an extension value";
		}
	}
	if (!have_rua)
		return "no rua field";
	if (out->n == 0)
		return "no mailto: or https: URI in rua";
	return NULL;
}

int
tlsrpt_txt_is_tlsrpt(const char *txt, size_t len)
{
	size_t v = sizeof(VERSION) - 1;

	return len >= v && memcmp(txt, VERSION, v) == 0 &&
	       (len == v || txt[v] == ';' || ascii_is_wsp(txt[v]));
}

enum tlsrpt_txt_result
tlsrpt_txt_select(const char *const *txts, const size_t *lens, size_t n,
    struct tlsrpt_rua *out, const char **why)
{
	size_t i, found = n, count = 0;

	*why = NULL;
	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++)
		if (tlsrpt_txt_is_tlsrpt(txts[i], lens[i])) {
			found = i;
			count++;
		}
	if (count == 0)
		return TLSRPT_TXT_NONE;
	if (count > 1) {
		*why = "more than one v=TLSRPTv1 record";
		return TLSRPT_TXT_MULTIPLE;
	}
	*why = tlsrpt_txt_parse(txts[found], lens[found], out);
	return *why ? TLSRPT_TXT_INVALID : TLSRPT_TXT_FOUND;
}
