/*
 * sts_fetch - RFC 8461 3.3 policy retrieval on libcurl multi + libevent;
 * see sts_fetch.h. Steps of one fetch:
 *   1. an easy handle for https://mta-sts.<domain>[:port]/.well-known/
 *      mta-sts.txt with the rules of 3.3 set as curl options, the policy
 *      host pinned to the caller's addresses;
 *   2. curl tells us which sockets to watch (socket_cb) and when to time
 *      out (timer_cb); libevent calls back into curl_multi_socket_action;
 *   3. when curl reports the transfer done, check status, media type and
 *      size, parse the body (sts_parse.c), and call the owner back from a
 *      zero timer, so that the callback may start another fetch safely.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "policy/sts/sts_fetch.h"

struct sts_job {
	uint64_t id;
	sts_fetcher_t *fetcher;
	CURL *easy;
	struct curl_slist *resolve;
	char *domain;
	buf_t *body;
	int too_big;
	char curl_error[CURL_ERROR_SIZE];
	sts_fetch_cb *cb;
	void *arg;
	struct event *fail_ev; /* set-up failed: reports from the loop */
	struct sts_job *next;
};

struct sts_fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	long timeout;
	long port;
	uint64_t next_id;
	struct sts_job *jobs;
};

/* One watched socket: curl's per-socket pointer (curl_multi_assign). */
struct sts_sock {
	struct event *ev;
	sts_fetcher_t *fetcher;
};

static void check_done(sts_fetcher_t *);

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	sts_fetcher_t *f = arg;
	int running, action = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(f->multi, fd, action, &running);
	check_done(f);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	sts_fetcher_t *f = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	sts_fetcher_t *f = userp;
	struct sts_sock *sock = socketp;
	short events = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sock) {
			event_free(sock->ev);
			free(sock);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (sock == NULL) {
		sock = xcalloc(1, sizeof(*sock));
		sock->fetcher = f;
		curl_multi_assign(f->multi, s, sock);
	} else {
		event_free(sock->ev);
	}
	sock->ev = event_new(f->base, s, events, on_socket_event, f);
	event_add(sock->ev, NULL);
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	sts_fetcher_t *f = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(f->timer, &tv);
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct sts_job *job = userp;
	size_t n = size * nmemb;

	/* 3.3 leaves the size to us; 64 KiB is far above any real policy. */
	if (buf_len(job->body) + n > STS_POLICY_MAX) {
		job->too_big = 1;
		return 0; /* makes curl fail the transfer */
	}
	buf_append(job->body, data, n);
	return n;
}

/* Where libcurl would look without CURLOPT_CAINFO (Debian's bundle). */
#define STS_SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define STS_CA_MAX (16 << 20)

/* The CA bundle, read once per process (sts_fetch_load_ca): shared by
 * every fetcher, kept to the end. */
static char *ca_pem;
static size_t ca_len;

int
sts_fetch_load_ca(const struct config *cfg, buf_t *err)
{
	const char *name = "mta_sts_CAfile", *path = cfg->mta_sts_CAfile;
	struct stat st;
	FILE *fp;
	size_t n;
	char *pem;

	if (ca_pem != NULL)
		return 0;
	if (path == NULL || path[0] == '\0') {
		name = "smtp_tls_CAfile";
		path = cfg->smtp_tls_CAfile;
	}
	if (path == NULL || path[0] == '\0') {
		name = "the system CA bundle";
		path = STS_SYSTEM_CA_BUNDLE;
	}
	fp = fopen(path, "re");
	if (fp == NULL) {
		buf_printf(err,
		    "%s %s: %s (MTA-STS needs it to verify policy "
		    "hosts)",
		    name, path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size <= 0 || st.st_size > STS_CA_MAX) {
		buf_printf(err, "%s %s: not a regular file of 1 byte to 16 MB",
		    name, path);
		fclose(fp);
		return -1;
	}
	pem = xmalloc((size_t)st.st_size + 1);
	n = fread(pem, 1, (size_t)st.st_size, fp);
	fclose(fp);
	pem[n] = '\0';
	if (n != (size_t)st.st_size ||
	    strstr(pem, "-----BEGIN CERTIFICATE-----") == NULL) {
		buf_printf(err, "%s %s: no PEM certificate in it", name, path);
		free(pem);
		return -1;
	}
	ca_pem = pem;
	ca_len = n;
	return 0;
}

sts_fetcher_t *
sts_fetcher_new(struct event_base *base, const struct config *cfg, buf_t *err)
{
	sts_fetcher_t *f;
	static int global_done;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
			buf_puts(err, "cannot initialise libcurl");
			return NULL;
		}
		global_done = 1;
	}
	if (sts_fetch_load_ca(cfg, err) < 0)
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, on_timeout, f);
	f->timeout = (long)cfg->mta_sts_fetch_timeout;
	f->port = (long)cfg->mta_sts_port;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

static void
job_free(struct sts_job *job)
{
	if (job->easy) {
		curl_multi_remove_handle(job->fetcher->multi, job->easy);
		curl_easy_cleanup(job->easy);
	}
	if (job->fail_ev != NULL)
		event_free(job->fail_ev);
	curl_slist_free_all(job->resolve);
	buf_free(job->body);
	free(job->domain);
	free(job);
}

static void
unlink_job(sts_fetcher_t *f, struct sts_job *job)
{
	struct sts_job **pp;

	for (pp = &f->jobs; *pp; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			return;
		}
}

void
sts_fetcher_free(sts_fetcher_t *f)
{
	if (f == NULL)
		return;
	while (f->jobs) {
		struct sts_job *job = f->jobs;

		f->jobs = job->next;
		job_free(job);
	}
	curl_multi_cleanup(f->multi);
	event_free(f->timer);
	free(f);
}

static int
is_ipv6(const char *addr)
{
	return strchr(addr, ':') != NULL;
}

static void
on_setup_failed(evutil_socket_t fd, short what, void *arg)
{
	struct sts_job *job = arg;
	struct sts_fetch_result res;

	(void)fd;
	(void)what;
	memset(&res, 0, sizeof(res));
	res.domain = job->domain;
	res.error = "local error: cannot set up the HTTPS fetch";
	res.local = 1;
	unlink_job(job->fetcher, job);
	job->cb(job->arg, &res);
	job_free(job);
}

uint64_t
sts_fetch(sts_fetcher_t *f, const char *domain, const char *const *addrs,
    size_t naddr, sts_fetch_cb *cb, void *arg)
{
	struct sts_job *job = xcalloc(1, sizeof(*job));
	buf_t *tmp = buf_new(4096);
	size_t i;
	int ok = 1;

	job->id = ++f->next_id;
	job->fetcher = f;
	job->domain = xstrdup(domain);
	job->body = buf_new(STS_POLICY_MAX + 1);
	job->cb = cb;
	job->arg = arg;
	job->easy = curl_easy_init();

	/* Pin the policy host to the addresses our resolver found. */
	buf_printf(tmp, "mta-sts.%s:%ld:", domain, f->port);
	for (i = 0; i < naddr; i++)
		buf_printf(tmp, is_ipv6(addrs[i]) ? "%s[%s]" : "%s%s",
		    i ? "," : "", addrs[i]);
	job->resolve = curl_slist_append(NULL, buf_data(tmp));
	ok &= job->resolve != NULL;
	ok &= curl_easy_setopt(job->easy, CURLOPT_RESOLVE, job->resolve) ==
	      CURLE_OK;
	buf_reset(tmp);
	if (f->port == 443)
		buf_printf(
		    tmp, "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
	else
		buf_printf(tmp,
		    "https://mta-sts.%s:%ld/.well-known/mta-sts.txt", domain,
		    f->port);
	ok &=
	    curl_easy_setopt(job->easy, CURLOPT_URL, buf_data(tmp)) == CURLE_OK;
	buf_free(tmp);

	/* RFC 8461 3.3: HTTPS only, Web PKI, no redirects. */
	ok &= curl_easy_setopt(job->easy, CURLOPT_PROTOCOLS_STR, "https") ==
	      CURLE_OK;
	ok &=
	    curl_easy_setopt(job->easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
	ok &=
	    curl_easy_setopt(job->easy, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
	ok &=
	    curl_easy_setopt(job->easy, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_SSLVERSION,
	          (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
	{
		struct curl_blob blob = {ca_pem, ca_len, CURL_BLOB_NOCOPY};

		/* The bundle from memory; no file or directory is looked
		 * at after the privilege drop. */
		ok &= curl_easy_setopt(job->easy, CURLOPT_CAINFO_BLOB, &blob) ==
		      CURLE_OK;
		ok &= curl_easy_setopt(job->easy, CURLOPT_CAINFO, NULL) ==
		      CURLE_OK;
		ok &= curl_easy_setopt(job->easy, CURLOPT_CAPATH, NULL) ==
		      CURLE_OK;
	}
	ok &= curl_easy_setopt(job->easy, CURLOPT_TIMEOUT, f->timeout) ==
	      CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_CONNECTTIMEOUT, f->timeout) ==
	      CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_PROXY, "") == CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_USERAGENT,
	          "strictmta/" STRICTMTA_VERSION) == CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_WRITEFUNCTION, write_cb) ==
	      CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_WRITEDATA, job) == CURLE_OK;
	ok &= curl_easy_setopt(
	          job->easy, CURLOPT_ERRORBUFFER, job->curl_error) == CURLE_OK;
	ok &= curl_easy_setopt(job->easy, CURLOPT_PRIVATE, job) == CURLE_OK;
	job->next = f->jobs;
	f->jobs = job;
	if (ok && curl_multi_add_handle(f->multi, job->easy) == CURLM_OK)
		return job->id;
	/* A local failure (no memory, an option this libcurl refuses) must
	 * still end in a verdict, from the loop, never from inside this
	 * call: the caller defers policy-bearing mail on this error. */
	job->fail_ev = evtimer_new(f->base, on_setup_failed, job);
	if (job->fail_ev == NULL)
		abort(); /* out of memory: as xmalloc does */
	event_active(job->fail_ev, EV_TIMEOUT, 1);
	return job->id;
}

void
sts_fetch_cancel(sts_fetcher_t *f, uint64_t id)
{
	struct sts_job *job;

	for (job = f->jobs; job; job = job->next)
		if (job->id == id) {
			unlink_job(f, job);
			job_free(job);
			return;
		}
}

/* Curl results that say something about us, not about the policy host. */
static int
local_failure(CURLcode code)
{
	switch (code) {
	case CURLE_FAILED_INIT:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_NOT_BUILT_IN:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return 1;
	default:
		return 0;
	}
}

/* Turns a finished transfer into a result; returns the error or NULL. */
static const char *
judge(struct sts_job *job, CURLcode code, long *status,
    struct sts_policy **policy, buf_t *why)
{
	char *ctype = NULL;
	const char *perr;

	*policy = NULL;
	curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, status);
	if (job->too_big)
		return "policy body larger than 64 KiB";
	if (code != CURLE_OK) {
		buf_printf(why, "fetch failed: %s",
		    job->curl_error[0] ? job->curl_error
		                       : curl_easy_strerror(code));
		return buf_data(why);
	}
	if (*status >= 300 && *status < 400) {
		buf_printf(
		    why, "HTTP %ld redirect refused (RFC 8461 3.3)", *status);
		return buf_data(why);
	}
	if (*status != 200) {
		buf_printf(why, "HTTP status %ld", *status);
		return buf_data(why);
	}
	curl_easy_getinfo(job->easy, CURLINFO_CONTENT_TYPE, &ctype);
	if (ctype == NULL || !sts_content_type_ok(ctype)) {
		buf_printf(why, "media type %s is not text/plain",
		    ctype ? ctype : "(none)");
		return buf_data(why);
	}
	perr =
	    sts_policy_parse(buf_data(job->body), buf_len(job->body), policy);
	if (perr) {
		buf_printf(why, "invalid policy: %s", perr);
		return buf_data(why);
	}
	return NULL;
}

static void
check_done(sts_fetcher_t *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		struct sts_job *job = NULL;
		struct sts_fetch_result res;
		struct sts_policy *policy;
		buf_t *why;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(
		    msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
		why = buf_new(1024);
		memset(&res, 0, sizeof(res));
		res.domain = job->domain;
		res.error = judge(
		    job, msg->data.result, &res.http_status, &policy, why);
		res.local =
		    res.error != NULL && local_failure(msg->data.result);
		res.policy = policy;
		res.body = buf_data(job->body);
		res.len = buf_len(job->body);
		unlink_job(f, job);
		/* Called from curl's socket action, which is itself called
		 * from a libevent callback: calling out here is safe because
		 * the job is already unlinked and the handle is removed
		 * before it is freed. */
		job->cb(job->arg, &res);
		sts_policy_free(policy);
		buf_free(why);
		job_free(job);
	}
}
