/*
 * resolver_int - internals of the resolver shared by its files, its unit
 * tests and its fuzz targets; not for other modules.
 *
 *   resolver.c       lookups, the cache, the getdns context
 *   resolver_conv.c  stored answers and the conversion of a getdns
 *                    response (untrusted: it is what the network sent) into
 *                    one
 */
#ifndef STRICTMTA_RESOLVER_INT_H
#define STRICTMTA_RESOLVER_INT_H

#include <stdint.h>

#include <getdns/getdns.h>

#include "resolver.h"

/* Upper bounds on what we keep, as Unbound's cache-max-ttl and
 * cache-max-negative-ttl do: a zone cannot pin an answer for weeks. */
#define RESOLVER_MAX_POSITIVE_TTL 86400
#define RESOLVER_MAX_NEGATIVE_TTL 10800
/* Bogus answers are kept briefly (Unbound's val-bogus-ttl) so that a
 * broken zone does not cost a validation per message. */
#define RESOLVER_BOGUS_TTL 60
#define RESOLVER_MAX_CNAME_HOPS 16
#define RESOLVER_MAX_RRS 1024 /* records kept from one answer */

/*
 * An answer shared by the cache and the waiters it is being handed to: a
 * holds the public view, whose strings and records point into the owned
 * fields below. Reference counted; the last resolver_stored_unref() frees.
 */
struct resolver_stored {
	int refs;
	int64_t stored_at; /* clock_now() when it arrived */
	struct resolver_answer a;
	char *qname, *canonical, *why;
	struct resolver_rr *rrs;
};

/* A TEMPFAIL answer for qname (copied) with one reference and no why. */
struct resolver_stored *resolver_stored_new(const char *qname, int qtype);
/* A deep copy of a with one reference (the cache preload). */
struct resolver_stored *resolver_stored_copy(const struct resolver_answer *a);
void resolver_stored_unref(struct resolver_stored *); /* NULL no-op */
void resolver_stored_set_why(struct resolver_stored *, const char *why);
void resolver_stored_set_canonical(struct resolver_stored *, const char *);
/* Turns s into a TEMPFAIL with reason why: records dropped, ttl 0,
 * cname_secure 0, dnssec DNSSEC_INDETERMINATE. */
void resolver_stored_fail(struct resolver_stored *s, const char *why);

/*
 * Fills s (fresh from resolver_stored_new()) from a completed getdns
 * response: its "status" and the first dict of "replies_tree". The
 * response stays the caller's. See resolver.h for how the fields are set.
 */
void resolver_conv_response(struct resolver_stored *s, getdns_dict *response);
/* The same from one reply dict (an element of replies_tree, or what
 * getdns_wire2msg_dict() makes of a DNS message). */
void resolver_conv_reply(struct resolver_stored *s, getdns_dict *reply);

#endif
