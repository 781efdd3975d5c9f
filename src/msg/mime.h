/* mime.h - a message's structure as IMAP shows it (RFC 3501 §6.4.5, §7.4.2):
 * the MIME tree (RFC 2045/2046, RFC 2231 parameters), ENVELOPE, BODY and
 * BODYSTRUCTURE, BODY[section] bytes, and the SEARCH helpers.  Pure: no I/O.
 *
 * The tree points into the raw message, which the caller keeps alive (and
 * unchanged) until mime_free().  The raw bytes may use LF or CRLF line ends;
 * every size, line count and section handed to IMAP is in CRLF form (IMAP
 * counts CRLF: RFC 3501 §2.3.4, §7.4.2).
 *
 * Parsing follows what Dovecot does with broken mail, so both servers show a
 * Maildir the same way:
 *   - a boundary line is "--" boundary at a line start, whatever follows it;
 *     the line end before it belongs to the boundary (RFC 2046 §5.1.1);
 *     the boundary of any enclosing multipart also ends the inner parts;
 *   - a missing close delimiter ends the multipart at the end of its parent;
 *   - a part without Content-Type is text/plain (in multipart/digest:
 *     message/rfc822, RFC 2046 §5.1.5); a multipart without a boundary is a
 *     single part; message/rfc822 is parsed even when encoded (then its
 *     "header" is the encoded text);
 *   - bounded: MIME_MAX_DEPTH nested parts, MIME_MAX_PARTS in all; past the
 *     bounds the rest is body of the deepest part.  No recursion anywhere:
 *     hostile nesting cannot exhaust the stack.
 * The header values kept here are the raw field bodies (unfolded later where
 * IMAP needs it); RFC 2047 words are left encoded, as Dovecot does. */
#ifndef POSTERN_MSG_MIME_H
#define POSTERN_MSG_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

#define MIME_MAX_DEPTH 32
#define MIME_MAX_PARTS 10000

/* A Content-Type / Content-Disposition parameter.  RFC 2231 continuations are
 * joined: name*0, name*1 give name; name*0*, name*1* (or name*) give "name*"
 * with the value still "charset'language'%XX" encoded, as Dovecot shows them.
 * Names and values keep their case, as written (quotes removed). */
struct mime_param {
	const char *name;
	const char *value;
};

/* One part.  The string fields are NUL-terminated copies owned by the tree,
 * NULL when the field (or parameter) is absent, so IMAP can say NIL. */
struct mime_part {
	size_t hdr_off, hdr_len;     /* the header, its empty line included, in the raw bytes */
	size_t body_off, body_len;   /* the body, in the raw bytes */
	uint64_t hdr_size, body_size;  /* the same in CRLF form */
	uint64_t lines;              /* line ends in the body (RFC 3501 body-fld-lines) */
	const char *type, *subtype;  /* as written (compare without case); never NULL: defaults applied */
	struct mime_param *params;
	size_t n_params;
	const char *id, *description, *encoding, *md5;   /* Content-ID, -Description, -Transfer-Encoding, -MD5 */
	const char *disposition;     /* the Content-Disposition value's first word */
	struct mime_param *disp_params;
	size_t n_disp_params;
	const char *language, *location;  /* Content-Language (raw), Content-Location */
	bool has_content_type;       /* false: the defaults above were applied */
	bool is_multipart;           /* a multipart with a boundary, its parts parsed (n_child may be 0) */
	unsigned depth;              /* 0: the message itself */
	struct mime_part *parent;
	struct mime_part *child;     /* multipart: its parts; message/rfc822: one, the encapsulated message */
	size_t n_child;
	struct mime_part *message;   /* message/rfc822: the encapsulated message's top part (= child), else NULL */
};

struct mime_tree;

/* Never NULL except when out of memory.  A header block alone (the store's
 * header cache) is a message with an empty body: enough for ENVELOPE. */
struct mime_tree *mime_parse(const char *raw, size_t len);
void mime_free(struct mime_tree **t);
const struct mime_part *mime_root(const struct mime_tree *t);
size_t mime_part_count(const struct mime_tree *t);
/* The limits were hit (depth or part count): the tree is a faithful prefix. */
bool mime_truncated(const struct mime_tree *t);

/* IMAP renderings (RFC 3501 §7.4.2), appended to out; false when out was cut.
 * ENVELOPE of the message (for a message/rfc822 part: mime_envelope_part on
 * its `message`). */
bool mime_envelope(const struct mime_tree *t, struct buf *out);
bool mime_envelope_part(const struct mime_tree *t, const struct mime_part *msg, struct buf *out);

/* BODYSTRUCTURE (extended) or BODY of the message, or of one part. */
bool mime_bodystructure(const struct mime_tree *t, bool extended, struct buf *out);
bool mime_bodystructure_part(const struct mime_tree *t, const struct mime_part *p, bool extended, struct buf *out);

/* An IMAP string (RFC 3501 §4.3) for `s`: quoted when it can be, a literal
 * {n}CRLF when it holds 8-bit bytes, CR, LF or NUL.  NULL gives NIL. */
void mime_imap_nstring(struct buf *out, const char *s, size_t n);

#endif
