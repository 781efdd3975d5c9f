/* cmd_auth.c - the not-authenticated state's commands: STARTTLS (RFC 3501 §6.2.1),
 * LOGIN (§6.2.3) and AUTHENTICATE (§6.2.2, RFC 4959 SASL-IR) rendered from the
 * shared login exchange (auth/login.h: the same throttle, login service and app
 * passwords as SMTP and POP3), and the set-up after a login (a job: the Maildir
 * found, the special-use folders created, an [ALERT] when outgoing mail fails). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/internal.h"
#include "util/log.h"
#include "util/text.h"

static enum login_transport transport(const struct imap_session *s)
{
	struct login_listener l = { s->secure, s->info.tls_offered, s->info.allow_plaintext_auth };
	return login_transport_check(&l);
}

bool imap_login_offered(const struct imap_session *s)
{
	return s->hooks.auth_verify && transport(s) == LOGIN_TRANSPORT_OK;
}

/* false after refusing: no verify hook, or a password would travel in plaintext
 * (LOGINDISABLED, RFC 3501 §6.2.3; [PRIVACYREQUIRED], RFC 5530 §3). */
static bool login_allowed(struct imap_session *s, const char *tag)
{
	if (!s->hooks.auth_verify) {
		imap_refuse(s, tag, W_AUTH_UNAVAILABLE);
		return false;
	}
	enum login_transport t = transport(s);
	if (t != LOGIN_TRANSPORT_OK) {
		imap_refuse(s, tag, t == LOGIN_NEEDS_STARTTLS ? W_PRIVACY_STARTTLS : W_PRIVACY_TLS_PORT);
		return false;
	}
	return true;
}

void imap_cmd_starttls(struct imap_session *s, struct imap_cmd *c)
{
	if (s->secure) {
		imap_refuse(s, c->tag, W_ALREADY_TLS);
		imap_bad_command(s);
	} else if (!s->info.tls_offered) {
		imap_refuse(s, c->tag, W_STARTTLS_UNAVAILABLE);
	} else {
		imap_reply_tagged(&s->out, c->tag, IMAP_OK, NULL, "Begin TLS negotiation now");
		s->wants_tls = true;
	}
}

static struct login_hooks login_hooks(const struct imap_session *s)
{
	return (struct login_hooks){ s->hooks.ctx, s->hooks.auth_blocked, s->hooks.auth_verify };
}

static void say_throttled(struct imap_session *s, struct throttle_verdict v, const char *user)
{
	char when[32], q[64];
	login_block_end(v.until, when, sizeof(when));
	if (v.block == THROTTLE_ACCOUNT && user) {
		quote_for_reply(q, sizeof(q), user, strlen(user), IMAP_QUOTE_SHOWN);
		imap_refuse(s, s->auth_tag, W_THROTTLED_ACCOUNT, q, when);
	} else {
		imap_refuse(s, s->auth_tag, W_THROTTLED_ADDRESS, when);
	}
}

void imap_login_drop(struct imap_session *s)
{
	if (!s->lx)
		return;
	login_clear(s->lx);
	free(s->lx);
	s->lx = NULL;
}

/* The exchange a LOGIN or AUTHENTICATE starts (held only until it is answered, so a
 * logged-in session does not carry it); false: refused for want of memory. */
static bool login_exchange_new(struct imap_session *s)
{
	imap_login_drop(s);
	if ((s->lx = calloc(1, sizeof(*s->lx))))
		return true;
	imap_refuse(s, s->auth_tag, W_AUTH_TEMPFAIL);
	return false;
}

/* The login exchange moved on (auth/login.h): render its step. */
static void auth_progress(struct imap_session *s, enum login_step st)
{
	s->state = ST_NOAUTH;
	switch (st) {
	case LOGIN_SEND_CHALLENGE:   /* RFC 3501 §7.5: "+ " base64 */
		buf_printf(&s->out, "+ %s\r\n", login_challenge(s->lx));
		s->state = ST_SASL;
		imap_parser_expect_line(s->parser);
		return;
	case LOGIN_CHECK: {
		struct login_hooks h = login_hooks(s);
		s->waiting_auth = true;
		login_submit(s->lx, &h);   /* may answer at once */
		return;
	}
	case LOGIN_THROTTLED:
		say_throttled(s, s->lx->verdict, s->lx->user);
		return;
	case LOGIN_CANCELLED:
		imap_refuse(s, s->auth_tag, W_AUTH_CANCELLED);
		return;
	case LOGIN_BAD_BASE64:
		imap_refuse(s, s->auth_tag, W_AUTH_BAD_BASE64);
		break;
	case LOGIN_MALFORMED:
		imap_refuse(s, s->auth_tag, W_AUTH_MALFORMED);
		break;
	case LOGIN_AUTHZID:
		imap_refuse(s, s->auth_tag, W_AUTH_AUTHZID);
		break;
	}
	imap_bad_command(s);
}

void imap_sasl_line(struct imap_session *s, const char *line, size_t n)
{
	struct login_hooks h = login_hooks(s);
	if (!s->lx) {   /* cannot happen: ST_SASL has its exchange */
		s->state = ST_NOAUTH;
		imap_refuse(s, s->auth_tag, W_AUTH_TEMPFAIL);
		return;
	}
	auth_progress(s, login_answer(s->lx, &h, line, n));
}

void imap_cmd_login(struct imap_session *s, struct imap_cmd *c)
{
	snprintf(s->auth_tag, sizeof(s->auth_tag), "%s", c->tag);
	if (!login_allowed(s, c->tag)) {
		return;
	}
	if (strlen(c->login.user) > SASL_USER_MAX || c->login.pass_len > SASL_PASS_MAX || c->login.pass_len == 0) {
		imap_refuse(s, c->tag, W_SYNTAX, "LOGIN: the user name or password is empty or too long");
		imap_bad_command(s);
		return;
	}
	if (!login_exchange_new(s)) {
		explicit_bzero(c->login.pass, c->login.pass_len);
		return;
	}
	struct login_hooks h = login_hooks(s);
	enum login_step st = login_password(s->lx, &h, "LOGIN", c->login.user, c->login.pass, c->login.pass_len);
	explicit_bzero(c->login.pass, c->login.pass_len);
	auth_progress(s, st);
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_cmd *c)
{
	snprintf(s->auth_tag, sizeof(s->auth_tag), "%s", c->tag);
	if (!login_allowed(s, c->tag)) {
		return;
	}
	struct login_hooks h = login_hooks(s);
	struct throttle_verdict v = login_precheck(&h);
	if (v.block != THROTTLE_OPEN) {
		say_throttled(s, v, NULL);
		return;
	}
	enum sasl_mech mech;
	if (!sasl_mech_from_name(c->auth.mech, strlen(c->auth.mech), &mech)) {
		char q[64];
		quote_for_reply(q, sizeof(q), c->auth.mech, strlen(c->auth.mech), IMAP_QUOTE_SHOWN);
		imap_refuse(s, c->tag, W_AUTH_UNKNOWN_MECH, q);
		imap_bad_command(s);
		return;
	}
	if (!login_exchange_new(s))
		return;
	bool init = c->auth.has_initial;
	enum login_step st = login_start(s->lx, &h, mech, init, init ? c->auth.initial : NULL,
		init ? strlen(c->auth.initial) : 0);
	auth_progress(s, st);
}

void imap_session_auth_done(struct imap_session *s, enum login_result r, const char *login, time_t blocked_until)
{
	if (!s->waiting_auth)
		return;
	s->waiting_auth = false;
	char when[32], q[64];
	switch (r) {
	case LOGIN_OK:
		free(s->login);
		s->login = strdup(login && login[0] ? login : s->lx ? s->lx->user : "");
		if (!s->login) {
			imap_refuse(s, s->auth_tag, W_AUTH_TEMPFAIL);
			break;
		}
		imap_start_job(s, JOB_LOGIN, NULL);   /* the Maildir, the special folders, the alert */
		return;
	case LOGIN_FAILED:
		imap_refuse(s, s->auth_tag, W_AUTH_FAILED);
		break;
	case LOGIN_BLOCKED:
		login_block_end(blocked_until, when, sizeof(when));
		quote_for_reply(q, sizeof(q), s->lx ? s->lx->user : "", s->lx ? strlen(s->lx->user) : 0, IMAP_QUOTE_SHOWN);
		imap_refuse(s, s->auth_tag, W_THROTTLED_ACCOUNT, q, when);
		break;
	case LOGIN_TEMPFAIL:
		imap_refuse(s, s->auth_tag, W_AUTH_TEMPFAIL);
		break;
	}
	imap_login_drop(s);
}

/* XCLIENT <node-token> <client-address> <login> (docs/architecture.md): a node of
 * the cluster checked this client's password itself and hands the session over,
 * with the client's real address for our logs and throttle.  Only a valid node
 * token for exactly this address and login (purpose "imap|addr|login", auth/
 * node_token.h) logs in; anything else is a refusal counted as a bad command, never
 * a way around the password.  Not advertised in CAPABILITY. */
void imap_cmd_xclient(struct imap_session *s, struct imap_cmd *c)
{
	snprintf(s->auth_tag, sizeof(s->auth_tag), "%s", c->tag);
	char why[200] = "";
	if (!s->hooks.xclient) {
		imap_refuse(s, c->tag, W_XCLIENT_UNAVAILABLE);
		imap_bad_command(s);
		return;
	}
	enum login_transport t = transport(s);
	if (t != LOGIN_TRANSPORT_OK) {
		imap_refuse(s, c->tag, t == LOGIN_NEEDS_STARTTLS ? W_PRIVACY_STARTTLS : W_PRIVACY_TLS_PORT);
		return;
	}
	const char *addr = c->xclient.addr, *login = c->xclient.login;
	if (strlen(login) > SASL_USER_MAX || strlen(addr) > 63 ||
		!s->hooks.xclient(s->hooks.ctx, c->xclient.token, addr, login, why, sizeof(why))) {
		log_event(LOG_WARN, "xclient_refused", "conn=%llu client=%s claimed=%.63s user=%.100s reason=\"%s\"",
			(unsigned long long)s->info.conn_id, s->client_addr, addr, login, why);
		imap_refuse(s, c->tag, W_XCLIENT_REFUSED, why[0] ? why : "the node token is not valid");
		imap_bad_command(s);
		return;
	}
	char *a = strdup(addr), *l = strdup(login);
	if (!a || !l) {
		free(a);
		free(l);
		imap_refuse(s, c->tag, W_AUTH_TEMPFAIL);
		return;
	}
	log_event(LOG_INFO, "xclient", "conn=%llu via=%s client=%s user=%s", (unsigned long long)s->info.conn_id,
		s->client_addr, addr, login);
	free(s->client_addr);
	s->client_addr = a;
	s->info.client_addr = a;
	free(s->login);
	s->login = l;
	if (!login_exchange_new(s))   /* for the mechanism's name in the login's log line */
		return;
	snprintf(s->lx->mech, sizeof(s->lx->mech), "XCLIENT");
	imap_start_job(s, JOB_LOGIN, NULL);   /* the Maildir, the special folders, the alert: as after LOGIN */
}

/* Another server's words passed on: CR LF only as line ends (lines: untagged ones;
 * else one line), other control bytes and 8-bit octets replaced. */
static void relay_text(struct buf *out, const char *t, size_t max, bool lines)
{
	size_t start = out->len, n = strnlen(t, max);
	buf_append(out, t, n);
	for (size_t i = start; i < out->len; i++) {
		unsigned char ch = (unsigned char)out->data[i];
		bool eol = lines && ((ch == '\n' && i > start && out->data[i - 1] == '\r') ||
			(ch == '\r' && i + 1 < out->len && out->data[i + 1] == '\n'));
		if (!eol && (ch < 0x20 || ch >= 0x7f))
			out->data[i] = '?';
	}
}

void imap_session_proxy_done(struct imap_session *s, enum imap_proxy_result r, const char *node, const char *untagged,
	const char *text)
{
	if (!s->waiting_auth)
		return;
	s->waiting_auth = false;
	switch (r) {
	case IMAP_PROXY_OK:
	case IMAP_PROXY_REFUSED:
		relay_text(&s->out, untagged ? untagged : "", 16384, true);
		if (s->out.len && s->out.data[s->out.len - 1] != '\n')
			buf_appends(&s->out, "\r\n");
		buf_printf(&s->out, "%s ", s->auth_tag);
		relay_text(&s->out, text, 1000, false);
		buf_appends(&s->out, "\r\n");
		if (r == IMAP_PROXY_OK) {
			free(s->login);
			s->login = strdup(s->lx ? s->lx->user : "");
			s->proxied = true;
			log_event(LOG_INFO, "imap_proxied", "conn=%llu client=%s user=%s node=%s", (unsigned long long)s->info.conn_id,
				s->client_addr, s->lx ? s->lx->user : "", node);
		}
		break;
	case IMAP_PROXY_UNAVAILABLE:
		imap_refuse(s, s->auth_tag, W_PROXY_UNAVAILABLE, node, text, node);
		break;
	}
	imap_login_drop(s);
}

bool imap_session_proxied(const struct imap_session *s)
{
	return s->proxied;
}

/* Worker thread: where the mail is, and what the user must be told at once. */
void imap_login_job(struct imap_session *s)
{
	char err[300] = "", root[ROOT_MAX];
	s->job_ok = false;
	s->job_alert[0] = '\0';
	if (!s->hooks.maildir_root || !s->hooks.maildir_root(s->hooks.ctx, s->login, root, sizeof(root), err,
		sizeof(err))) {
		snprintf(s->job_alert, sizeof(s->job_alert), "%s", err[0] ? err : "no mailbox for this login");
		return;
	}
	free(s->root);
	if (!(s->root = strdup(root))) {   /* held as long as the session: its length, not ROOT_MAX */
		snprintf(s->job_alert, sizeof(s->job_alert), "out of memory");
		return;
	}
	imap_mbox_login_setup(s);
	s->job_ok = true;
	char alert[sizeof(s->job_alert)];
	if (s->hooks.login_alert && s->hooks.login_alert(s->hooks.ctx, s->login, alert, sizeof(alert)))
		snprintf(s->job_alert, sizeof(s->job_alert), "%s", alert);
}

/* Loop thread: the tagged answer to LOGIN / AUTHENTICATE. */
void imap_login_finish(struct imap_session *s)
{
	if (!s->job_ok) {
		imap_refuse(s, s->auth_tag, W_MAILDIR_PERM, s->job_alert);
		log_event(LOG_WARN, "imap_mailbox_error", "conn=%llu user=%s error=\"%s\"", (unsigned long long)s->info.conn_id,
			s->login, s->job_alert);
		free(s->login);
		s->login = NULL;
		imap_login_drop(s);
		return;
	}
	s->x.user = s->login;
	s->x.maildir_root = s->root;
	s->state = ST_AUTH;
	log_event(LOG_INFO, "imap_login", "conn=%llu client=%s user=%s mech=%s tls=%s", (unsigned long long)s->info.conn_id,
		s->client_addr, s->login, s->lx ? s->lx->mech : "", s->secure ? "yes" : "no");
	imap_login_drop(s);
	if (s->job_alert[0])   /* RFC 3501 §7.1: the client must show [ALERT] text to the user */
		imap_reply_untagged(&s->out, "OK", "ALERT", "%s", s->job_alert);
	buf_printf(&s->out, "%s OK [CAPABILITY ", s->auth_tag);
	imap_capability_list(s, &s->out);
	buf_appends(&s->out, "] Logged in\r\n");
}
