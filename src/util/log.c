/* log.c - structured event log on standard error (see log.h).
 * One write(2) per line so lines from threads never interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Atomic: a reload (SIGHUP, on the loop thread) changes it while workers log. */
static _Atomic int log_min = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level min)
{
	atomic_store_explicit(&log_min, (int)min, memory_order_relaxed);
}

void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
{
	if ((int)lvl < atomic_load_explicit(&log_min, memory_order_relaxed))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, level_names[lvl], event);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (fmt && *fmt && len < sizeof(line) - 2) {
		line[len++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		va_end(ap);
		if (m > 0)
			len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

const char *log_quote(char *out, size_t outsz, const void *p, size_t n, size_t limit)
{
	const unsigned char *s = p;
	size_t o = 0;
	if (outsz < 3) {
		if (outsz)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	size_t take = n < limit ? n : limit;
	for (size_t i = 0; i < take; i++) {
		unsigned char c = s[i];
		bool esc = c < 0x20 || c >= 0x7f || c == '\\' || c == '"';
		size_t need = esc ? 4 : 1;
		if (o + need + 5 > outsz) {
			take = i;
			n = n > take ? n : take + 1;   /* force the ellipsis */
			break;
		}
		if (esc)
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (take < n && o + 5 <= outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
