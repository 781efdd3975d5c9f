/* test_policy.c - policy_check_rcpt and policy_best_fix, as tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "policy/policy.h"

struct row {
	const char *name;
	struct policy_client client;
	struct rcpt_facts facts;
	enum verdict_kind kind;
	int code;
	const char *enh;
	enum refusal_cause cause;
	const char *reason_has;   /* substring of the reason, or NULL */
	bool hint;                /* a hint is expected */
};

#define MX { false, false, false, 0, -1, false }
#define SUB_ANON { true, false, false, 0, -1, false }
#define SUB_AUTH { true, true, false, 0, -1, false }
#define TRUSTED { false, false, true, 0, -1, false }
#define POP_RECENT { false, false, false, 1800, 600, false }
#define POP_OLD { false, false, false, 1800, 2520, false }

static const struct row table[] = {
	{ "postmaster, local", MX, { "postmaster", "example.test", true, true, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "postmaster, lookup failed", MX, { "postmaster", "example.test", true, true, USER_LOOKUP_FAILED, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "bare postmaster", MX, { "postmaster", "", false, true, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "local found", MX, { "alice", "example.test", true, false, USER_FOUND, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "local found, via a node, home elsewhere", MX, { "alice", "example.test", true, false, USER_FOUND, false, false, 0, 0, 0,
	  true, "node3", "node2" }, VERDICT_PERM, 550, "5.1.1", CAUSE_UNKNOWN_USER, "lives on its home node node3", true },
	{ "local found, via a node, home here", MX, { "alice", "example.test", true, false, USER_FOUND, false, false, 0, 0, 0,
	  true, "node2", "node2" }, VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "local missing", MX, { "bob", "example.test", true, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 550, "5.1.1", CAUSE_UNKNOWN_USER, "no mailbox named \"bob\" here at example.test", true },
	{ "local lookup failed", MX, { "alice", "example.test", true, false, USER_LOOKUP_FAILED, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_TEMP, 451, "4.3.0", CAUSE_LOOKUP_FAILED, "temporary", true },
	{ "remote, mx, anonymous", MX, { "carol", "elsewhere.example", false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 554, "5.7.1", CAUSE_RELAY_NOT_LOGGED_IN, "elsewhere.example is not a domain of this server", true },
	{ "remote, submission, not logged in", SUB_ANON, { "carol", "elsewhere.example", false, false, USER_FOUND, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 554, "5.7.1", CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied", true },
	{ "remote, authenticated", SUB_AUTH, { "carol", "elsewhere.example", false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "remote, trusted network", TRUSTED, { "carol", "elsewhere.example", false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "local, authenticated, missing", SUB_AUTH, { "nobody", "example.test", true, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 550, "5.1.1", CAUSE_UNKNOWN_USER, "nobody", true },
	/* quotas (issue 5) */
	{ "local found, mailbox full", MX, { "alice", "example.test", true, false, USER_FOUND, true, false, 1u << 30, 1u << 30, 0, false, NULL, NULL },
	  VERDICT_TEMP, 452, "4.2.2", CAUSE_MAILBOX_FULL, "mailbox of alice@example.test is full (1.0 GB of 1.0 GB used)", true },
	{ "local found, mailbox full, permanent", MX, { "alice", "example.test", true, false, USER_FOUND, true, true, 5u << 20, 5u << 20, 0, false, NULL, NULL },
	  VERDICT_PERM, 552, "5.2.2", CAUSE_MAILBOX_FULL, "is full", true },
	/* issue 9: the declared SIZE does not fit (64 KiB quota, 10 KiB used, SIZE=262144) */
	{ "declared size does not fit", MX, { "alice", "example.test", true, false, USER_FOUND, true, false, 10240, 65536, 40000, false, NULL, NULL },
	  VERDICT_TEMP, 452, "4.2.2", CAUSE_MAILBOX_FULL, "has 54.0 KB left (10.0 KB of 64.0 KB used), and the message is 39.1 KB", true },
	{ "declared size does not fit, permanent", MX, { "alice", "example.test", true, false, USER_FOUND, true, true, 10240, 65536, 60000, false, NULL, NULL },
	  VERDICT_PERM, 552, "5.2.2", CAUSE_MAILBOX_FULL, "54.0 KB left", true },
	{ "declared size larger than the whole quota", MX, { "alice", "example.test", true, false, USER_FOUND, true, false, 0, 65536, 262144, false, NULL, NULL },
	  VERDICT_PERM, 552, "5.2.2", CAUSE_MAILBOX_FULL, "has 64.0 KB left (0.0 KB of 64.0 KB used), and the message is 256.0 KB", true },
	{ "count limit only", MX, { "alice", "example.test", true, false, USER_FOUND, true, false, 500, 0, 0, false, NULL, NULL },
	  VERDICT_TEMP, 452, "4.2.2", CAUSE_MAILBOX_FULL, "as many messages as it may", true },
	/* POP-before-SMTP */
	{ "remote, POP3 login 10 minutes ago, window 30", POP_RECENT, { "carol", "elsewhere.example", false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, false },
	{ "remote, POP3 login 42 minutes ago, window 30", POP_OLD, { "carol", "elsewhere.example", false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 554, "5.7.1", CAUSE_POP_EXPIRED, "you last checked mail 42 minutes ago", true },
	/* routing tricks in the local part are only local parts */
	{ "percent hack", MX, { "user%other.example", "example.test", true, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 550, "5.1.1", CAUSE_UNKNOWN_USER, "user%other.example", true },
	{ "bang path", MX, { "other.example!user", "example.test", true, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 550, "5.1.1", CAUSE_UNKNOWN_USER, NULL, true },
	/* a very long local part and domain stay within the reason */
	{ "long", MX, { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.test",
	  false, false, USER_MISSING, false, false, 0, 0, 0, false, NULL, NULL },
	  VERDICT_PERM, 554, "5.7.1", CAUSE_RELAY_NOT_LOGGED_IN, NULL, true },
};

static void test_check_rcpt_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct row *r = &table[i];
		struct verdict v;
		memset(&v, 0xa5, sizeof(v));
		policy_check_rcpt(&r->client, &r->facts, &v);
		if (v.kind != r->kind || v.code != r->code || v.cause != r->cause || !v.enh || strcmp(v.enh, r->enh) != 0)
			fail_msg("%s: kind=%d code=%d enh=%s cause=%d", r->name, v.kind, v.code, v.enh ? v.enh : "(null)", v.cause);
		if (memchr(v.reason, '\0', sizeof(v.reason)) == NULL || memchr(v.hint, '\0', sizeof(v.hint)) == NULL)
			fail_msg("%s: unterminated reason or hint", r->name);
		if (r->reason_has && !strstr(v.reason, r->reason_has))
			fail_msg("%s: reason \"%s\" lacks \"%s\"", r->name, v.reason, r->reason_has);
		if (r->hint != (v.hint[0] != '\0'))
			fail_msg("%s: hint \"%s\"", r->name, v.hint);
		if (v.kind != VERDICT_OK && !v.reason[0])
			fail_msg("%s: a refusal without a reason", r->name);
		/* the enhanced code matches the code class */
		assert_int_equal(v.enh[0] - '0', v.code / 100);
		assert_true(strchr(v.reason, '\n') == NULL && strchr(v.hint, '\n') == NULL);
	}
}

/* The end-of-data check (issue 9): refused only when no recipient can take it. */
static void test_message_quota(void **state)
{
	(void)state;
	const struct mailbox_room a_full = { "a@example.test", false, 60 * 1024, 100 * 1024 };
	const struct mailbox_room b_fits = { "b@example.test", true, 10 * 1024, 100 * 1024 };
	const struct mailbox_room c_over = { "c@example.test", false, 120 * 1024, 100 * 1024 };
	const struct mailbox_room d_small = { "d@example.test", false, 0, 10 * 1024 };
	char d[1024];
	struct mailbox_room one[] = { a_full };
	struct message_quota_facts f = { 50 * 1024, one, 1, 0, false };
	assert_int_equal(policy_check_message_quota(&f, d, sizeof(d)), MQ_FULL);
	assert_string_equal(d, "the mailbox of a@example.test has 40.0 KB left (60.0 KB of 100.0 KB used)");
	f.full_is_permanent = true;
	assert_int_equal(policy_check_message_quota(&f, d, sizeof(d)), MQ_FULL_PERMANENT);
	f.n_other = 1;   /* a remote recipient: accepted, a@ bounces at delivery */
	assert_int_equal(policy_check_message_quota(&f, d, sizeof(d)), MQ_ACCEPT);
	struct mailbox_room two[] = { a_full, b_fits };
	struct message_quota_facts g = { 50 * 1024, two, 2, 0, false };
	assert_int_equal(policy_check_message_quota(&g, d, sizeof(d)), MQ_ACCEPT);
	struct mailbox_room none[] = { a_full, c_over, d_small, a_full, a_full };
	struct message_quota_facts h = { 50 * 1024, none, 5, 0, false };
	assert_int_equal(policy_check_message_quota(&h, d, sizeof(d)), MQ_FULL);
	assert_string_equal(d, "no recipient's mailbox has room for it: a@example.test has 40.0 KB left (60.0 KB of 100.0 KB used); "
		"c@example.test is full (120.0 KB of 100.0 KB used); d@example.test has 10.0 KB left (0.0 KB of 10.0 KB used); and 2 more");
	/* larger than every whole quota: never deliverable */
	struct mailbox_room small[] = { d_small };
	struct message_quota_facts k = { 50 * 1024, small, 1, 0, false };
	assert_int_equal(policy_check_message_quota(&k, d, sizeof(d)), MQ_LARGER);
	struct message_quota_facts empty = { 50 * 1024, NULL, 0, 3, false };
	assert_int_equal(policy_check_message_quota(&empty, d, sizeof(d)), MQ_ACCEPT);
	/* a tiny buffer: still terminated */
	char t[8];
	assert_int_equal(policy_check_message_quota(&h, t, sizeof(t)), MQ_FULL);
	assert_non_null(memchr(t, '\0', sizeof(t)));
}

static const struct {
	int causes[4];       /* list ended by CAUSE_NONE */
	const char *has;
} fix_table[] = {
	{ { CAUSE_NONE }, "give at least one recipient" },
	{ { CAUSE_RELAY_NOT_LOGGED_IN }, "requires authentication" },
	{ { CAUSE_UNKNOWN_USER }, "typing mistakes" },
	{ { CAUSE_BAD_ADDRESS }, "not valid mail addresses" },
	{ { CAUSE_NON_ASCII_ADDRESS }, "not valid mail addresses" },
	{ { CAUSE_LOOKUP_FAILED }, "try again" },
	{ { CAUSE_TOO_MANY_RECIPIENTS }, "fewer recipients" },
	/* priorities: relay beats everything, then unknown user, then syntax, then lookup */
	{ { CAUSE_UNKNOWN_USER, CAUSE_RELAY_NOT_LOGGED_IN, CAUSE_BAD_ADDRESS }, "requires authentication" },
	{ { CAUSE_LOOKUP_FAILED, CAUSE_TOO_MANY_RECIPIENTS, CAUSE_RELAY_NOT_LOGGED_IN }, "requires authentication" },
	{ { CAUSE_BAD_ADDRESS, CAUSE_UNKNOWN_USER }, "typing mistakes" },
	{ { CAUSE_LOOKUP_FAILED, CAUSE_UNKNOWN_USER }, "typing mistakes" },
	{ { CAUSE_LOOKUP_FAILED, CAUSE_BAD_ADDRESS }, "not valid mail addresses" },
	{ { CAUSE_TOO_MANY_RECIPIENTS, CAUSE_LOOKUP_FAILED }, "try again" },
	{ { CAUSE_TOO_MANY_RECIPIENTS, CAUSE_NON_ASCII_ADDRESS }, "not valid mail addresses" },
};

static void test_best_fix_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fix_table) / sizeof(fix_table[0]); i++) {
		unsigned counts[CAUSE_COUNT] = { 0 };
		for (size_t k = 0; k < 4 && fix_table[i].causes[k] != CAUSE_NONE; k++)
			counts[fix_table[i].causes[k]] += 3;
		const char *fix = policy_best_fix(counts);
		assert_non_null(fix);
		if (!strstr(fix, fix_table[i].has))
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, fix, fix_table[i].has);
		assert_true(strncmp(fix, "Fix: ", 5) == 0);
	}
}

static void test_cause_names(void **state)
{
	(void)state;
	for (int c = 0; c <= CAUSE_COUNT; c++) {
		const char *n = policy_cause_name((enum refusal_cause)c);
		assert_non_null(n);
		assert_true(n[0] != '\0');
	}
	assert_string_equal(policy_cause_name(CAUSE_RELAY_NOT_LOGGED_IN), "not logged in (relaying denied)");
}

static void test_verdict_set_bounds(void **state)
{
	(void)state;
	char longs[2000];
	memset(longs, 'r', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	struct verdict v;
	verdict_set(&v, VERDICT_PERM, 550, "5.7.1", CAUSE_BAD_ADDRESS, longs, longs);
	assert_int_equal(strlen(v.reason), VERDICT_REASON_MAX - 1);
	assert_int_equal(strlen(v.hint), VERDICT_HINT_MAX - 1);
	verdict_set(&v, VERDICT_OK, 250, "2.1.5", CAUSE_NONE, NULL, NULL);
	assert_string_equal(v.reason, "");
	assert_string_equal(v.hint, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_rcpt_table),
		cmocka_unit_test(test_message_quota),
		cmocka_unit_test(test_best_fix_table),
		cmocka_unit_test(test_cause_names),
		cmocka_unit_test(test_verdict_set_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
