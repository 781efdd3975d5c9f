/* state_feed.c - the state that holds across nodes (see state_feed.h).
 *
 * Reading the feed.  Rows are read in id order from a cursor.  Ids come from a
 * sequence, taken when a row is inserted, and two nodes' inserts may commit in the
 * other order: a reader could see id 11 before id 10 is committed and, with a plain
 * cursor, never see 10.  So the cursor stays REREAD_MS behind the newest id seen: rows
 * of the last moments are read again, and the ids applied since the cursor are kept
 * (a sorted array, bounded) so each row is applied once.  Rows published by this
 * process (its run id) are never read back; rows a previous run of this node published
 * are, at the start, like any other node's: they rebuild its throttle. */
#include "serve/state_feed.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/throttle.h"
#include "conf/conf.h"
#include "policy/policy.h"
#include "util/log.h"

#define REREAD_MS 2000           /* how long ids are read again (an insert's commit later than a higher id's) */
#define SEEN_MAX 8192            /* ids applied since the cursor */
#define HISTORY 16               /* (time, newest id) per poll, REREAD_MS back: > REREAD_MS / STATE_FEED_POLL_MS */
#define PAGE_ROWS 1000           /* rows per read */
#define PAGES_PER_POLL 10        /* a long catch-up gives way to publishing every 10 pages */
#define EXPIRE_EVERY_S 60
#define RETRY_AFTER_MS 1000      /* after a failed publish or read */

struct state_feed {
	pthread_mutex_t lock;          /* outbox, stopping */
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stopping;
	struct dir_state_row *outbox;  /* ring of STATE_FEED_OUTBOX_MAX */
	struct dir_state_row *batch;   /* DIR_STATE_BATCH_MAX: what is being sent (the thread's) */
	size_t head, count;
	unsigned long long dropped;    /* rows the full outbox could not keep (since the last restore) */
	/* the thread's own */
	struct directory *dir;
	struct state_targets targets;
	time_t retention;
	long long cursor;              /* rows with id > cursor are read */
	long long newest;              /* the highest id seen */
	long long *seen;               /* ids > cursor already applied, ascending */
	size_t nseen;
	struct { long long ms, id; } history[HISTORY];
	unsigned hist_next;
	bool down;                     /* the database failed; logged once */
	long long retry_at_ms;
	time_t last_expire;
	unsigned long long applied;
	char node[DIR_STATE_ORIGIN_MAX];
	char run[DIR_STATE_ORIGIN_MAX];
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- applying (pure) ---------------------------------------------------------------- */

static bool fresh(long long at, time_t window, time_t now)
{
	return window > 0 && at <= (long long)now + 60 && (long long)now - at <= (long long)window;
}

bool state_feed_apply(const struct state_targets *t, const struct dir_state_row *r, time_t now)
{
	switch (r->kind) {
	case DIR_STATE_LOGIN_FAILED:
		if (!t->throttle || !fresh(r->at, t->auth_window, now))
			return false;
		throttle_failure(t->throttle, r->ip, r->account, (time_t)r->at);   /* the delay is the other node's to hold */
		return true;
	case DIR_STATE_LOGIN_OK: {
		time_t keep = t->auth_known_for > t->auth_window ? t->auth_known_for : t->auth_window;
		if (!t->throttle || !r->account[0] || !fresh(r->at, keep, now))
			return false;
		throttle_success(t->throttle, r->ip, r->account, (time_t)r->at);
		return true;
	}
	case DIR_STATE_UNBLOCK:
		/* Lifts what runs now (a block is never older than [auth] block). */
		if (!t->throttle || !r->account[0] || !fresh(r->at, t->auth_block, now))
			return false;
		throttle_unblock(t->throttle, r->account, now);
		return true;
	case DIR_STATE_POP_LOGIN:
		if (!t->pop_login || !r->ip[0] || !fresh(r->at, t->pop_window, now))
			return false;
		t->pop_login(t->pop_arg, r->ip, (time_t)r->at);
		return true;
	case DIR_STATE_SENT:
		if (!t->counts || r->at <= t->counts_since || !fresh(r->at, STATE_FEED_RETENTION_MAX, now) || r->n < 0)
			return false;
		policy_limits_count(t->counts, r->account, r->domain, r->n > UINT32_MAX ? UINT32_MAX : (unsigned)r->n, r->at);
		return true;
	default:
		return false;
	}
}

time_t state_feed_retention(const struct state_targets *t)
{
	time_t r = t->counts ? STATE_FEED_RETENTION_MAX : 0;
	time_t w[] = { t->auth_window, t->auth_block, t->auth_known_for, t->pop_window };
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (w[i] > r)
			r = w[i];
	return r > STATE_FEED_RETENTION_MAX ? STATE_FEED_RETENTION_MAX : r;
}

/* --- publishing (any thread, never waits) ------------------------------------------- */

static void outbox_put(struct state_feed *f, const struct dir_state_row *r)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	if (f->stopping) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (f->count < STATE_FEED_OUTBOX_MAX) {
		f->outbox[(f->head + f->count) % STATE_FEED_OUTBOX_MAX] = *r;
		f->count++;
		pthread_cond_signal(&f->wake);
	} else {
		f->dropped++;   /* told when the database is back (state_feed_restored) */
	}
	pthread_mutex_unlock(&f->lock);
}

void state_feed_login(void *arg, enum login_record what, const char *addr, const char *user, time_t at)
{
	struct dir_state_row r = { .at = at };
	r.kind = what == LOGIN_RECORD_FAILED ? DIR_STATE_LOGIN_FAILED : what == LOGIN_RECORD_OK ? DIR_STATE_LOGIN_OK
		: DIR_STATE_UNBLOCK;
	snprintf(r.ip, sizeof(r.ip), "%s", addr ? addr : "");
	snprintf(r.account, sizeof(r.account), "%s", user ? user : "");
	outbox_put(arg, &r);
}

void state_feed_pop_login(struct state_feed *f, const char *addr, time_t at)
{
	struct dir_state_row r = { .at = at, .kind = DIR_STATE_POP_LOGIN };
	snprintf(r.ip, sizeof(r.ip), "%s", addr ? addr : "");
	outbox_put(f, &r);
}

void state_feed_sent(struct state_feed *f, const char *login, const char *sender_domain, size_t rcpts, time_t at)
{
	if (!f)
		return;
	struct dir_state_row r = { .at = at, .kind = DIR_STATE_SENT, .n = (long long)rcpts };
	snprintf(r.account, sizeof(r.account), "%s", login ? login : "");
	policy_limits_sending_domain(login, sender_domain, r.domain, sizeof(r.domain));
	outbox_put(f, &r);
}

/* --- the thread ----------------------------------------------------------------------- */

static void feed_failed(struct state_feed *f, const char *what)
{
	f->retry_at_ms = mono_ms() + RETRY_AFTER_MS;
	if (f->down)
		return;
	f->down = true;
	log_event(LOG_WARN, "state_feed_unavailable", "node=%s doing=%s error=\"%s\" hint=\"throttles, limits and "
		"POP-before-SMTP keep working on this node's own counts; up to %u changes wait to be sent, and what the "
		"other nodes count is applied once PostgreSQL answers again\"", f->node, what, directory_error(f->dir),
		STATE_FEED_OUTBOX_MAX);
}

static void feed_worked(struct state_feed *f)
{
	if (!f->down)
		return;
	f->down = false;
	pthread_mutex_lock(&f->lock);
	unsigned long long dropped = f->dropped;
	f->dropped = 0;
	pthread_mutex_unlock(&f->lock);
	log_event(dropped ? LOG_WARN : LOG_INFO, "state_feed_restored", "node=%s dropped=%llu%s", f->node, dropped,
		dropped ? " hint=\"changes counted while the outbox was full were not shared\"" : "");
}

/* Send what the outbox holds, a batch at a time; false when the database failed (the
 * rows stay for the next try). */
static bool publish_pending(struct state_feed *f)
{
	struct dir_state_row *batch = f->batch;
	for (;;) {
		pthread_mutex_lock(&f->lock);
		size_t n = f->count < DIR_STATE_BATCH_MAX ? f->count : DIR_STATE_BATCH_MAX;
		for (size_t i = 0; i < n; i++)
			batch[i] = f->outbox[(f->head + i) % STATE_FEED_OUTBOX_MAX];
		pthread_mutex_unlock(&f->lock);
		if (n == 0)
			return true;
		if (directory_state_publish(f->dir, f->node, f->run, batch, n) != DIR_OK) {
			feed_failed(f, "publish");
			return false;
		}
		pthread_mutex_lock(&f->lock);
		f->head = (f->head + n) % STATE_FEED_OUTBOX_MAX;
		f->count -= n;
		pthread_mutex_unlock(&f->lock);
	}
}

/* Was this id applied already?  Else remember it (ascending insert). */
static bool seen_before(struct state_feed *f, long long id)
{
	size_t lo = 0, hi = f->nseen;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (f->seen[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->nseen && f->seen[lo] == id)
		return true;
	if (f->nseen == SEEN_MAX) {
		/* More rows within REREAD_MS than we keep: move the cursor up to what is kept. */
		f->cursor = f->seen[SEEN_MAX / 2];
		memmove(f->seen, f->seen + SEEN_MAX / 2 + 1, (SEEN_MAX - SEEN_MAX / 2 - 1) * sizeof(*f->seen));
		f->nseen = SEEN_MAX - SEEN_MAX / 2 - 1;
		if (id <= f->cursor)
			return true;
		return seen_before(f, id);
	}
	memmove(f->seen + lo + 1, f->seen + lo, (f->nseen - lo) * sizeof(*f->seen));
	f->seen[lo] = id;
	f->nseen++;
	return false;
}

struct read_pass {
	struct state_feed *f;
	time_t now;
	long long last_id;
};

static void read_row(void *arg, const struct dir_state_row *r)
{
	struct read_pass *p = arg;
	struct state_feed *f = p->f;
	p->last_id = r->id;
	if (r->id <= f->cursor || seen_before(f, r->id))
		return;
	if (r->id > f->newest)
		f->newest = r->id;
	if (state_feed_apply(&f->targets, r, p->now))
		f->applied++;
}

static void forget_below_cursor(struct state_feed *f)
{
	size_t drop = 0;
	while (drop < f->nseen && f->seen[drop] <= f->cursor)
		drop++;
	memmove(f->seen, f->seen + drop, (f->nseen - drop) * sizeof(*f->seen));
	f->nseen -= drop;
}

/* The cursor moves to the newest id seen REREAD_MS ago. */
static void advance_cursor(struct state_feed *f)
{
	long long now = mono_ms();
	f->history[f->hist_next % HISTORY].ms = now;
	f->history[f->hist_next % HISTORY].id = f->newest;
	f->hist_next++;
	for (unsigned i = 0; i < HISTORY; i++)
		if (f->history[i].ms && now - f->history[i].ms >= REREAD_MS && f->history[i].id > f->cursor)
			f->cursor = f->history[i].id;
	forget_below_cursor(f);
}

/* Read and apply the other nodes' new rows; false when the database failed. */
static bool read_feed(struct state_feed *f)
{
	struct read_pass p = { .f = f, .now = time(NULL), .last_id = f->cursor };
	for (int page = 0; page < PAGES_PER_POLL; page++) {
		unsigned got = 0;
		long long from = p.last_id;
		if (directory_state_read(f->dir, from, (long long)p.now - f->retention, f->run, PAGE_ROWS, read_row, &p, &got)
			!= DIR_OK) {
			feed_failed(f, "read");
			return false;
		}
		if (got < PAGE_ROWS)
			break;
		/* A backlog (the start, or after an outage): rows this far behind the newest
		 * are committed; the cursor follows them at once. */
		if (p.last_id > f->cursor)
			f->cursor = p.last_id;
		forget_below_cursor(f);
	}
	advance_cursor(f);
	return true;
}

static void expire_old(struct state_feed *f)
{
	time_t now = time(NULL);
	if (now - f->last_expire < EXPIRE_EVERY_S)
		return;
	f->last_expire = now;
	if (directory_state_expire(f->dir, (long long)now - f->retention) != DIR_OK)
		feed_failed(f, "expire");
}

/* Sleep until the next poll, or sooner when there is something to send (and no retry
 * is pending), or the stop. */
static bool wait_next(struct state_feed *f, long long poll_at)
{
	pthread_mutex_lock(&f->lock);
	for (;;) {
		long long now = mono_ms(), until = poll_at;
		bool send = f->count && now >= f->retry_at_ms;
		if (f->stopping || send || now >= poll_at)
			break;
		if (f->count && f->retry_at_ms < until)
			until = f->retry_at_ms;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = (long long)ts.tv_nsec + (until - now) * 1000000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&f->wake, &f->lock, &ts);
	}
	bool go = !f->stopping;
	pthread_mutex_unlock(&f->lock);
	return go;
}

static void *feed_main(void *arg)
{
	struct state_feed *f = arg;
	long long poll_at = 0;
	do {
		if (mono_ms() < f->retry_at_ms)
			continue;
		bool ok = publish_pending(f);
		if (ok && mono_ms() >= poll_at) {
			poll_at = mono_ms() + STATE_FEED_POLL_MS;
			ok = read_feed(f);
			if (ok)
				expire_old(f);
		}
		if (ok && mono_ms() >= f->retry_at_ms)
			feed_worked(f);
	} while (wait_next(f, poll_at > f->retry_at_ms ? poll_at : f->retry_at_ms));
	if (!f->down)
		publish_pending(f);   /* the last changes, if the database is there */
	return NULL;
}

/* --- life ---------------------------------------------------------------------------- */

struct state_feed *state_feed_new(const struct conf *cf, const char *node, const char *run_id)
{
	if (cf->directory_backend != CONF_DIRECTORY_POSTGRESQL || !cf->cluster_node[0])
		return NULL;   /* a single server: its tables are the whole truth */
	struct state_feed *f = calloc(1, sizeof(*f));
	char err[512];
	if (!f || !(f->outbox = calloc(STATE_FEED_OUTBOX_MAX, sizeof(*f->outbox)))
		|| !(f->batch = calloc(DIR_STATE_BATCH_MAX, sizeof(*f->batch))) || !(f->seen = calloc(SEEN_MAX, sizeof(*f->seen))) || !directory_open(&f->dir, cf->data_dir, err, sizeof(err))) {
		log_event(LOG_ERR, "state_feed_error", "error=\"%s\" hint=\"throttles and limits count this node only\"",
			f && f->seen ? err : "out of memory");
		if (f) {
			free(f->outbox);
			free(f->batch);
			free(f->seen);
		}
		free(f);
		return NULL;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	snprintf(f->node, sizeof(f->node), "%s", node && node[0] ? node : "-");
	/* The data directory's run id is unique on this node only: with random bytes it
	 * names this process among every node's. */
	unsigned char rnd[8];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	snprintf(f->run, sizeof(f->run), "%.24s-%02x%02x%02x%02x%02x%02x%02x%02x", run_id, rnd[0], rnd[1], rnd[2], rnd[3],
		rnd[4], rnd[5], rnd[6], rnd[7]);
	return f;
}

void state_feed_start(struct state_feed *f, const struct state_targets *t)
{
	if (!f)
		return;
	f->targets = *t;
	f->retention = state_feed_retention(t);
	f->last_expire = time(NULL) - EXPIRE_EVERY_S + 5;   /* the first expiry soon after the start */
	int e = pthread_create(&f->thread, NULL, feed_main, f);
	f->started = e == 0;
	if (e)
		log_event(LOG_ERR, "state_feed_error", "error=\"cannot start the feed thread: %s\" hint=\"throttles and limits "
			"count this node only\"", strerror(e));
	else
		log_event(LOG_INFO, "state_feed_started", "node=%s run=%s retention=%llds poll_ms=%d", f->node, f->run,
			(long long)f->retention, STATE_FEED_POLL_MS);
}

void state_feed_stop(struct state_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	if (f->started)
		pthread_join(f->thread, NULL);
	f->started = false;
}

void state_feed_free(struct state_feed **fp)
{
	struct state_feed *f = *fp;
	if (!f)
		return;
	state_feed_stop(f);
	directory_close(&f->dir);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f->outbox);
	free(f->batch);
	free(f->seen);
	free(f);
	*fp = NULL;
}
