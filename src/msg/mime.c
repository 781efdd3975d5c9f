/* mime.c - the MIME tree of a message (see mime.h): one pass over the lines
 * with an explicit stack of the open parts, then a breadth-first layout so a
 * part's children are adjacent (mime_part.child[i]).  Pure: no I/O.
 *
 * RFC 2046 §5.1.1: a boundary delimiter line is CRLF "--" boundary; the
 * CRLF before it is part of the delimiter, not of the body above.  Like
 * Dovecot, anything may follow the boundary on its line, a line that starts
 * with the boundary of an enclosing multipart closes the inner parts too,
 * and the innermost boundary is tried first. */
#include "msg/mime.h"

#include <stdlib.h>
#include <string.h>

#include "msg/header.h"
#include "msg/mime_internal.h"

/* ---- The arena ---- */

struct mime_arena_block {
	struct mime_arena_block *next;
	size_t used, size;
	max_align_t data[];
};

#define ARENA_BLOCK 16384

void *mime_arena_alloc(struct mime_arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct mime_arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		b = calloc(1, sizeof(*b) + size);
		if (!b) {
			a->failed = true;
			return NULL;
		}
		b->size = size;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

char *mime_arena_strndup(struct mime_arena *a, const char *s, size_t n)
{
	char *p = mime_arena_alloc(a, n + 1);
	if (p && n)
		memcpy(p, s, n);
	return p;
}

void mime_arena_free(struct mime_arena *a)
{
	while (a->head) {
		struct mime_arena_block *n = a->head->next;
		free(a->head);
		a->head = n;
	}
}

bool mime_ieq(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	for (; *a && *b; a++, b++)
		if (mime_lower((unsigned char)*a) != mime_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

/* ---- Parts while parsing: indices, since the array grows ---- */

struct node {
	struct mime_part part;
	size_t parent, first_child, last_child, next_sibling;   /* NONE when absent */
	size_t n_child;
};

#define NONE ((size_t)-1)

/* An open part: the parts above it on the stack are inside it. */
struct open_part {
	size_t node;
	const char *boundary;    /* an active multipart boundary, NULL otherwise */
	size_t blen;
};

struct parser {
	struct mime_tree *t;
	const unsigned char *p;
	size_t len;
	struct node *nodes;
	size_t n_nodes, cap_nodes;
	struct open_part stack[MIME_MAX_DEPTH];
	size_t depth;            /* entries on the stack */
	size_t after_boundary;   /* where the last boundary line ended (its line end included) */
	bool failed;
};

static size_t new_node(struct parser *ps, size_t parent)
{
	if (ps->n_nodes >= MIME_MAX_PARTS) {
		ps->t->truncated = true;
		return NONE;
	}
	if (ps->n_nodes == ps->cap_nodes) {
		size_t cap = ps->cap_nodes ? ps->cap_nodes * 2 : 16;
		struct node *n = realloc(ps->nodes, cap * sizeof(*n));
		if (!n) {
			ps->failed = true;
			return NONE;
		}
		ps->nodes = n;
		ps->cap_nodes = cap;
	}
	size_t i = ps->n_nodes++;
	struct node *n = &ps->nodes[i];
	memset(n, 0, sizeof(*n));
	n->parent = parent;
	n->first_child = n->last_child = n->next_sibling = NONE;
	if (parent != NONE) {
		struct node *pn = &ps->nodes[parent];
		if (pn->last_child == NONE)
			pn->first_child = i;
		else
			ps->nodes[pn->last_child].next_sibling = i;
		pn->last_child = i;
		pn->n_child++;
		n->part.depth = pn->part.depth + 1;
	}
	return i;
}

/* ---- Lines ---- */

static size_t line_end(const struct parser *ps, size_t i)
{
	const unsigned char *nl = memchr(ps->p + i, '\n', ps->len - i);
	return nl ? (size_t)(nl - ps->p) : ps->len;
}

/* The start of the next line after the one starting at i. */
static size_t next_line(const struct parser *ps, size_t i)
{
	size_t e = line_end(ps, i);
	return e < ps->len ? e + 1 : e;
}

/* Which open multipart's boundary starts the line at i (innermost first)?
 * Returns its stack index or NONE; *close says "--boundary--". */
static size_t boundary_at(const struct parser *ps, size_t i, bool *close)
{
	if (ps->len - i < 2 || ps->p[i] != '-' || ps->p[i + 1] != '-')
		return NONE;
	for (size_t k = ps->depth; k-- > 0;) {
		const struct open_part *o = &ps->stack[k];
		if (!o->boundary || ps->len - i - 2 < o->blen || memcmp(ps->p + i + 2, o->boundary, o->blen) != 0)
			continue;
		size_t j = i + 2 + o->blen;
		*close = ps->len - j >= 2 && ps->p[j] == '-' && ps->p[j + 1] == '-';
		return k;
	}
	return NONE;
}

/* Size in CRLF form and line count of raw[off, off+n). */
static void crlf_measure(const unsigned char *p, size_t off, size_t n, uint64_t *size, uint64_t *lines)
{
	uint64_t lf = 0, bare = 0;
	const unsigned char *s = p + off, *end = p + off + n;
	while (s < end) {
		const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
		if (!nl)
			break;
		lf++;
		if (nl == p + off || nl[-1] != '\r')
			bare++;
		s = nl + 1;
	}
	*size = n + bare;
	if (lines)
		*lines = lf;
}

/* ---- A part's header ---- */

/* The header starting at i: up to and including the empty line, or up to a
 * boundary line of an open multipart, or the end.  Returns the body's start.
 * A header cut by a boundary keeps its last line end (Dovecot: it is the
 * header's, not the delimiter's). */
static size_t scan_header(struct parser *ps, size_t i)
{
	while (i < ps->len) {
		bool close;
		if (ps->p[i] == '\n' || (ps->p[i] == '\r' && i + 1 < ps->len && ps->p[i + 1] == '\n'))
			return next_line(ps, i);   /* the empty line ends the header (RFC 5322 §2.1) */
		if (boundary_at(ps, i, &close) != NONE) {
			ps->after_boundary = i;
			return i;
		}
		i = next_line(ps, i);
	}
	return i;
}

/* Fill the part's Content-* fields from its header (RFC 2045 §5, §6, §7;
 * RFC 2183; RFC 3282; RFC 2557; RFC 1864).  A message (the top one, or an
 * encapsulated one) with neither Content-Type nor MIME-Version is not MIME
 * (RFC 2045 §4): its Content-* fields are ignored, as Dovecot does. */
static void apply_header(struct parser *ps, struct mime_part *mp, bool in_digest, bool is_message)
{
	struct mime_arena *a = &ps->t->arena;
	const char *h = (const char *)ps->p + mp->hdr_off;
	size_t hl = mp->hdr_len;
	char *ct = mime_header_value(a, h, hl, "Content-Type", false);
	mp->type = in_digest ? "message" : "text";
	mp->subtype = in_digest ? "rfc822" : "plain";
	if (ct) {
		mp->has_content_type = true;
		mime_content_type_parse(a, ct, strlen(ct), &mp->type, &mp->subtype, &mp->params, &mp->n_params);
	} else if (is_message && msg_header_count(h, hl, "MIME-Version") == 0) {
		return;
	}
	char *cte = mime_header_value(a, h, hl, "Content-Transfer-Encoding", false);
	mp->encoding = cte ? mime_token_value(a, cte, strlen(cte)) : NULL;   /* a token (RFC 2045 §6.1) */
	mp->id = mime_header_value(a, h, hl, "Content-ID", false);
	mp->description = mime_header_value(a, h, hl, "Content-Description", false);
	mp->md5 = mime_header_value(a, h, hl, "Content-MD5", false);
	mp->language = mime_header_value(a, h, hl, "Content-Language", false);
	mp->location = mime_header_value(a, h, hl, "Content-Location", false);
	char *cd = mime_header_value(a, h, hl, "Content-Disposition", false);
	if (cd)
		mime_disposition_parse(a, cd, strlen(cd), &mp->disposition, &mp->disp_params, &mp->n_disp_params);
}

static void push(struct parser *ps, size_t node, const char *boundary)
{
	ps->stack[ps->depth].node = node;
	ps->stack[ps->depth].boundary = boundary;
	ps->stack[ps->depth].blen = boundary ? strlen(boundary) : 0;
	ps->depth++;
}

/* A part begins at i (its header): parse the header, open it, and open the
 * encapsulated messages it starts.  Returns where the line scan goes on. */
static size_t begin_part(struct parser *ps, size_t node, size_t i)
{
	for (;;) {
		struct mime_part *mp = &ps->nodes[node].part;
		size_t parent = ps->nodes[node].parent;
		bool digest = parent != NONE && ps->nodes[parent].part.is_multipart &&
			mime_ieq(ps->nodes[parent].part.subtype, "digest");
		mp->hdr_off = i;
		mp->body_off = scan_header(ps, i);
		mp->hdr_len = mp->body_off - i;
		bool is_message = parent == NONE || !ps->nodes[parent].part.is_multipart;
		apply_header(ps, mp, digest, is_message);
		i = mp->body_off;
		bool room = ps->depth + 1 < MIME_MAX_DEPTH;
		if (mime_ieq(mp->type, "multipart")) {
			const char *b = mime_param_get(mp->params, mp->n_params, "boundary");
			if (b && *b && room) {
				mp->is_multipart = true;
				push(ps, node, b);
				return i;
			}
			if (!room)
				ps->t->truncated = true;
		} else if (mime_ieq(mp->type, "message") && mime_ieq(mp->subtype, "rfc822")) {
			/* Parsed whatever its Content-Transfer-Encoding (RFC 2046 §5.2.1 allows
			 * only 7bit, 8bit and binary), as Dovecot does: an encoded one shows a
			 * message with an empty envelope. */
			size_t child = room ? new_node(ps, node) : NONE;
			if (child != NONE) {
				push(ps, node, NULL);
				node = child;
				continue;
			}
			ps->t->truncated = true;
		}
		push(ps, node, NULL);
		return i;
	}
}

/* Close the open parts above stack index k: their bodies end at `end`
 * (each no earlier than its own start). */
static void close_above(struct parser *ps, size_t k, size_t end)
{
	while (ps->depth > k + 1) {
		struct mime_part *mp = &ps->nodes[ps->stack[--ps->depth].node].part;
		size_t e = end < mp->body_off ? mp->body_off : end;
		mp->body_len = e - mp->body_off;
	}
}

/* The line at i is a boundary of stack[k].  Returns where the scan goes on. */
static size_t at_boundary(struct parser *ps, size_t k, size_t i, bool close)
{
	/* The line end before the delimiter belongs to it (RFC 2046 §5.1.1).
	 * A line end that already ended an earlier boundary line is not taken twice
	 * (an empty epilogue: "--inner--" LF "--outer"), as in Dovecot.
	 * Nor is one that ends the header of the innermost part (its empty line). */
	struct mime_part *inner = &ps->nodes[ps->stack[ps->depth - 1].node].part;
	size_t end = i, floor = inner->body_off;
	if (i == inner->body_off && inner->hdr_len > 0 && k + 1 < ps->depth)
		inner->hdr_cut = true;   /* an outer boundary right after this part's header */
	if (floor < ps->after_boundary)
		floor = ps->after_boundary;
	if (end > floor && ps->p[end - 1] == '\n')
		end -= end - 1 > floor && ps->p[end - 2] == '\r' ? 2 : 1;
	close_above(ps, k, end);
	size_t next = next_line(ps, i);
	ps->after_boundary = next;
	if (close) {
		ps->stack[k].boundary = NULL;   /* the epilogue: the multipart's, until an outer boundary */
		return next;
	}
	size_t child = new_node(ps, ps->stack[k].node);
	if (child == NONE)
		return next;   /* out of parts: the rest is the multipart's own body */
	return begin_part(ps, child, next);
}

static void parse_lines(struct parser *ps)
{
	size_t i = begin_part(ps, 0, 0);
	while (i < ps->len) {
		bool close = false;
		size_t k = boundary_at(ps, i, &close);
		i = k == NONE ? next_line(ps, i) : at_boundary(ps, k, i, close);
	}
	close_above(ps, NONE, ps->len);   /* k = NONE: k + 1 == 0, close them all */
}

/* ---- The finished tree ---- */

/* Breadth-first into one array, so that each part's children are adjacent;
 * then the sizes in CRLF form. */
static bool lay_out(struct parser *ps)
{
	struct mime_tree *t = ps->t;
	size_t n = ps->n_nodes;
	t->parts = mime_arena_alloc(&t->arena, n * sizeof(*t->parts));
	size_t *order = malloc(n * sizeof(*order));
	if (!t->parts || !order) {
		free(order);
		return false;
	}
	order[0] = 0;
	size_t placed = 1;
	for (size_t j = 0; j < placed; j++) {
		struct node *nd = &ps->nodes[order[j]];
		struct mime_part *mp = &t->parts[j];
		*mp = nd->part;
		mp->child = nd->n_child ? &t->parts[placed] : NULL;
		mp->n_child = nd->n_child;
		for (size_t c = nd->first_child; c != NONE; c = ps->nodes[c].next_sibling)
			order[placed++] = c;
	}
	/* Parents again, now that every part has been copied. */
	for (size_t j = 0; j < placed; j++)
		for (size_t c = 0; c < t->parts[j].n_child; c++)
			t->parts[j].child[c].parent = &t->parts[j];
	t->parts[0].parent = NULL;
	for (size_t j = 0; j < placed; j++) {
		struct mime_part *mp = &t->parts[j];
		bool rfc822 = mp->n_child == 1 && !mp->is_multipart;
		mp->message = rfc822 ? &mp->child[0] : NULL;
		crlf_measure(ps->p, mp->hdr_off, mp->hdr_len, &mp->hdr_size, NULL);
		crlf_measure(ps->p, mp->body_off, mp->body_len, &mp->body_size, &mp->lines);
	}
	t->n_parts = placed;
	free(order);
	return true;
}

struct mime_tree *mime_parse(const char *raw, size_t len)
{
	struct mime_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->raw = raw ? raw : "";
	t->len = raw ? len : 0;
	struct parser ps = { .t = t, .p = (const unsigned char *)t->raw, .len = t->len };
	if (new_node(&ps, NONE) == NONE) {
		mime_free(&t);
		return NULL;
	}
	parse_lines(&ps);
	bool ok = !ps.failed && !t->arena.failed && lay_out(&ps);
	free(ps.nodes);
	if (!ok)
		mime_free(&t);
	return t;
}

void mime_free(struct mime_tree **t)
{
	if (!t || !*t)
		return;
	mime_arena_free(&(*t)->arena);
	free(*t);
	*t = NULL;
}

const struct mime_part *mime_root(const struct mime_tree *t)
{
	return t ? &t->parts[0] : NULL;
}

size_t mime_part_count(const struct mime_tree *t)
{
	return t ? t->n_parts : 0;
}

bool mime_truncated(const struct mime_tree *t)
{
	return t && t->truncated;
}
