/* directory.c - domains and users in SQLite (see directory.h). */
#include "directory/directory.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
	"PRAGMA user_version=1;";

static enum dir_result fail(struct directory *d, const char *what)
{
	snprintf(d->err, sizeof(d->err), "%s: %s", what, sqlite3_errmsg(d->db));
	return DIR_ERROR;
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
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, d->db ? sqlite3_errmsg(d->db) : "out of memory");
		sqlite3_close(d->db);
		free(d);
		return false;
	}
	sqlite3_busy_timeout(d->db, 5000);
	char *e = NULL;
	if (sqlite3_exec(d->db, schema, NULL, NULL, &e) != SQLITE_OK) {
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
