/*
 * tlsrpt_mail - RFC 8460 5.3 (report file name, the mailto: message) and
 * RFC 6522 (multipart/report), RFC 8689 5 (TLS-Required: No).
 * Outline of tlsrpt_mail_build:
 *   1. check every header value for CR, LF and non-ASCII (they come from
 *      config and a DNS record: nothing may start a new header);
 *   2. write the header section, the text/plain summary part and the gzip
 *      part as base64 in 76-column lines (RFC 2045 6.8);
 *   3. sign the result and put the DKIM-Signature field first.
 */
#include "policy/tlsrpt/tlsrpt_mail.h"

#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "mta/util/xalloc.h"

/* The headers the signature covers (RFC 6376 5.4.1 plus RFC 8460's). */
#define TLSRPT_SIGNED_HEADERS                                                  \
	"from:to:subject:date:message-id:mime-version:content-type:"           \
	"tls-report-domain:tls-report-submitter:tls-required"

static int
header_safe(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* Bytes of a file-name field: "!" and "/" would break the name. */
static void
put_name_field(buf_t *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || c == '@')
			buf_putc(out, c);
		else
			buf_putc(out, '_');
	}
}

int
tlsrpt_mail_filename(const char *submitter, const char *policy_domain,
    int64_t begin, int64_t end, const char *unique_id, buf_t *out)
{
	put_name_field(out, submitter);
	buf_putc(out, '!');
	put_name_field(out, policy_domain);
	buf_printf(out, "!%lld!%lld", (long long)begin, (long long)end);
	if (unique_id != NULL && unique_id[0] != '\0') {
		buf_putc(out, '!');
		put_name_field(out, unique_id);
	}
	buf_puts(out, ".json.gz");
	return buf_error(out) ? -1 : 0;
}

static void
put_date(buf_t *out, int64_t now)
{
	static const char *const wd[] = {
	    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)now;
	struct tm tm;

	gmtime_r(&t, &tm);
	buf_printf(out, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
	    tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

static void
put_base64_lines(buf_t *out, const unsigned char *p, size_t len)
{
	unsigned char line[80];

	/* 57 input bytes make one 76-character line. */
	for (size_t off = 0; off < len; off += 57) {
		size_t n = len - off > 57 ? 57 : len - off;
		int k = EVP_EncodeBlock(line, p + off, (int)n);

		buf_append(out, line, (size_t)k);
		buf_puts(out, "\r\n");
	}
}

/* Summary text with every line ending in CRLF, control bytes dropped. */
static void
put_text(buf_t *out, const char *s)
{
	int col = 0;

	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n') {
			buf_puts(out, "\r\n");
			col = 0;
		} else if ((c >= 0x20 && c <= 0x7e) || c == '\t') {
			buf_putc(out, c);
			col++;
		}
	}
	if (col > 0)
		buf_puts(out, "\r\n");
}

int
tlsrpt_mail_build(
    const struct tlsrpt_mail *m, tlsrpt_dkim_t *dkim, buf_t *out, buf_t *err)
{
	buf_t *msg, *name;
	char boundary[64];
	int rc = -1;

	if (!header_safe(m->submitter) || !header_safe(m->from) ||
	    !header_safe(m->to) || !header_safe(m->policy_domain) ||
	    !header_safe(m->report_id)) {
		buf_puts(err, "TLS report: a header value is empty or has "
		              "control or non-ASCII bytes");
		return -1;
	}
	msg = buf_new(0);
	name = buf_new(1024);
	snprintf(boundary, sizeof(boundary), "=_tlsrpt_%lld_%08x",
	    (long long)m->now,
	    (unsigned)(m->gzlen * 2654435761u) & 0xffffffffu);
	tlsrpt_mail_filename(
	    m->submitter, m->policy_domain, m->begin, m->end, NULL, name);

	buf_printf(msg, "From: <%s>\r\n", m->from);
	buf_printf(msg, "To: <%s>\r\n", m->to);
	/* 5.3: the Subject RFC 8460 gives, folded before Report-ID. */
	buf_printf(msg,
	    "Subject: Report Domain: %s Submitter: %s\r\n"
	    " Report-ID: <%s>\r\n",
	    m->policy_domain, m->submitter, m->report_id);
	buf_puts(msg, "Date: ");
	put_date(msg, m->now);
	buf_puts(msg, "\r\n");
	buf_printf(msg, "Message-ID: <%s>\r\n", m->report_id);
	buf_printf(msg, "TLS-Report-Domain: %s\r\n", m->policy_domain);
	buf_printf(msg, "TLS-Report-Submitter: %s\r\n", m->submitter);
	buf_puts(msg, "TLS-Required: No\r\n");
	buf_puts(msg, "Auto-Submitted: auto-generated\r\n");
	buf_puts(msg, "MIME-Version: 1.0\r\n");
	buf_printf(msg,
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    "\tboundary=\"%s\"\r\n\r\n",
	    boundary);
	buf_puts(msg, "This is a multipart message in MIME format.\r\n\r\n");
	buf_printf(msg,
	    "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n",
	    boundary);
	put_text(msg, m->summary);
	buf_printf(msg,
	    "\r\n--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n",
	    boundary, buf_data(name));
	put_base64_lines(msg, m->gz, m->gzlen);
	buf_printf(msg, "\r\n--%s--\r\n", boundary);

	if (buf_error(msg) || buf_error(name)) {
		buf_puts(err, "TLS report: message too large");
		goto out;
	}
	if (dkim != NULL && tlsrpt_dkim_sign(dkim, buf_data(msg), buf_len(msg),
	                        TLSRPT_SIGNED_HEADERS, m->now, out, err) < 0)
		goto out;
	buf_append(out, buf_data(msg), buf_len(msg));
	if (buf_error(out)) {
		buf_puts(err, "TLS report: message too large");
		goto out;
	}
	rc = 0;
out:
	buf_free(msg);
	buf_free(name);
	return rc;
}
