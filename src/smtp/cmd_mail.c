/* cmd_mail.c - MAIL FROM (RFC 5321 §4.1.1.2, RFC 1870 SIZE, RFC 6531 SMTPUTF8):
 * opens the transaction once the sender is syntactically valid and allowed.
 *
 * The decision point: everything before the decision is syntax; whether this sender
 * may send here is asked of the decision pipeline (session_decide: a submission port
 * needs a login, a login must own the address), and the answer comes to
 * mail_decided(), which checks storage (spool_room) and replies. */
#include <stdio.h>
#include <stdlib.h>

#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/parse.h"
#include "util/text.h"

/* MAIL's syntax (RFC 5321 §4.1.2 and the ESMTP parameters): false when refused,
 * and the refusal is remembered for the 503 at DATA. */
static bool mail_syntax_ok(struct smtp_session *s, const struct smtp_command *c, struct smtp_tx *tx)
{
	const char *detail;
	enum smtp_addr_status st = smtp_parse_mail(c->arg, c->arg_len, &tx->sender, &tx->params, &detail);
	if (st == ADDR_OK)
		return true;
	char q[80], what[96];
	quote_for_reply(q, sizeof(q), c->arg, c->arg_len, SMTP_QUOTE_SHOWN);
	snprintf(what, sizeof(what), "MAIL %s", q);
	struct verdict v;
	enum verdict_id id = st == ADDR_PARAM_UNKNOWN ? V_MAIL_PARAM_UNKNOWN
		: st == ADDR_SYNTAX || st == ADDR_TOO_LONG ? V_MAIL_BAD_ADDRESS : V_MAIL_SYNTAX;
	reply_verdict(&v, id, CAUSE_BAD_ADDRESS, detail);
	remember_mail_refusal(s, what, &v);
	bad_command(s);
	return false;
}

/* What the parameters promise and this session cannot keep: a declared SIZE over
 * the limit (RFC 1870 §6.2), a non-ASCII sender without SMTPUTF8 (RFC 6531 §3.4). */
static bool mail_params_ok(struct smtp_session *s, const struct smtp_tx *tx, const char *addr)
{
	if (tx->params.size_set && tx->params.size > s->limits.max_message) {
		refuse(s, R_MSG_TOO_BIG_DECLARED, (unsigned long long)tx->params.size,
			(unsigned long long)s->limits.max_message);
		return false;
	}
	if (tx->sender.utf8 && !tx->params.smtputf8) {
		refuse(s, R_EIGHTBIT_NO_SMTPUTF8, addr);
		return false;
	}
	return true;
}

/* RFC 1870 §6.1: a declared size that the queue cannot hold now is refused here;
 * without SIZE, only a queue already out of space is. */
static bool spool_has_room(struct smtp_session *s, const struct smtp_tx *tx)
{
	if (!s->hooks.spool_room || s->hooks.spool_room(s->hooks.ctx, tx->params.size_set ? tx->params.size : 0))
		return true;
	char sz[32];
	if (tx->params.size_set && tx->params.size > 0)
		refuse(s, R_NO_SPACE_SIZE, format_size(tx->params.size, sz, sizeof(sz)));
	else
		refuse(s, R_NO_SPACE_MAIL);
	return false;
}

/* The gate saw to it: after EHLO/HELO, no transaction yet.  Check, then ask. */
void cmd_mail(struct smtp_session *s, const struct smtp_command *c)
{
	forget_mail_refusal(s);
	struct smtp_tx *tx = calloc(1, sizeof(*tx));
	if (!tx) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		return;
	}
	char addr[SMTP_ADDR_MAX + 1];
	if (!mail_syntax_ok(s, c, tx))
		goto refused;
	smtp_path_format(&tx->sender, addr, sizeof(addr));
	if (!mail_params_ok(s, tx, addr))
		goto refused;
	/* The decision point of MAIL: may this client send as this sender?  A submission
	 * port wants a login (530), a login must own the address.  Provisional until
	 * decided: the session frees it if it ends meanwhile. */
	s->tx = tx;
	struct policy_facts *f = decision_facts(s, POLICY_AT_MAIL);
	if (f) {
		snprintf(f->address, sizeof(f->address), "%s", addr);
		snprintf(f->local, sizeof(f->local), "%s", tx->sender.local);     /* as at the end of data */
		snprintf(f->domain, sizeof(f->domain), "%s", tx->sender.domain);
		f->null_sender = tx->sender.null;
		f->declared_size = tx->params.size_set ? tx->params.size : 0;
	}
	session_decide(s, POLICY_AT_MAIL, f);
	return;
refused:
	free(tx);
}

void mail_decided(struct smtp_session *s, const struct verdict *v)
{
	struct smtp_tx *tx = s->tx;
	if (!tx)
		return;
	char addr[SMTP_ADDR_MAX + 1];
	smtp_path_format(&tx->sender, addr, sizeof(addr));
	if (v->kind != VERDICT_OK) {
		char what[SMTP_ADDR_MAX + 16];
		snprintf(what, sizeof(what), "MAIL FROM:<%s>", addr);
		remember_mail_refusal(s, what, v);
		tx_free(s);
		return;
	}
	if (!spool_has_room(s, tx)) {
		tx_free(s);
		return;
	}
	say(s, R_SENDER_OK, addr);
}
