/* postgres_int.h - private to directory/postgres*.c: the query machinery of the
 * PostgreSQL backend (postgres.c) that its operations (postgres_ops.c) use. */
#ifndef POSTERN_DIRECTORY_POSTGRES_INT_H
#define POSTERN_DIRECTORY_POSTGRES_INT_H

#include <libpq-fe.h>

#include "directory/backend.h"

/* The lookups of every RCPT, delivery and login: prepared on each new connection. */
enum prepared { P_DOMAIN, P_USER, P_ALIAS, P_SENDER_OWNED, P_LOGIN_HASH, P_COUNT };
/* A statement with text parameters (NULL = SQL NULL): by name (prepared) or its SQL. */
struct pg_query {
	enum prepared prepared;   /* P_COUNT: not prepared, use sql */
	const char *sql;
	int n;
	const char *params[10];
	bool retry;               /* safe to send again after a broken connection (reads) */
};

/* A statement run for its effect: DIR_EXISTS on a unique violation, DIR_NOT_FOUND when
 * must_touch and no row changed, DIR_ERROR with err in words (a timeout, no database). */
enum dir_result pg_exec(struct dir_backend *b, const struct pg_query *q, bool must_touch, const char *what, char *err);
/* A SELECT: DIR_OK with the rows in *out (PQclear it; also on DIR_NOT_FOUND), DIR_NOT_FOUND
 * when none came, DIR_ERROR with err (then *out is NULL). */
enum dir_result pg_select(struct dir_backend *b, const struct pg_query *q, PGresult **out, const char *what, char *err);
/* Did the SELECT give a row? */
enum dir_result pg_exists(struct dir_backend *b, const struct pg_query *q, const char *what, char *err);
bool pg_open(struct dir_backend **bp, const char *data_dir, const struct directory_config *cfg, char *err, size_t errlen);
void pg_close(struct dir_backend **bp);
/* The node registry (postgres_nodes.c). */
enum dir_result pq_node_heartbeat(struct dir_backend *b, const struct dir_node *self, char *err);
enum dir_result pq_node_get(struct dir_backend *b, const char *name, struct dir_node *out, char *err);
enum dir_result pq_node_list(struct dir_backend *b, void (*cb)(void *arg, const struct dir_node *n), void *arg,
	char *err);
bool pg_migrate(struct dir_backend *b, int *from, int *to, char *err, size_t errlen);
/* postgres_dkim.c: the DKIM keys (directory.h). */
enum dir_result pq_dkim_key_add(struct dir_backend *b, const struct dir_dkim_key *k, char *err);
enum dir_result pq_dkim_key_retire(struct dir_backend *b, const char *domain, const char *selector, char *err);
enum dir_result pq_dkim_key_list(struct dir_backend *b, const char *domain,
	void (*cb)(void *arg, const struct dir_dkim_key *k), void *arg, char *err);
enum dir_result pq_dkim_keys_version(struct dir_backend *b, char *version, size_t versionsz, char *err);

/* Query literals: READ(prepared, params...) a prepared lookup (sent again after a broken
 * connection), SQL(text, params...) a statement, SQL_READ the same for a read, SQL0 a
 * read without parameters. */
#define READ(p, ...) (&(struct pg_query){ .prepared = (p), .n = sizeof((const char *[]){ __VA_ARGS__ }) \
	/ sizeof(const char *), .params = { __VA_ARGS__ }, .retry = true })
#define SQL(s, ...) (&(struct pg_query){ .prepared = P_COUNT, .sql = (s), .n = sizeof((const char *[]){ __VA_ARGS__ }) \
	/ sizeof(const char *), .params = { __VA_ARGS__ } })
#define SQL_READ(s, ...) (&(struct pg_query){ .prepared = P_COUNT, .sql = (s), \
	.n = sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), .params = { __VA_ARGS__ }, .retry = true })
/* A read without parameters (the lists). */
#define SQL0(s) (&(struct pg_query){ .prepared = P_COUNT, .sql = (s), .n = 0, .retry = true })

/* The state feed (postgres_state.c; directory.h's directory_state_*). */
enum dir_result pg_state_publish(struct dir_backend *b, const char *node, const char *run,
	const struct dir_state_row *rows, size_t n, char *err);
enum dir_result pg_state_read(struct dir_backend *b, long long after_id, long long since, const char *skip_run,
	unsigned max, void (*cb)(void *arg, const struct dir_state_row *r), void *arg, unsigned *count, char *err);
enum dir_result pg_state_expire(struct dir_backend *b, long long before, char *err);

#endif
