/* log.h - one line per event, key=value, on standard error.
 *
 *   log_event(LOG_INFO, "queued", "conn=%llu qid=%s size=%zu", ...);
 * prints  ts=2026-11-23T10:00:00Z level=info event=queued conn=1 qid=... size=...
 * Client-supplied text must go through log_quote() (escaped, truncated, quoted). */
#ifndef POSTERN_UTIL_LOG_H
#define POSTERN_UTIL_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

void log_set_level(enum log_level min);
void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quote untrusted bytes for a log value: "..." with \xNN escapes, at most `limit`
 * input bytes.  Writes into out (size outsz, always terminated) and returns out. */
const char *log_quote(char *out, size_t outsz, const void *p, size_t n, size_t limit);

#endif
