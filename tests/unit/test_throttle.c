/* test_throttle.c - the login throttle's policy (auth/throttle.h): an office behind
 * one address is never locked out by its stale devices; spraying from one address is
 * stopped; accounts that logged in from the address stay open; per-account delays;
 * forgetting; fixed memory with eviction; the admin's list of running blocks and
 * unblock, bounded, from several threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/throttle.h"

/* The shipped defaults (src/conf/conf.c [auth]). */
static const struct throttle_limits defaults = {
	.pair_limit = 5, .ip_accounts = 5, .ip_failures = 50, .account_delay_after = 3, .max_delay_ms = 5000,
	.window = 900, .block = 900, .known_for = 7 * 86400, .max_entries = 16384,
};

static const char office[] = "198.51.100.20";

static enum throttle_block block_of(struct throttle *t, const char *ip, const char *account, time_t now)
{
	return throttle_check(t, ip, account, now).block;
}

/* The report: three devices with stale saved passwords (4 + 4 + 2 failures) locked
 * out a fourth colleague who never failed.  Now nobody is blocked, and a device that
 * keeps failing blocks only its own account. */
static void test_office_stale_devices_block_only_their_account(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	assert_non_null(t);
	time_t now = 1000000;
	const char *stale[] = { "anna@example.test", "ben@example.test", "carl@example.test" };
	const int fails[] = { 4, 4, 2 };
	for (int d = 0; d < 3; d++)
		for (int i = 0; i < fails[d]; i++) {
			assert_int_equal(block_of(t, office, stale[d], now), THROTTLE_OPEN);
			throttle_failure(t, office, stale[d], now++);
		}
	/* The fourth colleague, who never failed (and never logged in before). */
	assert_int_equal(block_of(t, office, "dora@example.test", now), THROTTLE_OPEN);
	/* Anna's phone goes on failing: her account from here is blocked, told so. */
	throttle_failure(t, office, "anna@example.test", now);
	struct throttle_verdict v = throttle_check(t, office, "anna@example.test", now);
	assert_int_equal(v.block, THROTTLE_ACCOUNT);
	assert_int_equal(v.until, now + 900);
	/* Accounts compare case-insensitively: the device typing "Anna@" is the same pair. */
	assert_int_equal(block_of(t, office, "ANNA@example.test", now), THROTTLE_ACCOUNT);
	/* Nobody else is blocked, not even the other stale devices, nor Anna elsewhere. */
	assert_int_equal(block_of(t, office, "dora@example.test", now), THROTTLE_OPEN);
	assert_int_equal(block_of(t, office, "ben@example.test", now), THROTTLE_OPEN);
	assert_int_equal(block_of(t, "203.0.113.5", "anna@example.test", now), THROTTLE_OPEN);
	/* The block ends. */
	assert_int_equal(block_of(t, office, "anna@example.test", now + 901), THROTTLE_OPEN);
	throttle_free(&t);
	assert_null(t);
}

/* One address trying many distinct (or non-existent) accounts is stopped for every
 * account that has not logged in from there. */
static void test_spraying_blocks_the_address(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	time_t now = 5000;
	char user[64];
	for (int i = 0; i < 5; i++) {
		snprintf(user, sizeof(user), "nosuch%d@example.test", i);
		assert_int_equal(block_of(t, "192.0.2.9", user, now), THROTTLE_OPEN);
		throttle_failure(t, "192.0.2.9", user, now);
	}
	struct throttle_verdict v = throttle_check(t, "192.0.2.9", "new@example.test", now);
	assert_int_equal(v.block, THROTTLE_ADDRESS);
	assert_int_equal(v.until, now + 900);
	/* A sprayed account itself is blocked as part of the address (its own failures: 1). */
	assert_int_equal(block_of(t, "192.0.2.9", "nosuch0@example.test", now), THROTTLE_ADDRESS);
	/* Without a user name yet, no decision (it depends on the account). */
	assert_int_equal(block_of(t, "192.0.2.9", NULL, now), THROTTLE_OPEN);
	/* Other addresses are not affected. */
	assert_int_equal(block_of(t, "192.0.2.10", "new@example.test", now), THROTTLE_OPEN);
	assert_int_equal(block_of(t, "192.0.2.9", "new@example.test", now + 901), THROTTLE_OPEN);
	throttle_free(&t);
}

/* The same account failing over and over is one account, not spraying. */
static void test_one_account_repeating_is_not_spraying(void **state)
{
	(void)state;
	struct throttle_limits l = defaults;
	l.pair_limit = 100;
	struct throttle *t = throttle_new(&l);
	for (int i = 0; i < 40; i++)
		throttle_failure(t, office, "anna@example.test", 100 + i);
	assert_int_equal(block_of(t, office, "ben@example.test", 200), THROTTLE_OPEN);
	/* ... but the all-accounts ceiling (ip_failures) still stops an endless stream. */
	for (int i = 0; i < 10; i++)
		throttle_failure(t, office, "anna@example.test", 200 + i);
	assert_int_equal(block_of(t, office, "ben@example.test", 210), THROTTLE_ADDRESS);
	throttle_free(&t);
}

/* An account that logged in successfully from the address recently is not blocked by
 * other accounts' failures from it; the pair block still applies to it. */
static void test_success_exempts_from_address_block(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	time_t now = 100000;
	throttle_success(t, office, "dora@example.test", now - 3600);   /* her laptop, an hour ago */
	char user[64];
	for (int i = 0; i < 8; i++) {
		snprintf(user, sizeof(user), "guess%d@example.test", i);
		throttle_failure(t, office, user, now);
	}
	assert_int_equal(block_of(t, office, "erik@example.test", now), THROTTLE_ADDRESS);
	assert_int_equal(block_of(t, office, "Dora@Example.test", now), THROTTLE_OPEN);
	/* Long ago is not recently. */
	throttle_success(t, office, "fred@example.test", now - 8 * 86400);
	assert_int_equal(block_of(t, office, "fred@example.test", now), THROTTLE_ADDRESS);
	/* Her own failures still block her own pair. */
	for (int i = 0; i < 5; i++)
		throttle_failure(t, office, "dora@example.test", now);
	assert_int_equal(block_of(t, office, "dora@example.test", now), THROTTLE_ACCOUNT);
	throttle_free(&t);
}

/* A typo followed by a success is not one of the address's failing accounts. */
static void test_success_forgets_failures(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	char user[64];
	for (int i = 0; i < 4; i++) {
		snprintf(user, sizeof(user), "u%d@example.test", i);
		throttle_failure(t, office, user, 100);
		throttle_failure(t, office, user, 100);
		throttle_success(t, office, user, 101);
	}
	throttle_failure(t, office, "u9@example.test", 102);
	assert_int_equal(block_of(t, office, "new@example.test", 102), THROTTLE_OPEN);
	/* and the pair's count starts again */
	for (int i = 0; i < 4; i++)
		throttle_failure(t, office, "u0@example.test", 103);
	assert_int_equal(block_of(t, office, "u0@example.test", 103), THROTTLE_OPEN);
	throttle_free(&t);
}

static void test_window_forgets(void **state)
{
	(void)state;
	struct throttle_limits l = defaults;
	l.pair_limit = 3;
	l.window = 600;
	struct throttle *t = throttle_new(&l);
	throttle_failure(t, "192.0.2.1", "a@example.test", 100);
	throttle_failure(t, "192.0.2.1", "a@example.test", 101);
	/* Long after the window: the count starts again, so two more do not block. */
	throttle_failure(t, "192.0.2.1", "a@example.test", 2000);
	throttle_failure(t, "192.0.2.1", "a@example.test", 2001);
	assert_int_equal(block_of(t, "192.0.2.1", "a@example.test", 2002), THROTTLE_OPEN);
	throttle_failure(t, "192.0.2.1", "a@example.test", 2003);
	assert_int_equal(block_of(t, "192.0.2.1", "a@example.test", 2004), THROTTLE_ACCOUNT);
	throttle_free(&t);
}

static void test_account_delay_grows_and_caps(void **state)
{
	(void)state;
	struct throttle_limits l = defaults;
	l.max_delay_ms = 4000;
	struct throttle *t = throttle_new(&l);
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
	assert_int_equal(block_of(t, "198.51.100.1", "ceo@example.test", 100), THROTTLE_OPEN);
	throttle_free(&t);
}

/* Memory is fixed: 1000 addresses through 16-slot tables never hold more than the
 * slots; a full set evicts entries whose window ran out first, then live ones, and a
 * running block last, so a flood from many addresses cannot wash a block away. */
static void test_table_eviction(void **state)
{
	(void)state;
	struct throttle_limits small = defaults;
	small.max_entries = 16;
	struct throttle *t = throttle_new(&small);
	char ip[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		throttle_failure(t, ip, "x@example.test", 100 + i);
		assert_true(throttle_entries(t) <= 4 * 16);
	}
	throttle_free(&t);
	t = throttle_new(&small);
	for (int i = 0; i < 5; i++)
		throttle_failure(t, office, "anna@example.test", 10);
	for (int i = 0; i < 64; i++) {   /* old, soon expired entries */
		snprintf(ip, sizeof(ip), "10.1.0.%d", i);
		throttle_failure(t, ip, "old@example.test", 1);
	}
	assert_int_equal(block_of(t, office, "anna@example.test", 20), THROTTLE_ACCOUNT);
	for (int i = 0; i < 64; i++) {   /* after the old ones' window: they make room, then evict each other */
		snprintf(ip, sizeof(ip), "10.2.0.%d", i);
		throttle_failure(t, ip, "new@example.test", 905);
	}
	assert_int_equal(block_of(t, office, "anna@example.test", 906), THROTTLE_ACCOUNT);
	assert_true(throttle_entries(t) <= 4 * 16);
	throttle_free(&t);
}

/* The administrator's list names each running block; unblocking an account or an
 * address lifts exactly its blocks and forgets their failures. */
static void test_blocks_listed_and_unblocked(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	time_t now = 100000;
	struct throttle_block_info b[8];
	assert_int_equal(throttle_blocks(t, now, b, 8), 0);
	for (int i = 0; i < 5; i++)
		throttle_failure(t, office, "Anna@example.test", now);
	char user[64];
	for (int i = 0; i < 5; i++) {
		snprintf(user, sizeof(user), "guess%d@example.test", i);
		throttle_failure(t, "192.0.2.66", user, now + 10);
	}
	size_t n = throttle_blocks(t, now + 20, b, 8);
	assert_int_equal(n, 2);
	/* newest first: the sprayer */
	assert_int_equal(b[0].kind, THROTTLE_ADDRESS);
	assert_string_equal(b[0].ip, "192.0.2.66");
	assert_string_equal(b[0].account, "");
	assert_int_equal(b[0].until, now + 10 + 900);
	assert_int_equal(b[1].kind, THROTTLE_ACCOUNT);
	assert_string_equal(b[1].ip, office);
	assert_string_equal(b[1].account, "Anna@example.test");
	assert_int_equal(b[1].failures, 5);
	/* max bounds what is written */
	assert_int_equal(throttle_blocks(t, now + 20, b, 1), 1);
	/* the account (any case) */
	assert_int_equal(throttle_unblock(t, "anna@EXAMPLE.test", now + 30), 1);
	assert_int_equal(block_of(t, office, "anna@example.test", now + 30), THROTTLE_OPEN);
	/* her failures are forgotten: one more does not block again */
	throttle_failure(t, office, "anna@example.test", now + 31);
	assert_int_equal(block_of(t, office, "anna@example.test", now + 31), THROTTLE_OPEN);
	assert_int_equal(throttle_unblock(t, "anna@example.test", now + 32), 0);
	/* the address */
	assert_int_equal(block_of(t, "192.0.2.66", "new@example.test", now + 40), THROTTLE_ADDRESS);
	assert_int_equal(throttle_unblock(t, "192.0.2.66", now + 40), 1);
	assert_int_equal(block_of(t, "192.0.2.66", "new@example.test", now + 40), THROTTLE_OPEN);
	assert_int_equal(throttle_blocks(t, now + 40, b, 8), 0);
	assert_int_equal(throttle_unblock(t, "", now), 0);
	throttle_free(&t);
}

/* A block that ends, or whose window ran out, is no longer listed. */
static void test_ended_blocks_not_listed(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	time_t now = 200000;
	for (int i = 0; i < 5; i++)
		throttle_failure(t, office, "ben@example.test", now);
	struct throttle_block_info b[4];
	assert_int_equal(throttle_blocks(t, now + 899, b, 4), 1);
	assert_int_equal(throttle_blocks(t, now + 900, b, 4), 0);
	throttle_free(&t);
}

/* More blocks than rows: the list stays bounded (THROTTLE_BLOCKS_MAX), the blocks
 * still hold, and an address whose row was given up can still be unblocked. */
static void test_block_names_bounded(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	time_t now = 300000;
	char ip[64], user[64];
	for (int a = 0; a < THROTTLE_BLOCKS_MAX + 20; a++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", a / 250, a % 250);
		for (int i = 0; i < 5; i++) {
			snprintf(user, sizeof(user), "u%d@example.test", i);
			throttle_failure(t, ip, user, now + a);
		}
	}
	static struct throttle_block_info b[THROTTLE_BLOCKS_MAX + 50];
	assert_int_equal(throttle_blocks(t, now + 400, b, THROTTLE_BLOCKS_MAX + 50), THROTTLE_BLOCKS_MAX);
	assert_int_equal(block_of(t, "10.0.0.0", "x@example.test", now + 400), THROTTLE_ADDRESS);   /* row given up */
	assert_int_equal(throttle_unblock(t, "10.0.0.0", now + 400), 1);
	assert_int_equal(block_of(t, "10.0.0.0", "x@example.test", now + 400), THROTTLE_OPEN);
	throttle_free(&t);
}

struct hammer { struct throttle *t; int id; };

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	char ip[32], user[32];
	struct throttle_block_info b[16];
	for (int i = 0; i < 2000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", h->id, i % 7);
		snprintf(user, sizeof(user), "u%d@example.test", i % 11);
		throttle_failure(h->t, ip, user, 1000 + i / 100);
		throttle_check(h->t, ip, user, 1000 + i / 100);
		if (i % 50 == 0) {
			throttle_blocks(h->t, 1000 + i / 100, b, 16);
			throttle_unblock(h->t, ip, 1000 + i / 100);
		}
	}
	return NULL;
}

/* Login threads, the web site and the control socket at once (run under TSan/ASan). */
static void test_threads(void **state)
{
	(void)state;
	struct throttle *t = throttle_new(&defaults);
	pthread_t th[4];
	struct hammer h[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ t, i };
		assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_true(throttle_entries(t) > 0);
	throttle_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_office_stale_devices_block_only_their_account),
		cmocka_unit_test(test_spraying_blocks_the_address),
		cmocka_unit_test(test_one_account_repeating_is_not_spraying),
		cmocka_unit_test(test_success_exempts_from_address_block),
		cmocka_unit_test(test_success_forgets_failures),
		cmocka_unit_test(test_window_forgets),
		cmocka_unit_test(test_account_delay_grows_and_caps),
		cmocka_unit_test(test_table_eviction),
		cmocka_unit_test(test_blocks_listed_and_unblocked),
		cmocka_unit_test(test_ended_blocks_not_listed),
		cmocka_unit_test(test_block_names_bounded),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
