/* mime_internal.h - what the mime_*.c files share: the tree, its arena, the
 * field lexer and the IMAP string writers.  No other room includes it; the
 * public interface is mime.h. */
#ifndef POSTERN_MSG_MIME_INTERNAL_H
#define POSTERN_MSG_MIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg/mime.h"
#include "util/buf.h"

/* Allocations that live as long as the tree: blocks that never move. */
struct mime_arena_block;
struct mime_arena {
	struct mime_arena_block *head;
	bool failed;              /* an allocation failed: the tree is incomplete */
};
void *mime_arena_alloc(struct mime_arena *a, size_t n);   /* zeroed; NULL on failure */
char *mime_arena_strndup(struct mime_arena *a, const char *s, size_t n);
void mime_arena_free(struct mime_arena *a);

struct mime_tree {
	const char *raw;
	size_t len;
	struct mime_part *parts;  /* breadth-first, so siblings are adjacent; parts[0] is the root */
	size_t n_parts;
	bool truncated;
	struct mime_arena arena;
};

/* Structured fields (mime_field.c): RFC 2045 tokens and quoted strings,
 * comments skipped, RFC 2231 joined.  Content-Type: a value that does not
 * parse is "" "" (Dovecot).  Content-Disposition: "" without a token.
 * mime_token_value: the field's one token (Content-Transfer-Encoding),
 * NULL when it is not one. */
void mime_content_type_parse(struct mime_arena *a, const char *v, size_t n, const char **type,
	const char **sub, struct mime_param **params, size_t *n_params);
void mime_disposition_parse(struct mime_arena *a, const char *v, size_t n, const char **type,
	struct mime_param **params, size_t *n_params);
const char *mime_token_value(struct mime_arena *a, const char *v, size_t n);
/* The value of parameter `name` (ASCII case-insensitive), NULL when absent. */
const char *mime_param_get(const struct mime_param *p, size_t n, const char *name);
/* The field body of the first (or with `last`, the last) field named `name`
 * in a header block, leading white space skipped, unfolded as Dovecot does
 * (CR LF and LF dropped, the WSP after them kept; a bare CR becomes a space,
 * NUL becomes U+FFFD).  NULL when absent. */
char *mime_header_value(struct mime_arena *a, const char *hdr, size_t hlen, const char *name, bool last);

/* IMAP strings (mime_imap.c) written the way Dovecot writes them. */
void mime_imap_string_for_humans(struct buf *out, const char *s, size_t n);   /* NULL: NIL */

/* raw[off, off+n) appended with every bare LF made CRLF, and with
 * nul_to_80 every NUL made 0x80 (mime_section.c). */
void mime_append_crlf(struct buf *out, const char *raw, size_t off, size_t n, bool nul_to_80);

/* Decoders (mime_decode.c), appending to out. */
void mime_decode_base64(struct buf *out, const char *s, size_t n);
void mime_decode_qp(struct buf *out, const char *s, size_t n);       /* line ends made CRLF */
void mime_decode_2047(struct buf *out, const char *s, size_t n);     /* encoded words to UTF-8 */
void mime_to_utf8(struct buf *out, const char *charset, const char *s, size_t n);
void mime_fold(struct buf *out, const char *s, size_t n);            /* case folded for matching */

static inline unsigned char mime_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}
bool mime_ieq(const char *a, const char *b);   /* ASCII case-insensitive; NULL equals nothing */

#endif
