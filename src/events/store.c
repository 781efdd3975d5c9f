/* store.c - the writing side of the event store (events.h): the database file and
 * its schema, the bounded queue that events_append fills from any thread, the one
 * writer thread that drains it in transactions, and retention.
 *
 * The queue is a ring of pointers (queue_max of them); a record is copied into its own
 * allocation before the lock is taken, so an append holds the mutex only to place a
 * pointer.  The writer takes every queued pointer at once and writes them in one
 * transaction: under load the batches grow by themselves, one commit for many records.
 * synchronous = NORMAL in WAL mode: a power cut may lose the last batches, never the
 * file (SQLite's WAL guarantees); these are records of what happened, not mail. */
#include "events/events.h"
#include "events/pg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/metrics.h"

#define EVENTS_SCHEMA_VERSION 1
#define EVENTS_ACCOUNT_MAX_DEFAULT 5000
#define EVENTS_ANONYMOUS_FACTOR 20      /* records without a login: this many times the per-account cap */
#define EVENTS_PURGE_INTERVAL 3600      /* seconds between retention passes */
#define EVENTS_DROP_LOG_INTERVAL 60     /* at most one "dropped" log line per this many seconds */
#define EVENTS_CAP_ACCOUNTS 256         /* accounts over the cap trimmed per pass */
#define EVENTS_GATHER_NS 50000000L      /* after a wake-up, gather records this long before a transaction */
#define EVENTS_WRITER_NICE 10           /* the writer yields the CPU to the mail threads */
#define EVENTS_RETRY_MS 2000            /* PostgreSQL: a batch it did not take is tried again after this */

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS events ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" kind INTEGER NOT NULL,"
	" account TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
	" sender TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
	" rcpt TEXT NOT NULL DEFAULT '',"
	" qid TEXT NOT NULL DEFAULT '',"
	" client_addr TEXT NOT NULL DEFAULT '',"
	" proto TEXT NOT NULL DEFAULT '',"
	" listener TEXT NOT NULL DEFAULT '',"
	" cmd TEXT NOT NULL DEFAULT '',"
	" code INTEGER NOT NULL DEFAULT 0,"
	" enh TEXT NOT NULL DEFAULT '',"
	" cause_id TEXT NOT NULL DEFAULT '',"
	" ref TEXT NOT NULL DEFAULT '',"
	" text TEXT NOT NULL DEFAULT '',"
	" subject TEXT NOT NULL DEFAULT '',"
	" where_to TEXT NOT NULL DEFAULT '',"
	" next_try INTEGER NOT NULL DEFAULT 0,"
	" n_rcpts INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS events_by_account ON events(account, id);"
	"CREATE INDEX IF NOT EXISTS events_by_sender ON events(sender, id);"
	"CREATE INDEX IF NOT EXISTS events_by_qid ON events(qid, kind);"
	"CREATE INDEX IF NOT EXISTS events_by_time ON events(at, kind);";

static const char insert_sql[] =
	"INSERT INTO events (at, kind, account, sender, rcpt, qid, client_addr, proto, listener, cmd, code, enh,"
	" cause_id, ref, text, subject, where_to, next_try, n_rcpts)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

struct events {
	sqlite3 *db;
	sqlite3_stmt *insert;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;                /* CLOCK_MONOTONIC */
	struct events_record **ring;        /* queue_max slots */
	struct events_record **batch;       /* the writer's: what it took from the ring */
	size_t cap, head, n;
	bool stopping;
	atomic_ullong dropped;
	unsigned long long written;         /* the writer's count (read after it stopped) */
	atomic_llong last_drop_log;
	unsigned retention_days;
	unsigned account_max;
	struct events_pg *pg;               /* PostgreSQL ([directory] backend = postgresql); NULL: the file */
	bool pg_down;                       /* the writer's: the last attempt got no answer (logged once) */
	bool purge_due;                     /* the writer's: a retention pass the database missed */
	char path[4096];                    /* the file, or "postgresql" (for logs) */
};

const char *events_kind_name(enum events_kind k)
{
	static const char *const names[] = { [EVENTS_REFUSED] = "refused", [EVENTS_QUEUED] = "queued",
		[EVENTS_DELIVERED] = "delivered", [EVENTS_DEFERRED] = "deferred", [EVENTS_BOUNCED] = "bounced",
		[EVENTS_DELAY_NOTICE] = "delay_notice", [EVENTS_HELD] = "held", [EVENTS_RELEASED] = "released",
		[EVENTS_DISCARDED] = "discarded", [EVENTS_DELETED] = "deleted" };
	return k >= EVENTS_REFUSED && k <= EVENTS_DELETED ? names[k] : "unknown";
}

unsigned long long events_dropped(const struct events *e)
{
	return e ? atomic_load(&((struct events *)e)->dropped) : 0;
}

/* Count dropped records; say so in the log at most once a minute (a full queue under a
 * flood would otherwise write a line per refusal). */
static void note_dropped(struct events *e, unsigned long long n, const char *why)
{
	unsigned long long total = atomic_fetch_add(&e->dropped, n) + n;
	metrics_count(METRIC_EVENTS_DROPPED, NULL, n);
	long long now = (long long)time(NULL), last = atomic_load(&e->last_drop_log);
	if (now - last < EVENTS_DROP_LOG_INTERVAL || !atomic_compare_exchange_strong(&e->last_drop_log, &last, now))
		return;
	log_event(LOG_WARN, "events_dropped", "dropped_total=%llu reason=\"%s\" file=%s", total, why, e->path);
}

/* The fields are fixed arrays filled by callers with snprintf; a caller that used
 * memcpy could leave one unterminated: terminate every one. */
static void terminate(struct events_record *r)
{
	r->account[sizeof(r->account) - 1] = r->sender[sizeof(r->sender) - 1] = r->rcpt[sizeof(r->rcpt) - 1] = '\0';
	r->qid[sizeof(r->qid) - 1] = r->client_addr[sizeof(r->client_addr) - 1] = r->proto[sizeof(r->proto) - 1] = '\0';
	r->listener[sizeof(r->listener) - 1] = r->cmd[sizeof(r->cmd) - 1] = r->enh[sizeof(r->enh) - 1] = '\0';
	r->cause_id[sizeof(r->cause_id) - 1] = r->ref[sizeof(r->ref) - 1] = r->text[sizeof(r->text) - 1] = '\0';
	r->subject[sizeof(r->subject) - 1] = r->where[sizeof(r->where) - 1] = '\0';
}

void events_append(struct events *e, const struct events_record *r)
{
	if (!e || !r)
		return;
	struct events_record *copy = malloc(sizeof(*copy));
	if (copy) {
		*copy = *r;
		copy->id = 0;
		if (!copy->when)
			copy->when = time(NULL);
		terminate(copy);
	}
	bool queued = false;
	pthread_mutex_lock(&e->lock);
	if (copy && e->n < e->cap && !e->stopping) {
		e->ring[(e->head + e->n) % e->cap] = copy;
		if (e->n++ == 0)
			pthread_cond_signal(&e->cond);
		queued = true;
	}
	pthread_mutex_unlock(&e->lock);
	if (!queued) {
		free(copy);
		note_dropped(e, 1, copy ? "the queue of records waiting for the disk is full ([events] queue_max)"
			: "out of memory");
	}
}

static bool exec_sql(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return true;
	snprintf(err, errsz, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return false;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static bool insert_one(struct events *e, const struct events_record *r)
{
	sqlite3_stmt *st = e->insert;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->when);
	sqlite3_bind_int(st, 2, (int)r->kind);
	bind_text(st, 3, r->account);
	bind_text(st, 4, r->sender);
	bind_text(st, 5, r->rcpt);
	bind_text(st, 6, r->qid);
	bind_text(st, 7, r->client_addr);
	bind_text(st, 8, r->proto);
	bind_text(st, 9, r->listener);
	bind_text(st, 10, r->cmd);
	sqlite3_bind_int(st, 11, r->code);
	bind_text(st, 12, r->enh);
	bind_text(st, 13, r->cause_id);
	bind_text(st, 14, r->ref);
	bind_text(st, 15, r->text);
	bind_text(st, 16, r->subject);
	bind_text(st, 17, r->where);
	sqlite3_bind_int64(st, 18, (sqlite3_int64)r->next_try);
	sqlite3_bind_int64(st, 19, (sqlite3_int64)r->n_rcpts);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE;
}

/* One transaction for the whole batch; a batch the disk refuses is dropped and counted
 * (the queue stays bounded; the store is a record, not the mail). */
static void write_batch_file(struct events *e, struct events_record **b, size_t n)
{
	char err[256] = "";
	bool ok = exec_sql(e->db, "BEGIN IMMEDIATE", err, sizeof(err));
	for (size_t i = 0; ok && i < n; i++)
		if (!insert_one(e, b[i])) {
			snprintf(err, sizeof(err), "%s", sqlite3_errmsg(e->db));
			ok = false;
		}
	if (ok)
		ok = exec_sql(e->db, "COMMIT", err, sizeof(err));
	if (ok)
		e->written += n;
	if (!ok) {
		char ignored[64];
		exec_sql(e->db, "ROLLBACK", ignored, sizeof(ignored));
		log_event(LOG_ERR, "events_error", "file=%s records=%zu error=\"%s\"", e->path, n, err);
		note_dropped(e, n, "the database refused a batch of records");
	}
	for (size_t i = 0; i < n; i++)
		free(b[i]);
}

/* PostgreSQL: what it did not answer for stays at the front of b (returned: how many),
 * to be tried again, unless this is the last try (stopping); what it refused is dropped.
 * Mail never waits for this: appends only fill the ring, which drops when full. */
static size_t write_batch_pg(struct events *e, struct events_record **b, size_t n, bool last_try)
{
	char err[256] = "";
	size_t written = 0;
	int res = -1;
	if (last_try && e->pg_down)   /* stopping with the database gone: no more waiting for it */
		snprintf(err, sizeof(err), "PostgreSQL did not answer before");
	else
		res = events_pg_write(e->pg, b, n, &written, err, sizeof(err));
	for (size_t i = 0; i < written; i++)
		free(b[i]);
	e->written += written;
	size_t rest = n - written;
	if (res == 1 || written > 0) {
		if (e->pg_down)
			log_event(LOG_INFO, "events_store_resumed", "store=postgresql written=%zu", written);
		e->pg_down = false;
	}
	if (res == 1)
		return 0;
	if (res < 0 && !e->pg_down)
		log_event(LOG_WARN, "events_store_unavailable", "store=postgresql waiting=%zu error=\"%s\" action=\"records "
			"are kept in memory (at most twice [events] queue_max) and written when PostgreSQL answers; mail is not "
			"delayed\"", rest, err);
	e->pg_down = res < 0;
	memmove(b, b + written, rest * sizeof(*b));
	if (res < 0 && !last_try)
		return rest;
	if (res == 0)
		log_event(LOG_ERR, "events_error", "store=postgresql records=%zu error=\"%s\"", rest, err);
	note_dropped(e, rest, res == 0 ? "PostgreSQL refused a batch of records" : "PostgreSQL did not answer at the stop");
	for (size_t i = 0; i < rest; i++)
		free(b[i]);
	return 0;
}

/* Trim one account's records to `keep`, oldest first. */
static void trim_account(struct events *e, const char *account, long long keep)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(e->db, "DELETE FROM events WHERE account = ?1 AND id <= (SELECT id FROM events"
		" WHERE account = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, keep);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* Accounts with more records than the cap (records without a login share one,
 * larger, cap), then each trimmed. */
static void purge_caps(struct events *e)
{
	long long cap = e->account_max, anon = cap * EVENTS_ANONYMOUS_FACTOR;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(e->db, "SELECT account FROM events GROUP BY account"
		" HAVING COUNT(*) > (CASE WHEN account = '' THEN ?2 ELSE ?1 END) LIMIT ?3", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, cap);
	sqlite3_bind_int64(st, 2, anon);
	sqlite3_bind_int(st, 3, EVENTS_CAP_ACCOUNTS);
	char (*names)[321] = calloc(EVENTS_CAP_ACCOUNTS, sizeof(*names));
	size_t n = 0;
	while (names && n < EVENTS_CAP_ACCOUNTS && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *a = sqlite3_column_text(st, 0);
		snprintf(names[n++], sizeof(names[0]), "%s", a ? (const char *)a : "");
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++)
		trim_account(e, names[i], names[i][0] ? cap : anon);
	free(names);
}

/* Retention: by age ([events] retention), then the per-account cap.  With
 * PostgreSQL every node runs it (the statements are the same whoever runs them); one
 * the database missed is run again once it answers. */
static void purge(struct events *e)
{
	time_t before = time(NULL) - (time_t)e->retention_days * 86400;
	long long removed = 0, trimmed = 0;
	if (e->pg) {
		char err[256] = "";
		long long anonymous = (long long)e->account_max * EVENTS_ANONYMOUS_FACTOR;
		e->purge_due = !events_pg_purge(e->pg, before, e->account_max, anonymous, &removed, &trimmed, err,
			sizeof(err));
		if (e->purge_due)
			log_event(LOG_WARN, "events_purge_error", "store=postgresql error=\"%s\" action=\"tried again when "
				"PostgreSQL answers\"", err);
	} else {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(e->db, "DELETE FROM events WHERE at < ?1", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
			if (sqlite3_step(st) == SQLITE_DONE)
				removed = sqlite3_changes(e->db);
			sqlite3_finalize(st);
		}
		int total_before = sqlite3_total_changes(e->db);
		purge_caps(e);
		trimmed = sqlite3_total_changes(e->db) - total_before;
	}
	if (removed || trimmed)
		log_event(LOG_INFO, "events_purged", "file=%s older_than_days=%u removed=%lld over_cap=%lld", e->path,
			e->retention_days, removed, trimmed);
}

static void deadline_in(struct timespec *ts, time_t seconds)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += seconds;
}

static bool passed(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void deadline_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Under the lock: wait for records (or the stop, or `until`), then move what is queued
 * into the batch after `pending` records kept from a failed try.  Returns the batch's size. */
static size_t take_batch(struct events *e, size_t pending, const struct timespec *until, bool *stopping,
	bool *drained)
{
	pthread_mutex_lock(&e->lock);
	while ((pending || e->n == 0) && !e->stopping && !passed(until))
		pthread_cond_timedwait(&e->cond, &e->lock, until);
	if (!pending && e->n && e->n < e->cap / 2 && !e->stopping) {
		/* One transaction for what arrives in the next moments, not one per record. */
		pthread_mutex_unlock(&e->lock);
		nanosleep(&(struct timespec){ 0, EVENTS_GATHER_NS }, NULL);
		pthread_mutex_lock(&e->lock);
	}
	size_t n = pending;
	while (e->n && n < e->cap) {
		e->batch[n++] = e->ring[e->head];
		e->head = (e->head + 1) % e->cap;
		e->n--;
	}
	*stopping = e->stopping;
	*drained = e->n == 0;
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* The writer: purge at start, then drain the queue until stopped (what is queued at
 * the stop is still written), purging hourly.  PostgreSQL not answering: the batch is
 * kept and tried again every EVENTS_RETRY_MS while the ring fills (and, full, drops). */
static void *writer_main(void *arg)
{
	struct events *e = arg;
	struct timespec next_purge, retry_at;
	/* Linux: a thread's own nice value (its tid is a process id for setpriority).  The
	 * accept path must not pay for the history: under CPU pressure the writer waits. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), EVENTS_WRITER_NICE) != 0)
		log_event(LOG_DEBUG, "events_nice", "error=\"%s\"", strerror(errno));
	purge(e);
	deadline_in(&next_purge, EVENTS_PURGE_INTERVAL);
	size_t pending = 0;
	for (;;) {
		bool stopping, drained;
		size_t n = take_batch(e, pending, pending ? &retry_at : &next_purge, &stopping, &drained);
		pending = 0;
		if (n && e->pg)
			pending = write_batch_pg(e, e->batch, n, stopping);
		else if (n)
			write_batch_file(e, e->batch, n);
		if (pending)
			deadline_ms(&retry_at, EVENTS_RETRY_MS);
		if (passed(&next_purge) || (e->purge_due && !e->pg_down && n)) {
			purge(e);
			deadline_in(&next_purge, EVENTS_PURGE_INTERVAL);
		}
		if (stopping && drained && pending == 0 && (n == 0 || e->pg_down))
			break;
	}
	return NULL;
}

/* Create or check the schema (PRAGMA user_version is its version). */
static bool open_schema(sqlite3 *db, const char *path, char *err, size_t errsz)
{
	char why[256];
	if (!exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", why, sizeof(why))) {
		snprintf(err, errsz, "%s: cannot use WAL mode: %s", path, why);
		return false;
	}
	sqlite3_stmt *st = NULL;
	int version = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0 || version > EVENTS_SCHEMA_VERSION) {
		snprintf(err, errsz, "%s: schema version %d is not one this postern knows (%d): made by a newer version? "
			"Move the file away (it only holds the event history) or upgrade", path, version, EVENTS_SCHEMA_VERSION);
		return false;
	}
	char set_version[64];
	snprintf(set_version, sizeof(set_version), "PRAGMA user_version=%d;", EVENTS_SCHEMA_VERSION);
	if (!exec_sql(db, schema_sql, why, sizeof(why)) || !exec_sql(db, set_version, why, sizeof(why))) {
		snprintf(err, errsz, "%s: cannot create the schema: %s", path, why);
		return false;
	}
	return true;
}

/* The records name people (addresses, subjects, client addresses): the file and its
 * -wal/-shm (SQLite gives them the database's mode) are the owner's alone.  Created
 * 0600 with O_EXCL before SQLite opens it (never through a planted link, and without
 * the process-wide umask); an older file is narrowed.  Called before any connection
 * of this process holds a lock on it. */
static bool make_private(const char *path, bool create, char *err, size_t errsz)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT || !create) {
			if (errno != ENOENT)
				snprintf(err, errsz, "cannot check %s: %s", path, strerror(errno));
			return errno == ENOENT;
		}
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		if (errno != EEXIST) {
			snprintf(err, errsz, "cannot create %s: %s", path, strerror(errno));
			return false;
		}
		return make_private(path, false, err, errsz);
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s is not a regular file (a link or a special file): remove it", path);
		return false;
	}
	if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 0700) != 0) {
		snprintf(err, errsz, "cannot make %s private (mode 0600): %s", path, strerror(errno));
		return false;
	}
	return true;
}

static bool make_files_private(const char *path, char *err, size_t errsz)
{
	char side[4200];
	snprintf(side, sizeof(side), "%s-wal", path);
	bool ok = make_private(path, true, err, errsz) && make_private(side, false, err, errsz);
	snprintf(side, sizeof(side), "%s-shm", path);
	return ok && make_private(side, false, err, errsz);
}

static void free_store(struct events *e)
{
	if (!e)
		return;
	sqlite3_finalize(e->insert);
	sqlite3_close(e->db);
	events_pg_free(&e->pg);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->ring);
	free(e->batch);
	free(e);
}

static bool init_sync(struct events *e)
{
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0)
		return false;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	bool ok = pthread_cond_init(&e->cond, &ca) == 0;
	pthread_condattr_destroy(&ca);
	return ok && pthread_mutex_init(&e->lock, NULL) == 0;
}

/* The SQLite file: private, WAL mode, schema current, the insert prepared. */
static bool open_file(struct events *e, char *err, size_t errsz)
{
	if (!make_files_private(e->path, err, errsz))
		return false;
	if (sqlite3_open_v2(e->path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)
		!= SQLITE_OK) {
		snprintf(err, errsz, "%s: %s", e->path, e->db ? sqlite3_errmsg(e->db) : "cannot open");
		return false;
	}
	sqlite3_busy_timeout(e->db, 5000);
	if (!open_schema(e->db, e->path, err, errsz)
		|| sqlite3_prepare_v2(e->db, insert_sql, -1, &e->insert, NULL) != SQLITE_OK) {
		if (e->db && !err[0])
			snprintf(err, errsz, "%s: %s", e->path, sqlite3_errmsg(e->db));
		return false;
	}
	return true;
}

bool events_open(struct events **out, const char *data_dir, const struct events_config *c, char *err, size_t errsz)
{
	*out = NULL;
	if (errsz)
		err[0] = '\0';
	if (!c->enabled)
		return true;
	struct events *e = calloc(1, sizeof(*e));
	if (!e || !init_sync(e)) {
		free(e);
		snprintf(err, errsz, "out of memory");
		return false;
	}
	snprintf(e->path, sizeof(e->path), "%s/events.db", data_dir);
	e->cap = c->queue_max ? c->queue_max : 4096;
	e->retention_days = c->retention_days ? c->retention_days : 14;
	e->account_max = c->account_max ? c->account_max : EVENTS_ACCOUNT_MAX_DEFAULT;
	e->ring = calloc(e->cap, sizeof(*e->ring));
	e->batch = calloc(e->cap, sizeof(*e->batch));
	if (!e->ring || !e->batch) {
		snprintf(err, errsz, "out of memory (queue_max %zu)", e->cap);
		free_store(e);
		return false;
	}
	if (c->pg_connection && c->pg_connection[0]) {
		snprintf(e->path, sizeof(e->path), "postgresql");
		if (!(e->pg = events_pg_new(c->pg_connection, c->pg_timeout_ms))) {
			snprintf(err, errsz, "out of memory");
			free_store(e);
			return false;
		}
	} else if (!open_file(e, err, errsz)) {
		free_store(e);
		return false;
	}
	if (pthread_create(&e->thread, NULL, writer_main, e) != 0) {
		snprintf(err, errsz, "cannot start the events writer: %s", strerror(errno));
		free_store(e);
		return false;
	}
	e->thread_started = true;
	*out = e;
	return true;
}

void events_close(struct events **pe)
{
	struct events *e = *pe;
	if (!e)
		return;
	*pe = NULL;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	if (e->thread_started)
		pthread_join(e->thread, NULL);
	log_event(LOG_INFO, "events_stopped", "file=%s written=%llu dropped=%llu", e->path, e->written,
		(unsigned long long)atomic_load(&e->dropped));
	free_store(e);
}
