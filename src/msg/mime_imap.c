/* mime_imap.c - IMAP strings (RFC 3501 §4.3, §9 string/nstring) written the
 * way Dovecot writes them, so both servers answer FETCH byte for byte alike.
 * Pure: no I/O.
 *
 * quoted    = DQUOTE *QUOTED-CHAR DQUOTE;  QUOTED-CHAR = TEXT-CHAR except
 *             quoted-specials, or "\" quoted-specials;  TEXT-CHAR excludes
 *             CR and LF, and is 7-bit: 8-bit, CR, LF or NUL need a literal.
 * Dovecot also prefers a literal over more than four escapes. */
#include <string.h>

#include "msg/mime_internal.h"

static void literal(struct buf *out, const char *s, size_t n)
{
	buf_printf(out, "{%zu}\r\n", n);
	buf_append(out, s, n);
}

void mime_imap_nstring(struct buf *out, const char *s, size_t n)
{
	if (!s) {
		buf_appends(out, "NIL");
		return;
	}
	unsigned escapes = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c == '"' || c == '\\') && escapes++ < 4)
			continue;
		if (c == '"' || c == '\\' || c == '\r' || c == '\n' || c == '\0' || c >= 0x80) {
			literal(out, s, n);
			return;
		}
	}
	buf_appendc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_appendc(out, '\\');
		buf_appendc(out, s[i]);
	}
	buf_appendc(out, '"');
}

/* Text meant for people (Subject, display names): runs of white space and
 * line ends become one space, leading and trailing ones go, NUL becomes
 * 0x80.  Anything that needs changing, escaping or is 8-bit is written as a
 * literal, plain text as a quoted string, only white space as "". */
void mime_imap_string_for_humans(struct buf *out, const char *s, size_t n)
{
	if (!s) {
		buf_appends(out, "NIL");
		return;
	}
	bool modify = false, lwsp = true, only_lwsp = true;
	for (size_t i = 0; i < n && !modify; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
		if ((ws && (lwsp || c != ' ')) || c == '"' || c == '\\' || c == '\0' || c >= 0x80)
			modify = true;
		lwsp = ws;
		if (!ws)
			only_lwsp = false;
	}
	if (!modify && n > 0 && lwsp)
		modify = true;   /* a trailing space */
	if (!modify) {
		buf_appendc(out, '"');
		buf_append(out, s, n);
		buf_appendc(out, '"');
		return;
	}
	struct buf t;
	buf_init(&t, n + 1);
	lwsp = true;
	only_lwsp = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!lwsp)
				buf_appendc(&t, ' ');
			lwsp = true;
			continue;
		}
		buf_appendc(&t, c == '\0' ? (char)0x80 : (char)c);
		lwsp = false;
		only_lwsp = false;
	}
	if (lwsp && t.len > 0)
		t.len--;   /* the trailing space */
	if (only_lwsp || t.len == 0)
		buf_appends(out, "\"\"");
	else
		literal(out, t.data, t.len);
	buf_free(&t);
}
