/* dkim_refresh.c - keeps the signing stage's DKIM keys (mailauth/'s key cache) equal to
 * the PostgreSQL directory's (dkim_refresh.h), so that `postern dkim keygen|retire` on
 * any node changes what every node signs with within DKIM_REFRESH_MS.  One thread, its
 * own directory handle: every period it asks the keys' version (one small query) and,
 * when it moved, reads the keys and hands the whole set to the cache, which parses
 * them once; the signers only ever look at memory. */
#include "serve/dkim_refresh.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "mailauth/dkim.h"
#include "util/log.h"

#define DKIM_REFRESH_MS 2000
#define DKIM_REFRESH_LOG_INTERVAL 60   /* seconds between "cannot read the keys" lines */
#define DKIM_KEYS_MAX 4096             /* keys read at most (the rest is logged, not signed with) */

struct dkim_refresh {
	struct dkim_key_cache *cache;
	struct directory *dir;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;               /* CLOCK_MONOTONIC */
	bool stopping;
	char version[64];                  /* of the keys the cache holds ("" none yet) */
	time_t last_error_log;
};

struct key_copies {
	struct dkim_key_pem *keys;
	char **texts;                      /* domain, selector and PEM of each, one allocation per key */
	size_t n, dropped;
};

static void copy_key(void *arg, const struct dir_dkim_key *k)
{
	struct key_copies *c = arg;
	if (c->n >= DKIM_KEYS_MAX) {
		c->dropped++;
		return;
	}
	size_t dl = strlen(k->domain) + 1, sl = strlen(k->selector) + 1, pl = strlen(k->pem) + 1;
	char *t = malloc(dl + sl + pl);
	if (!t) {
		c->dropped++;
		return;
	}
	memcpy(t, k->domain, dl);
	memcpy(t + dl, k->selector, sl);
	memcpy(t + dl + sl, k->pem, pl);
	c->texts[c->n] = t;
	c->keys[c->n++] = (struct dkim_key_pem){ .domain = t, .selector = t + dl, .pem = t + dl + sl, .active = k->active,
		.created = (time_t)k->created };
}

static void note_error(struct dkim_refresh *r, const char *what)
{
	time_t now = time(NULL);
	if (now - r->last_error_log < DKIM_REFRESH_LOG_INTERVAL)
		return;
	r->last_error_log = now;
	log_event(LOG_WARN, "dkim_keys_error", "store=postgresql error=\"%s: %s\" action=\"signing goes on with the keys "
		"read before (%s%s)\"", what, directory_error(r->dir), r->version[0] ? "version " : "none", r->version);
}

/* Read the keys again when their version moved; the cache keeps the old set otherwise. */
static void refresh(struct dkim_refresh *r)
{
	char version[64];
	if (directory_dkim_keys_version(r->dir, version, sizeof(version)) != DIR_OK) {
		note_error(r, "reading the DKIM keys' version");
		return;
	}
	if (strcmp(version, r->version) == 0)
		return;
	struct key_copies c = { .keys = calloc(DKIM_KEYS_MAX, sizeof(*c.keys)), .texts = calloc(DKIM_KEYS_MAX,
		sizeof(*c.texts)) };
	enum dir_result res = c.keys && c.texts ? directory_dkim_key_list(r->dir, NULL, copy_key, &c) : DIR_ERROR;
	if (res == DIR_OK) {
		char err[256] = "";
		if (!dkim_key_cache_set(r->cache, c.keys, c.n, err, sizeof(err)))
			log_event(LOG_WARN, "dkim_key_unusable", "store=postgresql error=\"%s\" action=\"the other keys sign\"", err);
		log_event(LOG_INFO, "dkim_keys_loaded", "store=postgresql keys=%zu version=%s", c.n, version);
		if (c.dropped)
			log_event(LOG_WARN, "dkim_keys_dropped", "store=postgresql dropped=%zu max=%d", c.dropped, DKIM_KEYS_MAX);
		snprintf(r->version, sizeof(r->version), "%s", version);
	} else
		note_error(r, "reading the DKIM keys");
	for (size_t i = 0; i < c.n; i++)
		free(c.texts[i]);
	free(c.texts);
	free(c.keys);
}

static void *refresh_main(void *arg)
{
	struct dkim_refresh *r = arg;
	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct timespec at;
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += DKIM_REFRESH_MS / 1000;
		at.tv_nsec += (DKIM_REFRESH_MS % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!r->stopping && pthread_cond_timedwait(&r->cond, &r->lock, &at) != ETIMEDOUT)
			;
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->lock);
		refresh(r);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void refresh_free(struct dkim_refresh *r)
{
	directory_close(&r->dir);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

bool dkim_refresh_start(struct dkim_refresh **out, struct dkim_key_cache *cache, const struct conf *cf, char *err,
	size_t errsz)
{
	*out = NULL;
	if (cf->directory_backend != CONF_DIRECTORY_POSTGRESQL || !cache)
		return true;
	char why[256] = "";
	/* From here on the files are never read, even before the first keys arrive. */
	dkim_key_cache_set(cache, NULL, 0, why, sizeof(why));
	struct dkim_refresh *r = calloc(1, sizeof(*r));
	pthread_condattr_t ca;
	if (!r || pthread_condattr_init(&ca) != 0) {
		free(r);
		snprintf(err, errsz, "out of memory");
		return false;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->lock, NULL);
	r->cache = cache;
	if (!directory_open(&r->dir, cf->data_dir, err, errsz)) {
		refresh_free(r);
		return false;
	}
	refresh(r);   /* before the first message: startup, not the event loop */
	if (pthread_create(&r->thread, NULL, refresh_main, r) != 0) {
		snprintf(err, errsz, "cannot start the DKIM key refresh: %s", strerror(errno));
		refresh_free(r);
		return false;
	}
	*out = r;
	return true;
}

void dkim_refresh_stop(struct dkim_refresh **pr)
{
	struct dkim_refresh *r = *pr;
	if (!r)
		return;
	*pr = NULL;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	refresh_free(r);
}
