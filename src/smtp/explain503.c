/* explain503.c - the 503 that explains itself (DESIGN invariant 3).
 *
 * A DATA or BDAT with nothing to send is answered with every refusal that led there
 * (the sender, each recipient, earlier login trouble) and the single most useful fix,
 * instead of a bare "503 valid RCPT command must precede DATA".  This file keeps the
 * record of those refusals and writes that reply. */
#include <stdio.h>
#include <string.h>

#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/text.h"

/* "TO:<a@b>" or "TO: a@b" -> "a@b", for naming a refused recipient (in place). */
char *bare_path(char *arg)
{
	char *p = arg;
	if (ascii_ieq(p, "TO:", 3))
		p += 3;
	while (*p == ' ')
		p++;
	size_t n = strlen(p);
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p[n - 1] = '\0';
		p++;
	}
	return p;
}

/* Remember a refused recipient for the 503 at DATA. */
void remember_refusal(struct smtp_tx *tx, const char *addr, const struct verdict *v, const char *ref)
{
	if (v->cause < CAUSE_COUNT)
		tx->cause_counts[v->cause]++;
	if (tx->n_refused < REFUSALS_LISTED) {
		struct refusal *r = &tx->refused[tx->n_refused];
		snprintf(r->addr, sizeof(r->addr), "%s", addr);
		snprintf(r->reason, sizeof(r->reason), "%.*s", (int)sizeof(r->reason) - 1, v->reason);
		snprintf(r->ref, sizeof(r->ref), "%s", ref);
	}
	tx->n_refused++;
}

/* Refuse MAIL and remember why, for a 503 at DATA. */
void remember_mail_refusal(struct smtp_session *s, const char *what, const struct verdict *v)
{
	char ref[32];
	refuse_verdict(s, what, v, ref, sizeof(ref));
	s->have_mail_refusal = true;
	s->mail_cause = v->cause < CAUSE_COUNT ? v->cause : CAUSE_NONE;
	snprintf(s->mail_refusal.addr, sizeof(s->mail_refusal.addr), "%s", what);
	snprintf(s->mail_refusal.reason, sizeof(s->mail_refusal.reason), "%.*s", (int)sizeof(s->mail_refusal.reason) - 1, v->reason);
	snprintf(s->mail_refusal.ref, sizeof(s->mail_refusal.ref), "%s", ref);
}

/* A new MAIL, a login or TLS: earlier refusals explain nothing any more. */
void forget_mail_refusal(struct smtp_session *s)
{
	s->have_mail_refusal = false;
	s->n_orphans = 0;
}

/* RCPT after a refused MAIL: remember the address (escaped) for the 503 at DATA. */
static void remember_orphan(struct smtp_session *s, const struct smtp_command *c)
{
	if (s->n_orphans++ >= ORPHANS_NAMED)
		return;
	char *out = s->orphans[s->n_orphans - 1];
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	const char *detail;
	char addr[SMTP_ADDR_MAX + 1];
	if (smtp_parse_rcpt_dsn(c->arg, c->arg_len, &path, &rp, &detail) == ADDR_OK) {
		smtp_path_format(&path, addr, sizeof(addr));
		quote_for_reply(out, ORPHAN_ADDR_MAX, addr, strlen(addr), SMTP_QUOTE_SHOWN);
	} else {
		char q[ORPHAN_ADDR_MAX];
		quote_for_reply(q, sizeof(q), c->arg, c->arg_len, SMTP_QUOTE_SHOWN);
		snprintf(out, ORPHAN_ADDR_MAX, "%s", bare_path(q));
	}
}

/* "a", "a and b", "a, b and c", "a, b, c, d and 6 more" */
static void name_orphans(const struct smtp_session *s, struct buf *text)
{
	unsigned named = s->n_orphans < ORPHANS_NAMED ? s->n_orphans : ORPHANS_NAMED;
	for (unsigned i = 0; i < named; i++) {
		bool last_named = i + 1 == named;
		const char *sep = i == 0 ? "" : (last_named && s->n_orphans == named) ? " and " : ", ";
		buf_printf(text, "%s%s", sep, s->orphans[i]);
	}
	if (s->n_orphans > named)
		buf_printf(text, " and %u more", s->n_orphans - named);
}

/* The refused sender, and the recipients given after it. */
static void name_refused_sender(const struct smtp_session *s, const char *verb, struct buf *text)
{
	if (s->n_orphans) {
		buf_appends(text, "Your message to ");
		name_orphans(s, text);
		buf_printf(text, " was not sent: the sender was refused, so %s has nothing to go with\n", verb);
	} else {
		buf_printf(text, "No message to send: the sender was refused, so %s has nothing to go with\n", verb);
	}
	buf_printf(text, "%s: %s (ref %s)\n", s->mail_refusal.addr, s->mail_refusal.reason, s->mail_refusal.ref);
}

/* Every refused recipient, the first REFUSALS_LISTED by name. */
static void name_refused_rcpts(const struct smtp_tx *tx, struct buf *text)
{
	buf_printf(text, "No valid recipients, so there is no message to send: the server refused %s\n",
		tx->n_refused == 1 ? "the only recipient" : "every recipient");
	unsigned listed = tx->n_refused < REFUSALS_LISTED ? tx->n_refused : REFUSALS_LISTED;
	for (unsigned i = 0; i < listed; i++)
		buf_printf(text, "<%s>: %s (ref %s)\n", tx->refused[i].addr, tx->refused[i].reason, tx->refused[i].ref);
	if (tx->n_refused > listed)
		buf_printf(text, "... and %u more refused recipients\n", tx->n_refused - listed);
}

/* Earlier login trouble explains the refusals: say so. */
static void name_login_trouble(const struct smtp_session *s, struct buf *text)
{
	if (s->causes[CAUSE_TLS_REQUIRED])
		buf_appends(text, "Earlier, AUTH was refused because the connection was not encrypted\n");
	else if (s->causes[CAUSE_THROTTLED])
		buf_appends(text, "Earlier, AUTH was refused: too many failed logins from your address\n");
	else if (s->causes[CAUSE_AUTH_FAILED])
		buf_appends(text, "Earlier, the login failed: wrong user name or password\n");
}

/* The 503 at DATA/BDAT when nothing can be sent: name every refusal that led here
 * and end with the single most useful fix. */
void reply_no_recipients(struct smtp_session *s, const char *verb)
{
	struct smtp_tx *tx = s->tx;
	unsigned counts[CAUSE_COUNT];
	for (int i = 0; i < CAUSE_COUNT; i++)
		counts[i] = s->causes[i] + (tx ? tx->cause_counts[i] : 0);
	bool sender_refused = !tx && s->have_mail_refusal;
	bool rcpts_refused = tx && tx->rcpt_commands > 0 && tx->n_refused > 0;
	if (!sender_refused && !rcpts_refused) {
		if (!tx)
			refuse(s, R_NEED_MAIL);
		else
			refuse(s, R_NO_RCPT_YET, verb);
		return;
	}
	struct buf text;
	buf_init(&text, REFUSAL_TEXT_MAX - 64);   /* room for the reference */
	if (sender_refused) {
		counts[s->mail_cause]++;
		name_refused_sender(s, verb, &text);
	} else {
		name_refused_rcpts(tx, &text);
	}
	name_login_trouble(s, &text);
	wrong_port_503_line(s, &text);
	buf_appends(&text, policy_best_fix(counts));
	struct verdict v;
	reply_verdict(&v, V_NOTHING_TO_SEND, CAUSE_NONE, "");
	refusal_write_id(s, "nothing to send", s->wrong_port_seen ? "wrong_port" : "command_sequence", v.code, v.enh, buf_cstr(&text), NULL, 0);
	buf_free(&text);
}

/* RCPT or DATA without a transaction (the gate's F_NEED_TX). */
void explain_no_transaction(struct smtp_session *s, const struct smtp_command *c)
{
	if (c->verb == SMTP_DATA) {
		reply_no_recipients(s, "DATA");
		bad_command(s);
		return;
	}
	if (s->have_mail_refusal) {
		/* A pipelining client (RFC 2920) sent these with the MAIL that was refused:
		 * they follow from that refusal, and the 503 at DATA must get to name them,
		 * so up to a message's worth are not bad commands. */
		remember_orphan(s, c);
		refuse(s, R_RCPT_AFTER_REFUSED_MAIL, s->mail_refusal.ref);
		if (s->n_orphans > s->limits.max_recipients)
			bad_command(s);
		return;
	}
	refuse(s, R_NEED_MAIL);
	bad_command(s);
}
