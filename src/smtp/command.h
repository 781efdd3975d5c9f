/* command.h - split one SMTP command line into verb and argument (RFC 5321 §4.1.1).
 * Pure: no state, no I/O.  The line arrives without its CRLF. */
#ifndef POSTERN_SMTP_COMMAND_H
#define POSTERN_SMTP_COMMAND_H

#include <stddef.h>

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
	SMTP_RSET, SMTP_NOOP, SMTP_QUIT, SMTP_HELP, SMTP_VRFY, SMTP_EXPN,
	SMTP_STARTTLS, SMTP_AUTH,
	SMTP_LHLO, SMTP_XNODE,   /* LMTP between nodes only (RFC 2033; XNODE: the node token) */
	SMTP_VERB_COUNT
};

struct smtp_command {
	enum smtp_verb verb;
	const char *verb_text;   /* points into the line (for logging an unknown verb) */
	size_t verb_len;
	const char *arg;         /* after the single space following the verb; "" if none */
	size_t arg_len;
};

enum smtp_command_status {
	SMTP_CMD_OK,
	SMTP_CMD_EMPTY,          /* empty line */
	SMTP_CMD_BAD_BYTES,      /* NUL or other control bytes in a command: 500 5.5.2 */
};

enum smtp_command_status smtp_command_parse(const char *line, size_t len, struct smtp_command *out);
const char *smtp_verb_name(enum smtp_verb v);

#endif
