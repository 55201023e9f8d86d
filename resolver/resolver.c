/*
 * resolver - see resolver.h.
 *
 * Outline:
 *   resolver_lookup(name, type)
 *     -> cache hit:   a waiter holding a reference to the stored answer,
 *                     delivered from a zero timer (never re-entrant);
 *     -> in flight:   the waiter joins the query already asked;
 *     -> otherwise:   a new query through getdns_general().
 *   getdns callback   -> the response is parked on the query and a zero
 *                        timer finishes it, because getdns may call back
 *                        from inside getdns_general() (local errors);
 *   query_finish      -> answer_from_response() turns the reply into a
 *                        stored answer (resolver_conv.c), the cache keeps
 *                        a reference, every waiter is called once.
 *
 * Validation is getdns's own in both modes: with the dnssec extensions it
 * sets CD on queries to a stub upstream and checks the signatures against
 * our trust anchors itself, so a validating upstream hands over bogus data
 * instead of SERVFAIL and we can report BOGUS rather than a bare failure.
 * A bogus reply keeps no records and has rcode TEMPFAIL: a caller that only
 * looks at the rcode defers (RFC 7672 2.1.1), it never sees "no records".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>
#include <getdns/getdns_ext_libevent.h>

#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/hash.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "resolver_int.h"

#define MAX_ANCHOR_FILE (1024 * 1024)
#define DEFAULT_ROOT_ANCHOR "/usr/share/dns/root.key"

/* A small intrusive hash table: entries embed a struct hnode first. */
struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t nb, n;
};

struct centry {
	struct hnode h; /* first */
	char *key;
	struct resolver_stored *s;
	struct centry *older, *newer; /* insertion order */
};

struct query;

struct waiter {
	struct hnode h; /* first; keyed by id */
	uint64_t id;
	resolver_cb *cb;
	void *arg;
	struct query *q; /* NULL for a cache hit */
	struct resolver_stored *s; /* cache hit: the answer to hand over */
	struct event *ev; /* cache hit: the zero timer */
	struct waiter *next, **prevp; /* in q's list */
	struct resolver *r;
};

struct query {
	struct hnode h; /* first; keyed by cache key */
	char *key;
	char *qname;
	int qtype;
	getdns_transaction_t tid;
	int in_getdns; /* a getdns request is outstanding */
	getdns_callback_type_t cbtype;
	getdns_dict *response; /* parked until the timer runs */
	struct event *ev;
	struct waiter *waiters;
	struct resolver *r;
};

struct resolver {
	struct event_base *base;
	getdns_context *ctx;
	getdns_dict *ext;
	long long timeout;
	size_t cache_max;
	uint32_t fail_ttl; /* dns_failure_cache_time: a TEMPFAIL is kept */
	struct htab cache, queries, waiters;
	struct centry *oldest, *newest;
	uint64_t next_id;
	struct resolver_stats stats;
};

/*
 * Hash table.
 */
static uint64_t
hash_bytes(const void *p, size_t len)
{
	return hash_fnv1a(p, len, 0);
}

static void
htab_init(struct htab *t, size_t nb)
{
	t->nb = nb;
	t->n = 0;
	t->b = xcalloc(nb, sizeof(*t->b));
}

static void
htab_grow(struct htab *t)
{
	struct hnode **nbk, *n, *next;
	size_t nnb = t->nb * 2, i;

	nbk = xcalloc(nnb, sizeof(*nbk));
	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			n->next = nbk[n->hash & (nnb - 1)];
			nbk[n->hash & (nnb - 1)] = n;
		}
	}
	free(t->b);
	t->b = nbk;
	t->nb = nnb;
}

static void
htab_insert(struct htab *t, struct hnode *n, uint64_t hash)
{
	if (t->n >= t->nb * 2)
		htab_grow(t);
	n->hash = hash;
	n->next = t->b[hash & (t->nb - 1)];
	t->b[hash & (t->nb - 1)] = n;
	t->n++;
}

static void
htab_remove(struct htab *t, struct hnode *n)
{
	struct hnode **pp;

	for (pp = &t->b[n->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			t->n--;
			return;
		}
	}
	log_err("resolver: hash entry not found");
	abort();
}

static struct hnode *
htab_first(const struct htab *t, uint64_t hash)
{
	return t->b[hash & (t->nb - 1)];
}

/*
 * Names, types, parsers.
 */
int
resolver_type_from_name(const char *s)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {
	    {"A", RESOLVER_A},
	    {"AAAA", RESOLVER_AAAA},
	    {"MX", RESOLVER_MX},
	    {"TXT", RESOLVER_TXT},
	    {"TLSA", RESOLVER_TLSA},
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(s, types[i].name) == 0)
			return types[i].type;
	return 0;
}

const char *
resolver_type_name(int type)
{
	switch (type) {
	case RESOLVER_A:
		return "A";
	case RESOLVER_AAAA:
		return "AAAA";
	case RESOLVER_MX:
		return "MX";
	case RESOLVER_TXT:
		return "TXT";
	case RESOLVER_TLSA:
		return "TLSA";
	case RESOLVER_CNAME:
		return "CNAME";
	default:
		return NULL;
	}
}

const char *
resolver_dnssec_name(enum dnssec_status s)
{
	switch (s) {
	case DNSSEC_SECURE:
		return "secure";
	case DNSSEC_INSECURE:
		return "insecure";
	case DNSSEC_BOGUS:
		return "bogus";
	case DNSSEC_INDETERMINATE:
		return "indeterminate";
	}
	return "unknown";
}

const char *
resolver_rcode_name(enum resolver_rcode rc)
{
	switch (rc) {
	case RESOLVER_OK:
		return "ok";
	case RESOLVER_NODATA:
		return "nodata";
	case RESOLVER_NXDOMAIN:
		return "nxdomain";
	case RESOLVER_TEMPFAIL:
		return "tempfail";
	}
	return "unknown";
}

const char *
resolver_txt_join(const unsigned char *rdata, size_t len, buf_t *out)
{
	size_t pos = 0, n;

	if (len == 0)
		return "empty TXT RDATA";
	while (pos < len) {
		n = rdata[pos++];
		if (n > len - pos)
			return "TXT character-string runs past RDATA";
		buf_append(out, rdata + pos, n);
		pos += n;
	}
	if (buf_error(out))
		return "TXT record too long";
	return NULL;
}

const char *
resolver_name_from_wire(const unsigned char *wire, size_t len, buf_t *out)
{
	size_t pos = 0, n, i;
	int first = 1;

	for (;;) {
		if (pos >= len)
			return "name runs past its data";
		n = wire[pos++];
		if (n == 0)
			break;
		if (n > 63)
			return "compressed or extended label";
		if (n > len - pos)
			return "label runs past its data";
		if (pos + n > 254) /* with the final root byte: 255 */
			return "name longer than 255 bytes";
		if (!first)
			buf_putc(out, '.');
		first = 0;
		for (i = 0; i < n; i++) {
			unsigned char c = wire[pos + i];

			if (c == '.' || c == '\\')
				buf_printf(out, "\\%c", c);
			else if (c <= 0x20 || c >= 0x7f)
				buf_printf(out, "\\%03u", c);
			else
				buf_putc(out, c);
		}
		pos += n;
	}
	if (buf_error(out))
		return "name too long for its buffer";
	return NULL;
}

const char *
resolver_parse_server(const char *s, size_t len, int *family,
    unsigned char addr[16], unsigned *port)
{
	char host[64];
	const char *at;
	size_t hlen, i;
	unsigned long p = 53;

	at = memchr(s, '@', len);
	hlen = at ? (size_t)(at - s) : len;
	if (hlen == 0)
		return "missing address";
	if (hlen >= sizeof(host))
		return "address too long";
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (at) {
		size_t plen = len - hlen - 1;

		if (plen == 0 || plen > 5)
			return "bad port";
		p = 0;
		for (i = 0; i < plen; i++) {
			if (!isdigit((unsigned char)at[1 + i]))
				return "bad port";
			p = p * 10 + (unsigned long)(at[1 + i] - '0');
		}
		if (p == 0 || p > 65535)
			return "port out of range";
	}
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		*family = AF_INET6;
	else
		return "not an IPv4 or IPv6 address";
	*port = (unsigned)p;
	return NULL;
}

/* Parses anchor text into getdns rr dicts; *out owned by the caller. */
static const char *
anchors_parse(const char *text, size_t len, getdns_list **out)
{
	getdns_list *list = NULL;
	getdns_dict *rr;
	size_t n = 0, i;
	uint32_t type;
	FILE *fp;

	*out = NULL;
	if (len > MAX_ANCHOR_FILE)
		return "trust anchor file too large";
	if (len == 0)
		return "no DS or DNSKEY records";
	if (memchr(text, '\0', len))
		return "NUL byte in trust anchor file";
	/* getdns's zone-file reader handles $ORIGIN, parentheses and
	 * comments; feed it the bytes through a memory stream. */
	if ((fp = fmemopen((void *)text, len, "r")) == NULL)
		return "cannot open memory stream";
	/* origin NULL means the root; getdns 1.6 reads an uninitialised
	 * length when an origin string is given. */
	if (getdns_fp2rr_list(fp, &list, NULL, 3600) != GETDNS_RETURN_GOOD) {
		fclose(fp);
		getdns_list_destroy(list);
		return "unparseable trust anchor records";
	}
	fclose(fp);
	if (getdns_list_get_length(list, &n) != GETDNS_RETURN_GOOD || n == 0) {
		getdns_list_destroy(list);
		return "no DS or DNSKEY records";
	}
	for (i = 0; i < n; i++) {
		if (getdns_list_get_dict(list, i, &rr) != GETDNS_RETURN_GOOD ||
		    getdns_dict_get_int(rr, "type", &type) !=
		        GETDNS_RETURN_GOOD ||
		    (type != GETDNS_RRTYPE_DS &&
		        type != GETDNS_RRTYPE_DNSKEY)) {
			getdns_list_destroy(list);
			return "record is not DS or DNSKEY";
		}
	}
	*out = list;
	return NULL;
}

const char *
resolver_check_anchors(const char *text, size_t len, size_t *count)
{
	getdns_list *list;
	const char *e;

	*count = 0;
	if ((e = anchors_parse(text, len, &list)) != NULL)
		return e;
	(void)getdns_list_get_length(list, count);
	getdns_list_destroy(list);
	return NULL;
}

void
resolver_format_answer(const struct resolver_answer *a, buf_t *out)
{
	char text[INET6_ADDRSTRLEN];
	size_t i, j;

	buf_printf(out,
	    "rcode=%s dnssec=%s ttl=%u canonical=%s cname_secure=%d "
	    "rrs=%zu\n",
	    resolver_rcode_name(a->rcode), resolver_dnssec_name(a->dnssec),
	    a->ttl, a->canonical, a->cname_secure, a->nrr);
	for (i = 0; i < a->nrr; i++) {
		const struct resolver_rr *rr = &a->rr[i];

		switch (rr->type) {
		case RESOLVER_MX:
			buf_printf(out, "MX %u %s", rr->u.mx.preference,
			    rr->u.mx.host[0] ? rr->u.mx.host : ".");
			break;
		case RESOLVER_A:
		case RESOLVER_AAAA:
			if (inet_ntop(rr->u.addr.family, rr->u.addr.addr, text,
			        sizeof(text)) == NULL)
				snprintf(text, sizeof(text), "?");
			buf_printf(out, "%s %s",
			    rr->type == RESOLVER_A ? "A" : "AAAA", text);
			break;
		case RESOLVER_TXT:
			/* Network bytes: made printable. */
			buf_puts(out, "TXT ");
			buf_put_printable(out, rr->u.txt.text, rr->u.txt.len);
			break;
		case RESOLVER_TLSA:
			buf_puts(out, "TLSA");
			for (j = 0; j < rr->u.tlsa.len && j < 3; j++)
				buf_printf(out, " %u", rr->u.tlsa.rdata[j]);
			buf_puts(out, " ");
			for (; j < rr->u.tlsa.len; j++)
				buf_printf(out, "%02x", rr->u.tlsa.rdata[j]);
			break;
		default:
			buf_printf(out, "TYPE%d", rr->type);
			break;
		}
		buf_putc(out, '\n');
	}
	if (a->why)
		buf_printf(out, "why=%s\n", a->why);
}

/*
 * Lower-cases and strips the trailing dot of a name to look up; NULL if it
 * cannot be a host name we would ask for.
 */
static char *
normalize_name(const char *name)
{
	size_t len = strlen(name), i;
	char *s;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return NULL;
	s = xstrndup(name, len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '\\')
			goto bad;
		if (c == '.' && (i == 0 || s[i - 1] == '.'))
			goto bad;
		s[i] = (char)tolower(c);
	}
	return s;
bad:
	free(s);
	return NULL;
}

static char *
make_key(const char *qname, int qtype)
{
	buf_t *b = buf_new(0);
	char *k;

	buf_printf(b, "%d/%s", qtype, qname);
	k = buf_steal(b, NULL);
	buf_free(b);
	return k;
}

/*
 * Cache.
 */
static void
cache_unlink(resolver_t *r, struct centry *e)
{
	htab_remove(&r->cache, &e->h);
	if (e->older)
		e->older->newer = e->newer;
	else
		r->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		r->newest = e->older;
	resolver_stored_unref(e->s);
	free(e->key);
	free(e);
}

static struct centry *
cache_find(resolver_t *r, const char *key)
{
	uint64_t h = hash_bytes(key, strlen(key));
	struct hnode *n;

	for (n = htab_first(&r->cache, h); n; n = n->next) {
		struct centry *e = (struct centry *)n;

		if (n->hash == h && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static int
stored_expired(const struct resolver_stored *s, int64_t now)
{
	return now < s->stored_at || now - s->stored_at >= (int64_t)s->a.ttl;
}

static void
cache_store(resolver_t *r, const char *key, struct resolver_stored *s)
{
	struct centry *e;

	/* A temporary failure (a timeout, SERVFAIL) is kept briefly, so
	 * that every new connection to a destination whose DNS is down
	 * does not wait dns_timeout again; bogus answers keep their own
	 * time. */
	if (s->a.rcode == RESOLVER_TEMPFAIL && s->a.dnssec != DNSSEC_BOGUS)
		s->a.ttl = r->fail_ttl;
	if (r->cache_max == 0 || s->a.ttl == 0)
		return;
	if ((e = cache_find(r, key)) != NULL)
		cache_unlink(r, e);
	while (r->cache.n >= r->cache_max && r->oldest)
		cache_unlink(r, r->oldest);
	e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->s = s;
	s->refs++;
	htab_insert(&r->cache, &e->h, hash_bytes(key, strlen(key)));
	e->older = r->newest;
	if (r->newest)
		r->newest->newer = e;
	else
		r->oldest = e;
	r->newest = e;
}

void
resolver_cache_put(resolver_t *r, const struct resolver_answer *a)
{
	char *qname, *key;
	struct resolver_stored *s;

	if ((qname = normalize_name(a->qname)) == NULL)
		return;
	key = make_key(qname, a->qtype);
	s = resolver_stored_copy(a);
	free(s->qname);
	s->qname = qname;
	s->a.qname = qname;
	if (a->canonical == NULL)
		s->a.canonical = qname;
	cache_store(r, key, s);
	resolver_stored_unref(s);
	free(key);
}

void
resolver_cache_clear(resolver_t *r)
{
	while (r->oldest)
		cache_unlink(r, r->oldest);
}

static struct resolver_stored *
answer_from_response(struct query *q)
{
	struct resolver_stored *s = resolver_stored_new(q->qname, q->qtype);
	buf_t *b;

	if (q->cbtype == GETDNS_CALLBACK_TIMEOUT) {
		b = buf_new(128);
		buf_printf(b, "DNS timeout after %llds", q->r->timeout);
		resolver_stored_fail(s, buf_data(b));
		buf_free(b);
		return s;
	}
	if (q->cbtype != GETDNS_CALLBACK_COMPLETE || q->response == NULL) {
		resolver_stored_fail(s, "DNS lookup error");
		return s;
	}
	resolver_conv_response(s, q->response);
	return s;
}

/*
 * Delivery.
 */
static void
deliver(struct waiter *w, struct resolver_stored *s)
{
	struct resolver_answer a = s->a;
	int64_t age = clock_now() - s->stored_at;

	/* A cached answer ages: report what is left of its TTL. */
	if (age > 0)
		a.ttl = age >= (int64_t)a.ttl ? 0 : a.ttl - (uint32_t)age;
	w->cb(w->arg, &a);
}

static void
waiter_free(struct waiter *w)
{
	if (w->ev)
		event_free(w->ev);
	resolver_stored_unref(w->s);
	free(w);
}

static void
hit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd;
	(void)what;
	htab_remove(&w->r->waiters, &w->h);
	deliver(w, w->s);
	waiter_free(w);
}

static void
query_free(struct query *q)
{
	if (q->ev)
		event_free(q->ev);
	if (q->response)
		getdns_dict_destroy(q->response);
	free(q->key);
	free(q->qname);
	free(q);
}

/* Withdraws q's outstanding getdns request, if any. */
static void
query_cancel_getdns(struct query *q)
{
	if (!q->in_getdns)
		return;
	q->in_getdns = 0;
	/* getdns calls back with GETDNS_CALLBACK_CANCEL from inside this
	 * call; getdns_cb ignores that. */
	(void)getdns_cancel_callback(q->r->ctx, q->tid);
}

static void
query_finish(evutil_socket_t fd, short what, void *arg)
{
	struct query *q = arg;
	resolver_t *r = q->r;
	struct resolver_stored *s;
	struct waiter *w;

	(void)fd;
	(void)what;
	htab_remove(&r->queries, &q->h);
	s = answer_from_response(q);
	if (s->a.dnssec == DNSSEC_BOGUS || s->a.rcode == RESOLVER_TEMPFAIL)
		log_info("resolver: %s/%s: %s, dnssec=%s: %s", q->qname,
		    resolver_type_name(q->qtype),
		    resolver_rcode_name(s->a.rcode),
		    resolver_dnssec_name(s->a.dnssec),
		    s->a.why ? s->a.why : "");
	else
		log_debug("resolver: %s/%s: %s, dnssec=%s, ttl=%u, rrs=%zu",
		    q->qname, resolver_type_name(q->qtype),
		    resolver_rcode_name(s->a.rcode),
		    resolver_dnssec_name(s->a.dnssec), s->a.ttl, s->a.nrr);
	cache_store(r, q->key, s);
	/* Pop one waiter at a time: a callback may cancel the others. */
	while ((w = q->waiters) != NULL) {
		q->waiters = w->next;
		if (w->next)
			w->next->prevp = &q->waiters;
		htab_remove(&r->waiters, &w->h);
		deliver(w, s);
		waiter_free(w);
	}
	resolver_stored_unref(s);
	query_free(q);
}

static void
getdns_cb(getdns_context *ctx, getdns_callback_type_t type,
    getdns_dict *response, void *userarg, getdns_transaction_t tid)
{
	struct query *q = userarg;
	static const struct timeval zero = {0, 0};

	(void)ctx;
	(void)tid;
	if (type == GETDNS_CALLBACK_CANCEL) {
		/* Only query_cancel_getdns() cancels; its caller frees q. */
		if (response)
			getdns_dict_destroy(response);
		return;
	}
	q->in_getdns = 0;
	q->cbtype = type;
	q->response = response;
	evtimer_add(q->ev, &zero);
}

/*
 * The interface.
 */
/* Builds getdns address dicts from a LIST parameter of "addr[@port]". */
static getdns_list *
address_list(const char *param, const char *value, buf_t *err)
{
	const char *cursor = value;
	char item[128];
	unsigned char addr[16];
	unsigned port;
	int family, rc;
	size_t count = 0;
	getdns_list *list = getdns_list_create();
	getdns_dict *d;
	getdns_bindata atype, adata;
	const char *e;

	while ((rc = config_list_next(&cursor, item, sizeof(item))) > 0) {
		e = resolver_parse_server(
		    item, strlen(item), &family, addr, &port);
		if (e != NULL) {
			buf_printf(err, "%s: %s: %s", param, item, e);
			getdns_list_destroy(list);
			return NULL;
		}
		d = getdns_dict_create();
		atype.data = (uint8_t *)(family == AF_INET ? "IPv4" : "IPv6");
		atype.size = 4;
		adata.data = addr;
		adata.size = family == AF_INET ? 4 : 16;
		getdns_dict_set_bindata(d, "address_type", &atype);
		getdns_dict_set_bindata(d, "address_data", &adata);
		getdns_dict_set_int(d, "port", port);
		getdns_list_set_dict(list, count++, d);
		getdns_dict_destroy(d);
	}
	if (rc < 0) {
		buf_printf(err, "%s: item too long", param);
		getdns_list_destroy(list);
		return NULL;
	}
	return list;
}

static int
set_upstreams(resolver_t *r, const struct config *cfg, buf_t *err)
{
	getdns_list *list;
	size_t n = 0;
	int rc;

	list = address_list("dns_stub_resolvers", cfg->dns_stub_resolvers, err);
	if (list == NULL)
		return -1;
	(void)getdns_list_get_length(list, &n);
	if (n == 0) {
		getdns_list_destroy(list);
		buf_printf(err, "dns_stub_resolvers: empty in stub mode");
		return -1;
	}
	rc = getdns_context_set_upstream_recursive_servers(r->ctx, list);
	getdns_list_destroy(list);
	if (rc != GETDNS_RETURN_GOOD) {
		buf_printf(
		    err, "dns_stub_resolvers: rejected by getdns (%d)", rc);
		return -1;
	}
	return 0;
}

static char *
read_small_file(const char *path, size_t cap, size_t *lenp, buf_t *err)
{
	FILE *fp = fopen(path, "r");
	buf_t *b;
	char chunk[4096];
	size_t n;
	char *data;

	if (fp == NULL) {
		buf_printf(err, "dnssec_trust_anchor_file: %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	b = buf_new(cap);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(b, chunk, n);
	fclose(fp);
	if (buf_error(b)) {
		buf_printf(err,
		    "dnssec_trust_anchor_file: %s: larger than %zu "
		    "bytes",
		    path, cap);
		buf_free(b);
		return NULL;
	}
	data = buf_steal(b, lenp);
	buf_free(b);
	return data;
}

static int
set_anchors(resolver_t *r, const struct config *cfg, buf_t *err)
{
	const char *path = cfg->dnssec_trust_anchor_file;
	getdns_list *list;
	const char *e;
	char *text;
	size_t len;
	int rc;

	if (path == NULL || *path == '\0') {
		if (access(DEFAULT_ROOT_ANCHOR, R_OK) != 0) {
			log_warn("resolver: no dnssec_trust_anchor_file and "
			         "no %s: using getdns's built-in anchor",
			    DEFAULT_ROOT_ANCHOR);
			return 0;
		}
		path = DEFAULT_ROOT_ANCHOR;
	}
	if ((text = read_small_file(path, MAX_ANCHOR_FILE, &len, err)) == NULL)
		return -1;
	e = anchors_parse(text, len, &list);
	free(text);
	if (e) {
		buf_printf(err, "dnssec_trust_anchor_file: %s: %s", path, e);
		return -1;
	}
	rc = getdns_context_set_dnssec_trust_anchors(r->ctx, list);
	getdns_list_destroy(list);
	if (rc != GETDNS_RETURN_GOOD) {
		buf_printf(err,
		    "dnssec_trust_anchor_file: %s: rejected by "
		    "getdns (%d)",
		    path, rc);
		return -1;
	}
	return 0;
}

resolver_t *
resolver_new(struct event_base *base, const struct config *cfg, buf_t *err)
{
	resolver_t *r = xcalloc(1, sizeof(*r));
	getdns_namespace_t ns = GETDNS_NAMESPACE_DNS;
	int stub = strcmp(cfg->dns_resolver_mode, "stub") == 0;
	size_t nb = 64;

	r->base = base;
	r->timeout = cfg->dns_timeout;
	r->cache_max =
	    cfg->dns_cache_size > 0 ? (size_t)cfg->dns_cache_size : 0;
	r->fail_ttl = (uint32_t)cfg->dns_failure_cache_time;
	r->next_id = 1;
	while (nb < r->cache_max / 2 && nb < (1u << 20))
		nb *= 2;
	htab_init(&r->cache, nb);
	htab_init(&r->queries, 64);
	htab_init(&r->waiters, 64);

	/* set_from_os 0: no /etc/hosts and no resolv.conf; the config
	 * says where to ask. */
	if (getdns_context_create(&r->ctx, 0) != GETDNS_RETURN_GOOD) {
		buf_printf(err, "getdns_context_create failed");
		r->ctx = NULL;
		goto fail;
	}
	if (getdns_context_set_resolution_type(r->ctx,
	        stub ? GETDNS_RESOLUTION_STUB : GETDNS_RESOLUTION_RECURSING) ||
	    getdns_context_set_namespaces(r->ctx, 1, &ns) ||
	    getdns_context_set_timeout(
	        r->ctx, (uint64_t)cfg->dns_timeout * 1000)) {
		buf_printf(err, "dns_resolver_mode %s: not supported by getdns",
		    cfg->dns_resolver_mode);
		goto fail;
	}
	if (stub && set_upstreams(r, cfg, err) < 0)
		goto fail;
	if (set_anchors(r, cfg, err) < 0)
		goto fail;
	if (getdns_extension_set_libevent_base(r->ctx, base) !=
	    GETDNS_RETURN_GOOD) {
		buf_printf(err, "getdns: cannot attach to the event loop");
		goto fail;
	}
	r->ext = getdns_dict_create();
	/* dnssec_return_status makes getdns validate; all_statuses keeps
	 * bogus replies in the response so we can tell bogus from
	 * failure. */
	getdns_dict_set_int(
	    r->ext, "dnssec_return_status", GETDNS_EXTENSION_TRUE);
	getdns_dict_set_int(
	    r->ext, "dnssec_return_all_statuses", GETDNS_EXTENSION_TRUE);
	log_debug("resolver: %s mode, timeout %llds, cache %zu",
	    cfg->dns_resolver_mode, r->timeout, r->cache_max);
	return r;
fail:
	resolver_free(r);
	return NULL;
}

void
resolver_free(resolver_t *r)
{
	size_t i;
	struct hnode *n, *next;

	if (r == NULL)
		return;
	/* Cancel our requests by transaction id first; the context then
	 * has nothing of ours left to call back about. */
	for (i = 0; i < r->queries.nb; i++)
		for (n = r->queries.b[i]; n; n = n->next)
			query_cancel_getdns((struct query *)n);
	if (r->ctx)
		getdns_context_destroy(r->ctx);
	for (i = 0; i < r->waiters.nb; i++)
		for (n = r->waiters.b[i]; n; n = next) {
			next = n->next;
			waiter_free((struct waiter *)n);
		}
	for (i = 0; i < r->queries.nb; i++)
		for (n = r->queries.b[i]; n; n = next) {
			next = n->next;
			query_free((struct query *)n);
		}
	while (r->oldest)
		cache_unlink(r, r->oldest);
	free(r->cache.b);
	free(r->queries.b);
	free(r->waiters.b);
	if (r->ext)
		getdns_dict_destroy(r->ext);
	free(r);
}

static struct query *
query_find(resolver_t *r, const char *key)
{
	uint64_t h = hash_bytes(key, strlen(key));
	struct hnode *n;

	for (n = htab_first(&r->queries, h); n; n = n->next) {
		struct query *q = (struct query *)n;

		if (n->hash == h && strcmp(q->key, key) == 0)
			return q;
	}
	return NULL;
}

/* Delivers a failure decided before any query from the loop. */
static uint64_t
lookup_fail(resolver_t *r, struct waiter *w, const char *name, int qtype,
    const char *why)
{
	static const struct timeval zero = {0, 0};

	w->s = resolver_stored_new(name, qtype);
	resolver_stored_fail(w->s, why);
	w->ev = evtimer_new(r->base, hit_cb, w);
	evtimer_add(w->ev, &zero);
	return w->id;
}

uint64_t
resolver_lookup(
    resolver_t *r, const char *name, int qtype, resolver_cb *cb, void *arg)
{
	static const struct timeval zero = {0, 0};
	struct waiter *w = xcalloc(1, sizeof(*w));
	struct centry *e;
	struct query *q;
	char *qname, *key;
	int rc;

	w->id = r->next_id++;
	w->cb = cb;
	w->arg = arg;
	w->r = r;
	htab_insert(&r->waiters, &w->h, hash_bytes(&w->id, sizeof(w->id)));
	r->stats.lookups++;

	if (resolver_type_name(qtype) == NULL || qtype == RESOLVER_CNAME)
		return lookup_fail(r, w, name, qtype, "unsupported type");
	if ((qname = normalize_name(name)) == NULL)
		return lookup_fail(r, w, name, qtype, "invalid domain name");
	key = make_key(qname, qtype);

	if ((e = cache_find(r, key)) != NULL) {
		if (!stored_expired(e->s, clock_now())) {
			r->stats.cache_hits++;
			w->s = e->s;
			w->s->refs++;
			w->ev = evtimer_new(r->base, hit_cb, w);
			evtimer_add(w->ev, &zero);
			free(qname);
			free(key);
			return w->id;
		}
		cache_unlink(r, e);
	}
	if ((q = query_find(r, key)) == NULL) {
		q = xcalloc(1, sizeof(*q));
		q->r = r;
		q->key = key;
		q->qname = qname;
		q->qtype = qtype;
		q->ev = evtimer_new(r->base, query_finish, q);
		htab_insert(&r->queries, &q->h, hash_bytes(key, strlen(key)));
		r->stats.queries++;
		q->in_getdns = 1;
		rc = getdns_general(r->ctx, qname, (uint16_t)qtype, r->ext, q,
		    &q->tid, getdns_cb);
		if (rc != GETDNS_RETURN_GOOD) {
			q->in_getdns = 0;
			q->cbtype = GETDNS_CALLBACK_ERROR;
			evtimer_add(q->ev, &zero);
			log_warn("resolver: %s/%s: getdns_general failed (%d)",
			    qname, resolver_type_name(qtype), rc);
		}
	} else {
		free(qname);
		free(key);
	}
	w->q = q;
	w->next = q->waiters;
	if (w->next)
		w->next->prevp = &w->next;
	w->prevp = &q->waiters;
	q->waiters = w;
	return w->id;
}

void
resolver_cancel(resolver_t *r, uint64_t id)
{
	uint64_t h = hash_bytes(&id, sizeof(id));
	struct hnode *n;
	struct waiter *w = NULL;

	for (n = htab_first(&r->waiters, h); n; n = n->next)
		if (n->hash == h && ((struct waiter *)n)->id == id) {
			w = (struct waiter *)n;
			break;
		}
	if (w == NULL)
		return; /* delivered or cancelled already */
	htab_remove(&r->waiters, &w->h);
	if (w->q) {
		struct query *q = w->q;

		*w->prevp = w->next;
		if (w->next)
			w->next->prevp = w->prevp;
		/* With a cache, the query runs on: its answer serves the
		 * next message to the same domain. Without one nobody
		 * wants it any more. */
		if (q->waiters == NULL && r->cache_max == 0) {
			query_cancel_getdns(q);
			htab_remove(&r->queries, &q->h);
			query_free(q);
		}
	}
	waiter_free(w);
}

void
resolver_get_stats(resolver_t *r, struct resolver_stats *st)
{
	*st = r->stats;
}
