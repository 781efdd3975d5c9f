/* fetch_render.c - one message's untagged FETCH response (RFC 3501 §7.4.2; RFC 7162
 * §3.1.4 MODSEQ): the items in the order asked, UID first in UID FETCH.  Items that
 * need only the header block (ENVELOPE, RFC822.HEADER, BODY[HEADER...]) read it from
 * the store's index; BODYSTRUCTURE, BODY[TEXT], BODY[1.2] and the like map the file.
 * Every section goes out as a literal in CRLF form (msg/mime.c counts in that form). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "imap/msgcmd.h"

static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE */
static void render_internaldate(time_t t, struct buf *out)
{
	struct tm tm;
	if (!localtime_r(&t, &tm)) {
		buf_appends(out, "\"01-Jan-1970 00:00:00 +0000\"");
		return;
	}
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	buf_printf(out, "\"%2d-%s-%04d %02d:%02d:%02d %c%02ld%02ld\"", tm.tm_mday, months[tm.tm_mon],
		tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

static void render_literal(const char *p, size_t n, struct buf *out)
{
	buf_printf(out, "{%zu}\r\n", n);
	buf_append(out, p, n);
}

static const char *section_kind_name(int kind)
{
	switch (kind) {
	case SEC_HEADER: return "HEADER";
	case SEC_HEADER_FIELDS: return "HEADER.FIELDS";
	case SEC_HEADER_FIELDS_NOT: return "HEADER.FIELDS.NOT";
	case SEC_TEXT: return "TEXT";
	case SEC_MIME: return "MIME";
	default: return "";
	}
}

/* "BODY[1.2.HEADER.FIELDS (FROM TO)]<0>" as the response names it (RFC 3501 §7.4.2). */
static void render_section_name(const struct imap_fetch_item *it, struct buf *out)
{
	const struct imap_section *s = &it->sec;
	buf_appends(out, "BODY[");
	for (size_t k = 0; k < s->n_part; k++)
		buf_printf(out, "%s%u", k ? "." : "", s->part[k]);
	if (s->kind != SEC_ALL)
		buf_printf(out, "%s%s", s->n_part ? "." : "", section_kind_name(s->kind));
	if (s->kind == SEC_HEADER_FIELDS || s->kind == SEC_HEADER_FIELDS_NOT) {
		buf_appends(out, " (");
		for (size_t k = 0; k < s->n_fields; k++)
			buf_printf(out, "%s%s", k ? " " : "", s->fields[k]);
		buf_appendc(out, ')');
	}
	buf_appendc(out, ']');
	if (it->partial)
		buf_printf(out, "<%u>", it->offset);
}

static bool header_only_section(const struct imap_section *s)
{
	return s->n_part == 0 && (s->kind == SEC_HEADER || s->kind == SEC_HEADER_FIELDS ||
		s->kind == SEC_HEADER_FIELDS_NOT);
}

/* The bytes of a section, then cut to <offset.length> (an origin past the end: ""). */
static void render_section(const struct imap_fetch_item *it, struct imap_msgview *v, struct buf *out)
{
	const struct imap_section *s = &it->sec;
	const struct mime_tree *t = header_only_section(s) ? imap_msgview_header_tree(v) : imap_msgview_tree(v);
	struct buf sec;
	buf_init(&sec, IMAP_MSG_MAP_MAX * 2);
	if (t)
		mime_section(t, s->part, s->n_part, (int)s->kind, (const char *const *)s->fields, s->n_fields, &sec);
	const char *p = sec.data ? sec.data : "";
	size_t n = sec.len;
	if (it->partial)
		mime_partial(&sec, it->offset, it->length, &p, &n);
	render_literal(p, n, out);
	buf_free(&sec);
}

/* BINARY[part]<partial> and BINARY.SIZE[part] (RFC 3516 §4.2): the part decoded from
 * its Content-Transfer-Encoding; a literal8 ~{n} when it holds a NUL.  A part whose
 * encoding is not known is NIL (the tagged NO [UNKNOWN-CTE] is the caller's). */
static void render_binary(const struct imap_fetch_item *it, struct imap_msgview *v, struct buf *out)
{
	const struct imap_section *s = &it->sec;
	buf_appends(out, it->att == FA_BINARY_SIZE ? "BINARY.SIZE[" : "BINARY[");
	for (size_t k = 0; k < s->n_part; k++)
		buf_printf(out, "%s%u", k ? "." : "", s->part[k]);
	buf_appendc(out, ']');
	if (it->att == FA_BINARY_SECTION && it->partial)
		buf_printf(out, "<%u>", it->offset);
	const struct mime_tree *t = imap_msgview_tree(v);
	struct buf bin;
	buf_init(&bin, IMAP_MSG_MAP_MAX * 2);
	int r = t ? mime_binary(t, s->part, s->n_part, &bin) : -1;
	if (r == -2) {
		buf_appends(out, " NIL");
	} else if (it->att == FA_BINARY_SIZE) {
		buf_printf(out, " %zu", bin.len);
	} else {
		const char *p = bin.data ? bin.data : "";
		size_t n = bin.len;
		if (it->partial)
			mime_partial(&bin, it->offset, it->length, &p, &n);
		buf_appends(out, memchr(p, '\0', n) ? " ~" : " ");
		render_literal(p, n, out);
	}
	buf_free(&bin);
}

/* RFC822, RFC822.HEADER, RFC822.TEXT (RFC 3501 §6.4.5: BODY[], BODY.PEEK[HEADER], BODY[TEXT]). */
static void render_rfc822(enum imap_fetch_att att, struct imap_msgview *v, struct buf *out)
{
	struct imap_fetch_item it = { .att = FA_BODY_SECTION };
	it.sec.kind = att == FA_RFC822 ? SEC_ALL : att == FA_RFC822_HEADER ? SEC_HEADER : SEC_TEXT;
	buf_appends(out, att == FA_RFC822 ? "RFC822 " : att == FA_RFC822_HEADER ? "RFC822.HEADER " : "RFC822.TEXT ");
	render_section(&it, v, out);
}

static void render_structure(bool extended, struct imap_msgview *v, struct buf *out)
{
	const struct mime_tree *t = imap_msgview_tree(v);
	buf_appends(out, extended ? "BODYSTRUCTURE " : "BODY ");
	if (!t || !mime_bodystructure(t, extended, out))
		buf_appends(out, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
}

static void render_envelope(struct imap_msgview *v, struct buf *out)
{
	const struct mime_tree *t = imap_msgview_header_tree(v);
	buf_appends(out, "ENVELOPE ");
	if (!t || !mime_envelope(t, out))
		buf_appends(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
}

static void render_item(const struct imap_fetch_item *it, struct imap_msgview *v, struct buf *out)
{
	const struct folder_msg *m = v->m;
	switch (it->att) {
	case FA_FLAGS:
		buf_appends(out, "FLAGS ");
		imap_flags_render(v->f, m->flags, m->keywords, out);
		break;
	case FA_INTERNALDATE:
		buf_appends(out, "INTERNALDATE ");
		render_internaldate(m->internaldate, out);
		break;
	case FA_RFC822_SIZE: buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)m->size); break;
	case FA_ENVELOPE: render_envelope(v, out); break;
	case FA_BODYSTRUCTURE: render_structure(true, v, out); break;
	case FA_BODY: render_structure(false, v, out); break;
	case FA_UID: buf_printf(out, "UID %u", m->uid); break;
	case FA_MODSEQ: buf_printf(out, "MODSEQ (%llu)", (unsigned long long)m->modseq); break;
	case FA_RFC822: case FA_RFC822_HEADER: case FA_RFC822_TEXT: render_rfc822(it->att, v, out); break;
	case FA_BODY_SECTION:
		render_section_name(it, out);
		buf_appendc(out, ' ');
		render_section(it, v, out);
		break;
	case FA_BINARY_SECTION: case FA_BINARY_SIZE: render_binary(it, v, out); break;
	default: break;
	}
}

static bool has_att(const struct imap_fetch_item *items, size_t n, enum imap_fetch_att att)
{
	for (size_t k = 0; k < n; k++)
		if (items[k].att == att)
			return true;
	return false;
}

bool imap_fetch_render(const struct imap_fetch_req *r, struct imap_msgview *v, uint32_t seq, struct buf *out)
{
	size_t start = out->len;
	buf_printf(out, "* %u FETCH (", seq);
	bool first = true;
	if (r->uid && !has_att(r->items, r->n_items, FA_UID)) {
		buf_printf(out, "UID %u", v->m->uid);
		first = false;
	}
	for (size_t k = 0; k < r->n_items; k++) {
		if (!first)
			buf_appendc(out, ' ');
		render_item(&r->items[k], v, out);
		first = false;
	}
	if (r->flags_too && !has_att(r->items, r->n_items, FA_FLAGS)) {
		buf_appends(out, first ? "FLAGS " : " FLAGS ");
		imap_flags_render(v->f, v->m->flags, v->m->keywords, out);
		first = false;
	}
	if (r->modseq && !has_att(r->items, r->n_items, FA_MODSEQ))
		buf_printf(out, "%sMODSEQ (%llu)", first ? "" : " ", (unsigned long long)v->m->modseq);
	buf_appends(out, ")\r\n");
	return !out->truncated || out->len == start;
}

bool imap_fetch_needs_body(const struct imap_fetch_item *items, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		switch (items[k].att) {
		case FA_BODYSTRUCTURE: case FA_BODY: case FA_RFC822: case FA_RFC822_TEXT:
		case FA_BINARY_SECTION: case FA_BINARY_SIZE: return true;
		case FA_BODY_SECTION:
			if (!header_only_section(&items[k].sec))
				return true;
			break;
		default: break;
		}
	}
	return false;
}

bool imap_fetch_sets_seen(const struct imap_fetch_item *items, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (items[k].att == FA_RFC822 || items[k].att == FA_RFC822_TEXT ||
		    ((items[k].att == FA_BODY_SECTION || items[k].att == FA_BINARY_SECTION) && !items[k].peek))
			return true;
	}
	return false;
}
