/* credentials.h - the one check of a user name and password, for every protocol.
 *
 * The work per attempt is one hash whatever the account (RFC 4954 §9 and RFC 5034 §8
 * warn that replies must not reveal which accounts exist; their timing must not
 * either): a password in the form of an app password is checked against the single
 * app password its selector names, any other password against the account's own
 * hash, and an unknown user (or a disabled hash) against a dummy hash.  The one
 * exception is migration: legacy app passwords (made before selectors) are checked,
 * when `legacy_app_passwords` allows, only for passwords of their form and only
 * after the account's own hash failed.  Blocking (directory and hashing): call it
 * off the event loop. */
#ifndef POSTERN_AUTH_CREDENTIALS_H
#define POSTERN_AUTH_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include "directory/directory.h"

enum credential_outcome { CRED_OK, CRED_WRONG_PASSWORD, CRED_NO_USER, CRED_TEMPFAIL };

struct credential_policy {
	const char *dummy_hash;      /* what an unknown user is checked against */
	unsigned cache_ttl;          /* password_verify_cached() */
	bool legacy_app_passwords;   /* accept app passwords without a selector */
	bool primary_only;           /* the account's own password only: an app password is checked against the
	                              * account's hash (the same one hash of work) and so fails (the web page) */
};

struct credential_result {
	enum credential_outcome outcome;
	char canonical[DIR_ADDRESS_MAX];   /* the stored address, when the user exists */
	char which[100];                   /* on success: "main" or "app:NAME" */
	bool legacy;                       /* on success: a legacy app password */
};

void credentials_check(struct directory *d, const struct credential_policy *p, const char *user,
	const char *password, struct credential_result *out);

/* Setting passwords (the admin commands): the hash is made here and goes straight
 * into the directory, so no other room holds it. */

/* Add the user address with password.  *no_hash: the hash could not be made (then
 * DIR_ERROR and nothing is stored). */
enum dir_result credentials_user_add(struct directory *d, const char *address, const char *password, bool *no_hash);
/* Migration (postern import dovecot-passwd): add the user address with the password
 * field of a Dovecot passwd-file, "{SCHEME}hash" (no scheme: {CRYPT}).  The crypt
 * schemes ({SHA512-CRYPT}, {SHA256-CRYPT}, {BLF-CRYPT}, {MD5-CRYPT}, {CRYPT}) and
 * {ARGON2ID}/{ARGON2I} are kept as they are when libxcrypt can verify them;
 * {PLAIN}/{CLEARTEXT} are hashed now (*hashed set).  DIR_INVALID with the reason in why
 * for a scheme or hash that cannot be verified; nothing is stored then. */
enum dir_result credentials_user_import(struct directory *d, const char *address, const char *field, bool *hashed,
	char *why, size_t whysz);
/* A new app password `name` of user, generated into pw (APP_PASSWORD_LEN + 1 bytes,
 * auth/password.h) with a selector no other app password of the user has, and stored
 * hashed.  *no_password: none could be made (then DIR_ERROR). */
enum dir_result credentials_app_password_new(struct directory *d, const char *user, const char *name, char *pw,
	size_t pwsz, bool *no_password);

#endif
