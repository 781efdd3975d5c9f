/* metrics.h - the server's counters, gauges and histograms, for GET /metrics.
 *
 * One registry of every metric Postern exports (name, help, type, label name, the
 * histogram buckets), kept in util/ so that every room can count where its feature
 * runs without knowing who reads the numbers.  Counting is cheap enough for hot
 * paths: a metric without a label is one atomic add (C11 <stdatomic.h>, no lock); a
 * labelled one first finds its label among at most METRIC_LABELS_MAX values (a scan
 * of short strings; a new value takes a lock once), and every value past the bound
 * counts under the label "other", so a metric never grows without limit.
 *
 * The names follow the Prometheus conventions (https://prometheus.io/docs/practices/
 * naming/): postern_ prefix, _total for counters, base units (seconds, bytes) in the
 * name.  metrics_render writes text exposition format 0.0.4. */
#ifndef POSTERN_UTIL_METRICS_H
#define POSTERN_UTIL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct buf;

enum metric_id {
	METRIC_CONNECTIONS,         /* postern_connections_total{listener} */
	METRIC_MESSAGES_RECEIVED,   /* postern_messages_received_total{listener} */
	METRIC_MESSAGES_QUEUED,     /* postern_messages_queued_total{listener} */
	METRIC_DELIVERED,           /* postern_recipients_delivered_total{route} */
	METRIC_DEFERRED,            /* postern_recipients_deferred_total{route} */
	METRIC_BOUNCED,             /* postern_recipients_bounced_total{route} */
	METRIC_REFUSALS,            /* postern_refusals_total{cause} */
	METRIC_QUEUE_MESSAGES,      /* postern_queue_messages */
	METRIC_QUEUE_OLDEST_AGE,    /* postern_queue_oldest_message_age_seconds: set to the oldest
	                               message's arrival (unix time, 0: none); rendered as its age */
	METRIC_DELIVERY_LATENCY,    /* postern_delivery_latency_seconds{route} */
	METRIC_LOGINS,              /* postern_logins_total{result} */
	METRIC_TLS_HANDSHAKES,      /* postern_tls_handshakes_total{version} */
	METRIC_DNS_DURATION,        /* postern_dns_lookup_duration_seconds{type} */
	METRIC_MILTER_DURATION,     /* postern_milter_duration_seconds{filter} */
	METRIC_HTTP_REQUESTS,       /* postern_http_requests_total{status} */
	METRIC_EVENTS_DROPPED,      /* postern_events_dropped_total: event records not stored (events/) */
	METRIC_FSYNCS,              /* postern_fsyncs_total: fileio_fsync_count(), read at scrape time */
	METRIC_COMMIT_BATCH_SIZE,   /* postern_commit_batch_size: messages made durable per fsync of active/ */
	METRIC_DELIVERY_CONNECTIONS, /* postern_delivery_connections_total{result}: outbound SMTP connections
	                               used for a message, result new (connected) or reused (from the cache) */
	METRIC_COUNT
};

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRIC_LABELS_MAX  64   /* distinct label values per metric; then "other" */
#define METRIC_LABEL_LEN   64   /* bytes of a label value kept (with the NUL) */
#define METRIC_BUCKETS_MAX 16   /* finite histogram buckets (+Inf is implied) */

struct metric_info {
	const char *name;           /* postern_..._total */
	const char *help;           /* one line */
	enum metric_type type;
	const char *label;          /* the label's name, NULL when the metric has none */
	const double *buckets;      /* histograms: upper bounds, increasing, in seconds */
	unsigned n_buckets;
	bool age;                   /* gauge: the value set is a unix time, rendered as the seconds
	                               since then (so it never goes stale between updates) */
};

const struct metric_info *metrics_info(enum metric_id m);

/* Add n to a counter.  label: NULL for a metric without a label; for a labelled one
 * a value from a bounded set (a listener name, a cause id), cut at METRIC_LABEL_LEN-1
 * bytes.  Thread-safe, never blocks on a label already seen. */
void metrics_count(enum metric_id m, const char *label, uint64_t n);
void metrics_gauge_set(enum metric_id m, const char *label, int64_t v);
/* One observation of a histogram, in seconds (negative or NaN counts as 0); a histogram
 * of a count (postern_commit_batch_size) observes the count itself. */
void metrics_observe(enum metric_id m, const char *label, double seconds);

/* A monotonic clock in seconds, for timings: t0 = metrics_now(); ...;
 * metrics_observe(M, label, metrics_now() - t0). */
double metrics_now(void);

/* The current values (tests, and whoever wants a number without a scrape); 0 for a
 * label never counted. */
uint64_t metrics_counter_value(enum metric_id m, const char *label);
int64_t metrics_gauge_value(enum metric_id m, const char *label);
uint64_t metrics_histogram_count(enum metric_id m, const char *label);

/* The whole registry in Prometheus text format 0.0.4 (# HELP, # TYPE, samples;
 * histograms as _bucket{le=...}, _sum, _count), appended to out.  False when out's
 * bound cut it. */
bool metrics_render(struct buf *out);

/* Zero every value and forget the label values (unit tests only: not thread-safe). */
void metrics_reset(void);

#endif
