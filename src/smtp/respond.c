/* respond.c - how the SMTP session answers, shared by every command file: replies
 * that are not refusals (say), the one refusal writer and its three entry points
 * (refuse, refuse_counted, refuse_verdict), the bad-command count, quoting client
 * text, and the two ways a transaction or a session ends (tx_free, session_close).
 * It calls no command handler, so the command files and session.c stand on it. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"

void next_ref(struct smtp_session *s, char *out, size_t outsz)
{
	/* Unique across restarts: the run id comes first (util/id.h). */
	if (s->info.run_id && s->info.run_id[0])
		snprintf(out, outsz, "%s.%llu.%u", s->info.run_id, (unsigned long long)s->info.conn_id, ++s->refs);
	else
		snprintf(out, outsz, "%llu.%u", (unsigned long long)s->info.conn_id, ++s->refs);
}

void tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (!tx)
		return;
	if (tx->spool_open)
		s->hooks.spool_abort(s->hooks.ctx);
	free(tx->from_scan);
	free(tx->ar_drop);
	free(tx->rcpts);
	free(tx->rcpt_params);
	free(tx->rcpt_found);
	free(tx);
	s->tx = NULL;
}

void session_close(struct smtp_session *s)
{
	if (waiting_for(s, WAIT_COMMIT) && s->tx)
		s->tx->spool_open = false;   /* the running commit owns the spool file */
	tx_free(s);
	s->state = ST_CLOSED;
	s->close_after_output = true;
}

/* Every catalogue reply from the session goes through here: a refusal (4xx/5xx)
 * gets a reference on its last line and an event=refused log line with the same
 * reference, so an administrator can find it from a user's screenshot. */
/* A reply that is not a refusal (refusals go through refuse()). */
void say(struct smtp_session *s, enum reply_id id, ...)
{
	assert(reply_get(id)->code < 400);
	va_list ap;
	va_start(ap, id);
	reply_vid(&s->out, NULL, NULL, 0, id, ap);
	va_end(ap);
}

/* The event store hears of every refusal through the adapter (hooks->refused): the
 * reply's first paragraph (up to an empty line), who and what it was about. */
static void tell_refused(struct smtp_session *s, const char *cause_id, int code, const char *enh, const char *text,
	const char *ref)
{
	if (!s->hooks.refused)
		return;
	const char *para = strstr(text, "\n\n");
	char from[SMTP_ADDR_MAX + 1];
	if (s->tx)
		smtp_path_format(&s->tx->sender, from, sizeof(from));
	struct smtp_refusal_note n = {
		.cmd = s->cmd_name, .code = code, .enh = enh, .cause_id = cause_id, .ref = ref, .text = text,
		.text_len = para ? (size_t)(para - text) : strlen(text), .login = s->login,
		.mail_from = s->tx ? from : NULL, .rcpt = s->refusing_rcpt,
	};
	s->hooks.refused(s->hooks.ctx, &n);
}

/* The one refusal writer (DESIGN invariant 3): the reference goes on the reply's
 * last line and into one event=refused log line, so that an administrator finds the
 * line from a user's screenshot.  text is reason and hint; the log gets its first
 * line.  reply_write checks the code and that the enhanced code's class matches.
 * cause_id (explain's id) labels postern_refusals_total: one count per refusal. */
void refusal_write_id(struct smtp_session *s, const char *cause, const char *cause_id, int code, const char *enh,
	const char *text, char *ref_out, size_t ref_outsz)
{
	char ref[32];
	next_ref(s, ref, sizeof(ref));
	struct buf out;
	buf_init(&out, REFUSAL_TEXT_MAX);
	buf_printf(&out, "%s (ref %s)", text, ref);
	reply_write(&s->out, code, enh, buf_cstr(&out));
	buf_free(&out);
	metrics_count(METRIC_REFUSALS, cause_id ? cause_id : "unknown", 1);
	char q[300];
	size_t first_line = strcspn(text, "\n");
	log_event(code >= 500 ? LOG_INFO : LOG_WARN, "refused", "conn=%llu client=%s ref=%s cmd=%s code=%d enh=%s cause=\"%s\" reason=%s",
		(unsigned long long)s->info.conn_id, s->client_addr, ref, s->cmd_name ? s->cmd_name : "-", code, enh ? enh : "-",
		cause ? cause : "-", log_quote(q, sizeof(q), text, first_line, 256));
	tell_refused(s, cause_id, code, enh, text, ref);
	if (ref_out)
		snprintf(ref_out, ref_outsz, "%s", ref);
}

void refusal_write(struct smtp_session *s, const char *cause, int code, const char *enh, const char *text,
	char *ref_out, size_t ref_outsz)
{
	refusal_write_id(s, cause, NULL, code, enh, text, ref_out, ref_outsz);
}

/* A catalogue refusal; cause_id NULL: the catalogue entry's own. */
static void refuse_reply(struct smtp_session *s, const char *cause, const char *cause_id, enum reply_id id, va_list ap)
{
	const struct reply_entry *e = reply_get(id);
	assert(e->code >= 400);
	char text[2048];
	reply_vformat(text, sizeof(text), id, ap);
	refusal_write_id(s, cause, cause_id ? cause_id : reply_cause_id(id), e->code, e->enh, text, NULL, 0);
}

void refuse_v(struct smtp_session *s, const char *cause, enum reply_id id, va_list ap)
{
	refuse_reply(s, cause, NULL, id, ap);
}

void refuse(struct smtp_session *s, enum reply_id id, ...)
{
	va_list ap;
	va_start(ap, id);
	refuse_reply(s, NULL, NULL, id, ap);
	va_end(ap);
}

void refuse_counted(struct smtp_session *s, enum refusal_cause cause, enum reply_id id, ...)
{
	if (cause < CAUSE_COUNT)
		s->causes[cause]++;
	va_list ap;
	va_start(ap, id);
	refuse_reply(s, policy_cause_name(cause), policy_cause_id(cause), id, ap);
	va_end(ap);
}

void refuse_verdict(struct smtp_session *s, const char *what, const struct verdict *v, char *ref_out, size_t ref_outsz)
{
	refuse_verdict_id(s, what, v, NULL, ref_out, ref_outsz);
}

void refuse_verdict_id(struct smtp_session *s, const char *what, const struct verdict *v, const char *cause_id,
	char *ref_out, size_t ref_outsz)
{
	char text[1200];
	if (v->hint[0])
		snprintf(text, sizeof(text), "%s: %s\n%s", what, v->reason, v->hint);
	else
		snprintf(text, sizeof(text), "%s: %s", what, v->reason);
	refusal_write_id(s, policy_cause_name(v->cause), cause_id ? cause_id : policy_cause_id(v->cause), v->code, v->enh,
		text, ref_out, ref_outsz);
}

/* Count a protocol error; past the limit the session ends (STYLE 5: bound input). */
void bad_command(struct smtp_session *s)
{
	if (++s->bad_commands >= s->limits.max_bad_commands) {
		refuse(s, R_TOO_MANY_ERRORS, s->hostname);
		log_event(LOG_WARN, "too_many_errors", "conn=%llu count=%u",
			(unsigned long long)s->info.conn_id, s->bad_commands);
		session_close(s);
	}
}
