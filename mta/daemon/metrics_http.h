/*
 * metrics_http - the Prometheus endpoint (metrics_listen): libevent's
 * evhttp on the daemon's event loop, GET /metrics answers the registry
 * (mta/util/metrics.h) in the text format 0.0.4.
 *
 * Queue sizes come from queue_stats() run on a worker thread at most
 * every METRICS_QUEUE_REFRESH seconds, never from a walk on the loop: a
 * scrape shows the last completed walk and its age.
 *
 * Ownership: the daemon's (daemon_int.h: d->metrics); bound before the
 * privilege drop like the SMTP listeners, freed before the queue closes.
 */
#ifndef STRICTMTA_METRICS_HTTP_H
#define STRICTMTA_METRICS_HTTP_H

#include "mta/util/buf.h"

struct daemon;
struct metrics_http;

/* NULL without error when metrics_listen is empty; NULL with err set when
 * it cannot listen. */
struct metrics_http *metrics_http_new(struct daemon *, buf_t *err);
void metrics_http_free(struct metrics_http *); /* NULL no-op */

#endif
