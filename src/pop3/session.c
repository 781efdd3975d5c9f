/* session.c - the POP3 server state machine (see session.h).
 *
 * One command table and one gate: each keyword has a handler and flags saying in
 * which state it is allowed and whether it logs in (and so needs TLS unless the
 * listener allows plaintext); pop3_dispatch() enforces them before any handler
 * runs.  Every status line goes through reply(), whose words come from the
 * catalogue below; refusals carry a reference and are logged with it. */
#include "pop3/session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/login.h"
#include "pop3/command.h"
#include "store/mailbox.h"
#include "util/buf.h"
#include "util/linebuf.h"
#include "util/log.h"

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

/* --- the catalogue and the one reply function ------------------------------- */

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
	P_COUNT
};

struct pentry {
	bool ok;
	const char *code;   /* RFC 2449 §8 response code, or NULL */
	const char *text;   /* printf format */
};

static const struct pentry catalogue[P_COUNT] = {
	[P_GREETING] = { true, NULL, "%s Postern POP3 server ready" },
	[P_BYE] = { true, NULL, "%s Postern POP3 server signing off" },
	[P_BYE_UPDATE] = { true, NULL, "%s Postern POP3 server signing off (%zu messages deleted, %zu left)" },
	[P_UPDATE_FAILED] = { false, "SYS/TEMP",
		"Some deleted messages could not be removed and are still on the server; they can be deleted again next time" },
	[P_USER_OK] = { true, NULL, "Send the password with PASS" },
	[P_LOGGED_IN] = { true, NULL, "Logged in: %zu messages (%" PRIu64 " octets)" },
	[P_CAPA] = { true, NULL, "Capability list follows" },
	[P_NOOP] = { true, NULL, "Still here" },
	[P_STAT] = { true, NULL, "%zu %" PRIu64 },
	[P_LIST_ONE] = { true, NULL, "%zu %" PRIu64 },
	[P_LIST_ALL] = { true, NULL, "%zu messages (%" PRIu64 " octets)" },
	[P_UIDL_ONE] = { true, NULL, "%zu %s" },
	[P_UIDL_ALL] = { true, NULL, "Unique-ID listing follows" },
	[P_RETR] = { true, NULL, "%" PRIu64 " octets" },
	[P_TOP] = { true, NULL, "Top of message %zu follows" },
	[P_DELE] = { true, NULL, "Message %zu marked for deletion (removed when you QUIT)" },
	[P_RSET] = { true, NULL, "Deletion marks removed: %zu messages (%" PRIu64 " octets)" },
	[P_STLS_OK] = { true, NULL, "Begin TLS negotiation" },
	[P_AUTH_MECHS] = { true, NULL, "SASL mechanisms follow" },
	[P_AUTH_FAILED] = { false, "AUTH",
		"Login failed: wrong user name or password (an app password works too); check both in the mail program" },
	[P_AUTH_TEMPFAIL] = { false, "SYS/TEMP",
		"Login cannot be checked just now (account directory unavailable); try again in a few minutes" },
	/* RFC 3206 §4: [AUTH] when the credentials are the problem (a device keeps
	 * sending a wrong password for this account), [SYS/TEMP] when they are not
	 * (the address is blocked for failures to other accounts). */
	[P_AUTH_THROTTLED_ACCOUNT] = { false, "AUTH",
		"Too many failed logins as %s from your address: logging in to this account from here is blocked until %s - "
		"correct the password saved in every device that uses this account (other accounts are not blocked)" },
	[P_AUTH_THROTTLED_ADDRESS] = { false, "SYS/TEMP",
		"Logging in from your address is blocked until %s: there were failed logins to several different accounts "
		"from it - your own password is not the problem; try again after that time" },
	[P_PLAINTEXT_STLS] = { false, "AUTH",
		"Login refused on an unencrypted connection: set the mail program's connection security to STARTTLS (STLS) on port 110, or to SSL/TLS on port 995" },
	[P_PLAINTEXT_NO_TLS] = { false, "AUTH",
		"Login refused on an unencrypted connection, and this port offers no STLS: set the mail program's connection security to SSL/TLS on port 995 (or STARTTLS on port 110)" },
	[P_AUTH_UNAVAILABLE] = { false, NULL, "Logging in is not available on this port" },
	[P_AUTH_CANCELLED] = { false, NULL, "Authentication cancelled" },
	[P_AUTH_BAD_BASE64] = { false, NULL, "Authentication failed: the answer is not valid base64" },
	[P_AUTH_MALFORMED] = { false, NULL, "Authentication failed: the answer is not what the mechanism expects" },
	[P_AUTH_AUTHZID] = { false, "AUTH", "Authentication failed: logging in as another user (authorization identity) is not supported" },
	[P_AUTH_UNKNOWN_MECH] = { false, NULL, "Unknown SASL mechanism %s: use PLAIN or LOGIN" },
	[P_AUTH_LINE_TOO_LONG] = { false, NULL, "Authentication failed: the answer is too long" },
	[P_IN_USE] = { false, "IN-USE",
		"The mailbox is open in another POP3 session; close the other mail program or device (or wait for it to finish) and try again" },
	[P_MAILBOX_TEMP] = { false, "SYS/TEMP", "The mailbox cannot be opened just now; try again in a few minutes" },
	[P_MAILBOX_PERM] = { false, "SYS/PERM", "The mailbox cannot be opened; ask the administrator of this server" },
	[P_NEED_USER] = { false, NULL, "Send USER first, then PASS" },
	[P_NEED_LOGIN] = { false, NULL, "%s needs a login first (USER and PASS, or AUTH)" },
	[P_LOGGED_IN_ALREADY] = { false, NULL, "%s is not allowed after logging in" },
	[P_UNKNOWN] = { false, NULL, "Unknown command: %s" },
	[P_EMPTY] = { false, NULL, "Empty command line" },
	[P_BAD_BYTES] = { false, NULL, "Command refused: it holds control characters" },
	[P_LINE_TOO_LONG] = { false, NULL, "Command line too long (at most %zu octets)" },
	[P_TOO_MANY_ERRORS] = { false, NULL, "Too many errors; closing the connection" },
	[P_SYNTAX] = { false, NULL, "Syntax: %s" },
	[P_NO_SUCH_MSG] = { false, NULL, "There is no message %s" },
	[P_MSG_DELETED] = { false, NULL, "Message %zu is marked for deletion (RSET removes the marks)" },
	[P_READ_FAILED] = { false, "SYS/TEMP", "Message %zu cannot be read just now; try again later" },
	[P_STLS_UNAVAILABLE] = { false, NULL, "STLS is not available on this port; use SSL/TLS on port 995" },
	[P_ALREADY_TLS] = { false, NULL, "TLS is already active" },
	[P_APOP] = { false, NULL, "APOP is not supported: use USER and PASS (or AUTH) over TLS" },
	[P_IDLE_TIMEOUT] = { false, NULL, "Disconnected for inactivity (%u seconds); nothing was deleted" },
	[P_SHUTDOWN] = { false, "SYS/TEMP", "Server shutting down; nothing was deleted - connect again in a minute" },
	/* Deadlines of the transport (pop3_session_deadline). */
	[P_DEADLINE_LINE] = { false, NULL,
		"Disconnected: a command line took more than %llu seconds to arrive; nothing was deleted - the connection is very slow, or the client sends a byte at a time" },
	[P_DEADLINE_LOGIN] = { false, NULL,
		"Disconnected: no login within %llu seconds of connecting; nothing was deleted - check the mail program's account settings" },
	[P_DEADLINE_SESSION] = { false, "SYS/TEMP",
		"Disconnected: session longer than %llu seconds; nothing was deleted - connect again for the rest" },
	/* Refusals of a connection, before any greeting (pop3_refusal_line). */
	[P_CONN_BUSY] = { false, "SYS/TEMP",
		"%s Too many connections just now; nothing was lost - your mail program will check again in a few minutes" },
	[P_CONN_ADDRESS_BUSY] = { false, "SYS/TEMP",
		"%s Too many connections from your address (limit %llu): close other mail programs or devices on your network that check mail here, or try again later" },
	[P_CONN_RESERVED] = { false, "SYS/TEMP",
		"%s Server nearly full: the last connections are kept for clients that have none open - close other connections from your address, or try again later" },
	[P_CONN_TLS_EXPECTED] = { false, "SYS/PERM",
		"%s No POP3 in plaintext here: this port expects TLS from the first byte (RFC 8314) - set the mail program's connection security to SSL/TLS for this port, or STARTTLS on port 110" },
};

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* Quote client text for a reply: printable ASCII only, bounded. */
static void quote_for_reply(char *out, size_t outsz, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		if (i == 39 && n > 40) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o] = '\0';
}

/* "+OK text" or "-ERR [CODE] text (ref R)" (no reference when ref is NULL), at most
 * 512 octets with CRLF, no control bytes. */
static void status_line(struct buf *out, const struct pentry *e, const char *text, const char *ref)
{
	char line[RESPONSE_MAX + 64];
	int n;
	if (e->ok)
		n = snprintf(line, sizeof(line), "+OK %s", text);
	else
		n = snprintf(line, sizeof(line), "-ERR %s%s%s%s%s%s%s", e->code ? "[" : "", e->code ? e->code : "",
			e->code ? "] " : "", text, ref ? " (ref " : "", ref ? ref : "", ref ? ")" : "");
	size_t len = n < 0 ? 0 : (size_t)n;
	if (len > RESPONSE_MAX - 2)
		len = RESPONSE_MAX - 2;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	buf_append(out, line, len);
	buf_append(out, "\r\n", 2);
}

/* Every status line of a session goes through here; refusals carry a reference
 * and are logged with it. */
static void reply(struct pop3_session *s, enum pid id, ...)
{
	const struct pentry *e = &catalogue[id];
	char text[RESPONSE_MAX];
	va_list ap;
	va_start(ap, id);
	vsnprintf(text, sizeof(text), e->text, ap);
	va_end(ap);
	char ref[48] = "";
	if (!e->ok && s->info.run_id && s->info.run_id[0])   /* unique across restarts (util/id.h) */
		snprintf(ref, sizeof(ref), "%s.%llu.%u", s->info.run_id, (unsigned long long)s->info.conn_id, ++s->refs);
	else if (!e->ok)
		snprintf(ref, sizeof(ref), "%llu.%u", (unsigned long long)s->info.conn_id, ++s->refs);
	status_line(&s->out, e, text, e->ok ? NULL : ref);
	if (!e->ok) {
		char q[300];
		log_event(LOG_INFO, "pop3_refused", "conn=%llu ref=%s code=%s reason=%s", (unsigned long long)s->info.conn_id,
			ref, e->code ? e->code : "-", log_quote(q, sizeof(q), text, strlen(text), 200));
	}
}

/* --- life of the maildrop --------------------------------------------------- */

static void stream_end(struct pop3_session *s)
{
	if (s->st.kind == STREAM_MSG && s->st.msg)
		s->ops->msg_close(s->st.msg);
	memset(&s->st, 0, sizeof(s->st));
}

static void maildrop_close(struct pop3_session *s)
{
	stream_end(s);
	if (s->mb)
		s->ops->close(s->mb);
	s->mb = NULL;
	s->ops = NULL;
	free(s->deleted);
	s->deleted = NULL;
	s->count = 0;
	s->n_deleted = 0;
}

static void session_close(struct pop3_session *s)
{
	maildrop_close(s);
	login_clear(&s->lx);
	s->state = ST_CLOSED;
	s->close_after_output = true;
}

static void bad_command(struct pop3_session *s)
{
	if (++s->bad_commands >= s->limits.max_bad_commands) {
		reply(s, P_TOO_MANY_ERRORS);
		log_event(LOG_WARN, "too_many_errors", "conn=%llu count=%u", (unsigned long long)s->info.conn_id,
			s->bad_commands);
		session_close(s);
	}
}

static void format_until(time_t until, char *out, size_t outsz)
{
	struct tm tm;
	gmtime_r(&until, &tm);
	strftime(out, outsz, "%H:%M UTC", &tm);
}

/* --- streaming -------------------------------------------------------------- */

/* Stored bytes -> the wire: LF -> CRLF, "." at a line start doubled (RFC 1939 §3),
 * TOP's cut after the header and body_lines lines (RFC 1939 §7). */
static size_t encode(struct pop3_session *s, const char *p, size_t n)
{
	struct stream *t = &s->st;
	char ob[2 * READ_CHUNK];
	size_t o = 0, i;
	for (i = 0; i < n && !t->cut; i++) {
		char c = p[i];
		if (t->at_line_start && c == '.')
			ob[o++] = '.';
		if (c == '\n' && !t->prev_cr) {
			ob[o++] = '\r';
			t->octets++;
		}
		ob[o++] = c;
		t->octets++;
		t->prev_cr = c == '\r';
		t->at_line_start = c == '\n';
		if (c != '\n') {
			if (c != '\r')
				t->line_empty = false;
			continue;
		}
		if (t->body_lines >= 0) {
			if (t->in_header) {
				if (t->line_empty) {
					t->in_header = false;
					if (t->body_lines == 0)
						t->cut = true;
				}
			} else if (++t->lines_sent >= t->body_lines) {
				t->cut = true;
			}
		}
		t->line_empty = true;
	}
	buf_append(&s->out, ob, o);
	return i;
}

static void stream_finish(struct pop3_session *s)
{
	if (s->st.kind == STREAM_MSG && !s->st.at_line_start)
		buf_append(&s->out, "\r\n", 2);   /* the last line had no line end */
	buf_append(&s->out, ".\r\n", 3);
	if (s->st.kind == STREAM_MSG) {
		log_event(LOG_DEBUG, "pop3_sent", "conn=%llu msg=%zu octets=%" PRIu64 "%s", (unsigned long long)s->info.conn_id,
			s->st.index + 1, s->st.octets, s->st.body_lines >= 0 ? " top=yes" : "");
	}
	stream_end(s);
}

static void pump_msg(struct pop3_session *s)
{
	while (s->out.len < POP3_PUMP_TARGET) {
		ssize_t r = s->st.cut ? 0 : s->ops->msg_read(s->st.msg, s->scratch, READ_CHUNK);
		if (r < 0 || (size_t)r > READ_CHUNK) {
			/* Half a message has gone out: closing without the final "." is the only
			 * way to tell the client (RFC 1939 has no mid-response error). */
			log_event(LOG_ERR, "pop3_read_failed", "conn=%llu user=%s msg=%zu sent=%" PRIu64,
				(unsigned long long)s->info.conn_id, s->login ? s->login : "-", s->st.index + 1, s->st.octets);
			session_close(s);
			return;
		}
		if (r == 0) {
			stream_finish(s);
			return;
		}
		encode(s, s->scratch, (size_t)r);
	}
}

static void pump_list(struct pop3_session *s)
{
	while (s->out.len < POP3_PUMP_TARGET) {
		if (s->st.next >= s->count) {
			stream_finish(s);
			return;
		}
		size_t i = s->st.next++;
		if (s->deleted[i])
			continue;
		if (s->st.kind == STREAM_LIST)
			buf_printf(&s->out, "%zu %" PRIu64 "\r\n", i + 1, s->ops->size(s->mb, i));
		else
			buf_printf(&s->out, "%zu %s\r\n", i + 1, s->ops->uid(s->mb, i));
	}
}

void pop3_session_pump(struct pop3_session *s)
{
	switch (s->st.kind) {
	case STREAM_MSG: pump_msg(s); break;
	case STREAM_LIST:
	case STREAM_UIDL: pump_list(s); break;
	case STREAM_NONE: break;
	}
}

bool pop3_session_streaming(const struct pop3_session *s)
{
	return s->st.kind != STREAM_NONE;
}

/* --- message numbers -------------------------------------------------------- */

/* A message number argument: false after replying when it is not one we can use. */
static bool msg_arg(struct pop3_session *s, const struct pop3_span *a, size_t *index)
{
	uint64_t n;
	if (!pop3_parse_number(a, &n) || n == 0 || n > s->count) {
		char q[64];
		quote_for_reply(q, sizeof(q), a->p, a->n);
		reply(s, P_NO_SUCH_MSG, q);
		return false;
	}
	if (s->deleted[n - 1]) {
		reply(s, P_MSG_DELETED, (size_t)n);
		return false;
	}
	*index = (size_t)(n - 1);
	return true;
}

/* --- AUTHORIZATION ---------------------------------------------------------- */

static bool login_allowed(struct pop3_session *s)
{
	if (!s->hooks.auth_verify) {
		reply(s, P_AUTH_UNAVAILABLE);
		return false;
	}
	if (!s->secure && !s->info.allow_plaintext_auth) {
		reply(s, s->info.tls_offered ? P_PLAINTEXT_STLS : P_PLAINTEXT_NO_TLS);
		return false;
	}
	return true;
}

static struct login_hooks login_hooks(const struct pop3_session *s)
{
	return (struct login_hooks){ s->hooks.ctx, s->hooks.auth_blocked, s->hooks.auth_verify };
}

/* The throttle's refusal (auth/throttle.h), in words that say whose failures caused it. */
static void say_throttled(struct pop3_session *s, struct throttle_verdict v, const char *user)
{
	char when[32], q[64];
	format_until(v.until, when, sizeof(when));
	if (v.block == THROTTLE_ACCOUNT && user) {
		quote_for_reply(q, sizeof(q), user, strlen(user));
		reply(s, P_AUTH_THROTTLED_ACCOUNT, q, when);
	} else {
		reply(s, P_AUTH_THROTTLED_ADDRESS, when);
	}
}

/* The login exchange moved on (auth/login.h; RFC 5034 §4): render its step. */
static void auth_progress(struct pop3_session *s, enum login_step st)
{
	s->state = ST_AUTHZ;
	switch (st) {
	case LOGIN_SEND_CHALLENGE:
		buf_printf(&s->out, "+ %s\r\n", login_challenge(&s->lx));
		s->state = ST_SASL;
		return;
	case LOGIN_CHECK: {
		struct login_hooks h = login_hooks(s);
		s->state = ST_WAIT_AUTH;
		login_submit(&s->lx, &h);   /* may answer at once */
		return;
	}
	case LOGIN_THROTTLED:
		say_throttled(s, s->lx.verdict, s->lx.user);
		return;
	case LOGIN_CANCELLED:
		reply(s, P_AUTH_CANCELLED);
		return;
	case LOGIN_BAD_BASE64:
		reply(s, P_AUTH_BAD_BASE64);
		break;
	case LOGIN_MALFORMED:
		reply(s, P_AUTH_MALFORMED);
		break;
	case LOGIN_AUTHZID:
		reply(s, P_AUTH_AUTHZID);
		break;
	}
	bad_command(s);
}

static void cmd_user(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->n_args != 1 || c->too_many_args || c->args[0].n > SASL_USER_MAX) {
		reply(s, P_SYNTAX, "USER name");
		bad_command(s);
		return;
	}
	memcpy(s->user, c->args[0].p, c->args[0].n);
	s->user[c->args[0].n] = '\0';
	s->have_user = true;
	reply(s, P_USER_OK);
}

static void cmd_pass(struct pop3_session *s, const struct pop3_command *c)
{
	if (!s->have_user) {
		reply(s, P_NEED_USER);
		bad_command(s);
		return;
	}
	s->have_user = false;
	if (c->rest.n == 0 || c->rest.n > SASL_PASS_MAX) {
		reply(s, P_SYNTAX, "PASS password");
		bad_command(s);
		return;
	}
	struct login_hooks h = login_hooks(s);
	auth_progress(s, login_password(&s->lx, &h, "USER", s->user, c->rest.p, c->rest.n));
}

/* AUTH [mechanism [initial-response]] (RFC 5034 §4).  Without a mechanism, list
 * them (what RFC 1734-era clients such as Outlook send). */
static void cmd_auth(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->n_args == 0) {
		if (!s->hooks.auth_verify) {
			reply(s, P_AUTH_UNAVAILABLE);
			return;
		}
		reply(s, P_AUTH_MECHS);
		buf_appends(&s->out, "PLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	if (!login_allowed(s))
		return;
	if (c->too_many_args) {
		reply(s, P_SYNTAX, "AUTH mechanism [initial-response]");
		bad_command(s);
		return;
	}
	struct login_hooks h = login_hooks(s);
	struct throttle_verdict v = login_precheck(&h);
	if (v.block != THROTTLE_OPEN) {
		say_throttled(s, v, NULL);
		return;
	}
	enum sasl_mech mech;
	if (!sasl_mech_from_name(c->args[0].p, c->args[0].n, &mech)) {
		char q[64];
		quote_for_reply(q, sizeof(q), c->args[0].p, c->args[0].n);
		reply(s, P_AUTH_UNKNOWN_MECH, q);
		bad_command(s);
		return;
	}
	s->have_user = false;
	bool init = c->n_args == 2;
	auth_progress(s, login_start(&s->lx, &h, mech, init, init ? c->args[1].p : NULL, init ? c->args[1].n : 0));
}

static void cmd_apop(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	reply(s, P_APOP);
}

static void cmd_stls(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->secure) {
		reply(s, P_ALREADY_TLS);
		bad_command(s);
		return;
	}
	if (!s->info.tls_offered) {
		reply(s, P_STLS_UNAVAILABLE);
		return;
	}
	if (c->n_args) {
		reply(s, P_SYNTAX, "STLS (no argument)");
		bad_command(s);
		return;
	}
	reply(s, P_STLS_OK);
	s->wants_tls = true;
	s->state = ST_TLS_PENDING;
}

/* Would USER/PASS and AUTH be accepted on this connection now?  RFC 2595 §6: a
 * server that refuses logins before TLS must not advertise them, or a client sends
 * its password in the clear before it learns the refusal. */
static bool login_offered(const struct pop3_session *s)
{
	return s->hooks.auth_verify && (s->secure || s->info.allow_plaintext_auth);
}

/* RFC 2449 §5. */
static void cmd_capa(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	reply(s, P_CAPA);
	buf_appends(&s->out, "TOP\r\nUIDL\r\n");
	if (login_offered(s))
		buf_appends(&s->out, "USER\r\n");
	buf_appends(&s->out, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION Postern\r\n");
	if (login_offered(s))
		buf_appends(&s->out, "SASL PLAIN LOGIN\r\n");
	if (s->info.tls_offered && !s->secure && s->state == ST_AUTHZ)
		buf_appends(&s->out, "STLS\r\n");
	buf_appends(&s->out, ".\r\n");
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	reply(s, P_NOOP);
}

/* QUIT: in TRANSACTION, the UPDATE state (RFC 1939 §6). */
static void cmd_quit(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	if (s->state != ST_TRANS) {
		reply(s, P_BYE, s->hostname);
		session_close(s);
		return;
	}
	size_t removed = 0;
	char err[300] = "";
	bool ok = true;
	if (s->n_deleted)
		ok = s->ops->expunge(s->mb, s->deleted, &removed, err, sizeof(err));
	log_event(ok ? LOG_INFO : LOG_ERR, "pop3_logout", "conn=%llu user=%s retrieved=%u marked=%zu deleted=%zu%s%s%s",
		(unsigned long long)s->info.conn_id, s->login, s->retrieved, s->n_deleted, removed,
		ok ? "" : " error=\"", ok ? "" : err, ok ? "" : "\"");
	if (ok)
		reply(s, P_BYE_UPDATE, s->hostname, removed, s->count - removed);
	else
		reply(s, P_UPDATE_FAILED);
	session_close(s);
}

/* --- TRANSACTION ------------------------------------------------------------ */

static void cmd_stat(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	reply(s, P_STAT, s->count - s->n_deleted, s->total_octets);
}

static void cmd_list_uidl(struct pop3_session *s, const struct pop3_command *c, bool uidl)
{
	if (c->n_args > 1 || c->too_many_args) {
		reply(s, P_SYNTAX, uidl ? "UIDL [message]" : "LIST [message]");
		bad_command(s);
		return;
	}
	if (c->n_args == 1) {
		size_t i;
		if (!msg_arg(s, &c->args[0], &i))
			return;
		if (uidl)
			reply(s, P_UIDL_ONE, i + 1, s->ops->uid(s->mb, i));
		else
			reply(s, P_LIST_ONE, i + 1, s->ops->size(s->mb, i));
		return;
	}
	if (uidl)
		reply(s, P_UIDL_ALL);
	else
		reply(s, P_LIST_ALL, s->count - s->n_deleted, s->total_octets);
	s->st.kind = uidl ? STREAM_UIDL : STREAM_LIST;
	s->st.next = 0;
	pop3_session_pump(s);
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *c)
{
	cmd_list_uidl(s, c, false);
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	cmd_list_uidl(s, c, true);
}

static void start_message(struct pop3_session *s, size_t i, long body_lines)
{
	void *m = s->ops->msg_open(s->mb, i);
	if (!m) {
		reply(s, P_READ_FAILED, i + 1);
		log_event(LOG_ERR, "pop3_read_failed", "conn=%llu user=%s msg=%zu uid=%s", (unsigned long long)s->info.conn_id,
			s->login, i + 1, s->ops->uid(s->mb, i));
		return;
	}
	if (body_lines < 0) {
		reply(s, P_RETR, s->ops->size(s->mb, i));
		s->retrieved++;
	} else {
		reply(s, P_TOP, i + 1);
	}
	s->st = (struct stream){
		.kind = STREAM_MSG, .msg = m, .index = i, .body_lines = body_lines,
		.at_line_start = true, .in_header = true, .line_empty = true,
	};
	pop3_session_pump(s);
}

static void cmd_retr(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	if (c->n_args != 1 || c->too_many_args) {
		reply(s, P_SYNTAX, "RETR message");
		bad_command(s);
		return;
	}
	if (msg_arg(s, &c->args[0], &i))
		start_message(s, i, -1);
}

static void cmd_top(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	uint64_t lines;
	if (c->n_args != 2 || c->too_many_args) {
		reply(s, P_SYNTAX, "TOP message lines");
		bad_command(s);
		return;
	}
	if (!pop3_parse_number(&c->args[1], &lines)) {
		reply(s, P_SYNTAX, "TOP message lines (lines is a number, 0 or more)");
		bad_command(s);
		return;
	}
	if (msg_arg(s, &c->args[0], &i))
		start_message(s, i, lines > 0x7fffffff ? 0x7fffffff : (long)lines);
}

static void cmd_dele(struct pop3_session *s, const struct pop3_command *c)
{
	size_t i;
	if (c->n_args != 1 || c->too_many_args) {
		reply(s, P_SYNTAX, "DELE message");
		bad_command(s);
		return;
	}
	if (!msg_arg(s, &c->args[0], &i))
		return;
	s->deleted[i] = true;
	s->n_deleted++;
	s->total_octets -= s->ops->size(s->mb, i);
	reply(s, P_DELE, i + 1);
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	memset(s->deleted, 0, s->count * sizeof(*s->deleted));
	s->n_deleted = 0;
	s->total_octets = 0;
	for (size_t i = 0; i < s->count; i++)
		s->total_octets += s->ops->size(s->mb, i);
	reply(s, P_RSET, s->count, s->total_octets);
}

/* --- the command table and the gate ---------------------------------------- */

enum cmd_flags {
	F_AUTHZ = 1 << 0,   /* allowed in the AUTHORIZATION state */
	F_TRANS = 1 << 1,   /* allowed in the TRANSACTION state */
	F_LOGIN = 1 << 2,   /* sends credentials: needs TLS unless plaintext is allowed */
};

struct cmd_def {
	void (*handler)(struct pop3_session *, const struct pop3_command *);
	unsigned flags;
};

static const struct cmd_def commands[POP3_VERB_COUNT] = {
	[POP3_USER] = { cmd_user, F_AUTHZ | F_LOGIN },
	[POP3_PASS] = { cmd_pass, F_AUTHZ | F_LOGIN },
	[POP3_AUTH] = { cmd_auth, F_AUTHZ },   /* checks TLS itself: bare AUTH lists mechanisms */
	[POP3_APOP] = { cmd_apop, F_AUTHZ },
	[POP3_STLS] = { cmd_stls, F_AUTHZ },
	[POP3_CAPA] = { cmd_capa, F_AUTHZ | F_TRANS },
	[POP3_QUIT] = { cmd_quit, F_AUTHZ | F_TRANS },
	[POP3_NOOP] = { cmd_noop, F_AUTHZ | F_TRANS },
	[POP3_STAT] = { cmd_stat, F_TRANS },
	[POP3_LIST] = { cmd_list, F_TRANS },
	[POP3_UIDL] = { cmd_uidl, F_TRANS },
	[POP3_RETR] = { cmd_retr, F_TRANS },
	[POP3_TOP] = { cmd_top, F_TRANS },
	[POP3_DELE] = { cmd_dele, F_TRANS },
	[POP3_RSET] = { cmd_rset, F_TRANS },
};

static void pop3_dispatch(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command c;
	switch (pop3_command_parse(line, len, &c)) {
	case POP3_CMD_EMPTY:
		reply(s, P_EMPTY);
		bad_command(s);
		return;
	case POP3_CMD_BAD_BYTES:
		reply(s, P_BAD_BYTES);
		bad_command(s);
		return;
	case POP3_CMD_OK:
		break;
	}
	const struct cmd_def *def = c.verb != POP3_UNKNOWN ? &commands[c.verb] : NULL;
	if (!def || !def->handler) {
		char q[64];
		quote_for_reply(q, sizeof(q), c.verb_text.p, c.verb_text.n);
		reply(s, P_UNKNOWN, q);
		bad_command(s);
		return;
	}
	/* RFC 2449 §4: command lines up to 255 octets; AUTH's initial response may be
	 * longer (bounded by the line buffer). */
	if (len + 2 > s->limits.max_line && c.verb != POP3_AUTH) {
		reply(s, P_LINE_TOO_LONG, s->limits.max_line);
		bad_command(s);
		return;
	}
	unsigned need = s->state == ST_TRANS ? F_TRANS : F_AUTHZ;
	if (!(def->flags & need)) {
		reply(s, s->state == ST_TRANS ? P_LOGGED_IN_ALREADY : P_NEED_LOGIN, pop3_verb_name(c.verb));
		bad_command(s);
		return;
	}
	if ((def->flags & F_LOGIN) && !login_allowed(s)) {
		s->have_user = false;
		return;
	}
	def->handler(s, &c);
}

/* --- input ------------------------------------------------------------------ */

static void line_too_long(struct pop3_session *s)
{
	if (s->state == ST_SASL) {
		reply(s, P_AUTH_LINE_TOO_LONG);
		login_clear(&s->lx);
		s->state = ST_AUTHZ;
	} else {
		reply(s, P_LINE_TOO_LONG, s->limits.max_line);
	}
	bad_command(s);
}

/* Assemble a line (bounded), dispatch it.  Returns bytes consumed. */
static size_t feed_line(struct pop3_session *s, const char *p, size_t len)
{
	size_t used, n;
	const char *line;
	switch (linebuf_feed(&s->line, p, len, LINE_BUF_MAX, &used, &line, &n)) {
	case LINEBUF_MORE:
		break;
	case LINEBUF_TOO_LONG:
		line_too_long(s);
		break;
	case LINEBUF_LINE:
		if (s->state == ST_SASL) {
			struct login_hooks h = login_hooks(s);
			auth_progress(s, login_answer(&s->lx, &h, line, n));
		}
		else
			pop3_dispatch(s, line, n);
		break;
	}
	return used;
}

size_t pop3_session_feed(struct pop3_session *s, const void *data, size_t len)
{
	const char *p = data;
	size_t used = 0;
	while (used < len) {
		if (s->state != ST_AUTHZ && s->state != ST_TRANS && s->state != ST_SASL)
			break;
		if (s->st.kind != STREAM_NONE || s->out.len >= OUTPUT_PAUSE)
			break;
		used += feed_line(s, p + used, len - used);
	}
	return used;
}

/* --- life cycle -------------------------------------------------------------- */

struct pop3_session *pop3_session_new(const struct pop3_conn_info *info, const struct pop3_limits *limits,
	const struct pop3_hooks *hooks)
{
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->info = *info;
	s->hostname = dup_or_empty(info->hostname);
	s->client_addr = dup_or_empty(info->client_addr);
	s->listener = dup_or_empty(info->listener);
	s->scratch = malloc(READ_CHUNK);
	if (!s->hostname || !s->client_addr || !s->listener || !s->scratch) {
		pop3_session_free(&s);
		return NULL;
	}
	s->info.hostname = s->hostname;
	s->info.client_addr = s->client_addr;
	s->info.listener = s->listener;
	s->limits = *limits;
	if (s->limits.max_line < 255)
		s->limits.max_line = 255;
	if (s->limits.max_bad_commands == 0)
		s->limits.max_bad_commands = 1;
	s->hooks = *hooks;
	buf_init(&s->out, OUTPUT_MAX);
	linebuf_init(&s->line, LINE_BUF_MAX);
	s->state = ST_AUTHZ;
	if (info->tls_active) {
		s->secure = true;
		snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", info->tls_description ? info->tls_description : "TLS");
	}
	s->info.tls_description = NULL;
	return s;
}

void pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;
	if (!s)
		return;
	maildrop_close(s);
	buf_free(&s->out);
	linebuf_free(&s->line);
	login_clear(&s->lx);
	explicit_bzero(s->user, sizeof(s->user));
	free(s->login);
	free(s->scratch);
	free(s->hostname);
	free(s->client_addr);
	free(s->listener);
	free(s);
	*sp = NULL;
}

void pop3_refusal_line(struct buf *out, enum pop3_refusal why, const char *hostname, unsigned long long limit)
{
	char text[RESPONSE_MAX];
	switch (why) {
	case POP3_REFUSE_BUSY:
		snprintf(text, sizeof(text), catalogue[P_CONN_BUSY].text, hostname);
		status_line(out, &catalogue[P_CONN_BUSY], text, NULL);
		break;
	case POP3_REFUSE_ADDRESS_BUSY:
		snprintf(text, sizeof(text), catalogue[P_CONN_ADDRESS_BUSY].text, hostname, limit);
		status_line(out, &catalogue[P_CONN_ADDRESS_BUSY], text, NULL);
		break;
	case POP3_REFUSE_RESERVED:
		snprintf(text, sizeof(text), catalogue[P_CONN_RESERVED].text, hostname);
		status_line(out, &catalogue[P_CONN_RESERVED], text, NULL);
		break;
	case POP3_REFUSE_TLS_EXPECTED:
		snprintf(text, sizeof(text), catalogue[P_CONN_TLS_EXPECTED].text, hostname);
		status_line(out, &catalogue[P_CONN_TLS_EXPECTED], text, NULL);
		break;
	}
}

void pop3_session_start(struct pop3_session *s)
{
	reply(s, P_GREETING, s->hostname);
}

/* End the session with a refusal (its one argument, if any, is an unsigned long
 * long); nothing is deleted (RFC 1939 §6: no UPDATE state). */
static void end_with(struct pop3_session *s, enum pid id, const char *event, unsigned long long arg)
{
	if (s->state == ST_CLOSED)
		return;
	if (s->mb)
		log_event(LOG_INFO, "pop3_abandoned", "conn=%llu user=%s reason=%s marked=%zu deleted=0",
			(unsigned long long)s->info.conn_id, s->login ? s->login : "-", event, s->n_deleted);
	/* Inside a multi-line response nothing more can be said: just close. */
	if (s->st.kind == STREAM_NONE) {
		if (id == P_IDLE_TIMEOUT)
			reply(s, id, s->limits.idle_timeout);
		else
			reply(s, id, arg);
	}
	session_close(s);
}

void pop3_session_deadline(struct pop3_session *s, enum pop3_deadline which, unsigned long long limit)
{
	static const enum pid ids[] = {
		[POP3_DEADLINE_LINE] = P_DEADLINE_LINE, [POP3_DEADLINE_LOGIN] = P_DEADLINE_LOGIN,
		[POP3_DEADLINE_SESSION] = P_DEADLINE_SESSION,
	};
	end_with(s, ids[which], "deadline", limit);
}

bool pop3_session_line_pending(const struct pop3_session *s)
{
	return (s->state == ST_AUTHZ || s->state == ST_SASL || s->state == ST_TRANS) &&
		(s->line.line.len > 0 || s->line.overflow);
}

void pop3_session_timeout(struct pop3_session *s)
{
	end_with(s, P_IDLE_TIMEOUT, "timeout", 0);
}

void pop3_session_shutdown(struct pop3_session *s)
{
	end_with(s, P_SHUTDOWN, "shutdown", 0);
}

void pop3_session_disconnected(struct pop3_session *s)
{
	if (s->mb && s->state != ST_CLOSED)
		log_event(LOG_INFO, "pop3_abandoned", "conn=%llu user=%s reason=disconnected marked=%zu deleted=0",
			(unsigned long long)s->info.conn_id, s->login ? s->login : "-", s->n_deleted);
	maildrop_close(s);
	login_clear(&s->lx);
	s->state = ST_CLOSED;
}

struct buf *pop3_session_output(struct pop3_session *s)
{
	return &s->out;
}

bool pop3_session_wants_close(const struct pop3_session *s)
{
	return s->close_after_output;
}

bool pop3_session_waiting(const struct pop3_session *s)
{
	return s->state == ST_WAIT_AUTH || s->state == ST_WAIT_MAILBOX;
}

const char *pop3_session_login(const struct pop3_session *s)
{
	return s->state == ST_TRANS ? s->login : NULL;
}

/* --- TLS, login, maildrop ----------------------------------------------------- */

bool pop3_session_wants_tls(const struct pop3_session *s)
{
	return s->wants_tls;
}

void pop3_session_tls_started(struct pop3_session *s, const char *description)
{
	/* RFC 2595 §4: the client must discard what it knew; so do we (USER). */
	s->wants_tls = false;
	s->secure = true;
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", description ? description : "TLS");
	s->have_user = false;
	explicit_bzero(s->user, sizeof(s->user));
	linebuf_reset(&s->line);
	if (s->state == ST_TLS_PENDING)
		s->state = ST_AUTHZ;
}

void pop3_session_auth_done(struct pop3_session *s, enum login_result r, const char *login, time_t blocked_until)
{
	if (s->state != ST_WAIT_AUTH)
		return;
	s->state = ST_AUTHZ;
	char when[32];
	switch (r) {
	case LOGIN_OK:
		free(s->login);
		s->login = strdup(login && login[0] ? login : s->lx.user);
		if (!s->login) {
			reply(s, P_AUTH_TEMPFAIL);
			break;
		}
		if (!s->hooks.mailbox_open) {
			reply(s, P_MAILBOX_TEMP);
			break;
		}
		s->state = ST_WAIT_MAILBOX;
		s->hooks.mailbox_open(s->hooks.ctx, s->login);   /* may answer at once */
		return;
	case LOGIN_FAILED:
		reply(s, P_AUTH_FAILED);
		break;
	case LOGIN_BLOCKED:
		format_until(blocked_until, when, sizeof(when));
		reply(s, P_AUTH_THROTTLED_ACCOUNT, s->lx.user, when);
		break;
	case LOGIN_TEMPFAIL:
		reply(s, P_AUTH_TEMPFAIL);
		break;
	}
	explicit_bzero(s->user, sizeof(s->user));
	login_clear(&s->lx);
}

void pop3_session_mailbox_done(struct pop3_session *s, enum pop3_mailbox_result r,
	const struct pop3_maildrop_ops *ops, void *mb)
{
	if (s->state != ST_WAIT_MAILBOX) {
		if (r == POP3_MAILBOX_OK && ops && mb)
			ops->close(mb);   /* nobody is waiting for it any more */
		return;
	}
	s->state = ST_AUTHZ;
	if (r == POP3_MAILBOX_OK && (!ops || !mb))
		r = POP3_MAILBOX_TEMP;
	if (r != POP3_MAILBOX_OK) {
		log_event(r == POP3_MAILBOX_IN_USE ? LOG_INFO : LOG_WARN, "pop3_mailbox_refused", "conn=%llu user=%s result=%s",
			(unsigned long long)s->info.conn_id, s->login,
			r == POP3_MAILBOX_IN_USE ? "in_use" : r == POP3_MAILBOX_TEMP ? "temp" : "perm");
		reply(s, r == POP3_MAILBOX_IN_USE ? P_IN_USE : r == POP3_MAILBOX_TEMP ? P_MAILBOX_TEMP : P_MAILBOX_PERM);
		free(s->login);
		s->login = NULL;
		return;
	}
	s->ops = ops;
	s->mb = mb;
	s->count = ops->count(mb);
	s->deleted = calloc(s->count + 1, sizeof(*s->deleted));
	if (!s->deleted) {
		maildrop_close(s);
		reply(s, P_MAILBOX_TEMP);
		free(s->login);
		s->login = NULL;
		return;
	}
	s->n_deleted = 0;
	s->total_octets = 0;
	for (size_t i = 0; i < s->count; i++)
		s->total_octets += ops->size(mb, i);
	s->state = ST_TRANS;
	log_event(LOG_INFO, "pop3_login", "conn=%llu client=%s user=%s mech=%s tls=%s messages=%zu octets=%" PRIu64,
		(unsigned long long)s->info.conn_id, s->client_addr, s->login, s->lx.mech, s->secure ? "yes" : "no", s->count,
		s->total_octets);
	reply(s, P_LOGGED_IN, s->count, s->total_octets);
}

/* --- the store's Maildir as a maildrop -------------------------------------- */

static size_t md_count(void *mb)
{
	return mailbox_count(mb);
}

static uint64_t md_size(void *mb, size_t i)
{
	return mailbox_msg(mb, i)->size;
}

static const char *md_uid(void *mb, size_t i)
{
	return mailbox_msg(mb, i)->uid;
}

static void *md_open(void *mb, size_t i)
{
	return mailbox_reader_open(mb, i);
}

static ssize_t md_read(void *r, void *p, size_t n)
{
	return mailbox_reader_read(r, p, n);
}

static void md_close_msg(void *r)
{
	struct mailbox_reader *mr = r;
	mailbox_reader_close(&mr);
}

static bool md_expunge(void *mb, const bool *deleted, size_t *removed, char *err, size_t errlen)
{
	return mailbox_expunge(mb, deleted, removed, err, errlen);
}

static void md_close(void *mb)
{
	struct mailbox *m = mb;
	mailbox_close(&m);
}

const struct pop3_maildrop_ops pop3_maildir_ops = {
	.count = md_count, .size = md_size, .uid = md_uid, .msg_open = md_open, .msg_read = md_read,
	.msg_close = md_close_msg, .expunge = md_expunge, .close = md_close,
};
