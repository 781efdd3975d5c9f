/* mime_search.c - what SEARCH and FETCH BINARY need of a MIME tree (see
 * mime.h): header fields and body text decoded to UTF-8 and matched
 * without regard to case (RFC 3501 §6.4.4), BINARY[section] (RFC 3516:
 * every part inside a multipart or message decoded too, as Dovecot does),
 * and the Date: field (RFC 5322 §3.3, the obsolete zones of §4.3).
 * Pure: no I/O.
 *
 * Body text means the text parts (type text, and parts without a
 * Content-Type; for TEXT also every header: the message's, the parts' and
 * those of encapsulated messages), decoded
 * from its Content-Transfer-Encoding and converted from its charset;
 * other parts (images, archives) are not searched, and neither are
 * preambles and epilogues.  Each searched part is bounded by
 * MIME_SEARCH_PART_MAX decoded octets. */
#include <string.h>
#include <strings.h>

#include "msg/header.h"
#include "msg/mime_internal.h"

#define MIME_SEARCH_PART_MAX (32u << 20)

/* Does folded(hay) contain folded(needle)?  An empty needle is in everything. */
static bool folded_contains(const char *hay, size_t n, const char *needle)
{
	size_t nl = strlen(needle);
	if (nl == 0)
		return true;
	struct buf h, k;
	buf_init(&h, (size_t)n * 2 + 16);
	buf_init(&k, nl * 2 + 16);
	mime_fold(&h, hay, n);
	mime_fold(&k, needle, nl);
	bool found = h.len >= k.len && memmem(h.data ? h.data : "", h.len, k.data, k.len) != NULL;
	buf_free(&h);
	buf_free(&k);
	return found;
}

/* A field body unfolded (RFC 5322 §2.2.3) and its encoded words decoded. */
static void decoded_value(struct buf *out, const char *v, size_t n)
{
	struct buf u;
	buf_init(&u, n + 1);
	for (size_t i = 0; i < n; i++)
		if (v[i] != '\r' && v[i] != '\n')
			buf_appendc(&u, v[i]);
	mime_decode_2047(out, u.data ? u.data : "", u.len);
	buf_free(&u);
}

bool mime_header_contains(const struct mime_tree *t, const char *field, const char *needle)
{
	const struct mime_part *r = mime_root(t);
	if (!r)
		return false;
	return mime_header_block_contains(t->raw + r->hdr_off, r->hdr_len, field, needle);
}

bool mime_header_block_contains(const char *h, size_t hlen, const char *field, const char *needle)
{
	if (!h || !field || !needle)
		return false;
	for (size_t i = 0;; i++) {
		const char *v;
		size_t vl;
		if (!msg_header_find_nth(h, hlen, field, i, &v, &vl))
			break;
		struct buf d;
		buf_init(&d, MIME_SEARCH_PART_MAX);
		decoded_value(&d, v, vl);
		bool found = folded_contains(d.data ? d.data : "", d.len, needle);
		buf_free(&d);
		if (found)
			return true;
	}
	return false;
}

/* A whole header block, each field decoded, one per line. */
static void decoded_header(struct buf *out, const char *h, size_t len)
{
	size_t i = 0;
	while (i < len && h[i] != '\n' && !(h[i] == '\r' && i + 1 < len && h[i + 1] == '\n')) {
		size_t e = i;
		for (;;) {
			const char *nl = memchr(h + e, '\n', len - e);
			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		decoded_value(out, h + i, e - i);
		buf_appendc(out, '\n');
		i = e;
	}
}

/* The part's body decoded from its transfer encoding (RFC 2045 §6); the
 * identity encodings in CRLF form. */
static bool decode_body(struct buf *out, const char *raw, const struct mime_part *p)
{
	const char *b = raw + p->body_off;
	const char *enc = p->encoding;
	if (!enc || mime_ieq(enc, "7bit") || mime_ieq(enc, "8bit") || mime_ieq(enc, "binary"))
		mime_append_crlf(out, raw, p->body_off, p->body_len, false);
	else if (mime_ieq(enc, "base64"))
		mime_decode_base64(out, b, p->body_len);
	else if (mime_ieq(enc, "quoted-printable"))
		mime_decode_qp(out, b, p->body_len);
	else
		return false;   /* RFC 3516 §4.3: UNKNOWN-CTE */
	return true;
}

/* A message that is not MIME (no Content-Type, no MIME-Version) shows no
 * encoding in BODYSTRUCTURE, but Dovecot's SEARCH and BINARY still decode
 * the one its Content-Transfer-Encoding names; so do these. */
static struct mime_part with_search_encoding(const struct mime_tree *t, const struct mime_part *p,
	struct mime_arena *a)
{
	struct mime_part q = *p;
	if (!p->encoding && !p->has_content_type) {
		char *cte = mime_header_value(a, t->raw + p->hdr_off, p->hdr_len, "Content-Transfer-Encoding", false);
		q.encoding = cte ? mime_token_value(a, cte, strlen(cte)) : NULL;
	}
	return q;
}

static bool part_text_contains(const struct mime_tree *t, const struct mime_part *part, const char *needle)
{
	struct buf dec, utf8;
	struct mime_arena a = { 0 };
	struct mime_part q = with_search_encoding(t, part, &a);
	const struct mime_part *p = &q;
	buf_init(&dec, MIME_SEARCH_PART_MAX);
	buf_init(&utf8, MIME_SEARCH_PART_MAX);
	if (!decode_body(&dec, t->raw, p))
		buf_append(&dec, t->raw + p->body_off, p->body_len);
	mime_to_utf8(&utf8, mime_param_get(p->params, p->n_params, "charset"), dec.data ? dec.data : "", dec.len);
	bool found = folded_contains(utf8.data ? utf8.data : "", utf8.len, needle);
	buf_free(&dec);
	buf_free(&utf8);
	mime_arena_free(&a);
	return found;
}

static bool header_text_contains(const struct mime_tree *t, const struct mime_part *m, const char *needle)
{
	struct buf d;
	buf_init(&d, MIME_SEARCH_PART_MAX);
	decoded_header(&d, t->raw + m->hdr_off, m->hdr_len);
	bool found = folded_contains(d.data ? d.data : "", d.len, needle);
	buf_free(&d);
	return found;
}

bool mime_text_contains(const struct mime_tree *t, const char *needle, bool include_headers)
{
	const struct mime_part *r = mime_root(t);
	if (!r || !needle)
		return false;
	for (size_t i = 0; i < t->n_parts; i++) {
		const struct mime_part *p = &t->parts[i];
		if (include_headers && header_text_contains(t, p, needle))
			return true;   /* TEXT: every header, the parts' MIME headers too, as Dovecot */
		if (p->n_child == 0 && (mime_ieq(p->type, "text") || !p->has_content_type) &&
			!mime_ieq(p->type, "multipart") && part_text_contains(t, p, needle))
			return true;
	}
	return false;
}

static bool is_identity(const char *enc)
{
	return !enc || mime_ieq(enc, "7bit") || mime_ieq(enc, "8bit") || mime_ieq(enc, "binary");
}

/* A decoded part's header: its Content-Transfer-Encoding says binary now
 * (RFC 3516 §4.2, as Dovecot writes it), the other fields as they are. */
static void binary_header(struct buf *out, const char *raw, const struct mime_part *p)
{
	const char *h = raw + p->hdr_off;
	size_t len = p->hdr_len, i = 0;
	while (i < len && h[i] != '\n' && !(h[i] == '\r' && i + 1 < len && h[i + 1] == '\n')) {
		size_t e = i;
		for (;;) {
			const char *nl = memchr(h + e, '\n', len - e);
			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		static const char cte[] = "Content-Transfer-Encoding:";
		if (e - i >= sizeof(cte) - 1 && strncasecmp(h + i, cte, sizeof(cte) - 1) == 0)
			buf_appends(out, "Content-Transfer-Encoding: binary\r\n");
		else
			mime_append_crlf(out, h, i, e - i, false);
		i = e;
	}
	mime_append_crlf(out, h, i, len - i, false);   /* the empty line */
}

static int binary_part(const struct mime_tree *t, const struct mime_part *p, struct buf *out);

/* A multipart's or message's body with every part inside decoded. */
static int binary_container_body(const struct mime_tree *t, const struct mime_part *p, struct buf *out)
{
	size_t pos = p->body_off;
	for (size_t c = 0; c < p->n_child; c++) {
		const struct mime_part *ch = &p->child[c];
		mime_append_crlf(out, t->raw, pos, ch->hdr_off - pos, false);   /* preamble, delimiter lines */
		int r = binary_part(t, ch, out);
		if (r != 0)
			return r;
		pos = ch->body_off + ch->body_len;
	}
	mime_append_crlf(out, t->raw, pos, p->body_off + p->body_len - pos, false);   /* the epilogue */
	return 0;
}

/* A part, header and body, decoded (the recursion follows the tree, whose
 * depth mime_parse bounds). */
static int binary_part(const struct mime_tree *t, const struct mime_part *p, struct buf *out)
{
	if (p->n_child > 0) {
		mime_append_crlf(out, t->raw, p->hdr_off, p->hdr_len, false);
		return binary_container_body(t, p, out);
	}
	struct mime_arena a = { 0 };
	struct mime_part q = with_search_encoding(t, p, &a);
	int r = 0;
	if (is_identity(q.encoding)) {
		mime_append_crlf(out, t->raw, p->hdr_off, p->hdr_len + p->body_len, false);
	} else {
		binary_header(out, t->raw, p);
		r = decode_body(out, t->raw, &q) ? 0 : -2;
	}
	mime_arena_free(&a);
	return r;
}

int mime_binary(const struct mime_tree *t, const uint32_t *part, size_t n_part, struct buf *out)
{
	const struct mime_part *p = t ? mime_find_part(t, part, n_part) : NULL;
	if (!p)
		return -1;
	int r;
	if (n_part == 0)
		r = binary_part(t, p, out);   /* BINARY[]: the whole message */
	else if (p->n_child > 0)
		r = binary_container_body(t, p, out);
	else {
		struct mime_arena a = { 0 };
		struct mime_part q = with_search_encoding(t, p, &a);
		r = decode_body(out, t->raw, &q) ? 0 : -2;
		mime_arena_free(&a);
	}
	return r == 0 && out->truncated ? -1 : r;
}
