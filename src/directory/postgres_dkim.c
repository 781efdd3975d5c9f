/* postgres_dkim.c - the DKIM keys in the PostgreSQL directory (directory.h, table
 * postern_dkim_keys): added never over an existing (domain, selector), retired by a
 * flag (the row stays, as a .retired file leaves the .pem), listed in the order
 * `postern dkim list` shows them.  Every change takes a new revision from the sequence
 * postern_dkim_revision, so the signers' refresh (serve/) reads the keys only when
 * the version it asks for every few seconds has moved. */
#include "directory/postgres_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum dir_result pq_dkim_key_add(struct dir_backend *b, const struct dir_dkim_key *k, char *err)
{
	char created[24];
	snprintf(created, sizeof(created), "%lld", k->created);
	return pg_exec(b, SQL("INSERT INTO postern_dkim_keys (domain, selector, algorithm, active, created, private_key,"
		" revision) VALUES ($1, $2, $3, true, $4::bigint, $5, nextval('postern_dkim_revision'))", k->domain, k->selector,
		k->algorithm, created, k->pem), false, "dkim key add", err);
}

enum dir_result pq_dkim_key_retire(struct dir_backend *b, const char *domain, const char *selector, char *err)
{
	return pg_exec(b, SQL("UPDATE postern_dkim_keys SET active = false, retired = COALESCE(retired,"
		" extract(epoch from now())::bigint), revision = nextval('postern_dkim_revision')"
		" WHERE domain = $1 AND selector = $2", domain, selector), true, "dkim key retire", err);
}

enum dir_result pq_dkim_key_list(struct dir_backend *b, const char *domain,
	void (*cb)(void *arg, const struct dir_dkim_key *k), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = domain
		? pg_select(b, SQL_READ("SELECT domain, selector, algorithm, active, created, private_key FROM postern_dkim_keys"
			" WHERE domain = $1 ORDER BY domain, selector", domain), &r, "dkim key list", err)
		: pg_select(b, SQL0("SELECT domain, selector, algorithm, active, created, private_key FROM postern_dkim_keys"
			" ORDER BY domain, selector"), &r, "dkim key list", err);
	if (res == DIR_ERROR)
		return res;
	struct dir_dkim_key *k = malloc(sizeof(*k));
	bool oom = !k;
	int rows = PQntuples(r);
	for (int i = 0; k && i < rows; i++) {
		memset(k, 0, sizeof(*k));
		snprintf(k->domain, sizeof(k->domain), "%s", PQgetvalue(r, i, 0));
		snprintf(k->selector, sizeof(k->selector), "%s", PQgetvalue(r, i, 1));
		snprintf(k->algorithm, sizeof(k->algorithm), "%s", PQgetvalue(r, i, 2));
		k->active = PQgetvalue(r, i, 3)[0] == 't';
		k->created = strtoll(PQgetvalue(r, i, 4), NULL, 10);
		snprintf(k->pem, sizeof(k->pem), "%s", PQgetvalue(r, i, 5));
		cb(arg, k);
	}
	free(k);
	PQclear(r);
	if (oom && rows > 0) {
		snprintf(err, DIR_ERROR_MAX, "out of memory listing the DKIM keys");
		return DIR_ERROR;
	}
	return DIR_OK;
}

enum dir_result pq_dkim_keys_version(struct dir_backend *b, char *version, size_t versionsz, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT count(*), COALESCE(max(revision), 0) FROM postern_dkim_keys"), &r,
		"dkim keys version", err);
	if (res == DIR_OK)
		snprintf(version, versionsz, "%s.%s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_ERROR : res;
}
