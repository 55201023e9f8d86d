/*
 * smtp_reply - the pure parts of the SMTP client: reply parsing (RFC 5321
 * 4.2, RFC 2034/3463 enhanced codes), EHLO keywords, DATA encoding (4.5.2
 * dot-stuffing, CRLF only) and xtext (RFC 3461 4).
 *
 * Everything here works on (pointer, length) with explicit caps and never
 * trusts the peer: the fuzz target fuzz_smtp_reply drives these.
 */
#include <string.h>
#include <strings.h>

#include "mta/proto/smtp_reply.h"

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of a run of 1..max digits at s[0..len), 0 if none or too long. */
static size_t
digits(const char *s, size_t len, size_t max)
{
	size_t n = 0;

	while (n < len && is_digit(s[n]))
		n++;
	return (n >= 1 && n <= max) ? n : 0;
}

int
smtp_status_valid(const char *s, size_t len)
{
	size_t n, i = 0;

	/* class "." subject "." detail (RFC 3463 2; RFC 2034 4). */
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	if ((n = digits(s + i, len - i, 3)) == 0)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	if ((n = digits(s + i, len - i, 3)) == 0)
		return 0;
	return i + n == len;
}

/*
 * One line: "DDD" then SP text, "-" text, or nothing (RFC 5321 4.2.1
 * allows a bare code on the last line). Returns an error or NULL; *more
 * is set for a continuation line.
 */
static const char *
parse_line(const char *line, size_t len, int *code, int *more,
    const char **text, size_t *textlen)
{
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return "reply line does not start with a code";
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	/* 4.2: the first digit is 2 to 5; 1yz is not used by SMTP. */
	if (*code < 200 || *code > 599 || line[1] > '5')
		return "reply code out of range";
	if (len == 3) {
		*more = 0;
		*text = line + 3;
		*textlen = 0;
		return NULL;
	}
	if (line[3] != ' ' && line[3] != '-')
		return "bad separator after reply code";
	*more = line[3] == '-';
	*text = line + 4;
	*textlen = len - 4;
	return NULL;
}

const char *
smtp_reply_parse(
    const char *data, size_t len, struct smtp_reply *r, size_t *used)
{
	size_t pos = 0, nlines = 0, textlen = 0;
	int first_code = 0;
	const char *err;

	*used = 0;
	for (;;) {
		const char *nl, *text;
		size_t linelen, rawlen, tl;
		int code, more;

		if (pos >= len)
			return NULL; /* incomplete */
		nl = memchr(data + pos, '\n', len - pos);
		if (nl == NULL) {
			/* No newline yet: fine unless the cap is already
			 * exceeded, then waiting longer cannot help. */
			if (len - pos >= SMTP_REPLY_LINE_MAX)
				return "reply line too long";
			return NULL;
		}
		rawlen = (size_t)(nl - (data + pos)) + 1;
		if (rawlen > SMTP_REPLY_LINE_MAX)
			return "reply line too long";
		linelen = rawlen - 1;
		if (linelen > 0 && data[pos + linelen - 1] == '\r')
			linelen--;
		if (++nlines > SMTP_REPLY_LINES_MAX)
			return "too many reply lines";
		err = parse_line(data + pos, linelen, &code, &more, &text, &tl);
		if (err != NULL)
			return err;
		if (nlines == 1)
			first_code = code;
		else if (code != first_code)
			return "reply code changes between lines";
		if (nlines > 1)
			r->text[textlen++] = '\n';
		/* tl < SMTP_REPLY_LINE_MAX and at most LINES_MAX lines, so
		 * this fits in text[] with the separators and the NUL. */
		memcpy(r->text + textlen, text, tl);
		textlen += tl;
		r->text[textlen] = '\0';
		pos += rawlen;
		if (!more)
			break;
	}
	r->code = first_code;
	r->nlines = nlines;
	r->textlen = textlen;
	r->status[0] = '\0';
	/* An enhanced code opens the text of the first line (RFC 2034 4);
	 * only believe it when its class matches the reply's. */
	{
		size_t n = 0;

		while (n < textlen && n < SMTP_STATUS_SIZE &&
		       (is_digit(r->text[n]) || r->text[n] == '.'))
			n++;
		if (n < SMTP_STATUS_SIZE &&
		    (n == textlen || r->text[n] == ' ' || r->text[n] == '\n') &&
		    smtp_status_valid(r->text, n) &&
		    r->text[0] - '0' == first_code / 100) {
			memcpy(r->status, r->text, n);
			r->status[n] = '\0';
		}
	}
	*used = pos;
	return NULL;
}

void
smtp_reply_format(const struct smtp_reply *r, buf_t *out)
{
	size_t i, start = 0;

	buf_printf(out, "%d", r->code);
	for (i = 0; i <= r->textlen; i++) {
		if (i == r->textlen || r->text[i] == '\n') {
			buf_putc(out, ' ');
			buf_put_printable(out, r->text + start, i - start);
			start = i + 1;
		}
	}
	/* "250 " when the text was empty: drop the trailing blank. */
	if (buf_len(out) > 0 && buf_data(out)[buf_len(out) - 1] == ' ')
		buf_truncate(out, buf_len(out) - 1);
}

/* Keyword of one EHLO line matches kw (case-insensitive, whole word). */
static int
kw_eq(const char *line, size_t len, const char *kw, const char **arg,
    size_t *arglen)
{
	size_t k = strlen(kw);

	if (len < k || strncasecmp(line, kw, k) != 0)
		return 0;
	if (len == k) {
		*arg = line + k;
		*arglen = 0;
		return 1;
	}
	if (line[k] != ' ' && line[k] != '=')
		return 0;
	*arg = line + k + 1;
	*arglen = len - k - 1;
	return 1;
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	static const struct {
		const char *kw;
		unsigned bit;
	} kws[] = {
	    {"STARTTLS", SMTP_EXT_STARTTLS},
	    {"PIPELINING", SMTP_EXT_PIPELINING},
	    {"SIZE", SMTP_EXT_SIZE},
	    {"8BITMIME", SMTP_EXT_8BITMIME},
	    {"SMTPUTF8", SMTP_EXT_SMTPUTF8},
	    {"DSN", SMTP_EXT_DSN},
	    {"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
	    {"CHUNKING", SMTP_EXT_CHUNKING},
	    {"REQUIRETLS", SMTP_EXT_REQUIRETLS},
	};
	size_t start = 0, i, k;
	int lineno = 0;

	e->ext = 0;
	e->size = 0;
	for (i = 0; i <= r->textlen; i++) {
		const char *line, *arg;
		size_t len, arglen;

		if (i < r->textlen && r->text[i] != '\n')
			continue;
		line = r->text + start;
		len = i - start;
		start = i + 1;
		/* The first line is the server's name and greeting. */
		if (lineno++ == 0)
			continue;
		for (k = 0; k < sizeof(kws) / sizeof(kws[0]); k++) {
			if (!kw_eq(line, len, kws[k].kw, &arg, &arglen))
				continue;
			e->ext |= kws[k].bit;
			if (kws[k].bit == SMTP_EXT_SIZE) {
				uint64_t v = 0;
				size_t j;

				/* RFC 1870: digits; 0 or absent = no
				 * limit. Overflow also means "none". */
				for (j = 0; j < arglen && is_digit(arg[j]) &&
				            v < UINT64_MAX / 20;
				     j++)
					v = v * 10 + (uint64_t)(arg[j] - '0');
				if (j == arglen)
					e->size = v;
			}
			break;
		}
	}
}

void
smtp_data_encode(const char *s, size_t len, buf_t *out)
{
	size_t i, start = 0;
	int bol = 1;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (bol && c == '.')
			buf_putc(out, '.'); /* RFC 5321 4.5.2 */
		if (c == '\r' || c == '\n') {
			/* CRLF, bare CR, bare LF: each one line end. */
			buf_append(out, s + start, i - start);
			buf_append(out, "\r\n", 2);
			if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			start = i + 1;
			bol = 1;
			continue;
		}
		if (bol) {
			/* Copy runs rather than bytes: start a new run. */
			buf_append(out, s + start, i - start);
			start = i;
		}
		bol = 0;
	}
	buf_append(out, s + start, len - start);
	if (!bol)
		buf_append(out, "\r\n", 2);
	buf_append(out, ".\r\n", 3);
}

int
smtp_has_8bit(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] & 0x80)
			return 1;
	return 0;
}
