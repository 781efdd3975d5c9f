/* credentials.c - one hash per login attempt, and the hashes the admin commands store
 * (see credentials.h). */
#include "auth/credentials.h"

#include <stdio.h>
#include <string.h>

#include "auth/password.h"

struct legacy_walk {
	const char *password;
	unsigned cache_ttl;
	char name[80];
	bool matched;
};

static bool try_legacy(void *arg, const char *name, const char *hash)
{
	struct legacy_walk *w = arg;
	if (!password_verify_cached(w->password, hash, w->cache_ttl))
		return false;
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->matched = true;
	return true;
}

static void succeed(struct credential_result *out, const char *app_name, bool legacy)
{
	out->outcome = CRED_OK;
	out->legacy = legacy;
	snprintf(out->which, sizeof(out->which), "%s%.64s", app_name[0] ? "app:" : "main", app_name);
}

void credentials_check(struct directory *d, const struct credential_policy *p, const char *user,
	const char *password, struct credential_result *out)
{
	memset(out, 0, sizeof(*out));
	char selector[APP_SELECTOR_LEN + 1];
	bool app_form = !p->primary_only && password_app_selector(password, selector);
	struct dir_login_hash h;
	enum dir_result r = directory_login_hash(d, user, app_form ? selector : NULL, &h);
	explicit_bzero(selector, sizeof(selector));
	if (r == DIR_ERROR) {
		out->outcome = CRED_TEMPFAIL;
		return;
	}
	if (r == DIR_NOT_FOUND) {
		password_verify(password, p->dummy_hash);   /* the same work as a real check */
		out->outcome = CRED_NO_USER;
		return;
	}
	snprintf(out->canonical, sizeof(out->canonical), "%s", h.canonical);
	out->outcome = CRED_WRONG_PASSWORD;
	if (h.hash[0] != '$') {
		/* A disabled account ("*", "!"): refused, after the same work. */
		password_verify(password, p->dummy_hash);
	} else if (password_verify_cached(password, h.hash, p->cache_ttl)) {
		succeed(out, h.app_name, false);
	}
	explicit_bzero(h.hash, sizeof(h.hash));
	if (out->outcome == CRED_OK || p->primary_only || !p->legacy_app_passwords || !password_app_legacy_form(password))
		return;
	struct legacy_walk w = { .password = password, .cache_ttl = p->cache_ttl };
	if (directory_legacy_app_hashes(d, h.canonical, try_legacy, &w) == DIR_OK && w.matched)
		succeed(out, w.name, true);
}

enum dir_result credentials_user_add(struct directory *d, const char *address, const char *password, bool *no_hash)
{
	char hash[PASSWORD_HASH_MAX];
	*no_hash = !password_hash(password, hash, sizeof(hash));
	if (*no_hash)
		return DIR_ERROR;
	enum dir_result r = directory_user_add(d, address, hash);
	explicit_bzero(hash, sizeof(hash));
	return r;
}

enum dir_result credentials_app_password_new(struct directory *d, const char *user, const char *name, char *pw,
	size_t pwsz, bool *no_password)
{
	char selector[APP_SELECTOR_LEN + 1], hash[PASSWORD_HASH_MAX];
	*no_password = false;
	for (int tries = 0; tries < 16; tries++) {
		if (!password_app_generate(pw, pwsz, selector))
			break;
		enum dir_result r = directory_app_password_selector_free(d, user, selector);
		if (r == DIR_EXISTS)
			continue;
		if (r != DIR_OK)
			return r;
		if (!password_hash(pw, hash, sizeof(hash)))
			break;
		r = directory_app_password_add(d, user, name, selector, hash);
		explicit_bzero(hash, sizeof(hash));
		return r;
	}
	*no_password = true;
	return DIR_ERROR;
}
