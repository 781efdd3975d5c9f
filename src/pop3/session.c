/* session.c - the POP3 server state machine (see session.h): the session's life,
 * the command table and the one gate, input, STLS/CAPA/NOOP, TLS and deadlines.
 *
 * One command table and one gate: each keyword has a handler and flags saying in
 * which state it is allowed and whether it logs in (and so needs TLS unless the
 * listener allows plaintext); pop3_dispatch() enforces them before any handler
 * runs.  The handlers of the AUTHORIZATION state are in cmd_auth.c, those of the
 * TRANSACTION state in cmd_mail.c; every status line goes through pop3_reply()
 * (reply.c), whose words come from one catalogue. */
#include "pop3/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/internal.h"
#include "util/buf.h"
#include "util/linebuf.h"
#include "util/log.h"
#include "util/text.h"

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

void pop3_close(struct pop3_session *s)
{
	pop3_maildrop_close(s);
	login_clear(&s->lx);
	s->state = ST_CLOSED;
	s->close_after_output = true;
}

void pop3_bad_command(struct pop3_session *s)
{
	if (++s->bad_commands >= s->limits.max_bad_commands) {
		pop3_reply(s, P_TOO_MANY_ERRORS);
		log_event(LOG_WARN, "too_many_errors", "conn=%llu count=%u", (unsigned long long)s->info.conn_id,
			s->bad_commands);
		pop3_close(s);
	}
}

/* --- AUTHORIZATION: STLS, CAPA, NOOP (the login commands are in cmd_auth.c) -- */

static void cmd_stls(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->secure) {
		pop3_reply(s, P_ALREADY_TLS);
		pop3_bad_command(s);
		return;
	}
	if (!s->info.tls_offered) {
		pop3_reply(s, P_STLS_UNAVAILABLE);
		return;
	}
	if (c->n_args) {
		pop3_reply(s, P_SYNTAX, "STLS (no argument)");
		pop3_bad_command(s);
		return;
	}
	pop3_reply(s, P_STLS_OK);
	s->wants_tls = true;
	s->state = ST_TLS_PENDING;
}

/* RFC 2449 §5. */
static void cmd_capa(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, P_CAPA);
	buf_appends(&s->out, "TOP\r\nUIDL\r\n");
	if (pop3_login_offered(s))
		buf_appends(&s->out, "USER\r\n");
	buf_appends(&s->out, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION Postern\r\n");
	if (pop3_login_offered(s))
		buf_appends(&s->out, "SASL PLAIN LOGIN\r\n");
	if (s->info.tls_offered && !s->secure && s->state == ST_AUTHZ)
		buf_appends(&s->out, "STLS\r\n");
	buf_appends(&s->out, ".\r\n");
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, P_NOOP);
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
	[POP3_USER] = { pop3_cmd_user, F_AUTHZ | F_LOGIN },
	[POP3_PASS] = { pop3_cmd_pass, F_AUTHZ | F_LOGIN },
	[POP3_AUTH] = { pop3_cmd_auth, F_AUTHZ },   /* checks TLS itself: bare AUTH lists mechanisms */
	[POP3_APOP] = { pop3_cmd_apop, F_AUTHZ },
	[POP3_STLS] = { cmd_stls, F_AUTHZ },
	[POP3_CAPA] = { cmd_capa, F_AUTHZ | F_TRANS },
	[POP3_QUIT] = { pop3_cmd_quit, F_AUTHZ | F_TRANS },
	[POP3_NOOP] = { cmd_noop, F_AUTHZ | F_TRANS },
	[POP3_STAT] = { pop3_cmd_stat, F_TRANS },
	[POP3_LIST] = { pop3_cmd_list, F_TRANS },
	[POP3_UIDL] = { pop3_cmd_uidl, F_TRANS },
	[POP3_RETR] = { pop3_cmd_retr, F_TRANS },
	[POP3_TOP] = { pop3_cmd_top, F_TRANS },
	[POP3_DELE] = { pop3_cmd_dele, F_TRANS },
	[POP3_RSET] = { pop3_cmd_rset, F_TRANS },
	/* Not in CAPA: for the nodes of a cluster only (a valid node token). */
	[POP3_XCLIENT] = { pop3_cmd_xclient, F_AUTHZ | F_LOGIN },
};

static void pop3_dispatch(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command c;
	switch (pop3_command_parse(line, len, &c)) {
	case POP3_CMD_EMPTY:
		pop3_reply(s, P_EMPTY);
		pop3_bad_command(s);
		return;
	case POP3_CMD_BAD_BYTES:
		pop3_reply(s, P_BAD_BYTES);
		pop3_bad_command(s);
		return;
	case POP3_CMD_OK:
		break;
	}
	const struct cmd_def *def = c.verb != POP3_UNKNOWN ? &commands[c.verb] : NULL;
	if (!def || !def->handler) {
		char q[64];
		quote_for_reply(q, sizeof(q), c.verb_text.p, c.verb_text.n, POP3_QUOTE_SHOWN);
		pop3_reply(s, P_UNKNOWN, q);
		pop3_bad_command(s);
		return;
	}
	/* RFC 2449 §4: command lines up to 255 octets; AUTH's initial response may be
	 * longer (bounded by the line buffer). */
	if (len + 2 > s->limits.max_line && c.verb != POP3_AUTH) {
		pop3_reply(s, P_LINE_TOO_LONG, s->limits.max_line);
		pop3_bad_command(s);
		return;
	}
	unsigned need = s->state == ST_TRANS ? F_TRANS : F_AUTHZ;
	if (!(def->flags & need)) {
		pop3_reply(s, s->state == ST_TRANS ? P_LOGGED_IN_ALREADY : P_NEED_LOGIN, pop3_verb_name(c.verb));
		pop3_bad_command(s);
		return;
	}
	if ((def->flags & F_LOGIN) && !pop3_login_allowed(s)) {
		s->have_user = false;
		return;
	}
	def->handler(s, &c);
}

/* --- input ------------------------------------------------------------------ */

static void line_too_long(struct pop3_session *s)
{
	if (s->state == ST_SASL) {
		pop3_reply(s, P_AUTH_LINE_TOO_LONG);
		login_clear(&s->lx);
		s->state = ST_AUTHZ;
	} else {
		pop3_reply(s, P_LINE_TOO_LONG, s->limits.max_line);
	}
	pop3_bad_command(s);
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
		if (s->state == ST_SASL)
			pop3_auth_line(s, line, n);
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
	pop3_maildrop_close(s);
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

void pop3_session_start(struct pop3_session *s)
{
	pop3_reply(s, P_GREETING, s->hostname);
}

/* End the session with a refusal (its one argument, if any, is an unsigned long
 * long); nothing is deleted (RFC 1939 §6: no UPDATE state). */
static void end_with(struct pop3_session *s, enum pid id, const char *event, unsigned long long arg)
{
	if (s->state == ST_CLOSED || s->state == ST_PROXIED)
		return;
	if (s->mb)
		log_event(LOG_INFO, "pop3_abandoned", "conn=%llu user=%s reason=%s marked=%zu deleted=0",
			(unsigned long long)s->info.conn_id, s->login ? s->login : "-", event, s->n_deleted);
	/* Inside a multi-line response nothing more can be said: just close. */
	if (s->st.kind == STREAM_NONE) {
		if (id == P_IDLE_TIMEOUT)
			pop3_reply(s, id, s->limits.idle_timeout);
		else
			pop3_reply(s, id, arg);
	}
	pop3_close(s);
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
	pop3_maildrop_close(s);
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
	return s->state == ST_WAIT_AUTH || s->state == ST_WAIT_MAILBOX || s->state == ST_PROXIED;
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
