/* fuzz_dkim_canon.c - DKIM canonicalisation (RFC 6376 §3.4): the first octet picks
 * simple or relaxed and where to split the input; the body canonicaliser must give the
 * same bytes whatever the split, its output must end in CRLF (or be empty, relaxed),
 * relaxed output holds no TAB and no two SP in a row, and header canonicalisation stays
 * inside its input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mailauth/dkim.h"

static void collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

static void canon(enum dkim_canon c, const char *p, size_t n, size_t split, struct buf *out)
{
	struct dkim_body_canon bc;
	dkim_body_canon_init(&bc, c, collect, out);
	dkim_body_canon_feed(&bc, p, split);
	dkim_body_canon_feed(&bc, p + split, n - split);
	dkim_body_canon_finish(&bc);
	if (bc.emitted != out->len)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum dkim_canon c = (data[0] & 1) ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	const char *p = (const char *)data + 1;
	size_t n = size - 1, split = n ? (data[0] >> 1) % (n + 1) : 0;
	struct buf a, b, h;
	buf_init(&a, 1 << 20);
	buf_init(&b, 1 << 20);
	buf_init(&h, 1 << 20);
	canon(c, p, n, split, &a);
	canon(c, p, n, 0, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		__builtin_trap();
	if (a.len && (a.len < 2 || memcmp(a.data + a.len - 2, "\r\n", 2) != 0))
		__builtin_trap();
	if (c == DKIM_CANON_SIMPLE && a.len == 0)
		__builtin_trap();
	for (size_t i = 0; c == DKIM_CANON_RELAXED && i + 1 < a.len; i++)
		if (a.data[i] == '\t' || (a.data[i] == ' ' && a.data[i + 1] == ' '))
			__builtin_trap();
	dkim_canon_header(c, p, n, true, &h);
	buf_free(&a);
	buf_free(&b);
	buf_free(&h);
	return 0;
}
