/* cmd_rcpt.c - RCPT TO (RFC 5321 §4.1.1.3, RFC 3461 DSN parameters): adds a
 * recipient to the transaction, and slows down a client guessing addresses.
 *
 * The decision point: the decision pipeline (session_decide) decides whether a
 * syntactically valid recipient is accepted; refusals are remembered for the 503 at
 * DATA (explain503.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/text.h"

/* Directory harvesting (a client guessing which addresses exist): count the refusals
 * that say "no such address here" over the whole session.  Past a first allowance the
 * reply just written (from reply_start on) is held back for a growing delay; the
 * transport keeps the time (hooks->hold), so the event loop never waits.  At the limit
 * the session ends.  Postfix's smtpd_soft/hard_error_limit work the same way. */
static void count_guess(struct smtp_session *s, size_t reply_start)
{
	unsigned n = ++s->refused_rcpts;
	const struct smtp_limits *l = &s->limits;
	if (l->max_refused_rcpts && n >= l->max_refused_rcpts) {
		refuse(s, R_TOO_MANY_REFUSED_RCPTS, s->hostname, n);
		log_event(LOG_WARN, "harvest_limit", "conn=%llu client=%s refused=%u action=close",
			(unsigned long long)s->info.conn_id, s->client_addr, n);
		session_close(s);
		return;
	}
	if (!s->hooks.hold || !l->refused_rcpt_delay_ms || n <= l->refused_rcpt_delay_after)
		return;
	uint64_t ms = (uint64_t)l->refused_rcpt_delay_ms * (n - l->refused_rcpt_delay_after);
	if (ms > SMTP_REFUSED_DELAY_MAX_MS)
		ms = SMTP_REFUSED_DELAY_MAX_MS;
	if (n == l->refused_rcpt_delay_after + 1)
		log_event(LOG_WARN, "harvest_limit", "conn=%llu client=%s refused=%u action=delay delay_ms=%llu",
			(unsigned long long)s->info.conn_id, s->client_addr, n, (unsigned long long)ms);
	buf_reset(&s->held);
	buf_append(&s->held, s->out.data + reply_start, s->out.len - reply_start);
	s->out.len = reply_start;
	wait_for(s, WAIT_HOLD);
	s->hooks.hold(s->hooks.ctx, (unsigned)ms);   /* may end the hold at once */
}

static bool same_path(const struct smtp_path *a, const struct smtp_path *b)
{
	if (a->bare_postmaster || b->bare_postmaster)
		return a->bare_postmaster == b->bare_postmaster;
	return strcasecmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0;
}

/* RCPT's syntax (RFC 5321 §4.1.1.3, RFC 3461 §4): false when refused, and the
 * refusal is remembered for the 503 at DATA. */
static bool rcpt_syntax_ok(struct smtp_session *s, const struct smtp_command *c, struct smtp_path *path,
	struct smtp_rcpt_params *rp)
{
	const char *detail;
	enum smtp_addr_status st = smtp_parse_rcpt_dsn(c->arg, c->arg_len, path, rp, &detail);
	if (st == ADDR_OK)
		return true;
	struct verdict v;
	char q[80], what[100], ref[32];
	quote_for_reply(q, sizeof(q), c->arg, c->arg_len, SMTP_QUOTE_SHOWN);
	enum verdict_id id = st == ADDR_PARAM_UNKNOWN ? V_RCPT_PARAM_UNKNOWN
		: st == ADDR_NO_KEYWORD || st == ADDR_PARAM_SYNTAX ? V_RCPT_SYNTAX : V_RCPT_BAD_ADDRESS;
	reply_verdict(&v, id, CAUSE_BAD_ADDRESS, detail);
	snprintf(what, sizeof(what), "RCPT %s", q);
	s->refusing_rcpt = bare_path(q);
	refuse_verdict(s, what, &v, ref, sizeof(ref));
	remember_refusal(s->tx, s->refusing_rcpt, &v, ref);
	s->refusing_rcpt = NULL;
	bad_command(s);
	return false;
}

/* Refuse a recipient with a verdict; remember it for the 503.  ref_out (may be
 * NULL) gets the refusal's reference. */
/* cause_id: the refusals metric's label, NULL for the verdict's cause's. */
static void refuse_rcpt(struct smtp_session *s, const char *addr, const struct verdict *v, const char *cause_id,
	char *ref_out, size_t ref_outsz)
{
	char what[SMTP_ADDR_MAX + 3], ref[32];
	snprintf(what, sizeof(what), "<%s>", addr);
	size_t reply_start = s->out.len;
	s->refusing_rcpt = addr;
	refuse_verdict_id(s, what, v, cause_id, ref, sizeof(ref));
	s->refusing_rcpt = NULL;
	remember_refusal(s->tx, addr, v, ref);
	if (v->kind == VERDICT_PERM && policy_cause_is_guess(v->cause))
		count_guess(s, reply_start);
	if (ref_out)
		snprintf(ref_out, ref_outsz, "%s", ref);
}

/* Add an accepted recipient to the transaction; false: out of memory (answered). */
static bool add_rcpt(struct smtp_session *s, const struct smtp_path *path, const struct smtp_rcpt_params *rp)
{
	struct smtp_tx *tx = s->tx;
	if (tx->n_rcpts == tx->cap_rcpts) {
		size_t cap = tx->cap_rcpts ? tx->cap_rcpts * 2 : 4;
		struct smtp_path *p = realloc(tx->rcpts, cap * sizeof(*p));
		if (p)
			tx->rcpts = p;
		struct smtp_rcpt_params *q = p ? realloc(tx->rcpt_params, cap * sizeof(*q)) : NULL;
		if (q)
			tx->rcpt_params = q;
		struct rcpt_found *l = q ? realloc(tx->rcpt_found, cap * sizeof(*l)) : NULL;
		if (!p || !q || !l) {
			reply_spool_failure(s, R_TEMP_SPOOL);
			return false;
		}
		tx->rcpt_found = l;
		tx->cap_rcpts = cap;
	}
	tx->rcpt_found[tx->n_rcpts] = s->rcpt_asked_found;
	tx->rcpt_params[tx->n_rcpts] = *rp;
	tx->rcpts[tx->n_rcpts++] = *path;
	return true;
}

/* The gate saw to it: a transaction, before any BDAT chunk.  Check, decide, add. */
void cmd_rcpt(struct smtp_session *s, const struct smtp_command *c)
{
	struct smtp_tx *tx = s->tx;
	tx->rcpt_commands++;
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	if (!rcpt_syntax_ok(s, c, &path, &rp))
		return;
	char addr[SMTP_ADDR_MAX + 1];
	smtp_path_format(&path, addr, sizeof(addr));
	struct verdict v;
	if (path.utf8 && !tx->params.smtputf8) {
		reply_verdict(&v, V_RCPT_NOT_ASCII, CAUSE_NON_ASCII_ADDRESS, NULL);
		refuse_rcpt(s, addr, &v, NULL, NULL, 0);
		return;
	}
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		if (same_path(&tx->rcpts[i], &path)) {
			/* A duplicate: accepted again, delivered once. */
			say(s, R_RCPT_OK, addr);
			return;
		}
	}
	if (tx->n_rcpts >= s->limits.max_recipients) {
		s->refusing_rcpt = addr;
		refuse(s, R_TOO_MANY_RCPTS, s->limits.max_recipients);
		s->refusing_rcpt = NULL;
		reply_verdict(&v, V_TOO_MANY_RCPTS, CAUSE_TOO_MANY_RECIPIENTS, NULL);
		remember_refusal(tx, addr, &v, "-");
		return;
	}
	/* The decision point of RCPT: the pipeline (directory, quota, relaying). */
	s->rcpt_asked = path;
	s->rcpt_asked_params = rp;
	s->rcpt_asked_found = (struct rcpt_found){ 0 };   /* until the decision's findings say */
	struct policy_facts *f = decision_facts(s, POLICY_AT_RCPT);
	if (f) {
		snprintf(f->address, sizeof(f->address), "%s", addr);
		snprintf(f->local, sizeof(f->local), "%s", path.local);
		snprintf(f->domain, sizeof(f->domain), "%s", path.domain);
		f->bare_postmaster = path.bare_postmaster;
		f->domain_literal = path.domain_literal;
		f->declared_size = tx->params.size_set ? tx->params.size : 0;
	}
	session_decide(s, POLICY_AT_RCPT, f);
}

void rcpt_decided(struct smtp_session *s, const struct verdict *v)
{
	if (!s->tx)
		return;
	char addr[SMTP_ADDR_MAX + 1];
	smtp_path_format(&s->rcpt_asked, addr, sizeof(addr));
	if (v->kind != VERDICT_OK && v->cause == CAUSE_RELAY_NOT_LOGGED_IN && wrong_port_applies(s)) {
		/* The port-25 trap: a mail program sending to another domain on the mx port. */
		struct verdict trapped = *v;
		char ref[32];
		wrong_port_relay_verdict(s, &trapped);
		refuse_rcpt(s, addr, &trapped, reply_cause_id(R_RELAY_WRONG_PORT), ref, sizeof(ref));
		wrong_port_relay_refused(s, ref);
		return;
	}
	if (v->kind != VERDICT_OK) {
		refuse_rcpt(s, addr, v, NULL, NULL, 0);
		return;
	}
	if (add_rcpt(s, &s->rcpt_asked, &s->rcpt_asked_params))
		say(s, R_RCPT_OK, addr);
}
