/* mime_decode.c - the decoders behind BINARY[] and SEARCH: base64 and
 * quoted-printable (RFC 2045 §6.7, §6.8), RFC 2047 encoded words, charset
 * conversion to UTF-8 (iconv), and a simple case folding for matching.
 * Pure: no I/O (iconv converts in memory).
 *
 * Decoders are lenient, as readers of real mail must be: base64 skips
 * what is not in its alphabet and stops at "="; quoted-printable keeps a
 * "=" that starts no valid escape; an unknown charset is taken as it is. */
#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

#include "msg/mime_internal.h"

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void mime_decode_base64(struct buf *out, const char *s, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_appendc(out, (char)((acc >> bits) & 0xff));
		}
	}
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 2045 §6.7: "=XX", soft line breaks "=" (WSP) line end, trailing
 * white space of a line dropped.  q_words: RFC 2047 "Q" ("_" is a space). */
static void decode_qp(struct buf *out, const char *s, size_t n, bool q_words)
{
	size_t line_start = out->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '=' && i + 2 < n && hex_value((unsigned char)s[i + 1]) >= 0 &&
			hex_value((unsigned char)s[i + 2]) >= 0) {
			buf_appendc(out, (char)(hex_value((unsigned char)s[i + 1]) * 16 + hex_value((unsigned char)s[i + 2])));
			i += 2;
			continue;
		}
		if (c == '=' && !q_words) {
			size_t j = i + 1;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (j == n || s[j] == '\n' || (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')) {
				i = j < n && s[j] == '\r' ? j + 1 : j;   /* a soft line break */
				continue;
			}
		}
		if (c == '\n' && !q_words) {
			size_t e = out->len;   /* the line's trailing white space goes (§6.7 rule 3) */
			while (e > line_start && (out->data[e - 1] == ' ' || out->data[e - 1] == '\t' ||
				out->data[e - 1] == '\r'))
				e--;
			out->len = e;
			buf_appends(out, "\r\n");   /* (re-terminates the data) */
			line_start = out->len;
			continue;
		}
		buf_appendc(out, q_words && c == '_' ? ' ' : (char)c);
	}
	while (!q_words && out->len > line_start && (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
		out->len--;   /* the last line's trailing white space too */
	if (out->data)
		out->data[out->len] = '\0';
}

void mime_decode_qp(struct buf *out, const char *s, size_t n)
{
	decode_qp(out, s, n, false);
}

static bool is_plain_charset(const char *cs)
{
	return !cs || !*cs || strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
		strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

void mime_to_utf8(struct buf *out, const char *charset, const char *s, size_t n)
{
	iconv_t cd = is_plain_charset(charset) ? (iconv_t)-1 : iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		buf_append(out, s, n);   /* UTF-8, ASCII or unknown: as it is */
		return;
	}
	char chunk[4096];
	char *in = (char *)s;
	size_t left = n;
	while (left > 0 && !out->truncated) {
		char *o = chunk;
		size_t room = sizeof(chunk);
		size_t r = iconv(cd, &in, &left, &o, &room);
		buf_append(out, chunk, (size_t)(o - chunk));
		if (r == (size_t)-1 && errno != E2BIG) {
			buf_appends(out, "\xef\xbf\xbd");   /* an invalid or cut sequence: U+FFFD, go on */
			in++;
			left--;
		}
	}
	iconv_close(cd);
}

/* One "=?charset?enc?text?=" at s (RFC 2047 §2); returns its length, 0 if none. */
static size_t encoded_word(struct buf *out, const char *s, size_t n)
{
	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	const char *cs = s + 2, *q1 = memchr(cs, '?', n - 2);
	if (!q1 || q1 + 3 >= s + n || q1[2] != '?')
		return 0;
	char enc = (char)(q1[1] | 0x20);
	const char *text = q1 + 3;
	/* RFC 2047 §2: at most 75 octets; longer ones are tolerated up to a bound,
	 * so that a field full of unterminated words is not scanned again and again. */
	const char *end = NULL, *limit = s + (n < 1024 ? n : 1024);
	for (const char *p = text; p + 1 < limit; p++)
		if (p[0] == '?' && p[1] == '=') {
			end = p;
			break;
		}
	if (!end || (enc != 'b' && enc != 'q') || q1 - cs >= 64)
		return 0;
	char charset[64];
	memcpy(charset, cs, (size_t)(q1 - cs));
	charset[q1 - cs] = '\0';
	char *star = strchr(charset, '*');   /* RFC 2231 §5: charset*language */
	if (star)
		*star = '\0';
	struct buf raw;
	buf_init(&raw, n);
	if (enc == 'b')
		mime_decode_base64(&raw, text, (size_t)(end - text));
	else
		decode_qp(&raw, text, (size_t)(end - text), true);
	mime_to_utf8(out, charset, raw.data ? raw.data : "", raw.len);
	buf_free(&raw);
	return (size_t)(end + 2 - s);
}

void mime_decode_2047(struct buf *out, const char *s, size_t n)
{
	size_t i = 0;
	bool after_word = false;
	while (i < n) {
		size_t w = encoded_word(out, s + i, n - i);
		if (w) {
			i += w;
			after_word = true;
			continue;
		}
		if (after_word && (s[i] == ' ' || s[i] == '\t')) {
			/* White space between two encoded words is dropped (§6.2). */
			size_t j = i;
			while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'))
				j++;
			struct buf probe;
			buf_init(&probe, n);
			bool next_is_word = encoded_word(&probe, s + j, n - j) > 0;
			buf_free(&probe);
			if (next_is_word) {
				i = j;
				continue;
			}
		}
		after_word = false;
		buf_appendc(out, s[i++]);
	}
}

/* Simple case folding of UTF-8 for matching (ASCII, Latin-1, Latin
 * Extended-A pairs, Greek and Cyrillic capitals); other text is kept. */
static uint32_t fold_cp(uint32_t c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3a9) ||
		(c >= 0x410 && c <= 0x42f))
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40f)
		return c + 0x50;
	if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17f)
		return (c >= 0x139 && c <= 0x148) || c >= 0x179 ? (c % 2 ? c + 1 : c) : (c | 1);
	return c;
}

void mime_fold(struct buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t c = p[i];
		size_t len = 1;
		if (c >= 0xc2 && c <= 0xdf && i + 1 < n && (p[i + 1] & 0xc0) == 0x80) {
			c = ((c & 0x1f) << 6) | (p[i + 1] & 0x3f);
			len = 2;
		}
		if (len == 1) {
			buf_appendc(out, (char)fold_cp(c));
		} else {
			c = fold_cp(c);
			if (c < 0x800) {
				buf_appendc(out, (char)(0xc0 | (c >> 6)));
				buf_appendc(out, (char)(0x80 | (c & 0x3f)));
			}
		}
		i += len;
	}
}
