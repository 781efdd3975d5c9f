/* test_metrics.c - util/metrics: the registry's names, counts from several threads,
 * the label bound ("other"), histogram buckets, and the text format 0.0.4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/metrics.h"

static int reset(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Prometheus naming: postern_ prefix, [a-z0-9_], counters end in _total, no counter
 * ends in _total twice, histograms are in seconds or count something (_size). */
static void test_registry_names(void **state)
{
	(void)state;
	for (unsigned m = 0; m < METRIC_COUNT; m++) {
		const struct metric_info *mi = metrics_info(m);
		assert_non_null(mi);
		assert_non_null(mi->name);
		assert_non_null(mi->help);
		assert_true(strncmp(mi->name, "postern_", 8) == 0);
		assert_int_equal(strspn(mi->name, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(mi->name));
		assert_null(strchr(mi->help, '\n'));
		if (mi->type == METRIC_COUNTER)
			assert_true(ends_with(mi->name, "_total"));
		else
			assert_false(ends_with(mi->name, "_total"));
		if (mi->type == METRIC_HISTOGRAM) {
			/* a duration in seconds, or a count per event (no unit: _size) */
			assert_true(ends_with(mi->name, "_seconds") || ends_with(mi->name, "_size"));
			assert_true(mi->n_buckets > 0 && mi->n_buckets <= METRIC_BUCKETS_MAX);
			for (unsigned b = 1; b < mi->n_buckets; b++)
				assert_true(mi->buckets[b] > mi->buckets[b - 1]);
		}
		for (unsigned o = 0; o < m; o++)
			assert_string_not_equal(mi->name, metrics_info(o)->name);
	}
	assert_null(metrics_info(METRIC_COUNT));
}

#define THREADS 4
#define PER_THREAD 100000

static void *count_many(void *arg)
{
	const char *label = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_count(METRIC_HTTP_REQUESTS, "200", 1);
		metrics_count(METRIC_CONNECTIONS, label, 1);
		metrics_observe(METRIC_DNS_DURATION, "MX", 0.003);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[THREADS];
	const char *labels[THREADS] = { "mx", "submission", "mx", "submission" };
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, count_many, (void *)labels[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(metrics_counter_value(METRIC_HTTP_REQUESTS, "200"), THREADS * PER_THREAD);
	assert_int_equal(metrics_counter_value(METRIC_CONNECTIONS, "mx"), 2 * PER_THREAD);
	assert_int_equal(metrics_counter_value(METRIC_CONNECTIONS, "submission"), 2 * PER_THREAD);
	assert_int_equal(metrics_counter_value(METRIC_CONNECTIONS, "pop3"), 0);
	assert_int_equal(metrics_histogram_count(METRIC_DNS_DURATION, "MX"), THREADS * PER_THREAD);
	/* one slot per label even though the threads raced to create it */
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_true(metrics_render(&out));
	const char *first = strstr(buf_cstr(&out), "postern_connections_total{listener=\"mx\"}");
	assert_non_null(first);
	assert_null(strstr(first + 1, "postern_connections_total{listener=\"mx\"}"));
	buf_free(&out);
}

static void test_unlabelled_and_gauges(void **state)
{
	(void)state;
	metrics_gauge_set(METRIC_QUEUE_MESSAGES, NULL, 7);
	metrics_gauge_set(METRIC_QUEUE_MESSAGES, "ignored", 9);
	metrics_gauge_set(METRIC_QUEUE_OLDEST_AGE, NULL, -1);
	assert_int_equal(metrics_gauge_value(METRIC_QUEUE_MESSAGES, NULL), 9);
	assert_int_equal(metrics_gauge_value(METRIC_QUEUE_OLDEST_AGE, NULL), -1);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_true(metrics_render(&out));
	assert_non_null(strstr(buf_cstr(&out), "\npostern_queue_messages 9\n"));
	assert_non_null(strstr(buf_cstr(&out), "\npostern_queue_oldest_message_age_seconds 0\n"));
	/* the age gauge holds a unix time and shows the seconds since */
	metrics_gauge_set(METRIC_QUEUE_OLDEST_AGE, NULL, (int64_t)time(NULL) - 100);
	buf_reset(&out);
	assert_true(metrics_render(&out));
	const char *age = strstr(buf_cstr(&out), "\npostern_queue_oldest_message_age_seconds ");
	assert_non_null(age);
	long seconds = strtol(age + strlen("\npostern_queue_oldest_message_age_seconds "), NULL, 10);
	assert_true(seconds >= 100 && seconds <= 102);
	buf_free(&out);
	metrics_count(METRIC_COUNT, NULL, 1);   /* out of range: ignored */
	metrics_observe(METRIC_CONNECTIONS, "x", 1.0);   /* not a histogram: ignored */
	assert_int_equal(metrics_counter_value(METRIC_CONNECTIONS, "x"), 0);
}

static void test_label_bound(void **state)
{
	(void)state;
	char label[32];
	for (int i = 0; i < METRIC_LABELS_MAX + 10; i++) {
		snprintf(label, sizeof(label), "cause_%d", i);
		metrics_count(METRIC_REFUSALS, label, 1);
	}
	metrics_count(METRIC_REFUSALS, "cause_0", 5);
	assert_int_equal(metrics_counter_value(METRIC_REFUSALS, "cause_0"), 6);
	assert_int_equal(metrics_counter_value(METRIC_REFUSALS, "cause_63"), 1);
	assert_int_equal(metrics_counter_value(METRIC_REFUSALS, "cause_64"), 0);
	assert_int_equal(metrics_counter_value(METRIC_REFUSALS, "other"), 10);
	/* a long label is cut, not refused; NULL counts as "unknown" */
	char longer[200];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	metrics_count(METRIC_TLS_HANDSHAKES, longer, 1);
	metrics_count(METRIC_TLS_HANDSHAKES, NULL, 2);
	longer[METRIC_LABEL_LEN - 1] = '\0';
	assert_int_equal(metrics_counter_value(METRIC_TLS_HANDSHAKES, longer), 1);
	assert_int_equal(metrics_counter_value(METRIC_TLS_HANDSHAKES, "unknown"), 2);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_true(metrics_render(&out));
	assert_non_null(strstr(buf_cstr(&out), "postern_refusals_total{cause=\"other\"} 10\n"));
	assert_null(strstr(buf_cstr(&out), "cause_64"));
	buf_free(&out);
}

static void test_histogram(void **state)
{
	(void)state;
	metrics_observe(METRIC_DELIVERY_LATENCY, "local", 0.05);    /* <= 0.1 */
	metrics_observe(METRIC_DELIVERY_LATENCY, "local", 0.1);     /* le is inclusive */
	metrics_observe(METRIC_DELIVERY_LATENCY, "local", 2);       /* <= 2.5 */
	metrics_observe(METRIC_DELIVERY_LATENCY, "local", 1e6);     /* +Inf only */
	metrics_observe(METRIC_DELIVERY_LATENCY, "local", -3);      /* counts as 0 */
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_true(metrics_render(&out));
	const char *t = buf_cstr(&out);
	assert_non_null(strstr(t, "# TYPE postern_delivery_latency_seconds histogram\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_bucket{route=\"local\",le=\"0.1\"} 3\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_bucket{route=\"local\",le=\"1\"} 3\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_bucket{route=\"local\",le=\"2.5\"} 4\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_bucket{route=\"local\",le=\"86400\"} 4\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_bucket{route=\"local\",le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_sum{route=\"local\"} 1000002.15\n"));
	assert_non_null(strstr(t, "postern_delivery_latency_seconds_count{route=\"local\"} 5\n"));
	buf_free(&out);
}

static void test_render_format(void **state)
{
	(void)state;
	metrics_count(METRIC_CONNECTIONS, "we\"ird\\name\nx", 2);
	metrics_count(METRIC_CONNECTIONS, "mx", 1);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_true(metrics_render(&out));
	const char *t = buf_cstr(&out);
	assert_true(strncmp(t, "# HELP postern_connections_total Connections accepted, by listener.\n"
		"# TYPE postern_connections_total counter\n", 100) == 0);
	assert_non_null(strstr(t, "postern_connections_total{listener=\"we\\\"ird\\\\name\\nx\"} 2\n"));
	assert_non_null(strstr(t, "postern_connections_total{listener=\"mx\"} 1\n"));
	/* label-less metrics always have their one sample; labelled ones only once counted */
	assert_non_null(strstr(t, "\npostern_queue_messages 0\n"));
	assert_non_null(strstr(t, "# TYPE postern_queue_oldest_message_age_seconds gauge\n"));
	assert_null(strstr(t, "postern_logins_total{"));
	for (unsigned m = 0; m < METRIC_COUNT; m++) {
		char line[160];
		snprintf(line, sizeof(line), "# TYPE %s ", metrics_info(m)->name);
		assert_non_null(strstr(t, line));
	}
	assert_true(t[out.len - 1] == '\n');
	buf_free(&out);
	/* a bound too small is reported, never overrun */
	buf_init(&out, 100);
	assert_false(metrics_render(&out));
	assert_true(out.len <= 100);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_names),
		cmocka_unit_test_setup(test_threads, reset),
		cmocka_unit_test_setup(test_unlabelled_and_gauges, reset),
		cmocka_unit_test_setup(test_label_bound, reset),
		cmocka_unit_test_setup(test_histogram, reset),
		cmocka_unit_test_setup(test_render_format, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
