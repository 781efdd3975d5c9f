/* test_state_feed.c - applying other nodes' rows (serve/state_feed.h state_feed_apply):
 * failures spread over nodes add up to one block, with the rows' own times (a block
 * that began elsewhere ends when it ends there); rows too old to matter are ignored;
 * an unblock lifts a block that was built from rows; successes make a pair known
 * across nodes; sent mail counts into the limits' windows with its time, and a count
 * older than a ring's buckets does not wipe newer ones; POP3 logins reach the hook; the
 * feed's escaping of client-typed names reads back unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "auth/throttle.h"
#include "policy/policy.h"
#include "serve/state_feed.h"

static const struct throttle_limits defaults = {
	.pair_limit = 5, .ip_accounts = 5, .ip_failures = 50, .account_delay_after = 3, .max_delay_ms = 5000,
	.window = 900, .block = 900, .known_for = 7 * 86400, .max_entries = 1024,
};

static const char office[] = "198.51.100.20";

static struct state_targets targets_for(struct throttle *t)
{
	return (struct state_targets){ .throttle = t, .auth_window = 900, .auth_block = 900, .auth_known_for = 7 * 86400 };
}

static struct dir_state_row row(enum dir_state_kind kind, long long at, const char *ip, const char *account)
{
	struct dir_state_row r = { .kind = kind, .at = at };
	snprintf(r.ip, sizeof(r.ip), "%s", ip);
	snprintf(r.account, sizeof(r.account), "%s", account);
	return r;
}

/* Ten failures to ten accounts, a few here and the rest from two other nodes: the
 * address is blocked here as if all had been seen here. */
static void test_failures_from_other_nodes_block_here(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	struct state_targets tg = targets_for(t);
	time_t now = 2000000;
	char acct[64];
	for (int i = 0; i < 10; i++) {
		snprintf(acct, sizeof(acct), "user%d@example.test", i);
		if (i % 3 == 0) {
			throttle_failure(t, office, acct, now - 10 + i);   /* counted here */
		} else {
			struct dir_state_row r = row(DIR_STATE_LOGIN_FAILED, now - 10 + i, office, acct);
			assert_true(state_feed_apply(&tg, &r, now));
		}
	}
	struct throttle_verdict v = throttle_check(t, office, "carol@example.test", now);
	assert_int_equal(v.block, THROTTLE_ADDRESS);
	/* The block began with the fifth failure (at now - 6, applied from a row): it ends
	 * [auth] block after that, as on the node that counted it. */
	assert_int_equal(v.until, now - 6 + 900);
	struct throttle_block_info b[4];
	assert_int_equal(throttle_blocks(t, now, b, 4), 1);
	assert_string_equal(b[0].ip, office);
	/* Another address is not touched. */
	assert_int_equal(throttle_check(t, "203.0.113.9", "carol@example.test", now).block, THROTTLE_OPEN);
	throttle_free(&t);
}

/* Rows older than the window (a node that was cut off, a catch-up) count nothing; a row
 * from far in the future (a wrong clock) neither. */
static void test_stale_rows_are_ignored(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	struct state_targets tg = targets_for(t);
	time_t now = 2000000;
	char acct[64];
	for (int i = 0; i < 10; i++) {
		snprintf(acct, sizeof(acct), "user%d@example.test", i);
		struct dir_state_row r = row(DIR_STATE_LOGIN_FAILED, now - 901 - i, office, acct);
		assert_false(state_feed_apply(&tg, &r, now));
	}
	struct dir_state_row future = row(DIR_STATE_LOGIN_FAILED, now + 3600, office, "x@example.test");
	assert_false(state_feed_apply(&tg, &future, now));
	assert_int_equal(throttle_check(t, office, "carol@example.test", now).block, THROTTLE_OPEN);
	assert_int_equal(throttle_entries(t), 0);
	throttle_free(&t);
}

/* A pair blocked by failures on two nodes; an unblock from a third lifts it. */
static void test_unblock_row_lifts_a_block(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	struct state_targets tg = targets_for(t);
	time_t now = 2000000;
	for (int i = 0; i < 5; i++) {
		struct dir_state_row r = row(DIR_STATE_LOGIN_FAILED, now - 5 + i, office, "bob@example.test");
		if (i < 2)
			throttle_failure(t, office, "bob@example.test", (time_t)r.at);
		else
			assert_true(state_feed_apply(&tg, &r, now));
	}
	assert_int_equal(throttle_check(t, office, "Bob@Example.test", now).block, THROTTLE_ACCOUNT);
	struct dir_state_row u = row(DIR_STATE_UNBLOCK, now, "", "bob@example.test");
	assert_true(state_feed_apply(&tg, &u, now + 1));
	assert_int_equal(throttle_check(t, office, "bob@example.test", now + 1).block, THROTTLE_OPEN);
	/* An old unblock (longer ago than any block lasts) lifts nothing new. */
	for (int i = 0; i < 5; i++)
		throttle_failure(t, office, "bob@example.test", now + 2 + i);
	struct dir_state_row old = row(DIR_STATE_UNBLOCK, now - 1000, "", "bob@example.test");
	assert_false(state_feed_apply(&tg, &old, now + 10));
	assert_int_equal(throttle_check(t, office, "bob@example.test", now + 10).block, THROTTLE_ACCOUNT);
	throttle_free(&t);
}

/* A colleague's success on another node keeps her open here when the address is
 * blocked for spraying; a failure row with an older time does not move times back. */
static void test_success_row_makes_the_pair_known(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	struct state_targets tg = targets_for(t);
	time_t now = 2000000;
	struct dir_state_row ok = row(DIR_STATE_LOGIN_OK, now - 100, office, "dora@example.test");
	assert_true(state_feed_apply(&tg, &ok, now));
	char acct[64];
	for (int i = 0; i < 5; i++) {
		snprintf(acct, sizeof(acct), "spray%d@example.test", i);
		throttle_failure(t, office, acct, now + i);
	}
	struct dir_state_row late = row(DIR_STATE_LOGIN_FAILED, now - 50, office, "spray9@example.test");
	assert_true(state_feed_apply(&tg, &late, now + 5));
	assert_int_equal(throttle_check(t, office, "eve@example.test", now + 5).block, THROTTLE_ADDRESS);
	assert_int_equal(throttle_check(t, office, "dora@example.test", now + 5).block, THROTTLE_OPEN);
	/* The address's block still ends 900 s after it began here, not earlier. */
	assert_int_equal(throttle_check(t, office, "eve@example.test", now + 4 + 899).block, THROTTLE_ADDRESS);
	throttle_free(&t);
}

/* Sent mail from two nodes adds up in this node's windows; a row from before the state
 * file's save is not counted twice; a row older than the minute ring leaves the current
 * hour's count alone. */
static void test_sent_rows_count_in_the_windows(void **state)
{
	(void)state;
	struct policy_limits *l = policy_limits_new(100);
	struct state_targets tg = { .counts = l, .counts_since = 1000 };
	long long now = 5000000;
	policy_limits_count(l, "alice@example.test", "example.test", 1, now - 30);   /* here */
	struct dir_state_row r = { .kind = DIR_STATE_SENT, .at = now - 20, .n = 3 };
	snprintf(r.account, sizeof(r.account), "alice@example.test");
	snprintf(r.domain, sizeof(r.domain), "example.test");
	assert_true(state_feed_apply(&tg, &r, (time_t)now));
	r.at = now - 10;
	assert_true(state_feed_apply(&tg, &r, (time_t)now));
	struct limit_usage u;
	policy_limits_usage(l, LIMIT_ACCOUNT, "alice@example.test", now, 3, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 3);
	assert_int_equal(u.recipients_day, 7);
	assert_true(u.messages_resume > now);   /* 3 of 3 an hour: the next one waits */
	/* Already in limits.state. */
	r.at = 900;
	assert_false(state_feed_apply(&tg, &r, (time_t)now));
	/* Two hours old: the day's window takes it, the hour's does not lose its counts. */
	r.at = now - 7200;
	assert_true(state_feed_apply(&tg, &r, (time_t)now));
	policy_limits_usage(l, LIMIT_ACCOUNT, "alice@example.test", now, 3, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 3);
	assert_int_equal(u.recipients_day, 10);
	policy_limits_usage(l, LIMIT_DOMAIN, "example.test", now, 3, 100, 1, 10.0, &u);
	assert_int_equal(u.messages_hour, 3);
	policy_limits_free(&l);
}

static char pop_ip[64];
static time_t pop_at;

static void pop_hook(void *arg, const char *ip, time_t at)
{
	(void)arg;
	snprintf(pop_ip, sizeof(pop_ip), "%s", ip);
	pop_at = at;
}

static void test_pop_login_rows_reach_the_hook(void **state)
{
	(void)state;
	struct state_targets tg = { .pop_login = pop_hook, .pop_window = 600 };
	struct dir_state_row r = row(DIR_STATE_POP_LOGIN, 1000, "192.0.2.7", "");
	assert_true(state_feed_apply(&tg, &r, 1100));
	assert_string_equal(pop_ip, "192.0.2.7");
	assert_int_equal(pop_at, 1000);
	r.at = 400;   /* its window is over */
	assert_false(state_feed_apply(&tg, &r, 1100));
	tg.pop_window = 0;   /* POP-before-SMTP off here */
	r.at = 1000;
	assert_false(state_feed_apply(&tg, &r, 1100));
	/* The retention covers the longest window, at most a day. */
	struct state_targets all = { .pop_login = pop_hook, .pop_window = 600, .auth_window = 900, .auth_block = 1800,
		.auth_known_for = 7 * 86400 };
	assert_int_equal(state_feed_retention(&all), 86400);
	all.auth_known_for = 0;
	assert_int_equal(state_feed_retention(&all), 1800);
}

static void test_names_escape_and_read_back(void **state)
{
	(void)state;
	const char *names[] = { "alice@example.test", "J\xc3\xb6rg 100%@b\xff.test\n", "a b", "%41", "" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char esc[DIR_STATE_NAME_MAX * 3], back[DIR_STATE_NAME_MAX];
		assert_true(directory_state_escape(names[i], esc, sizeof(esc)));
		assert_null(strpbrk(esc, " \n\r\t"));
		assert_true(directory_state_unescape(esc, back, sizeof(back)));
		assert_string_equal(back, names[i]);
	}
	char out[8];
	assert_false(directory_state_escape("0123456789", out, sizeof(out)));
	assert_false(directory_state_unescape("%0", out, sizeof(out)));
	assert_false(directory_state_unescape("%00", out, sizeof(out)));
	assert_false(directory_state_unescape("%zz", out, sizeof(out)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failures_from_other_nodes_block_here),
		cmocka_unit_test(test_stale_rows_are_ignored),
		cmocka_unit_test(test_unblock_row_lifts_a_block),
		cmocka_unit_test(test_success_row_makes_the_pair_known),
		cmocka_unit_test(test_sent_rows_count_in_the_windows),
		cmocka_unit_test(test_pop_login_rows_reach_the_hook),
		cmocka_unit_test(test_names_escape_and_read_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
