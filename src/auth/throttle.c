/* throttle.c - login failure counters (see throttle.h).
 * Four fixed tables of slots, each slot named only by a 64-bit SipHash tag of its
 * key ("kind, address, account" with the account lower-cased: accounts compare
 * case-insensitively).  A table is split into sets of WAYS slots; a key lives in
 * the set its tag selects, so finding and evicting look at WAYS slots only.  The
 * names of running blocks sit in a table of their own (named), for the admin's list. */
#include "auth/throttle.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WAYS 8
#define KEY_MAX 400
#define SIPHASH_KEY_LEN 16

struct slot {
	uint64_t tag;          /* 0: empty */
	time_t used;           /* last touched, for eviction */
	time_t last;           /* last failure (known table: last success) */
	time_t until;          /* end of a block */
	unsigned count;        /* failures in the window */
};

/* The address table's distinct failing accounts, one row per slot. */
struct seen {
	uint32_t account[THROTTLE_ACCOUNTS_MAX];
	unsigned n;
};

struct table {
	struct slot *slots;
	struct seen *seen;     /* address table only */
	size_t sets;
	time_t keep;           /* an entry matters this long after `last` */
};

enum table_kind { T_PAIR, T_ADDRESS, T_KNOWN, T_ACCOUNT, T_COUNT };

struct throttle {
	pthread_mutex_t lock;  /* the login service's loop, web and control threads all ask */
	struct throttle_limits lim;
	struct table tables[T_COUNT];
	unsigned char key[SIPHASH_KEY_LEN];
	struct throttle_block_info named[THROTTLE_BLOCKS_MAX];   /* until 0: a free row */
};

/* SipHash-2-4 (OpenSSL's) of "kind ip \0 account", the account lower-cased. */
static uint64_t tag_of(const struct throttle *t, enum table_kind kind, const char *ip, const char *account)
{
	unsigned char data[KEY_MAX];
	size_t n = 0;
	data[n++] = (unsigned char)kind;
	for (const char *p = ip; p && *p && n < sizeof(data) / 2; p++)
		data[n++] = (unsigned char)*p;
	data[n++] = 0;
	for (const char *p = account; p && *p && n < sizeof(data); p++) {
		unsigned char c = (unsigned char)*p;
		data[n++] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
	}
	unsigned char out[16];
	size_t outlen = 0;
	uint64_t tag = 0;
	if (EVP_Q_mac(NULL, "SIPHASH", NULL, NULL, NULL, t->key, sizeof(t->key), data, n, out, sizeof(out), &outlen))
		memcpy(&tag, out, sizeof(tag));
	return tag ? tag : 1;
}

static bool table_init(struct table *tb, size_t entries, time_t keep, bool with_seen)
{
	tb->sets = (entries + WAYS - 1) / WAYS;
	if (tb->sets == 0)
		tb->sets = 1;
	tb->keep = keep;
	tb->slots = calloc(tb->sets * WAYS, sizeof(*tb->slots));
	tb->seen = with_seen ? calloc(tb->sets * WAYS, sizeof(*tb->seen)) : NULL;
	return tb->slots && (!with_seen || tb->seen);
}

struct throttle *throttle_new(const struct throttle_limits *l)
{
	struct throttle *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->lim = *l;
	if (t->lim.ip_accounts > THROTTLE_ACCOUNTS_MAX)
		t->lim.ip_accounts = THROTTLE_ACCOUNTS_MAX;
	bool ok = RAND_bytes(t->key, sizeof(t->key)) == 1 &&
		table_init(&t->tables[T_PAIR], l->max_entries, l->window, false) &&
		table_init(&t->tables[T_ADDRESS], l->max_entries, l->window, true) &&
		table_init(&t->tables[T_KNOWN], l->max_entries, l->known_for, false) &&
		table_init(&t->tables[T_ACCOUNT], l->max_entries, l->window, false);
	if (!ok)
		throttle_free(&t);
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (!t)
		return;
	for (int i = 0; i < T_COUNT; i++) {
		free(t->tables[i].slots);
		free(t->tables[i].seen);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

static bool expired(const struct table *tb, const struct slot *s, time_t now)
{
	return s->until <= now && now - s->last > tb->keep;
}

/* Which slot of a full set to give up: free or expired (0) before live (1) before a
 * running block (2), so new entries cannot flush blocks; the least recently used
 * within a rank. */
static int evict_rank(const struct table *tb, const struct slot *s, time_t now)
{
	if (s->tag == 0 || expired(tb, s, now))
		return 0;
	return s->until > now ? 2 : 1;
}

static void slot_reset(struct table *tb, size_t i, uint64_t tag, time_t now)
{
	tb->slots[i] = (struct slot){ .tag = tag, .used = now, .last = now };
	if (tb->seen)
		tb->seen[i].n = 0;
}

/* The slot index of `tag`, or SIZE_MAX.  With `create`, a missing key takes an
 * empty or expired slot of its set, else the least recently used one (see
 * evict_rank).  An entry whose window ran out (and no block runs) is forgotten:
 * not found, or with `create` started again from zero. */
static size_t slot_find(struct table *tb, uint64_t tag, time_t now, bool create)
{
	size_t base = (size_t)(tag % tb->sets) * WAYS, victim = base;
	for (size_t i = base; i < base + WAYS; i++) {
		struct slot *s = &tb->slots[i];
		if (s->tag == tag) {
			if (!expired(tb, s, now))
				return i;
			if (!create) {
				s->tag = 0;      /* forgotten */
				return SIZE_MAX;
			}
			slot_reset(tb, i, tag, now);
			return i;
		}
		int r = evict_rank(tb, s, now), rv = evict_rank(tb, &tb->slots[victim], now);
		if (r < rv || (r == rv && r > 0 && s->used < tb->slots[victim].used))
			victim = i;
	}
	if (!create)
		return SIZE_MAX;
	slot_reset(tb, victim, tag, now);
	return victim;
}

static struct slot *lookup(struct throttle *t, enum table_kind k, const char *ip, const char *account, time_t now)
{
	struct table *tb = &t->tables[k];
	size_t i = slot_find(tb, tag_of(t, k, ip, account), now, false);
	return i == SIZE_MAX ? NULL : &tb->slots[i];
}

static bool known_pair(struct throttle *t, const char *ip, const char *account, time_t now)
{
	if (t->lim.known_for <= 0)
		return false;
	struct slot *k = lookup(t, T_KNOWN, ip, account, now);
	return k && now - k->last <= t->lim.known_for;
}

static struct throttle_verdict check_locked(struct throttle *t, const char *ip, const char *account, time_t now)
{
	struct throttle_verdict v = { THROTTLE_OPEN, 0 };
	if (!account || !account[0])
		return v;
	struct slot *p = lookup(t, T_PAIR, ip, account, now);
	if (p && p->until > now)
		return (struct throttle_verdict){ THROTTLE_ACCOUNT, p->until };
	struct slot *a = lookup(t, T_ADDRESS, ip, NULL, now);
	if (a && a->until > now && !known_pair(t, ip, account, now))
		return (struct throttle_verdict){ THROTTLE_ADDRESS, a->until };
	return v;
}

struct throttle_verdict throttle_check(struct throttle *t, const char *ip, const char *account, time_t now)
{
	pthread_mutex_lock(&t->lock);
	struct throttle_verdict v = check_locked(t, ip, account, now);
	pthread_mutex_unlock(&t->lock);
	return v;
}

/* Name a block that began (or a running one again, when its row is still there);
 * when every row is taken, the block ending soonest gives its row up. */
static void note_block(struct throttle *t, enum throttle_block kind, const char *ip, const char *account,
	time_t now, time_t until, unsigned failures)
{
	size_t victim = 0;
	for (size_t i = 0; i < THROTTLE_BLOCKS_MAX; i++) {
		const struct throttle_block_info *b = &t->named[i];
		if (b->until > now && b->kind == kind && strcmp(b->ip, ip) == 0 && strcasecmp(b->account, account) == 0) {
			victim = i;
			break;
		}
		const struct throttle_block_info *v = &t->named[victim];
		bool b_free = b->until <= now, v_free = v->until <= now;
		if ((b_free && !v_free) || (b_free == v_free && !b_free && b->until < v->until))
			victim = i;
	}
	struct throttle_block_info *b = &t->named[victim];
	*b = (struct throttle_block_info){ .kind = kind, .since = now, .until = until, .failures = failures };
	snprintf(b->ip, sizeof(b->ip), "%s", ip ? ip : "");
	snprintf(b->account, sizeof(b->account), "%s", account ? account : "");
}

/* The times only move forward: a failure applied from another node (serve/state_feed.c)
 * may carry a time a little older than the last one seen here. */
static void touch(struct slot *s, time_t now)
{
	if (now > s->last)
		s->last = now;
	if (now > s->used)
		s->used = now;
}

static void count_failure(struct throttle *t, struct slot *s, unsigned limit, time_t now)
{
	s->count++;
	touch(s, now);
	if (limit && s->count >= limit && s->until <= now)
		s->until = now + t->lim.block;
}

/* Note a failing account at the address; distinct accounts past the limit block it. */
static void count_address(struct throttle *t, const char *ip, uint32_t account, time_t now)
{
	struct table *tb = &t->tables[T_ADDRESS];
	size_t i = slot_find(tb, tag_of(t, T_ADDRESS, ip, NULL), now, true);
	struct slot *s = &tb->slots[i];
	struct seen *seen = &tb->seen[i];
	s->count++;
	touch(s, now);
	bool present = false;
	for (unsigned k = 0; k < seen->n && !present; k++)
		present = seen->account[k] == account;
	if (!present && seen->n < THROTTLE_ACCOUNTS_MAX)
		seen->account[seen->n++] = account;
	bool spraying = t->lim.ip_accounts && seen->n >= t->lim.ip_accounts;
	bool too_many = t->lim.ip_failures && s->count >= t->lim.ip_failures;
	if ((spraying || too_many) && s->until <= now) {
		s->until = now + t->lim.block;
		note_block(t, THROTTLE_ADDRESS, ip, "", now, s->until, s->count);
	}
}

static struct slot *take(struct throttle *t, enum table_kind k, const char *ip, const char *account, time_t now)
{
	struct table *tb = &t->tables[k];
	return &tb->slots[slot_find(tb, tag_of(t, k, ip, account), now, true)];
}

static unsigned failure_locked(struct throttle *t, const char *ip, const char *account, time_t now)
{
	uint32_t account_tag = (uint32_t)tag_of(t, T_ACCOUNT, NULL, account);
	count_address(t, ip, account_tag ? account_tag : 1, now);
	if (!account[0])
		return 0;
	struct slot *p = take(t, T_PAIR, ip, account, now);
	bool was_blocked = p->until > now;
	count_failure(t, p, t->lim.pair_limit, now);
	if (!was_blocked && p->until > now)
		note_block(t, THROTTLE_ACCOUNT, ip, account, now, p->until, p->count);
	struct slot *a = take(t, T_ACCOUNT, NULL, account, now);
	count_failure(t, a, 0, now);
	if (a->count <= t->lim.account_delay_after)
		return 0;
	/* 250 ms doubling per failure past the threshold, capped. */
	unsigned over = a->count - t->lim.account_delay_after;
	unsigned long long ms = 250ull << (over > 10 ? 10 : over - 1);
	return ms > t->lim.max_delay_ms ? t->lim.max_delay_ms : (unsigned)ms;
}

unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, time_t now)
{
	pthread_mutex_lock(&t->lock);
	unsigned ms = failure_locked(t, ip, account ? account : "", now);
	pthread_mutex_unlock(&t->lock);
	return ms;
}

/* The account no longer counts as one of the address's failing accounts. */
static void forget_at_address(struct throttle *t, const char *ip, const char *account, time_t now)
{
	struct table *tb = &t->tables[T_ADDRESS];
	size_t i = slot_find(tb, tag_of(t, T_ADDRESS, ip, NULL), now, false);
	uint32_t account_tag = (uint32_t)tag_of(t, T_ACCOUNT, NULL, account);
	account_tag = account_tag ? account_tag : 1;
	if (i == SIZE_MAX)
		return;
	struct seen *seen = &tb->seen[i];
	for (unsigned k = 0; k < seen->n; k++)
		if (seen->account[k] == account_tag) {
			seen->account[k] = seen->account[--seen->n];
			break;
		}
}

/* A success: the pair's failures are forgiven, the account no longer counts as one
 * of the address's failing accounts, and the pair is known for `known_for`. */
void throttle_success(struct throttle *t, const char *ip, const char *account, time_t now)
{
	if (!account || !account[0])
		return;
	pthread_mutex_lock(&t->lock);
	struct slot *p = lookup(t, T_PAIR, ip, account, now);
	if (p)
		*p = (struct slot){ 0 };
	forget_at_address(t, ip, account, now);
	struct slot *k = take(t, T_KNOWN, ip, account, now);
	touch(k, now);
	pthread_mutex_unlock(&t->lock);
}

/* Is the named block still running (not ended, lifted or forgotten)? */
static bool still_blocked(struct throttle *t, const struct throttle_block_info *b, time_t now)
{
	if (b->until <= now)
		return false;
	struct slot *s = b->kind == THROTTLE_ACCOUNT ? lookup(t, T_PAIR, b->ip, b->account, now)
		: lookup(t, T_ADDRESS, b->ip, NULL, now);
	return s && s->until > now;
}

static int newest_first(const void *a, const void *b)
{
	const struct throttle_block_info *x = a, *y = b;
	return (x->since < y->since) - (x->since > y->since);
}

size_t throttle_blocks(struct throttle *t, time_t now, struct throttle_block_info *out, size_t max)
{
	struct throttle_block_info *all = malloc(sizeof(t->named));
	if (!all)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < THROTTLE_BLOCKS_MAX; i++) {
		if (still_blocked(t, &t->named[i], now))
			all[n++] = t->named[i];
		else
			t->named[i].until = 0;
	}
	pthread_mutex_unlock(&t->lock);
	qsort(all, n, sizeof(*all), newest_first);
	if (n > max)
		n = max;
	memcpy(out, all, n * sizeof(*all));
	free(all);
	return n;
}

/* Forget a block and the failures behind it. */
static void lift(struct throttle *t, struct throttle_block_info *b, time_t now)
{
	if (b->kind == THROTTLE_ACCOUNT) {
		struct slot *p = lookup(t, T_PAIR, b->ip, b->account, now);
		if (p)
			*p = (struct slot){ 0 };
		forget_at_address(t, b->ip, b->account, now);
	} else {
		struct table *tb = &t->tables[T_ADDRESS];
		size_t i = slot_find(tb, tag_of(t, T_ADDRESS, b->ip, NULL), now, false);
		if (i != SIZE_MAX)
			slot_reset(tb, i, 0, 0);
	}
	b->until = 0;
}

size_t throttle_unblock(struct throttle *t, const char *key, time_t now)
{
	if (!key || !key[0])
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < THROTTLE_BLOCKS_MAX; i++) {
		struct throttle_block_info *b = &t->named[i];
		bool match = strcmp(b->ip, key) == 0 || (b->kind == THROTTLE_ACCOUNT && strcasecmp(b->account, key) == 0);
		if (match && still_blocked(t, b, now)) {
			lift(t, b, now);
			n++;
		}
	}
	/* A block whose row was given up (THROTTLE_BLOCKS_MAX): the address's own. */
	struct throttle_block_info unnamed = { .kind = THROTTLE_ADDRESS, .until = now + 1 };
	snprintf(unnamed.ip, sizeof(unnamed.ip), "%s", key);
	if (still_blocked(t, &unnamed, now)) {
		lift(t, &unnamed, now);
		n++;
	}
	struct slot *a = lookup(t, T_ACCOUNT, NULL, key, now);   /* the account's delay */
	if (a)
		*a = (struct slot){ 0 };
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t throttle_entries(const struct throttle *t)
{
	size_t n = 0;
	pthread_mutex_lock((pthread_mutex_t *)&t->lock);
	for (int k = 0; k < T_COUNT; k++)
		for (size_t i = 0; i < t->tables[k].sets * WAYS; i++)
			n += t->tables[k].slots[i].tag != 0;
	pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
	return n;
}
