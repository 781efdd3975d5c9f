/* cmd_mail.c - MAIL FROM (RFC 5321 §4.1.1.2, RFC 1870 SIZE, RFC 6531 SMTPUTF8):
 * opens the transaction once the sender is syntactically valid and allowed.
 *
 * The decision point: policy_check_mail() and, for a logged-in user, the
 * sender_owned hook decide whether this sender may send here; everything before
 * that is syntax, everything after it is storage (spool_room). */
#include <stdio.h>
#include <stdlib.h>

#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/parse.h"

/* MAIL's syntax (RFC 5321 §4.1.2 and the ESMTP parameters): false when refused,
 * and the refusal is remembered for the 503 at DATA. */
static bool mail_syntax_ok(struct smtp_session *s, const struct smtp_command *c, struct smtp_tx *tx)
{
	const char *detail;
	enum smtp_addr_status st = smtp_parse_mail(c->arg, c->arg_len, &tx->sender, &tx->params, &detail);
	if (st == ADDR_OK)
		return true;
	char q[80], what[96];
	quote_for_reply(q, sizeof(q), c->arg, c->arg_len);
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

/* The decision point of MAIL: may this client send as this sender?  policy decides
 * (a submission port wants a login: 530), then, for a logged-in user, whether the
 * login owns the address (the sender_owned hook).  v is OK or the refusal. */
static void decide_sender(struct smtp_session *s, const struct smtp_tx *tx, const char *addr, struct verdict *v)
{
	struct policy_client pc = { .submission_port = s->info.submission, .authenticated = s->login != NULL,
		.trusted_network = s->info.trusted_network };
	policy_check_mail(&pc, v);
	if (v->kind != VERDICT_OK || !s->login || !s->hooks.sender_owned || tx->sender.null)
		return;
	bool temp = false;
	bool owned = s->hooks.sender_owned(s->hooks.ctx, s->login, addr, &temp);
	if (temp)
		reply_verdict(v, V_DIRECTORY_TEMPFAIL, CAUSE_LOOKUP_FAILED, NULL);
	else
		policy_check_sender(s->login, addr, owned, "MAIL FROM", v);
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

/* The gate saw to it: after EHLO/HELO, no transaction yet.  Check, decide, then open. */
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
	struct verdict v;
	decide_sender(s, tx, addr, &v);
	if (v.kind != VERDICT_OK) {
		char what[SMTP_ADDR_MAX + 16];
		snprintf(what, sizeof(what), "MAIL FROM:<%s>", addr);
		remember_mail_refusal(s, what, &v);
		goto refused;
	}
	if (!spool_has_room(s, tx))
		goto refused;
	s->tx = tx;
	say(s, R_SENDER_OK, addr);
	return;
refused:
	free(tx);
}
