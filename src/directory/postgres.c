/* postgres.c - the PostgreSQL directory backend (backend.h), for several nodes that
 * must see one set of users at once ([directory] backend = postgresql).
 *
 * Every call runs with a deadline ([directory] timeout, connecting included): the
 * callers are worker threads whose mail waits on the answer, and a database that is
 * slow or gone must turn into a temporary refusal that says so (DESIGN invariant 5),
 * never a thread stuck in a read.  So a query is sent with PQsendQueryParams /
 * PQsendQueryPrepared and its answer awaited with poll() on the connection's socket
 * until the deadline; past it the connection is dropped (the server's own
 * statement_timeout, set to the same value, ends the query there).  Every query is
 * parameterised.  A handle keeps up to [directory] pool connections, made on first
 * need; a connection that broke (the server restarted) is replaced, and a read that
 * failed on it is tried once more on a fresh one.  The lookups on the mail path are
 * prepared once per connection.
 *
 * The schema is versioned in postern_schema and brought up to date under an advisory
 * lock (several nodes may start at once): by `postern directory migrate`, and by the
 * first connection of a handle when the tables are missing or older. */
#include "directory/postgres_int.h"
#include "directory/directory.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Migrations, in order; version N is the state after migrations[N-1].  The layout is
 * SQLite's (sqlite.c), with "account" where SQLite says "user" (a reserved word here),
 * and like SQLite's no foreign key from users to domains: a user of a domain that is
 * local by [server] local_domains needs no domains row. */
static const char *const migrations[] = {
	"CREATE TABLE domains (name TEXT PRIMARY KEY, created BIGINT NOT NULL);"
	"CREATE TABLE users (address TEXT PRIMARY KEY, local TEXT NOT NULL,"
	"  domain TEXT NOT NULL, password_hash TEXT NOT NULL,"
	"  quota BIGINT NOT NULL DEFAULT 0, created BIGINT NOT NULL,"
	"  limit_messages_per_hour BIGINT, limit_recipients_per_day BIGINT,"
	"  admin BOOLEAN NOT NULL DEFAULT false);"
	"CREATE INDEX users_domain_local ON users(domain, local);"
	"CREATE TABLE aliases (address TEXT PRIMARY KEY, local TEXT NOT NULL, domain TEXT NOT NULL,"
	"  target TEXT NOT NULL);"
	"CREATE INDEX aliases_domain_local ON aliases(domain, local);"
	"CREATE INDEX aliases_target ON aliases(target);"
	"CREATE TABLE sender_grants (account TEXT NOT NULL, address TEXT NOT NULL, PRIMARY KEY (account, address));"
	"CREATE TABLE app_passwords (account TEXT NOT NULL, name TEXT NOT NULL, password_hash TEXT NOT NULL,"
	"  created BIGINT NOT NULL, last_used BIGINT NOT NULL DEFAULT 0, selector TEXT,"
	"  PRIMARY KEY (account, name));"
	"CREATE UNIQUE INDEX app_passwords_selector ON app_passwords(account, selector);",
	/* 2: several nodes ([cluster]): a user's home node, and the node registry, one row
	 * per node refreshed by its heartbeat (directory.h struct dir_node). */
	"ALTER TABLE users ADD COLUMN home_node TEXT;"
	"CREATE TABLE postern_nodes (name TEXT PRIMARY KEY, started BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
	"  lmtp TEXT, control TEXT, pop3 TEXT, imap TEXT,"
	"  queue_size BIGINT NOT NULL DEFAULT 0, oldest_queued BIGINT NOT NULL DEFAULT 0);",
	/* 3: events/pg.c: the per-account event store shared by the nodes (events/store.c's
	 * SQLite table; accounts and senders compared by lower(), as indexed). */
	"CREATE TABLE postern_events (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, kind INTEGER NOT NULL,"
	"  account TEXT NOT NULL DEFAULT '', sender TEXT NOT NULL DEFAULT '', rcpt TEXT NOT NULL DEFAULT '',"
	"  qid TEXT NOT NULL DEFAULT '', client_addr TEXT NOT NULL DEFAULT '', proto TEXT NOT NULL DEFAULT '',"
	"  listener TEXT NOT NULL DEFAULT '', cmd TEXT NOT NULL DEFAULT '', code INTEGER NOT NULL DEFAULT 0,"
	"  enh TEXT NOT NULL DEFAULT '', cause_id TEXT NOT NULL DEFAULT '', ref TEXT NOT NULL DEFAULT '',"
	"  text TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '', where_to TEXT NOT NULL DEFAULT '',"
	"  next_try BIGINT NOT NULL DEFAULT 0, n_rcpts BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX postern_events_by_account ON postern_events(lower(account), id);"
	"CREATE INDEX postern_events_by_sender ON postern_events(lower(sender), id);"
	"CREATE INDEX postern_events_by_qid ON postern_events(qid, kind);"
	"CREATE INDEX postern_events_by_time ON postern_events(at, kind);",
	/* 4: postgres_dkim.c: the DKIM keys every node signs with; revision (from the
	 * sequence, on insert and retire) tells the signers' refresh that something moved. */
	"CREATE SEQUENCE postern_dkim_revision;"
	"CREATE TABLE postern_dkim_keys (domain TEXT NOT NULL, selector TEXT NOT NULL, algorithm TEXT NOT NULL,"
	"  active BOOLEAN NOT NULL DEFAULT true, created BIGINT NOT NULL, retired BIGINT,"
	"  private_key TEXT NOT NULL, revision BIGINT NOT NULL DEFAULT nextval('postern_dkim_revision'),"
	"  PRIMARY KEY (domain, selector));",
	/* 5: the state feed (postgres_state.c): what each node publishes for the others. */
	"CREATE TABLE postern_state_feed (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, node TEXT NOT NULL,"
	"  run TEXT NOT NULL, kind TEXT NOT NULL, ip TEXT NOT NULL, account TEXT NOT NULL, domain TEXT NOT NULL,"
	"  n BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX postern_state_feed_at ON postern_state_feed(at);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const struct { const char *name, *sql; int nparams; } prepared_sql[P_COUNT] = {
	[P_DOMAIN] = { "p_domain", "SELECT 1 FROM domains WHERE name = lower($1)", 1 },
	[P_USER] = { "p_user", "SELECT address, local, domain, quota, limit_messages_per_hour, limit_recipients_per_day, "
		"admin, home_node FROM users WHERE local = lower($1) AND domain = lower($2)", 2 },
	[P_ALIAS] = { "p_alias", "SELECT target FROM aliases WHERE local = lower($1) AND domain = lower($2)", 2 },
	[P_SENDER_OWNED] = { "p_sender_owned", "SELECT 1 FROM aliases WHERE address = $2 AND target = $1 "
		"UNION ALL SELECT 1 FROM sender_grants WHERE account = $1 AND (address = $2 OR address = $3) LIMIT 1", 3 },
	/* One statement whatever the case, so the lookup costs the same too. */
	[P_LOGIN_HASH] = { "p_login_hash", "SELECT u.address, a.name, COALESCE(a.password_hash, u.password_hash) "
		"FROM users u LEFT JOIN app_passwords a ON a.account = u.address AND a.selector = $2 "
		"WHERE u.address = lower($1)", 2 },
};

struct pg_slot {
	PGconn *conn;         /* NULL: not connected (yet, or again) */
	bool busy;            /* taken by a call */
};

struct dir_backend {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct pg_slot *slots;    /* pool entries */
	unsigned pool;
	unsigned timeout_ms;
	char conninfo[1024];
};

/* --- deadlines and waiting --------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the socket is ready for `events` or the deadline passes: 1 ready, 0
 * the deadline, -1 an error. */
static int wait_socket(PGconn *c, short events, long long deadline)
{
	int fd = PQsocket(c);
	if (fd < 0)
		return -1;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* The first line of libpq's message, for an error that reaches a client. */
static void pq_reason(PGconn *c, char *out, size_t outsz)
{
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	size_t n = strcspn(m, "\n");
	snprintf(out, outsz, "%.*s", (int)n, m);
}

/* The answer to what was sent, by the deadline: the last result (the caller clears
 * it), or NULL with err set (a timeout, a broken connection). */
static PGresult *await_result(struct dir_backend *b, PGconn *c, long long deadline, char *err)
{
	while (PQisBusy(c)) {
		int w = wait_socket(c, POLLIN, deadline);
		if (w == 0) {
			snprintf(err, DIR_ERROR_MAX, "the directory database (PostgreSQL) did not answer within %u ms",
				b->timeout_ms);
			return NULL;
		}
		if (w < 0 || !PQconsumeInput(c)) {
			char why[160];
			pq_reason(c, why, sizeof(why));
			snprintf(err, DIR_ERROR_MAX, "the directory database (PostgreSQL) connection failed: %s", why);
			return NULL;
		}
	}
	PGresult *last = NULL, *r;
	while ((r = PQgetResult(c)) != NULL) {
		PQclear(last);
		last = r;
	}
	if (!last) {
		char why[160];
		pq_reason(c, why, sizeof(why));
		snprintf(err, DIR_ERROR_MAX, "the directory database (PostgreSQL) gave no answer: %s", why);
	}
	return last;
}

/* --- connections -------------------------------------------------------------------- */

static bool result_ok(PGresult *r)
{
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* Send one statement without parameters and wait for it: true when it worked. */
static bool simple(struct dir_backend *b, PGconn *c, const char *sql, long long deadline, char *err)
{
	if (!PQsendQuery(c, sql)) {
		pq_reason(c, err, DIR_ERROR_MAX);
		return false;
	}
	PGresult *r = await_result(b, c, deadline, err);
	bool ok = result_ok(r);
	if (r && !ok)
		snprintf(err, DIR_ERROR_MAX, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static bool prepare_lookups(struct dir_backend *b, PGconn *c, long long deadline, char *err)
{
	for (int i = 0; i < P_COUNT; i++) {
		if (!PQsendPrepare(c, prepared_sql[i].name, prepared_sql[i].sql, prepared_sql[i].nparams, NULL)) {
			pq_reason(c, err, DIR_ERROR_MAX);
			return false;
		}
		PGresult *r = await_result(b, c, deadline, err);
		bool ok = result_ok(r);
		if (r && !ok)
			snprintf(err, DIR_ERROR_MAX, "preparing %s: %s", prepared_sql[i].name, PQresultErrorMessage(r));
		PQclear(r);
		if (!ok)
			return false;
	}
	return true;
}

static int schema_version(struct dir_backend *b, PGconn *c, long long deadline, char *err);
static bool run_migrations(struct dir_backend *b, PGconn *c, int *from, long long deadline, char *err);

/* Connect by the deadline (PQconnectStart/PQconnectPoll: libpq's own connect would
 * wait as long as the network lets it), set the server-side statement timeout, bring
 * the schema up to date if it is behind, and prepare the lookups. */
static PGconn *pg_connect(struct dir_backend *b, long long deadline, char *err)
{
	PGconn *c = PQconnectStart(b->conninfo);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		int w = wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (w <= 0) {
			snprintf(err, DIR_ERROR_MAX, "cannot reach the directory database (PostgreSQL) within %u ms", b->timeout_ms);
			PQfinish(c);
			return NULL;
		}
		st = PQconnectPoll(c);
	}
	if (!c || PQstatus(c) != CONNECTION_OK) {
		char why[200];
		pq_reason(c, why, sizeof(why));
		snprintf(err, DIR_ERROR_MAX, "cannot connect to the directory database (PostgreSQL): %s", why);
		PQfinish(c);
		return NULL;
	}
	char set[96];
	/* The server's limit a little after ours: our deadline gives the words, the
	 * server's ends a query whose connection we dropped. */
	snprintf(set, sizeof(set), "SET statement_timeout = %u; SET application_name = 'postern'", b->timeout_ms + 500);
	int from = 0;
	if (!simple(b, c, set, deadline, err) || schema_version(b, c, deadline, err) < 0
		|| !run_migrations(b, c, &from, deadline, err) || !prepare_lookups(b, c, deadline, err)) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* A free slot (connected or not) by the deadline, marked busy; NULL with err when the
 * pool stayed full. */
static struct pg_slot *slot_take(struct dir_backend *b, long long deadline, char *err)
{
	pthread_mutex_lock(&b->lock);
	for (;;) {
		struct pg_slot *freeslot = NULL;
		for (unsigned i = 0; i < b->pool; i++) {
			if (b->slots[i].busy)
				continue;
			if (!freeslot || (b->slots[i].conn && !freeslot->conn))
				freeslot = &b->slots[i];   /* a connected one first */
		}
		if (freeslot) {
			freeslot->busy = true;
			pthread_mutex_unlock(&b->lock);
			return freeslot;
		}
		long long at = deadline;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long left = at - now_ms();
		if (left <= 0)
			break;
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&b->freed, &b->lock, &ts);
	}
	pthread_mutex_unlock(&b->lock);
	snprintf(err, DIR_ERROR_MAX, "all %u connections to the directory database (PostgreSQL) stayed busy until the "
		"request's deadline ([directory] timeout %u ms; raise [directory] pool)", b->pool, b->timeout_ms);
	return NULL;
}

static void slot_give(struct dir_backend *b, struct pg_slot *s)
{
	pthread_mutex_lock(&b->lock);
	s->busy = false;
	pthread_cond_signal(&b->freed);
	pthread_mutex_unlock(&b->lock);
}

/* --- queries ------------------------------------------------------------------------ */

static PGresult *send_and_wait(struct dir_backend *b, PGconn *c, const struct pg_query *q, long long deadline,
	char *err)
{
	int sent = q->prepared < P_COUNT
		? PQsendQueryPrepared(c, prepared_sql[q->prepared].name, q->n, q->params, NULL, NULL, 0)
		: PQsendQueryParams(c, q->sql, q->n, NULL, q->params, NULL, NULL, 0);
	if (!sent) {
		char why[160];
		pq_reason(c, why, sizeof(why));
		snprintf(err, DIR_ERROR_MAX, "the directory database (PostgreSQL) connection failed: %s", why);
		return NULL;
	}
	return await_result(b, c, deadline, err);
}

/* Run q on a pooled connection by the deadline: the result (the caller clears it;
 * its status may still be an SQL error) or NULL with err in words. */
static PGresult *pg_run(struct dir_backend *b, const struct pg_query *q, char *err)
{
	long long start = now_ms(), deadline = start + b->timeout_ms;
	long long asked = directory_thread_deadline_get();   /* the request's own, when it queued first */
	if (asked && asked < deadline)
		deadline = asked;
	if (deadline <= start) {
		snprintf(err, DIR_ERROR_MAX, "the request waited %u ms for a free worker thread before it could ask the "
			"directory database (PostgreSQL) (raise [directory] timeout, or find what keeps the threads busy)",
			b->timeout_ms);
		return NULL;
	}
	struct pg_slot *s = slot_take(b, deadline, err);
	if (!s)
		return NULL;
	PGresult *r = NULL;
	for (int attempt = 0; attempt < 2 && !r; attempt++) {
		bool fresh = !s->conn;
		if (!s->conn && !(s->conn = pg_connect(b, deadline, err)))
			break;
		r = send_and_wait(b, s->conn, q, deadline, err);
		if (!r || PQstatus(s->conn) != CONNECTION_OK) {
			/* Timed out or broken: this connection's state is unknown; never reuse it.
			 * Only a read that met a connection broken since its last use (the
			 * database restarted) is tried again, and only in the time left. */
			bool broken = PQstatus(s->conn) == CONNECTION_BAD;
			PQclear(r);
			r = NULL;
			PQfinish(s->conn);
			s->conn = NULL;
			if (fresh || !q->retry || !broken || now_ms() >= deadline)
				break;
		}
	}
	slot_give(b, s);
	return r;
}

/* The SQLSTATE of a failed result ("" when none). */
static const char *sqlstate(const PGresult *r)
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return s ? s : "";
}

static enum dir_result sql_fail(PGresult *r, const char *what, char *err)
{
	if (strcmp(sqlstate(r), "57014") == 0) {   /* query_canceled: statement_timeout */
		snprintf(err, DIR_ERROR_MAX, "%s: the directory database (PostgreSQL) did not answer in time", what);
		return DIR_ERROR;
	}
	const char *m = r ? PQresultErrorMessage(r) : "";
	size_t n = strcspn(m, "\n");
	snprintf(err, DIR_ERROR_MAX, "%s: %.*s", what, (int)n, m);
	return DIR_ERROR;
}

/* A statement run for its effect: DIR_EXISTS on a unique violation (23505), DIR_NOT_FOUND
 * when `must_touch` and no row changed. */
enum dir_result pg_exec(struct dir_backend *b, const struct pg_query *q, bool must_touch, const char *what,
	char *err)
{
	PGresult *r = pg_run(b, q, err);
	if (!r)
		return DIR_ERROR;
	enum dir_result res = DIR_OK;
	if (!result_ok(r))
		res = strcmp(sqlstate(r), "23505") == 0 ? DIR_EXISTS : sql_fail(r, what, err);
	else if (must_touch && strcmp(PQcmdTuples(r), "0") == 0)
		res = DIR_NOT_FOUND;
	PQclear(r);
	return res;
}

/* A SELECT: DIR_OK with the result kept in *out (the caller clears it) when a row came,
 * DIR_NOT_FOUND when none. */
enum dir_result pg_select(struct dir_backend *b, const struct pg_query *q, PGresult **out, const char *what,
	char *err)
{
	*out = NULL;
	PGresult *r = pg_run(b, q, err);
	if (!r)
		return DIR_ERROR;
	if (!result_ok(r)) {
		sql_fail(r, what, err);
		PQclear(r);
		return DIR_ERROR;
	}
	*out = r;
	return PQntuples(r) > 0 ? DIR_OK : DIR_NOT_FOUND;
}

enum dir_result pg_exists(struct dir_backend *b, const struct pg_query *q, const char *what, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, q, &r, what, err);
	PQclear(r);
	return res;
}

/* --- schema ------------------------------------------------------------------------- */

/* One integer from a query of one row and column (NULL counts as 0), or -1 with err. */
static int int_query(struct dir_backend *b, PGconn *c, const char *sql, long long deadline, char *err)
{
	const struct pg_query q = { .prepared = P_COUNT, .sql = sql, .n = 0 };
	PGresult *r = send_and_wait(b, c, &q, deadline, err);
	int v = -1;
	if (r && result_ok(r) && PQntuples(r) == 1)
		v = PQgetisnull(r, 0, 0) ? 0 : atoi(PQgetvalue(r, 0, 0));
	else if (r)
		sql_fail(r, "reading the directory schema version", err);
	PQclear(r);
	return v;
}

/* The schema's version (0: no Postern tables yet), or -1 with err. */
static int schema_version(struct dir_backend *b, PGconn *c, long long deadline, char *err)
{
	int exists = int_query(b, c, "SELECT (to_regclass('postern_schema') IS NOT NULL)::int", deadline, err);
	if (exists <= 0)
		return exists;
	return int_query(b, c, "SELECT max(version) FROM postern_schema", deadline, err);
}

/* Apply the missing migrations in one transaction under an advisory lock, so that
 * nodes starting together do not apply one twice.  *from: the version found. */
static bool run_migrations(struct dir_backend *b, PGconn *c, int *from, long long deadline, char *err)
{
	*from = schema_version(b, c, deadline, err);
	if (*from < 0)
		return false;
	if (*from >= SCHEMA_VERSION)
		return true;
	if (!simple(b, c, "BEGIN; SELECT pg_advisory_xact_lock(7261636); "
		"CREATE TABLE IF NOT EXISTS postern_schema (version INTEGER NOT NULL, applied BIGINT NOT NULL)", deadline, err))
		goto fail;
	int v = schema_version(b, c, deadline, err);   /* again, under the lock */
	if (v < 0)
		goto fail;
	for (; v < SCHEMA_VERSION; v++) {
		char mark[160];
		snprintf(mark, sizeof(mark), "INSERT INTO postern_schema VALUES (%d, extract(epoch from now())::bigint)", v + 1);
		if (!simple(b, c, migrations[v], deadline, err) || !simple(b, c, mark, deadline, err))
			goto fail;
	}
	if (simple(b, c, "COMMIT", deadline, err))
		return true;
fail:
	{
		char keep[DIR_ERROR_MAX - 48];
		snprintf(keep, sizeof(keep), "%s", err);
		simple(b, c, "ROLLBACK", deadline, err);
		snprintf(err, DIR_ERROR_MAX, "bringing the directory schema to version %d: %s", SCHEMA_VERSION, keep);
	}
	return false;
}

bool pg_migrate(struct dir_backend *b, int *from, int *to, char *errout, size_t errlen)
{
	char err[DIR_ERROR_MAX] = "";
	long long deadline = now_ms() + b->timeout_ms;
	PGconn *c = PQconnectdb(b->conninfo);   /* the admin's command: its own connection */
	bool ok = false;
	if (!c || PQstatus(c) != CONNECTION_OK)
		pq_reason(c, err, sizeof(err));
	else if (run_migrations(b, c, from, deadline, err))
		ok = (*to = schema_version(b, c, deadline, err)) >= 0;
	PQfinish(c);
	if (!ok)
		snprintf(errout, errlen, "%s", err);
	return ok;
}

/* --- open and close ----------------------------------------------------------------- */

bool pg_open(struct dir_backend **bp, const char *data_dir, const struct directory_config *cfg, char *err,
	size_t errlen)
{
	(void)data_dir;
	struct dir_backend *b = calloc(1, sizeof(*b));
	if (b)
		b->slots = calloc(cfg->pool, sizeof(*b->slots));
	if (!b || !b->slots) {
		free(b);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->freed, NULL);
	b->pool = cfg->pool;
	b->timeout_ms = cfg->timeout_ms;
	snprintf(b->conninfo, sizeof(b->conninfo), "%s", cfg->connection);
	*bp = b;
	return true;
}

void pg_close(struct dir_backend **bp)
{
	struct dir_backend *b = *bp;
	if (!b)
		return;
	for (unsigned i = 0; i < b->pool; i++)
		PQfinish(b->slots[i].conn);
	pthread_cond_destroy(&b->freed);
	pthread_mutex_destroy(&b->lock);
	free(b->slots);
	free(b);
	*bp = NULL;
}

