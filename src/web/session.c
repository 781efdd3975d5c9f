/* session.c - the server-side sessions of the account pages (see app.h): in
 * memory only (a restart signs everyone out, which is the safe way round), at most
 * WEB_SESSIONS_MAX at once (a new one evicts the least recently used), each with a
 * 256-bit id and a 256-bit CSRF token from RAND_bytes written in base64url
 * (RFC 4648 §5).  A session ends after [web] session_idle without a request and,
 * whatever its use, [web] session_max after it was made.  Ids are compared with
 * CRYPTO_memcmp, so the time a lookup takes does not tell how much of an id was
 * right.  One mutex: the web threads share the table. */
#include "web/app.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_BYTES 32
#define TOKEN_CHARS 43           /* base64url of 32 bytes, no padding */

struct slot {
	bool used;
	unsigned char id[ID_BYTES];
	char address[321];
	bool admin;
	char csrf[TOKEN_CHARS + 1];
	time_t created, last_seen;
	char flash[256];
};

struct web_sessions {
	pthread_mutex_t lock;
	struct slot *s;
	size_t n, cap;               /* slots made; n <= cap <= WEB_SESSIONS_MAX */
	unsigned idle, max;
};

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void encode(const unsigned char *in, char out[TOKEN_CHARS + 1])
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < ID_BYTES; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64url[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = b64url[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

/* The 32 bytes of a 43-character base64url id; false for anything else. */
static bool decode(const char *s, unsigned char out[ID_BYTES])
{
	if (!s || strlen(s) != TOKEN_CHARS)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < TOKEN_CHARS; i++) {
		const char *p = strchr(b64url, s[i]);
		if (!p || !s[i])
			return false;
		acc = (acc << 6) | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o < ID_BYTES)
				out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o == ID_BYTES;
}

bool web_token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb || la == 0)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

struct web_sessions *web_sessions_new(unsigned idle_seconds, unsigned max_seconds)
{
	struct web_sessions *ss = calloc(1, sizeof(*ss));
	if (!ss)
		return NULL;
	pthread_mutex_init(&ss->lock, NULL);
	ss->idle = idle_seconds ? idle_seconds : 1800;
	ss->max = max_seconds ? max_seconds : 43200;
	return ss;
}

void web_sessions_free(struct web_sessions **ssp)
{
	struct web_sessions *ss = *ssp;
	if (!ss)
		return;
	if (ss->s)
		OPENSSL_cleanse(ss->s, ss->cap * sizeof(*ss->s));
	free(ss->s);
	pthread_mutex_destroy(&ss->lock);
	free(ss);
	*ssp = NULL;
}

static bool expired(const struct web_sessions *ss, const struct slot *sl, time_t now)
{
	return now - sl->last_seen >= (time_t)ss->idle || now - sl->created >= (time_t)ss->max || now < sl->created;
}

/* A slot for a new session: a free or expired one, a new one while below the
 * bound, else the least recently used. */
static struct slot *slot_for_new(struct web_sessions *ss, time_t now)
{
	struct slot *lru = NULL;
	for (size_t i = 0; i < ss->n; i++) {
		struct slot *sl = &ss->s[i];
		if (!sl->used || expired(ss, sl, now))
			return sl;
		if (!lru || sl->last_seen < lru->last_seen)
			lru = sl;
	}
	if (ss->n < WEB_SESSIONS_MAX) {
		if (ss->n == ss->cap) {
			size_t cap = ss->cap ? ss->cap * 2 : 64;
			if (cap > WEB_SESSIONS_MAX)
				cap = WEB_SESSIONS_MAX;
			struct slot *s = realloc(ss->s, cap * sizeof(*s));
			if (!s)
				return lru;
			ss->s = s;
			ss->cap = cap;
		}
		return &ss->s[ss->n++];
	}
	return lru;
}

static void copy_out(const struct slot *sl, struct web_user *u)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->address, sizeof(u->address), "%s", sl->address);
	u->admin = sl->admin;
	snprintf(u->csrf, sizeof(u->csrf), "%s", sl->csrf);
	encode(sl->id, u->session_id);
}

bool web_session_create(struct web_sessions *ss, const char *address, bool admin, struct web_user *u)
{
	unsigned char id[ID_BYTES], csrf[ID_BYTES];
	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(csrf, sizeof(csrf)) != 1)
		return false;
	time_t now = time(NULL);
	pthread_mutex_lock(&ss->lock);
	struct slot *sl = slot_for_new(ss, now);
	if (sl) {
		memset(sl, 0, sizeof(*sl));
		sl->used = true;
		memcpy(sl->id, id, sizeof(id));
		snprintf(sl->address, sizeof(sl->address), "%s", address);
		sl->admin = admin;
		encode(csrf, sl->csrf);
		sl->created = sl->last_seen = now;
		copy_out(sl, u);
	}
	pthread_mutex_unlock(&ss->lock);
	OPENSSL_cleanse(id, sizeof(id));
	OPENSSL_cleanse(csrf, sizeof(csrf));
	return sl != NULL;
}

/* The used slot of this id; every used slot is compared (constant time each). */
static struct slot *slot_of(struct web_sessions *ss, const unsigned char id[ID_BYTES])
{
	struct slot *found = NULL;
	for (size_t i = 0; i < ss->n; i++)
		if (ss->s[i].used && CRYPTO_memcmp(ss->s[i].id, id, ID_BYTES) == 0)
			found = &ss->s[i];
	return found;
}

bool web_session_find(struct web_sessions *ss, const char *id_text, time_t now, struct web_user *u)
{
	unsigned char id[ID_BYTES];
	if (!ss || !decode(id_text, id))
		return false;
	pthread_mutex_lock(&ss->lock);
	struct slot *sl = slot_of(ss, id);
	if (sl && expired(ss, sl, now)) {
		OPENSSL_cleanse(sl, sizeof(*sl));
		sl = NULL;
	}
	if (sl) {
		sl->last_seen = now;
		copy_out(sl, u);
		snprintf(u->flash, sizeof(u->flash), "%s", sl->flash);
		sl->flash[0] = '\0';
	}
	pthread_mutex_unlock(&ss->lock);
	return sl != NULL;
}

void web_session_destroy(struct web_sessions *ss, const char *id_text)
{
	unsigned char id[ID_BYTES];
	if (!ss || !decode(id_text, id))
		return;
	pthread_mutex_lock(&ss->lock);
	struct slot *sl = slot_of(ss, id);
	if (sl)
		OPENSSL_cleanse(sl, sizeof(*sl));
	pthread_mutex_unlock(&ss->lock);
}

void web_session_set_flash(struct web_sessions *ss, const char *id_text, const char *text)
{
	unsigned char id[ID_BYTES];
	if (!ss || !decode(id_text, id))
		return;
	pthread_mutex_lock(&ss->lock);
	struct slot *sl = slot_of(ss, id);
	if (sl)
		snprintf(sl->flash, sizeof(sl->flash), "%s", text);
	pthread_mutex_unlock(&ss->lock);
}

size_t web_sessions_count(struct web_sessions *ss)
{
	size_t live = 0;
	time_t now = time(NULL);
	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->n; i++)
		live += ss->s[i].used && !expired(ss, &ss->s[i], now);
	pthread_mutex_unlock(&ss->lock);
	return live;
}
