/* reply.h - every SMTP reply goes through reply_write(): it checks the code range
 * and that the enhanced code's class matches the first digit (RFC 3463 §2, RFC 2034),
 * splits multi-line text, and writes CRLF-terminated lines.  Fixed reply words live
 * in the catalogue (reply.c), looked up with reply_text().  What an enhanced code
 * is, is wire/'s (wire_enh_valid), shared with the client side; which codes exist,
 * too (wire/enh.h: ENH_PERM_BAD_MAILBOX, never a literal "5.1.1"). */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

struct buf;

/* One catalogue entry per fixed reply. */
enum reply_id {
	R_GREETING, R_BYE, R_RSET, R_NOOP, R_VRFY, R_HELP, R_START_DATA,
	R_BDAT_OK, R_QUEUED, R_SENDER_OK, R_RCPT_OK,
	R_SYNTAX_LINE_TOO_LONG, R_SYNTAX_BAD_BYTES, R_UNKNOWN_COMMAND, R_NOT_IMPLEMENTED,
	R_HELO_NEEDS_DOMAIN, R_NEED_HELO, R_NESTED_MAIL, R_NEED_MAIL, R_NO_RCPT_YET,
	R_TOO_MANY_RCPTS, R_MSG_TOO_BIG_DECLARED, R_MSG_TOO_BIG,
	R_BARE_LINE_ENDING, R_TEMP_SPOOL, R_TEMP_COMMIT, R_TOO_MANY_ERRORS, R_IDLE_TIMEOUT,
	R_TOO_MANY_CONNECTIONS, R_TOO_MANY_FROM_IP, R_RESERVED_CONNECTIONS, R_SHUTDOWN, R_NO_DATA_ARG,
	R_DEADLINE_LINE, R_DEADLINE_DATA_RATE, R_DEADLINE_LOGIN, R_DEADLINE_SESSION,
	R_BDAT_SYNTAX, R_BDAT_AFTER_FAILURE, R_DATA_AFTER_BDAT, R_EIGHTBIT_NO_SMTPUTF8,
	R_STARTTLS_UNAVAILABLE, R_AUTH_UNAVAILABLE, R_BODY_8BIT_NOT_DECLARED,
	R_ALREADY_TLS, R_STARTTLS_ARG, R_AUTH_OK, R_AUTH_FAILED, R_AUTH_TEMPFAIL, R_AUTH_THROTTLED_ACCOUNT, R_AUTH_THROTTLED_ADDRESS,
	R_AUTH_CANCELLED, R_AUTH_BAD_BASE64, R_AUTH_MALFORMED, R_AUTH_AUTHZID, R_AUTH_TWICE, R_AUTH_IN_TX,
	R_AUTH_NEEDS_STARTTLS, R_AUTH_NEEDS_TLS_PORT, R_AUTH_UNKNOWN_MECH, R_AUTH_LINE_TOO_LONG, R_TLS_EXPECTED, R_RCPT_AFTER_REFUSED_MAIL, R_AUTH_NO_MECH,
	R_CMD_AFTER_BDAT, R_NUL_IN_MESSAGE, R_MESSAGE_LINE_TOO_LONG, R_FROM_NOT_ONE, R_FROM_TOO_LONG, R_FROM_TOO_MANY, R_TOO_MANY_REFUSED_RCPTS,

	R_NO_SPACE_MAIL, R_NO_SPACE_SIZE, R_NO_SPACE_DATA, R_READY_TLS,
	R_AUTH_WRONG_PORT, R_RELAY_WRONG_PORT, R_WRONG_PORT_503,
	R_AUTH_DIRECTORY_TEMPFAIL,
	R_LMTP_GREETING, R_LMTP_NEEDS_LHLO, R_NODE_OK, R_NODE_TOKEN_NEEDED, R_NODE_TOKEN_REFUSED,
	REPLY_ID_COUNT
};

struct reply_entry {
	int code;
	const char *enh;      /* NULL for 220 greeting, 250 EHLO, 354 */
	const char *text;     /* may contain '\n' for several lines; may contain %s (see reply.c) */
	const char *hint;     /* NULL or a sentence saying what to change */
};

const struct reply_entry *reply_get(enum reply_id id);
/* The cause id of a refusal in the catalogue (data/explain.ini's list, as `postern
 * explain` names it); "unknown" for an entry without one. */
const char *reply_cause_id(enum reply_id id);

/* Write a reply: "CODE-ENH line" ... "CODE ENH last".  text may contain '\n'.
 * Asserts 200 <= code <= 599 and, when enh is not NULL, that enh is a valid
 * class.subject.detail whose class equals code / 100.  Never writes more than
 * 512 octets per line (RFC 5321 §4.5.3.1.5): longer lines are cut. */
void reply_write(struct buf *out, int code, const char *enh, const char *text);
/* Same, with printf formatting of the text. */
void reply_writef(struct buf *out, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Write catalogue entry id; the variadic arguments fill the entry's % conversions
 * (see the catalogue in reply.c); the hint, when present, becomes the last line. */
void reply_id(struct buf *out, enum reply_id id, ...);
/* One line: the text and the hint joined by " - ".  For refusals sent at connect
 * time, before any greeting, when a client reads a single line. */
void reply_vid_line(struct buf *out, enum reply_id id, va_list ap);
/* The same with a va_list, appending " (ref REF)" to the last line when ref is not
 * NULL.  Writes the first line of the text (no hint, no ref) into summary for logs. */
void reply_vid(struct buf *out, const char *ref, char *summary, size_t summarysz,
	enum reply_id id, va_list ap);
/* The text of entry id with its % conversions filled, and the hint, when present,
 * as the last line: what reply_vid writes, before any reference. */
void reply_vformat(char *text, size_t textsz, enum reply_id id, va_list ap);

/* Refusals whose reason is made at run time (a parser's detail, a check the session
 * makes itself): the catalogue holds their code, enhanced code, hint and, for some,
 * the reason; they travel as a verdict (policy/policy.h), like policy's own, so that
 * the 503 at DATA can name them. */
enum verdict_id {
	V_MAIL_PARAM_UNKNOWN, V_MAIL_BAD_ADDRESS, V_MAIL_SYNTAX,
	V_RCPT_PARAM_UNKNOWN, V_RCPT_SYNTAX, V_RCPT_BAD_ADDRESS, V_RCPT_NOT_ASCII, V_TOO_MANY_RCPTS,
	V_FROM_BAD_ADDRESS, V_DIRECTORY_TEMPFAIL, V_NOTHING_TO_SEND, V_DECISION_NO_MEMORY, V_LOCAL_SENDER_NOT_OWNED,
	VERDICT_ID_COUNT
};
/* Fill v from entry id: temporary for 4xx, permanent for 5xx.  reason NULL: the
 * entry's own reason. */
void reply_verdict(struct verdict *v, enum verdict_id id, enum refusal_cause cause, const char *reason);

#endif
