/* mime_section.c - BODY[section] (RFC 3501 §6.4.5) and BINARY[section]
 * (RFC 3516) bytes of a MIME tree, in CRLF form.  Pure: no I/O.
 *
 * Part numbers follow Dovecot's reading of RFC 3501: a part without
 * children has only part 1 (itself); a multipart's parts are numbered
 * from 1; a number after a message/rfc822 part goes into the message it
 * encapsulates.  HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT and TEXT after
 * part numbers need a message/rfc822 part (RFC 3501 §6.4.5); MIME needs
 * part numbers.  Anything else is "no such part" (false: the caller
 * answers an empty string, as Dovecot does). */
#include <string.h>
#include <strings.h>

#include "msg/mime_internal.h"

static void append_clean(struct buf *out, const char *s, size_t n, bool nul_to_80)
{
	const char *nul;
	while (nul_to_80 && n > 0 && (nul = memchr(s, '\0', n)) != NULL) {
		buf_append(out, s, (size_t)(nul - s));
		buf_appendc(out, (char)0x80);   /* IMAP literals hold no NUL (RFC 3501 §4.3); Dovecot sends 0x80 */
		n -= (size_t)(nul - s) + 1;
		s = nul + 1;
	}
	buf_append(out, s, n);
}

void mime_append_crlf(struct buf *out, const char *raw, size_t off, size_t n, bool nul_to_80)
{
	const char *s = raw + off, *end = raw + off + n;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		if (!nl) {
			append_clean(out, s, (size_t)(end - s), nul_to_80);
			return;
		}
		bool cr = nl > raw + off && nl[-1] == '\r';
		append_clean(out, s, (size_t)(nl - s), nul_to_80);
		buf_appends(out, cr ? "\n" : "\r\n");
		s = nl + 1;
	}
}

const struct mime_part *mime_find_part(const struct mime_tree *t, const uint32_t *path, size_t n)
{
	const struct mime_part *p = mime_root(t);
	for (size_t k = 0; p && k < n; k++) {
		uint32_t num = path[k];
		bool more = k + 1 < n;
		if (num == 0)
			return NULL;
		if (mime_ieq(p->type, "multipart")) {
			if (num > p->n_child)
				return NULL;   /* a multipart without parts has none at all */
			p = &p->child[num - 1];
		} else if (num != 1 || (more && !p->message)) {
			return NULL;   /* a single part has only part 1, and nothing below unless a message */
		}
		if (p->message && more)
			p = p->message;   /* go on inside the encapsulated message */
	}
	return p;
}

/* The length of a header as a section: a header that a boundary line
 * follows at once gives that line end to the boundary (RFC 2046 §5.1.1),
 * as Dovecot shows it. */
static size_t header_len(const char *raw, const struct mime_part *m)
{
	size_t n = m->hdr_len;
	if (m->hdr_cut && n > 0 && raw[m->hdr_off + n - 1] == '\n')
		n -= n > 1 && raw[m->hdr_off + n - 2] == '\r' ? 2 : 1;
	return n;
}

static void append_header(struct buf *out, const char *raw, const struct mime_part *m)
{
	mime_append_crlf(out, raw, m->hdr_off, header_len(raw, m), true);
}

/* The end of the header field starting at i (its folded lines and line end). */
static size_t field_end(const char *h, size_t len, size_t i)
{
	for (;;) {
		const char *nl = memchr(h + i, '\n', len - i);
		if (!nl)
			return len;
		i = (size_t)(nl - h) + 1;
		if (i >= len || (h[i] != ' ' && h[i] != '\t'))
			return i;
	}
}

static bool field_listed(const char *h, size_t start, size_t end, const char *const *names, size_t n)
{
	const char *colon = memchr(h + start, ':', end - start);
	if (!colon)
		return false;
	size_t nl = (size_t)(colon - (h + start));
	while (nl > 0 && (h[start + nl - 1] == ' ' || h[start + nl - 1] == '\t'))
		nl--;   /* RFC 5322 §4.5 obs-optional: WSP before the colon */
	for (size_t k = 0; k < n; k++)
		if (names[k] && strlen(names[k]) == nl && strncasecmp(names[k], h + start, nl) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS / HEADER.FIELDS.NOT: the fields (not) named, in order,
 * then the empty line (RFC 3501 §6.4.5: the delimiting blank line is
 * included).  A header without its empty line (cut by the end of the
 * message) ends as it is when its last field is sent, else with CRLF; one
 * cut by a boundary ends as it is, as Dovecot sends them. */
static void header_fields(struct buf *out, const char *raw, const struct mime_part *m, const char *const *names,
	size_t n, bool keep_listed)
{
	const char *h = raw + m->hdr_off;
	size_t len = header_len(raw, m), i = 0;
	bool last_sent = false;   /* the header's last field was sent */
	while (i < len && h[i] != '\n' && !(h[i] == '\r' && i + 1 < len && h[i + 1] == '\n')) {
		size_t end = field_end(h, len, i);
		last_sent = field_listed(h, i, end, names, n) == keep_listed;
		if (last_sent)
			mime_append_crlf(out, h, i, end - i, true);
		i = end;
	}
	if (i < len || (!last_sent && !m->hdr_cut))
		buf_appends(out, "\r\n");
}

bool mime_section(const struct mime_tree *t, const uint32_t *part, size_t n_part, int kind,
	const char *const *fields, size_t n_fields, struct buf *out)
{
	const struct mime_part *p = t ? mime_find_part(t, part, n_part) : NULL;
	if (!p)
		return false;
	const struct mime_part *m = p;   /* the message whose header/text is meant */
	if (n_part > 0 && kind != MIME_SEC_ALL && kind != MIME_SEC_MIME) {
		if (!p->message)
			return false;
		m = p->message;
	}
	switch (kind) {
	case MIME_SEC_ALL:
		if (n_part == 0)
			mime_append_crlf(out, t->raw, 0, t->len, true);
		else
			mime_append_crlf(out, t->raw, p->body_off, p->body_len, true);
		break;
	case MIME_SEC_MIME:   /* the part's own header; only after part numbers */
		if (n_part == 0)
			return false;
		append_header(out, t->raw, m);
		break;
	case MIME_SEC_HEADER:
		append_header(out, t->raw, m);
		break;
	case MIME_SEC_HEADER_FIELDS:
	case MIME_SEC_HEADER_FIELDS_NOT:
		header_fields(out, t->raw, m, fields, n_fields, kind == MIME_SEC_HEADER_FIELDS);
		break;
	case MIME_SEC_TEXT:
		mime_append_crlf(out, t->raw, m->body_off, m->body_len, true);
		break;
	default:
		return false;
	}
	return !out->truncated;
}

bool mime_partial(const struct buf *section, uint32_t offset, uint32_t length, const char **p, size_t *n)
{
	size_t len = section->len;
	const char *d = section->data ? section->data : "";
	if (offset >= len) {
		*p = d + len;
		*n = 0;
		return true;
	}
	*p = d + offset;
	*n = len - offset < length ? len - offset : length;
	return true;
}
