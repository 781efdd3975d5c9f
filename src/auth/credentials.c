/* credentials.c - one hash per login attempt, and the hashes the admin commands store
 * (see credentials.h). */
#include "auth/credentials.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
	if (!password_usable(h.hash)) {
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

/* Dovecot's password schemes whose hashes are crypt(3) strings (doveadm pw -l). */
static const char *const crypt_schemes[] = { "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT", "CRYPT",
	"DES-CRYPT", "ARGON2ID", "ARGON2I" };

static bool scheme_is(const char *scheme, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(scheme, name, len) == 0;
}

static bool is_crypt_scheme(const char *scheme, size_t len)
{
	for (size_t i = 0; i < sizeof(crypt_schemes) / sizeof(crypt_schemes[0]); i++)
		if (scheme_is(scheme, len, crypt_schemes[i]))
			return true;
	return false;
}

enum dir_result credentials_user_import(struct directory *d, const char *address, const char *field, bool *hashed,
	char *why, size_t whysz)
{
	*hashed = false;
	const char *scheme = "CRYPT", *value = field;
	size_t slen = 5;
	if (field[0] == '{' && strchr(field, '}')) {
		scheme = field + 1;
		slen = (size_t)(strchr(field, '}') - scheme);
		value = scheme + slen + 1;
	}
	if (scheme_is(scheme, slen, "PLAIN") || scheme_is(scheme, slen, "CLEARTEXT")) {
		bool no_hash;
		enum dir_result r = credentials_user_add(d, address, value, &no_hash);
		*hashed = !no_hash;
		if (no_hash)
			snprintf(why, whysz, "the password could not be hashed");
		return r;
	}
	if (!is_crypt_scheme(scheme, slen)) {
		snprintf(why, whysz, "the scheme {%.*s} is not a crypt(3) hash Postern can check (supported: SHA512-CRYPT, "
			"SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT, CRYPT, and PLAIN/CLEARTEXT, hashed on import); have the user set a new "
			"password (postern user add)", (int)(slen < 40 ? slen : 40), scheme);
		return DIR_INVALID;
	}
	if (strlen(value) >= PASSWORD_HASH_MAX || !password_usable(value)) {
		snprintf(why, whysz, "libxcrypt on this machine cannot verify this {%.*s} hash%s; have the user set a new password "
			"(postern user add)", (int)(slen < 40 ? slen : 40), scheme,
			strncasecmp(scheme, "ARGON2", 6) == 0 ? " (it has no Argon2)" : "");
		return DIR_INVALID;
	}
	return directory_user_add(d, address, value);
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
