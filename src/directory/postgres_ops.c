/* postgres_ops.c - the PostgreSQL directory backend's operations (backend.h), on the
 * query machinery of postgres.c (postgres_int.h): the same rules as sqlite.c, in
 * PostgreSQL's SQL, every value a parameter. */
#include "directory/postgres_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A column as text ("" for NULL). */
static void copy_value(PGresult *r, int row, int col, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static long long int_value(PGresult *r, int row, int col, long long null_value)
{
	return PQgetisnull(r, row, col) ? null_value : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* --- domains ------------------------------------------------------------------------ */

static enum dir_result pq_domain_add(struct dir_backend *b, const char *domain, char *err)
{
	return pg_exec(b, SQL("INSERT INTO domains(name, created) VALUES($1, extract(epoch from now())::bigint)", domain),
		false, "domain add", err);
}

static enum dir_result pq_domain_del(struct dir_backend *b, const char *domain, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL_READ("SELECT count(*) FROM users WHERE domain = $1", domain), &r,
		"domain del", err);
	long long users = res == DIR_OK ? int_value(r, 0, 0, -1) : -1;
	PQclear(r);
	if (res == DIR_ERROR)
		return res;
	if (users != 0) {
		snprintf(err, DIR_ERROR_MAX, "the domain still has %lld users; delete them first", users);
		return DIR_EXISTS;
	}
	return pg_exec(b, SQL("DELETE FROM domains WHERE name = $1", domain), true, "domain del", err);
}

static enum dir_result pq_domain_lookup(struct dir_backend *b, const char *domain, char *err)
{
	return pg_exists(b, READ(P_DOMAIN, domain), "domain lookup", err);
}

static enum dir_result pq_domain_list(struct dir_backend *b, void (*cb)(void *, const char *), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT name FROM domains ORDER BY name"), &r, "domain list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

/* --- users -------------------------------------------------------------------------- */

static enum dir_result pq_user_add(struct dir_backend *b, const char *address, const char *local, const char *domain,
	const char *hash, char *err)
{
	return pg_exec(b, SQL("INSERT INTO users(address, local, domain, password_hash, created) "
		"VALUES($1, $2, $3, $4, extract(epoch from now())::bigint)", address, local, domain, hash), false,
		"user add", err);
}

static enum dir_result pq_user_del(struct dir_backend *b, const char *address, char *err)
{
	return pg_exec(b, SQL("DELETE FROM users WHERE address = $1", address), true, "user del", err);
}

/* Columns: address, local, domain, quota, limit_messages_per_hour, limit_recipients_per_day, admin, home_node. */
static void fill_user(PGresult *r, int row, struct dir_user *u)
{
	copy_value(r, row, 0, u->address, sizeof(u->address));
	copy_value(r, row, 1, u->local, sizeof(u->local));
	copy_value(r, row, 2, u->domain, sizeof(u->domain));
	u->quota = (uint64_t)int_value(r, row, 3, 0);
	u->limit_messages_per_hour = int_value(r, row, 4, -1);
	u->limit_recipients_per_day = int_value(r, row, 5, -1);
	u->admin = !PQgetisnull(r, row, 6) && PQgetvalue(r, row, 6)[0] == 't';
	copy_value(r, row, 7, u->home_node, sizeof(u->home_node));
}

static enum dir_result pq_user_lookup(struct dir_backend *b, const char *local, const char *domain,
	struct dir_user *out, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, READ(P_USER, local, domain), &r, "user lookup", err);
	if (res == DIR_OK && out)
		fill_user(r, 0, out);
	PQclear(r);
	return res;
}

static enum dir_result pq_user_list(struct dir_backend *b, void (*cb)(void *, const struct dir_user *), void *arg,
	char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT address, local, domain, quota, limit_messages_per_hour, "
		"limit_recipients_per_day, admin, home_node FROM users ORDER BY domain, local"), &r, "user list", err);
	struct dir_user u;
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++) {
		fill_user(r, i, &u);
		cb(arg, &u);
	}
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_user_quota_set(struct dir_backend *b, const char *address, uint64_t bytes, char *err)
{
	char n[24];
	snprintf(n, sizeof(n), "%" PRIu64, bytes);
	return pg_exec(b, SQL("UPDATE users SET quota = $2::bigint WHERE address = $1", address, n), true, "user quota", err);
}

static enum dir_result pq_user_limits_set(struct dir_backend *b, const char *address, int64_t messages_per_hour,
	int64_t recipients_per_day, char *err)
{
	char m[24], r[24];
	snprintf(m, sizeof(m), "%" PRId64, messages_per_hour);
	snprintf(r, sizeof(r), "%" PRId64, recipients_per_day);
	/* -1 is the [limits] default: stored as NULL, as in sqlite.c */
	return pg_exec(b, SQL("UPDATE users SET limit_messages_per_hour = $2::bigint, limit_recipients_per_day = $3::bigint "
		"WHERE address = $1", address, messages_per_hour < 0 ? NULL : m, recipients_per_day < 0 ? NULL : r), true,
		"user limit", err);
}

static enum dir_result pq_user_admin_set(struct dir_backend *b, const char *address, bool admin, char *err)
{
	return pg_exec(b, SQL("UPDATE users SET admin = $2::boolean WHERE address = $1", address, admin ? "t" : "f"), true,
		"user admin", err);
}

static enum dir_result pq_user_home_set(struct dir_backend *b, const char *address, const char *node, char *err)
{
	return pg_exec(b, SQL("UPDATE users SET home_node = $2 WHERE address = $1", address, node[0] ? node : NULL), true,
		"user home", err);
}

/* --- aliases ------------------------------------------------------------------------ */

static enum dir_result pq_alias_add(struct dir_backend *b, const char *alias, const char *local, const char *domain,
	const char *target, char *err)
{
	return pg_exec(b, SQL("INSERT INTO aliases(address, local, domain, target) VALUES($1, $2, $3, $4)", alias, local,
		domain, target), false, "alias add", err);
}

static enum dir_result pq_alias_del(struct dir_backend *b, const char *alias, char *err)
{
	return pg_exec(b, SQL("DELETE FROM aliases WHERE address = $1", alias), true, "alias del", err);
}

static enum dir_result pq_alias_lookup(struct dir_backend *b, const char *local, const char *domain, char *target,
	size_t targetsz, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, READ(P_ALIAS, local, domain), &r, "alias lookup", err);
	if (res == DIR_OK && target)
		copy_value(r, 0, 0, target, targetsz);
	PQclear(r);
	return res;
}

static enum dir_result pq_alias_list(struct dir_backend *b, void (*cb)(void *, const char *, const char *), void *arg,
	char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT address, target FROM aliases ORDER BY domain, local"), &r,
		"alias list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

/* --- sender grants ------------------------------------------------------------------ */

static enum dir_result pq_sender_allow(struct dir_backend *b, const char *user, const char *address, char *err)
{
	return pg_exec(b, SQL("INSERT INTO sender_grants(account, address) VALUES($1, $2)", user, address), false,
		"sender allow", err);
}

static enum dir_result pq_sender_deny(struct dir_backend *b, const char *user, const char *address, char *err)
{
	return pg_exec(b, SQL("DELETE FROM sender_grants WHERE account = $1 AND address = $2", user, address), true,
		"sender deny", err);
}

static enum dir_result pq_sender_list(struct dir_backend *b, const char *user, void (*cb)(void *, const char *),
	void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL_READ("SELECT address FROM sender_grants WHERE account = lower($1) "
		"UNION SELECT address FROM aliases WHERE target = lower($1) ORDER BY 1", user), &r, "sender list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_sender_owned(struct dir_backend *b, const char *user, const char *address,
	const char *at_domain, char *err)
{
	return pg_exists(b, READ(P_SENDER_OWNED, user, address, at_domain), "sender check", err);
}

/* --- app passwords and login hashes ------------------------------------------------- */

static enum dir_result pq_app_password_add(struct dir_backend *b, const char *user, const char *name,
	const char *selector, const char *hash, char *err)
{
	/* selector NULL: a legacy row (SQL NULL), as in sqlite.c */
	return pg_exec(b, SQL("INSERT INTO app_passwords(account, name, password_hash, created, selector) "
		"VALUES($1, $2, $3, extract(epoch from now())::bigint, $4)", user, name, hash, selector), false,
		"app-password add", err);
}

static enum dir_result pq_app_password_revoke(struct dir_backend *b, const char *user, const char *name, char *err)
{
	return pg_exec(b, SQL("DELETE FROM app_passwords WHERE account = $1 AND name = $2", user, name), true,
		"app-password revoke", err);
}

static enum dir_result pq_app_password_selector_free(struct dir_backend *b, const char *user, const char *selector,
	char *err)
{
	enum dir_result res = pg_exists(b, SQL_READ("SELECT 1 FROM app_passwords WHERE account = lower($1) AND selector = $2",
		user, selector), "app-password selector", err);
	return res == DIR_OK ? DIR_EXISTS : res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_app_password_list(struct dir_backend *b, const char *user,
	void (*cb)(void *, const char *, long long, long long, bool), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL_READ("SELECT name, created, last_used, selector IS NULL FROM app_passwords "
		"WHERE account = lower($1) ORDER BY name", user), &r, "app-password list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0), int_value(r, i, 1, 0), int_value(r, i, 2, 0), PQgetvalue(r, i, 3)[0] == 't');
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_app_password_used(struct dir_backend *b, const char *user, const char *name, char *err)
{
	struct pg_query *q = SQL("UPDATE app_passwords SET last_used = extract(epoch from now())::bigint "
		"WHERE account = lower($1) AND name = $2", user, name);
	q->retry = true;   /* setting a time again is harmless */
	return pg_exec(b, q, false, "app-password use", err);
}

static enum dir_result pq_login_hash(struct dir_backend *b, const char *user, const char *selector,
	struct dir_login_hash *out, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, READ(P_LOGIN_HASH, user, selector ? selector : ""), &r, "password lookup", err);
	if (res == DIR_OK) {
		copy_value(r, 0, 0, out->canonical, sizeof(out->canonical));
		copy_value(r, 0, 1, out->app_name, sizeof(out->app_name));
		copy_value(r, 0, 2, out->hash, sizeof(out->hash));
	}
	PQclear(r);
	return res;
}

static enum dir_result pq_legacy_app_hashes(struct dir_backend *b, const char *user,
	bool (*cb)(void *arg, const char *name, const char *hash), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL_READ("SELECT name, password_hash FROM app_passwords "
		"WHERE account = lower($1) AND selector IS NULL", user), &r, "password lookup", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		if (cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)))
			break;
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_grant_dump(struct dir_backend *b, void (*cb)(void *, const char *, const char *), void *arg,
	char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT account, address FROM sender_grants ORDER BY account, address"), &r,
		"grant list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static enum dir_result pq_app_password_dump(struct dir_backend *b,
	void (*cb)(void *, const char *, const char *, const char *, const char *), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT account, name, selector, password_hash FROM app_passwords "
		"ORDER BY account, name"), &r, "app-password list", err);
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++)
		cb(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
			PQgetvalue(r, i, 3));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}

static long long pq_legacy_app_password_count(struct dir_backend *b)
{
	char err[DIR_ERROR_MAX];
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT count(*) FROM app_passwords WHERE selector IS NULL"), &r,
		"app-password count", err);
	long long n = res == DIR_OK ? int_value(r, 0, 0, -1) : -1;
	PQclear(r);
	return n;
}

const struct directory_backend_ops directory_postgres_backend = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.migrate = pg_migrate,
	.domain_add = pq_domain_add,
	.domain_del = pq_domain_del,
	.domain_lookup = pq_domain_lookup,
	.domain_list = pq_domain_list,
	.user_add = pq_user_add,
	.user_del = pq_user_del,
	.user_lookup = pq_user_lookup,
	.user_list = pq_user_list,
	.user_quota_set = pq_user_quota_set,
	.user_limits_set = pq_user_limits_set,
	.user_admin_set = pq_user_admin_set,
	.user_home_set = pq_user_home_set,
	.node_heartbeat = pq_node_heartbeat,
	.node_get = pq_node_get,
	.node_list = pq_node_list,
	.alias_add = pq_alias_add,
	.alias_del = pq_alias_del,
	.alias_lookup = pq_alias_lookup,
	.alias_list = pq_alias_list,
	.sender_allow = pq_sender_allow,
	.sender_deny = pq_sender_deny,
	.sender_list = pq_sender_list,
	.sender_owned = pq_sender_owned,
	.app_password_add = pq_app_password_add,
	.app_password_selector_free = pq_app_password_selector_free,
	.app_password_revoke = pq_app_password_revoke,
	.app_password_list = pq_app_password_list,
	.app_password_used = pq_app_password_used,
	.login_hash = pq_login_hash,
	.legacy_app_hashes = pq_legacy_app_hashes,
	.legacy_app_password_count = pq_legacy_app_password_count,
	.grant_dump = pq_grant_dump,
	.app_password_dump = pq_app_password_dump,
	.dkim_key_add = pq_dkim_key_add,
	.dkim_key_retire = pq_dkim_key_retire,
	.dkim_key_list = pq_dkim_key_list,
	.dkim_keys_version = pq_dkim_keys_version,
};
