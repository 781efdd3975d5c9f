/* pg_int.h - private to events/: the event store's PostgreSQL side (pg.c, pg_query.c),
 * used when [directory] backend = postgresql so that every node writes and reads one
 * table (postern_events, made by the directory's migrations: `postern directory
 * migrate`).  One connection per handle, made on first need; every statement is
 * parameterised and has a deadline (connecting included): the callers are the writer
 * thread and the readers' threads, never the event loop. */
#ifndef POSTERN_EVENTS_PG_INT_H
#define POSTERN_EVENTS_PG_INT_H

#include <libpq-fe.h>

#include "events/events.h"

struct events_pg;

struct events_pg *events_pg_new(const char *conninfo, unsigned timeout_ms);
void events_pg_free(struct events_pg **p);

/* One statement by the deadline: its result (PQclear it; its status may still be an
 * SQL error), or NULL with err in words (no answer in time, no connection); then the
 * connection is dropped and the next call makes a new one. */
PGresult *events_pg_run(struct events_pg *p, const char *sql, int n, const char *const *params, char *err,
	size_t errsz);
/* Did the statement work (a command or rows)? */
bool events_pg_ok(const PGresult *r);
/* The first line of a failed result's message, "(no answer)" without one. */
void events_pg_reason(const PGresult *r, char *out, size_t outsz);

/* The writer's batch in a few statements: 1 all written, 0 the database refused a
 * statement (an SQL error: dropping the rest is right), -1 no answer (keep the rest and
 * try again later).  *written: how many of b[] (from the front) are in the table. */
int events_pg_write(struct events_pg *p, struct events_record **b, size_t n, size_t *written, char *err,
	size_t errsz);
/* Retention: rows older than `before` and past the caps; counts into *removed and
 * *trimmed.  false with err when the database did not answer. */
bool events_pg_purge(struct events_pg *p, time_t before, long long cap, long long anonymous_cap, long long *removed,
	long long *trimmed, char *err, size_t errsz);

/* The readers (query.c's functions with the reader's connection). */
long events_pg_list(struct events_pg *p, const struct events_query *q, struct events_record *out, size_t limit);
long events_pg_refusals(struct events_pg *p, const char *group_sql, time_t since, struct events_count *out,
	size_t max);

#endif
