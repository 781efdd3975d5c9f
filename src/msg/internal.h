/* internal.h - the byte classes that header.c (fields) and address_list.c (address
 * lists) share; no other room includes it.  The public interface is header.h. */
#ifndef POSTERN_MSG_INTERNAL_H
#define POSTERN_MSG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

static inline bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char ascii_lower_c(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Length of the line end (LF or CRLF) at p[i], 0 when there is none. */
static inline size_t eol_len(const unsigned char *p, size_t len, size_t i)
{
	if (i < len && p[i] == '\n')
		return 1;
	if (i + 1 < len && p[i] == '\r' && p[i + 1] == '\n')
		return 2;
	return 0;
}

#endif
