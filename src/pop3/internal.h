/* internal.h - shared by the files of the pop3 room only: the session's state
 * (session.c: life, gate, input; cmd_auth.c: AUTHORIZATION; cmd_mail.c:
 * TRANSACTION and streaming; reply.c: the catalogue).  Other rooms use
 * pop3/session.h. */
#ifndef POSTERN_POP3_INTERNAL_H
#define POSTERN_POP3_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/login.h"
#include "pop3/command.h"
#include "pop3/session.h"
#include "util/buf.h"
#include "util/linebuf.h"

#define OUTPUT_MAX (1u << 20)          /* hard bound on queued output */
#define OUTPUT_PAUSE (64u << 10)       /* stop reading commands while this much waits */
#define READ_CHUNK (16u << 10)         /* message bytes read per step (<= 2x on the wire) */
#define LINE_BUF_MAX (SASL_LINE_MAX + 2)
#define RESPONSE_MAX 512               /* RFC 2449 §4: status lines up to 512 octets */

enum state {
	ST_AUTHZ,          /* AUTHORIZATION */
	ST_SASL,           /* inside an AUTH exchange */
	ST_WAIT_AUTH,
	ST_WAIT_MAILBOX,
	ST_TLS_PENDING,
	ST_TRANS,          /* TRANSACTION */
	ST_PROXIED,        /* the login went to the home node: the bytes are the transport's now */
	ST_CLOSED,
};

enum stream_kind { STREAM_NONE, STREAM_LIST, STREAM_UIDL, STREAM_MSG };

struct stream {
	enum stream_kind kind;
	size_t next;               /* LIST/UIDL: next index */
	void *msg;                 /* STREAM_MSG: the open message */
	size_t index;
	long body_lines;           /* TOP: body lines wanted; < 0: whole message */
	bool at_line_start, prev_cr, in_header, line_empty;
	long lines_sent;
	bool cut;                  /* TOP has sent all it should */
	uint64_t octets;           /* sent, without byte-stuffing */
};

struct pop3_session {
	struct pop3_conn_info info;
	char *hostname, *client_addr, *listener;
	struct pop3_limits limits;
	struct pop3_hooks hooks;
	enum state state;
	struct buf out;
	struct linebuf line;
	unsigned bad_commands;
	unsigned refs;
	bool close_after_output;
	/* TLS and login */
	bool secure;
	bool wants_tls;
	char tls_desc[200];
	char user[SASL_USER_MAX + 1];      /* from USER */
	bool have_user;
	char *login;                       /* canonical user, once logged in */
	struct login_exchange lx;           /* AUTH, USER/PASS (auth/login.h) */
	/* TRANSACTION */
	const struct pop3_maildrop_ops *ops;
	void *mb;
	size_t count;
	bool *deleted;
	size_t n_deleted;
	uint64_t total_octets;             /* of messages not marked deleted */
	unsigned retrieved;
	struct stream st;
	char *scratch;                     /* READ_CHUNK bytes */
};

/* The catalogue (reply.c). */
enum pid {
	P_GREETING, P_BYE, P_BYE_UPDATE, P_UPDATE_FAILED, P_USER_OK, P_LOGGED_IN, P_CAPA, P_NOOP,
	P_STAT, P_LIST_ONE, P_LIST_ALL, P_UIDL_ONE, P_UIDL_ALL, P_RETR, P_TOP, P_DELE, P_RSET,
	P_STLS_OK, P_AUTH_MECHS,
	P_AUTH_FAILED, P_AUTH_TEMPFAIL, P_AUTH_THROTTLED_ACCOUNT, P_AUTH_THROTTLED_ADDRESS, P_PLAINTEXT_STLS, P_PLAINTEXT_NO_TLS,
	P_AUTH_UNAVAILABLE, P_AUTH_CANCELLED, P_AUTH_BAD_BASE64, P_AUTH_MALFORMED, P_AUTH_AUTHZID,
	P_AUTH_UNKNOWN_MECH, P_AUTH_LINE_TOO_LONG, P_IN_USE, P_MAILBOX_TEMP, P_MAILBOX_PERM,
	P_NEED_USER, P_NEED_LOGIN, P_LOGGED_IN_ALREADY, P_UNKNOWN, P_EMPTY, P_BAD_BYTES, P_LINE_TOO_LONG,
	P_TOO_MANY_ERRORS, P_SYNTAX, P_NO_SUCH_MSG, P_MSG_DELETED, P_READ_FAILED, P_STLS_UNAVAILABLE,
	P_ALREADY_TLS, P_APOP, P_IDLE_TIMEOUT, P_SHUTDOWN,
	P_CONN_BUSY, P_CONN_ADDRESS_BUSY, P_CONN_RESERVED, P_CONN_TLS_EXPECTED,
	P_DEADLINE_LINE, P_DEADLINE_LOGIN, P_DEADLINE_SESSION,
	P_XCLIENT_UNAVAILABLE, P_XCLIENT_REFUSED, P_PROXY_UNAVAILABLE,
	P_COUNT
};

/* reply.c: every status line of a session goes through pop3_reply(); refusals carry
 * a reference and are logged with it. */
void pop3_reply(struct pop3_session *s, enum pid id, ...);
/* Another server's status line passed on as it is (bounded, control bytes
 * replaced); a refusal is logged like ours. */
void pop3_relay_line(struct pop3_session *s, const char *line);
/* Client text quoted in a reply (util/text.h's quote_for_reply) is cut after this many octets. */
#define POP3_QUOTE_SHOWN 40

/* session.c */
void pop3_close(struct pop3_session *s);          /* close after output, nothing deleted */
void pop3_bad_command(struct pop3_session *s);    /* count it; too many: -ERR and close */

/* cmd_auth.c: the AUTHORIZATION state's login commands. */
bool pop3_login_allowed(struct pop3_session *s);  /* false after replying why not */
bool pop3_login_offered(const struct pop3_session *s);
void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_apop(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_xclient(struct pop3_session *s, const struct pop3_command *c);
void pop3_auth_line(struct pop3_session *s, const char *line, size_t n);   /* in ST_SASL */

/* cmd_mail.c: the TRANSACTION state. */
void pop3_maildrop_close(struct pop3_session *s);   /* nothing deleted */
void pop3_cmd_quit(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_stat(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_list(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_retr(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_top(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_dele(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_rset(struct pop3_session *s, const struct pop3_command *c);

#endif
