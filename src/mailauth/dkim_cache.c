/* dkim_cache.c - the signing keys of each domain kept in memory between messages:
 * reading a PEM key costs OpenSSL 3 far more than a signature (bench_dkim_sign), so
 * the signing stage asks here.  An entry holds while its <data_dir>/dkim/<domain>
 * directory is unchanged (same inode, same modification time): keygen adds a file and
 * retire adds SELECTOR.retired, both change it, so a retired key stops signing with
 * the next message.  Shared by the decision threads behind one mutex; every signer
 * handed out holds its own reference to the key.
 *
 * A cache given a key set (dkim_key_cache_set: the PostgreSQL directory's keys, which
 * serve/ reads on a thread of its own) signs from that set only and never looks at the
 * files: the set is parsed into each domain's signers once per change and swapped in
 * whole under the mutex. */
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

/* One domain's signers of a key set, with the creation times that chose them. */
struct set_domain {
	char domain[DNS_NAME_MAX];
	struct dkim_signer signers[CACHE_SIGNERS];
	time_t created[CACHE_SIGNERS];
	size_t n;
};

struct dkim_key_cache {
	char data_dir[4096];
	pthread_mutex_t lock;
	unsigned long long clock;
	struct cache_entry entries[CACHE_DOMAINS];
	bool from_set;                 /* dkim_key_cache_set was called: the files are not read */
	struct set_domain *set;        /* sorted by domain */
	size_t set_n;
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

static void set_free(struct set_domain *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < set[i].n; j++)
			dkim_signer_free(&set[i].signers[j]);
	free(set);
}

void dkim_key_cache_free(struct dkim_key_cache **cp)
{
	struct dkim_key_cache *c = *cp;
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_DOMAINS; i++)
		entry_clear(&c->entries[i]);
	set_free(c->set, c->set_n);
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

/* ---- key sets ---- */

/* The oldest active key of each type signs (as take_signer in dkim_keys.c): a key made
 * for a rotation waits until the old one is retired.  false with err when the key does
 * not parse. */
static bool set_offer(struct set_domain *sd, const struct dkim_key_pem *k, char *err, size_t errlen)
{
	struct dkim_signer s;
	if (!k->active)
		return true;
	if (!dkim_signer_load_pem(&s, k->domain, k->selector, k->pem, err, errlen))
		return false;
	size_t slot = sd->n;
	for (size_t i = 0; i < sd->n; i++)
		if (sd->signers[i].alg == s.alg)
			slot = i;
	if (slot < sd->n && k->created >= sd->created[slot]) {
		dkim_signer_free(&s);
		return true;
	}
	if (slot == sd->n && sd->n >= CACHE_SIGNERS) {
		dkim_signer_free(&s);
		return true;
	}
	if (slot < sd->n)
		dkim_signer_free(&sd->signers[slot]);
	else
		sd->n++;
	sd->signers[slot] = s;
	sd->created[slot] = k->created;
	return true;
}

static int cmp_set_domain(const void *a, const void *b)
{
	return strcmp(((const struct set_domain *)a)->domain, ((const struct set_domain *)b)->domain);
}

size_t dkim_signers_from_pems(const struct dkim_key_pem *keys, size_t n, const char *domain, struct dkim_signer *out,
	size_t max, char *err, size_t errlen)
{
	struct set_domain sd = { .n = 0 };
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].domain, domain) == 0)
			set_offer(&sd, &keys[i], err, errlen);
	size_t k = 0;
	for (; k < sd.n && k < max; k++)
		out[k] = sd.signers[k];
	for (size_t i = k; i < sd.n; i++)
		dkim_signer_free(&sd.signers[i]);
	return k;
}

bool dkim_key_cache_set(struct dkim_key_cache *c, const struct dkim_key_pem *keys, size_t n, char *err,
	size_t errlen)
{
	struct set_domain *set = n ? calloc(n, sizeof(*set)) : NULL;
	size_t nd = 0;
	bool ok = true;
	if (n && !set) {
		snprintf(err, errlen, "out of memory for %zu DKIM keys", n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		size_t d = 0;
		while (d < nd && strcmp(set[d].domain, keys[i].domain) != 0)
			d++;
		if (d == nd)
			snprintf(set[nd++].domain, sizeof(set[0].domain), "%s", keys[i].domain);
		ok &= set_offer(&set[d], &keys[i], err, errlen);
	}
	if (nd)
		qsort(set, nd, sizeof(*set), cmp_set_domain);
	pthread_mutex_lock(&c->lock);
	struct set_domain *old = c->set;
	size_t old_n = c->set_n;
	c->set = set;
	c->set_n = nd;
	c->from_set = true;
	pthread_mutex_unlock(&c->lock);
	set_free(old, old_n);
	return ok;
}

static size_t set_signers(struct dkim_key_cache *c, const char *domain, struct dkim_signer *out, size_t max)
{
	struct set_domain key;
	snprintf(key.domain, sizeof(key.domain), "%s", domain);
	const struct set_domain *sd = c->set_n ? bsearch(&key, c->set, c->set_n, sizeof(*c->set), cmp_set_domain) : NULL;
	size_t n = 0;
	for (; sd && n < sd->n && n < max; n++) {
		out[n] = sd->signers[n];
		EVP_PKEY_up_ref(sd->signers[n].pkey);
	}
	return n;
}

size_t dkim_key_cache_signers(struct dkim_key_cache *c, const char *domain, struct dkim_signer *out, size_t max,
	char *err, size_t errlen)
{
	pthread_mutex_lock(&c->lock);
	if (c->from_set) {
		size_t n = strlen(domain) < DNS_NAME_MAX ? set_signers(c, domain, out, max) : 0;
		pthread_mutex_unlock(&c->lock);
		return n;
	}
	pthread_mutex_unlock(&c->lock);
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
