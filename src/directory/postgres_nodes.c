/* postgres_nodes.c - the node registry on PostgreSQL (directory.h struct dir_node):
 * table postern_nodes, one row per node of a cluster, upserted by each node's
 * heartbeat thread and read by peers that must reach a node (LMTP, the proxy, the
 * control listener) or show whether it is up. */
#include "directory/postgres_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_COLUMNS "name, started, last_seen, lmtp, control, pop3, imap, queue_size, oldest_queued"

static void text_or_empty(PGresult *r, int row, int col, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static long long number(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void fill_node(PGresult *r, int row, struct dir_node *n)
{
	memset(n, 0, sizeof(*n));
	text_or_empty(r, row, 0, n->name, sizeof(n->name));
	n->started = number(r, row, 1);
	n->last_seen = number(r, row, 2);
	text_or_empty(r, row, 3, n->lmtp, sizeof(n->lmtp));
	text_or_empty(r, row, 4, n->control, sizeof(n->control));
	text_or_empty(r, row, 5, n->pop3, sizeof(n->pop3));
	text_or_empty(r, row, 6, n->imap, sizeof(n->imap));
	n->queue_size = number(r, row, 7);
	n->oldest_queued = number(r, row, 8);
}

enum dir_result pq_node_heartbeat(struct dir_backend *b, const struct dir_node *self, char *err)
{
	char started[24], seen[24], size[24], oldest[24];
	snprintf(started, sizeof(started), "%lld", self->started);
	snprintf(seen, sizeof(seen), "%lld", self->last_seen);
	snprintf(size, sizeof(size), "%lld", self->queue_size);
	snprintf(oldest, sizeof(oldest), "%lld", self->oldest_queued);
#define OR_NULL(s) ((s)[0] ? (s) : NULL)
	return pg_exec(b, SQL("INSERT INTO postern_nodes(" NODE_COLUMNS ") "
		"VALUES($1, $2::bigint, $3::bigint, $4, $5, $6, $7, $8::bigint, $9::bigint) "
		"ON CONFLICT (name) DO UPDATE SET started = EXCLUDED.started, last_seen = EXCLUDED.last_seen, "
		"lmtp = EXCLUDED.lmtp, control = EXCLUDED.control, pop3 = EXCLUDED.pop3, imap = EXCLUDED.imap, "
		"queue_size = EXCLUDED.queue_size, oldest_queued = EXCLUDED.oldest_queued",
		self->name, started, seen, OR_NULL(self->lmtp), OR_NULL(self->control), OR_NULL(self->pop3),
		OR_NULL(self->imap), size, oldest), false, "node heartbeat", err);
#undef OR_NULL
}

enum dir_result pq_node_get(struct dir_backend *b, const char *name, struct dir_node *out, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL_READ("SELECT " NODE_COLUMNS " FROM postern_nodes WHERE name = $1", name), &r,
		"node lookup", err);
	if (res == DIR_OK && out)
		fill_node(r, 0, out);
	else if (res == DIR_NOT_FOUND)
		snprintf(err, DIR_ERROR_MAX, "no node %s in the registry (postern_nodes): it has never started", name);
	PQclear(r);
	return res;
}

enum dir_result pq_node_list(struct dir_backend *b, void (*cb)(void *, const struct dir_node *), void *arg, char *err)
{
	PGresult *r;
	enum dir_result res = pg_select(b, SQL0("SELECT " NODE_COLUMNS " FROM postern_nodes ORDER BY name"), &r,
		"node list", err);
	struct dir_node n;
	for (int i = 0; res == DIR_OK && i < PQntuples(r); i++) {
		fill_node(r, i, &n);
		cb(arg, &n);
	}
	PQclear(r);
	return res == DIR_NOT_FOUND ? DIR_OK : res;
}
