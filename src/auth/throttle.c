/* throttle.c - login failure counters (see throttle.h).
 * One hash table of entries keyed by "i:<ip>", "p:<ip> <account>" or
 * "a:<account>"; entries also sit on an age list so the oldest can be dropped
 * when the table is full. */
#include "auth/throttle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 400
#define BUCKETS 4096

struct entry {
	char key[KEY_MAX];
	unsigned failures;
	time_t last;
	time_t blocked_until;
	struct entry *hnext;           /* hash chain */
	struct entry *older, *newer;   /* age list: head is the oldest */
};

struct throttle {
	struct throttle_limits lim;
	struct entry *buckets[BUCKETS];
	struct entry *oldest, *newest;
	size_t n;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);   /* accounts compare case-insensitively */
		h = (h ^ c) * 16777619u;
	}
	return h % BUCKETS;
}

struct throttle *throttle_new(const struct throttle_limits *l)
{
	struct throttle *t = calloc(1, sizeof(*t));
	if (t)
		t->lim = *l;
	return t;
}

static void age_unlink(struct throttle *t, struct entry *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	e->older = e->newer = NULL;
}

static void age_push(struct throttle *t, struct entry *e)
{
	e->older = t->newest;
	e->newer = NULL;
	if (t->newest)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
}

static void remove_entry(struct throttle *t, struct entry *e)
{
	unsigned h = hash(e->key);
	for (struct entry **p = &t->buckets[h]; *p; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	}
	age_unlink(t, e);
	free(e);
	t->n--;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (!t)
		return;
	while (t->oldest)
		remove_entry(t, t->oldest);
	free(t);
	*tp = NULL;
}

static struct entry *find(struct throttle *t, const char *key, time_t now, bool create)
{
	unsigned h = hash(key);
	for (struct entry *e = t->buckets[h]; e; e = e->hnext) {
		if (strcasecmp(e->key, key) != 0)
			continue;
		/* Forget failures older than the window, unless a block is still running. */
		if (now - e->last > t->lim.window && e->blocked_until <= now) {
			e->failures = 0;
			e->blocked_until = 0;
		}
		return e;
	}
	if (!create)
		return NULL;
	while (t->n >= t->lim.max_entries && t->oldest)
		remove_entry(t, t->oldest);
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->hnext = t->buckets[h];
	t->buckets[h] = e;
	age_push(t, e);
	t->n++;
	return e;
}

static void make_key(char *out, size_t outsz, char kind, const char *ip, const char *account)
{
	if (kind == 'i')
		snprintf(out, outsz, "i:%s", ip);
	else if (kind == 'p')
		snprintf(out, outsz, "p:%s %s", ip, account);
	else
		snprintf(out, outsz, "a:%s", account);
}

time_t throttle_blocked_until(struct throttle *t, const char *ip, const char *account, time_t now)
{
	char key[KEY_MAX];
	time_t until = 0;
	make_key(key, sizeof(key), 'i', ip, account);
	struct entry *e = find(t, key, now, false);
	if (e && e->blocked_until > now)
		until = e->blocked_until;
	if (account) {
		make_key(key, sizeof(key), 'p', ip, account);
		e = find(t, key, now, false);
		if (e && e->blocked_until > now && e->blocked_until > until)
			until = e->blocked_until;
	}
	return until;
}

static void count(struct throttle *t, struct entry *e, unsigned limit, time_t now)
{
	if (!e)
		return;
	e->failures++;
	e->last = now;
	age_unlink(t, e);
	age_push(t, e);
	if (limit && e->failures >= limit && e->blocked_until <= now)
		e->blocked_until = now + t->lim.block;
}

unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, time_t now)
{
	char key[KEY_MAX];
	make_key(key, sizeof(key), 'i', ip, account);
	count(t, find(t, key, now, true), t->lim.ip_limit, now);
	if (!account || !account[0])
		return 0;
	make_key(key, sizeof(key), 'p', ip, account);
	count(t, find(t, key, now, true), t->lim.pair_limit, now);
	make_key(key, sizeof(key), 'a', ip, account);
	struct entry *a = find(t, key, now, true);
	count(t, a, 0, now);
	if (!a || a->failures <= t->lim.account_delay_after)
		return 0;
	/* 250 ms doubling per failure past the threshold, capped. */
	unsigned over = a->failures - t->lim.account_delay_after;
	unsigned long long ms = 250ull << (over > 10 ? 10 : over - 1);
	return ms > t->lim.max_delay_ms ? t->lim.max_delay_ms : (unsigned)ms;
}

void throttle_success(struct throttle *t, const char *ip, const char *account)
{
	char key[KEY_MAX];
	make_key(key, sizeof(key), 'p', ip, account);
	struct entry *e = find(t, key, 0, false);
	if (e)
		remove_entry(t, e);
}
