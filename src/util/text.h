/* text.h - client text made safe to quote back to the client in a protocol reply
 * (SMTP, POP3, and later IMAP and HTTP): one rule for every protocol, so that no
 * reply can carry a control byte or an unbounded run of hostile text. */
#ifndef POSTERN_UTIL_TEXT_H
#define POSTERN_UTIL_TEXT_H

#include <stddef.h>

/* Copy the n bytes at p into out (NUL-terminated, at most outsz - 5 characters of
 * text): printable ASCII kept, every other byte shown as '?'.  Text longer than
 * `shown` bytes (at least 1) is cut after `shown` and ends with "...". */
void quote_for_reply(char *out, size_t outsz, const char *p, size_t n, size_t shown);

/* printf into a fixed buffer, cut at outsz: for words made of hostile or long parts
 * (domains, records, replies), where the start says what matters and a cut is not an
 * error.  One place for it, so callers need no wrapper of their own. */
__attribute__((format(printf, 3, 4)))
void text_format_cut(char *out, size_t outsz, const char *fmt, ...);

#endif
