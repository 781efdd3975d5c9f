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
	bool hdr_cut;                /* a boundary line follows the header at once (see mime_section) */
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

/* BODY[section] (RFC 3501 §6.4.5).  The kinds have the values of the IMAP
 * parser's SEC_* (contracts §E), so callers may pass theirs as they are. */
enum mime_section_kind {
	MIME_SEC_ALL, MIME_SEC_HEADER, MIME_SEC_HEADER_FIELDS, MIME_SEC_HEADER_FIELDS_NOT, MIME_SEC_TEXT, MIME_SEC_MIME
};
/* The part a section's numbers name (none: the message), NULL when there is
 * no such part.  As Dovecot reads RFC 3501 §6.4.5: a multipart's parts are
 * numbered from 1; a single part has only part 1, itself, and numbers below
 * it only when it is a message/rfc822, whose encapsulated message they
 * enter. */
const struct mime_part *mime_find_part(const struct mime_tree *t, const uint32_t *part, size_t n_part);
/* The section's bytes in CRLF form appended to out: [] the message, [n] a
 * part's body, [HEADER] with its empty line, [HEADER.FIELDS (..)] and
 * [HEADER.FIELDS.NOT (..)] the fields (not) named then an empty line,
 * [TEXT], [n.MIME] the part's own header; after numbers, HEADER/TEXT need a
 * message/rfc822 part and mean its message's.  False: no such part (IMAP
 * answers an empty string, as Dovecot does) or out was cut. */
bool mime_section(const struct mime_tree *t, const uint32_t *part, size_t n_part, int kind,
	const char *const *fields, size_t n_fields, struct buf *out);
/* <offset.length> of a section (RFC 3501 §6.4.5): the bytes to send, empty
 * when offset is past the end. */
bool mime_partial(const struct buf *section, uint32_t offset, uint32_t length, const char **p, size_t *n);
/* BINARY[section] (RFC 3516): the part's body decoded from base64 or
 * quoted-printable (identity encodings in CRLF form); of a multipart or
 * message, every part inside decoded with its Content-Transfer-Encoding
 * made binary, as Dovecot does.  0: done; -1: no such part or out cut; -2: an encoding not
 * known (answer NO [UNKNOWN-CTE]).  BINARY.SIZE is the length of this. */
int mime_binary(const struct mime_tree *t, const uint32_t *part, size_t n_part, struct buf *out);

/* SEARCH (RFC 3501 §6.4.4).  Values decoded (RFC 2047 words, charsets to
 * UTF-8 with iconv, QP/base64 bodies) and matched as substrings without
 * regard to case (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic).
 * header_contains: any field named `field` of the message's header; an
 * empty needle matches when the field is there (SEARCH HEADER f "").
 * text_contains: the text parts; with include_headers (SEARCH TEXT rather
 * than BODY) every header too (the message's, its parts', encapsulated
 * messages'). */
bool mime_header_contains(const struct mime_tree *t, const char *field, const char *needle);
/* The same on a bare header block (up to its empty line), no tree needed: SEARCH
 * FROM/SUBJECT/HEADER on the index's cached header blocks without parsing them. */
bool mime_header_block_contains(const char *hdr, size_t len, const char *field, const char *needle);
bool mime_text_contains(const struct mime_tree *t, const char *needle, bool include_headers);
/* The Date: field as UTC (RFC 5322 §3.3, obsolete forms of §4.3); 0 when
 * absent or unreadable (Dovecot then compares the message as sent on
 * 1970-01-01: SENTBEFORE matches it).  mime_date_tz also gives the field's zone in
 * seconds east of UTC: SENTON and friends compare the date as written
 * (RFC 3501 §6.4.4 "disregarding time and timezone"), i.e. when + zone. */
time_t mime_date(const struct mime_tree *t);
time_t mime_date_tz(const struct mime_tree *t, long *zone);
bool mime_parse_date(const char *s, size_t n, time_t *when, long *zone);

/* An IMAP string (RFC 3501 §4.3) for `s`: quoted when it can be, a literal
 * {n}CRLF when it holds 8-bit bytes, CR, LF or NUL.  NULL gives NIL. */
void mime_imap_nstring(struct buf *out, const char *s, size_t n);

#endif
