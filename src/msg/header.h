/* header.h - RFC 5322 header fields of a message: finding a field in the header
 * block, and parsing address lists such as From:.  Pure: no I/O.
 *
 * What must parse (RFC 5322 §3.4, §3.2, RFC 2047, RFC 6532):
 *   From: Mark's email <m@example.test>          apostrophe in a display name (atext)
 *   From: "Doe, John" <john@example.test>        quoted display name with a comma
 *   From: john@example.test (John Doe)           comment after an addr-spec
 *   From: =?UTF-8?B?w4lsb2RpZQ==?= <e@example.test>   encoded word in the display name
 *   From: Team: a@example.test, b@example.test;  group
 *   From: <a@example.test>, b@example.test       several mailboxes
 *   folded lines (CRLF followed by WSP), obsolete forms tolerated where harmless.
 * An apostrophe, a comma inside quotes, or a comment never makes a From unparseable. */
#ifndef POSTERN_MSG_HEADER_H
#define POSTERN_MSG_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#define MSG_ADDR_MAX 320        /* local@domain, unquoted local part */
#define MSG_MAX_MAILBOXES 32

struct msg_mailbox {
	char addr[MSG_ADDR_MAX + 1];   /* "local@domain": local part unquoted, domain lower-cased */
};

struct msg_address_list {
	struct msg_mailbox mailboxes[MSG_MAX_MAILBOXES];
	size_t n;                      /* mailboxes found, groups flattened */
	bool truncated;                /* more than MSG_MAX_MAILBOXES */
};

enum msg_status { MSG_OK = 0, MSG_SYNTAX, MSG_EMPTY, MSG_TOO_LONG };

/* Find the first field named `name` (case-insensitive) in a header block (the bytes
 * before the empty line; CRLF or LF line ends).  On success points *value at the
 * field body (after the colon, folding included, without the final line end) and
 * sets *value_len.  Returns false when absent. */
bool msg_header_find(const char *headers, size_t len, const char *name, const char **value, size_t *value_len);

/* The same for the field named `name` after `index` others of that name (0: the first);
 * DMARC looks at every From: field (RFC 7489 §6.6.1). */
bool msg_header_find_nth(const char *headers, size_t len, const char *name, size_t index, const char **value,
	size_t *value_len);

/* Count fields named `name` (a message must have exactly one From, RFC 5322 §3.6). */
size_t msg_header_count(const char *headers, size_t len, const char *name);

/* A field of a header block found as the message streams past, however long the
 * block and however it is split: counts the fields named `name` up to the empty line
 * that ends the header (RFC 5322 §2.1) and keeps the first one's body (at most
 * MSG_FIELD_VALUE_MAX octets; `value_truncated` says it was longer).  Same rules as
 * msg_header_find()/msg_header_count() on the whole block: fields end at a line end
 * (LF or CRLF) not followed by WSP, and a WSP line at the top of the block belongs to
 * no field.  Fixed size: no allocation. */
#define MSG_FIELD_VALUE_MAX 16384

struct msg_field_scan {
	char name[32];
	size_t nlen;
	int state;                 /* where in the current line (header.c) */
	size_t name_pos;           /* octets of the name matched on this line */
	int field;                 /* the current field: none, name being read, ours, another */
	bool capturing;            /* the current field is the first one named `name` */
	bool cr_pending;           /* a CR that may start CR LF */
	unsigned char eol[2];      /* the line end before a possible fold, kept for the value */
	size_t eol_len;
	bool done;                 /* the empty line was seen: the body follows */
	size_t count;              /* fields named `name` */
	char value[MSG_FIELD_VALUE_MAX];
	size_t value_len;
	bool value_truncated;
};

/* name: a field name of at most 31 octets. */
void msg_field_scan_init(struct msg_field_scan *sc, const char *name);
/* Feed the next message bytes; stops looking once the header has ended. */
void msg_field_scan_feed(struct msg_field_scan *sc, const char *p, size_t n);
/* The first field's body, leading folding white space skipped (as msg_header_find). */
bool msg_field_scan_value(const struct msg_field_scan *sc, const char **value, size_t *value_len);

/* Parse an address-list / mailbox-list field body (From, Sender, Reply-To, To, Cc).
 * Display names, comments and group names are recognised and dropped; only the
 * addresses are kept. */
enum msg_status msg_parse_address_list(const char *value, size_t len, struct msg_address_list *out);

/* Header fields dropped as the message streams past (field_drop.c): every field named
 * `name` whose body begins, after CFWS, with the word `id` (token or quoted-string,
 * ASCII case-insensitive) is left out, folded lines and line end included; all other
 * bytes are handed to emit unchanged and in order.  RFC 8601 §5: a receiving server
 * removes the Authentication-Results fields that claim its own authserv-id.  A field
 * whose first word is still unread after MSG_DROP_HOLD octets is dropped too (it
 * cannot be shown not to claim the id).  Fixed size: no allocation. */
#define MSG_DROP_HOLD 1024

typedef void (*msg_emit_fn)(void *arg, const char *p, size_t n);

struct msg_field_drop {
	char name[32];
	size_t nlen;
	char id[256];
	size_t idlen;
	bool done;                 /* the header ended: everything passes */
	bool at_line_start, line_cr;
	int decision;              /* the current field: none yet, held, kept, dropped */
	int phase;                 /* held: reading its name, or its first word */
	size_t name_pos;
	bool name_wsp;
	char word[256];
	size_t word_len;
	bool word_started, in_quotes, escaped;
	unsigned comment_depth;
	char hold[MSG_DROP_HOLD];
	size_t hold_len;
	size_t dropped;            /* fields left out */
};

/* name: at most 31 octets; id: at most 255 (longer ones are cut). */
void msg_field_drop_init(struct msg_field_drop *d, const char *name, const char *id);
void msg_field_drop_feed(struct msg_field_drop *d, const char *p, size_t n, msg_emit_fn emit, void *arg);
/* The message ended: a field still held is judged now. */
void msg_field_drop_finish(struct msg_field_drop *d, msg_emit_fn emit, void *arg);

#endif
