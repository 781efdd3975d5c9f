/* session.c - the SMTP server state machine and its gate (see session.h).
 *
 * One command table and one gate: each verb has a handler and flags, and
 * session_dispatch() enforces the flags before any handler runs.  The handlers live
 * in one file per command family (cmd_hello.c, cmd_mail.c, cmd_rcpt.c, cmd_data.c,
 * cmd_auth.c; the explaining 503 in explain503.c), sharing session_int.h.  A handler
 * checks syntax and state, asks hooks for decisions, and answers through respond.c
 * (say, refuse) with words from the catalogue in reply.c.  The
 * transaction (struct smtp_tx) is created at MAIL and destroyed at RSET, EHLO/HELO,
 * the end of data, or the end of the session: one place to free, one to roll back. */
#include "smtp/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/login.h"
#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/linebuf.h"
#include "util/log.h"
#include "util/text.h"

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* --- the one waiting state, and decisions ----------------------------------- */

void wait_for(struct smtp_session *s, enum smtp_wait what)
{
	s->state = ST_WAIT;
	s->wait = what;
}

bool waiting_for(const struct smtp_session *s, enum smtp_wait what)
{
	return s->state == ST_WAIT && s->wait == what;
}

struct policy_facts *decision_facts(const struct smtp_session *s, enum policy_point point)
{
	struct policy_facts *f = policy_facts_new(point);
	if (!f)
		return NULL;
	f->conn_id = (unsigned long long)s->info.conn_id;
	f->client = (struct policy_client){ .submission_port = s->info.submission, .authenticated = s->login != NULL,
		.trusted_network = s->info.trusted_network, .pop_login_age = -1, .node_peer = s->node_peer };
	snprintf(f->client_addr, sizeof(f->client_addr), "%s", s->client_addr);
	snprintf(f->login, sizeof(f->login), "%s", s->login ? s->login : "");
	snprintf(f->auth_mech, sizeof(f->auth_mech), "%s", s->login ? s->auth_mech : "");
	snprintf(f->helo, sizeof(f->helo), "%s", s->helo_seen ? s->helo : "");
	if (s->tx) {
		f->txn = s->tx->txn;   /* a copy: only MAIL's findings are kept (smtp_session_findings) */
		f->txn_rcpts = s->tx->n_rcpts;
	}
	return f;
}

void smtp_session_findings(struct smtp_session *s, const struct policy_facts *f)
{
	if (!s->tx || !f || f->point != s->deciding)
		return;
	if (f->point == POLICY_AT_MAIL)
		s->tx->txn = f->txn;
	else if (f->point == POLICY_AT_RCPT)
		s->rcpt_asked_found = (struct rcpt_found){ .local = f->rcpt.domain_local, .quota = f->maildir_quota };
}

static void resume_decision(struct smtp_session *s, const struct verdict *v)
{
	switch (s->deciding) {
	case POLICY_AT_MAIL: mail_decided(s, v); break;
	case POLICY_AT_RCPT: rcpt_decided(s, v); break;
	case POLICY_AT_FROM_HEADER: from_header_decided(s, v); break;
	case POLICY_AT_END_OF_DATA: end_of_data_decided(s, v); break;
	case POLICY_POINT_COUNT: break;
	}
}

void session_decide(struct smtp_session *s, enum policy_point point, struct policy_facts *f)
{
	struct verdict v;
	s->deciding = point;
	if (!f) {
		reply_verdict(&v, V_DECISION_NO_MEMORY, CAUSE_LOOKUP_FAILED, NULL);
		resume_decision(s, &v);
		return;
	}
	if (s->hooks.decide(s->hooks.ctx, f, &v)) {
		resume_decision(s, &v);
		return;
	}
	wait_for(s, WAIT_DECISION);
}

void smtp_session_decided(struct smtp_session *s, const struct verdict *v)
{
	if (!waiting_for(s, WAIT_DECISION))
		return;   /* the session ended meanwhile */
	s->state = ST_CMD;
	resume_decision(s, v);
}


/* --- the command table and the gate --------------------------------------- */

/* The flags of a verb.  gate() checks them in the order of this list, which is the
 * order in which the refusals came when each handler checked for itself: a command
 * wrong in two ways gets the same words as before. */
enum cmd_flags {
	F_NEED_HELO = 1 << 0,     /* only after EHLO/HELO (RFC 5321 §4.1.4) */
	F_OFFERED = 1 << 1,       /* an extension: only where it is offered (row: unavailable) */
	F_BEFORE_AUTH = 1 << 2,   /* only before a login (RFC 4954 §4: one AUTH per session) */
	F_BEFORE_TLS = 1 << 3,    /* only before TLS (RFC 3207 §4: no second STARTTLS) */
	F_NEED_TX = 1 << 4,       /* only inside a transaction; outside it explain503.c answers */
	F_NO_ARG = 1 << 5,        /* takes no argument (row: arg_refused) */
	F_NOT_IN_BDAT = 1 << 6,   /* not between the BDAT chunks of a message (RFC 3030 §2; row: in_bdat) */
	F_NO_TX = 1 << 7,         /* only outside a transaction (row: in_tx) */
	F_NEED_TLS = 1 << 8,      /* carries a password: not allowed before TLS on a listener
	                           * that requires it (every one without allow_plaintext_auth) */
	F_ENDS_GROUP = 1 << 9,    /* must be the last of a pipelined group (RFC 2920 §3.1,
	                           * RFC 3207 §4.2, RFC 4954 §4) */
};

struct cmd_def {
	const char *name;
	smtp_cmd_handler *handler;
	unsigned flags;
	enum reply_id unavailable, arg_refused, in_bdat, in_tx;   /* the words of the flags above */
};

/* BDAT has no state flags: its chunk must be read whatever the state (cmd_data.c). */
static const struct cmd_def commands[SMTP_VERB_COUNT] = {
	[SMTP_HELO] = { .name = "HELO", .handler = cmd_helo, .flags = F_ENDS_GROUP },
	[SMTP_EHLO] = { .name = "EHLO", .handler = cmd_ehlo, .flags = F_ENDS_GROUP },
	[SMTP_MAIL] = { .name = "MAIL", .handler = cmd_mail, .flags = F_NEED_HELO | F_NOT_IN_BDAT | F_NO_TX,
		.in_bdat = R_CMD_AFTER_BDAT, .in_tx = R_NESTED_MAIL },
	[SMTP_RCPT] = { .name = "RCPT", .handler = cmd_rcpt, .flags = F_NEED_HELO | F_NEED_TX | F_NOT_IN_BDAT,
		.in_bdat = R_CMD_AFTER_BDAT },
	[SMTP_DATA] = { .name = "DATA", .handler = cmd_data,
		.flags = F_NEED_HELO | F_NEED_TX | F_NO_ARG | F_NOT_IN_BDAT | F_ENDS_GROUP,
		.arg_refused = R_NO_DATA_ARG, .in_bdat = R_DATA_AFTER_BDAT },
	[SMTP_BDAT] = { .name = "BDAT", .handler = cmd_bdat, .flags = 0 },
	[SMTP_RSET] = { .name = "RSET", .handler = cmd_rset, .flags = 0 },
	[SMTP_NOOP] = { .name = "NOOP", .handler = cmd_noop, .flags = F_ENDS_GROUP },
	[SMTP_QUIT] = { .name = "QUIT", .handler = cmd_quit, .flags = F_ENDS_GROUP },
	[SMTP_HELP] = { .name = "HELP", .handler = cmd_help, .flags = 0 },
	[SMTP_VRFY] = { .name = "VRFY", .handler = cmd_vrfy, .flags = F_ENDS_GROUP },
	[SMTP_EXPN] = { .name = "EXPN", .handler = cmd_expn, .flags = F_ENDS_GROUP },
	[SMTP_STARTTLS] = { .name = "STARTTLS", .handler = cmd_starttls,
		.flags = F_OFFERED | F_BEFORE_TLS | F_NO_ARG | F_ENDS_GROUP,
		.unavailable = R_STARTTLS_UNAVAILABLE, .arg_refused = R_STARTTLS_ARG },
	[SMTP_AUTH] = { .name = "AUTH", .handler = cmd_auth,
		.flags = F_NEED_HELO | F_OFFERED | F_BEFORE_AUTH | F_NO_TX | F_NEED_TLS | F_ENDS_GROUP,
		.unavailable = R_AUTH_UNAVAILABLE, .in_tx = R_AUTH_IN_TX },
	[SMTP_LHLO] = { .name = "LHLO", .handler = cmd_lhlo, .flags = F_ENDS_GROUP },
	[SMTP_XNODE] = { .name = "XNODE", .handler = cmd_xnode, .flags = F_NEED_HELO | F_NO_TX | F_ENDS_GROUP,
		.in_tx = R_NESTED_MAIL },
};

/* Is the extension behind this verb offered on this connection (as EHLO says)? */
static bool offered(const struct smtp_session *s, enum smtp_verb verb)
{
	switch (verb) {
	case SMTP_STARTTLS: return s->info.tls_offered;
	case SMTP_AUTH: return smtp_auth_offered(s);
	default: return true;
	}
}

/* A refusal of the gate; a protocol error counts towards the bad-command limit. */
static bool gate_refuse(struct smtp_session *s, bool is_error, enum reply_id id, ...)
{
	va_list ap;
	va_start(ap, id);
	refuse_v(s, NULL, id, ap);
	va_end(ap);
	if (is_error)
		bad_command(s);
	return false;
}

/* LMTP between nodes (RFC 2033 §4.1) and SMTP keep to their own greetings and
 * commands; MAIL over LMTP waits for the node token.  true: go on with the gate. */
static bool lmtp_gate(struct smtp_session *s, const struct smtp_command *c)
{
	enum smtp_verb v = c->verb;
	if (!s->info.lmtp) {
		if (v != SMTP_LHLO && v != SMTP_XNODE)
			return true;
		char q[80];
		quote_for_reply(q, sizeof(q), c->verb_text, c->verb_len, SMTP_QUOTE_SHOWN);
		return gate_refuse(s, true, R_UNKNOWN_COMMAND, q);
	}
	if (v == SMTP_EHLO || v == SMTP_HELO)
		return gate_refuse(s, true, R_LMTP_NEEDS_LHLO, v == SMTP_EHLO ? "EHLO" : "HELO");
	if (v == SMTP_STARTTLS || v == SMTP_AUTH || v == SMTP_BDAT) {
		char q[80];
		quote_for_reply(q, sizeof(q), c->verb_text, c->verb_len, SMTP_QUOTE_SHOWN);
		return gate_refuse(s, true, R_UNKNOWN_COMMAND, q);
	}
	if (v == SMTP_MAIL && s->helo_seen && !s->node_peer)
		return gate_refuse(s, true, R_NODE_TOKEN_NEEDED);
	return true;
}

/* The one place that enforces the flags: true when the handler may run. */
static bool gate(struct smtp_session *s, const struct cmd_def *d, const struct smtp_command *c)
{
	unsigned f = d->flags;
	if (!lmtp_gate(s, c))
		return false;
	if ((f & F_NEED_HELO) && !s->helo_seen)
		return gate_refuse(s, true, R_NEED_HELO);
	if ((f & F_OFFERED) && !offered(s, c->verb)) {
		if (c->verb == SMTP_AUTH && s->hooks.auth_verify && wrong_port_applies(s)) {
			wrong_port_refuse_auth(s);   /* before any credentials are read */
			return false;
		}
		return gate_refuse(s, false, d->unavailable);
	}
	if ((f & F_BEFORE_AUTH) && s->login)
		return gate_refuse(s, true, R_AUTH_TWICE);
	if ((f & F_BEFORE_TLS) && s->secure)
		return gate_refuse(s, true, R_ALREADY_TLS);
	if ((f & F_NEED_TX) && !s->tx) {
		explain_no_transaction(s, c);
		return false;
	}
	if ((f & F_NO_ARG) && c->arg_len)
		return gate_refuse(s, true, d->arg_refused);
	if ((f & F_NOT_IN_BDAT) && s->tx && s->tx->used_bdat)
		return gate_refuse(s, true, d->in_bdat, d->name);
	if ((f & F_NO_TX) && s->tx)
		return gate_refuse(s, true, d->in_tx);
	if (f & F_NEED_TLS) {
		enum login_transport tr = smtp_login_transport(s);
		if (tr != LOGIN_TRANSPORT_OK) {
			refuse_counted(s, CAUSE_TLS_REQUIRED, tr == LOGIN_NEEDS_STARTTLS ? R_AUTH_NEEDS_STARTTLS : R_AUTH_NEEDS_TLS_PORT);
			return false;
		}
	}
	return true;
}

static void session_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command c;
	s->cmd_name = NULL;
	switch (smtp_command_parse(line, len, &c)) {
	case SMTP_CMD_EMPTY:
		refuse(s, R_UNKNOWN_COMMAND, "");
		bad_command(s);
		return;
	case SMTP_CMD_BAD_BYTES:
		refuse(s, R_SYNTAX_BAD_BYTES);
		bad_command(s);
		return;
	case SMTP_CMD_OK:
		break;
	}
	const struct cmd_def *def = c.verb != SMTP_UNKNOWN ? &commands[c.verb] : NULL;
	s->cmd_name = def ? def->name : NULL;
	if (!def || !def->handler) {
		char q[80];
		quote_for_reply(q, sizeof(q), c.verb_text, c.verb_len, SMTP_QUOTE_SHOWN);
		refuse(s, R_UNKNOWN_COMMAND, q);
		bad_command(s);
		return;
	}
	if (def->flags & F_ENDS_GROUP)
		s->group_ender = def->name;
	if (gate(s, def, &c))
		def->handler(s, &c);
}

/* RFC 2920 §3.1: a client must wait for the reply to a command that ends a group
 * before it sends more.  One that does not is not refused (its commands are
 * answered in order), but logged once per session, as Postfix does: it is the mark
 * of a bulk sender that does not read replies. */
static void note_pipelining(struct smtp_session *s, bool more_input)
{
	if (!s->group_ender)
		return;
	if (more_input && !s->pipelining_noted) {
		s->pipelining_noted = true;
		log_event(LOG_INFO, "improper_pipelining", "conn=%llu after=%s",
			(unsigned long long)s->info.conn_id, s->group_ender);
	}
	s->group_ender = NULL;
}

/* --- input ---------------------------------------------------------------- */

static void line_too_long(struct smtp_session *s)
{
	if (s->state == ST_AUTH) {
		refuse(s, R_AUTH_LINE_TOO_LONG);   /* RFC 4954 §4 */
		lx_end(s);
		s->state = ST_CMD;
	} else {
		refuse(s, R_SYNTAX_LINE_TOO_LONG, s->limits.max_line);
	}
	bad_command(s);
}

/* Command mode: assemble a line (bounded), dispatch it.  Returns bytes consumed. */
static size_t feed_command(struct smtp_session *s, const char *p, size_t len)
{
	size_t max = s->state == ST_AUTH ? SASL_LINE_MAX + 2 : s->limits.max_line;
	size_t used, n;
	const char *line;
	switch (linebuf_feed(&s->line, p, len, max, &used, &line, &n)) {
	case LINEBUF_MORE:
		break;
	case LINEBUF_TOO_LONG:
		line_too_long(s);
		break;
	case LINEBUF_LINE:
		if (s->state == ST_AUTH)
			auth_line(s, line, n);
		else
			session_dispatch(s, line, n);
		break;
	}
	return used;
}

size_t smtp_session_feed(struct smtp_session *s, const void *data, size_t len)
{
	const char *p = data;
	size_t used = 0;
	for (;;) {
		if (s->state == ST_CLOSED || s->state == ST_WAIT || s->state == ST_TLS_PENDING)
			break;
		/* A zero-length BDAT chunk completes without input. */
		if (s->state == ST_BDAT && s->tx->bdat_remaining == 0) {
			bdat_chunk_done(s);
			continue;
		}
		if (s->state == ST_BDAT_DISCARD && s->discard_remaining == 0) {
			bdat_discard_done(s);
			continue;
		}
		if (used >= len)
			break;
		/* Back-pressure: a client that pipelines without reading replies waits. */
		if ((s->state == ST_CMD || s->state == ST_AUTH) && s->out.len >= OUTPUT_PAUSE)
			break;
		size_t n;
		switch (s->state) {
		case ST_CMD:
		case ST_AUTH: n = feed_command(s, p + used, len - used); break;
		case ST_DATA: n = feed_data(s, p + used, len - used); break;
		case ST_BDAT: n = feed_bdat(s, p + used, len - used); break;
		case ST_BDAT_DISCARD: n = feed_bdat_discard(s, p + used, len - used); break;
		default: n = 0; break;
		}
		used += n;
		note_pipelining(s, used < len);
	}
	return used;
}

/* --- life cycle ----------------------------------------------------------- */

struct smtp_session *smtp_session_new(const struct smtp_conn_info *info,
	const struct smtp_limits *limits, const struct smtp_hooks *hooks)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->info = *info;
	s->hostname = dup_or_empty(info->hostname);
	s->client_addr = dup_or_empty(info->client_addr);
	s->client_name = dup_or_empty(info->client_name);
	s->listener = dup_or_empty(info->listener);
	s->authserv_id = dup_or_empty(info->authserv_id);
	if (!s->hostname || !s->client_addr || !s->client_name || !s->listener || !s->authserv_id) {
		smtp_session_free(&s);
		return NULL;
	}
	s->info.hostname = s->hostname;
	s->info.client_addr = s->client_addr;
	s->info.client_name = s->client_name;
	s->info.listener = s->listener;
	s->info.authserv_id = s->authserv_id;
	s->limits = *limits;
	if (s->limits.max_line < 512)
		s->limits.max_line = 512;
	if (s->limits.max_bad_commands == 0)
		s->limits.max_bad_commands = 1;
	if (s->limits.max_message_line == 0)
		s->limits.max_message_line = SMTP_MESSAGE_LINE_DEFAULT;
	s->hooks = *hooks;
	buf_init(&s->out, OUTPUT_MAX);
	linebuf_init(&s->line, s->limits.max_line > SASL_LINE_MAX + 2 ? s->limits.max_line : SASL_LINE_MAX + 2);
	buf_init(&s->scratch, FEED_CHUNK + 16);
	buf_init(&s->held, 4096);
	s->state = ST_CMD;
	if (info->tls_active) {
		s->secure = true;
		snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", info->tls_description ? info->tls_description : "TLS");
	}
	s->info.tls_description = NULL;   /* not owned; kept in tls_desc */
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;
	if (!s)
		return;
	if (!waiting_for(s, WAIT_COMMIT))
		tx_free(s);
	else if (s->tx) {
		/* The commit owns the spool file; just drop our record. */
		s->tx->spool_open = false;
		tx_free(s);
	}
	buf_free(&s->out);
	linebuf_free(&s->line);
	buf_free(&s->scratch);
	buf_free(&s->held);
	lx_end(s);
	free(s->login);
	free(s->local_user);
	free(s->hostname);
	free(s->authserv_id);
	free(s->client_addr);
	free(s->client_name);
	free(s->listener);
	free(s);
	*sp = NULL;
}

void smtp_session_start(struct smtp_session *s)
{
	say(s, s->info.lmtp ? R_LMTP_GREETING : R_GREETING, s->hostname);
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->state == ST_CLOSED)
		return;
	s->cmd_name = NULL;   /* not an answer to a command */
	refuse(s, R_IDLE_TIMEOUT, s->hostname, (unsigned long long)s->limits.idle_timeout);
	session_close(s);
}

void smtp_session_deadline(struct smtp_session *s, enum smtp_deadline which, unsigned long long limit)
{
	static const enum reply_id ids[] = {
		[SMTP_DEADLINE_LINE] = R_DEADLINE_LINE, [SMTP_DEADLINE_DATA_RATE] = R_DEADLINE_DATA_RATE,
		[SMTP_DEADLINE_LOGIN] = R_DEADLINE_LOGIN, [SMTP_DEADLINE_SESSION] = R_DEADLINE_SESSION,
	};
	if (s->state == ST_CLOSED || waiting_for(s, WAIT_COMMIT))
		return;   /* a commit in progress finishes and gets its reply */
	s->cmd_name = NULL;   /* not an answer to a command */
	refuse(s, ids[which], s->hostname, limit);
	session_close(s);
}

bool smtp_session_line_pending(const struct smtp_session *s)
{
	return (s->state == ST_CMD || s->state == ST_AUTH) && (s->line.line.len > 0 || s->line.overflow);
}

bool smtp_session_in_data(const struct smtp_session *s)
{
	return s->state == ST_DATA || s->state == ST_BDAT || s->state == ST_BDAT_DISCARD;
}

void smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == ST_CLOSED || waiting_for(s, WAIT_COMMIT))
		return;
	s->cmd_name = NULL;   /* not an answer to a command */
	refuse(s, R_SHUTDOWN, s->hostname);
	session_close(s);
}

void smtp_session_disconnected(struct smtp_session *s)
{
	if (waiting_for(s, WAIT_COMMIT) && s->tx)
		s->tx->spool_open = false;   /* the running commit owns the spool file */
	tx_free(s);
	s->state = ST_CLOSED;
}

struct buf *smtp_session_output(struct smtp_session *s)
{
	return &s->out;
}

bool smtp_session_wants_close(const struct smtp_session *s)
{
	return s->close_after_output;
}

bool smtp_session_waiting(const struct smtp_session *s)
{
	return s->state == ST_WAIT && s->wait != WAIT_LOGIN;
}

void smtp_session_hold_done(struct smtp_session *s)
{
	if (!waiting_for(s, WAIT_HOLD))
		return;
	buf_append(&s->out, s->held.data ? s->held.data : "", s->held.len);
	buf_reset(&s->held);
	s->state = ST_CMD;
}

uint64_t smtp_session_declared_size(const struct smtp_session *s)
{
	return s->tx && s->tx->params.size_set ? s->tx->params.size : 0;
}

void smtp_session_local_user(struct smtp_session *s, const char *name, unsigned uid)
{
	free(s->local_user);   /* only local sessions carry it: not every idle connection */
	s->local_user = strdup(name && name[0] ? name : "unknown");
	s->local_uid = uid;
}

const char *smtp_session_login(const struct smtp_session *s)
{
	return s->login;
}
