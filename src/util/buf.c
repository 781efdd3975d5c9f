/* buf.c - bounded byte strings (see buf.h). */
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->truncated = false;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->truncated = false;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for `need` more bytes plus the terminator; grows geometrically. */
static bool buf_reserve(struct buf *b, size_t need)
{
	size_t want = b->len + need + 1;
	if (want <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->data, cap);
	if (!p)
		return false;
	b->data = p;
	b->cap = cap;
	return true;
}

bool buf_append(struct buf *b, const void *p, size_t n)
{
	bool whole = true;
	if (n > b->max - b->len) {
		n = b->max - b->len;
		b->truncated = true;
		whole = false;
	}
	if (!buf_reserve(b, n)) {
		b->truncated = true;
		return false;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return whole;
}

bool buf_appends(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

bool buf_appendc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	char small[512];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return false;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->truncated = true;
		return false;
	}
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	bool ok = buf_append(b, big, (size_t)n);
	free(big);
	return ok;
}

bool buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return ok;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

bool buf_append_escaped(struct buf *b, const void *p, size_t n, size_t limit)
{
	const unsigned char *s = p;
	size_t take = n < limit ? n : limit;
	bool ok = true;
	for (size_t i = 0; i < take; i++) {
		unsigned char c = s[i];
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"')
			ok = buf_printf(b, "\\x%02x", c) && ok;
		else
			ok = buf_appendc(b, (char)c) && ok;
	}
	if (take < n)
		ok = buf_appends(b, "...") && ok;
	return ok;
}
