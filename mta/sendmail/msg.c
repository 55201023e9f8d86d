/*
 * msg - the message as sendmail gets it: the stdin reader (line endings,
 * the "." line, mbox "From " lines) and the header fix-ups (Bcc removal,
 * -t extraction, missing From:/Date:/Message-ID:). See sendmail.h for the
 * behaviour chosen and why.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sendmail.h"
#include "mta/util/xalloc.h"

struct sendmail_reader {
	buf_t *out; /* finished CRLF lines */
	buf_t *line; /* the line being read, without its LF */
	int dot_ends;
	int at_start; /* still where an mbox "From " line may appear */
	int done;
	int overflow;
};

struct sendmail_reader *
sendmail_reader_new(int dot_ends, size_t cap)
{
	struct sendmail_reader *r = xcalloc(1, sizeof(*r));

	/* cap 0 would mean buf's 1 GiB default: keep it explicit. */
	r->out = buf_new(cap ? cap : 1);
	r->line = buf_new(cap ? cap + 2 : 3);
	r->dot_ends = dot_ends;
	r->at_start = 1;
	return r;
}

void
sendmail_reader_free(struct sendmail_reader *r)
{
	if (r == NULL)
		return;
	buf_free(r->out);
	buf_free(r->line);
	free(r);
}

/* ">From ", ">>From ", "From ": an mbox separator or its escaped form. */
static int
is_from_line(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && s[i] == '>')
		i++;
	return len - i >= 5 && memcmp(s + i, "From ", 5) == 0;
}

static void
end_line(struct sendmail_reader *r)
{
	char *s = buf_data_mut(r->line);
	size_t len = buf_len(r->line), i;

	if (buf_error(r->line)) {
		r->overflow = 1;
		return;
	}
	/* CRLF and LF both end a line. */
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (r->dot_ends && len == 1 && s[0] == '.') {
		r->done = 1;
		return;
	}
	if (r->at_start) {
		if (is_from_line(s, len)) {
			buf_reset(r->line);
			return;
		}
		r->at_start = 0;
	}
	/* A CR that does not end a line is never passed on, nor a NUL
	 * (RFC 5322 2.3 forbids both; smtpd refuses them on input). */
	for (i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\0')
			s[i] = ' ';
	buf_append(r->out, s, len);
	buf_append(r->out, "\r\n", 2);
	if (buf_error(r->out))
		r->overflow = 1;
	buf_reset(r->line);
}

int
sendmail_reader_feed(struct sendmail_reader *r, const char *data, size_t len)
{
	const char *end = data + len;

	while (data < end && !r->done && !r->overflow) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));
		size_t n = nl ? (size_t)(nl - data) : (size_t)(end - data);

		buf_append(r->line, data, n);
		data += n;
		if (nl != NULL) {
			data++;
			end_line(r);
		} else if (buf_error(r->line)) {
			r->overflow = 1;
		}
	}
	if (r->overflow)
		return -1;
	return r->done ? 1 : 0;
}

char *
sendmail_reader_finish(struct sendmail_reader *r, size_t *lenp)
{
	/* A last line without its newline is still a line. */
	if (!r->done && !r->overflow && buf_len(r->line) > 0)
		end_line(r);
	return buf_steal(r->out, lenp);
}

/* The length of the field name if line starts a header field (RFC 5322
 * 2.2: printable ASCII except ':', then ':'; blanks before the colon are
 * the obsolete syntax of 4.5 and still accepted), else 0. */
static size_t
header_name_len(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len && s[i] > 0x20 && s[i] < 0x7f && s[i] != ':')
		i++;
	n = i;
	if (n == 0)
		return 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i < len && s[i] == ':' ? n : 0;
}

static int
name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* Headers removed from every submitted message (Postfix's
 * message_drop_headers): blind copies must stay blind, Return-Path is set
 * at final delivery, and Content-Length lies after any rewrite. */
static int
dropped(const char *s, size_t n)
{
	return name_is(s, n, "bcc") || name_is(s, n, "resent-bcc") ||
	       name_is(s, n, "return-path") || name_is(s, n, "content-length");
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 &&
	       (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n')) {
		(*s)++;
		(*len)--;
	}
	while (
	    *len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' ||
	                    (*s)[*len - 1] == '\r' || (*s)[*len - 1] == '\n'))
		(*len)--;
}

const char *
sendmail_fix_headers(const char *content, size_t len,
    const struct sendmail_hdr_params *p, buf_t *out,
    struct sendmail_hdr_result *res)
{
	const char *s = content, *end = content + len, *body, *err = NULL;
	char **plain = NULL, **resent = NULL;
	size_t nplain = 0, nresent = 0, i;
	int has_from = 0, has_date = 0, has_msgid = 0, has_resent = 0;

	memset(res, 0, sizeof(*res));
	for (i = 0; i < len; i++)
		if ((unsigned char)content[i] >= 0x80) {
			res->eightbit = 1;
			break;
		}
	if (p->received != NULL) {
		buf_puts(out, p->received);
		buf_puts(out, "\r\n");
	}
	/* One header field (with its folded lines) per turn. */
	while (s < end) {
		const char *eol = memchr(s, '\n', (size_t)(end - s));
		const char *fend, *val;
		size_t linelen, n;

		if (eol == NULL) /* the reader always ends lines; be safe */
			eol = end - 1;
		linelen = (size_t)(eol + 1 - s);
		if (s[0] == '\n' ||
		    (linelen == 2 && s[0] == '\r' && s[1] == '\n')) {
			/* The empty line: the body follows. */
			s = eol + 1;
			break;
		}
		if ((n = header_name_len(s, linelen)) == 0)
			break; /* the body starts without an empty line */
		fend = eol + 1;
		while (fend < end && (*fend == ' ' || *fend == '\t')) {
			const char *e =
			    memchr(fend, '\n', (size_t)(end - fend));

			fend = e ? e + 1 : end;
		}
		val = memchr(s, ':', (size_t)(fend - s)) + 1;
		if (name_is(s, n, "from"))
			has_from = 1;
		else if (name_is(s, n, "date"))
			has_date = 1;
		else if (name_is(s, n, "message-id"))
			has_msgid = 1;
		else if (name_is(s, n, "tls-required")) {
			const char *v = val;
			size_t vl = (size_t)(fend - val);

			trim(&v, &vl);
			if (vl == 2 && strncasecmp(v, "no", 2) == 0)
				res->tls_optional = 1;
		}
		if (p->extract &&
		    (name_is(s, n, "to") || name_is(s, n, "cc") ||
		        name_is(s, n, "bcc")) &&
		    err == NULL)
			err = sendmail_addrlist_parse(
			    val, (size_t)(fend - val), &plain, &nplain);
		if (p->extract &&
		    (name_is(s, n, "resent-to") || name_is(s, n, "resent-cc") ||
		        name_is(s, n, "resent-bcc")) &&
		    err == NULL) {
			has_resent = 1;
			err = sendmail_addrlist_parse(
			    val, (size_t)(fend - val), &resent, &nresent);
		}
		if (!dropped(s, n))
			buf_append(out, s, (size_t)(fend - s));
		s = fend;
	}
	body = s;
	if (!has_from && p->from != NULL) {
		buf_puts(out, p->from);
		buf_puts(out, "\r\n");
	}
	if (!has_date && p->date != NULL) {
		buf_puts(out, p->date);
		buf_puts(out, "\r\n");
	}
	if (!has_msgid && p->message_id != NULL) {
		buf_puts(out, p->message_id);
		buf_puts(out, "\r\n");
	}
	/* RFC 5322 2.1: an empty line separates header and body; put one
	 * in when the body began without it. */
	buf_puts(out, "\r\n");
	buf_append(out, body, (size_t)(end - body));
	/* Any Resent-* recipient header means the message is being
	 * resent: those are the recipients (Postfix and Exim agree). */
	if (has_resent) {
		res->rcpts = resent;
		res->nrcpt = nresent;
		resent = NULL;
		nresent = 0;
	} else {
		res->rcpts = plain;
		res->nrcpt = nplain;
		plain = NULL;
		nplain = 0;
	}
	for (i = 0; i < nplain; i++)
		free(plain[i]);
	free(plain);
	for (i = 0; i < nresent; i++)
		free(resent[i]);
	free(resent);
	if (err == NULL && buf_error(out))
		err = "message too large";
	return err;
}

void
sendmail_hdr_result_free(struct sendmail_hdr_result *res)
{
	size_t i;

	for (i = 0; i < res->nrcpt; i++)
		free(res->rcpts[i]);
	free(res->rcpts);
	res->rcpts = NULL;
	res->nrcpt = 0;
}

void
sendmail_hostnames(const struct config *cfg, buf_t *host, buf_t *domain)
{
	char name[256];
	const char *dot;

	if (cfg->myhostname && *cfg->myhostname) {
		buf_puts(host, cfg->myhostname);
	} else if (gethostname(name, sizeof(name)) == 0) {
		name[sizeof(name) - 1] = '\0';
		buf_puts(host, name);
	} else {
		buf_puts(host, "localhost");
	}
	if (cfg->mydomain && *cfg->mydomain) {
		buf_puts(domain, cfg->mydomain);
	} else if ((dot = strchr(buf_data(host), '.')) != NULL && dot[1]) {
		buf_puts(domain, dot + 1);
	} else {
		/* Postfix's default for a host name without a dot. */
		buf_puts(domain, "localdomain");
	}
}

void
sendmail_format_date(long long when, buf_t *out)
{
	static const char *const days[] = {
	    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)when;
	struct tm tm;
	long off;

	/* Names from tables, not strftime: the locale must not leak into
	 * RFC 5322 3.3 syntax. */
	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	buf_printf(out, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/* RFC 5322 3.2.3 atext, and the blanks between words of a phrase. */
static int
phrase_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == ' ' || c >= 0x80 ||
	       strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

void
sendmail_format_from(const char *fullname, const char *addr, buf_t *out)
{
	buf_t *name = buf_new(256);
	const char *s;
	size_t i, len;
	int plain = 1;

	/* -F and $NAME come from the user: no CR, LF or other control
	 * character may reach the header (that would add header lines). */
	for (s = fullname ? fullname : ""; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		buf_putc(name, c < 0x20 || c == 0x7f ? ' ' : c);
	}
	s = buf_data(name);
	len = buf_len(name);
	while (len > 0 && *s == ' ') {
		s++;
		len--;
	}
	while (len > 0 && s[len - 1] == ' ')
		len--;
	for (i = 0; i < len; i++)
		if (!phrase_char((unsigned char)s[i]))
			plain = 0;
	if (len == 0) {
		buf_puts(out, addr);
	} else if (plain) {
		buf_append(out, s, len);
		buf_printf(out, " <%s>", addr);
	} else {
		buf_putc(out, '"');
		for (i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				buf_putc(out, '\\');
			buf_putc(out, s[i]);
		}
		buf_printf(out, "\" <%s>", addr);
	}
	buf_free(name);
}
