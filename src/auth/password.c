/* password.c - hashing and verification with libxcrypt (see password.h). */
#include "auth/password.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
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

bool password_usable(const char *hash)
{
	/* Traditional DES crypt ("ab01FAX.bQRSU", Dovecot's {CRYPT} of old) has no "$"
	 * prefix; libxcrypt still verifies it.  crypt_checksalt says what it can verify. */
	if (!hash[0] || hash[0] == '*' || hash[0] == '!')
		return false;
	int r = crypt_checksalt(hash);
	return r == CRYPT_SALT_OK || r == CRYPT_SALT_METHOD_LEGACY || r == CRYPT_SALT_TOO_CHEAP;
}

static atomic_ulong verifications;

unsigned long password_verifications(void)
{
	return atomic_load(&verifications);
}

bool password_verify(const char *password, const char *hash)
{
	if (!hash || !password_usable(hash))
		return false;   /* "*", "!", empty hashes and methods libxcrypt lacks never match */
	atomic_fetch_add(&verifications, 1);
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return false;
	const char *h = crypt_r(password, hash, cd);
	bool ok = false;
	if (h && h[0] != '*') {   /* "*0", "*1": crypt's failure tokens */
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

/* --- the cache of recent successes ----------------------------------------- */

struct cache_entry {
	unsigned char digest[32];
	time_t expires;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[PASSWORD_CACHE_SIZE];
static unsigned char cache_key[32];
static bool cache_keyed;

static bool cache_digest(const char *password, const char *hash, unsigned char out[32])
{
	pthread_mutex_lock(&cache_lock);
	if (!cache_keyed)
		cache_keyed = RAND_bytes(cache_key, sizeof(cache_key)) == 1;
	bool keyed = cache_keyed;
	pthread_mutex_unlock(&cache_lock);
	if (!keyed)
		return false;
	/* HMAC-SHA-256(key, hash || NUL || password) */
	size_t hl = strlen(hash), pl = strlen(password);
	unsigned char *msg = malloc(hl + 1 + pl);
	if (!msg)
		return false;
	memcpy(msg, hash, hl);
	msg[hl] = '\0';
	memcpy(msg + hl + 1, password, pl);
	unsigned int outlen = 0;
	bool ok = HMAC(EVP_sha256(), cache_key, sizeof(cache_key), msg, hl + 1 + pl, out, &outlen) != NULL && outlen == 32;
	explicit_bzero(msg, hl + 1 + pl);
	free(msg);
	return ok;
}

/* Slot for a digest: its first bytes pick it (direct-mapped; a clash evicts). */
static struct cache_entry *slot(const unsigned char d[32])
{
	unsigned idx = ((unsigned)d[0] | (unsigned)d[1] << 8 | (unsigned)d[2] << 16) % PASSWORD_CACHE_SIZE;
	return &cache[idx];
}

bool password_verify_cached(const char *password, const char *hash, unsigned ttl)
{
	unsigned char d[32];
	bool have = ttl > 0 && cache_digest(password, hash, d);
	time_t now = time(NULL);
	if (have) {
		pthread_mutex_lock(&cache_lock);
		struct cache_entry *e = slot(d);
		bool hit = e->expires > now && CRYPTO_memcmp(e->digest, d, 32) == 0;
		pthread_mutex_unlock(&cache_lock);
		if (hit)
			return true;
	}
	bool ok = password_verify(password, hash);
	if (ok && have) {
		pthread_mutex_lock(&cache_lock);
		struct cache_entry *e = slot(d);
		memcpy(e->digest, d, 32);
		e->expires = now + (time_t)ttl;
		pthread_mutex_unlock(&cache_lock);
	}
	return ok;
}

/* --- app passwords ------------------------------------------------------------ */

static const char app_alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";   /* 32: no l, o, 0, 1 */

static bool app_char(char c)
{
	return c && strchr(app_alphabet, c) != NULL;
}

/* `groups` groups of four alphabet characters joined by '-', and nothing else. */
static bool app_groups(const char *p, int groups)
{
	for (int g = 0; g < groups; g++) {
		if (g && *p++ != '-')
			return false;
		for (int i = 0; i < 4; i++)
			if (!app_char(*p++))
				return false;
	}
	return *p == '\0';
}

bool password_app_generate(char *out, size_t outsz, char selector[APP_SELECTOR_LEN + 1])
{
	unsigned char rnd[28];
	if (outsz < APP_PASSWORD_LEN + 1 || getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return false;
	size_t o = 0;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		if (i && i % 4 == 0)
			out[o++] = '-';
		out[o++] = app_alphabet[rnd[i] % 32];   /* 256 is a multiple of 32: no bias */
	}
	out[o] = '\0';
	memcpy(selector, out, APP_SELECTOR_LEN);
	selector[APP_SELECTOR_LEN] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	return true;
}

bool password_app_selector(const char *password, char selector[APP_SELECTOR_LEN + 1])
{
	if (!app_groups(password, 7))
		return false;
	memcpy(selector, password, APP_SELECTOR_LEN);
	selector[APP_SELECTOR_LEN] = '\0';
	return true;
}

bool password_app_legacy_form(const char *password)
{
	return app_groups(password, 6);
}
