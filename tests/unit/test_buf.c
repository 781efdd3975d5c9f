/* test_buf.c - struct buf: bounds, truncation flag, printf, consume, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/buf.h"
#include "util/text.h"

static void test_empty(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 16);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_reset(&b);   /* no data yet: must not crash */
	buf_consume(&b, 5);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_free(&b);    /* twice is harmless */
}

static void test_append_within_bounds(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 16);
	assert_true(buf_appends(&b, "hello"));
	assert_true(buf_appendc(&b, ' '));
	assert_true(buf_append(&b, "world!", 6));
	assert_int_equal(b.len, 12);
	assert_string_equal(buf_cstr(&b), "hello world!");
	assert_false(b.truncated);
	assert_true(b.cap <= b.max + 1);
	buf_free(&b);
}

/* Table: a sequence of appends against a max; the result and the flag. */
static const struct {
	size_t max;
	const char *parts[4];
	const char *want;
	bool truncated;
} append_table[] = {
	{ 5, { "abc", "de" }, "abcde", false },
	{ 5, { "abc", "def" }, "abcde", true },
	{ 5, { "abcdefgh" }, "abcde", true },
	{ 5, { "abcde", "x", "y" }, "abcde", true },
	{ 0, { "a" }, "", true },
	{ 1, { "", "a", "" }, "a", false },
	{ 64, { "0123456789012345678901234567890123456789012345678901234567890123", "!" },
	  "0123456789012345678901234567890123456789012345678901234567890123", true },
	{ 200, { "0123456789012345678901234567890123456789012345678901234567890123",
		 "0123456789012345678901234567890123456789012345678901234567890123",
		 "0123456789012345678901234567890123456789012345678901234567890123",
		 "0123456789" },
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "01234567", true },
};

static void test_append_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(append_table) / sizeof(append_table[0]); i++) {
		struct buf b;
		buf_init(&b, append_table[i].max);
		bool all_ok = true;
		for (size_t k = 0; k < 4 && append_table[i].parts[k]; k++)
			all_ok = buf_appends(&b, append_table[i].parts[k]) && all_ok;
		if (strcmp(buf_cstr(&b), append_table[i].want) != 0 || b.truncated != append_table[i].truncated ||
			all_ok == append_table[i].truncated || b.len > b.max)
			fail_msg("row %zu: got \"%s\" truncated=%d ok=%d", i, buf_cstr(&b), b.truncated, all_ok);
		assert_int_equal(b.len, strlen(append_table[i].want));
		buf_free(&b);
	}
}

static void test_reset_keeps_memory_clears_flag(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4);
	buf_appends(&b, "abcdef");
	assert_true(b.truncated);
	char *p = b.data;
	buf_reset(&b);
	assert_false(b.truncated);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, p);
	assert_string_equal(buf_cstr(&b), "");
	assert_true(buf_appends(&b, "xy"));
	assert_string_equal(buf_cstr(&b), "xy");
	buf_free(&b);
}

static void test_binary_and_nul(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	assert_true(buf_append(&b, "a\0b\0", 4));
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "a\0b\0", 4);
	assert_int_equal(b.data[4], '\0');
	buf_free(&b);
}

static void test_printf(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	assert_true(buf_printf(&b, "%d-%s-%zu", 42, "x", (size_t)7));
	assert_string_equal(buf_cstr(&b), "42-x-7");
	/* Longer than the 512-byte fast path. */
	char big[2000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_reset(&b);
	assert_true(buf_printf(&b, "<%s>", big));
	assert_int_equal(b.len, sizeof(big) - 1 + 2);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[b.len - 1], '>');
	buf_free(&b);

	/* Cut by max, both paths. */
	buf_init(&b, 10);
	assert_false(buf_printf(&b, "%s", "0123456789abc"));
	assert_true(b.truncated);
	assert_string_equal(buf_cstr(&b), "0123456789");
	buf_free(&b);
	buf_init(&b, 600);
	assert_false(buf_printf(&b, "%s", big));
	assert_true(b.truncated);
	assert_int_equal(b.len, 600);
	buf_free(&b);
}

static const struct {
	const char *in;
	size_t consume;
	const char *want;
} consume_table[] = {
	{ "abcdef", 0, "abcdef" },
	{ "abcdef", 1, "bcdef" },
	{ "abcdef", 5, "f" },
	{ "abcdef", 6, "" },
	{ "abcdef", 600, "" },
	{ "", 1, "" },
};

static void test_consume_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(consume_table) / sizeof(consume_table[0]); i++) {
		struct buf b;
		buf_init(&b, 64);
		buf_appends(&b, consume_table[i].in);
		buf_consume(&b, consume_table[i].consume);
		if (strcmp(buf_cstr(&b), consume_table[i].want) != 0 || b.len != strlen(consume_table[i].want))
			fail_msg("row %zu: got \"%s\"", i, buf_cstr(&b));
		buf_free(&b);
	}
}

static const struct {
	const char *in;
	size_t n;
	size_t limit;
	const char *want;
} esc_table[] = {
	{ "plain", 5, 100, "plain" },
	{ "a\r\nb", 4, 100, "a\\x0d\\x0ab" },
	{ "q\"b\\", 4, 100, "q\\x22b\\x5c" },
	{ "\x7f\x80\xff", 3, 100, "\\x7f\\x80\\xff" },
	{ "a\0b", 3, 100, "a\\x00b" },
	{ "abcdef", 6, 3, "abc..." },
	{ "abc", 3, 3, "abc" },
	{ "", 0, 10, "" },
};

static void test_escaped_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(esc_table) / sizeof(esc_table[0]); i++) {
		struct buf b;
		buf_init(&b, 256);
		assert_true(buf_append_escaped(&b, esc_table[i].in, esc_table[i].n, esc_table[i].limit));
		if (strcmp(buf_cstr(&b), esc_table[i].want) != 0)
			fail_msg("row %zu: got \"%s\" want \"%s\"", i, buf_cstr(&b), esc_table[i].want);
		buf_free(&b);
	}
}

static void test_escaped_bounded(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 10);
	assert_false(buf_append_escaped(&b, "\n\n\n\n\n", 5, 100));
	assert_true(b.truncated);
	assert_int_equal(b.len, 10);
	buf_free(&b);
}

/* quote_for_reply (util/text.h), shared by SMTP and POP3 replies: control and
 * non-ASCII bytes become '?', text past `shown` bytes is cut with "...", out is never
 * overrun. */
static void test_quote_for_reply(void **state)
{
	(void)state;
	char out[128];
	quote_for_reply(out, sizeof(out), "a\r\nb\x01\xc3\xa9", 7, 64);
	assert_string_equal(out, "a??b???");
	quote_for_reply(out, sizeof(out), "abcdefgh", 8, 8);
	assert_string_equal(out, "abcdefgh");
	quote_for_reply(out, sizeof(out), "abcdefghi", 9, 8);
	assert_string_equal(out, "abcdefgh...");
	quote_for_reply(out, sizeof(out), "", 0, 8);
	assert_string_equal(out, "");
	char small[8];
	quote_for_reply(small, sizeof(small), "abcdefghijkl", 12, 64);
	assert_string_equal(small, "abc");   /* room for "..." kept, as before */
	char big[300];
	memset(big, 'x', sizeof(big));
	quote_for_reply(out, sizeof(out), big, sizeof(big), 40);
	assert_int_equal(strlen(out), 43);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_quote_for_reply),
		cmocka_unit_test(test_append_within_bounds),
		cmocka_unit_test(test_append_table),
		cmocka_unit_test(test_reset_keeps_memory_clears_flag),
		cmocka_unit_test(test_binary_and_nul),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_consume_table),
		cmocka_unit_test(test_escaped_table),
		cmocka_unit_test(test_escaped_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
