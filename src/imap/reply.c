/* reply.c - IMAP status responses and the strings responses carry (reply.h).
 * The text is the caller's words (with client text already escaped); here it is
 * bounded and made safe for one line: CR, LF and other controls become '?'. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parse.h"
#include "imap/reply.h"
#include "util/buf.h"

const char *imap_status_word(enum imap_status st)
{
	return st == IMAP_OK ? "OK" : st == IMAP_NO ? "NO" : "BAD";
}

static void line(struct buf *out, const char *tag, const char *word, const char *code, const char *fmt, va_list ap)
{
	char text[IMAP_REPLY_TEXT_MAX + 8];
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		text[0] = '\0';
	else if ((size_t)n >= IMAP_REPLY_TEXT_MAX)
		memcpy(text + IMAP_REPLY_TEXT_MAX - 3, "...", 4);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	char codebuf[256] = "";
	if (code && code[0]) {
		snprintf(codebuf, sizeof(codebuf), "[%s] ", code);
		for (char *p = codebuf; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	buf_printf(out, "%s %s %s%s\r\n", tag && tag[0] ? tag : "*", word, codebuf, text[0] ? text : "done");
}

void imap_reply_tagged(struct buf *out, const char *tag, enum imap_status st, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line(out, tag, imap_status_word(st), code, fmt, ap);
	va_end(ap);
}

void imap_reply_untagged(struct buf *out, const char *word, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line(out, "*", word, code, fmt, ap);
	va_end(ap);
}

static bool quotable(const char *s, size_t n, bool eight_bit)
{
	if (n > 1024)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == 0 || ch == '\r' || ch == '\n' || (ch >= 0x80 && !eight_bit))
			return false;
	}
	return true;
}

void imap_write_string(struct buf *out, const char *s, size_t n, bool eight_bit)
{
	if (!quotable(s, n, eight_bit)) {
		buf_printf(out, "{%zu}\r\n", n);
		buf_append(out, s, n);
		return;
	}
	buf_appendc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_appendc(out, '\\');
		buf_appendc(out, s[i]);
	}
	buf_appendc(out, '"');
}

void imap_write_nstring(struct buf *out, const char *s, size_t n, bool eight_bit)
{
	if (!s)
		buf_appends(out, "NIL");
	else
		imap_write_string(out, s, n, eight_bit);
}

static bool is_atom(const char *s, size_t n)
{
	if (n == 0 || (n == 3 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return true;
}

void imap_write_astring(struct buf *out, const char *s, size_t n, bool eight_bit)
{
	if (is_atom(s, n))
		buf_append(out, s, n);
	else
		imap_write_string(out, s, n, eight_bit);
}

bool imap_write_mailbox(struct buf *out, const char *name, bool utf8_accept)
{
	size_t n = strlen(name);
	if (utf8_accept) {
		imap_write_string(out, name, n, true);
		return true;
	}
	size_t cap = n * 3 + 8;   /* a 2-octet UTF-8 character becomes at most 3 octets of modified BASE64 */
	char *enc = malloc(cap);
	if (!enc || !imap_mutf7_encode(name, n, enc, cap)) {
		free(enc);
		return false;
	}
	imap_write_string(out, enc, strlen(enc), false);
	free(enc);
	return true;
}
