/*
 * metrics - a process-wide registry of low-cardinality counters and
 * gauges, rendered in the Prometheus text format 0.0.4 by the daemon's
 * metrics endpoint (mta/daemon/metrics_http.c, metrics_listen).
 *
 * Any module registers a family once (metrics_family; the same name
 * again returns the same family) and adds to series by label values.
 * Label values come from fixed sets chosen by the code (statuses, TLS
 * levels, result words), never from the network or a domain name: a
 * family holds at most METRICS_SERIES_MAX series and folds any further
 * value into the series "other", so a bug cannot grow it without bound.
 *
 * The hook for later modules (TLS reports, expiring exceptions): register
 * e.g. "strictmta_tlsrpt_reports_total" with label "result" and call
 * metrics_add() where a report is sent or fails; the endpoint shows it
 * with no other change. See docs/metrics.md.
 *
 * Thread-safety: values are atomics, so a worker thread may add; families
 * and series are created under a mutex. Nothing is ever freed before the
 * process exits (the registry is static).
 */
#ifndef STRICTMTA_METRICS_H
#define STRICTMTA_METRICS_H

#include <stdint.h>

#include "mta/util/buf.h"

#define METRICS_FAMILIES_MAX 64
#define METRICS_SERIES_MAX 32
#define METRICS_LABELS_MAX 3

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

typedef struct metrics_family metrics_family_t;

/*
 * name: [a-z_]+ (counters end in _total); labels: NULL, or label names
 * separated by commas ("status,tls_level"); help: one line. Aborts on a
 * malformed name or a full registry (a programming error).
 */
metrics_family_t *metrics_family(
    enum metrics_type, const char *name, const char *labels, const char *help);
/*
 * values: the label values in order, comma-separated ("sent,dane"), NULL
 * for a family without labels. Values outside [a-z0-9_.-] become "other".
 */
void metrics_add(metrics_family_t *, const char *values, uint64_t n);
void metrics_set(metrics_family_t *, const char *values, int64_t v);

/* The whole registry in the text format 0.0.4. */
void metrics_render(buf_t *out);
/* Drops every family (unit tests only). */
void metrics_reset(void);

/*
 * metrics_listen: "127.0.0.1:9100", "[::1]:9100" or "localhost:9100".
 * NULL when the address is a loopback address with a port, else why not.
 * Pure, for config checking and its fuzz target.
 */
const char *metrics_parse_listen(
    const char *s, char *host, unsigned hostlen, unsigned *port);

#endif
