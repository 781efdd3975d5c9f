/* test_data.c - the DATA decoder: one table of wire inputs, each also fed split at
 * every position and byte by byte (the decoder must be split-invariant). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"
#include "util/buf.h"

#define S(s) s, sizeof(s) - 1

struct row {
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
	bool done;
	size_t consumed;          /* SIZE_MAX: all of the input */
	uint64_t bare_lf, bare_cr;
	bool has_8bit, has_nul;
};

#define ALL SIZE_MAX

static const struct row table[] = {
	/* the end of data */
	{ S(".\r\n"), S(""), true, 3, 0, 0, false, false },
	{ S("a\r\n.\r\n"), S("a\r\n"), true, 6, 0, 0, false, false },
	{ S("a\r\nb\r\n.\r\n"), S("a\r\nb\r\n"), true, 9, 0, 0, false, false },
	{ S("\r\n.\r\n"), S("\r\n"), true, 5, 0, 0, false, false },
	{ S("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), S("a\r\n"), true, 6, 0, 0, false, false },
	{ S(".\r\n.\r\n"), S(""), true, 3, 0, 0, false, false },
	/* dot-stuffing */
	{ S("..x\r\n.\r\n"), S(".x\r\n"), true, 8, 0, 0, false, false },
	{ S(".x\r\n.\r\n"), S("x\r\n"), true, 7, 0, 0, false, false },
	{ S("..\r\n.\r\n"), S(".\r\n"), true, 7, 0, 0, false, false },
	{ S("a\r\n..\r\n.\r\n"), S("a\r\n.\r\n"), true, 10, 0, 0, false, false },
	{ S("a.b\r\n.\r\n"), S("a.b\r\n"), true, 8, 0, 0, false, false },
	{ S("a\r\n...\r\n.\r\n"), S("a\r\n..\r\n"), true, 11, 0, 0, false, false },
	{ S(" .\r\n.\r\n"), S(" .\r\n"), true, 7, 0, 0, false, false },
	/* incomplete input: not done, everything consumed */
	{ S(""), S(""), false, ALL, 0, 0, false, false },
	{ S("a"), S("a"), false, ALL, 0, 0, false, false },
	{ S("a\r\n"), S("a\r\n"), false, ALL, 0, 0, false, false },
	{ S("a\r\n."), S("a\r\n"), false, ALL, 0, 0, false, false },
	{ S("a\r\n.\r"), S("a\r\n"), false, ALL, 0, 0, false, false },
	{ S("a\r"), S("a"), false, ALL, 0, 0, false, false },
	/* smuggling: bare LF / bare CR never end a line */
	{ S("a\n.\nb\r\n.\r\n"), S("a\n.\nb\r\n"), true, 10, 2, 0, false, false },
	{ S("\n.\n"), S("\n.\n"), false, ALL, 2, 0, false, false },
	{ S("a\r.\nb"), S("a\r.\nb"), false, ALL, 1, 1, false, false },
	{ S("\r.\n"), S("\r.\n"), false, ALL, 1, 1, false, false },
	{ S("\n.\r\n"), S("\n.\r\n"), false, ALL, 1, 0, false, false },
	{ S("a\n.\r\nx\r\n.\r\n"), S("a\n.\r\nx\r\n"), true, 11, 1, 0, false, false },
	{ S("\r\n.\rX"), S("\r\n\rX"), false, ALL, 0, 1, false, false },
	{ S("\r\n.\r\r\n"), S("\r\n\r\r\n"), false, ALL, 0, 1, false, false },
	{ S("\r\n.\r.\r\n"), S("\r\n\r.\r\n"), false, ALL, 0, 1, false, false },
	{ S("\r\n.\n"), S("\r\n\n"), false, ALL, 1, 0, false, false },
	{ S("\r\n\r.\r\n"), S("\r\n\r.\r\n"), false, ALL, 0, 1, false, false },
	{ S("a\r\r\n.\r\n"), S("a\r\r\n"), true, 7, 0, 1, false, false },
	{ S("a\r\rb"), S("a\r\rb"), false, ALL, 0, 2, false, false },
	{ S("a\n"), S("a\n"), false, ALL, 1, 0, false, false },
	{ S("\n\n\n"), S("\n\n\n"), false, ALL, 3, 0, false, false },
	{ S(".\n.\r\n"), S("\n.\r\n"), false, ALL, 1, 0, false, false },
	{ S(".\r.\r\n"), S("\r.\r\n"), false, ALL, 0, 1, false, false },
	{ S("x\r\n.\r\n\r\n.\r\n"), S("x\r\n"), true, 6, 0, 0, false, false },
	/* 8-bit and NUL pass untouched */
	{ S("\xc3\xa9\xff\r\n.\r\n"), S("\xc3\xa9\xff\r\n"), true, 8, 0, 0, true, false },
	{ S("a\0b\r\n.\r\n"), S("a\0b\r\n"), true, 8, 0, 0, false, true },
	{ S("\0\r\n.\r\n"), S("\0\r\n"), true, 6, 0, 0, false, true },
	{ S(".\0\r\n.\r\n"), S("\0\r\n"), true, 7, 0, 0, false, true },
	{ S("\x80\0"), S("\x80\0"), false, ALL, 0, 0, true, true },
};

#define NROWS (sizeof(table) / sizeof(table[0]))

static unsigned failures;

/* Feed `in` in pieces whose lengths come from `cuts` (positions, ascending). */
static void run(size_t row, const char *how, const size_t *cuts, size_t ncuts)
{
	const struct row *r = &table[row];
	struct data_decoder d;
	data_decoder_init(&d);
	struct buf out;
	buf_init(&out, 1 << 16);
	size_t consumed = 0, prev = 0;
	bool was_done = false;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : r->in_len;
		if (end < prev)
			continue;
		size_t piece = end - prev;
		/* an exact-size heap copy of the piece: ASan sees any read past it */
		char *copy = malloc(piece ? piece : 1);
		memcpy(copy, r->in + prev, piece);
		size_t before = out.len;
		size_t n = data_decoder_feed(&d, copy, piece, &out);
		free(copy);
		if (n > piece)
			goto bad;
		if (out.len - before > piece + 2)
			goto bad;
		if (was_done && n != 0)
			goto bad;
		if (!d.done && n != piece)
			goto bad;
		consumed += n;
		was_done = d.done;
		prev = end;
	}
	size_t want_consumed = r->consumed == ALL ? r->in_len : r->consumed;
	if (d.done != r->done || consumed != want_consumed || out.len != r->out_len ||
		memcmp(out.data ? out.data : "", r->out, r->out_len) != 0 || d.bare_lf != r->bare_lf ||
		d.bare_cr != r->bare_cr || d.has_8bit != r->has_8bit || d.has_nul != r->has_nul)
		goto bad;
	buf_free(&out);
	return;
bad:
	failures++;
	char q[200];
	size_t o = 0;
	for (size_t i = 0; i < out.len && o + 5 < sizeof(q); i++) {
		unsigned char c = (unsigned char)out.data[i];
		o += (size_t)snprintf(q + o, sizeof(q) - o, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
	}
	print_error("row %zu (%s): done=%d consumed=%zu out=\"%s\" bare_lf=%llu bare_cr=%llu 8bit=%d nul=%d\n",
		row, how, d.done, consumed, q, (unsigned long long)d.bare_lf, (unsigned long long)d.bare_cr,
		d.has_8bit, d.has_nul);
	buf_free(&out);
}

static void test_whole(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < NROWS; i++)
		run(i, "whole", NULL, 0);
	if (failures)
		fail_msg("%u rows failed", failures);
}

static void test_two_part_splits(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < NROWS; i++)
		for (size_t cut = 0; cut <= table[i].in_len; cut++) {
			char how[32];
			snprintf(how, sizeof(how), "split at %zu", cut);
			run(i, how, &cut, 1);
		}
	if (failures)
		fail_msg("%u runs failed", failures);
}

static void test_three_part_splits(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < NROWS; i++)
		for (size_t a = 0; a <= table[i].in_len; a++)
			for (size_t b = a; b <= table[i].in_len; b++) {
				size_t cuts[2] = { a, b };
				char how[48];
				snprintf(how, sizeof(how), "split at %zu,%zu", a, b);
				run(i, how, cuts, 2);
			}
	if (failures)
		fail_msg("%u runs failed", failures);
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < NROWS; i++) {
		size_t cuts[64];
		size_t n = table[i].in_len;
		assert_true(n < 64);
		for (size_t k = 0; k < n; k++)
			cuts[k] = k;
		run(i, "byte by byte", cuts, n);
	}
	if (failures)
		fail_msg("%u rows failed", failures);
}

/* Counters for lines: longest line and line count. */
static void test_line_counters(void **state)
{
	(void)state;
	struct data_decoder d;
	data_decoder_init(&d);
	struct buf out;
	buf_init(&out, 4096);
	const char *in = "abc\r\nabcdefg\r\n\r\nx\r\n.\r\n";
	data_decoder_feed(&d, in, strlen(in), &out);
	assert_true(d.done);
	assert_int_equal(d.lines, 4);
	assert_int_equal(d.longest_line, 7);
	buf_free(&out);
}

/* A large message in pieces of every size 1..97: output identical to one feed. */
static void test_large_split_invariance(void **state)
{
	(void)state;
	size_t n = 20000;
	char *msg = malloc(n + 5);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		static const char alphabet[] = "..\r\n\r\nab\0\n\r.x";
		msg[i] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
	}
	memcpy(msg + n, "\r\n.\r\n", 5);
	struct data_decoder ref;
	data_decoder_init(&ref);
	struct buf rout;
	buf_init(&rout, 1 << 20);
	size_t rused = data_decoder_feed(&ref, msg, n + 5, &rout);
	assert_true(ref.done);
	for (size_t step = 1; step < 98; step++) {
		struct data_decoder d;
		data_decoder_init(&d);
		struct buf out;
		buf_init(&out, 1 << 20);
		size_t used = 0;
		for (size_t pos = 0; pos < n + 5 && !d.done; pos += step) {
			size_t piece = pos + step <= n + 5 ? step : n + 5 - pos;
			used += data_decoder_feed(&d, msg + pos, piece, &out);
		}
		assert_true(d.done);
		assert_int_equal(used, rused);
		assert_int_equal(out.len, rout.len);
		assert_memory_equal(out.data, rout.data, out.len);
		assert_int_equal(d.bare_lf, ref.bare_lf);
		assert_int_equal(d.bare_cr, ref.bare_cr);
		assert_int_equal(d.lines, ref.lines);
		assert_int_equal(d.longest_line, ref.longest_line);
		buf_free(&out);
	}
	buf_free(&rout);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_two_part_splits),
		cmocka_unit_test(test_three_part_splits),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_line_counters),
		cmocka_unit_test(test_large_split_invariance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
