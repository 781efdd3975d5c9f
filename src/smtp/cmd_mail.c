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

void cmd_mail(struct smtp_session *s, const struct smtp_command *c)
{
	if (s->tx) {
		if (s->tx->used_bdat)
			say(s, R_CMD_AFTER_BDAT, "MAIL");
		else
			say(s, R_NESTED_MAIL);
		bad_command(s);
		return;
	}
	forget_mail_refusal(s);
	struct smtp_tx *tx = calloc(1, sizeof(*tx));
	if (!tx) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		return;
	}
	const char *detail;
	enum smtp_addr_status st = smtp_parse_mail(c->arg, c->arg_len, &tx->sender, &tx->params, &detail);
	if (st != ADDR_OK) {
		char q[80], what[96];
		quote_for_reply(q, sizeof(q), c->arg, c->arg_len);
		snprintf(what, sizeof(what), "MAIL %s", q);
		struct verdict v;
		if (st == ADDR_PARAM_UNKNOWN)
			verdict_set(&v, VERDICT_PERM, 555, "5.5.4", CAUSE_BAD_ADDRESS, detail,
				"Remove the parameter, or send EHLO to see the extensions this server offers");
		else if (st == ADDR_SYNTAX || st == ADDR_TOO_LONG)
			verdict_set(&v, VERDICT_PERM, 501, "5.1.7", CAUSE_BAD_ADDRESS, detail, "Use MAIL FROM:<you@example.org>");
		else
			verdict_set(&v, VERDICT_PERM, 501, "5.5.4", CAUSE_BAD_ADDRESS, detail, "Use MAIL FROM:<you@example.org>");
		remember_mail_refusal(s, what, &v);
		free(tx);
		bad_command(s);
		return;
	}
	if (tx->params.size_set && tx->params.size > s->limits.max_message) {
		say(s, R_MSG_TOO_BIG_DECLARED, (unsigned long long)tx->params.size,
			(unsigned long long)s->limits.max_message);
		free(tx);
		return;
	}
	char addr[SMTP_ADDR_MAX + 1];
	smtp_path_format(&tx->sender, addr, sizeof(addr));
	if (tx->sender.utf8 && !tx->params.smtputf8) {
		say(s, R_EIGHTBIT_NO_SMTPUTF8, addr);
		free(tx);
		return;
	}
	char what[SMTP_ADDR_MAX + 16];
	snprintf(what, sizeof(what), "MAIL FROM:<%s>", addr);
	struct verdict v;
	struct policy_client pc = { .submission_port = s->info.submission, .authenticated = s->login != NULL,
		.trusted_network = s->info.trusted_network };
	policy_check_mail(&pc, &v);
	if (v.kind == VERDICT_OK && s->login && s->hooks.sender_owned && !tx->sender.null) {
		bool temp = false;
		bool owned = s->hooks.sender_owned(s->hooks.ctx, s->login, addr, &temp);
		if (temp)
			verdict_set(&v, VERDICT_TEMP, 451, "4.3.0", CAUSE_LOOKUP_FAILED,
				"temporary failure: the user directory could not be read", "Your mail program will try again later");
		else
			policy_check_sender(s->login, addr, owned, "MAIL FROM", &v);
	}
	if (v.kind != VERDICT_OK) {
		remember_mail_refusal(s, what, &v);
		free(tx);
		return;
	}
	/* RFC 1870 §6.1: a declared size that the queue cannot hold now is refused here;
	 * without SIZE, only a queue already out of space is. */
	if (s->hooks.spool_room && !s->hooks.spool_room(s->hooks.ctx, tx->params.size_set ? tx->params.size : 0)) {
		char sz[32];
		if (tx->params.size_set && tx->params.size > 0)
			say(s, R_NO_SPACE_SIZE, format_size(tx->params.size, sz, sizeof(sz)));
		else
			say(s, R_NO_SPACE_MAIL);
		free(tx);
		return;
	}
	s->tx = tx;
	say(s, R_SENDER_OK, addr);
}
