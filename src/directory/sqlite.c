/* sqlite.c - the SQLite directory backend (backend.h): data_dir/directory.db in WAL
 * mode, so the server reads while the admin commands write.  Addresses arrive
 * validated and lower case from the front (directory.c). */
#include "directory/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The lookups on the mail path (every RCPT, every delivery, every login), prepared
 * once per handle: compiling the SQL each time cost several times the lookup itself
 * (about 40 us against 4 us warm, and far more with cold caches), on the critical path
 * of every recipient decision.  Everything else is rare and prepared when run. */
enum cached_query { Q_DOMAIN, Q_USER, Q_ALIAS, Q_SENDER_OWNED, Q_LOGIN_HASH, Q_COUNT };

static const char *const cached_sql[Q_COUNT] = {
	[Q_DOMAIN] = "SELECT 1 FROM domains WHERE name = lower(?1)",
	[Q_USER] = "SELECT address, local, domain, quota, limit_messages_per_hour, limit_recipients_per_day, admin, home_node "
		"FROM users "
		"WHERE local = lower(?1) AND domain = lower(?2)",
	[Q_ALIAS] = "SELECT target FROM aliases WHERE local = lower(?1) AND domain = lower(?2)",
	[Q_SENDER_OWNED] = "SELECT 1 FROM aliases WHERE address = ?2 AND target = ?1 "
		"UNION ALL SELECT 1 FROM sender_grants WHERE user = ?1 AND (address = ?2 OR address = ?3) LIMIT 1",
	/* One statement whatever the case, so the lookup costs the same too. */
	[Q_LOGIN_HASH] = "SELECT u.address, a.name, COALESCE(a.password_hash, u.password_hash) FROM users u "
		"LEFT JOIN app_passwords a ON a.user = u.address AND a.selector = ?2 WHERE u.address = lower(?1)",
};

struct dir_backend {
	sqlite3 *db;
	sqlite3_stmt *cached[Q_COUNT];   /* prepared on first use; used under the handle's mutex */
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS domains ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS users ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  local TEXT NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name),"
	"  password_hash TEXT NOT NULL,"
	"  quota INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS users_domain ON users(domain);"
	"CREATE TABLE IF NOT EXISTS aliases ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  local TEXT NOT NULL,"
	"  domain TEXT NOT NULL,"
	"  target TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS sender_grants ("
	"  user TEXT NOT NULL,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY (user, address));"
	"CREATE TABLE IF NOT EXISTS app_passwords ("
	"  user TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  password_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  last_used INTEGER NOT NULL DEFAULT 0,"
	"  selector TEXT,"
	"  PRIMARY KEY (user, name));";

/* Version 3: app passwords carry a selector (auth/password.h), so a login checks one
 * hash; rows from version 2 have none (legacy app passwords). */
static const char schema_v3[] =
	"CREATE UNIQUE INDEX IF NOT EXISTS app_passwords_selector ON app_passwords(user, selector);"
	"PRAGMA user_version=3;";

/* Version 4: users carry their own outbound limits (postern user limit); NULL is the
 * [limits] default. */
static const char schema_v4[] = "PRAGMA user_version=4;";

/* Version 5: users may be administrators (postern user admin): the web site's
 * /admin/ pages.  0 (no) for every existing row. */
static const char schema_v5[] = "PRAGMA user_version=5;";

/* Version 6: users may have a home node ([cluster]; NULL: none).  A single server
 * never sets it; the column keeps export/import and the two backends alike. */
static const char schema_v6[] = "PRAGMA user_version=6;";

static bool has_column(sqlite3 *db, const char *table, const char *column)
{
	sqlite3_stmt *st;
	bool found = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

/* A concurrent opener may have added the column between the check and ALTER. */
static bool add_column(sqlite3 *db, const char *table, const char *column, const char *alter, char **e)
{
	if (!has_column(db, table, column) && sqlite3_exec(db, alter, NULL, NULL, e) != SQLITE_OK
		&& !has_column(db, table, column))
		return false;
	sqlite3_free(*e);
	*e = NULL;
	return true;
}

static bool migrate(sqlite3 *db, char **e)
{
	return add_column(db, "app_passwords", "selector", "ALTER TABLE app_passwords ADD COLUMN selector TEXT", e)
		&& sqlite3_exec(db, schema_v3, NULL, NULL, e) == SQLITE_OK
		&& add_column(db, "users", "limit_messages_per_hour", "ALTER TABLE users ADD COLUMN limit_messages_per_hour INTEGER", e)
		&& add_column(db, "users", "limit_recipients_per_day", "ALTER TABLE users ADD COLUMN limit_recipients_per_day INTEGER", e)
		&& sqlite3_exec(db, schema_v4, NULL, NULL, e) == SQLITE_OK
		&& add_column(db, "users", "admin", "ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0", e)
		&& sqlite3_exec(db, schema_v5, NULL, NULL, e) == SQLITE_OK
		&& add_column(db, "users", "home_node", "ALTER TABLE users ADD COLUMN home_node TEXT", e)
		&& sqlite3_exec(db, schema_v6, NULL, NULL, e) == SQLITE_OK;
}

static enum dir_result fail(struct dir_backend *b, const char *what, char *err)
{
	snprintf(err, DIR_ERROR_MAX, "%s: %s", what, sqlite3_errmsg(b->db));
	return DIR_ERROR;
}

/* The database holds password hashes: it and its -wal and -shm files are the
 * owner's alone.  SQLite gives new -wal/-shm files the mode of the database file,
 * so creating the database 0600 ourselves (O_EXCL: never through a planted link)
 * before sqlite3_open covers all three without touching the process-wide umask,
 * which other threads' files depend on; files left by older versions are narrowed.
 * An existing file is never opened here: closing a descriptor drops every POSIX
 * lock this process holds on the file, which would break the locks of the other
 * connections (server threads) already open on it. */
static bool make_private(const char *path, bool create, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "cannot check %s: %s", path, strerror(errno));
			return false;
		}
		if (!create)
			return true;
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return false;
		}
		if (fd >= 0)
			close(fd);   /* new and empty: nobody holds a lock on it yet */
		return fd >= 0 || make_private(path, false, err, errlen);
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file (a link or a special file): remove it", path);
		return false;
	}
	if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 0700) != 0) {
		snprintf(err, errlen, "cannot make %s private (mode 0600): %s", path, strerror(errno));
		return false;
	}
	return true;
}

static bool make_database_private(const char *db_path, char *err, size_t errlen)
{
	char side[1200];
	if (!make_private(db_path, true, err, errlen))
		return false;
	snprintf(side, sizeof(side), "%s-wal", db_path);
	if (!make_private(side, false, err, errlen))
		return false;
	snprintf(side, sizeof(side), "%s-shm", db_path);
	return make_private(side, false, err, errlen);
}

static bool sq_open(struct dir_backend **bp, const char *data_dir, const struct directory_config *cfg, char *err,
	size_t errlen)
{
	(void)cfg;
	struct dir_backend *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	char path[1100];
	snprintf(path, sizeof(path), "%s/directory.db", data_dir);
	if (!make_database_private(path, err, errlen)) {
		free(b);
		return false;
	}
	if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, b->db ? sqlite3_errmsg(b->db) : "out of memory");
		sqlite3_close(b->db);
		free(b);
		return false;
	}
	sqlite3_busy_timeout(b->db, 5000);
	char *e = NULL;
	if (sqlite3_exec(b->db, schema, NULL, NULL, &e) != SQLITE_OK || !migrate(b->db, &e)) {
		snprintf(err, errlen, "cannot prepare %s: %s", path, e ? e : "unknown error");
		sqlite3_free(e);
		sqlite3_close(b->db);
		free(b);
		return false;
	}
	*bp = b;
	return true;
}

static void sq_close(struct dir_backend **bp)
{
	struct dir_backend *b = *bp;
	if (!b)
		return;
	for (int q = 0; q < Q_COUNT; q++)
		sqlite3_finalize(b->cached[q]);   /* sqlite3_close refuses a handle with live statements */
	sqlite3_close(b->db);
	free(b);
	*bp = NULL;
}

/* Run one statement with text parameters; returns the sqlite3_step result. */
static int exec_text(struct dir_backend *b, const char *sql, const char *p1, const char *p2, const char *p3,
	const char *p4)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, sql, -1, &st, NULL) != SQLITE_OK)
		return SQLITE_ERROR;
	const char *args[] = { p1, p2, p3, p4 };
	for (int i = 0; i < 4 && args[i]; i++)
		sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r;
}

/* A DELETE or UPDATE that has run: did it touch a row? */
static enum dir_result changed(struct dir_backend *b, int rc, const char *what, char *err)
{
	if (rc != SQLITE_DONE)
		return fail(b, what, err);
	return sqlite3_changes(b->db) ? DIR_OK : DIR_NOT_FOUND;
}

/* A SELECT stepped once: a row, none, or an error. */
static enum dir_result found(struct dir_backend *b, int rc, const char *what, char *err)
{
	if (rc == SQLITE_ROW)
		return DIR_OK;
	return rc == SQLITE_DONE ? DIR_NOT_FOUND : fail(b, what, err);
}

/* Start a cached lookup: the handle's own mutex (the handle is serialised,
 * SQLITE_OPEN_FULLMUTEX) is held from the bindings to lookup_end, since the decision
 * threads share a handle and a statement is a single cursor; it also keeps the error
 * message of a failure ours until it is copied.  NULL when the SQL cannot be prepared
 * (the mutex is still held: call lookup_end). */
static sqlite3_stmt *lookup_begin(struct dir_backend *b, enum cached_query q)
{
	sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
	if (!b->cached[q] && sqlite3_prepare_v3(b->db, cached_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &b->cached[q],
		NULL) != SQLITE_OK) {
		sqlite3_finalize(b->cached[q]);
		b->cached[q] = NULL;
	}
	return b->cached[q];
}

/* End a cached lookup: reset, so that no read transaction stays open (the admin
 * commands' writes and WAL checkpoints must not wait for us) and no binding points
 * into the caller's memory. */
static void lookup_end(struct dir_backend *b, sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
}

/* One cached lookup with up to three text parameters, stepped once: a row, none, or
 * an error (in err). */
static enum dir_result lookup_exists(struct dir_backend *b, enum cached_query q, const char *p1, const char *p2,
	const char *p3, const char *what, char *err)
{
	sqlite3_stmt *st = lookup_begin(b, q);
	enum dir_result res = DIR_ERROR;
	if (!st)
		fail(b, what, err);
	else {
		const char *args[] = { p1, p2, p3 };
		for (int i = 0; i < 3 && args[i]; i++)
			sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
		res = found(b, sqlite3_step(st), what, err);
	}
	lookup_end(b, st);
	return res;
}

/* --- domains ------------------------------------------------------------------ */

static enum dir_result sq_domain_add(struct dir_backend *b, const char *domain, char *err)
{
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	int r = exec_text(b, "INSERT INTO domains(name, created) VALUES(?1, CAST(?2 AS INTEGER))", domain, now, NULL, NULL);
	if (r == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return r == SQLITE_DONE ? DIR_OK : fail(b, "domain add", err);
}

static enum dir_result sq_domain_del(struct dir_backend *b, const char *domain, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT count(*) FROM users WHERE domain = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "domain del", err);
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	long long users = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (users != 0) {
		snprintf(err, DIR_ERROR_MAX, "the domain still has %lld users; delete them first", users);
		return DIR_EXISTS;
	}
	return changed(b, exec_text(b, "DELETE FROM domains WHERE name = ?1", domain, NULL, NULL, NULL), "domain del", err);
}

static enum dir_result sq_domain_lookup(struct dir_backend *b, const char *domain, char *err)
{
	return lookup_exists(b, Q_DOMAIN, domain, NULL, NULL, "domain lookup", err);
}

static enum dir_result sq_domain_list(struct dir_backend *b, void (*cb)(void *, const char *), void *arg, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT name FROM domains ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "domain list", err);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "domain list", err);
}

/* --- users -------------------------------------------------------------------- */

static enum dir_result sq_user_add(struct dir_backend *b, const char *address, const char *local, const char *domain,
	const char *hash, char *err)
{
	int r = exec_text(b, "INSERT INTO users(address, local, domain, password_hash, created) "
		"VALUES(?1, ?2, ?3, ?4, strftime('%s','now'))", address, local, domain, hash);
	if (r == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return r == SQLITE_DONE ? DIR_OK : fail(b, "user add", err);
}

static enum dir_result sq_user_del(struct dir_backend *b, const char *address, char *err)
{
	return changed(b, exec_text(b, "DELETE FROM users WHERE address = ?1", address, NULL, NULL, NULL), "user del", err);
}

static void fill_user(sqlite3_stmt *st, struct dir_user *u)
{
	snprintf(u->address, sizeof(u->address), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(u->local, sizeof(u->local), "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(u->domain, sizeof(u->domain), "%s", (const char *)sqlite3_column_text(st, 2));
	u->quota = (uint64_t)sqlite3_column_int64(st, 3);
	u->limit_messages_per_hour = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
	u->limit_recipients_per_day = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 5);
	u->admin = sqlite3_column_int(st, 6) != 0;
	const unsigned char *home = sqlite3_column_text(st, 7);
	snprintf(u->home_node, sizeof(u->home_node), "%s", home ? (const char *)home : "");
}

static enum dir_result sq_user_lookup(struct dir_backend *b, const char *local, const char *domain,
	struct dir_user *out, char *err)
{
	sqlite3_stmt *st = lookup_begin(b, Q_USER);
	enum dir_result res = DIR_ERROR;
	if (!st)
		fail(b, "user lookup", err);
	else {
		sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW && out)
			fill_user(st, out);
		res = found(b, r, "user lookup", err);
	}
	lookup_end(b, st);
	return res;
}

static enum dir_result sq_user_list(struct dir_backend *b, void (*cb)(void *, const struct dir_user *), void *arg,
	char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT address, local, domain, quota, limit_messages_per_hour, limit_recipients_per_day, "
		"admin, home_node FROM users ORDER BY domain, local",
		-1, &st, NULL) != SQLITE_OK)
		return fail(b, "user list", err);
	int r;
	struct dir_user u;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		fill_user(st, &u);
		cb(arg, &u);
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "user list", err);
}

static enum dir_result sq_user_quota_set(struct dir_backend *b, const char *address, uint64_t bytes, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "UPDATE users SET quota = ?2 WHERE address = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "user quota", err);
	sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)bytes);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return changed(b, r, "user quota", err);
}

static enum dir_result sq_user_limits_set(struct dir_backend *b, const char *address, int64_t messages_per_hour,
	int64_t recipients_per_day, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "UPDATE users SET limit_messages_per_hour = ?2, limit_recipients_per_day = ?3 "
		"WHERE address = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "user limit", err);
	sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	if (messages_per_hour < 0)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_int64(st, 2, (sqlite3_int64)messages_per_hour);
	if (recipients_per_day < 0)
		sqlite3_bind_null(st, 3);
	else
		sqlite3_bind_int64(st, 3, (sqlite3_int64)recipients_per_day);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return changed(b, r, "user limit", err);
}

static enum dir_result sq_user_admin_set(struct dir_backend *b, const char *address, bool admin, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "UPDATE users SET admin = ?2 WHERE address = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "user admin", err);
	sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, admin ? 1 : 0);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return changed(b, r, "user admin", err);
}

static enum dir_result sq_user_home_set(struct dir_backend *b, const char *address, const char *node, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "UPDATE users SET home_node = ?2 WHERE address = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "user home", err);
	sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	if (node[0])
		sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return changed(b, r, "user home", err);
}

/* --- aliases ------------------------------------------------------------------ */

static enum dir_result sq_alias_add(struct dir_backend *b, const char *alias, const char *local, const char *domain,
	const char *target, char *err)
{
	int rc = exec_text(b, "INSERT INTO aliases(address, local, domain, target) VALUES(?1, ?2, ?3, ?4)", alias, local,
		domain, target);
	if (rc == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(b, "alias add", err);
}

static enum dir_result sq_alias_del(struct dir_backend *b, const char *alias, char *err)
{
	return changed(b, exec_text(b, "DELETE FROM aliases WHERE address = ?1", alias, NULL, NULL, NULL), "alias del", err);
}

static enum dir_result sq_alias_lookup(struct dir_backend *b, const char *local, const char *domain, char *target,
	size_t targetsz, char *err)
{
	sqlite3_stmt *st = lookup_begin(b, Q_ALIAS);
	enum dir_result res = DIR_ERROR;
	if (!st)
		fail(b, "alias lookup", err);
	else {
		sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW && target)
			snprintf(target, targetsz, "%s", (const char *)sqlite3_column_text(st, 0));
		res = found(b, r, "alias lookup", err);
	}
	lookup_end(b, st);
	return res;
}

static enum dir_result sq_alias_list(struct dir_backend *b, void (*cb)(void *, const char *, const char *), void *arg,
	char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT address, target FROM aliases ORDER BY domain, local", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "alias list", err);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "alias list", err);
}

/* --- sender grants ------------------------------------------------------------ */

static enum dir_result sq_sender_allow(struct dir_backend *b, const char *user, const char *address, char *err)
{
	int rc = exec_text(b, "INSERT INTO sender_grants(user, address) VALUES(?1, ?2)", user, address, NULL, NULL);
	if (rc == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(b, "sender allow", err);
}

static enum dir_result sq_sender_deny(struct dir_backend *b, const char *user, const char *address, char *err)
{
	return changed(b, exec_text(b, "DELETE FROM sender_grants WHERE user = ?1 AND address = ?2", user, address, NULL,
		NULL), "sender deny", err);
}

static enum dir_result sq_sender_list(struct dir_backend *b, const char *user, void (*cb)(void *, const char *),
	void *arg, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT address FROM sender_grants WHERE user = lower(?1) "
		"UNION SELECT address FROM aliases WHERE target = lower(?1) ORDER BY 1", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "sender list", err);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "sender list", err);
}

static enum dir_result sq_sender_owned(struct dir_backend *b, const char *user, const char *address,
	const char *at_domain, char *err)
{
	return lookup_exists(b, Q_SENDER_OWNED, user, address, at_domain, "sender check", err);
}

/* --- app passwords and login hashes ------------------------------------------- */

static enum dir_result sq_app_password_add(struct dir_backend *b, const char *user, const char *name,
	const char *selector, const char *hash, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "INSERT INTO app_passwords(user, name, password_hash, created, selector) "
		"VALUES(?1, ?2, ?3, strftime('%s','now'), ?4)", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "app-password add", err);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	if (selector)
		sqlite3_bind_text(st, 4, selector, -1, SQLITE_STATIC);   /* else NULL: a legacy row */
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(b, "app-password add", err);
}

static enum dir_result sq_app_password_revoke(struct dir_backend *b, const char *user, const char *name, char *err)
{
	return changed(b, exec_text(b, "DELETE FROM app_passwords WHERE user = ?1 AND name = ?2", user, name, NULL, NULL),
		"app-password revoke", err);
}

static enum dir_result sq_app_password_selector_free(struct dir_backend *b, const char *user, const char *selector,
	char *err)
{
	int rc = exec_text(b, "SELECT 1 FROM app_passwords WHERE user = lower(?1) AND selector = ?2", user, selector, NULL,
		NULL);
	if (rc == SQLITE_ROW)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(b, "app-password selector", err);
}

static enum dir_result sq_app_password_list(struct dir_backend *b, const char *user,
	void (*cb)(void *, const char *, long long, long long, bool), void *arg, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT name, created, last_used, selector IS NULL FROM app_passwords "
		"WHERE user = lower(?1) ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return fail(b, "app-password list", err);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
			sqlite3_column_int(st, 3) != 0);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "app-password list", err);
}

static enum dir_result sq_app_password_used(struct dir_backend *b, const char *user, const char *name, char *err)
{
	int rc = exec_text(b, "UPDATE app_passwords SET last_used = strftime('%s','now') WHERE user = lower(?1) AND name = ?2",
		user, name, NULL, NULL);
	return rc == SQLITE_DONE ? DIR_OK : fail(b, "app-password use", err);
}

static void copy_column(sqlite3_stmt *st, int col, char *out, size_t outsz)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	snprintf(out, outsz, "%s", v ? (const char *)v : "");
}

static enum dir_result sq_login_hash(struct dir_backend *b, const char *user, const char *selector,
	struct dir_login_hash *out, char *err)
{
	sqlite3_stmt *st = lookup_begin(b, Q_LOGIN_HASH);
	enum dir_result res = DIR_ERROR;
	if (!st)
		fail(b, "password lookup", err);
	else {
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, selector ? selector : "", -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			copy_column(st, 0, out->canonical, sizeof(out->canonical));
			copy_column(st, 1, out->app_name, sizeof(out->app_name));
			copy_column(st, 2, out->hash, sizeof(out->hash));
		}
		res = found(b, r, "password lookup", err);
	}
	lookup_end(b, st);
	return res;
}

static enum dir_result sq_legacy_app_hashes(struct dir_backend *b, const char *user,
	bool (*cb)(void *arg, const char *name, const char *hash), void *arg, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT name, password_hash FROM app_passwords WHERE user = lower(?1) AND selector IS NULL",
		-1, &st, NULL) != SQLITE_OK)
		return fail(b, "password lookup", err);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1)))
			break;
	sqlite3_finalize(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? DIR_OK : fail(b, "password lookup", err);
}

static enum dir_result sq_grant_dump(struct dir_backend *b, void (*cb)(void *, const char *, const char *), void *arg,
	char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT user, address FROM sender_grants ORDER BY user, address", -1, &st, NULL)
		!= SQLITE_OK)
		return fail(b, "grant list", err);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "grant list", err);
}

static enum dir_result sq_app_password_dump(struct dir_backend *b,
	void (*cb)(void *, const char *, const char *, const char *, const char *), void *arg, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(b->db, "SELECT user, name, selector, password_hash FROM app_passwords ORDER BY user, name",
		-1, &st, NULL) != SQLITE_OK)
		return fail(b, "app-password list", err);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
			(const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(b, "app-password list", err);
}

static long long sq_legacy_app_password_count(struct dir_backend *b)
{
	sqlite3_stmt *st;
	long long n = -1;
	if (sqlite3_prepare_v2(b->db, "SELECT count(*) FROM app_passwords WHERE selector IS NULL", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

const struct directory_backend_ops directory_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.domain_add = sq_domain_add,
	.domain_del = sq_domain_del,
	.domain_lookup = sq_domain_lookup,
	.domain_list = sq_domain_list,
	.user_add = sq_user_add,
	.user_del = sq_user_del,
	.user_lookup = sq_user_lookup,
	.user_list = sq_user_list,
	.user_quota_set = sq_user_quota_set,
	.user_limits_set = sq_user_limits_set,
	.user_admin_set = sq_user_admin_set,
	.user_home_set = sq_user_home_set,
	.alias_add = sq_alias_add,
	.alias_del = sq_alias_del,
	.alias_lookup = sq_alias_lookup,
	.alias_list = sq_alias_list,
	.sender_allow = sq_sender_allow,
	.sender_deny = sq_sender_deny,
	.sender_list = sq_sender_list,
	.sender_owned = sq_sender_owned,
	.app_password_add = sq_app_password_add,
	.app_password_selector_free = sq_app_password_selector_free,
	.app_password_revoke = sq_app_password_revoke,
	.app_password_list = sq_app_password_list,
	.app_password_used = sq_app_password_used,
	.login_hash = sq_login_hash,
	.legacy_app_hashes = sq_legacy_app_hashes,
	.legacy_app_password_count = sq_legacy_app_password_count,
	.grant_dump = sq_grant_dump,
	.app_password_dump = sq_app_password_dump,
};
