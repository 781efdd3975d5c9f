/* directory.c - domains and users in SQLite (see directory.h). */
#include "directory/directory.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"

struct directory {
	sqlite3 *db;
	char err[256];
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

static bool has_selector_column(sqlite3 *db)
{
	sqlite3_stmt *st;
	bool found = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('app_passwords') WHERE name = 'selector'", -1, &st,
		NULL) != SQLITE_OK)
		return false;
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

static bool migrate(sqlite3 *db, char **e)
{
	/* A concurrent opener may have added the column between the check and ALTER. */
	if (!has_selector_column(db) &&
		sqlite3_exec(db, "ALTER TABLE app_passwords ADD COLUMN selector TEXT", NULL, NULL, e) != SQLITE_OK &&
		!has_selector_column(db))
		return false;
	sqlite3_free(*e);
	*e = NULL;
	return sqlite3_exec(db, schema_v3, NULL, NULL, e) == SQLITE_OK;
}

static enum dir_result fail(struct directory *d, const char *what)
{
	snprintf(d->err, sizeof(d->err), "%s: %s", what, sqlite3_errmsg(d->db));
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

bool directory_data_dir_exposed(const char *data_dir, char *warn, size_t warnsz)
{
	struct stat st;
	if (stat(data_dir, &st) != 0 || (st.st_mode & 007) == 0)
		return false;
	snprintf(warn, warnsz, "the data directory %s has mode %04o: other users can %s it; it holds the password "
		"hashes, the queue and the mailboxes; run: chmod o-rwx %s", data_dir, (unsigned)(st.st_mode & 07777),
		(st.st_mode & 004) ? "list" : "enter", data_dir);
	return true;
}

bool directory_open(struct directory **dp, const char *data_dir, char *err, size_t errlen)
{
	if (mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", data_dir, strerror(errno));
		return false;
	}
	struct directory *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	char path[1100];
	snprintf(path, sizeof(path), "%s/directory.db", data_dir);
	if (!make_database_private(path, err, errlen)) {
		free(d);
		return false;
	}
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, d->db ? sqlite3_errmsg(d->db) : "out of memory");
		sqlite3_close(d->db);
		free(d);
		return false;
	}
	sqlite3_busy_timeout(d->db, 5000);
	char *e = NULL;
	if (sqlite3_exec(d->db, schema, NULL, NULL, &e) != SQLITE_OK || !migrate(d->db, &e)) {
		snprintf(err, errlen, "cannot prepare %s: %s", path, e ? e : "unknown error");
		sqlite3_free(e);
		sqlite3_close(d->db);
		free(d);
		return false;
	}
	*dp = d;
	return true;
}

void directory_close(struct directory **dp)
{
	struct directory *d = *dp;
	if (!d)
		return;
	sqlite3_close(d->db);
	free(d);
	*dp = NULL;
}

const char *directory_error(const struct directory *d)
{
	return d->err;
}

bool directory_local_part_valid(const char *local)
{
	size_t n = strlen(local);
	if (n == 0 || n > 64 || local[0] == '.' || local[0] == '-' || local[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = local[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
		if (c == '.' && local[i + 1] == '.')
			return false;
	}
	return true;
}

bool directory_domain_valid(char *domain)
{
	size_t n = strlen(domain);
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = domain[i];
		if (c == '.') {
			if (label == 0 || domain[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		if ((c == '-' && label == 0) || ++label > 63)
			return false;
	}
	if (label == 0 || domain[n - 1] == '-')
		return false;
	ascii_lower(domain);
	return true;
}

/* Run one statement with text parameters; returns the sqlite3_step result. */
static int exec_text(struct directory *d, const char *sql, const char *a, const char *b,
	const char *c, const char *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
		return SQLITE_ERROR;
	const char *args[] = { a, b, c, e };
	for (int i = 0; i < 4 && args[i]; i++)
		sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r;
}

enum dir_result directory_domain_add(struct directory *d, const char *domain)
{
	char dom[256];
	if (snprintf(dom, sizeof(dom), "%s", domain) >= (int)sizeof(dom) || !directory_domain_valid(dom))
		return DIR_INVALID;
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	int r = exec_text(d, "INSERT INTO domains(name, created) VALUES(?1, CAST(?2 AS INTEGER))", dom, now, NULL, NULL);
	if (r == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return r == SQLITE_DONE ? DIR_OK : fail(d, "domain add");
}

enum dir_result directory_domain_del(struct directory *d, const char *domain)
{
	char dom[256];
	if (snprintf(dom, sizeof(dom), "%s", domain) >= (int)sizeof(dom) || !directory_domain_valid(dom))
		return DIR_INVALID;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM users WHERE domain = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "domain del");
	sqlite3_bind_text(st, 1, dom, -1, SQLITE_STATIC);
	long long users = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (users != 0) {
		snprintf(d->err, sizeof(d->err), "the domain still has %lld users; delete them first", users);
		return DIR_EXISTS;
	}
	if (exec_text(d, "DELETE FROM domains WHERE name = ?1", dom, NULL, NULL, NULL) != SQLITE_DONE)
		return fail(d, "domain del");
	return sqlite3_changes(d->db) ? DIR_OK : DIR_NOT_FOUND;
}

enum dir_result directory_domain_exists(struct directory *d, const char *domain)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT 1 FROM domains WHERE name = lower(?1)", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "domain lookup");
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r == SQLITE_ROW)
		return DIR_OK;
	return r == SQLITE_DONE ? DIR_NOT_FOUND : fail(d, "domain lookup");
}

enum dir_result directory_domain_list(struct directory *d, void (*cb)(void *, const char *), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT name FROM domains ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "domain list");
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(d, "domain list");
}

/* Split and normalise "local@domain". */
static bool split_address(const char *address, char *local, size_t lsz, char *domain, size_t dsz)
{
	const char *at = strrchr(address, '@');
	if (!at || at == address)
		return false;
	size_t ln = (size_t)(at - address);
	if (ln >= lsz || snprintf(domain, dsz, "%s", at + 1) >= (int)dsz)
		return false;
	memcpy(local, address, ln);
	local[ln] = '\0';
	ascii_lower(local);
	return directory_local_part_valid(local) && directory_domain_valid(domain);
}

enum dir_result directory_user_add(struct directory *d, const char *address, const char *hash)
{
	char local[DIR_ADDRESS_MAX], domain[DIR_ADDRESS_MAX], addr[DIR_ADDRESS_MAX * 2];
	if (!split_address(address, local, sizeof(local), domain, sizeof(domain))) {
		snprintf(d->err, sizeof(d->err), "not a valid address for a mailbox (letters, digits, . _ + - before the @)");
		return DIR_INVALID;
	}
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	int r = exec_text(d, "INSERT INTO users(address, local, domain, password_hash, created) "
		"VALUES(?1, ?2, ?3, ?4, strftime('%s','now'))", addr, local, domain, hash);
	if (r == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return r == SQLITE_DONE ? DIR_OK : fail(d, "user add");
}

enum dir_result directory_user_del(struct directory *d, const char *address)
{
	char local[DIR_ADDRESS_MAX], domain[DIR_ADDRESS_MAX], addr[DIR_ADDRESS_MAX * 2];
	if (!split_address(address, local, sizeof(local), domain, sizeof(domain)))
		return DIR_INVALID;
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if (exec_text(d, "DELETE FROM users WHERE address = ?1", addr, NULL, NULL, NULL) != SQLITE_DONE)
		return fail(d, "user del");
	return sqlite3_changes(d->db) ? DIR_OK : DIR_NOT_FOUND;
}

static void fill_user(sqlite3_stmt *st, struct dir_user *u)
{
	snprintf(u->address, sizeof(u->address), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(u->local, sizeof(u->local), "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(u->domain, sizeof(u->domain), "%s", (const char *)sqlite3_column_text(st, 2));
	u->quota = (uint64_t)sqlite3_column_int64(st, 3);
}

enum dir_result directory_user_lookup(struct directory *d, const char *local, const char *domain,
	struct dir_user *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT address, local, domain, quota FROM users "
		"WHERE local = lower(?1) AND domain = lower(?2)", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "user lookup");
	sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW && out)
		fill_user(st, out);
	sqlite3_finalize(st);
	if (r == SQLITE_ROW)
		return DIR_OK;
	return r == SQLITE_DONE ? DIR_NOT_FOUND : fail(d, "user lookup");
}

enum dir_result directory_user_list(struct directory *d, void (*cb)(void *, const struct dir_user *), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT address, local, domain, quota FROM users ORDER BY domain, local",
		-1, &st, NULL) != SQLITE_OK)
		return fail(d, "user list");
	int r;
	struct dir_user u;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		fill_user(st, &u);
		cb(arg, &u);
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(d, "user list");
}

/* --- aliases, sender grants, app passwords -------------------------------- */

/* "local@domain" normalised to lower case, or false. */
static bool normalise(const char *address, char *out, size_t outsz, char *local, size_t lsz, char *domain, size_t dsz)
{
	if (!split_address(address, local, lsz, domain, dsz))
		return false;
	return snprintf(out, outsz, "%s@%s", local, domain) < (int)outsz;
}

enum dir_result directory_alias_add(struct directory *d, const char *alias, const char *target)
{
	char a[DIR_ADDRESS_MAX * 2], al[DIR_ADDRESS_MAX], ad[DIR_ADDRESS_MAX];
	char t[DIR_ADDRESS_MAX * 2], tl[DIR_ADDRESS_MAX], td[DIR_ADDRESS_MAX];
	if (!normalise(alias, a, sizeof(a), al, sizeof(al), ad, sizeof(ad)) ||
		!normalise(target, t, sizeof(t), tl, sizeof(tl), td, sizeof(td))) {
		snprintf(d->err, sizeof(d->err), "not a valid address");
		return DIR_INVALID;
	}
	enum dir_result r = directory_user_lookup(d, tl, td, NULL);
	if (r != DIR_OK) {
		snprintf(d->err, sizeof(d->err), "the target %.200s is not a user here", t);
		return r == DIR_ERROR ? DIR_ERROR : DIR_INVALID;
	}
	if (directory_user_lookup(d, al, ad, NULL) == DIR_OK) {
		snprintf(d->err, sizeof(d->err), "%.200s is a user; an alias cannot have the same address", a);
		return DIR_EXISTS;
	}
	int rc = exec_text(d, "INSERT INTO aliases(address, local, domain, target) VALUES(?1, ?2, ?3, ?4)", a, al, ad, t);
	if (rc == SQLITE_CONSTRAINT) {
		snprintf(d->err, sizeof(d->err), "the alias %.200s already exists", a);
		return DIR_EXISTS;
	}
	return rc == SQLITE_DONE ? DIR_OK : fail(d, "alias add");
}

enum dir_result directory_alias_del(struct directory *d, const char *alias)
{
	char a[DIR_ADDRESS_MAX * 2], al[DIR_ADDRESS_MAX], ad[DIR_ADDRESS_MAX];
	if (!normalise(alias, a, sizeof(a), al, sizeof(al), ad, sizeof(ad)))
		return DIR_INVALID;
	if (exec_text(d, "DELETE FROM aliases WHERE address = ?1", a, NULL, NULL, NULL) != SQLITE_DONE)
		return fail(d, "alias del");
	return sqlite3_changes(d->db) ? DIR_OK : DIR_NOT_FOUND;
}

enum dir_result directory_alias_lookup(struct directory *d, const char *local, const char *domain,
	char *target, size_t targetsz)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT target FROM aliases WHERE local = lower(?1) AND domain = lower(?2)",
		-1, &st, NULL) != SQLITE_OK)
		return fail(d, "alias lookup");
	sqlite3_bind_text(st, 1, local, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW && target)
		snprintf(target, targetsz, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (r == SQLITE_ROW)
		return DIR_OK;
	return r == SQLITE_DONE ? DIR_NOT_FOUND : fail(d, "alias lookup");
}

enum dir_result directory_alias_list(struct directory *d, void (*cb)(void *, const char *, const char *), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT address, target FROM aliases ORDER BY domain, local", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "alias list");
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(d, "alias list");
}

/* The stored form of an existing user's address, or an error. */
static enum dir_result existing_user(struct directory *d, const char *user, char *out, size_t outsz)
{
	char l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	if (!normalise(user, out, outsz, l, sizeof(l), dm, sizeof(dm))) {
		snprintf(d->err, sizeof(d->err), "not a valid address");
		return DIR_INVALID;
	}
	enum dir_result r = directory_user_lookup(d, l, dm, NULL);
	if (r == DIR_NOT_FOUND)
		snprintf(d->err, sizeof(d->err), "no user %s", out);
	return r;
}

enum dir_result directory_sender_allow(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2], l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	enum dir_result r = existing_user(d, user, u, sizeof(u));
	if (r != DIR_OK)
		return r;
	/* A grant may name a whole domain as "@domain". */
	if (address[0] == '@') {
		snprintf(dm, sizeof(dm), "%s", address + 1);
		if (!directory_domain_valid(dm))
			return DIR_INVALID;
		snprintf(a, sizeof(a), "@%s", dm);
	} else if (!normalise(address, a, sizeof(a), l, sizeof(l), dm, sizeof(dm))) {
		snprintf(d->err, sizeof(d->err), "not a valid address");
		return DIR_INVALID;
	}
	int rc = exec_text(d, "INSERT INTO sender_grants(user, address) VALUES(?1, ?2)", u, a, NULL, NULL);
	if (rc == SQLITE_CONSTRAINT)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(d, "sender allow");
}

enum dir_result directory_sender_deny(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2];
	snprintf(u, sizeof(u), "%s", user);
	snprintf(a, sizeof(a), "%s", address);
	ascii_lower(u);
	ascii_lower(a);
	if (exec_text(d, "DELETE FROM sender_grants WHERE user = ?1 AND address = ?2", u, a, NULL, NULL) != SQLITE_DONE)
		return fail(d, "sender deny");
	return sqlite3_changes(d->db) ? DIR_OK : DIR_NOT_FOUND;
}

enum dir_result directory_sender_list(struct directory *d, const char *user, void (*cb)(void *, const char *), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT address FROM sender_grants WHERE user = lower(?1) "
		"UNION SELECT address FROM aliases WHERE target = lower(?1) ORDER BY 1", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "sender list");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(d, "sender list");
}

enum dir_result directory_sender_owned(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2];
	snprintf(u, sizeof(u), "%s", user);
	snprintf(a, sizeof(a), "%s", address);
	ascii_lower(u);
	ascii_lower(a);
	if (strcmp(u, a) == 0)
		return DIR_OK;
	const char *at = strrchr(a, '@');
	char dom[DIR_ADDRESS_MAX + 1];
	snprintf(dom, sizeof(dom), "%s", at ? at : "@");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db,
		"SELECT 1 FROM aliases WHERE address = ?2 AND target = ?1 "
		"UNION ALL SELECT 1 FROM sender_grants WHERE user = ?1 AND (address = ?2 OR address = ?3) LIMIT 1",
		-1, &st, NULL) != SQLITE_OK)
		return fail(d, "sender check");
	sqlite3_bind_text(st, 1, u, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dom, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r == SQLITE_ROW)
		return DIR_OK;
	return r == SQLITE_DONE ? DIR_NOT_FOUND : fail(d, "sender check");
}

enum dir_result directory_app_password_add(struct directory *d, const char *user, const char *name,
	const char *selector, const char *hash)
{
	char u[DIR_ADDRESS_MAX * 2];
	enum dir_result r = existing_user(d, user, u, sizeof(u));
	if (r != DIR_OK)
		return r;
	size_t n = strlen(name);
	if (n == 0 || n > 64) {
		snprintf(d->err, sizeof(d->err), "the name must be 1 to 64 characters");
		return DIR_INVALID;
	}
	int rc = exec_text(d, "INSERT INTO app_passwords(user, name, password_hash, created, selector) "
		"VALUES(?1, ?2, ?3, strftime('%s','now'), ?4)", u, name, hash, selector);
	if (rc == SQLITE_CONSTRAINT && selector && directory_app_password_selector_free(d, u, selector) != DIR_OK) {
		snprintf(d->err, sizeof(d->err), "another app password of %.120s has the selector %.16s", u, selector);
		return DIR_EXISTS;
	}
	if (rc == SQLITE_CONSTRAINT) {
		snprintf(d->err, sizeof(d->err), "%.120s already has an app password named \"%.64s\"", u, name);
		return DIR_EXISTS;
	}
	return rc == SQLITE_DONE ? DIR_OK : fail(d, "app-password add");
}

enum dir_result directory_app_password_revoke(struct directory *d, const char *user, const char *name)
{
	char u[DIR_ADDRESS_MAX * 2];
	snprintf(u, sizeof(u), "%s", user);
	ascii_lower(u);
	if (exec_text(d, "DELETE FROM app_passwords WHERE user = ?1 AND name = ?2", u, name, NULL, NULL) != SQLITE_DONE)
		return fail(d, "app-password revoke");
	return sqlite3_changes(d->db) ? DIR_OK : DIR_NOT_FOUND;
}

enum dir_result directory_app_password_selector_free(struct directory *d, const char *user, const char *selector)
{
	int rc = exec_text(d, "SELECT 1 FROM app_passwords WHERE user = lower(?1) AND selector = ?2", user, selector, NULL, NULL);
	if (rc == SQLITE_ROW)
		return DIR_EXISTS;
	return rc == SQLITE_DONE ? DIR_OK : fail(d, "app-password selector");
}

enum dir_result directory_app_password_list(struct directory *d, const char *user,
	void (*cb)(void *, const char *, long long, long long, bool), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT name, created, last_used, selector IS NULL FROM app_passwords "
		"WHERE user = lower(?1) ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return fail(d, "app-password list");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		cb(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
			sqlite3_column_int(st, 3) != 0);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? DIR_OK : fail(d, "app-password list");
}

enum dir_result directory_app_password_used(struct directory *d, const char *user, const char *name)
{
	int rc = exec_text(d, "UPDATE app_passwords SET last_used = strftime('%s','now') WHERE user = lower(?1) AND name = ?2",
		user, name, NULL, NULL);
	return rc == SQLITE_DONE ? DIR_OK : fail(d, "app-password use");
}

static void copy_column(sqlite3_stmt *st, int col, char *out, size_t outsz)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	snprintf(out, outsz, "%s", v ? (const char *)v : "");
}

enum dir_result directory_login_hash(struct directory *d, const char *user, const char *selector,
	struct dir_login_hash *out)
{
	sqlite3_stmt *st;
	/* One statement whatever the case, so the lookup costs the same too. */
	if (sqlite3_prepare_v2(d->db,
		"SELECT u.address, a.name, COALESCE(a.password_hash, u.password_hash) FROM users u "
		"LEFT JOIN app_passwords a ON a.user = u.address AND a.selector = ?2 WHERE u.address = lower(?1)",
		-1, &st, NULL) != SQLITE_OK)
		return fail(d, "password lookup");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, selector ? selector : "", -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		copy_column(st, 0, out->canonical, sizeof(out->canonical));
		copy_column(st, 1, out->app_name, sizeof(out->app_name));
		copy_column(st, 2, out->hash, sizeof(out->hash));
	}
	sqlite3_finalize(st);
	if (r == SQLITE_ROW)
		return DIR_OK;
	return r == SQLITE_DONE ? DIR_NOT_FOUND : fail(d, "password lookup");
}

enum dir_result directory_legacy_app_hashes(struct directory *d, const char *user,
	bool (*cb)(void *arg, const char *name, const char *hash), void *arg)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(d->db, "SELECT name, password_hash FROM app_passwords WHERE user = lower(?1) AND selector IS NULL",
		-1, &st, NULL) != SQLITE_OK)
		return fail(d, "password lookup");
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1)))
			break;
	sqlite3_finalize(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? DIR_OK : fail(d, "password lookup");
}

long long directory_legacy_app_password_count(struct directory *d)
{
	sqlite3_stmt *st;
	long long n = -1;
	if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM app_passwords WHERE selector IS NULL", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}
