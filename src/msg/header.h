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

/* Count fields named `name` (a message must have exactly one From, RFC 5322 §3.6). */
size_t msg_header_count(const char *headers, size_t len, const char *name);

/* Parse an address-list / mailbox-list field body (From, Sender, Reply-To, To, Cc).
 * Display names, comments and group names are recognised and dropped; only the
 * addresses are kept. */
enum msg_status msg_parse_address_list(const char *value, size_t len, struct msg_address_list *out);

#endif
