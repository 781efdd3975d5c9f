/* cmd_auth.c - STARTTLS (RFC 3207) and AUTH (RFC 4954): upgrading the connection
 * and logging in.  The exchange is the one login front end (auth/login.h); this file
 * gives its steps SMTP's words (334, 235, 535, 454).  The password check runs off
 * the loop (hooks->auth_verify); the session waits (WAIT_LOGIN) until
 * smtp_session_auth_done(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/login.h"
#include "smtp/command.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/linebuf.h"
#include "util/log.h"
#include "util/text.h"

/* STARTTLS (RFC 3207). */
void cmd_starttls(struct smtp_session *s, const struct smtp_command *c)
{
	/* The gate saw to it that STARTTLS is offered, TLS not active yet, no argument. */
	(void)c;
	say(s, R_READY_TLS);
	tx_free(s);
	s->wants_tls = true;
	s->state = ST_TLS_PENDING;
}

static struct login_hooks login_hooks(const struct smtp_session *s)
{
	return (struct login_hooks){ s->hooks.ctx, s->hooks.auth_blocked, s->hooks.auth_verify };
}

/* Refuse the login the throttle blocks (auth/throttle.h), in words that say whose
 * failures caused the block. */
static void refuse_throttled(struct smtp_session *s, struct throttle_verdict v, const char *user)
{
	char when[32], q[80];
	login_block_end(v.until, when, sizeof(when));
	if (v.block == THROTTLE_ACCOUNT && user) {
		quote_for_reply(q, sizeof(q), user, strlen(user), SMTP_QUOTE_SHOWN);
		refuse_counted(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ACCOUNT, q, when);
	} else {
		refuse_counted(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ADDRESS, when);
	}
}

/* The login exchange moved on (auth/login.h): ask for more, or hand the
 * credentials over. */
static void auth_progress(struct smtp_session *s, enum login_step st)
{
	s->state = ST_CMD;
	switch (st) {
	case LOGIN_SEND_CHALLENGE:
		reply_writef(&s->out, 334, NULL, "%s", login_challenge(s->lx));
		s->state = ST_AUTH;
		return;
	case LOGIN_CHECK: {
		struct login_hooks h = login_hooks(s);
		wait_for(s, WAIT_LOGIN);
		login_submit(s->lx, &h);   /* takes a copy and wipes the password */
		return;
	}
	case LOGIN_THROTTLED:
		refuse_throttled(s, s->lx->verdict, s->lx->user);
		return;
	case LOGIN_CANCELLED:
		refuse(s, R_AUTH_CANCELLED);
		return;
	case LOGIN_BAD_BASE64:
		refuse(s, R_AUTH_BAD_BASE64);
		break;
	case LOGIN_MALFORMED:
		refuse(s, R_AUTH_MALFORMED);
		break;
	case LOGIN_AUTHZID:
		refuse(s, R_AUTH_AUTHZID);
		break;
	}
	bad_command(s);
}

/* AUTH belongs to the submission listeners (RFC 6409); an mx listener never offers
 * it, before or after STARTTLS (wrong_port.c answers it there). */
bool smtp_auth_offered(const struct smtp_session *s)
{
	return s->hooks.auth_verify != NULL && !wrong_port_applies(s);
}

/* May a password be sent here now (auth/login.h: RFC 4954 §4)?  EHLO offers AUTH
 * only then. */
enum login_transport smtp_login_transport(const struct smtp_session *s)
{
	struct login_listener l = { s->secure, s->info.tls_offered, s->info.allow_plaintext_auth };
	return login_transport_check(&l);
}

/* AUTH mechanism [initial-response] (RFC 4954 §4). */
void cmd_auth(struct smtp_session *s, const struct smtp_command *c)
{
	/* The gate saw to it: AUTH offered, not logged in yet, no transaction, TLS
	 * active (or plaintext allowed: smtp_login_transport). */
	struct login_hooks h = login_hooks(s);
	struct throttle_verdict v = login_precheck(&h);
	if (v.block != THROTTLE_OPEN) {
		refuse_throttled(s, v, NULL);
		return;
	}
	const char *sp = memchr(c->arg, ' ', c->arg_len);
	size_t mlen = sp ? (size_t)(sp - c->arg) : c->arg_len;
	enum sasl_mech mech;
	if (mlen == 0) {
		refuse(s, R_AUTH_NO_MECH);
		bad_command(s);
		return;
	}
	if (!sasl_mech_from_name(c->arg, mlen, &mech)) {
		refuse(s, R_AUTH_UNKNOWN_MECH);
		bad_command(s);
		return;
	}
	const char *init = sp ? sp + 1 : NULL;
	size_t ilen = sp ? c->arg_len - mlen - 1 : 0;
	if (!s->lx && !(s->lx = calloc(1, sizeof(*s->lx)))) {
		refuse(s, R_AUTH_TEMPFAIL);
		return;
	}
	auth_progress(s, login_start(s->lx, &h, mech, init != NULL, init, ilen));
}

/* A line of the SASL exchange. */
void auth_line(struct smtp_session *s, const char *line, size_t len)
{
	struct login_hooks h = login_hooks(s);
	if (!s->lx) {   /* ST_AUTH always has one (cmd_auth) */
		s->state = ST_CMD;
		refuse(s, R_AUTH_CANCELLED);
		return;
	}
	auth_progress(s, login_answer(s->lx, &h, line, len));
}

void lx_end(struct smtp_session *s)
{
	if (!s->lx)
		return;
	login_clear(s->lx);
	free(s->lx);
	s->lx = NULL;
}

bool smtp_session_wants_tls(const struct smtp_session *s)
{
	return s->wants_tls;
}

void smtp_session_tls_started(struct smtp_session *s, const char *description)
{
	/* RFC 3207 §4.2: forget everything learnt from the client before TLS; whatever
	 * it sent in plaintext after STARTTLS was discarded by the caller. */
	s->wants_tls = false;
	s->secure = true;
	free(s->login);              /* a login made in plaintext does not carry over */
	s->login = NULL;
	lx_end(s);
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", description ? description : "TLS");
	tx_free(s);
	s->helo_seen = false;
	s->esmtp = false;
	s->helo[0] = '\0';
	linebuf_reset(&s->line);
	forget_mail_refusal(s);
	memset(s->causes, 0, sizeof(s->causes));
	if (s->state == ST_TLS_PENDING)
		s->state = ST_CMD;
}

void smtp_session_auth_done(struct smtp_session *s, enum login_result r, const char *login, time_t blocked_until)
{
	if (!waiting_for(s, WAIT_LOGIN))
		return;
	s->state = ST_CMD;
	char when[32];
	const char *user = s->lx ? s->lx->user : "", *mech = s->lx ? s->lx->mech : "";
	switch (r) {
	case LOGIN_OK:
		free(s->login);
		s->login = strdup(login ? login : user);
		if (!s->login) {
			refuse(s, R_AUTH_TEMPFAIL);
			break;
		}
		snprintf(s->auth_mech, sizeof(s->auth_mech), "%s", mech);
		memset(s->causes, 0, sizeof(s->causes));   /* earlier failures no longer explain anything */
		forget_mail_refusal(s);
		say(s, R_AUTH_OK);
		break;
	case LOGIN_FAILED:
		refuse_counted(s, CAUSE_AUTH_FAILED, R_AUTH_FAILED);
		break;
	case LOGIN_BLOCKED: {
		char q[80];
		login_block_end(blocked_until, when, sizeof(when));
		quote_for_reply(q, sizeof(q), user, strlen(user), SMTP_QUOTE_SHOWN);
		refuse_counted(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ACCOUNT, q, when);
		break;
	}
	case LOGIN_TEMPFAIL:
		refuse(s, R_AUTH_DIRECTORY_TEMPFAIL);
		break;
	}
	lx_end(s);
}
