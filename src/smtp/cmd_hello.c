/* cmd_hello.c - the commands around a transaction: EHLO/HELO (RFC 5321 §4.1.1.1,
 * the extensions offered), RSET, NOOP, QUIT, HELP, VRFY and EXPN. */
#include <string.h>

#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"

static void cmd_helo_common(struct smtp_session *s, const struct smtp_command *c, bool esmtp)
{
	if (c->arg_len == 0) {
		refuse(s, R_HELO_NEEDS_DOMAIN, esmtp ? "EHLO" : "HELO");
		bad_command(s);
		return;
	}
	size_t n = c->arg_len < HELO_MAX ? c->arg_len : HELO_MAX;
	/* Keep only the first word; the rest is commentary some clients add. */
	const char *sp = memchr(c->arg, ' ', n);
	if (sp)
		n = (size_t)(sp - c->arg);
	memcpy(s->helo, c->arg, n);
	s->helo[n] = '\0';
	tx_free(s);   /* RFC 5321 §4.1.4: EHLO/HELO reset the transaction */
	s->helo_seen = true;
	s->esmtp = esmtp;
	if (!esmtp) {
		reply_writef(&s->out, 250, NULL, "%s", s->hostname);
		return;
	}
	if (s->info.lmtp) {   /* RFC 2033 §4.1; no CHUNKING: its replies would be per chunk */
		reply_writef(&s->out, 250, NULL, "%s Hello [%s]\nPIPELINING\nSIZE %llu\n8BITMIME\nSMTPUTF8\n"
			"ENHANCEDSTATUSCODES\nDSN\nXNODE", s->hostname, s->client_addr, (unsigned long long)s->limits.max_message);
		return;
	}
	bool tls = s->info.tls_offered && !s->secure;
	bool auth = smtp_auth_offered(s) && !s->login && smtp_login_transport(s) == LOGIN_TRANSPORT_OK;
	reply_writef(&s->out, 250, NULL,
		"%s Hello [%s]\nPIPELINING\nSIZE %llu\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nCHUNKING\nDSN%s%s\nHELP",
		s->hostname, s->client_addr, (unsigned long long)s->limits.max_message,
		tls ? "\nSTARTTLS" : "", auth ? "\nAUTH PLAIN LOGIN" : "");
}

void cmd_ehlo(struct smtp_session *s, const struct smtp_command *c) { cmd_helo_common(s, c, true); }
void cmd_lhlo(struct smtp_session *s, const struct smtp_command *c) { cmd_helo_common(s, c, true); }

/* XNODE <token>: the peer proves it is a node of this cluster (auth/node_token.h,
 * purpose "lmtp"); the check is the adapter's (hooks->node_check). */
void cmd_xnode(struct smtp_session *s, const struct smtp_command *c)
{
	char token[200], peer[64] = "", why[200] = "the token is missing";
	size_t n = c->arg_len < sizeof(token) - 1 ? c->arg_len : sizeof(token) - 1;
	memcpy(token, c->arg, n);
	token[n] = '\0';
	if (n && s->hooks.node_check && s->hooks.node_check(s->hooks.ctx, token, peer, sizeof(peer), why, sizeof(why))) {
		s->node_peer = true;
		say(s, R_NODE_OK, peer);
		return;
	}
	refuse(s, R_NODE_TOKEN_REFUSED, why);
	bad_command(s);
}
void cmd_helo(struct smtp_session *s, const struct smtp_command *c) { cmd_helo_common(s, c, false); }

void cmd_rset(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	tx_free(s);
	say(s, R_RSET);
}

void cmd_noop(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_NOOP);
}

void cmd_quit(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_BYE);
	session_close(s);
}

void cmd_help(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_HELP);
}

void cmd_vrfy(struct smtp_session *s, const struct smtp_command *c)
{
	/* RFC 5321 §3.5.3: 252 when we will not say; never reveal which users exist. */
	(void)c;
	say(s, R_VRFY);
}

void cmd_expn(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	refuse(s, R_NOT_IMPLEMENTED, "EXPN");
}
