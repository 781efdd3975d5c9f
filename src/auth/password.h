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
/* Constant-time comparison of the computed hash.  Slow by design: call off the loop. */
bool password_verify(const char *password, const char *hash);

#endif
