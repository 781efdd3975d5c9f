/* text.c - client text quoted back in replies (see text.h). */
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>

#include <string.h>

void quote_for_reply(char *out, size_t outsz, const char *p, size_t n, size_t shown)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		if (i + 1 == shown && n > shown) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o] = '\0';
}

void text_format_cut(char *out, size_t outsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outsz, fmt, ap);
	va_end(ap);
}
