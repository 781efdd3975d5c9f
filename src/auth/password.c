/* password.c - hashing and verification with libxcrypt (see password.h). */
#include "auth/password.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

bool password_hash(const char *password, char *out, size_t outsz)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	/* "$y$" = yescrypt; count 0 = libxcrypt's recommended cost. */
	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
		return false;
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return false;
	const char *h = crypt_r(password, salt, cd);
	bool ok = h && h[0] == '$' && strlen(h) < outsz;
	if (ok)
		memcpy(out, h, strlen(h) + 1);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

bool password_verify(const char *password, const char *hash)
{
	if (!hash || hash[0] != '$')
		return false;   /* "*", "!" and empty hashes never match */
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return false;
	const char *h = crypt_r(password, hash, cd);
	bool ok = false;
	if (h && h[0] == '$') {
		size_t n = strlen(hash);
		if (strlen(h) == n) {
			unsigned char diff = 0;
			for (size_t i = 0; i < n; i++)
				diff |= (unsigned char)(h[i] ^ hash[i]);
			ok = diff == 0;
		}
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
