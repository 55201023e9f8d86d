/*
 * metrics_http - see metrics_http.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "daemon_int.h"
#include "metrics_http.h"
#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/metrics.h"
#include "mta/util/workq.h"
#include "mta/util/xalloc.h"

#define METRICS_QUEUE_REFRESH 10 /* seconds between queue walks */
#define METRICS_BODY_MAX (1u << 20)

struct metrics_http {
	daemon_t *d;
	struct evhttp *http;
	workq_t *walker;
	int walking;
	int64_t walked_at; /* 0: never */
	struct queue_stats qs; /* the last walk's, on the loop */
	struct queue_stats next; /* the walk in progress, on the thread */
	int next_ok;
};

static void
walk_work(void *arg)
{
	struct metrics_http *m = arg;

	m->next_ok = queue_stats(m->d->queue, &m->next) == QUEUE_OK;
}

static void
walk_done(void *arg, int cancelled)
{
	struct metrics_http *m = arg;

	m->walking = 0;
	if (cancelled || !m->next_ok)
		return;
	m->qs = m->next;
	m->walked_at = clock_now();
}

static void
maybe_walk(struct metrics_http *m)
{
	if (m->walking || m->walker == NULL || m->d->queue == NULL ||
	    (m->walked_at &&
	        clock_now() - m->walked_at < METRICS_QUEUE_REFRESH))
		return;
	if (workq_submit(m->walker, walk_work, walk_done, m) != NULL)
		m->walking = 1;
}

/* Gauges and counters that other modules keep in their own stats. */
static void
collect(struct metrics_http *m)
{
	struct deliver_stats ds;
	int64_t now = clock_now();
	metrics_family_t *q =
	    metrics_family(METRICS_GAUGE, "strictmta_queue_recipients", "state",
	        "Recipients in the queue by state (last queue walk)");
	metrics_family_t *msgs =
	    metrics_family(METRICS_GAUGE, "strictmta_queue_messages", NULL,
	        "Messages in the queue (last queue walk)");
	metrics_family_t *oldest = metrics_family(METRICS_GAUGE,
	    "strictmta_queue_oldest_message_age_seconds", NULL,
	    "Age of the oldest queued message (last queue walk); 0: empty");
	metrics_family_t *age = metrics_family(METRICS_GAUGE,
	    "strictmta_queue_walk_age_seconds", NULL,
	    "Seconds since the queue figures were taken; -1: not yet");
	metrics_family_t *del = metrics_family(METRICS_COUNTER,
	    "strictmta_delivery_recipients_total", "status",
	    "Recipient outcomes of delivery attempts");
	metrics_family_t *conns = metrics_family(METRICS_GAUGE,
	    "strictmta_delivery_active_connections", NULL,
	    "Delivery connections open now");
	metrics_family_t *up = metrics_family(METRICS_GAUGE,
	    "strictmta_uptime_seconds", NULL, "Seconds since the start");

	metrics_set(q, "pending", (int64_t)m->qs.rcpt_pending);
	metrics_set(q, "deferred", (int64_t)m->qs.rcpt_deferred);
	metrics_set(q, "held", (int64_t)m->qs.rcpt_held);
	metrics_set(msgs, NULL, (int64_t)m->qs.messages);
	metrics_set(oldest, NULL,
	    m->qs.oldest_arrival > 0 && m->qs.messages
	        ? now - m->qs.oldest_arrival
	        : 0);
	metrics_set(age, NULL, m->walked_at ? now - m->walked_at : -1);
	memset(&ds, 0, sizeof(ds));
	if (m->d->deliver)
		deliver_get_stats(m->d->deliver, &ds);
	metrics_set(del, "sent", (int64_t)ds.sent);
	metrics_set(del, "deferred", (int64_t)ds.deferred);
	metrics_set(del, "bounced", (int64_t)ds.bounced);
	metrics_set(del, "expired", (int64_t)ds.expired);
	metrics_set(conns, NULL, ds.active_connections);
	metrics_set(up, NULL, now - m->d->started);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct metrics_http *m = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body;
	buf_t *out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	if (uri == NULL || (strcmp(uri, "/metrics") != 0 &&
	                       strncmp(uri, "/metrics?", 9) != 0)) {
		evhttp_send_error(req, 404, "try /metrics");
		return;
	}
	maybe_walk(m);
	collect(m);
	out = buf_new(METRICS_BODY_MAX);
	metrics_render(out);
	body = evbuffer_new();
	if (body == NULL || buf_error(out)) {
		evhttp_send_error(req, 500, "metrics too large");
	} else {
		evbuffer_add(body, buf_data(out), buf_len(out));
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", body);
	}
	if (body)
		evbuffer_free(body);
	buf_free(out);
}

struct metrics_http *
metrics_http_new(daemon_t *d, buf_t *err)
{
	struct metrics_http *m;
	char host[64];
	unsigned port;
	const char *why;

	if (d->cfg->metrics_listen[0] == '\0')
		return NULL;
	why = metrics_parse_listen(
	    d->cfg->metrics_listen, host, sizeof(host), &port);
	if (why) {
		buf_printf(err, "metrics_listen: %s", why);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->d = d;
	m->http = evhttp_new(d->base);
	if (m->http == NULL ||
	    evhttp_bind_socket(m->http, host, (ev_uint16_t)port) != 0) {
		buf_printf(err, "metrics_listen: %s: cannot listen",
		    d->cfg->metrics_listen);
		metrics_http_free(m);
		return NULL;
	}
	/* Scrapers send small requests; anything larger is not one. */
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
	evhttp_set_gencb(m->http, on_request, m);
	m->walker = workq_new(d->base, 1, 1, err);
	if (m->walker == NULL) {
		metrics_http_free(m);
		return NULL;
	}
	log_info("metrics: listening on %s (/metrics)", d->cfg->metrics_listen);
	return m;
}

void
metrics_http_free(struct metrics_http *m)
{
	if (m == NULL)
		return;
	workq_free(m->walker);
	if (m->http)
		evhttp_free(m->http);
	free(m);
}
