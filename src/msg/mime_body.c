/* mime_body.c - BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, §9 body) of a MIME
 * tree, with the extension data (md5, disposition, language, location).
 * Pure: no I/O.  The recursion follows the tree, whose depth mime_parse
 * bounds (MIME_MAX_DEPTH), so hostile nesting cannot exhaust the stack.
 *
 * As Dovecot writes it (tests/integration/test_mime_oracle.py): types,
 * subtypes and parameters keep their case; a text part without a charset
 * parameter gets "charset" "us-ascii" appended (RFC 2045 §5.2 default); no
 * Content-Transfer-Encoding is "7bit"; a multipart without parts (no
 * boundary, or none found) shows one empty text/plain part, since IMAP's
 * body-type-mpart needs at least one body; Content-Language is a list. */
#include <string.h>

#include "msg/mime_internal.h"

static void nstring(struct buf *out, const char *s)
{
	mime_imap_nstring(out, s, s ? strlen(s) : 0);
}

/* body-fld-param = "(" string SP string *(SP string SP string) ")" / nil */
static void write_params(struct buf *out, const struct mime_param *p, size_t n, bool text)
{
	bool add_charset = text && !mime_param_get(p, n, "charset");
	if (n == 0 && !add_charset) {
		buf_appends(out, "NIL");
		return;
	}
	buf_appendc(out, '(');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_appendc(out, ' ');
		nstring(out, p[i].name);
		buf_appendc(out, ' ');
		nstring(out, p[i].value);
	}
	if (add_charset)
		buf_appends(out, n ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
	buf_appendc(out, ')');
}

/* body-fld-lang = nstring / "(" string *(SP string) ")": the language tags
 * of Content-Language (RFC 3282 §2: tokens separated by commas, comments
 * skipped); like Dovecot, the list stops at anything else. */
static bool lang_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static const char *skip_comments(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			return s;
		size_t depth = 0;
		do {
			depth += *s == '(';
			depth -= *s == ')';
			s += *s == '\\' && s[1] ? 2 : 1;
		} while (*s && depth > 0);
	}
}

static void write_language(struct buf *out, const char *v)
{
	size_t count = 0;
	for (const char *s = v ? skip_comments(v) : ""; *s;) {
		const char *start = s;
		while (lang_char((unsigned char)*s))
			s++;
		if (s == start)
			break;
		buf_appends(out, count++ ? " " : "(");
		mime_imap_nstring(out, start, (size_t)(s - start));
		s = skip_comments(s);
		if (*s != ',')
			break;
		s = skip_comments(s + 1);
	}
	buf_appends(out, count ? ")" : "NIL");
}

/* body-fld-dsp = "(" string SP body-fld-param ")" / nil */
static void write_disposition(struct buf *out, const struct mime_part *p)
{
	if (!p->disposition) {
		buf_appends(out, "NIL");
		return;
	}
	buf_appendc(out, '(');
	nstring(out, p->disposition);
	buf_appendc(out, ' ');
	write_params(out, p->disp_params, p->n_disp_params, false);
	buf_appendc(out, ')');
}

/* SP body-fld-dsp SP body-fld-lang SP body-fld-loc: both kinds end with these. */
static void write_ext_tail(struct buf *out, const struct mime_part *p)
{
	buf_appendc(out, ' ');
	write_disposition(out, p);
	buf_appendc(out, ' ');
	write_language(out, p->language);
	buf_appendc(out, ' ');
	nstring(out, p->location);
}

static void write_part(const struct mime_tree *t, const struct mime_part *p, bool ext, struct buf *out);

/* The part shown for a multipart that has none. */
static void write_empty_text(struct buf *out, bool ext)
{
	buf_appends(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
	buf_appends(out, ext ? " NIL NIL NIL NIL)" : ")");
}

static void write_multipart(const struct mime_tree *t, const struct mime_part *p, bool ext, struct buf *out)
{
	buf_appendc(out, '(');
	for (size_t i = 0; i < p->n_child; i++)
		write_part(t, &p->child[i], ext, out);
	if (p->n_child == 0)
		write_empty_text(out, ext);
	buf_appendc(out, ' ');
	nstring(out, p->subtype);
	if (ext) {
		buf_appendc(out, ' ');
		write_params(out, p->params, p->n_params, false);
		write_ext_tail(out, p);
	}
	buf_appendc(out, ')');
}

/* body-type-basic / body-type-msg / body-type-text with body-ext-1part. */
static void write_single(const struct mime_tree *t, const struct mime_part *p, bool ext, struct buf *out)
{
	bool text = mime_ieq(p->type, "text");
	buf_appendc(out, '(');
	if (p->message) {
		buf_appends(out, "\"message\" \"rfc822\"");   /* whatever its case, as Dovecot */
	} else {
		nstring(out, p->type);
		buf_appendc(out, ' ');
		nstring(out, p->subtype);
	}
	buf_appendc(out, ' ');
	write_params(out, p->params, p->n_params, text);
	buf_appendc(out, ' ');
	nstring(out, p->id);
	buf_appendc(out, ' ');
	nstring(out, p->description);
	buf_appendc(out, ' ');
	nstring(out, p->encoding ? p->encoding : "7bit");
	buf_printf(out, " %llu", (unsigned long long)p->body_size);
	if (p->message) {
		buf_appendc(out, ' ');
		mime_envelope_part(t, p->message, out);
		buf_appendc(out, ' ');
		write_part(t, p->message, ext, out);
		buf_printf(out, " %llu", (unsigned long long)p->lines);
	} else if (text) {
		buf_printf(out, " %llu", (unsigned long long)p->lines);
	}
	if (ext) {
		buf_appendc(out, ' ');
		nstring(out, p->md5);
		write_ext_tail(out, p);
	}
	buf_appendc(out, ')');
}

static void write_part(const struct mime_tree *t, const struct mime_part *p, bool ext, struct buf *out)
{
	if (mime_ieq(p->type, "multipart"))
		write_multipart(t, p, ext, out);
	else
		write_single(t, p, ext, out);
}

bool mime_bodystructure(const struct mime_tree *t, bool extended, struct buf *out)
{
	if (!t)
		return false;
	write_part(t, mime_root(t), extended, out);
	return !out->truncated;
}

bool mime_bodystructure_part(const struct mime_tree *t, const struct mime_part *p, bool extended, struct buf *out)
{
	if (!t || !p)
		return false;
	write_part(t, p, extended, out);
	return !out->truncated;
}
