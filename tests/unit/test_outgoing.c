/* test_outgoing.c - web/outgoing.c's grouping of an account's event records for "My
 * outgoing mail": a message's records (one qid) become one item whose state is its
 * worst recipient's newest event, a refusal without a qid is an item of its own, the
 * order stays newest first, a delay notice is noted, and the bounds hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "web/user.h"

static struct events_record rec(long long id, enum events_kind k, const char *qid, const char *rcpt)
{
	struct events_record r;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.when = 1000 + id;
	r.kind = k;
	snprintf(r.qid, sizeof(r.qid), "%s", qid);
	snprintf(r.rcpt, sizeof(r.rcpt), "%s", rcpt);
	return r;
}

static void test_messages_and_refusals(void **state)
{
	(void)state;
	/* newest first, as events_list returns them */
	struct events_record r[] = {
		rec(9, EVENTS_BOUNCED, "A", "x@remote.example"),
		rec(8, EVENTS_REFUSED, "", "nobody@example.test"),
		rec(7, EVENTS_DELIVERED, "B", "y@remote.example"),
		rec(6, EVENTS_DEFERRED, "A", "x@remote.example"),
		rec(5, EVENTS_DELIVERED, "A", "z@remote.example"),
		rec(4, EVENTS_QUEUED, "B", ""),
		rec(3, EVENTS_QUEUED, "A", ""),
		rec(2, EVENTS_REFUSED, "", "friend@other.example"),
	};
	struct outgoing_item it[8];
	size_t n = outgoing_group(r, 8, it, 8);
	assert_int_equal(n, 4);
	assert_string_equal(it[0].qid, "A");
	assert_int_equal(it[0].state, OUT_RETURNED);        /* one recipient returned, one delivered */
	assert_int_equal(it[0].n_rcpts, 2);
	assert_ptr_equal(it[0].queued, &r[6]);
	assert_int_equal(it[0].rcpts[0].state, OUT_RETURNED);   /* the bounce is newer than the deferral */
	assert_ptr_equal(it[0].rcpts[0].last, &r[0]);
	assert_int_equal(it[0].n_events, 4);
	assert_int_equal(it[1].state, OUT_REFUSED);
	assert_string_equal(it[1].qid, "");
	assert_ptr_equal(it[1].head, &r[1]);
	assert_string_equal(it[2].qid, "B");
	assert_int_equal(it[2].state, OUT_DELIVERED);
	assert_int_equal(it[3].state, OUT_REFUSED);
	assert_string_equal(outgoing_state_name(it[0].state), "returned");
}

static void test_waiting_with_delay_notice_and_queued_only(void **state)
{
	(void)state;
	struct events_record r[] = {
		rec(5, EVENTS_DELAY_NOTICE, "C", "x@slow.example"),
		rec(4, EVENTS_DEFERRED, "C", "x@slow.example"),
		rec(3, EVENTS_QUEUED, "C", ""),
		rec(2, EVENTS_QUEUED, "D", ""),
	};
	r[1].next_try = 5000;
	struct outgoing_item it[4];
	assert_int_equal(outgoing_group(r, 4, it, 4), 2);
	assert_int_equal(it[0].state, OUT_WAITING);
	assert_true(it[0].rcpts[0].delay_notice);
	assert_ptr_equal(it[0].rcpts[0].last, &r[1]);
	assert_int_equal(it[1].state, OUT_QUEUED);           /* accepted, nothing tried yet */
	assert_int_equal(it[1].n_rcpts, 0);
}

static void test_held_and_bounds(void **state)
{
	(void)state;
	static struct events_record r[OUTGOING_RCPTS_MAX + 10];
	size_t n = 0;
	r[n++] = rec(100, EVENTS_HELD, "E", "");
	for (int i = 0; i < OUTGOING_RCPTS_MAX + 5; i++) {
		char a[64];
		snprintf(a, sizeof(a), "r%d@remote.example", i);
		r[n++] = rec(99 - i, EVENTS_DEFERRED, "E", a);
	}
	struct outgoing_item it[2];
	assert_int_equal(outgoing_group(r, n, it, 2), 1);
	assert_int_equal(it[0].state, OUT_HELD);             /* the administrator's hold is the newest */
	assert_int_equal(it[0].n_rcpts, OUTGOING_RCPTS_MAX); /* the rest are counted, not listed */
	struct events_record three[] = { rec(3, EVENTS_REFUSED, "", "a"), rec(2, EVENTS_REFUSED, "", "b"),
		rec(1, EVENTS_REFUSED, "", "c") };
	assert_int_equal(outgoing_group(three, 3, it, 2), 2);   /* max items */
	assert_int_equal(outgoing_group(three, 0, it, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages_and_refusals),
		cmocka_unit_test(test_waiting_with_delay_notice_and_queued_only),
		cmocka_unit_test(test_held_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
