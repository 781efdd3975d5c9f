/* linebuf.c - see linebuf.h. */
#include "util/linebuf.h"

#include <string.h>

void linebuf_init(struct linebuf *lb, size_t cap)
{
	buf_init(&lb->line, cap);
	lb->overflow = false;
}

void linebuf_free(struct linebuf *lb)
{
	buf_free(&lb->line);
}

void linebuf_reset(struct linebuf *lb)
{
	buf_reset(&lb->line);
	lb->overflow = false;
}

enum linebuf_event linebuf_feed(struct linebuf *lb, const char *p, size_t len, size_t max, size_t *consumed,
	const char **line, size_t *n)
{
	const char *lf = memchr(p, '\n', len);
	size_t take = lf ? (size_t)(lf - p) + 1 : len;
	*consumed = take;
	if (lb->overflow) {
		if (!lf)
			return LINEBUF_MORE;
		lb->overflow = false;
		buf_reset(&lb->line);
		return LINEBUF_TOO_LONG;
	}
	if (max > lb->line.max)
		max = lb->line.max;
	if (lb->line.len + take > max) {
		buf_reset(&lb->line);
		if (!lf) {
			lb->overflow = true;
			return LINEBUF_MORE;
		}
		return LINEBUF_TOO_LONG;
	}
	buf_append(&lb->line, p, take);
	if (!lf)
		return LINEBUF_MORE;
	size_t l = lb->line.len - 1;   /* without LF */
	if (l > 0 && lb->line.data[l - 1] == '\r')
		l--;
	lb->line.data[l] = '\0';
	lb->line.len = 0;              /* the next call starts a new line; the bytes stay until then */
	*line = lb->line.data;
	*n = l;
	return LINEBUF_LINE;
}
