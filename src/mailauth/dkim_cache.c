/* dkim_cache.c - the signing keys of each domain kept in memory between messages:
 * reading a PEM key costs OpenSSL 3 far more than a signature (bench_dkim_sign), so
 * the signing stage asks here.  An entry holds while its <data_dir>/dkim/<domain>
 * directory is unchanged (same inode, same modification time): keygen adds a file and
 * retire adds SELECTOR.retired, both change it, so a retired key stops signing with
 * the next message.  Shared by the decision threads behind one mutex; every signer
 * handed out holds its own reference to the key. */
#include "mailauth/dkim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#define CACHE_DOMAINS 64
#define CACHE_SIGNERS 2

struct cache_entry {
	char domain[DNS_NAME_MAX];
	bool used;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	unsigned long long last_use;
	struct dkim_signer signers[CACHE_SIGNERS];
	size_t n;
};

struct dkim_key_cache {
	char data_dir[4096];
	pthread_mutex_t lock;
	unsigned long long clock;
	struct cache_entry entries[CACHE_DOMAINS];
};

struct dkim_key_cache *dkim_key_cache_new(const char *data_dir)
{
	struct dkim_key_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", data_dir);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void entry_clear(struct cache_entry *e)
{
	for (size_t i = 0; i < e->n; i++)
		dkim_signer_free(&e->signers[i]);
	memset(e, 0, sizeof(*e));
}

void dkim_key_cache_free(struct dkim_key_cache **cp)
{
	struct dkim_key_cache *c = *cp;
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_DOMAINS; i++)
		entry_clear(&c->entries[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}

static size_t hand_out(const struct cache_entry *e, struct dkim_signer *out, size_t max)
{
	size_t n = 0;
	for (; n < e->n && n < max; n++) {
		out[n] = e->signers[n];
		EVP_PKEY_up_ref(e->signers[n].pkey);
	}
	return n;
}

/* The entry for domain, or the least recently used one to reuse. */
static struct cache_entry *find_slot(struct dkim_key_cache *c, const char *domain, bool *found)
{
	struct cache_entry *victim = &c->entries[0];
	for (size_t i = 0; i < CACHE_DOMAINS; i++) {
		struct cache_entry *e = &c->entries[i];
		if (e->used && strcmp(e->domain, domain) == 0) {
			*found = true;
			return e;
		}
		if (!e->used || (victim->used && e->last_use < victim->last_use))
			victim = e;
	}
	*found = false;
	return victim;
}

size_t dkim_key_cache_signers(struct dkim_key_cache *c, const char *domain, struct dkim_signer *out, size_t max,
	char *err, size_t errlen)
{
	char dir[4500];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/dkim/%s", c->data_dir, domain);
	if (strlen(domain) >= DNS_NAME_MAX || strchr(domain, '/') || stat(dir, &st) != 0)
		return 0;   /* no key directory: nothing to sign with, nothing to keep */
	pthread_mutex_lock(&c->lock);
	bool found;
	struct cache_entry *e = find_slot(c, domain, &found);
	if (!found || e->dev != st.st_dev || e->ino != st.st_ino || e->mtime.tv_sec != st.st_mtim.tv_sec
		|| e->mtime.tv_nsec != st.st_mtim.tv_nsec) {
		entry_clear(e);
		e->n = dkim_signers_for_domain(c->data_dir, domain, e->signers, CACHE_SIGNERS, err, errlen);
		snprintf(e->domain, sizeof(e->domain), "%s", domain);
		e->used = true;
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->mtime = st.st_mtim;
	}
	e->last_use = ++c->clock;
	size_t n = hand_out(e, out, max);
	pthread_mutex_unlock(&c->lock);
	return n;
}
