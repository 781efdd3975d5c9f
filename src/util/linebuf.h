/* linebuf.h - bounded assembly of CRLF (or LF) terminated lines for the line
 * protocols (SMTP commands, POP3, AUTH exchanges).  A line longer than the bound is
 * dropped whole, up to and including its line end, and reported once as too long:
 * its tail is never taken for a new command. */
#ifndef POSTERN_UTIL_LINEBUF_H
#define POSTERN_UTIL_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct linebuf {
	struct buf line;
	bool overflow;         /* inside a line that is too long */
};

enum linebuf_event { LINEBUF_MORE, LINEBUF_LINE, LINEBUF_TOO_LONG };

/* `cap` is the largest line the caller will ever allow (the buffer's hard bound). */
void linebuf_init(struct linebuf *lb, size_t cap);
void linebuf_free(struct linebuf *lb);
void linebuf_reset(struct linebuf *lb);
/* Take bytes from p up to the end of a line (at most len).  *consumed says how many.
 * LINEBUF_LINE: line and n give the line without CR LF, valid until the next call.
 * LINEBUF_TOO_LONG: the line exceeded `max` octets (line end included) and is gone. */
enum linebuf_event linebuf_feed(struct linebuf *lb, const char *p, size_t len, size_t max, size_t *consumed,
	const char **line, size_t *n);

#endif
