/* dkim_internal.h - what the DKIM files of mailauth/ share and nobody else sees: the
 * message's header block read into memory and split into fields, and the body
 * streamed from the file in fixed-size chunks. */
#ifndef POSTERN_MAILAUTH_DKIM_INTERNAL_H
#define POSTERN_MAILAUTH_DKIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mailauth/dkim.h"

struct dkim_field {
	const char *p;        /* the field from its name, folding included */
	size_t len;           /* without the final line end */
	size_t name_len;      /* the name, WSP before the colon excluded */
	bool used;            /* already taken for h= (§5.4.2: bottom-up, once each) */
};

struct dkim_msg {
	char *head;           /* the header block (allocated, at most DKIM_HEADER_MAX) */
	size_t head_len;
	off_t start;          /* where the message starts in the file */
	off_t end;            /* where it ends (the file may go on: the queue's records) */
	off_t body_off;       /* where the body starts in the file */
	struct dkim_field *fields;
	size_t nfields;
};

/* The message is the octets [start, start + size) of the file; size
 * DKIM_TO_END_OF_FILE: up to its end. */
bool dkim_msg_read(int fd, uint64_t start, uint64_t size, struct dkim_msg *m, char *err, size_t errlen);
void dkim_msg_free(struct dkim_msg *m);
bool dkim_field_is(const struct dkim_field *f, const char *name);
/* The field body after the colon. */
const char *dkim_field_value(const struct dkim_field *f, size_t *len);
/* Feed the body from the file, in chunks, to fn. */
bool dkim_msg_stream_body(int fd, const struct dkim_msg *m, dkim_emit *fn, void *arg, char *err, size_t errlen);
/* Reset `used` on every field. */
void dkim_msg_unuse(struct dkim_msg *m);
/* The last not yet used field named `name` (§5.4.2), marked used; NULL when none. */
struct dkim_field *dkim_msg_take(struct dkim_msg *m, const char *name);

/* SHA-256 of the canonical body (§3.7), the first `limit` octets when has_limit.
 * canon_len gets the whole canonical length. */
bool dkim_body_hash(int fd, const struct dkim_msg *m, enum dkim_canon c, bool has_limit, uint64_t limit,
	unsigned char hash[32], uint64_t *canon_len, char *err, size_t errlen);
/* The header hash input (§3.7): the fields named in `names` (bottom-up, each instance
 * once, absent ones skipped), then the DKIM-Signature field `sig_field` (its b= value
 * already empty) without its CRLF. */
bool dkim_header_input(struct dkim_msg *m, enum dkim_canon c, const char (*names)[64], size_t n,
	const char *sig_field, size_t sig_len, struct buf *out);

#endif
