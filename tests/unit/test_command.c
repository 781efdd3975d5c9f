/* test_command.c - smtp_command_parse: one table of lines and their split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smtp/command.h"

#define L(s) s, sizeof(s) - 1

static const struct {
	const char *line;
	size_t len;
	enum smtp_command_status status;
	enum smtp_verb verb;
	const char *verb_text;   /* NULL: don't check */
	const char *arg;
} table[] = {
	{ L("EHLO client.example"), SMTP_CMD_OK, SMTP_EHLO, "EHLO", "client.example" },
	{ L("ehlo client.example"), SMTP_CMD_OK, SMTP_EHLO, "ehlo", "client.example" },
	{ L("eHlO client.example"), SMTP_CMD_OK, SMTP_EHLO, "eHlO", "client.example" },
	{ L("HELO x"), SMTP_CMD_OK, SMTP_HELO, "HELO", "x" },
	{ L("MAIL FROM:<a@b>"), SMTP_CMD_OK, SMTP_MAIL, "MAIL", "FROM:<a@b>" },
	{ L("mail from:<a@b> SIZE=10"), SMTP_CMD_OK, SMTP_MAIL, "mail", "from:<a@b> SIZE=10" },
	{ L("RCPT TO:<c@d>"), SMTP_CMD_OK, SMTP_RCPT, "RCPT", "TO:<c@d>" },
	{ L("DATA"), SMTP_CMD_OK, SMTP_DATA, "DATA", "" },
	{ L("data"), SMTP_CMD_OK, SMTP_DATA, "data", "" },
	{ L("BDAT 10 LAST"), SMTP_CMD_OK, SMTP_BDAT, "BDAT", "10 LAST" },
	{ L("RSET"), SMTP_CMD_OK, SMTP_RSET, "RSET", "" },
	{ L("NOOP"), SMTP_CMD_OK, SMTP_NOOP, "NOOP", "" },
	{ L("NOOP anything at all"), SMTP_CMD_OK, SMTP_NOOP, "NOOP", "anything at all" },
	{ L("QUIT"), SMTP_CMD_OK, SMTP_QUIT, "QUIT", "" },
	{ L("HELP"), SMTP_CMD_OK, SMTP_HELP, "HELP", "" },
	{ L("VRFY bob"), SMTP_CMD_OK, SMTP_VRFY, "VRFY", "bob" },
	{ L("EXPN list"), SMTP_CMD_OK, SMTP_EXPN, "EXPN", "list" },
	{ L("STARTTLS"), SMTP_CMD_OK, SMTP_STARTTLS, "STARTTLS", "" },
	{ L("starttls"), SMTP_CMD_OK, SMTP_STARTTLS, "starttls", "" },
	{ L("AUTH PLAIN AGJvYgBwdw=="), SMTP_CMD_OK, SMTP_AUTH, "AUTH", "PLAIN AGJvYgBwdw==" },
	/* trailing white space is not part of the argument */
	{ L("QUIT   "), SMTP_CMD_OK, SMTP_QUIT, "QUIT", "" },
	{ L("QUIT\t"), SMTP_CMD_OK, SMTP_QUIT, "QUIT", "" },
	{ L("MAIL FROM:<a@b>  \t "), SMTP_CMD_OK, SMTP_MAIL, "MAIL", "FROM:<a@b>" },
	/* several spaces or a tab after the verb */
	{ L("MAIL   FROM:<a@b>"), SMTP_CMD_OK, SMTP_MAIL, "MAIL", "FROM:<a@b>" },
	{ L("MAIL\tFROM:<a@b>"), SMTP_CMD_OK, SMTP_MAIL, "MAIL", "FROM:<a@b>" },
	{ L("HELO a\tb"), SMTP_CMD_OK, SMTP_HELO, "HELO", "a\tb" },
	/* empty and blank */
	{ L(""), SMTP_CMD_EMPTY, SMTP_UNKNOWN, NULL, "" },
	{ L("   "), SMTP_CMD_EMPTY, SMTP_UNKNOWN, NULL, "" },
	{ L("\t"), SMTP_CMD_EMPTY, SMTP_UNKNOWN, NULL, "" },
	/* control bytes anywhere */
	{ L("MAIL FROM:<a@b>\0"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("\0QUIT"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("QU\0IT"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("QUIT\r"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("MAIL FROM:<a@b>\rRCPT TO:<c@d>"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("NOOP \x1b[31m"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("NOOP \x7f"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("NOOP \n"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	{ L("\x01"), SMTP_CMD_BAD_BYTES, SMTP_UNKNOWN, NULL, "" },
	/* 8-bit bytes are not control bytes */
	{ L("HELO h\xc3\xa9llo"), SMTP_CMD_OK, SMTP_HELO, "HELO", "h\xc3\xa9llo" },
	/* unknown verbs, prefixes and lookalikes */
	{ L("XYZZY"), SMTP_CMD_OK, SMTP_UNKNOWN, "XYZZY", "" },
	{ L("XYZZY plugh"), SMTP_CMD_OK, SMTP_UNKNOWN, "XYZZY", "plugh" },
	{ L("MAILFROM:<a@b>"), SMTP_CMD_OK, SMTP_UNKNOWN, "MAILFROM:<a@b>", "" },
	{ L("MAI"), SMTP_CMD_OK, SMTP_UNKNOWN, "MAI", "" },
	{ L("QUITX"), SMTP_CMD_OK, SMTP_UNKNOWN, "QUITX", "" },
	{ L("EHL0 x"), SMTP_CMD_OK, SMTP_UNKNOWN, "EHL0", "x" },
	{ L("GET / HTTP/1.1"), SMTP_CMD_OK, SMTP_UNKNOWN, "GET", "/ HTTP/1.1" },
	{ L(" QUIT"), SMTP_CMD_OK, SMTP_UNKNOWN, "", "QUIT" },
	{ L("\xc3\x89HLO x"), SMTP_CMD_OK, SMTP_UNKNOWN, "\xc3\x89HLO", "x" },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct smtp_command c;
		/* Parse a heap copy without terminator so ASan sees any over-read. */
		char *copy = malloc(table[i].len ? table[i].len : 1);
		memcpy(copy, table[i].line, table[i].len);
		enum smtp_command_status st = smtp_command_parse(copy, table[i].len, &c);
		if (st != table[i].status)
			fail_msg("row %zu: status %d, want %d", i, st, table[i].status);
		if (c.arg == NULL)
			fail_msg("row %zu: arg is NULL", i);
		if (st == SMTP_CMD_OK) {
			if (c.verb != table[i].verb)
				fail_msg("row %zu: verb %d (%s), want %d", i, c.verb, smtp_verb_name(c.verb), table[i].verb);
			if (table[i].verb_text && (c.verb_len != strlen(table[i].verb_text) ||
				memcmp(c.verb_text, table[i].verb_text, c.verb_len) != 0))
				fail_msg("row %zu: verb text \"%.*s\"", i, (int)c.verb_len, c.verb_text);
			if (c.arg_len != strlen(table[i].arg) || memcmp(c.arg, table[i].arg, c.arg_len) != 0)
				fail_msg("row %zu: arg \"%.*s\", want \"%s\"", i, (int)c.arg_len, c.arg, table[i].arg);
			/* the argument lies inside the line */
			assert_true(c.arg >= copy && c.arg + c.arg_len <= copy + table[i].len);
		} else {
			assert_int_equal(c.verb, SMTP_UNKNOWN);
		}
		free(copy);
	}
}

static void test_verb_names(void **state)
{
	(void)state;
	assert_string_equal(smtp_verb_name(SMTP_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "?");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "?");
	assert_string_equal(smtp_verb_name((enum smtp_verb)-1), "?");
	/* Every name parses back to its verb. */
	for (int v = 1; v < SMTP_VERB_COUNT; v++) {
		struct smtp_command c;
		const char *n = smtp_verb_name((enum smtp_verb)v);
		assert_int_equal(smtp_command_parse(n, strlen(n), &c), SMTP_CMD_OK);
		assert_int_equal(c.verb, v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_verb_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
