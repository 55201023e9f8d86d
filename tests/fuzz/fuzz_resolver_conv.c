/*
 * fuzz_resolver_conv - the conversion of a getdns response into the
 * resolver's answer (resolver_conv.c). getdns turns the DNS message into a
 * dict (getdns_wire2msg_dict) as it does for a real reply; the fuzz input
 * picks what getdns would have added around it.
 *
 * Input: byte 0 picks the asked type (A, AAAA, MX, TXT, TLSA); byte 1 the
 * DNSSEC status (bits 0-2), the envelope (bits 3-4: a response with the
 * reply in replies_tree, one with an empty replies_tree, one without it,
 * the bare reply) and the response status (bits 5-6); the rest is a DNS
 * message. The answer is checked against resolver.h's promises and the
 * records against the message, so a wrong answer fails like a crash.
 *
 * getdns 1.6.0 itself reads past the message when a compression pointer
 * leads to a label that runs off its end (found here; a getdns bug, not
 * in the code under test), so messages whose framing is broken are not
 * handed to it: see framing_ok().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>

#include "mta/util/buf.h"
#include "resolver/resolver_int.h"

static const int types[] = {
    RESOLVER_A, RESOLVER_AAAA, RESOLVER_MX, RESOLVER_TXT, RESOLVER_TLSA};
static const uint32_t dnssec_values[] = {0, GETDNS_DNSSEC_SECURE,
    GETDNS_DNSSEC_BOGUS, GETDNS_DNSSEC_INDETERMINATE, GETDNS_DNSSEC_INSECURE,
    GETDNS_DNSSEC_NOT_PERFORMED, 0, 999};
static const uint32_t status_values[] = {GETDNS_RESPSTATUS_GOOD,
    GETDNS_RESPSTATUS_ALL_BOGUS_ANSWERS, GETDNS_RESPSTATUS_ALL_TIMEOUT,
    GETDNS_RESPSTATUS_NO_NAME};

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

/*
 * Walks the name at p; names may end in a pointer to an earlier name
 * that is itself whole. The uncompressed part stays before end.
 */
static int
name_ok(const uint8_t *m, size_t len, size_t p, size_t end, size_t *next)
{
	size_t total = 0, target;
	int hops = 0, jumped = 0;

	for (;;) {
		if (p >= end)
			return 0;
		if ((m[p] & 0xc0) == 0xc0) {
			if (p + 1 >= end)
				return 0;
			target = (size_t)(m[p] & 0x3f) << 8 | m[p + 1];
			if (!jumped)
				*next = p + 2;
			if (target < 12 || target >= p || ++hops > 16)
				return 0;
			jumped = 1;
			p = target;
			end = len;
			continue;
		}
		if (m[p] > 63)
			return 0;
		if (m[p] == 0)
			break;
		if (m[p] >= end - p - 1 || (total += m[p] + 1u) > 254)
			return 0;
		p += m[p] + 1u;
	}
	if (!jumped)
		*next = p + 1;
	return 1;
}

/* A name that fills the RDATA from p to end exactly. */
static int
rdata_name_ok(const uint8_t *m, size_t len, size_t p, size_t end, size_t *next)
{
	return name_ok(m, len, p, end, next) && *next <= end;
}

/*
 * The message's framing: counts, names, RDLENGTHs within the message,
 * names inside the RDATA of the types the resolver reads, and only those
 * types (the conversion skips every other one, so nothing is lost).
 */
static int
framing_ok(const uint8_t *m, size_t len)
{
	size_t p = 12, i, n, end, q;
	unsigned type;

	if (len < 12)
		return 0;
	n = (size_t)(m[4] << 8 | m[5]) + (size_t)(m[6] << 8 | m[7]) +
	    (size_t)(m[8] << 8 | m[9]) + (size_t)(m[10] << 8 | m[11]);
	for (i = 0; i < n; i++) {
		if (!name_ok(m, len, p, len, &p))
			return 0;
		if (i < (size_t)(m[4] << 8 | m[5])) { /* a question */
			if (len - p < 4)
				return 0;
			p += 4;
			continue;
		}
		if (len - p < 10)
			return 0;
		type = (unsigned)(m[p] << 8 | m[p + 1]);
		end = p + 10 + (size_t)(m[p + 8] << 8 | m[p + 9]);
		p += 10;
		if (end > len)
			return 0;
		switch (type) {
		case GETDNS_RRTYPE_NS:
		case GETDNS_RRTYPE_CNAME:
			if (!rdata_name_ok(m, len, p, end, &q) || q != end)
				return 0;
			break;
		case GETDNS_RRTYPE_MX:
			if (end - p < 3 ||
			    !rdata_name_ok(m, len, p + 2, end, &q) || q != end)
				return 0;
			break;
		case GETDNS_RRTYPE_SOA:
			if (!rdata_name_ok(m, len, p, end, &q) ||
			    !rdata_name_ok(m, len, q, end, &q) || end - q != 20)
				return 0;
			break;
		case GETDNS_RRTYPE_A:
		case GETDNS_RRTYPE_AAAA:
		case GETDNS_RRTYPE_TXT:
		case GETDNS_RRTYPE_TLSA:
			break;
		default:
			return 0;
		}
		p = end;
	}
	return 1;
}

/* How many records of the answer section have this type. */
static size_t
count_type(getdns_dict *reply, uint32_t want)
{
	getdns_list *answer;
	getdns_dict *rr;
	size_t n = 0, i, count = 0;
	uint32_t type;

	if (getdns_dict_get_list(reply, "answer", &answer) ||
	    getdns_list_get_length(answer, &n))
		return 0;
	for (i = 0; i < n; i++)
		if (getdns_list_get_dict(answer, i, &rr) == 0 &&
		    getdns_dict_get_int(rr, "type", &type) == 0 && type == want)
			count++;
	return count;
}

/* Nonzero when some answer record of the type has exactly this RDATA. */
static int
has_rdata(getdns_dict *reply, uint32_t want, const void *data, size_t len)
{
	getdns_list *answer;
	getdns_dict *rr;
	getdns_bindata *raw;
	size_t n = 0, i;
	uint32_t type;

	if (getdns_dict_get_list(reply, "answer", &answer) ||
	    getdns_list_get_length(answer, &n))
		return 0;
	for (i = 0; i < n; i++)
		if (getdns_list_get_dict(answer, i, &rr) == 0 &&
		    getdns_dict_get_int(rr, "type", &type) == 0 &&
		    type == want &&
		    getdns_dict_get_bindata(rr, "/rdata/rdata_raw", &raw) ==
		        0 &&
		    raw->size == len && memcmp(raw->data, data, len) == 0)
			return 1;
	return 0;
}

static void
check_rr(const struct resolver_rr *rr, int qtype, getdns_dict *reply)
{
	size_t i;

	CHECK(rr->type == qtype);
	switch (qtype) {
	case RESOLVER_A:
		CHECK(rr->u.addr.family == AF_INET);
		CHECK(!reply ||
		      has_rdata(reply, (uint32_t)qtype, rr->u.addr.addr, 4));
		break;
	case RESOLVER_AAAA:
		CHECK(rr->u.addr.family == AF_INET6);
		CHECK(!reply ||
		      has_rdata(reply, (uint32_t)qtype, rr->u.addr.addr, 16));
		break;
	case RESOLVER_MX:
		/* Escaped text: nothing a log or an SMTP line could
		 * misread, no empty label. */
		CHECK(memchr(rr->u.mx.host, '\0', sizeof(rr->u.mx.host)));
		for (i = 0; rr->u.mx.host[i]; i++)
			CHECK(
			    rr->u.mx.host[i] > 0x20 && rr->u.mx.host[i] < 0x7f);
		CHECK(rr->u.mx.host[0] != '.');
		CHECK(strstr(rr->u.mx.host, "..") == NULL ||
		      strstr(rr->u.mx.host, "\\..") != NULL);
		break;
	case RESOLVER_TXT:
		CHECK(rr->u.txt.text != NULL);
		CHECK(rr->u.txt.len < 65536);
		break;
	case RESOLVER_TLSA:
		CHECK(rr->u.tlsa.len == 0 || rr->u.tlsa.rdata != NULL);
		CHECK(!reply || has_rdata(reply, (uint32_t)qtype,
		                    rr->u.tlsa.rdata, rr->u.tlsa.len));
		break;
	}
}

/* reply: the dict the answer came from, or NULL (no records expected). */
static void
check_answer(const struct resolver_answer *a, const char *qname, int qtype,
    getdns_dict *reply, uint32_t sec)
{
	size_t i;

	CHECK(a->qname != NULL && strcmp(a->qname, qname) == 0);
	CHECK(a->qtype == qtype);
	CHECK(a->canonical != NULL);
	CHECK(a->cname_secure == 0 || a->cname_secure == 1);
	CHECK(a->nrr <= RESOLVER_MAX_RRS);
	CHECK(a->nrr == 0 || a->rr != NULL);
	if (reply && sec == GETDNS_DNSSEC_BOGUS)
		CHECK(a->dnssec == DNSSEC_BOGUS);
	switch (a->rcode) {
	case RESOLVER_OK:
		CHECK(reply != NULL);
		CHECK(a->nrr > 0 && a->why == NULL);
		CHECK(a->dnssec != DNSSEC_BOGUS);
		CHECK(a->ttl <= RESOLVER_MAX_POSITIVE_TTL);
		CHECK(a->nrr <= count_type(reply, (uint32_t)qtype));
		for (i = 0; i < a->nrr; i++)
			check_rr(&a->rr[i], qtype, reply);
		break;
	case RESOLVER_NODATA:
	case RESOLVER_NXDOMAIN:
		CHECK(reply != NULL);
		CHECK(a->nrr == 0 && a->why == NULL);
		CHECK(a->dnssec != DNSSEC_BOGUS);
		CHECK(a->ttl <= RESOLVER_MAX_NEGATIVE_TTL);
		break;
	case RESOLVER_TEMPFAIL:
		CHECK(a->nrr == 0 && a->why != NULL && a->why[0] != '\0');
		CHECK(a->cname_secure == 0);
		/* resolver.h: bogus is kept briefly; any other failure
		 * carries no DNSSEC verdict and is not cached. */
		if (a->dnssec == DNSSEC_BOGUS)
			CHECK(a->ttl == RESOLVER_BOGUS_TTL);
		else
			CHECK(a->dnssec == DNSSEC_INDETERMINATE && a->ttl == 0);
		break;
	default:
		abort();
	}
	if (a->rcode != RESOLVER_TEMPFAIL) {
		CHECK(a->dnssec == DNSSEC_SECURE ||
		      a->dnssec == DNSSEC_INSECURE ||
		      a->dnssec == DNSSEC_INDETERMINATE);
		/* No CNAME followed: the canonical name is the question. */
		if (count_type(reply, GETDNS_RRTYPE_CNAME) == 0)
			CHECK(a->canonical == a->qname);
		if (a->canonical == a->qname)
			CHECK(a->cname_secure == 1);
		if (a->dnssec == DNSSEC_SECURE)
			CHECK(a->cname_secure == 1);
	}
}

/* A copy (the cache preload) says exactly what the original says. */
static void
check_copy(const struct resolver_answer *a)
{
	struct resolver_stored *c = resolver_stored_copy(a);
	buf_t *x = buf_new(0), *y = buf_new(0);

	resolver_format_answer(a, x);
	resolver_format_answer(&c->a, y);
	CHECK(buf_len(x) == buf_len(y));
	CHECK(memcmp(buf_data(x), buf_data(y), buf_len(x)) == 0);
	CHECK(strncmp(buf_data(x), "rcode=", 6) == 0);
	buf_free(x);
	buf_free(y);
	resolver_stored_unref(c);
}

/* The question name as the resolver would have asked it. */
static void
question_name(getdns_dict *reply, buf_t *out)
{
	getdns_bindata *qn;

	if (reply == NULL ||
	    getdns_dict_get_bindata(reply, "/question/qname", &qn) ||
	    resolver_name_from_wire(qn->data, qn->size, out) != NULL ||
	    buf_len(out) == 0) {
		buf_reset(out);
		buf_puts(out, "fuzz.example");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	getdns_dict *reply = NULL, *response = NULL;
	getdns_list *replies;
	struct resolver_stored *s;
	buf_t *qname;
	uint32_t sec;
	int qtype, envelope;

	if (len < 2)
		return 0;
	qtype = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	sec = dnssec_values[data[1] & 7];
	envelope = (data[1] >> 3) & 3;
	if (!framing_ok(data + 2, len - 2) ||
	    getdns_wire2msg_dict(data + 2, len - 2, &reply) !=
	        GETDNS_RETURN_GOOD)
		reply = NULL;
	if (reply == NULL && (envelope == 0 || envelope == 3))
		return 0;
	if (reply && (data[1] & 7) != 0)
		(void)getdns_dict_set_int(reply, "dnssec_status", sec);

	qname = buf_new(1024);
	question_name(reply, qname);
	s = resolver_stored_new(buf_data(qname), qtype);
	if (envelope == 3) {
		resolver_conv_reply(s, reply);
		check_answer(&s->a, buf_data(qname), qtype, reply, sec);
	} else {
		response = getdns_dict_create();
		(void)getdns_dict_set_int(response, "status",
		    envelope == 0 ? GETDNS_RESPSTATUS_GOOD
		                  : status_values[(data[1] >> 5) & 3]);
		if (envelope != 2) {
			replies = getdns_list_create();
			if (envelope == 0)
				(void)getdns_list_set_dict(replies, 0, reply);
			(void)getdns_dict_set_list(
			    response, "replies_tree", replies);
			getdns_list_destroy(replies);
		}
		resolver_conv_response(s, response);
		check_answer(&s->a, buf_data(qname), qtype,
		    envelope == 0 ? reply : NULL, sec);
	}
	check_copy(&s->a);
	resolver_stored_unref(s);
	getdns_dict_destroy(response);
	getdns_dict_destroy(reply);
	buf_free(qname);
	return 0;
}
