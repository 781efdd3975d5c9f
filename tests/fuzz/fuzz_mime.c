/* fuzz_mime.c - libFuzzer harness for msg/mime: the input is a message
 * (hostile MIME); it is parsed and everything is rendered (ENVELOPE,
 * BODYSTRUCTURE, BODY, and the ENVELOPE of every encapsulated message),
 * checking the tree's invariants and that the output is balanced IMAP;
 * then sections and BINARY of part paths taken from the input, the SEARCH
 * helpers with a needle from the input, and the Date. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg/mime.h"
#include "util/buf.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_tree(const struct mime_tree *t, size_t len)
{
	const struct mime_part *root = mime_root(t);
	size_t n = mime_part_count(t);
	CHECK(root && n >= 1 && n <= MIME_MAX_PARTS);
	for (size_t i = 0; i < n; i++) {
		const struct mime_part *p = root + i;
		CHECK(p->depth < MIME_MAX_DEPTH);
		CHECK(p->hdr_off + p->hdr_len == p->body_off && p->body_off + p->body_len <= len);
		CHECK(p->body_size >= p->body_len && p->body_size <= 2 * (uint64_t)p->body_len);
		CHECK(p->type && p->subtype);
		if (p->parent) {
			CHECK(p->hdr_off >= p->parent->body_off);
			CHECK(p->body_off + p->body_len <= p->parent->body_off + p->parent->body_len);
		}
		CHECK(!p->message || (p->n_child == 1 && p->message == p->child));
		for (size_t c = 0; c < p->n_child; c++)
			CHECK(p->child[c].parent == p);
	}
}

/* Parentheses balance outside quoted strings and literals. */
static void check_balanced(const struct buf *b)
{
	long depth = 0;
	const char *s = b->data ? b->data : "";
	for (size_t i = 0; i < b->len; i++) {
		if (s[i] == '"') {
			for (i++; i < b->len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			CHECK(i < b->len);
		} else if (s[i] == '{') {
			char *end;
			unsigned long long n = strtoull(s + i + 1, &end, 10);
			CHECK(end[0] == '}' && end[1] == '\r' && end[2] == '\n');
			i = (size_t)(end + 2 - s) + n;
			CHECK(i < b->len);
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			CHECK(--depth >= 0);
		}
	}
	CHECK(depth == 0);
}

/* Part paths of 0..3 numbers (1..4 each) from the input's first bytes, every
 * section kind, BINARY; then search and Date.  Sections stay in CRLF form. */
static void sections(const struct mime_tree *t, const uint8_t *data, size_t size, struct buf *b)
{
	static const char *const fields[] = { "subject", "content-type", "" };
	for (size_t v = 0; v < 8; v++) {
		uint32_t path[3];
		size_t n = size > v ? data[v] % 4 : v % 4;
		for (size_t k = 0; k < n; k++)
			path[k] = 1 + (size > v + k + 1 ? data[v + k + 1] % 4 : 0);
		for (int kind = MIME_SEC_ALL; kind <= MIME_SEC_MIME; kind++) {
			buf_reset(b);
			bool ok = mime_section(t, path, n, kind, fields, 3, b);
			CHECK(ok || b->len == 0 || b->truncated);
			for (size_t i = 0; i < b->len; i++)
				CHECK(b->data[i] != '\0' && (b->data[i] != '\n' || (i > 0 && b->data[i - 1] == '\r')));
			const char *p;
			size_t pn;
			CHECK(mime_partial(b, size % 97, (uint32_t)(size % 13), &p, &pn) && pn <= 13);
		}
		buf_reset(b);
		int r = mime_binary(t, path, n, b);
		CHECK(r == 0 || r == -1 || r == -2);
	}
	char needle[8] = "";
	size_t nl = size < 7 ? size : 7;
	memcpy(needle, size > 16 ? data + size - nl : data, nl);
	needle[strnlen(needle, nl)] = '\0';
	(void)mime_header_contains(t, "subject", needle);
	(void)mime_header_contains(t, "from", "");
	(void)mime_text_contains(t, needle, (size & 1) != 0);
	long zone;
	time_t when = mime_date_tz(t, &zone);
	CHECK(when != 0 || zone == 0);
	CHECK(zone > -100000 && zone < 100000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_tree *t = mime_parse((const char *)data, size);
	if (!t)
		return 0;
	check_tree(t, size);
	struct buf b;
	buf_init(&b, 1 << 26);
	CHECK(mime_envelope(t, &b));
	check_balanced(&b);
	for (int ext = 0; ext < 2; ext++) {
		buf_reset(&b);
		CHECK(mime_bodystructure(t, ext, &b));
		check_balanced(&b);
	}
	for (size_t i = 0; i < mime_part_count(t); i++) {
		const struct mime_part *p = mime_root(t) + i;
		if (p->message) {
			buf_reset(&b);
			CHECK(mime_envelope_part(t, p->message, &b));
			check_balanced(&b);
		}
	}
	sections(t, data, size, &b);
	buf_free(&b);
	mime_free(&t);
	CHECK(t == NULL);
	return 0;
}
