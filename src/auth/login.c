/* login.c - the login front end shared by every protocol (see login.h): the SASL
 * steps and the throttle's verdict in one exchange, so that SMTP and POP3 differ
 * only in their words. */
#include "auth/login.h"

#include <stdio.h>
#include <string.h>

static struct throttle_verdict ask_throttle(const struct login_hooks *h, const char *user)
{
	struct throttle_verdict open = { THROTTLE_OPEN, 0 };
	return h->blocked ? h->blocked(h->ctx, user) : open;
}

struct throttle_verdict login_precheck(const struct login_hooks *h)
{
	return ask_throttle(h, NULL);
}

/* The credentials are complete: may this client try them? */
static enum login_step credentials_complete(struct login_exchange *x, const struct login_hooks *h)
{
	snprintf(x->user, sizeof(x->user), "%s", x->sasl.user);
	x->verdict = ask_throttle(h, x->user);
	if (x->verdict.block != THROTTLE_OPEN) {
		sasl_clear(&x->sasl);
		return LOGIN_THROTTLED;
	}
	x->ready = true;
	return LOGIN_CHECK;
}

static enum login_step progress(struct login_exchange *x, const struct login_hooks *h, enum sasl_status st)
{
	switch (st) {
	case SASL_CONTINUE:
		return LOGIN_SEND_CHALLENGE;
	case SASL_DONE:
		return credentials_complete(x, h);
	case SASL_CANCELLED:
		sasl_clear(&x->sasl);
		return LOGIN_CANCELLED;
	case SASL_BAD_BASE64:
		sasl_clear(&x->sasl);
		return LOGIN_BAD_BASE64;
	case SASL_MALFORMED:
		sasl_clear(&x->sasl);
		return LOGIN_MALFORMED;
	case SASL_AUTHZID:
		sasl_clear(&x->sasl);
		return LOGIN_AUTHZID;
	}
	sasl_clear(&x->sasl);
	return LOGIN_MALFORMED;
}

enum login_step login_start(struct login_exchange *x, const struct login_hooks *h, enum sasl_mech m,
	bool has_initial, const char *initial, size_t n)
{
	login_clear(x);
	snprintf(x->mech, sizeof(x->mech), "%s", sasl_mech_name(m));
	return progress(x, h, sasl_start(&x->sasl, m, has_initial, initial, n));
}

enum login_step login_answer(struct login_exchange *x, const struct login_hooks *h, const char *line, size_t n)
{
	return progress(x, h, sasl_step(&x->sasl, line, n));
}

enum login_step login_password(struct login_exchange *x, const struct login_hooks *h, const char *mech,
	const char *user, const char *pass, size_t passlen)
{
	login_clear(x);
	snprintf(x->mech, sizeof(x->mech), "%s", mech);
	snprintf(x->sasl.user, sizeof(x->sasl.user), "%s", user);
	if (passlen >= sizeof(x->sasl.pass))
		passlen = sizeof(x->sasl.pass) - 1;
	memcpy(x->sasl.pass, pass, passlen);
	x->sasl.pass[passlen] = '\0';
	return credentials_complete(x, h);
}

const char *login_challenge(const struct login_exchange *x)
{
	return sasl_challenge(&x->sasl);
}

void login_submit(struct login_exchange *x, const struct login_hooks *h)
{
	if (!x->ready)
		return;
	x->ready = false;
	/* Copies on the stack: the hook may answer at once, and the session's answer
	 * path may clear the exchange before the hook returns. */
	char mech[LOGIN_MECH_MAX], user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
	memcpy(mech, x->mech, sizeof(mech));
	memcpy(user, x->sasl.user, sizeof(user));
	memcpy(pass, x->sasl.pass, sizeof(pass));
	sasl_clear(&x->sasl);
	h->verify(h->ctx, mech, user, pass);
	explicit_bzero(pass, sizeof(pass));
}

void login_clear(struct login_exchange *x)
{
	sasl_clear(&x->sasl);
	explicit_bzero(x->user, sizeof(x->user));
	memset(x, 0, sizeof(*x));
}
