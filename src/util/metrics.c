/* metrics.c - the registry of Postern's metrics, their atomic values and the
 * Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Storage is static: every metric has METRIC_LABELS_MAX slots for label values and one
 * more for "other".  A label-less metric uses slot 0.  A slot's label is written once,
 * under the insert lock, before the slot count that publishes it is stored with release
 * order, so readers scan the published slots without a lock.  Histogram buckets are kept
 * per bucket (not cumulative) and summed when rendered; the sum of observations is kept
 * in nanoseconds so that it is one atomic add as well. */
#include "util/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/fileio.h"

static const double latency_buckets[] = { 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400 };
static const double dns_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double milter_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
static const double batch_buckets[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };
#define BUCKETS(a) a, (unsigned)(sizeof(a) / sizeof(a[0]))

static const struct metric_info registry[METRIC_COUNT] = {
	[METRIC_CONNECTIONS] = { "postern_connections_total",
		"Connections accepted, by listener.", METRIC_COUNTER, "listener", NULL, 0, false },
	[METRIC_MESSAGES_RECEIVED] = { "postern_messages_received_total",
		"Messages whose data arrived complete (end of DATA or the last BDAT), before any check of the message, by listener.",
		METRIC_COUNTER, "listener", NULL, 0, false },
	[METRIC_MESSAGES_QUEUED] = { "postern_messages_queued_total",
		"Messages committed to the queue and answered 250, by listener.", METRIC_COUNTER, "listener", NULL, 0, false },
	[METRIC_DELIVERED] = { "postern_recipients_delivered_total",
		"Recipients delivered (route local: into a mailbox; remote: accepted by the next server).",
		METRIC_COUNTER, "route", NULL, 0, false },
	[METRIC_DEFERRED] = { "postern_recipients_deferred_total",
		"Delivery attempts for a recipient that failed temporarily and will be retried.", METRIC_COUNTER, "route", NULL, 0, false },
	[METRIC_BOUNCED] = { "postern_recipients_bounced_total",
		"Recipients that failed for good (permanent refusal or expired in the queue): the sender gets a bounce.",
		METRIC_COUNTER, "route", NULL, 0, false },
	[METRIC_REFUSALS] = { "postern_refusals_total",
		"SMTP refusals sent to clients, by cause id (the ids of postern explain).", METRIC_COUNTER, "cause", NULL, 0, false },
	[METRIC_QUEUE_MESSAGES] = { "postern_queue_messages",
		"Messages in the queue waiting for delivery of at least one recipient.", METRIC_GAUGE, NULL, NULL, 0, false },
	[METRIC_QUEUE_OLDEST_AGE] = { "postern_queue_oldest_message_age_seconds",
		"Age of the oldest message in the queue (0 when the queue is empty).", METRIC_GAUGE, NULL, NULL, 0, true },
	[METRIC_DELIVERY_LATENCY] = { "postern_delivery_latency_seconds",
		"Time from a message's arrival to a recipient's delivery.", METRIC_HISTOGRAM, "route", BUCKETS(latency_buckets), false },
	[METRIC_LOGINS] = { "postern_logins_total",
		"Login attempts (SMTP AUTH, POP3), by result: success, failure (wrong user or password), tempfail (directory unavailable), throttled (refused before the check).", METRIC_COUNTER, "result", NULL, 0, false },
	[METRIC_TLS_HANDSHAKES] = { "postern_tls_handshakes_total",
		"TLS handshakes completed by clients, by protocol version.", METRIC_COUNTER, "version", NULL, 0, false },
	[METRIC_DNS_DURATION] = { "postern_dns_lookup_duration_seconds",
		"DNS lookups, by record type, from question to answer or time-out.", METRIC_HISTOGRAM, "type", BUCKETS(dns_buckets), false },
	[METRIC_MILTER_DURATION] = { "postern_milter_duration_seconds",
		"Milter conversations steps, by filter, from command to reply.", METRIC_HISTOGRAM, "filter", BUCKETS(milter_buckets), false },
	[METRIC_HTTP_REQUESTS] = { "postern_http_requests_total",
		"HTTP requests answered, by status code.", METRIC_COUNTER, "status", NULL, 0, false },
	[METRIC_EVENTS_DROPPED] = { "postern_events_dropped_total",
		"Event records (My outgoing mail, refusal statistics) not stored: the queue to the events writer was full or the disk refused them.",
		METRIC_COUNTER, NULL, NULL, 0, false },
	[METRIC_FSYNCS] = { "postern_fsyncs_total",
		"fsync and fdatasync calls made by the server (files and directories, every room), successful or not.",
		METRIC_COUNTER, NULL, NULL, 0, false },
	[METRIC_COMMIT_BATCH_SIZE] = { "postern_commit_batch_size",
		"Accepted messages made durable by one fsync of the queue's active/ directory (group commit).",
		METRIC_HISTOGRAM, NULL, BUCKETS(batch_buckets), false },
	[METRIC_DELIVERY_CONNECTIONS] = { "postern_delivery_connections_total",
		"Outbound SMTP connections used for a message, by result: new (connected for it) or reused (an idle connection from the connection cache that carried it).",
		METRIC_COUNTER, "result", NULL, 0, false },
};

/* Counters kept by their owner and read when rendered (no slot): fileio counts every
 * fsync itself, so the metric can never miss one.  NULL for every other metric. */
static uint64_t (*owner_counter(enum metric_id m))(void)
{
	return m == METRIC_FSYNCS ? fileio_fsync_count : NULL;
}

struct metric_slot {
	char label[METRIC_LABEL_LEN];
	_Atomic uint64_t counts[METRIC_BUCKETS_MAX + 1];   /* counter: [0]; histogram: per bucket, then +Inf */
	_Atomic uint64_t sum_ns;                           /* histogram */
	_Atomic int64_t gauge;
	atomic_bool used;                                  /* the "other" slot: something counted there */
};

struct metric_state {
	atomic_uint n_labels;                              /* published slots */
	struct metric_slot slots[METRIC_LABELS_MAX + 1];   /* the last is "other" */
};

static struct metric_state states[METRIC_COUNT];
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;

const struct metric_info *metrics_info(enum metric_id m)
{
	return m < METRIC_COUNT ? &registry[m] : NULL;
}

static void label_key(char key[METRIC_LABEL_LEN], const char *label)
{
	snprintf(key, METRIC_LABEL_LEN, "%s", label && *label ? label : "unknown");
}

static struct metric_slot *find_slot(struct metric_state *st, const char *key, unsigned from, unsigned n)
{
	for (unsigned i = from; i < n; i++)
		if (strcmp(st->slots[i].label, key) == 0)
			return &st->slots[i];
	return NULL;
}

/* The slot for a label; create: take a new one (or "other") when it is not there yet. */
static struct metric_slot *slot_for(enum metric_id m, const char *label, bool create)
{
	if (m >= METRIC_COUNT)
		return NULL;
	struct metric_state *st = &states[m];
	if (!registry[m].label)
		return &st->slots[0];
	char key[METRIC_LABEL_LEN];
	label_key(key, label);
	unsigned n = atomic_load_explicit(&st->n_labels, memory_order_acquire);
	struct metric_slot *s = find_slot(st, key, 0, n);
	if (s || !create)
		return s ? s : (strcmp(key, "other") == 0 ? &st->slots[METRIC_LABELS_MAX] : NULL);
	pthread_mutex_lock(&insert_lock);
	unsigned now = atomic_load_explicit(&st->n_labels, memory_order_relaxed);
	s = find_slot(st, key, n, now);
	if (!s && now < METRIC_LABELS_MAX && strcmp(key, "other") != 0) {
		s = &st->slots[now];
		memcpy(s->label, key, sizeof(s->label));
		atomic_store_explicit(&st->n_labels, now + 1, memory_order_release);
	}
	pthread_mutex_unlock(&insert_lock);
	if (!s) {
		s = &st->slots[METRIC_LABELS_MAX];
		atomic_store_explicit(&s->used, true, memory_order_relaxed);
	}
	return s;
}

void metrics_count(enum metric_id m, const char *label, uint64_t n)
{
	struct metric_slot *s = slot_for(m, label, true);
	if (s)
		atomic_fetch_add_explicit(&s->counts[0], n, memory_order_relaxed);
}

void metrics_gauge_set(enum metric_id m, const char *label, int64_t v)
{
	struct metric_slot *s = slot_for(m, label, true);
	if (s)
		atomic_store_explicit(&s->gauge, v, memory_order_relaxed);
}

void metrics_observe(enum metric_id m, const char *label, double seconds)
{
	if (m >= METRIC_COUNT || registry[m].type != METRIC_HISTOGRAM)
		return;
	struct metric_slot *s = slot_for(m, label, true);
	if (!s)
		return;
	if (!(seconds > 0))   /* negative, zero or NaN */
		seconds = 0;
	const struct metric_info *mi = &registry[m];
	unsigned b = 0;
	while (b < mi->n_buckets && seconds > mi->buckets[b])
		b++;
	atomic_fetch_add_explicit(&s->counts[b], 1, memory_order_relaxed);
	double ns = seconds * 1e9;
	atomic_fetch_add_explicit(&s->sum_ns, ns < 1.8e19 ? (uint64_t)ns : UINT64_C(18000000000000000000),
		memory_order_relaxed);
}

double metrics_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t metrics_counter_value(enum metric_id m, const char *label)
{
	if (owner_counter(m))
		return owner_counter(m)();
	struct metric_slot *s = slot_for(m, label, false);
	return s ? atomic_load(&s->counts[0]) : 0;
}

int64_t metrics_gauge_value(enum metric_id m, const char *label)
{
	struct metric_slot *s = slot_for(m, label, false);
	return s ? atomic_load(&s->gauge) : 0;
}

static uint64_t slot_total(const struct metric_info *mi, struct metric_slot *s)
{
	uint64_t total = 0;
	for (unsigned b = 0; b <= mi->n_buckets; b++)
		total += atomic_load_explicit(&s->counts[b], memory_order_relaxed);
	return total;
}

uint64_t metrics_histogram_count(enum metric_id m, const char *label)
{
	struct metric_slot *s = slot_for(m, label, false);
	return s && registry[m].type == METRIC_HISTOGRAM ? slot_total(&registry[m], s) : 0;
}

/* HELP text: backslash and line feed escaped (format 0.0.4). */
static void append_help(struct buf *out, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			buf_appends(out, "\\\\");
		else if (*p == '\n')
			buf_appends(out, "\\n");
		else
			buf_appendc(out, *p);
	}
}

/* `name="value"`: backslash, double quote and line feed escaped (format 0.0.4). */
static void append_label(struct buf *out, const char *name, const char *value)
{
	buf_printf(out, "%s=\"", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"') {
			buf_appendc(out, '\\');
			buf_appendc(out, *p);
		} else if (*p == '\n')
			buf_appends(out, "\\n");
		else
			buf_appendc(out, *p);
	}
	buf_appendc(out, '"');
}

/* `name{label="v"}` or `name` (suffix: "_bucket", "_sum", ...), le: a bucket's bound. */
static void append_series(struct buf *out, const struct metric_info *mi, const char *suffix, const char *value,
	const char *le)
{
	buf_appends(out, mi->name);
	buf_appends(out, suffix);
	if (!mi->label && !le)
		return;
	buf_appendc(out, '{');
	if (mi->label)
		append_label(out, mi->label, value);
	if (mi->label && le)
		buf_appendc(out, ',');
	if (le)
		append_label(out, "le", le);
	buf_appendc(out, '}');
}

static void render_histogram(struct buf *out, const struct metric_info *mi, struct metric_slot *s, const char *value)
{
	uint64_t cumulative = 0;
	char le[32];
	for (unsigned b = 0; b <= mi->n_buckets; b++) {
		cumulative += atomic_load_explicit(&s->counts[b], memory_order_relaxed);
		if (b < mi->n_buckets)
			snprintf(le, sizeof(le), "%g", mi->buckets[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		append_series(out, mi, "_bucket", value, le);
		buf_printf(out, " %" PRIu64 "\n", cumulative);
	}
	append_series(out, mi, "_sum", value, NULL);
	buf_printf(out, " %.9g\n", (double)atomic_load_explicit(&s->sum_ns, memory_order_relaxed) / 1e9);
	append_series(out, mi, "_count", value, NULL);
	buf_printf(out, " %" PRIu64 "\n", cumulative);
}

static void render_slot(struct buf *out, const struct metric_info *mi, struct metric_slot *s, const char *value)
{
	if (mi->type == METRIC_HISTOGRAM) {
		render_histogram(out, mi, s, value);
		return;
	}
	append_series(out, mi, "", value, NULL);
	int64_t v = atomic_load_explicit(&s->gauge, memory_order_relaxed);
	if (mi->age) {
		time_t now = time(NULL);
		v = v > 0 && now > v ? (int64_t)now - v : 0;
	}
	if (mi->type == METRIC_GAUGE)
		buf_printf(out, " %" PRId64 "\n", v);
	else if (owner_counter((enum metric_id)(mi - registry)))
		buf_printf(out, " %" PRIu64 "\n", owner_counter((enum metric_id)(mi - registry))());
	else
		buf_printf(out, " %" PRIu64 "\n", atomic_load_explicit(&s->counts[0], memory_order_relaxed));
}

bool metrics_render(struct buf *out)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	for (unsigned m = 0; m < METRIC_COUNT; m++) {
		const struct metric_info *mi = &registry[m];
		struct metric_state *st = &states[m];
		buf_printf(out, "# HELP %s ", mi->name);
		append_help(out, mi->help);
		buf_printf(out, "\n# TYPE %s %s\n", mi->name, type_names[mi->type]);
		if (!mi->label) {
			render_slot(out, mi, &st->slots[0], NULL);
			continue;
		}
		unsigned n = atomic_load_explicit(&st->n_labels, memory_order_acquire);
		for (unsigned i = 0; i < n; i++)
			render_slot(out, mi, &st->slots[i], st->slots[i].label);
		if (atomic_load_explicit(&st->slots[METRIC_LABELS_MAX].used, memory_order_relaxed))
			render_slot(out, mi, &st->slots[METRIC_LABELS_MAX], "other");
	}
	return !out->truncated;
}

void metrics_reset(void)
{
	pthread_mutex_lock(&insert_lock);
	memset(states, 0, sizeof(states));
	pthread_mutex_unlock(&insert_lock);
}
