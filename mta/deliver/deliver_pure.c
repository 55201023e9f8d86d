/*
 * deliver_pure - the parts of delivery that are plain functions of their
 * inputs: retry arithmetic, transport_maps, MX ordering (RFC 5321 5.1)
 * and the RFC 3464 delivery status notification.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mta/deliver/deliver.h"
#include "mta/proto/smtp_xtext.h"
#include "mta/util/config.h"
#include "mta/util/xalloc.h"

long long
deliver_backoff(const struct config *cfg, unsigned attempts)
{
	long long b = cfg->minimal_backoff_time;
	unsigned i;

	/* Doubling, as Postfix's queue manager does; bounded loop. */
	for (i = 1; i < attempts && i < 64 && b < cfg->maximal_backoff_time;
	     i++)
		b *= 2;
	if (b > cfg->maximal_backoff_time)
		b = cfg->maximal_backoff_time;
	if (b < cfg->minimal_backoff_time)
		b = cfg->minimal_backoff_time;
	return b;
}

int
deliver_retry_time(const struct config *cfg, const struct queue_env *env,
    unsigned attempts, int64_t now, int64_t *next)
{
	long long life = (env->flags & QENV_BOUNCE)
	                     ? cfg->bounce_queue_lifetime
	                     : cfg->maximal_queue_lifetime;
	int64_t expires = env->arrival + life;

	if (now >= expires)
		return -1;
	*next = now + deliver_backoff(cfg, attempts);
	/* Try once more exactly at the end of the lifetime rather than
	 * keeping a dead recipient around for another backoff period. */
	if (*next > expires)
		*next = expires;
	return 0;
}

/*
 * transport_maps
 */
struct tmap_entry {
	char *domain; /* lowercase; leading '.' for subdomains */
	struct deliver_nexthop nh;
};

struct deliver_tmap {
	struct tmap_entry *v;
	size_t n;
};

#define TMAP_MAX_ENTRIES 100000

static const char *
parse_nexthop(const char *s, size_t len, struct deliver_nexthop *nh)
{
	size_t hl;
	const char *host, *colon;

	memset(nh, 0, sizeof(*nh));
	nh->port = 25;
	if (len >= 5 && strncasecmp(s, "smtp:", 5) == 0) {
		s += 5;
		len -= 5;
	}
	if (len == 0)
		return "empty next hop";
	if (s[0] == '[') {
		const char *end = memchr(s, ']', len);

		if (end == NULL)
			return "missing ']'";
		host = s + 1;
		hl = (size_t)(end - host);
		nh->no_mx = 1;
		colon = end + 1 < s + len ? end + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return "junk after ']'";
	} else {
		host = s;
		colon = memchr(s, ':', len);
		hl = colon ? (size_t)(colon - s) : len;
	}
	if (hl == 0 || hl >= sizeof(nh->host))
		return "bad host name length";
	memcpy(nh->host, host, hl);
	nh->host[hl] = '\0';
	if (colon != NULL) {
		size_t i, pl = (size_t)(s + len - colon - 1);
		unsigned long p = 0;

		if (pl == 0 || pl > 5)
			return "bad port";
		for (i = 0; i < pl; i++) {
			if (!isdigit((unsigned char)colon[1 + i]))
				return "bad port";
			p = p * 10 + (unsigned long)(colon[1 + i] - '0');
		}
		if (p == 0 || p > 65535)
			return "bad port";
		nh->port = (unsigned)p;
	}
	return NULL;
}

const char *
deliver_tmap_parse(const char *text, size_t len, deliver_tmap_t **mapp)
{
	static char err[128];
	deliver_tmap_t *m = xcalloc(1, sizeof(*m));
	size_t pos = 0, lineno = 0;

	*mapp = NULL;
	while (pos < len) {
		const char *line = text + pos, *nl, *p, *end, *w1, *w2;
		size_t ll, l1, l2, i;
		const char *e;

		nl = memchr(line, '\n', len - pos);
		ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl ? 1 : 0);
		lineno++;
		end = line + ll;
		p = line;
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end || *p == '#')
			continue;
		w1 = p;
		while (p < end && !isspace((unsigned char)*p))
			p++;
		l1 = (size_t)(p - w1);
		while (p < end && isspace((unsigned char)*p))
			p++;
		w2 = p;
		while (p < end && !isspace((unsigned char)*p))
			p++;
		l2 = (size_t)(p - w2);
		while (p < end && isspace((unsigned char)*p))
			p++;
		e = NULL;
		if (l2 == 0)
			e = "missing next hop";
		else if (p != end)
			e = "junk after next hop";
		else if (l1 > 255 || (l1 == 1 && w1[0] == '.'))
			e = "bad domain";
		else if (m->n >= TMAP_MAX_ENTRIES)
			e = "too many entries";
		if (e == NULL) {
			struct tmap_entry te;

			if ((e = parse_nexthop(w2, l2, &te.nh)) == NULL) {
				te.domain = xstrndup(w1, l1);
				for (i = 0; i < l1; i++)
					te.domain[i] = (char)tolower(
					    (unsigned char)te.domain[i]);
				m->v = xreallocarray(
				    m->v, m->n + 1, sizeof(*m->v));
				m->v[m->n++] = te;
			}
		}
		if (e != NULL) {
			snprintf(err, sizeof(err), "line %zu: %s", lineno, e);
			deliver_tmap_free(m);
			return err;
		}
	}
	*mapp = m;
	return NULL;
}

const struct deliver_nexthop *
deliver_tmap_lookup(const deliver_tmap_t *m, const char *domain)
{
	const struct tmap_entry *best = NULL;
	size_t bestlen = 0, dl = strlen(domain), i;

	if (m == NULL)
		return NULL;
	for (i = 0; i < m->n; i++) {
		const char *k = m->v[i].domain;
		size_t kl = strlen(k);

		if (k[0] != '.') {
			if (strcasecmp(k, domain) == 0)
				return &m->v[i].nh; /* exact wins */
			continue;
		}
		/* ".example.com" matches "a.example.com", not itself. */
		if (dl > kl && strcasecmp(domain + dl - kl, k) == 0 &&
		    kl > bestlen) {
			best = &m->v[i];
			bestlen = kl;
		}
	}
	return best ? &best->nh : NULL;
}

void
deliver_tmap_free(deliver_tmap_t *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->v[i].domain);
	free(m->v);
	free(m);
}

/*
 * MX ordering
 */
void
deliver_mx_sort(
    struct deliver_mx *v, size_t n, uint32_t (*rnd)(void *), void *arg)
{
	size_t i, j, start;

	/* Insertion sort: MX sets are small (a DNS answer). Stable, so
	 * that the shuffle below is the only source of order among
	 * equals. */
	for (i = 1; i < n; i++) {
		struct deliver_mx t = v[i];

		for (j = i; j > 0 && v[j - 1].pref > t.pref; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
	/* Fisher-Yates within each run of equal preference. */
	for (start = 0; start < n; start = i) {
		for (i = start + 1; i < n && v[i].pref == v[start].pref; i++)
			;
		for (j = i - 1; j > start; j--) {
			size_t k = start + rnd(arg) % (j - start + 1);
			struct deliver_mx t = v[j];

			v[j] = v[k];
			v[k] = t;
		}
	}
}

/*
 * RFC 3464 delivery status notification
 */
static void
put_date(buf_t *out, int64_t t)
{
	char s[64];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(s, sizeof(s), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_puts(out, s);
}

/* Header-safe text: printable ASCII only, no line breaks. */
static void
put_text(buf_t *out, const char *s)
{
	buf_put_printable(out, s, strlen(s));
}

static void
put_orcpt(buf_t *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char dec[2000];
	size_t n;

	/* RFC 3464 2.3.1: addr-type ";" the decoded address. */
	if (semi == NULL || smtp_xtext_decode(semi + 1, strlen(semi + 1), dec,
	                        sizeof(dec), &n) != NULL)
		return;
	buf_puts(out, "Original-Recipient: ");
	buf_put_printable(out, orcpt, (size_t)(semi - orcpt));
	buf_puts(out, ";");
	buf_put_printable(out, dec, n);
	buf_puts(out, "\r\n");
}

/* Length of the header section including the empty line, or len. */
static size_t
header_len(const char *s, size_t len)
{
	size_t i;

	if (len >= 2 && s[0] == '\r' && s[1] == '\n')
		return 2;
	for (i = 0; i + 3 < len; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return len;
}

/* The original, with CRLF only and no line over 998 bytes needed: it
 * is already a valid message from our queue; only normalise endings. */
static void
put_crlf(buf_t *out, const char *s, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			continue;
		buf_append(out, s + start, i - start);
		buf_puts(out, "\r\n");
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	buf_append(out, s + start, len - start);
	if (start < len)
		buf_puts(out, "\r\n");
}

void
deliver_dsn_build(const struct deliver_dsn *d, buf_t *out)
{
	size_t i;
	int full = d->ret != DSN_RET_HDRS && d->len <= d->full_limit;

	buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n",
	    d->reporting_mta);
	buf_puts(out, "To: <");
	put_text(out, d->to);
	buf_puts(out, ">\r\n");
	buf_printf(out, "Subject: %s\r\n",
	    d->kind == DELIVER_DSN_DELAYED
	        ? "Delayed Mail (still being retried)"
	    : d->kind == DELIVER_DSN_RELAYED
	        ? "Successful Mail Delivery Report"
	        : "Undelivered Mail Returned to Sender");
	buf_puts(out, "Date: ");
	put_date(out, d->now);
	buf_printf(out, "\r\nMessage-ID: <%s>\r\n", d->msgid);
	buf_puts(out, "Auto-Submitted: auto-replied\r\n");
	buf_puts(out, "MIME-Version: 1.0\r\n");
	buf_printf(out,
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n",
	    d->boundary);
	buf_puts(out, "This is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for humans. */
	buf_printf(out, "--%s\r\n", d->boundary);
	buf_puts(out, "Content-Description: Notification\r\n"
	              "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n",
	    d->reporting_mta);
	if (d->kind == DELIVER_DSN_DELAYED)
		buf_puts(out, "Your message could not be delivered yet to "
		              "the recipients below.\r\nThe mail system will "
		              "keep trying; you need not send it again.\r\n");
	else if (d->kind == DELIVER_DSN_RELAYED)
		buf_puts(out,
		    "Your message was passed on to the recipients "
		    "below.\r\nThe next system does not report "
		    "delivery, so no further notice will follow.\r\n");
	else
		buf_puts(out, "Your message could not be delivered to one or "
		              "more recipients.\r\nIt is attached below.\r\n");
	buf_puts(out, "\r\n");
	for (i = 0; i < d->nrcpt; i++) {
		const struct deliver_dsn_rcpt *r = &d->rcpts[i];

		buf_puts(out, "<");
		put_text(out, r->address);
		buf_puts(out, ">: ");
		if (r->diagnostic != NULL) {
			buf_puts(out, "host ");
			put_text(out, r->remote_mta ? r->remote_mta : "?");
			buf_puts(out, " said: ");
			put_text(out, r->diagnostic);
		} else {
			put_text(out, r->reason ? r->reason : r->status);
		}
		buf_puts(out, "\r\n\r\n");
	}

	/* 2: for machines (RFC 3464 2). */
	buf_printf(out, "--%s\r\n", d->boundary);
	buf_puts(out, "Content-Description: Delivery report\r\n"
	              "Content-Type: message/delivery-status\r\n\r\n");
	buf_printf(out, "Reporting-MTA: dns; %s\r\n", d->reporting_mta);
	buf_printf(out, "X-Strictmta-Queue-ID: %s\r\n", d->qid);
	if (d->envid != NULL) {
		buf_puts(out, "Original-Envelope-Id: ");
		put_text(out, d->envid);
		buf_puts(out, "\r\n");
	}
	buf_puts(out, "Arrival-Date: ");
	put_date(out, d->arrival);
	buf_puts(out, "\r\n");
	for (i = 0; i < d->nrcpt; i++) {
		const struct deliver_dsn_rcpt *r = &d->rcpts[i];

		buf_puts(out, "\r\nFinal-Recipient: rfc822; ");
		put_text(out, r->address);
		buf_puts(out, "\r\n");
		if (r->orcpt != NULL)
			put_orcpt(out, r->orcpt);
		buf_printf(out, "Action: %s\r\n", r->action);
		buf_puts(out, "Status: ");
		put_text(out, r->status);
		buf_puts(out, "\r\n");
		if (r->remote_mta != NULL) {
			buf_puts(out, "Remote-MTA: dns; ");
			put_text(out, r->remote_mta);
			buf_puts(out, "\r\n");
		}
		if (r->diagnostic != NULL) {
			buf_puts(out, "Diagnostic-Code: smtp; ");
			put_text(out, r->diagnostic);
			buf_puts(out, "\r\n");
		} else if (r->reason != NULL) {
			buf_puts(out, "Diagnostic-Code: X-strictmta; ");
			put_text(out, r->reason);
			buf_puts(out, "\r\n");
		}
		if (r->last_attempt > 0) {
			buf_puts(out, "Last-Attempt-Date: ");
			put_date(out, r->last_attempt);
			buf_puts(out, "\r\n");
		}
	}
	buf_puts(out, "\r\n");

	/* 3: the message or its headers (RET, RFC 3461 4.3). */
	buf_printf(out, "--%s\r\n", d->boundary);
	if (full) {
		buf_puts(out, "Content-Description: Undelivered Message\r\n"
		              "Content-Type: message/rfc822\r\n"
		              "Content-Transfer-Encoding: 8bit\r\n\r\n");
		put_crlf(out, d->content, d->len);
	} else {
		buf_puts(out,
		    "Content-Description: Undelivered Message Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n");
		put_crlf(out, d->content, header_len(d->content, d->len));
	}
	buf_printf(out, "\r\n--%s--\r\n", d->boundary);
}
