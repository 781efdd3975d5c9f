/* command.h - split one POP3 command line into keyword and arguments (RFC 1939 §3,
 * RFC 2449 §3).  Pure: no state, no I/O.  The line arrives without its CRLF. */
#ifndef POSTERN_POP3_COMMAND_H
#define POSTERN_POP3_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pop3_verb {
	POP3_UNKNOWN = 0,
	POP3_USER, POP3_PASS, POP3_STAT, POP3_LIST, POP3_RETR, POP3_DELE, POP3_NOOP,
	POP3_RSET, POP3_QUIT, POP3_TOP, POP3_UIDL, POP3_CAPA, POP3_STLS, POP3_AUTH,
	POP3_APOP, POP3_XCLIENT,
	POP3_VERB_COUNT
};

#define POP3_MAX_ARGS 2

struct pop3_span {
	const char *p;
	size_t n;
};

struct pop3_command {
	enum pop3_verb verb;
	struct pop3_span verb_text;   /* points into the line (for an unknown keyword) */
	struct pop3_span rest;        /* everything after the single SP following the keyword
	                               * ("" if none): PASS takes it whole (RFC 1939 §7:
	                               * a password may hold spaces) */
	struct pop3_span args[POP3_MAX_ARGS];   /* space-separated arguments */
	size_t n_args;
	bool too_many_args;           /* more than POP3_MAX_ARGS */
};

enum pop3_command_status {
	POP3_CMD_OK,
	POP3_CMD_EMPTY,               /* nothing but white space */
	POP3_CMD_BAD_BYTES,           /* NUL or another control byte (TAB excepted) */
};

enum pop3_command_status pop3_command_parse(const char *line, size_t len, struct pop3_command *out);
const char *pop3_verb_name(enum pop3_verb v);

/* A message number or line count: 1 to 10 decimal digits, nothing else (no sign, no
 * space).  A message number must also be at least 1 (the caller checks). */
bool pop3_parse_number(const struct pop3_span *a, uint64_t *out);

#endif
