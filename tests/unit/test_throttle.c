/* test_throttle.c - login failure counters: blocks per address and per pair,
 * never per account alone; delays; forgetting; bounded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "auth/throttle.h"

static const struct throttle_limits lim = {
	.ip_limit = 5, .pair_limit = 3, .account_delay_after = 3, .max_delay_ms = 4000,
	.window = 600, .block = 900, .max_entries = 1000,
};

static void test_pair_block_spares_other_address(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&lim);
	time_t now = 1000000;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "alice@example.test", now), 0);
		throttle_failure(t, "192.0.2.1", "alice@example.test", now);
	}
	assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "alice@example.test", now), now + 900);
	/* The account is not locked: another address logs in. */
	assert_int_equal(throttle_blocked_until(t, "198.51.100.7", "alice@example.test", now), 0);
	/* The same address may still try another account (the pair is blocked, not the IP yet). */
	assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "bob@example.test", now), 0);
	/* The block ends. */
	assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "alice@example.test", now + 901), 0);
	throttle_free(&t);
	assert_null(t);
}

static void test_ip_block(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&lim);
	time_t now = 5000;
	char user[64];
	for (int i = 0; i < 5; i++) {
		snprintf(user, sizeof(user), "user%d@example.test", i);
		throttle_failure(t, "192.0.2.9", user, now);
	}
	assert_int_equal(throttle_blocked_until(t, "192.0.2.9", NULL, now), now + 900);
	assert_int_equal(throttle_blocked_until(t, "192.0.2.9", "new@example.test", now), now + 900);
	assert_int_equal(throttle_blocked_until(t, "192.0.2.10", NULL, now), 0);
	throttle_free(&t);
}

static void test_window_forgets(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&lim);
	throttle_failure(t, "192.0.2.1", "a@example.test", 100);
	throttle_failure(t, "192.0.2.1", "a@example.test", 101);
	/* Long after the window: the count starts again, so two more do not block. */
	throttle_failure(t, "192.0.2.1", "a@example.test", 2000);
	throttle_failure(t, "192.0.2.1", "a@example.test", 2001);
	assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "a@example.test", 2002), 0);
	throttle_free(&t);
}

static void test_success_clears_pair(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&lim);
	throttle_failure(t, "192.0.2.1", "a@example.test", 100);
	throttle_failure(t, "192.0.2.1", "a@example.test", 101);
	throttle_success(t, "192.0.2.1", "a@example.test");
	throttle_failure(t, "192.0.2.1", "a@example.test", 102);
	assert_int_equal(throttle_blocked_until(t, "192.0.2.1", "a@example.test", 103), 0);
	throttle_free(&t);
}

static void test_account_delay_grows_and_caps(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&lim);
	char ip[32];
	unsigned last = 0;
	for (int i = 0; i < 12; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);   /* distributed guessing */
		unsigned d = throttle_failure(t, ip, "ceo@example.test", 100);
		if (i < 3)
			assert_int_equal(d, 0);
		else
			assert_true(d >= last);
		assert_true(d <= 4000);
		last = d;
	}
	assert_int_equal(last, 4000);
	/* Still no block for a new address. */
	assert_int_equal(throttle_blocked_until(t, "198.51.100.1", "ceo@example.test", 100), 0);
	throttle_free(&t);
}

static void test_bounded_table(void **state)
{
	(void)state;
	struct throttle_limits small = lim;
	small.max_entries = 10;
	struct throttle *t = throttle_new(&small);
	char ip[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		throttle_failure(t, ip, NULL, 100);
	}
	throttle_free(&t);   /* ASan checks nothing leaked or overflowed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_block_spares_other_address),
		cmocka_unit_test(test_ip_block),
		cmocka_unit_test(test_window_forgets),
		cmocka_unit_test(test_success_clears_pair),
		cmocka_unit_test(test_account_delay_grows_and_caps),
		cmocka_unit_test(test_bounded_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
