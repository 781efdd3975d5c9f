/* dkim_canon.c - DKIM canonicalisation (RFC 6376 §3.4): header fields (simple and
 * relaxed) and the body as a stream with bounded state, so a body of any size is
 * hashed without being held in memory. */
#include "mailauth/dkim.h"

#include <ctype.h>
#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* §3.4.1 "simple": the field unchanged.  Line ends are made CRLF (a spooled file may
 * hold bare LF), the final line end dropped, then CRLF appended if asked. */
static bool canon_header_simple(const char *f, size_t len, bool with_crlf, struct buf *out)
{
	while (len > 0 && (f[len - 1] == '\n' || f[len - 1] == '\r'))
		len--;
	for (size_t i = 0; i < len; i++) {
		if (f[i] == '\n' && (i == 0 || f[i - 1] != '\r'))
			buf_appendc(out, '\r');
		buf_appendc(out, f[i]);
	}
	if (with_crlf)
		buf_append(out, "\r\n", 2);
	return !out->truncated;
}

/* §3.4.2 "relaxed": name lower-cased; unfolded (CR and LF removed); each run of WSP
 * becomes one SP; WSP at the end of the value and around the colon removed. */
static bool canon_header_relaxed(const char *f, size_t len, bool with_crlf, struct buf *out)
{
	const char *colon = memchr(f, ':', len);
	if (!colon)
		return false;
	size_t nlen = (size_t)(colon - f);
	while (nlen > 0 && is_wsp(f[nlen - 1]))
		nlen--;
	for (size_t i = 0; i < nlen; i++)
		buf_appendc(out, (char)tolower((unsigned char)f[i]));
	buf_appendc(out, ':');
	bool wsp = false, started = false;
	for (const char *p = colon + 1; p < f + len; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (is_wsp(*p)) {
			wsp = true;
			continue;
		}
		if (wsp && started)
			buf_appendc(out, ' ');
		wsp = false;
		started = true;
		buf_appendc(out, *p);
	}
	if (with_crlf)
		buf_append(out, "\r\n", 2);
	return !out->truncated;
}

bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool with_crlf, struct buf *out)
{
	return c == DKIM_CANON_SIMPLE ? canon_header_simple(field, len, with_crlf, out)
		: canon_header_relaxed(field, len, with_crlf, out);
}

void dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon c, dkim_emit *emit, void *arg)
{
	memset(bc, 0, sizeof(*bc));
	bc->canon = c;
	bc->emit = emit;
	bc->arg = arg;
}

static void emit(struct dkim_body_canon *bc, const char *p, size_t n)
{
	bc->emitted += n;
	bc->emit(bc->arg, p, n);
}

/* A content octet of the current line: empty lines held back are real (content
 * follows them), and a held WSP run becomes one SP (relaxed, §3.4.4). */
static void content(struct dkim_body_canon *bc, const char *p, size_t n)
{
	for (; bc->pending_empty > 0; bc->pending_empty--)
		emit(bc, "\r\n", 2);
	if (bc->pending_wsp) {
		emit(bc, " ", 1);
		bc->pending_wsp = false;
	}
	bc->line_has_content = true;
	emit(bc, p, n);
}

/* End of a line: WSP at its end is dropped (relaxed); an empty line is held, since
 * empty lines at the end of the body are ignored (§3.4.3, §3.4.4). */
static void line_end(struct dkim_body_canon *bc)
{
	bc->pending_wsp = false;
	if (bc->line_has_content)
		emit(bc, "\r\n", 2);
	else
		bc->pending_empty++;
	bc->line_has_content = false;
}

/* Feed octets.  Runs of ordinary octets are emitted in one call, not one by one. */
void dkim_body_canon_feed(struct dkim_body_canon *bc, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (bc->cr_pending) {
			bc->cr_pending = false;
			if (p[i] == '\n') {
				line_end(bc);
				i++;
				continue;
			}
			content(bc, "\r", 1);   /* a bare CR is content */
		}
		char c = p[i];
		if (c == '\r') {
			bc->cr_pending = true;
			i++;
		} else if (c == '\n') {
			line_end(bc);
			i++;
		} else if (bc->canon == DKIM_CANON_RELAXED && is_wsp(c)) {
			bc->pending_wsp = true;
			i++;
		} else {
			size_t j = i + 1;
			while (j < n && p[j] != '\r' && p[j] != '\n'
				&& !(bc->canon == DKIM_CANON_RELAXED && is_wsp(p[j])))
				j++;
			content(bc, p + i, j - i);
			i = j;
		}
	}
}

/* A last line without a line end gets one (§3.4.3: "a CRLF is added"; §3.4.4 the same
 * for a non-empty body).  Simple: an empty body is one CRLF; relaxed: nothing. */
void dkim_body_canon_finish(struct dkim_body_canon *bc)
{
	if (bc->cr_pending) {
		bc->cr_pending = false;
		content(bc, "\r", 1);
	}
	if (bc->line_has_content)
		line_end(bc);
	if (bc->canon == DKIM_CANON_SIMPLE && bc->emitted == 0)
		emit(bc, "\r\n", 2);
}
