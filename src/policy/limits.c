/* limits.c - the counters of the outbound limits (see policy.h): one entry per
 * account and per sending domain in a hash table under one mutex, bounded in
 * entries; and the state file that carries them over a restart.
 *
 * State file (data_dir/limits.state), text, one entry a line:
 *     postern-limits 1
 *     a KEY first_seen reached_day burst_day M idx:count ... H idx:count ... D idx:count ...
 * ("a" account, "d" domain; M minute buckets of messages, H hour buckets of
 * recipients, D day buckets of messages).  Only live buckets are written.  It is our
 * own file in our own directory, read once at the start; a line that does not parse
 * is skipped (counted), never trusted past its bounds. */
#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/parse.h"

#define MINUTES 60
#define HOURS 24
#define DAYS 8                 /* today and the seven before: the burst baseline */
#define TABLE_BUCKETS 4096
#define LINE_MAX_STATE 8192
#define STATE_MAGIC "postern-limits 1"

struct limit_entry {
	struct limit_entry *next;
	enum limit_kind kind;
	long long first_seen;
	long long reached_day, burst_day;   /* UTC day of the last notice; 0: none */
	struct limit_bucket minutes[MINUTES];   /* messages */
	struct limit_bucket hours[HOURS];       /* recipients */
	struct limit_bucket days[DAYS];         /* messages */
	char key[];
};

struct policy_limits {
	pthread_mutex_t lock;
	size_t n, max;
	bool full_logged;
	struct limit_entry *table[TABLE_BUCKETS];
};

struct policy_limits *policy_limits_new(size_t max_entries)
{
	struct policy_limits *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	l->max = max_entries ? max_entries : 1;
	return l;
}

void policy_limits_free(struct policy_limits **lp)
{
	struct policy_limits *l = *lp;
	if (!l)
		return;
	for (size_t i = 0; i < TABLE_BUCKETS; i++)
		for (struct limit_entry *e = l->table[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&l->lock);
	free(l);
	*lp = NULL;
}

static uint32_t slot_of(enum limit_kind kind, const char *key)
{
	return (hash_fnv1a(key) ^ (uint32_t)kind * 0x9e3779b9u) % TABLE_BUCKETS;
}

/* A key is stored as one word of the state file: printable ASCII without spaces. */
static bool key_ok(const char *key)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++, n++)
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
	return n > 0 && n < POLICY_LOGIN_MAX;
}

static struct limit_entry *find(struct policy_limits *l, enum limit_kind kind, const char *key)
{
	for (struct limit_entry *e = l->table[slot_of(kind, key)]; e; e = e->next)
		if (e->kind == kind && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Is every window of e empty at now (a week without mail): it may go. */
static bool idle(const struct limit_entry *e, long long now)
{
	return !limit_window_sum(e->days, DAYS, 86400, now) && !limit_window_sum(e->hours, HOURS, 3600, now)
		&& !limit_window_sum(e->minutes, MINUTES, 60, now);
}

/* Make room by dropping idle entries; false when none was idle. */
static bool prune(struct policy_limits *l, long long now)
{
	size_t before = l->n;
	for (size_t i = 0; i < TABLE_BUCKETS; i++)
		for (struct limit_entry **pp = &l->table[i]; *pp;) {
			struct limit_entry *e = *pp;
			if (idle(e, now)) {
				*pp = e->next;
				free(e);
				l->n--;
			} else {
				pp = &e->next;
			}
		}
	return l->n < before;
}

static struct limit_entry *find_or_add(struct policy_limits *l, enum limit_kind kind, const char *key, long long now)
{
	struct limit_entry *e = find(l, kind, key);
	if (e || !key_ok(key))
		return e;
	if (l->n >= l->max && !prune(l, now))
		return NULL;   /* full of busy entries: this key is not counted (limits_table_full) */
	size_t len = strlen(key);
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, len + 1);
	e->kind = kind;
	e->first_seen = now;
	uint32_t s = slot_of(kind, key);
	e->next = l->table[s];
	l->table[s] = e;
	l->n++;
	return e;
}

static bool count_one(struct policy_limits *l, enum limit_kind kind, const char *key, unsigned rcpts, long long now)
{
	if (!key || !key[0])
		return true;
	struct limit_entry *e = find_or_add(l, kind, key, now);
	if (!e)
		return false;
	limit_window_add(e->minutes, MINUTES, 60, now, 1);
	limit_window_add(e->hours, HOURS, 3600, now, rcpts);
	limit_window_add(e->days, DAYS, 86400, now, 1);
	return true;
}

void policy_limits_count(struct policy_limits *l, const char *account, const char *domain, unsigned rcpts,
	long long now)
{
	pthread_mutex_lock(&l->lock);
	bool acct_ok = count_one(l, LIMIT_ACCOUNT, account, rcpts, now);
	bool ok = count_one(l, LIMIT_DOMAIN, domain, rcpts, now) && acct_ok;
	bool tell = !ok && !l->full_logged;
	if (tell)
		l->full_logged = true;
	size_t n = l->n;
	pthread_mutex_unlock(&l->lock);
	if (tell)
		log_event(LOG_WARN, "limits_table_full", "entries=%zu hint=\"accounts and domains not seen before are not "
			"counted until entries fall idle (a week without mail)\"", n);
}

void policy_limits_usage(struct policy_limits *l, enum limit_kind kind, const char *key, long long now,
	unsigned long long messages_limit, unsigned long long recipients_limit, unsigned long long extra,
	double burst_floor, struct limit_usage *out)
{
	*out = (struct limit_usage){ .messages_resume = now, .recipients_resume = now, .baseline = burst_floor };
	pthread_mutex_lock(&l->lock);
	const struct limit_entry *e = key ? find(l, kind, key) : NULL;
	if (e) {
		out->messages_hour = limit_window_sum(e->minutes, MINUTES, 60, now);
		out->recipients_day = limit_window_sum(e->hours, HOURS, 3600, now);
		out->messages_resume = limit_window_resume(e->minutes, MINUTES, 60, now, messages_limit, 1);
		out->recipients_resume = limit_window_resume(e->hours, HOURS, 3600, now, recipients_limit, extra);
		out->baseline = limit_window_hourly_baseline(e->days, DAYS, now, e->first_seen, burst_floor);
	} else if (extra > recipients_limit) {
		out->recipients_resume = -1;
	}
	pthread_mutex_unlock(&l->lock);
}

bool policy_limits_notice_due(struct policy_limits *l, enum limit_kind kind, const char *key,
	enum limit_notice_kind notice, long long now)
{
	long long day = now / 86400 + 1;   /* +1: 0 means "never" */
	pthread_mutex_lock(&l->lock);
	struct limit_entry *e = find_or_add(l, kind, key, now);
	bool due = false;
	if (e) {
		long long *last = notice == LIMIT_NOTICE_BURST ? &e->burst_day : &e->reached_day;
		due = *last != day;
		*last = day;
	}
	pthread_mutex_unlock(&l->lock);
	return due;
}

void policy_limits_sending_domain(const char *login, const char *sender_domain, char *out, size_t outsz)
{
	const char *d = sender_domain && sender_domain[0] ? sender_domain : NULL;
	if (!d && login) {
		const char *at = strrchr(login, '@');
		d = at ? at + 1 : NULL;
	}
	snprintf(out, outsz, "%s", d ? d : "");
	ascii_lower(out);
}

/* --- the state file --------------------------------------------------------------- */

static void put_buckets(struct buf *b, const char *tag, const struct limit_bucket *bk, unsigned n, unsigned width,
	long long now)
{
	long long cur = now / (long long)width;
	buf_printf(b, " %s", tag);
	for (unsigned i = 0; i < n; i++)
		if (bk[i].count && (long long)bk[i].index <= cur && cur - (long long)bk[i].index < (long long)n)
			buf_printf(b, " %" PRIu32 ":%" PRIu32, bk[i].index, bk[i].count);
}

static void put_entry(struct buf *b, const struct limit_entry *e, long long now)
{
	buf_printf(b, "%c %s %lld %lld %lld", e->kind == LIMIT_ACCOUNT ? 'a' : 'd', e->key, e->first_seen, e->reached_day,
		e->burst_day);
	put_buckets(b, "M", e->minutes, MINUTES, 60, now);
	put_buckets(b, "H", e->hours, HOURS, 3600, now);
	put_buckets(b, "D", e->days, DAYS, 86400, now);
	buf_appends(b, "\n");
}

static bool write_file(const char *path, const struct buf *b, char *err, size_t errsz)
{
	char tmp[1200], dir[1200];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errsz, "the path %s is too long", path);
		return false;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && fileio_write_all(fd, b->data ? b->data : "", b->len) && fileio_fsync(fd) == 0;
	int saved = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = false;
		saved = errno;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (ok && !fileio_fsync_dir(slash ? dir : ".")) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		snprintf(err, errsz, "cannot write %s: %s", path, strerror(saved));
		unlink(tmp);
	}
	return ok;
}

bool policy_limits_save(struct policy_limits *l, const char *path, long long now, char *err, size_t errsz)
{
	struct buf b;
	pthread_mutex_lock(&l->lock);
	buf_init(&b, (l->max + 1) * (LINE_MAX_STATE + 64));
	pthread_mutex_unlock(&l->lock);
	buf_printf(&b, "%s\n", STATE_MAGIC);
	/* The mutex is taken per hash bucket, not for the whole table: a check on the loop
	 * (RCPT) waits at most for one bucket's few entries to be written out. */
	for (size_t i = 0; i < TABLE_BUCKETS; i++) {
		pthread_mutex_lock(&l->lock);
		for (const struct limit_entry *e = l->table[i]; e; e = e->next)
			if (!idle(e, now) || e->reached_day || e->burst_day)
				put_entry(&b, e, now);
		pthread_mutex_unlock(&l->lock);
	}
	bool ok = !b.truncated;
	if (!ok)
		snprintf(err, errsz, "the state does not fit in memory");
	ok = ok && write_file(path, &b, err, errsz);
	buf_free(&b);
	return ok;
}

static bool parse_ll(const char *s, long long *out)
{
	uint64_t v;
	if (!s || !parse_u64(s, strlen(s), &v) || v > (uint64_t)INT64_MAX)
		return false;
	*out = (long long)v;
	return true;
}

/* "idx:count" into the bucket ring of n. */
static bool parse_bucket(const char *w, struct limit_bucket *bk, unsigned n)
{
	const char *colon = strchr(w, ':');
	uint64_t idx, count;
	if (!colon || !parse_u64(w, (size_t)(colon - w), &idx) || !parse_u64(colon + 1, strlen(colon + 1), &count)
		|| idx > UINT32_MAX || count > UINT32_MAX)
		return false;
	bk[idx % n] = (struct limit_bucket){ .index = (uint32_t)idx, .count = (uint32_t)count };
	return true;
}

static bool parse_entry(struct policy_limits *l, char *line, long long now)
{
	char *save = NULL;
	const char *kind = strtok_r(line, " \n", &save), *key = strtok_r(NULL, " \n", &save);
	long long first, reached, burst;
	if (!kind || !key || (strcmp(kind, "a") != 0 && strcmp(kind, "d") != 0) || !key_ok(key)
		|| !parse_ll(strtok_r(NULL, " \n", &save), &first) || !parse_ll(strtok_r(NULL, " \n", &save), &reached)
		|| !parse_ll(strtok_r(NULL, " \n", &save), &burst))
		return false;
	struct limit_entry *e = find_or_add(l, kind[0] == 'a' ? LIMIT_ACCOUNT : LIMIT_DOMAIN, key, now);
	if (!e)
		return false;
	e->first_seen = first;
	e->reached_day = reached;
	e->burst_day = burst;
	struct limit_bucket *ring = NULL;
	unsigned n = 0;
	for (char *w; (w = strtok_r(NULL, " \n", &save));) {
		if (strcmp(w, "M") == 0 || strcmp(w, "H") == 0 || strcmp(w, "D") == 0) {
			ring = w[0] == 'M' ? e->minutes : w[0] == 'H' ? e->hours : e->days;
			n = w[0] == 'M' ? MINUTES : w[0] == 'H' ? HOURS : DAYS;
		} else if (!ring || !parse_bucket(w, ring, n)) {
			return false;
		}
	}
	return true;
}

bool policy_limits_load(struct policy_limits *l, const char *path, long long now, size_t *skipped, char *err,
	size_t errsz)
{
	*skipped = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return true;
	FILE *fp = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!fp) {
		snprintf(err, errsz, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	char *line = malloc(LINE_MAX_STATE);
	bool ok = line && fgets(line, LINE_MAX_STATE, fp) && strncmp(line, STATE_MAGIC "\n", sizeof(STATE_MAGIC)) == 0;
	if (!ok)
		snprintf(err, errsz, "%s is not a limits state file (its first line is not \"%s\")", path, STATE_MAGIC);
	pthread_mutex_lock(&l->lock);
	while (ok && fgets(line, LINE_MAX_STATE, fp)) {
		bool whole = strchr(line, '\n') != NULL;
		if (!whole) {   /* longer than any line save writes: skip the rest of it */
			int ch;
			while ((ch = fgetc(fp)) != EOF && ch != '\n')
				;
		}
		if (!whole || !parse_entry(l, line, now))
			(*skipped)++;
	}
	pthread_mutex_unlock(&l->lock);
	free(line);
	fclose(fp);
	return ok;
}
