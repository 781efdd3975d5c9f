/* session.c - the IMAP server state machine (see session.h): the session's life,
 * input through the parser, the command table and its one gate, the commands of
 * any state (CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, COMPRESS, IDLE), and
 * the jobs that run the disk commands on the caller's worker threads.
 *
 * One command table and one gate: each command has a handler and the states it is
 * allowed in (RFC 3501 §6); imap_dispatch() enforces them before any handler runs.
 * The login commands are in cmd_auth.c, the mailbox commands in mbox.c, the message
 * commands behind imap/exec.h; every refusal of the session's own goes through
 * imap_refuse() (words.c). */
#include "imap/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/internal.h"
#include "util/log.h"
#include "util/text.h"

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

void imap_close(struct imap_session *s)
{
	imap_login_drop(s);
	s->state = ST_LOGOUT;
	s->close_after_output = true;
}

void imap_bad_command(struct imap_session *s)
{
	if (++s->bad_commands >= s->limits.max_bad_commands) {
		imap_reply_untagged(&s->out, "BYE", NULL, "Too many errors (%u); closing the connection", s->bad_commands);
		log_event(LOG_WARN, "too_many_errors", "conn=%llu proto=imap count=%u", (unsigned long long)s->info.conn_id,
			s->bad_commands);
		imap_close(s);
	}
}

/* RFC 3501 §7.2.1; only what is implemented is listed.  Before TLS on a port that
 * insists on it, LOGINDISABLED and no AUTH= (RFC 3501 §6.2.3, RFC 2595 §3.2). */
void imap_capability_list(const struct imap_session *s, struct buf *out)
{
	buf_appends(out, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE QUOTA "
		"QUOTA=RES-STORAGE QUOTA=RES-MESSAGE UIDPLUS MOVE CONDSTORE QRESYNC ESEARCH LIST-EXTENDED LIST-STATUS "
		"UTF8=ACCEPT");
	if ((s->state == ST_AUTH || s->state == ST_SELECTED) && !s->compressed)
		buf_appends(out, " COMPRESS=DEFLATE");   /* RFC 4978 §3: once logged in, once per connection */
	if (s->state == ST_NOAUTH || s->state == ST_SASL) {
		if (s->info.tls_offered && !s->secure)
			buf_appends(out, " STARTTLS");
		if (imap_login_offered(s))
			buf_appends(out, " AUTH=PLAIN AUTH=LOGIN");
		else
			buf_appends(out, " LOGINDISABLED");
	}
}

static void cmd_capability(struct imap_session *s, struct imap_cmd *c)
{
	buf_appends(&s->out, "* CAPABILITY ");
	imap_capability_list(s, &s->out);
	buf_appends(&s->out, "\r\n");
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "CAPABILITY completed");
}

/* In the selected state NOOP and CHECK let the untagged updates through (RFC 3501
 * §6.1.2, §6.4.1): a job, since they read the folder. */
static void cmd_noop(struct imap_session *s, struct imap_cmd *c)
{
	if (s->state == ST_SELECTED) {
		imap_start_job(s, JOB_COMMAND, c);
		return;
	}
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "%s completed", imap_cmd_label(c->name));
}

static void cmd_logout(struct imap_session *s, struct imap_cmd *c)
{
	imap_reply_untagged(&s->out, "BYE", NULL, "%s Postern IMAP server signing off", s->hostname);
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "LOGOUT completed");
	if (s->state == ST_SELECTED)
		imap_mbox_close_selected(s);
	imap_close(s);
}

/* RFC 2971: the client's identification is logged; ours is the name only. */
static void cmd_id(struct imap_session *s, struct imap_cmd *c)
{
	char name[80] = "-", version[80] = "-";
	for (size_t i = 0; i + 1 < c->id.n_pairs; i += 2) {
		const char *k = c->id.pairs[i], *v = c->id.pairs[i + 1];
		if (v && strcasecmp(k, "name") == 0)
			log_quote(name, sizeof(name), v, strlen(v), 60);
		else if (v && strcasecmp(k, "version") == 0)
			log_quote(version, sizeof(version), v, strlen(v), 60);
	}
	log_event(LOG_INFO, "imap_client_id", "conn=%llu name=%s version=%s", (unsigned long long)s->info.conn_id, name,
		version);
	buf_appends(&s->out, "* ID (\"name\" \"Postern\")\r\n");
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "ID completed");
}

/* RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3); UTF8=ACCEPT (RFC 6855).
 * Unknown names are ignored, as the RFC says. */
static void cmd_enable(struct imap_session *s, struct imap_cmd *c)
{
	struct buf line;
	buf_init(&line, 256);
	for (size_t i = 0; i < c->enable.n; i++) {
		const char *cap = c->enable.caps[i];
		bool qresync = strcmp(cap, "QRESYNC") == 0, condstore = strcmp(cap, "CONDSTORE") == 0;
		if (strcmp(cap, "UTF8=ACCEPT") == 0 && !s->x.utf8_accept) {
			/* RFC 6855 §3: mailbox names in UTF-8 both ways (no modified UTF-7), UTF-8 in
			 * quoted strings, APPEND UTF8 (~{N}); the parser reads the next command so. */
			s->x.utf8_accept = true;
			imap_parser_set_utf8(s->parser, true);
			buf_appends(&line, " UTF8=ACCEPT");
		}
		if (qresync && !s->x.qresync) {
			s->x.qresync = true;
			buf_appends(&line, " QRESYNC");
		}
		if ((condstore || qresync) && !s->x.condstore) {
			s->x.condstore = true;
			buf_appends(&line, " CONDSTORE");
		}
	}
	buf_printf(&s->out, "* ENABLED%s\r\n", buf_cstr(&line));
	buf_free(&line);
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "ENABLE completed");
}

/* RFC 2342: one personal namespace, no prefix, "/" between levels. */
static void cmd_namespace(struct imap_session *s, struct imap_cmd *c)
{
	buf_appends(&s->out, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "NAMESPACE completed");
}

/* RFC 4978 §3: the tagged OK goes out uncompressed, everything after it (both ways)
 * compressed; the session takes no more input until the caller has switched
 * (imap_session_compress_started), since what follows is compressed. */
static void cmd_compress(struct imap_session *s, struct imap_cmd *c)
{
	if (strcmp(c->compress, "DEFLATE") != 0) {
		imap_refuse(s, c->tag, W_COMPRESS_METHOD, c->compress);
		imap_bad_command(s);
		return;
	}
	if (s->compressed) {
		imap_refuse(s, c->tag, W_COMPRESS_ACTIVE);
		return;
	}
	imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "DEFLATE active");
	s->wants_compress = true;
}

static void cmd_setquota(struct imap_session *s, struct imap_cmd *c)
{
	imap_refuse(s, c->tag, W_SETQUOTA);
}

/* RFC 2177: "+ idling", then untagged updates as the folder changes, until DONE. */
static void cmd_idle(struct imap_session *s, struct imap_cmd *c)
{
	snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", c->tag);
	s->idle_from = s->state;
	s->state = ST_IDLE;
	s->idle_done_seen = false;
	imap_parser_expect_line(s->parser);
	buf_appends(&s->out, "+ idling\r\n");
}

static void idle_line(struct imap_session *s, const char *line, size_t n)
{
	if (n != 4 || strncasecmp(line, "DONE", 4) != 0) {
		s->state = s->idle_from;
		imap_refuse(s, s->idle_tag, W_IDLE_DONE);
		imap_bad_command(s);
		return;
	}
	s->state = s->idle_from;
	imap_reply_tagged(&s->out, s->idle_tag, IMAP_OK, NULL, "IDLE terminated");
}

static void cmd_job(struct imap_session *s, struct imap_cmd *c)
{
	imap_start_job(s, JOB_COMMAND, c);
}

/* --- the command table and the gate ---------------------------------------- */

enum cmd_flags {
	F_NOAUTH = 1 << 0,     /* allowed when not authenticated */
	F_AUTH = 1 << 1,       /* allowed when authenticated */
	F_SELECTED = 1 << 2,   /* allowed with a folder selected */
	F_ANY = F_NOAUTH | F_AUTH | F_SELECTED,
	F_LOGGED_IN = F_AUTH | F_SELECTED,
};

struct cmd_def {
	void (*handler)(struct imap_session *, struct imap_cmd *);   /* a job keeps it (s->job_cmd) */
	unsigned flags;
};

static const struct cmd_def commands[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = { cmd_capability, F_ANY }, [IMAP_CMD_NOOP] = { cmd_noop, F_ANY },
	[IMAP_CMD_LOGOUT] = { cmd_logout, F_ANY }, [IMAP_CMD_ID] = { cmd_id, F_ANY },
	[IMAP_CMD_COMPRESS] = { cmd_compress, F_LOGGED_IN },
	[IMAP_CMD_STARTTLS] = { imap_cmd_starttls, F_NOAUTH }, [IMAP_CMD_LOGIN] = { imap_cmd_login, F_NOAUTH },
	[IMAP_CMD_AUTHENTICATE] = { imap_cmd_authenticate, F_NOAUTH },
	[IMAP_CMD_ENABLE] = { cmd_enable, F_AUTH },   /* RFC 5161 §3.1: not after SELECT */ [IMAP_CMD_NAMESPACE] = { cmd_namespace, F_LOGGED_IN },
	[IMAP_CMD_IDLE] = { cmd_idle, F_LOGGED_IN }, [IMAP_CMD_SETQUOTA] = { cmd_setquota, F_LOGGED_IN },
	[IMAP_CMD_SELECT] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_EXAMINE] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_CREATE] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_DELETE] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_RENAME] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_SUBSCRIBE] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_UNSUBSCRIBE] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_LIST] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_LSUB] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_STATUS] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_APPEND] = { cmd_job, F_LOGGED_IN }, [IMAP_CMD_GETQUOTA] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_GETQUOTAROOT] = { cmd_job, F_LOGGED_IN },
	[IMAP_CMD_CHECK] = { cmd_noop, F_SELECTED }, [IMAP_CMD_CLOSE] = { cmd_job, F_SELECTED },
	[IMAP_CMD_UNSELECT] = { cmd_job, F_SELECTED }, [IMAP_CMD_EXPUNGE] = { cmd_job, F_SELECTED },
	[IMAP_CMD_SEARCH] = { cmd_job, F_SELECTED }, [IMAP_CMD_FETCH] = { cmd_job, F_SELECTED },
	[IMAP_CMD_STORE] = { cmd_job, F_SELECTED }, [IMAP_CMD_COPY] = { cmd_job, F_SELECTED },
	[IMAP_CMD_MOVE] = { cmd_job, F_SELECTED },
	/* Not in CAPABILITY: for the nodes of a cluster only (a valid node token). */
	[IMAP_CMD_XCLIENT] = { imap_cmd_xclient, F_NOAUTH },
};

static void imap_dispatch(struct imap_session *s, struct imap_cmd *c)
{
	const struct cmd_def *def = &commands[c->name];
	unsigned need = s->state == ST_NOAUTH ? F_NOAUTH : s->state == ST_AUTH ? F_AUTH : F_SELECTED;
	if (!def->handler) {
		imap_refuse(s, c->tag, W_UNKNOWN, imap_cmd_label(c->name));
		imap_bad_command(s);
		imap_cmd_free(&c);
		return;
	}
	if (!(def->flags & need)) {
		char label[40];
		snprintf(label, sizeof(label), "%s%s", c->uid ? "UID " : "", imap_cmd_label(c->name));
		if (s->state == ST_NOAUTH)
			imap_refuse(s, c->tag, W_WRONG_STATE_NOAUTH, label);
		else if (def->flags & F_SELECTED)
			imap_refuse(s, c->tag, W_WRONG_STATE_AUTH, label);
		else if (c->name == IMAP_CMD_ENABLE)
			imap_refuse(s, c->tag, W_ENABLE_SELECTED);
		else
			imap_refuse(s, c->tag, W_WRONG_STATE_SELECTED, label);
		imap_bad_command(s);
		imap_cmd_free(&c);
		return;
	}
	s->cmd_taken = false;
	def->handler(s, c);
	if (!s->cmd_taken)
		imap_cmd_free(&c);
}

/* --- input ------------------------------------------------------------------ */

static void handle_event(struct imap_session *s, enum imap_event ev)
{
	const struct imap_parse_error *e;
	size_t n;
	const char *line;
	switch (ev) {
	case IMAP_EV_MORE:
		break;
	case IMAP_EV_CONTINUE:   /* RFC 3501 §7.5 */
		buf_appends(&s->out, "+ Ready for literal data\r\n");
		break;
	case IMAP_EV_COMMAND:
		imap_dispatch(s, imap_parser_take(s->parser));
		break;
	case IMAP_EV_LINE:
		line = imap_parser_line(s->parser, &n);
		if (s->state == ST_SASL)
			imap_sasl_line(s, line, n);
		else if (s->state == ST_IDLE && s->job_running)
			s->idle_done_seen = true;   /* cannot happen: no input while a job runs */
		else if (s->state == ST_IDLE)
			idle_line(s, line, n);
		break;
	case IMAP_EV_ERROR:
		e = imap_parser_error(s->parser);
		if (s->state == ST_SASL || s->state == ST_IDLE) {
			struct imap_parse_error te = *e;
			snprintf(te.tag, sizeof(te.tag), "%s", s->state == ST_SASL ? s->auth_tag : s->idle_tag);
			s->state = s->state == ST_SASL ? ST_NOAUTH : s->idle_from;
			imap_login_drop(s);
			imap_refuse_parse(s, &te);
		} else {
			imap_refuse_parse(s, e);
		}
		if (e->fatal) {
			imap_reply_untagged(&s->out, "BYE", NULL, "Closing the connection: the command cannot be skipped");
			imap_close(s);
		} else {
			imap_bad_command(s);
		}
		break;
	}
}

static void trim(struct buf *b);

size_t imap_session_feed(struct imap_session *s, const void *data, size_t len)
{
	const char *p = data;
	size_t used = 0;
	trim(&s->out);   /* what a large answer grew is not kept through a long IDLE */
	while (used < len) {
		if (s->state == ST_LOGOUT || s->wants_tls || s->wants_compress || s->waiting_auth || s->job != JOB_NONE ||
		    s->out.len >= OUTPUT_PAUSE)
			break;
		enum imap_event ev;
		used += imap_parser_feed(s->parser, p + used, len - used, &ev);
		handle_event(s, ev);
	}
	return used;
}

/* --- jobs -------------------------------------------------------------------- */

void imap_start_job(struct imap_session *s, enum job_kind k, struct imap_cmd *c)
{
	s->job = k;
	imap_cmd_free(&s->job_cmd);
	s->job_cmd = c;
	s->cmd_taken = c != NULL;
	s->job_more = false;
	s->x.cursor = 0;
	s->x.cursor_state = NULL;
	s->job_running = true;
	buf_reset(&s->job_out);
	if (s->hooks.job) {
		s->hooks.job(s->hooks.ctx);
		return;
	}
	imap_session_job_run(s);   /* no worker threads (tests) */
	imap_session_job_done(s);
}

static enum imap_exec_status run_command(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	enum imap_exec_status st = IMAP_EXEC_DONE;
	switch (c->name) {
	case IMAP_CMD_FETCH: return imap_exec_fetch(&s->x, c, out);
	case IMAP_CMD_SEARCH: return imap_exec_search(&s->x, c, out);
	case IMAP_CMD_STORE: return imap_exec_store(&s->x, c, out);
	case IMAP_CMD_COPY: return imap_exec_copy(&s->x, c, out);
	case IMAP_CMD_MOVE: return imap_exec_move(&s->x, c, out);
	case IMAP_CMD_EXPUNGE: return imap_exec_expunge(&s->x, c, out);
	case IMAP_CMD_NOOP: case IMAP_CMD_CHECK:
		imap_exec_sync(&s->x, out, true);
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%s completed", imap_cmd_label(c->name));
		return IMAP_EXEC_DONE;
	default:
		imap_mbox_run(s, c, out, &st);
		return st;
	}
}

void imap_session_job_run(struct imap_session *s)
{
	enum imap_exec_status st = IMAP_EXEC_DONE;
	switch (s->job) {
	case JOB_LOGIN:
		imap_login_job(s);
		break;
	case JOB_COMMAND:
		st = run_command(s, s->job_cmd, &s->job_out);
		break;
	case JOB_IDLE_CHECK:
		imap_mbox_run(s, NULL, &s->job_out, &st);
		break;
	case JOB_NONE:
		break;
	}
	s->job_more = st == IMAP_EXEC_MORE;
}

static bool holding(const struct imap_session *s)
{
	return s->held_off < s->held.len;
}

static void trim(struct buf *b)
{
	if (b->len == 0 && b->cap > BUF_KEEP)
		buf_free(b);
}

/* Move held output into out, a step at a time, while the client keeps up: however
 * much one job wrote, out stays under OUTPUT_MAX (nothing is cut). */
static void hand_over(struct imap_session *s)
{
	while (holding(s) && s->out.len < OUTPUT_PAUSE) {
		size_t n = s->held.len - s->held_off;
		if (n > IMAP_EXEC_OUTPUT_STEP)
			n = IMAP_EXEC_OUTPUT_STEP;
		buf_append(&s->out, s->held.data + s->held_off, n);
		s->held_off += n;
	}
	if (!holding(s)) {
		buf_reset(&s->held);
		s->held_off = 0;
		trim(&s->held);
	}
}

/* The job's output joins what is held (usually nothing: then the buffers swap) and
 * goes out as far as it may now. */
static void hold_output(struct imap_session *s)
{
	if (!holding(s)) {
		struct buf t = s->held;
		s->held = s->job_out;
		s->job_out = t;
		s->held_off = 0;
	} else {
		buf_append(&s->held, s->job_out.data ? s->job_out.data : "", s->job_out.len);
	}
	buf_reset(&s->job_out);
	trim(&s->job_out);
	hand_over(s);
}

static void end_job(struct imap_session *s)
{
	imap_cmd_free(&s->job_cmd);
	s->job = JOB_NONE;
	trim(&s->job_out);
}

void imap_session_job_done(struct imap_session *s)
{
	s->job_running = false;
	if (s->state == ST_LOGOUT) {   /* BYE was said meanwhile (timeout, shutdown): it stays the last word */
		buf_reset(&s->job_out);
		buf_reset(&s->held);
		s->held_off = 0;
		imap_mbox_close_selected(s);
		imap_cmd_free(&s->job_cmd);
		s->job = JOB_NONE;
		s->job_more = false;
		return;
	}
	bool produced = s->job_out.len > 0;
	hold_output(s);
	if (s->job == JOB_LOGIN)
		imap_login_finish(s);
	if (s->job == JOB_COMMAND && (s->state == ST_AUTH || s->state == ST_SELECTED))
		s->state = s->x.sel ? ST_SELECTED : ST_AUTH;   /* SELECT, CLOSE, a failed SELECT */
	if (s->job_more || holding(s)) {
		if (!produced)
			imap_session_pump(s);
		return;
	}
	end_job(s);
}

bool imap_session_streaming(const struct imap_session *s)
{
	return (s->job_more || holding(s)) && !s->job_running;
}

void imap_session_pump(struct imap_session *s)
{
	if (s->job_running || s->state == ST_LOGOUT)
		return;
	if (holding(s)) {   /* what the last step wrote goes first */
		hand_over(s);
		if (holding(s))
			return;
		if (!s->job_more) {
			end_job(s);
			return;
		}
	}
	if (!s->job_more || s->out.len >= OUTPUT_PAUSE)
		return;
	s->job_more = false;
	s->job_running = true;
	buf_reset(&s->job_out);
	if (s->hooks.job)
		s->hooks.job(s->hooks.ctx);
	else {
		imap_session_job_run(s);
		imap_session_job_done(s);
	}
}

unsigned imap_session_timer_ms(const struct imap_session *s)
{
	if (s->state != ST_IDLE || !s->x.sel || s->job != JOB_NONE)
		return 0;
	return s->limits.settings.idle_poll_ms ? s->limits.settings.idle_poll_ms : 1000;
}

void imap_session_tick(struct imap_session *s)
{
	if (imap_session_timer_ms(s))
		imap_start_job(s, JOB_IDLE_CHECK, NULL);
}

/* --- life cycle -------------------------------------------------------------- */

struct imap_session *imap_session_new(const struct imap_conn_info *info, const struct imap_limits *limits,
	const struct imap_hooks *hooks)
{
	struct imap_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->info = *info;
	s->hostname = dup_or_empty(info->hostname);
	s->client_addr = dup_or_empty(info->client_addr);
	s->listener = dup_or_empty(info->listener);
	s->parser = imap_parser_new();
	if (!s->hostname || !s->client_addr || !s->listener || !s->parser) {
		imap_session_free(&s);
		return NULL;
	}
	s->info.hostname = s->hostname;
	s->info.client_addr = s->client_addr;
	s->info.listener = s->listener;
	s->limits = *limits;
	if (s->limits.max_bad_commands == 0)
		s->limits.max_bad_commands = 1;
	s->x.cfg = &s->limits.settings;
	s->hooks = *hooks;
	buf_init(&s->out, OUTPUT_MAX);
	buf_init(&s->job_out, JOB_OUTPUT_MAX);
	buf_init(&s->held, JOB_OUTPUT_MAX);
	s->state = ST_NOAUTH;
	if (info->tls_active) {
		s->secure = true;
		snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", info->tls_description ? info->tls_description : "TLS");
	}
	s->info.tls_description = NULL;
	return s;
}

void imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;
	if (!s)
		return;
	if (s->x.cursor_state && s->x.cursor_free)
		s->x.cursor_free(s->x.cursor_state);
	s->x.cursor_state = NULL;
	imap_mbox_close_selected(s);
	free(s->x.saved_uids);
	imap_cmd_free(&s->job_cmd);
	imap_parser_free(&s->parser);
	buf_free(&s->out);
	buf_free(&s->job_out);
	buf_free(&s->held);
	imap_login_drop(s);
	free(s->login);
	free(s->root);
	free(s->hostname);
	free(s->client_addr);
	free(s->listener);
	free(s);
	*sp = NULL;
}

void imap_session_start(struct imap_session *s)
{
	buf_appends(&s->out, "* OK [CAPABILITY ");
	imap_capability_list(s, &s->out);
	buf_printf(&s->out, "] %s Postern IMAP server ready\r\n", s->hostname);
}

/* End the session with an untagged BYE (RFC 3501 §7.1.5). */
static void end_with(struct imap_session *s, const char *event, const char *fmt, unsigned long long arg)
{
	if (s->state == ST_LOGOUT || s->proxied)
		return;   /* proxied: the home node's session, nothing of ours to say */
	log_event(LOG_INFO, "imap_ended", "conn=%llu user=%s reason=%s", (unsigned long long)s->info.conn_id,
		s->login ? s->login : "-", event);
	imap_reply_untagged(&s->out, "BYE", NULL, fmt, arg);
	if (!s->job_running)
		imap_mbox_close_selected(s);
	imap_close(s);
}

void imap_session_timeout(struct imap_session *s)
{
	end_with(s, "timeout", "Disconnected for inactivity (%llu seconds, RFC 3501 autologout)",
		(unsigned long long)s->limits.settings.autologout);
}

void imap_session_deadline(struct imap_session *s, enum imap_deadline which, unsigned long long limit)
{
	static const char *const words[] = {
		[IMAP_DEADLINE_LINE] = "Disconnected: a command line took more than %llu seconds to arrive - the connection "
			"is very slow, or the client sends a byte at a time",
		[IMAP_DEADLINE_LOGIN] = "Disconnected: no login within %llu seconds of connecting - check the mail "
			"program's account settings",
		[IMAP_DEADLINE_SESSION] = "[UNAVAILABLE] Disconnected: session longer than %llu seconds - connect again",
	};
	end_with(s, "deadline", words[which], limit);
}

void imap_session_shutdown(struct imap_session *s)
{
	end_with(s, "shutdown", "[UNAVAILABLE] Server shutting down; connect again in a minute%.0llu", 0);
}

void imap_session_disconnected(struct imap_session *s)
{
	if (!s->job_running)
		imap_mbox_close_selected(s);
	imap_login_drop(s);
	s->state = ST_LOGOUT;
}

bool imap_session_line_pending(const struct imap_session *s)
{
	return s->state != ST_LOGOUT && imap_parser_pending(s->parser);
}

bool imap_session_in_literal(const struct imap_session *s)
{
	return s->state != ST_LOGOUT && imap_parser_in_literal(s->parser);
}

bool imap_session_idling(const struct imap_session *s)
{
	return s->state == ST_IDLE;
}

struct buf *imap_session_output(struct imap_session *s)
{
	return &s->out;
}

bool imap_session_wants_close(const struct imap_session *s)
{
	return s->close_after_output && !s->job_running;
}

bool imap_session_waiting(const struct imap_session *s)
{
	return s->waiting_auth || s->job_running || s->proxied;
}

const char *imap_session_login(const struct imap_session *s)
{
	return s->state == ST_AUTH || s->state == ST_SELECTED || s->state == ST_IDLE ? s->login : NULL;
}

bool imap_session_wants_tls(const struct imap_session *s)
{
	return s->wants_tls;
}

void imap_session_tls_started(struct imap_session *s, const char *description)
{
	/* RFC 3501 §6.2.1: the client discards what it knew; the parser starts afresh. */
	s->wants_tls = false;
	s->secure = true;
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", description ? description : "TLS");
	imap_parser_free(&s->parser);
	s->parser = imap_parser_new();
	if (!s->parser) {
		s->state = ST_LOGOUT;
		s->close_after_output = true;
	}
}

bool imap_session_wants_compress(const struct imap_session *s)
{
	return s->wants_compress;
}

void imap_session_compress_started(struct imap_session *s, bool started)
{
	s->wants_compress = false;
	s->compressed = started;
	if (!started) {   /* the client already compresses: nothing it sends can be read */
		log_event(LOG_ERR, "imap_ended", "conn=%llu user=%s reason=compress_failed", (unsigned long long)s->info.conn_id,
			s->login ? s->login : "-");
		if (!s->job_running)
			imap_mbox_close_selected(s);
		imap_close(s);
	}
}

void imap_session_input_broken(struct imap_session *s, const char *why)
{
	if (s->state == ST_LOGOUT)
		return;
	log_event(LOG_INFO, "imap_ended", "conn=%llu user=%s reason=compress_broken", (unsigned long long)s->info.conn_id,
		s->login ? s->login : "-");
	imap_reply_untagged(&s->out, "BYE", NULL, "Closing the connection: what the mail program sent cannot be "
		"decompressed (COMPRESS=DEFLATE, RFC 4978: %.100s) - a fault in the mail program or the network; connect "
		"again, or turn compression off in the mail program", why);
	if (!s->job_running)
		imap_mbox_close_selected(s);
	imap_close(s);
}

void imap_refusal_line(struct buf *out, enum imap_refusal why, const char *hostname, unsigned long long limit)
{
	switch (why) {
	case IMAP_REFUSE_BUSY:
		imap_reply_untagged(out, "BYE", "UNAVAILABLE", "%s Too many connections just now; nothing was lost - your "
			"mail program will try again in a few minutes", hostname);
		break;
	case IMAP_REFUSE_ADDRESS_BUSY:
		imap_reply_untagged(out, "BYE", "UNAVAILABLE", "%s Too many connections from your address (limit %llu): close "
			"other mail programs or devices on your network that read mail here, or try again later", hostname, limit);
		break;
	case IMAP_REFUSE_RESERVED:
		imap_reply_untagged(out, "BYE", "UNAVAILABLE", "%s Server nearly full: the last connections are kept for "
			"clients that have none open - close other connections from your address, or try again later", hostname);
		break;
	case IMAP_REFUSE_TLS_EXPECTED:
		imap_reply_untagged(out, "BYE", NULL, "%s No IMAP in plaintext here: this port expects TLS from the first "
			"byte (RFC 8314) - set the mail program's connection security to SSL/TLS for this port, or STARTTLS on "
			"port 143", hostname);
		break;
	}
}
