/* state_feed.h - the state that holds across nodes (docs/architecture.md, "State across
 * nodes"): login failures, successes and unblocks (auth/throttle.h), POP3 logins
 * (POP-before-SMTP) and sent mail (the outbound limits, policy/'s counters).
 *
 * Each node keeps its in-memory tables as the fast path: the event loop and the
 * decision threads ask them and never wait for PostgreSQL.  Every change counted here
 * is also put in a bounded outbox (a mutex, no waiting); the feed's own thread sends
 * the outbox to the shared table (directory_state_publish), reads the rows of the
 * other nodes every STATE_FEED_POLL_MS and applies them into the same tables with the
 * rows' own times (state_feed_apply), and deletes rows older than the longest window.
 * The database down or slow: the local tables keep working, the outbox keeps what
 * it can (then drops, counted) and is sent when the database is back; one log line
 * when the feed stops and one when it resumes.
 *
 * Active with [directory] backend = postgresql and [cluster] node set; otherwise
 * state_feed_new gives NULL and every call below accepts NULL and does nothing. */
#ifndef POSTERN_SERVE_STATE_FEED_H
#define POSTERN_SERVE_STATE_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "auth/login.h"
#include "directory/directory.h"

#define STATE_FEED_POLL_MS 250        /* how often the other nodes' rows are read */
#define STATE_FEED_OUTBOX_MAX 2048    /* rows kept while the database cannot take them */
#define STATE_FEED_RETENTION_MAX 86400   /* rows are kept at most a day (the limits' longest window) */

struct conf;
struct policy_limits;
struct throttle;

/* Where rows of other nodes go, and how old a row may be to still matter. */
struct state_targets {
	struct throttle *throttle;           /* login rows (NULL: ignored) */
	time_t auth_window, auth_block, auth_known_for;   /* [auth] window, block, known_for */
	struct policy_limits *counts;        /* sent rows (NULL: ignored) */
	long long counts_since;              /* sent rows at or before this are in limits.state already */
	void (*pop_login)(void *arg, const char *ip, time_t at);   /* POP3 logins (NULL: ignored) */
	void *pop_arg;
	time_t pop_window;                   /* [server] pop_before_smtp (0: ignored) */
};

/* Apply one row of another node at now: true when it changed something (false: too
 * old to matter, or nothing takes it).  Pure apart from the tables it writes. */
bool state_feed_apply(const struct state_targets *t, const struct dir_state_row *r, time_t now);
/* How long rows must be kept for these targets (the longest window, at most a day). */
time_t state_feed_retention(const struct state_targets *t);

struct state_feed;

/* NULL when the feed is not active (see above) or cannot start (logged). */
struct state_feed *state_feed_new(const struct conf *cf, const char *node, const char *run_id);
/* Starts the thread: first the rows of the retention period (a node that starts learns
 * the blocks and counts running now), then the new ones. */
void state_feed_start(struct state_feed *f, const struct state_targets *t);
/* The login service's recorded hook (auth/login.h). */
void state_feed_login(void *f, enum login_record what, const char *addr, const char *user, time_t at);
void state_feed_pop_login(struct state_feed *f, const char *addr, time_t at);
/* A message committed (what limits_service_count counted). */
void state_feed_sent(struct state_feed *f, const char *login, const char *sender_domain, size_t rcpts, time_t at);
/* Stops the thread (what is still in the outbox is tried once more); later calls are
 * dropped.  Then free. */
void state_feed_stop(struct state_feed *f);
void state_feed_free(struct state_feed **f);

#endif
