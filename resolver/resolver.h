/*
 * resolver - asynchronous DNS lookups with their DNSSEC status, through
 * getdns on the daemon's libevent loop, with a TTL-honouring cache.
 *
 * Every answer carries the outcome (rcode) and the DNSSEC status as separate
 * fields: a temporary failure is never "no data", and a bogus answer is
 * never used (its records are not returned; status says bogus).
 *
 * Ownership: the answer passed to a callback belongs to the resolver and is
 * valid only during the callback. A lookup is cancelled with
 * resolver_cancel(); its callback is then never called. Callbacks always
 * run from the event loop, never from inside resolver_lookup() (even on a
 * cache hit), so callers need not guard against re-entry.
 */
#ifndef STRICTMTA_RESOLVER_H
#define STRICTMTA_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"

struct event_base;
struct config;
typedef struct resolver resolver_t;

enum dnssec_status {
	DNSSEC_SECURE, /* validated */
	DNSSEC_INSECURE, /* provably unsigned */
	DNSSEC_BOGUS, /* validation failed: never use */
	DNSSEC_INDETERMINATE, /* could not tell (no anchor, failure) */
};

enum resolver_rcode {
	RESOLVER_OK, /* records present */
	RESOLVER_NODATA, /* name exists, no records of this type */
	RESOLVER_NXDOMAIN, /* name does not exist */
	RESOLVER_TEMPFAIL, /* SERVFAIL, timeout, network: try later */
};

/* RR types used here (values as in DNS). */
#define RESOLVER_A 1
#define RESOLVER_CNAME 5
#define RESOLVER_MX 15
#define RESOLVER_TXT 16
#define RESOLVER_AAAA 28
#define RESOLVER_TLSA 52

struct resolver_rr {
	int type;
	union {
		struct {
			unsigned preference;
			char host[256]; /* no trailing dot; "" for null MX */
		} mx;
		struct {
			int family; /* AF_INET or AF_INET6 */
			unsigned char addr[16];
		} addr;
		struct {
			const unsigned char *rdata; /* raw RDATA */
			size_t len;
		} tlsa;
		struct {
			const char *text; /* character-strings joined */
			size_t len;
		} txt;
	} u;
};

struct resolver_answer {
	const char *qname; /* as asked, no trailing dot */
	int qtype;
	enum resolver_rcode rcode;
	enum dnssec_status dnssec;
	const char *canonical; /* after CNAMEs (== qname when none) */
	int cname_secure; /* every CNAME in the chain was secure */
	uint32_t ttl; /* smallest TTL seen (negative TTL for NODATA) */
	const char *why; /* NULL, or a reason for TEMPFAIL / BOGUS */
	size_t nrr;
	const struct resolver_rr *rr;
};

typedef void resolver_cb(void *arg, const struct resolver_answer *);

/*
 * Uses cfg's dns_resolver_mode, dns_stub_resolvers,
 * dnssec_trust_anchor_file and dns_timeout. NULL with err set on a bad
 * setting (unreadable anchor, bad resolver address).
 */
resolver_t *resolver_new(
    struct event_base *, const struct config *, buf_t *err);
void resolver_free(resolver_t *); /* cancels everything; NULL no-op */

/* Returns a nonzero lookup ID for resolver_cancel(). */
uint64_t resolver_lookup(
    resolver_t *, const char *name, int qtype, resolver_cb *, void *arg);
void resolver_cancel(resolver_t *, uint64_t id);
/* Drops every cached answer (admin "flush", tests). */
void resolver_cache_clear(resolver_t *);

const char *resolver_dnssec_name(enum dnssec_status);
const char *resolver_rcode_name(enum resolver_rcode);

struct resolver_stats {
	uint64_t lookups, cache_hits, queries;
};
void resolver_get_stats(resolver_t *, struct resolver_stats *);

/*
 * Additions to the interface above (the lines before are fixed).
 *
 * How the fields are filled:
 * - A bogus answer has rcode RESOLVER_TEMPFAIL, dnssec DNSSEC_BOGUS, no
 *   records and a why; it is cached for 60 seconds. Other TEMPFAILs
 *   (SERVFAIL, REFUSED, timeout, malformed data) carry dnssec
 *   DNSSEC_INDETERMINATE and are not cached.
 * - NODATA and NXDOMAIN carry the DNSSEC status of the denial (secure when
 *   NSEC/NSEC3 proved it) and ttl = min(SOA TTL, SOA MINIMUM) (RFC 2308);
 *   without an SOA the ttl is 0 and nothing is cached.
 * - ttl is capped at one day (three hours for negative answers); a cached
 *   answer is handed over with what is left of it.
 * - cname_secure is 1 when there was no CNAME or the whole answer is
 *   secure (getdns validates the chain with the answer); for an insecure
 *   or indeterminate answer with CNAMEs it is 0 even if some links were
 *   signed, which sends RFC 7672 2.2.2 callers to the original name.
 * - MX records come in DNS order (callers sort by preference).
 * - qname is the name as looked up, lower-cased, without the trailing dot.
 * - Names that cannot be asked ("a..b", over 253 bytes, spaces, '\\')
 *   and types other than A, AAAA, MX, TXT and TLSA give TEMPFAIL with a
 *   why, from the loop like every answer.
 *
 * Lifetime: free the resolver before the event_base; never call
 * resolver_free() from inside a resolver callback. A callback may call
 * resolver_lookup() and resolver_cancel() freely. Cancelling the last
 * waiter of a query lets the query run on: its answer fills the cache.
 */

/*
 * Stores a copy of an answer in the cache as if it had come from DNS, with
 * its TTL counted from now (tests, preloading). TEMPFAIL answers other than
 * BOGUS ones, and answers with ttl 0, are not stored.
 */
void resolver_cache_put(resolver_t *, const struct resolver_answer *);

/*
 * Appends an answer as text for people and tests: a line
 * "rcode=ok dnssec=secure ttl=60 canonical=NAME cname_secure=1 rrs=N",
 * one line per record ("MX 10 mx.example", "MX 0 ." for null MX,
 * "A 192.0.2.1", "TXT text" made printable, "TLSA 3 1 1 hexdata") and
 * "why=..." when there is a reason.
 */
void resolver_format_answer(const struct resolver_answer *, buf_t *out);

/* "MX" -> 15 and back; 0 / NULL for types this module does not handle. */
int resolver_type_from_name(const char *);
const char *resolver_type_name(int);

/*
 * Pure parsers over untrusted bytes. Each returns NULL on success or a
 * static error string; output goes to caller-owned storage.
 */
/* TXT RDATA: appends every character-string, joined without separator. */
const char *resolver_txt_join(
    const unsigned char *rdata, size_t len, buf_t *out);
/*
 * An uncompressed wire-format name to text without the trailing dot (the
 * root is ""); '.', '\\' and bytes outside printable ASCII are escaped as
 * \. \\ and \DDD so the text can never be mistaken for another name.
 */
const char *resolver_name_from_wire(
    const unsigned char *wire, size_t len, buf_t *out);
/* "addr" or "addr@port" (IPv4 or IPv6): family AF_INET/AF_INET6. */
const char *resolver_parse_server(const char *s, size_t len, int *family,
    unsigned char addr[16], unsigned *port);
/* Zone-file text of DS/DNSKEY trust anchors; *count gets the records. */
const char *resolver_check_anchors(const char *text, size_t len, size_t *count);

#endif
