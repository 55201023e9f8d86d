/*
 * dane_lookup - RFC 7672 2.2 for one MX host; see dane_lookup.h. Steps:
 *   1. insecure address records: no TLSA lookup at all (2.2: DANE only for
 *      hosts whose address records are secure);
 *   2. the TLSA base domains to try: the CNAME-expanded name when the
 *      expansion is secure, then the original name (2.2.2);
 *   3. for each: a secure non-empty RRset decides (usable records, or
 *      only unusable ones); a secure denial or an insecure zone moves on
 *      to the next name; a failure or bogus answer fails the host (2.1.1:
 *      doubt defers, it never downgrades);
 *   4. no name had records: no DANE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mta/util/buf.h"
#include "mta/util/xalloc.h"
#include "policy/dane/dane_lookup.h"

#define DANE_MAX_RECS 64

struct dane_job {
	uint64_t id;
	resolver_t *resolver;
	uint64_t lookup;
	char host[256];
	char names[2][256];
	int nnames, current;
	dane_lookup_cb *cb;
	void *arg;
	struct dane_job *next;
};

/* Jobs in flight, for cancel by ID (a callback never sees a stale job). */
static struct dane_job *jobs;
static uint64_t next_id;

const char *
dane_host_state_name(enum dane_host_state s)
{
	switch (s) {
	case DANE_HOST_USABLE:
		return "dane";
	case DANE_HOST_UNUSABLE:
		return "dane-unusable";
	case DANE_HOST_FAILED:
		return "dane-failed";
	default:
		return "none";
	}
}

static void
unlink_job(struct dane_job *job)
{
	struct dane_job **pp;

	for (pp = &jobs; *pp; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			return;
		}
}

static void
report(struct dane_job *job, enum dane_host_state state, const char *base,
    const struct tlsa_rec *recs, size_t nrec, size_t nusable, const char *why)
{
	struct dane_host_result res;

	res.host = job->host;
	res.state = state;
	res.base = base;
	res.recs = recs;
	res.nrec = nrec;
	res.nusable = nusable;
	res.why = why;
	unlink_job(job);
	job->cb(job->arg, &res);
	free(job);
}

static void start_lookup(struct dane_job *);

static void
on_tlsa(void *arg, const struct resolver_answer *a)
{
	struct dane_job *job = arg;
	struct tlsa_rec recs[DANE_MAX_RECS];
	size_t i, nrec = 0, nusable = 0;
	buf_t *why;

	job->lookup = 0;
	why = buf_new(512);
	if (a->rcode == RESOLVER_TEMPFAIL || a->dnssec == DNSSEC_BOGUS ||
	    a->dnssec == DNSSEC_INDETERMINATE) {
		buf_printf(why, "TLSA lookup error for %s: %s", a->qname,
		    a->why                      ? a->why
		    : a->dnssec == DNSSEC_BOGUS ? "bogus DNSSEC answer"
		    : a->rcode == RESOLVER_TEMPFAIL
		        ? "temporary failure"
		        : "DNSSEC status indeterminate");
		report(job, DANE_HOST_FAILED, NULL, NULL, 0, 0, buf_data(why));
		buf_free(why);
		return;
	}
	if (a->rcode != RESOLVER_OK || a->dnssec != DNSSEC_SECURE) {
		/* Securely no records, or records in an insecure zone (which
		 * are ignored, 2.1): the next base name, or no DANE. */
		if (++job->current < job->nnames) {
			buf_free(why);
			start_lookup(job);
			return;
		}
		buf_printf(why, "no secure TLSA records for %s", job->host);
		report(job, DANE_HOST_NONE, NULL, NULL, 0, 0, buf_data(why));
		buf_free(why);
		return;
	}
	for (i = 0; i < a->nrr && nrec < DANE_MAX_RECS; i++) {
		if (a->rr[i].type != RESOLVER_TLSA)
			continue;
		/* A malformed record is unusable, but still published. */
		if (tlsa_decode(a->rr[i].u.tlsa.rdata, a->rr[i].u.tlsa.len,
		        &recs[nrec]) != NULL) {
			recs[nrec].usage = 255;
			recs[nrec].selector = recs[nrec].mtype = 255;
			recs[nrec].data = NULL;
			recs[nrec].len = 0;
		}
		if (tlsa_usable(&recs[nrec]) == NULL)
			nusable++;
		nrec++;
	}
	if (nusable)
		buf_printf(why, "%zu usable TLSA record%s at _25._tcp.%s",
		    nusable, nusable == 1 ? "" : "s", job->names[job->current]);
	else
		buf_printf(why,
		    "TLSA records at _25._tcp.%s are all unusable: TLS "
		    "required without authentication (RFC 7672 2.2, 3)",
		    job->names[job->current]);
	report(job, nusable ? DANE_HOST_USABLE : DANE_HOST_UNUSABLE,
	    job->names[job->current], recs, nrec, nusable, buf_data(why));
	buf_free(why);
}

static void
start_lookup(struct dane_job *job)
{
	char qname[300];

	snprintf(qname, sizeof(qname), "_25._tcp.%s", job->names[job->current]);
	job->lookup =
	    resolver_lookup(job->resolver, qname, RESOLVER_TLSA, on_tlsa, job);
}

static void
copy_name(char dst[256], const char *src)
{
	size_t n = strnlen(src, 255);

	memcpy(dst, src, n);
	if (n && dst[n - 1] == '.')
		n--;
	dst[n] = '\0';
}

uint64_t
dane_lookup(resolver_t *resolver, const char *host,
    enum dnssec_status addr_status, const char *canonical, int cname_secure,
    dane_lookup_cb *cb, void *arg)
{
	struct dane_job *job;

	/* 2.2: no TLSA lookups for hosts whose address records are not
	 * secure; the caller goes on without DANE. */
	if (addr_status != DNSSEC_SECURE)
		return 0;
	job = xcalloc(1, sizeof(*job));
	job->id = ++next_id;
	job->resolver = resolver;
	job->cb = cb;
	job->arg = arg;
	copy_name(job->host, host);
	if (canonical && cname_secure && strcasecmp(canonical, host) != 0)
		copy_name(job->names[job->nnames++], canonical);
	copy_name(job->names[job->nnames++], host);
	job->next = jobs;
	jobs = job;
	start_lookup(job);
	return job->id;
}

void
dane_lookup_cancel(uint64_t id)
{
	struct dane_job *job;

	for (job = jobs; job; job = job->next)
		if (job->id == id) {
			if (job->lookup)
				resolver_cancel(job->resolver, job->lookup);
			unlink_job(job);
			free(job);
			return;
		}
}
