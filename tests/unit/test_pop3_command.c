/* test_pop3_command.c - the POP3 command line parser as a table: keyword, arguments,
 * the raw rest (PASS), bad bytes, and message numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pop3/command.h"

struct row {
	const char *line;
	enum pop3_command_status status;
	enum pop3_verb verb;
	size_t n_args;
	const char *arg0, *arg1;
	const char *rest;
	int too_many;
};

static const struct row rows[] = {
	{ "USER alice", POP3_CMD_OK, POP3_USER, 1, "alice", NULL, "alice", 0 },
	{ "user alice@example.test", POP3_CMD_OK, POP3_USER, 1, "alice@example.test", NULL, "alice@example.test", 0 },
	{ "PASS  two  spaces ", POP3_CMD_OK, POP3_PASS, 2, "two", "spaces", " two  spaces ", 0 },
	{ "PASS a b c", POP3_CMD_OK, POP3_PASS, 2, "a", "b", "a b c", 1 },
	{ "STAT", POP3_CMD_OK, POP3_STAT, 0, NULL, NULL, "", 0 },
	{ "stat ", POP3_CMD_OK, POP3_STAT, 0, NULL, NULL, "", 0 },
	{ "  LIST 3", POP3_CMD_OK, POP3_LIST, 1, "3", NULL, "3", 0 },
	{ "LiSt\t4", POP3_CMD_OK, POP3_LIST, 1, "4", NULL, "4", 0 },
	{ "TOP 1 10", POP3_CMD_OK, POP3_TOP, 2, "1", "10", "1 10", 0 },
	{ "TOP 1 10 x", POP3_CMD_OK, POP3_TOP, 2, "1", "10", "1 10 x", 1 },
	{ "RETR 1", POP3_CMD_OK, POP3_RETR, 1, "1", NULL, "1", 0 },
	{ "DELE 2", POP3_CMD_OK, POP3_DELE, 1, "2", NULL, "2", 0 },
	{ "UIDL", POP3_CMD_OK, POP3_UIDL, 0, NULL, NULL, "", 0 },
	{ "CAPA", POP3_CMD_OK, POP3_CAPA, 0, NULL, NULL, "", 0 },
	{ "STLS", POP3_CMD_OK, POP3_STLS, 0, NULL, NULL, "", 0 },
	{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", POP3_CMD_OK, POP3_AUTH, 2, "PLAIN", "AGFsaWNlAHNlY3JldA==", NULL, 0 },
	{ "AUTH", POP3_CMD_OK, POP3_AUTH, 0, NULL, NULL, "", 0 },
	{ "APOP a b", POP3_CMD_OK, POP3_APOP, 2, "a", "b", "a b", 0 },
	{ "NOOP", POP3_CMD_OK, POP3_NOOP, 0, NULL, NULL, "", 0 },
	{ "RSET", POP3_CMD_OK, POP3_RSET, 0, NULL, NULL, "", 0 },
	{ "QUIT", POP3_CMD_OK, POP3_QUIT, 0, NULL, NULL, "", 0 },
	{ "XTND XMIT", POP3_CMD_OK, POP3_UNKNOWN, 1, "XMIT", NULL, "XMIT", 0 },
	{ "USERS", POP3_CMD_OK, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "STA", POP3_CMD_OK, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "", POP3_CMD_EMPTY, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "   \t ", POP3_CMD_EMPTY, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "USER a\rb", POP3_CMD_BAD_BYTES, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "PASS \x7f", POP3_CMD_BAD_BYTES, POP3_UNKNOWN, 0, NULL, NULL, "", 0 },
	{ "PASS caf\xc3\xa9", POP3_CMD_OK, POP3_PASS, 1, "caf\xc3\xa9", NULL, "caf\xc3\xa9", 0 },
};

static void span_eq(const struct pop3_span *s, const char *want)
{
	if (!want)
		return;
	char got[256];
	snprintf(got, sizeof(got), "%.*s", (int)s->n, s->p);
	assert_string_equal(got, want);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct pop3_command c;
		enum pop3_command_status st = pop3_command_parse(r->line, strlen(r->line), &c);
		if (st != r->status)
			fail_msg("row %zu \"%s\": status %d, want %d", i, r->line, st, r->status);
		if (st != POP3_CMD_OK)
			continue;
		if (c.verb != r->verb)
			fail_msg("row %zu \"%s\": verb %d, want %d", i, r->line, c.verb, r->verb);
		assert_int_equal(c.n_args, r->n_args);
		if (r->n_args > 0)
			span_eq(&c.args[0], r->arg0);
		if (r->n_args > 1)
			span_eq(&c.args[1], r->arg1);
		span_eq(&c.rest, r->rest);
		assert_int_equal(c.too_many_args, r->too_many);
	}
}

static void test_nul_byte(void **state)
{
	(void)state;
	struct pop3_command c;
	assert_int_equal(pop3_command_parse("USER a\0b", 8, &c), POP3_CMD_BAD_BYTES);
}

static void test_numbers(void **state)
{
	(void)state;
	static const struct { const char *s; int ok; uint64_t v; } nums[] = {
		{ "1", 1, 1 }, { "0", 1, 0 }, { "0012", 1, 12 }, { "4294967295", 1, 4294967295u },
		{ "9999999999", 1, 9999999999u }, { "12345678901", 0, 0 }, { "", 0, 0 }, { "-1", 0, 0 },
		{ "+1", 0, 0 }, { "1a", 0, 0 }, { " 1", 0, 0 }, { "0x1", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		struct pop3_span sp = { nums[i].s, strlen(nums[i].s) };
		uint64_t v = 777;
		bool ok = pop3_parse_number(&sp, &v);
		if (ok != (bool)nums[i].ok)
			fail_msg("number \"%s\": %d", nums[i].s, ok);
		if (ok)
			assert_int_equal(v, nums[i].v);
	}
}

static void test_verb_names(void **state)
{
	(void)state;
	for (int v = 1; v < POP3_VERB_COUNT; v++) {
		const char *n = pop3_verb_name((enum pop3_verb)v);
		struct pop3_command c;
		assert_int_equal(pop3_command_parse(n, strlen(n), &c), POP3_CMD_OK);
		assert_int_equal(c.verb, v);
	}
	assert_string_equal(pop3_verb_name(POP3_VERB_COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_verb_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
