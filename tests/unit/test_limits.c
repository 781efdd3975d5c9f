/* test_limits.c - the outbound limits' arithmetic (policy/limits_window.c): sliding
 * windows, the time sending resumes, the burst baseline; the counters (limits.c) and
 * their state file surviving a save and a load; the words of a refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"

#define T0 1764590400LL   /* 2025-12-01 12:00:00 UTC: a whole hour */

static void test_window_sum_slides(void **state)
{
	(void)state;
	struct limit_bucket m[60] = { 0 };
	for (int i = 0; i < 10; i++)
		limit_window_add(m, 60, 60, T0 + i * 60, 1);   /* one a minute, 12:00..12:09 */
	assert_int_equal(limit_window_sum(m, 60, 60, T0 + 9 * 60), 10);
	/* At 12:59:59 all ten are in the last hour; at 13:00 the 12:00 one has left. */
	assert_int_equal(limit_window_sum(m, 60, 60, T0 + 3599), 10);
	assert_int_equal(limit_window_sum(m, 60, 60, T0 + 3600), 9);
	assert_int_equal(limit_window_sum(m, 60, 60, T0 + 3600 + 9 * 60), 0);
	/* A bucket of an earlier turn of the ring is not counted when its slot is reused. */
	limit_window_add(m, 60, 60, T0 + 3600, 5);
	assert_int_equal(limit_window_sum(m, 60, 60, T0 + 3600), 14);
	/* A clock gone back does not count the future buckets. */
	assert_int_equal(limit_window_sum(m, 60, 60, T0 - 7200), 0);
}

static void test_window_resume(void **state)
{
	(void)state;
	struct limit_bucket m[60] = { 0 };
	limit_window_add(m, 60, 60, T0, 3);             /* 12:00 */
	limit_window_add(m, 60, 60, T0 + 10 * 60, 2);   /* 12:10 */
	long long now = T0 + 20 * 60;
	/* Limit 5, five sent: one more fits when the 12:00 bucket leaves, at 13:00. */
	assert_int_equal(limit_window_resume(m, 60, 60, now, 5, 1), T0 + 3600);
	/* Limit 3 with four more wanted: both buckets must go, at 13:10. */
	assert_int_equal(limit_window_resume(m, 60, 60, now, 3, 3), T0 + 3600 + 600);
	/* Room already: now. */
	assert_int_equal(limit_window_resume(m, 60, 60, now, 10, 1), now);
	/* More wanted than the limit at all: never. */
	assert_int_equal(limit_window_resume(m, 60, 60, now, 3, 4), -1);
	/* Hours of a day: a bucket of 12:00 leaves at 12:00 the next day. */
	struct limit_bucket h[24] = { 0 };
	limit_window_add(h, 24, 3600, T0 + 1800, 7);
	assert_int_equal(limit_window_resume(h, 24, 3600, T0 + 7200, 7, 1), T0 + 86400);
}

static void test_baseline(void **state)
{
	(void)state;
	struct limit_bucket d[8] = { 0 };
	long long today = T0 - 12 * 3600;   /* 2025-12-01 00:00 */
	/* New today: the floor. */
	assert_true(limit_window_hourly_baseline(d, 8, T0, T0 - 3600, 10.0) == 10.0);
	/* 480 messages on each of the 7 days before: 20 an hour. */
	for (int i = 1; i <= 7; i++)
		limit_window_add(d, 8, 86400, today - i * 86400 + 100, 480);
	limit_window_add(d, 8, 86400, T0, 1000);   /* today's mail is not the usual */
	double b = limit_window_hourly_baseline(d, 8, T0, today - 30 * 86400, 10.0);
	assert_true(b > 19.99 && b < 20.01);
	/* Known for two days only: their 960 messages over 48 hours. */
	b = limit_window_hourly_baseline(d, 8, T0, today - 2 * 86400, 10.0);
	assert_true(b > 19.99 && b < 20.01);
	/* A quiet account: the floor. */
	struct limit_bucket q[8] = { 0 };
	limit_window_add(q, 8, 86400, today - 86400, 24);
	assert_true(limit_window_hourly_baseline(q, 8, T0, today - 5 * 86400, 10.0) == 10.0);
}

static void test_counters_and_state_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_limits.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/limits.state", dir);
	long long now = (long long)time(NULL);
	struct policy_limits *l = policy_limits_new(100);
	assert_non_null(l);
	for (int i = 0; i < 4; i++)
		policy_limits_count(l, "alice@example.test", "example.test", 3, now);
	policy_limits_count(l, "", "example.test", 2, now);   /* a trusted network: the domain only */
	struct limit_usage u;
	policy_limits_usage(l, LIMIT_ACCOUNT, "alice@example.test", now, 4, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 4);
	assert_int_equal(u.recipients_day, 12);
	assert_true(u.messages_resume > now && u.messages_resume <= now + 3600);
	policy_limits_usage(l, LIMIT_DOMAIN, "example.test", now, 4, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 5);
	assert_int_equal(u.recipients_day, 14);
	assert_true(policy_limits_notice_due(l, LIMIT_ACCOUNT, "alice@example.test", LIMIT_NOTICE_REACHED, now));
	assert_false(policy_limits_notice_due(l, LIMIT_ACCOUNT, "alice@example.test", LIMIT_NOTICE_REACHED, now));
	char err[256];
	assert_true(policy_limits_save(l, path, now, err, sizeof(err)));
	policy_limits_free(&l);
	/* A new process: the same counts and the notice already sent today. */
	l = policy_limits_new(100);
	size_t skipped = 9;
	assert_true(policy_limits_load(l, path, now, &skipped, err, sizeof(err)));
	assert_int_equal(skipped, 0);
	policy_limits_usage(l, LIMIT_ACCOUNT, "alice@example.test", now, 4, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 4);
	assert_int_equal(u.recipients_day, 12);
	assert_false(policy_limits_notice_due(l, LIMIT_ACCOUNT, "alice@example.test", LIMIT_NOTICE_REACHED, now));
	assert_true(policy_limits_notice_due(l, LIMIT_ACCOUNT, "alice@example.test", LIMIT_NOTICE_REACHED, now + 86400));
	policy_limits_free(&l);
	/* A damaged line is skipped, the rest read. */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "postern-limits 1\na bob@example.test 1 0 0 M x:y\nd example.org %lld 0 0 M %lld:7\n", now,
		now / 60);
	fclose(fp);
	l = policy_limits_new(100);
	assert_true(policy_limits_load(l, path, now, &skipped, err, sizeof(err)));
	assert_int_equal(skipped, 1);
	policy_limits_usage(l, LIMIT_DOMAIN, "example.org", now, 4, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 7);
	policy_limits_free(&l);
	/* Not a state file: refused with words, nothing read. */
	fp = fopen(path, "w");
	fprintf(fp, "hello\n");
	fclose(fp);
	l = policy_limits_new(100);
	assert_false(policy_limits_load(l, path, now, &skipped, err, sizeof(err)));
	assert_non_null(strstr(err, "not a limits state file"));
	policy_limits_free(&l);
	unlink(path);
	rmdir(dir);
}

static void test_table_bound(void **state)
{
	(void)state;
	long long now = T0;
	struct policy_limits *l = policy_limits_new(3);
	policy_limits_count(l, "a@x.test", "x.test", 1, now);
	policy_limits_count(l, "b@x.test", "", 1, now);
	policy_limits_count(l, "c@x.test", "", 1, now);   /* full: not counted */
	struct limit_usage u;
	policy_limits_usage(l, LIMIT_ACCOUNT, "c@x.test", now, 1, 1, 1, 1.0, &u);
	assert_int_equal(u.messages_hour, 0);
	/* Eight days later every entry is idle and makes room. */
	policy_limits_count(l, "c@x.test", "", 1, now + 8 * 86400);
	policy_limits_usage(l, LIMIT_ACCOUNT, "c@x.test", now + 8 * 86400, 1, 1, 1, 1.0, &u);
	assert_int_equal(u.messages_hour, 1);
	policy_limits_free(&l);
}

static void test_words(void **state)
{
	(void)state;
	struct verdict v;
	long long now = T0 + 30 * 60;   /* 12:30 */
	policy_limit_verdict(LIMIT_ACCOUNT, "alice@example.test", true, false, 500, 500, 0, T0 + 42 * 60, now, &v);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, "4.7.1");
	assert_int_equal(v.cause, CAUSE_SENDING_LIMIT);
	assert_string_equal(v.reason, "You have sent 500 messages in the last hour; the limit for your account is 500 per hour.");
	assert_string_equal(v.hint, "Sending resumes at 12:42 UTC (in 12 minutes). If you need a higher limit, ask your "
		"administrator (postern user limit).");
	policy_limit_verdict(LIMIT_DOMAIN, "example.test", false, false, 20, 18, 2, T0 + 86400, now, &v);
	assert_non_null(strstr(v.reason, "Your domain example.test has sent to 18 recipients in the last 24 hours, and "
		"this message has 2 more; the limit for the domain is 20 recipients per day."));
	assert_non_null(strstr(v.hint, "12:00 UTC (in 23 h 30 min)"));
	assert_non_null(strstr(v.hint, "domain_recipients_per_day"));
	policy_limit_verdict(LIMIT_ACCOUNT, "a@b", false, true, 5, 0, 5, -1, now, &v);
	assert_non_null(strstr(v.reason, "the limit set for your account is 5 recipients per day"));
	assert_non_null(strstr(v.hint, "cannot take more recipients"));
}

static void test_sending_domain(void **state)
{
	(void)state;
	char d[256];
	policy_limits_sending_domain("alice@example.test", "Other.Example", d, sizeof(d));
	assert_string_equal(d, "other.example");
	policy_limits_sending_domain("alice@example.test", "", d, sizeof(d));   /* <> */
	assert_string_equal(d, "example.test");
	policy_limits_sending_domain("", "", d, sizeof(d));
	assert_string_equal(d, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_sum_slides),
		cmocka_unit_test(test_window_resume),
		cmocka_unit_test(test_baseline),
		cmocka_unit_test(test_counters_and_state_file),
		cmocka_unit_test(test_table_bound),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_sending_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
