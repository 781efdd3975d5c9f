/* password.h - password hashes with libxcrypt.  Only this room sees hashes' insides.
 * New hashes are yescrypt ("$y$"); verification accepts every method libxcrypt knows,
 * so bcrypt ($2b$), sha512-crypt ($6$) and sha256-crypt ($5$) hashes migrated from
 * Dovecot or /etc/shadow keep working. */
#ifndef POSTERN_AUTH_PASSWORD_H
#define POSTERN_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_HASH_MAX 512

bool password_hash(const char *password, char *out, size_t outsz);
/* Can libxcrypt verify passwords against this hash (crypt_checksalt: a method it
 * knows and has enabled; legacy and cheap ones included)? */
bool password_usable(const char *hash);
/* Constant-time comparison of the computed hash.  Slow by design: call off the loop. */
bool password_verify(const char *password, const char *hash);

/* password_verify() with a cache of recent successes, as Dovecot's auth cache:
 * mail clients log in again every few minutes, and each yescrypt check costs tens
 * of milliseconds.  An entry is a keyed SHA-256 of (stored hash, password), with a
 * key random per process, so a changed password or a revoked app password (whose
 * stored hash is gone) never matches a cached entry; failures are never cached.
 * Entries live `ttl` seconds; the cache holds at most PASSWORD_CACHE_SIZE.
 * Thread-safe. */
#define PASSWORD_CACHE_SIZE 4096
bool password_verify_cached(const char *password, const char *hash, unsigned ttl);

/* How many hashes password_verify() has computed in this process: the work of a
 * login attempt, counted instead of timed (tests). */
unsigned long password_verifications(void);

/* App passwords: seven groups of four characters from an alphabet without look-alikes
 * ("k7qm-abcd-efgh-ijkm-npqr-stuv-wxyz"); the first group is the selector, stored with
 * the hash, that picks the one hash a login is checked against; the other six are
 * 120 random bits.  App passwords made before selectors ("legacy") were six groups. */
#define APP_SELECTOR_LEN 4
#define APP_PASSWORD_LEN (7 * 5 - 1)
/* Makes a new app password (out: APP_PASSWORD_LEN + 1) and its selector. */
bool password_app_generate(char *out, size_t outsz, char selector[APP_SELECTOR_LEN + 1]);
/* Has `password` the form of a new app password?  Then selector receives its first group. */
bool password_app_selector(const char *password, char selector[APP_SELECTOR_LEN + 1]);
/* Has `password` the form of a legacy app password (six groups)? */
bool password_app_legacy_form(const char *password);

#endif
