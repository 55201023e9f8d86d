/*
 * resolver_conv - stored answers, and the conversion of a getdns response
 * into one; see resolver_int.h. Everything a getdns response holds came
 * from the network, so each field is looked up with its error checked and
 * each name and RDATA goes through the pure parsers of resolver.h.
 *
 * Outline of resolver_conv_reply():
 *   DNSSEC status   bogus -> TEMPFAIL, no records, kept RESOLVER_BOGUS_TTL;
 *   header rcode    anything but NOERROR / NXDOMAIN -> TEMPFAIL;
 *   CNAME chain     followed from the question name, at most
 *                   RESOLVER_MAX_CNAME_HOPS, to the canonical name;
 *   records         those of the asked type owned by the canonical name;
 *   TTL             the smallest seen, capped; for no records the RFC 2308
 *                   negative TTL from the SOA, and a referral is TEMPFAIL.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mta/util/clock.h"
#include "mta/util/xalloc.h"
#include "resolver_int.h"

#define MAX_NAME_TEXT 1024 /* escaped text of a 255-byte name */

/*
 * Stored answers.
 */
struct resolver_stored *
resolver_stored_new(const char *qname, int qtype)
{
	struct resolver_stored *s = xcalloc(1, sizeof(*s));

	s->refs = 1;
	s->stored_at = clock_now();
	s->qname = xstrdup(qname);
	s->a.qname = s->qname;
	s->a.qtype = qtype;
	s->a.rcode = RESOLVER_TEMPFAIL;
	s->a.dnssec = DNSSEC_INDETERMINATE;
	s->a.canonical = s->qname;
	return s;
}

void
resolver_stored_set_why(struct resolver_stored *s, const char *why)
{
	free(s->why);
	s->why = why ? xstrdup(why) : NULL;
	s->a.why = s->why;
}

void
resolver_stored_set_canonical(struct resolver_stored *s, const char *canon)
{
	if (s->canonical != NULL)
		free(s->canonical);
	s->canonical = xstrdup(canon);
	s->a.canonical = s->canonical;
}

static void
resolver_stored_drop_rrs(struct resolver_stored *s)
{
	size_t i;

	for (i = 0; i < s->a.nrr; i++) {
		if (s->rrs[i].type == RESOLVER_TXT)
			free((void *)s->rrs[i].u.txt.text);
		else if (s->rrs[i].type == RESOLVER_TLSA)
			free((void *)s->rrs[i].u.tlsa.rdata);
	}
	free(s->rrs);
	s->rrs = NULL;
	s->a.rr = NULL;
	s->a.nrr = 0;
}

void
resolver_stored_unref(struct resolver_stored *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	resolver_stored_drop_rrs(s);
	free(s->qname);
	free(s->canonical);
	free(s->why);
	free(s);
}

struct resolver_stored *
resolver_stored_copy(const struct resolver_answer *a)
{
	struct resolver_stored *s = resolver_stored_new(a->qname, a->qtype);
	size_t i;

	s->a.rcode = a->rcode;
	s->a.dnssec = a->dnssec;
	s->a.cname_secure = a->cname_secure;
	s->a.ttl = a->ttl;
	if (a->canonical)
		resolver_stored_set_canonical(s, a->canonical);
	resolver_stored_set_why(s, a->why);
	if (a->nrr > 0) {
		s->rrs = xcalloc(a->nrr, sizeof(*s->rrs));
		for (i = 0; i < a->nrr; i++) {
			s->rrs[i] = a->rr[i];
			if (a->rr[i].type == RESOLVER_TXT)
				s->rrs[i].u.txt.text = xmemdup(
				    a->rr[i].u.txt.text, a->rr[i].u.txt.len);
			else if (a->rr[i].type == RESOLVER_TLSA)
				s->rrs[i].u.tlsa.rdata =
				    (unsigned char *)xmemdup(
				        a->rr[i].u.tlsa.rdata,
				        a->rr[i].u.tlsa.len);
		}
		s->a.nrr = a->nrr;
		s->a.rr = s->rrs;
	}
	return s;
}

/*
 * From a getdns reply to a stored answer.
 */
static int
wire_name_eq(const getdns_bindata *a, const getdns_bindata *b)
{
	size_t i;

	if (a->size != b->size)
		return 0;
	/* Label lengths are below 64, so folding ASCII letters cannot
	 * change one; a byte-wise case-insensitive compare is exact. */
	for (i = 0; i < a->size; i++)
		if (tolower(a->data[i]) != tolower(b->data[i]))
			return 0;
	return 1;
}

static void
ttl_min(uint32_t *ttl, int *seen, uint32_t v)
{
	if (!*seen || v < *ttl)
		*ttl = v;
	*seen = 1;
}

static enum dnssec_status
map_dnssec(uint32_t v)
{
	switch (v) {
	case GETDNS_DNSSEC_SECURE:
		return DNSSEC_SECURE;
	case GETDNS_DNSSEC_INSECURE:
		return DNSSEC_INSECURE;
	case GETDNS_DNSSEC_BOGUS:
		return DNSSEC_BOGUS;
	default:
		return DNSSEC_INDETERMINATE;
	}
}

/*
 * RFC 2308 5: the negative TTL is the lesser of the SOA's TTL and its
 * MINIMUM field; without an SOA the answer is not cached (0). Returns -1
 * for a referral (NS records and no SOA, RFC 2308 2.2): the upstream did
 * not recurse, which says nothing about the name.
 */
static int64_t
negative_ttl(getdns_dict *reply)
{
	getdns_list *auth;
	getdns_dict *rr, *rdata;
	size_t n = 0, i;
	uint32_t type, ttl, min;
	int ns = 0;

	if (getdns_dict_get_list(reply, "authority", &auth) ||
	    getdns_list_get_length(auth, &n))
		return 0;
	for (i = 0; i < n; i++) {
		if (getdns_list_get_dict(auth, i, &rr) ||
		    getdns_dict_get_int(rr, "type", &type))
			continue;
		if (type == GETDNS_RRTYPE_NS)
			ns = 1;
		if (type != GETDNS_RRTYPE_SOA ||
		    getdns_dict_get_int(rr, "ttl", &ttl) ||
		    getdns_dict_get_dict(rr, "rdata", &rdata) ||
		    getdns_dict_get_int(rdata, "minimum", &min))
			continue;
		return ttl < min ? ttl : min;
	}
	return ns ? -1 : 0;
}

/* Converts one record of the asked type; NULL or an error. */
static const char *
convert_rr(int qtype, getdns_dict *rr, struct resolver_rr *out)
{
	getdns_dict *rdata;
	getdns_bindata *raw, *exch;
	uint32_t pref;
	const char *e;
	buf_t *b;

	memset(out, 0, sizeof(*out));
	out->type = qtype;
	if (getdns_dict_get_dict(rr, "rdata", &rdata) ||
	    getdns_dict_get_bindata(rdata, "rdata_raw", &raw))
		return "record without RDATA";
	switch (qtype) {
	case RESOLVER_A:
		if (raw->size != 4)
			return "A record of wrong length";
		out->u.addr.family = AF_INET;
		memcpy(out->u.addr.addr, raw->data, 4);
		return NULL;
	case RESOLVER_AAAA:
		if (raw->size != 16)
			return "AAAA record of wrong length";
		out->u.addr.family = AF_INET6;
		memcpy(out->u.addr.addr, raw->data, 16);
		return NULL;
	case RESOLVER_MX:
		if (getdns_dict_get_int(rdata, "preference", &pref) ||
		    getdns_dict_get_bindata(rdata, "exchange", &exch))
			return "malformed MX record";
		out->u.mx.preference = pref;
		b = buf_new(sizeof(out->u.mx.host) - 1);
		e = resolver_name_from_wire(exch->data, exch->size, b);
		if (e == NULL)
			memcpy(out->u.mx.host, buf_data(b), buf_len(b) + 1);
		buf_free(b);
		return e;
	case RESOLVER_TXT:
		b = buf_new(65536);
		if ((e = resolver_txt_join(raw->data, raw->size, b)) == NULL) {
			out->u.txt.len = buf_len(b);
			out->u.txt.text = buf_steal(b, NULL);
		}
		buf_free(b);
		return e;
	case RESOLVER_TLSA:
		out->u.tlsa.len = raw->size;
		out->u.tlsa.rdata =
		    (unsigned char *)xmemdup(raw->data, raw->size);
		return NULL;
	}
	return "unsupported type";
}

void
resolver_stored_fail(struct resolver_stored *s, const char *why)
{
	resolver_stored_drop_rrs(s);
	s->a.rcode = RESOLVER_TEMPFAIL;
	/* A failure carries no DNSSEC verdict, even when the reply that
	 * could not be used was validated; the bogus case sets its own
	 * status afterwards. */
	s->a.dnssec = DNSSEC_INDETERMINATE;
	s->a.cname_secure = 0;
	s->a.ttl = 0;
	resolver_stored_set_why(s, why);
}

void
resolver_conv_reply(struct resolver_stored *s, getdns_dict *reply)
{
	getdns_dict *header, *question, *rr, *rdata;
	getdns_list *answer;
	getdns_bindata *cur, *owner, *target;
	uint32_t rcode, sec, type, ttl, minttl = 0;
	int64_t neg;
	size_t n = 0, i, hops;
	int seen = 0, found;
	const char *e;
	buf_t *b;

	if (getdns_dict_get_int(reply, "dnssec_status", &sec))
		sec = GETDNS_DNSSEC_NOT_PERFORMED;
	s->a.dnssec = map_dnssec(sec);
	if (s->a.dnssec == DNSSEC_BOGUS) {
		/* The one place a bogus answer is decided: no records,
		 * TEMPFAIL, kept briefly. */
		resolver_stored_fail(s, "DNSSEC validation failed (bogus)");
		s->a.dnssec = DNSSEC_BOGUS;
		s->a.ttl = RESOLVER_BOGUS_TTL;
		return;
	}
	if (getdns_dict_get_dict(reply, "header", &header) ||
	    getdns_dict_get_int(header, "rcode", &rcode) ||
	    getdns_dict_get_dict(reply, "question", &question) ||
	    getdns_dict_get_bindata(question, "qname", &cur) ||
	    getdns_dict_get_list(reply, "answer", &answer) ||
	    getdns_list_get_length(answer, &n)) {
		resolver_stored_fail(s, "malformed reply");
		return;
	}
	if (rcode != GETDNS_RCODE_NOERROR && rcode != GETDNS_RCODE_NXDOMAIN) {
		b = buf_new(128);
		buf_printf(b, "DNS rcode %s",
		    rcode == GETDNS_RCODE_SERVFAIL  ? "SERVFAIL"
		    : rcode == GETDNS_RCODE_REFUSED ? "REFUSED"
		                                    : "other");
		if (rcode != GETDNS_RCODE_SERVFAIL &&
		    rcode != GETDNS_RCODE_REFUSED)
			buf_printf(b, " (%u)", rcode);
		resolver_stored_fail(s, buf_data(b));
		buf_free(b);
		return;
	}

	/* Follow the CNAME chain from the question name ourselves, so that
	 * only records at the chain's end are taken. */
	for (hops = 0;; hops++) {
		found = 0;
		for (i = 0; i < n; i++) {
			if (getdns_list_get_dict(answer, i, &rr) ||
			    getdns_dict_get_int(rr, "type", &type) ||
			    type != GETDNS_RRTYPE_CNAME ||
			    getdns_dict_get_bindata(rr, "name", &owner) ||
			    !wire_name_eq(owner, cur) ||
			    getdns_dict_get_dict(rr, "rdata", &rdata) ||
			    getdns_dict_get_bindata(rdata, "cname", &target))
				continue;
			if (getdns_dict_get_int(rr, "ttl", &ttl) == 0)
				ttl_min(&minttl, &seen, ttl);
			cur = target;
			found = 1;
			break;
		}
		if (!found)
			break;
		if (hops >= RESOLVER_MAX_CNAME_HOPS) {
			resolver_stored_fail(
			    s, "CNAME chain too long or looping");
			return;
		}
	}
	if (hops > 0) {
		b = buf_new(MAX_NAME_TEXT);
		if ((e = resolver_name_from_wire(cur->data, cur->size, b))) {
			buf_free(b);
			resolver_stored_fail(s, e);
			return;
		}
		resolver_stored_set_canonical(s, buf_data(b));
		buf_free(b);
	}
	/* A secure answer validates every RRset in it, CNAMEs included; for
	 * any other status we cannot vouch for the chain. */
	s->a.cname_secure = hops == 0 || s->a.dnssec == DNSSEC_SECURE;

	if (rcode == GETDNS_RCODE_NOERROR) {
		s->rrs = xcalloc(n ? n : 1, sizeof(*s->rrs));
		for (i = 0; i < n && s->a.nrr < RESOLVER_MAX_RRS; i++) {
			if (getdns_list_get_dict(answer, i, &rr) ||
			    getdns_dict_get_int(rr, "type", &type) ||
			    (int)type != s->a.qtype ||
			    getdns_dict_get_bindata(rr, "name", &owner) ||
			    !wire_name_eq(owner, cur))
				continue;
			s->a.rr = s->rrs;
			if ((e = convert_rr(
			         s->a.qtype, rr, &s->rrs[s->a.nrr])) != NULL) {
				s->a.nrr++; /* so that its data is freed */
				resolver_stored_fail(s, e);
				return;
			}
			s->a.nrr++;
			if (getdns_dict_get_int(rr, "ttl", &ttl) == 0)
				ttl_min(&minttl, &seen, ttl);
		}
		s->a.rr = s->rrs;
	}
	if (s->a.nrr > 0) {
		s->a.rcode = RESOLVER_OK;
		s->a.ttl = minttl < RESOLVER_MAX_POSITIVE_TTL
		               ? minttl
		               : RESOLVER_MAX_POSITIVE_TTL;
	} else {
		s->a.rcode = rcode == GETDNS_RCODE_NXDOMAIN ? RESOLVER_NXDOMAIN
		                                            : RESOLVER_NODATA;
		if ((neg = negative_ttl(reply)) < 0 &&
		    rcode == GETDNS_RCODE_NOERROR) {
			resolver_stored_fail(s,
			    "referral instead of an answer (upstream does "
			    "not recurse?)");
			return;
		}
		ttl_min(&minttl, &seen, neg < 0 ? 0 : (uint32_t)neg);
		s->a.ttl = minttl < RESOLVER_MAX_NEGATIVE_TTL
		               ? minttl
		               : RESOLVER_MAX_NEGATIVE_TTL;
	}
}

void
resolver_conv_response(struct resolver_stored *s, getdns_dict *response)
{
	getdns_list *replies;
	getdns_dict *reply;
	uint32_t status = 0;
	size_t n = 0;

	(void)getdns_dict_get_int(response, "status", &status);
	if (getdns_dict_get_list(response, "replies_tree", &replies) ||
	    getdns_list_get_length(replies, &n) || n == 0 ||
	    getdns_list_get_dict(replies, 0, &reply)) {
		if (status == GETDNS_RESPSTATUS_ALL_BOGUS_ANSWERS) {
			resolver_stored_fail(
			    s, "DNSSEC validation failed (bogus)");
			s->a.dnssec = DNSSEC_BOGUS;
			s->a.ttl = RESOLVER_BOGUS_TTL;
		} else if (status == GETDNS_RESPSTATUS_ALL_TIMEOUT) {
			resolver_stored_fail(s, "DNS timeout");
		} else {
			resolver_stored_fail(s, "no DNS reply");
		}
		return;
	}
	resolver_conv_reply(s, reply);
}
