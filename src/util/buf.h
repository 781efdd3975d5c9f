/* buf.h - bounded, length-counted byte strings.
 *
 * Every string built at run time from untrusted or variable input is a struct buf.
 * A buf never grows past its `max`; an append that would is cut and sets `truncated`,
 * so truncation is never silent.  The data is always NUL-terminated for convenience,
 * but the length is what counts (messages may contain NUL bytes). */
#ifndef POSTERN_UTIL_BUF_H
#define POSTERN_UTIL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;      /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;      /* hard bound on len */
	bool truncated;  /* an append was cut to respect max */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);                 /* len = 0, truncated = false; keeps memory */
bool buf_append(struct buf *b, const void *p, size_t n);  /* false when cut */
bool buf_appends(struct buf *b, const char *s);
bool buf_appendc(struct buf *b, char c);
bool buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_consume(struct buf *b, size_t n);     /* drop n bytes from the front */
const char *buf_cstr(const struct buf *b);     /* "" when empty */

/* Append `n` bytes of untrusted text, escaping control bytes, backslash, quote and
 * bytes >= 0x80 as \xNN, cut at `limit` input bytes (then "..." is appended). */
bool buf_append_escaped(struct buf *b, const void *p, size_t n, size_t limit);

#endif
