/* cmd_auth.c - the POP3 AUTHORIZATION state's login commands: USER/PASS, AUTH
 * (RFC 5034) and APOP, rendered from the shared login exchange (auth/login.h), and
 * the way from a login to an open maildrop (the TRANSACTION state). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pop3/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/text.h"

/* --- AUTHORIZATION ---------------------------------------------------------- */

static enum login_transport transport(const struct pop3_session *s)
{
	struct login_listener l = { s->secure, s->info.tls_offered, s->info.allow_plaintext_auth };
	return login_transport_check(&l);
}

bool pop3_login_allowed(struct pop3_session *s)
{
	if (!s->hooks.auth_verify) {
		pop3_reply(s, P_AUTH_UNAVAILABLE);
		return false;
	}
	enum login_transport t = transport(s);
	if (t != LOGIN_TRANSPORT_OK) {
		pop3_reply(s, t == LOGIN_NEEDS_STARTTLS ? P_PLAINTEXT_STLS : P_PLAINTEXT_NO_TLS);
		return false;
	}
	return true;
}

static struct login_hooks login_hooks(const struct pop3_session *s)
{
	return (struct login_hooks){ s->hooks.ctx, s->hooks.auth_blocked, s->hooks.auth_verify };
}

/* The throttle's refusal (auth/throttle.h), in words that say whose failures caused it. */
static void say_throttled(struct pop3_session *s, struct throttle_verdict v, const char *user)
{
	char when[32], q[64];
	login_block_end(v.until, when, sizeof(when));
	if (v.block == THROTTLE_ACCOUNT && user) {
		quote_for_reply(q, sizeof(q), user, strlen(user), POP3_QUOTE_SHOWN);
		pop3_reply(s, P_AUTH_THROTTLED_ACCOUNT, q, when);
	} else {
		pop3_reply(s, P_AUTH_THROTTLED_ADDRESS, when);
	}
}

/* The login exchange moved on (auth/login.h; RFC 5034 §4): render its step. */
static void auth_progress(struct pop3_session *s, enum login_step st)
{
	s->state = ST_AUTHZ;
	switch (st) {
	case LOGIN_SEND_CHALLENGE:
		buf_printf(&s->out, "+ %s\r\n", login_challenge(&s->lx));
		s->state = ST_SASL;
		return;
	case LOGIN_CHECK: {
		struct login_hooks h = login_hooks(s);
		s->state = ST_WAIT_AUTH;
		login_submit(&s->lx, &h);   /* may answer at once */
		return;
	}
	case LOGIN_THROTTLED:
		say_throttled(s, s->lx.verdict, s->lx.user);
		return;
	case LOGIN_CANCELLED:
		pop3_reply(s, P_AUTH_CANCELLED);
		return;
	case LOGIN_BAD_BASE64:
		pop3_reply(s, P_AUTH_BAD_BASE64);
		break;
	case LOGIN_MALFORMED:
		pop3_reply(s, P_AUTH_MALFORMED);
		break;
	case LOGIN_AUTHZID:
		pop3_reply(s, P_AUTH_AUTHZID);
		break;
	}
	pop3_bad_command(s);
}

/* A line of the SASL exchange (the answer to the last challenge). */
void pop3_auth_line(struct pop3_session *s, const char *line, size_t n)
{
	struct login_hooks h = login_hooks(s);
	auth_progress(s, login_answer(&s->lx, &h, line, n));
}

void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->n_args != 1 || c->too_many_args || c->args[0].n > SASL_USER_MAX) {
		pop3_reply(s, P_SYNTAX, "USER name");
		pop3_bad_command(s);
		return;
	}
	memcpy(s->user, c->args[0].p, c->args[0].n);
	s->user[c->args[0].n] = '\0';
	s->have_user = true;
	pop3_reply(s, P_USER_OK);
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *c)
{
	if (!s->have_user) {
		pop3_reply(s, P_NEED_USER);
		pop3_bad_command(s);
		return;
	}
	s->have_user = false;
	if (c->rest.n == 0 || c->rest.n > SASL_PASS_MAX) {
		pop3_reply(s, P_SYNTAX, "PASS password");
		pop3_bad_command(s);
		return;
	}
	struct login_hooks h = login_hooks(s);
	auth_progress(s, login_password(&s->lx, &h, "USER", s->user, c->rest.p, c->rest.n));
}

/* AUTH [mechanism [initial-response]] (RFC 5034 §4).  Without a mechanism, list
 * them (what RFC 1734-era clients such as Outlook send). */
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->n_args == 0) {
		if (!s->hooks.auth_verify) {
			pop3_reply(s, P_AUTH_UNAVAILABLE);
			return;
		}
		pop3_reply(s, P_AUTH_MECHS);
		buf_appends(&s->out, "PLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	if (!pop3_login_allowed(s))
		return;
	if (c->too_many_args) {
		pop3_reply(s, P_SYNTAX, "AUTH mechanism [initial-response]");
		pop3_bad_command(s);
		return;
	}
	struct login_hooks h = login_hooks(s);
	struct throttle_verdict v = login_precheck(&h);
	if (v.block != THROTTLE_OPEN) {
		say_throttled(s, v, NULL);
		return;
	}
	enum sasl_mech mech;
	if (!sasl_mech_from_name(c->args[0].p, c->args[0].n, &mech)) {
		char q[64];
		quote_for_reply(q, sizeof(q), c->args[0].p, c->args[0].n, POP3_QUOTE_SHOWN);
		pop3_reply(s, P_AUTH_UNKNOWN_MECH, q);
		pop3_bad_command(s);
		return;
	}
	s->have_user = false;
	bool init = c->n_args == 2;
	auth_progress(s, login_start(&s->lx, &h, mech, init, init ? c->args[1].p : NULL, init ? c->args[1].n : 0));
}

void pop3_cmd_apop(struct pop3_session *s, const struct pop3_command *c)
{
	(void)c;
	pop3_reply(s, P_APOP);
}

/* The next space-separated word of *rest (bounded by max-1 octets), or false. */
static bool next_word(struct pop3_span *rest, char *out, size_t max)
{
	while (rest->n && (*rest->p == ' ' || *rest->p == '\t')) {
		rest->p++;
		rest->n--;
	}
	size_t n = 0;
	while (n < rest->n && rest->p[n] != ' ' && rest->p[n] != '\t')
		n++;
	if (n == 0 || n >= max)
		return false;
	memcpy(out, rest->p, n);
	out[n] = '\0';
	rest->p += n;
	rest->n -= n;
	return true;
}

/* XCLIENT <node-token> <client-address> <login> (docs/architecture.md): a node of
 * the cluster checked this client's password itself and hands the session over,
 * with the client's real address for our logs and throttle.  Only a valid node
 * token for exactly this address and login (purpose "pop3|addr|login", auth/
 * node_token.h) opens the maildrop; anything else is a refusal counted as a bad
 * command, never a way around the password.  Not advertised in CAPA. */
void pop3_cmd_xclient(struct pop3_session *s, const struct pop3_command *c)
{
	char token[200], addr[64], login[SASL_USER_MAX + 1], why[200] = "";
	struct pop3_span rest = c->rest, tail;
	if (!s->hooks.xclient) {
		pop3_reply(s, P_XCLIENT_UNAVAILABLE);
		pop3_bad_command(s);
		return;
	}
	bool ok = next_word(&rest, token, sizeof(token)) && next_word(&rest, addr, sizeof(addr)) &&
		next_word(&rest, login, sizeof(login));
	tail = rest;
	char extra[2];
	if (!ok || next_word(&tail, extra, sizeof(extra)) || tail.n) {
		pop3_reply(s, P_SYNTAX, "XCLIENT node-token client-address login");
		pop3_bad_command(s);
		return;
	}
	if (!s->hooks.xclient(s->hooks.ctx, token, addr, login, why, sizeof(why))) {
		log_event(LOG_WARN, "xclient_refused", "conn=%llu client=%s claimed=%s user=%s reason=\"%s\"",
			(unsigned long long)s->info.conn_id, s->client_addr, addr, login, why);
		pop3_reply(s, P_XCLIENT_REFUSED, why[0] ? why : "the node token is not valid");
		pop3_bad_command(s);
		return;
	}
	char *a = strdup(addr), *l = strdup(login);
	if (!a || !l) {
		free(a);
		free(l);
		pop3_reply(s, P_MAILBOX_TEMP);
		return;
	}
	log_event(LOG_INFO, "xclient", "conn=%llu via=%s client=%s user=%s", (unsigned long long)s->info.conn_id,
		s->client_addr, addr, login);
	free(s->client_addr);
	s->client_addr = a;
	s->info.client_addr = a;
	free(s->login);
	s->login = l;
	s->have_user = false;
	snprintf(s->lx.mech, sizeof(s->lx.mech), "XCLIENT");
	if (!s->hooks.mailbox_open) {
		pop3_reply(s, P_MAILBOX_TEMP);
		return;
	}
	s->state = ST_WAIT_MAILBOX;
	s->hooks.mailbox_open(s->hooks.ctx, s->login);   /* may answer at once */
}

/* Would USER/PASS and AUTH be accepted on this connection now (RFC 2595 §6:
 * login_transport_check)? */
bool pop3_login_offered(const struct pop3_session *s)
{
	return s->hooks.auth_verify && transport(s) == LOGIN_TRANSPORT_OK;
}

/* --- login -> maildrop -------------------------------------------------------- */

void pop3_session_auth_done(struct pop3_session *s, enum login_result r, const char *login, time_t blocked_until)
{
	if (s->state != ST_WAIT_AUTH)
		return;
	s->state = ST_AUTHZ;
	char when[32];
	switch (r) {
	case LOGIN_OK:
		free(s->login);
		s->login = strdup(login && login[0] ? login : s->lx.user);
		if (!s->login) {
			pop3_reply(s, P_AUTH_TEMPFAIL);
			break;
		}
		if (!s->hooks.mailbox_open) {
			pop3_reply(s, P_MAILBOX_TEMP);
			break;
		}
		s->state = ST_WAIT_MAILBOX;
		s->hooks.mailbox_open(s->hooks.ctx, s->login);   /* may answer at once */
		return;
	case LOGIN_FAILED:
		pop3_reply(s, P_AUTH_FAILED);
		break;
	case LOGIN_BLOCKED:
		login_block_end(blocked_until, when, sizeof(when));
		pop3_reply(s, P_AUTH_THROTTLED_ACCOUNT, s->lx.user, when);
		break;
	case LOGIN_TEMPFAIL:
		pop3_reply(s, P_AUTH_TEMPFAIL);
		break;
	}
	explicit_bzero(s->user, sizeof(s->user));
	login_clear(&s->lx);
}

void pop3_session_mailbox_done(struct pop3_session *s, enum pop3_mailbox_result r,
	const struct pop3_maildrop_ops *ops, void *mb)
{
	if (s->state != ST_WAIT_MAILBOX) {
		if (r == POP3_MAILBOX_OK && ops && mb)
			ops->close(mb);   /* nobody is waiting for it any more */
		return;
	}
	s->state = ST_AUTHZ;
	if (r == POP3_MAILBOX_OK && (!ops || !mb))
		r = POP3_MAILBOX_TEMP;
	if (r != POP3_MAILBOX_OK) {
		log_event(r == POP3_MAILBOX_IN_USE ? LOG_INFO : LOG_WARN, "pop3_mailbox_refused", "conn=%llu user=%s result=%s",
			(unsigned long long)s->info.conn_id, s->login,
			r == POP3_MAILBOX_IN_USE ? "in_use" : r == POP3_MAILBOX_TEMP ? "temp" : "perm");
		pop3_reply(s, r == POP3_MAILBOX_IN_USE ? P_IN_USE : r == POP3_MAILBOX_TEMP ? P_MAILBOX_TEMP : P_MAILBOX_PERM);
		free(s->login);
		s->login = NULL;
		return;
	}
	s->ops = ops;
	s->mb = mb;
	s->count = ops->count(mb);
	s->deleted = calloc(s->count + 1, sizeof(*s->deleted));
	if (!s->deleted) {
		pop3_maildrop_close(s);
		pop3_reply(s, P_MAILBOX_TEMP);
		free(s->login);
		s->login = NULL;
		return;
	}
	s->n_deleted = 0;
	s->total_octets = 0;
	for (size_t i = 0; i < s->count; i++)
		s->total_octets += ops->size(mb, i);
	s->state = ST_TRANS;
	log_event(LOG_INFO, "pop3_login", "conn=%llu client=%s user=%s mech=%s tls=%s messages=%zu octets=%" PRIu64,
		(unsigned long long)s->info.conn_id, s->client_addr, s->login, s->lx.mech, s->secure ? "yes" : "no", s->count,
		s->total_octets);
	pop3_reply(s, P_LOGGED_IN, s->count, s->total_octets);
}

/* --- a login proxied to the mailbox's home node ------------------------------- */

void pop3_session_proxy_done(struct pop3_session *s, enum pop3_proxy_result r, const char *node, const char *text)
{
	if (s->state != ST_WAIT_AUTH)
		return;
	s->state = ST_AUTHZ;
	switch (r) {
	case POP3_PROXY_OK:
		free(s->login);
		s->login = strdup(s->lx.user);
		log_event(LOG_INFO, "pop3_proxied", "conn=%llu client=%s user=%s node=%s", (unsigned long long)s->info.conn_id,
			s->client_addr, s->lx.user, node);
		pop3_relay_line(s, text);
		s->state = ST_PROXIED;
		break;
	case POP3_PROXY_REFUSED:
		pop3_relay_line(s, text);
		break;
	case POP3_PROXY_UNAVAILABLE:
		pop3_reply(s, P_PROXY_UNAVAILABLE, node, text, node);
		break;
	}
	explicit_bzero(s->user, sizeof(s->user));
	login_clear(&s->lx);
}

bool pop3_session_proxied(const struct pop3_session *s)
{
	return s->state == ST_PROXIED;
}
