/* events.h - the per-account event store: what became of each message a user sent
 * and every attempt the server refused, for "My outgoing mail" and the administrator's
 * refusal statistics.
 *
 * Its own SQLite file, <data_dir>/events.db, in WAL mode (readers never block the
 * writer), schema versioned with PRAGMA user_version.  Writing is one thread that
 * drains a bounded in-memory queue, many records per transaction; events_append only
 * copies the record into that queue (a mutex held for a pointer swap, no disk), so the
 * SMTP path never waits for the disk: a full queue drops the record and counts it
 * (postern_events_dropped_total, and a log line at most once a minute).  The store is
 * bounded: records older than [events] retention and those past a per-account cap are
 * deleted at start and then hourly.  Readers (the web threads) each open their own
 * read-only connection.  Text in records came from clients and remote servers:
 * HOSTILE, escape it when shown.
 *
 * With [directory] backend = postgresql the same records live in PostgreSQL's table
 * postern_events instead (pg.c; made by `postern directory migrate`), so that every
 * node's page and `postern events` show what any node recorded: the writer thread
 * and the readers each hold one connection with [directory] timeout on every call; a
 * database that does not answer keeps the records in memory (at most twice
 * queue_max) until it does, and mail never waits for it. */
#ifndef POSTERN_EVENTS_EVENTS_H
#define POSTERN_EVENTS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum events_kind { EVENTS_REFUSED = 1, EVENTS_QUEUED, EVENTS_DELIVERED, EVENTS_DEFERRED, EVENTS_BOUNCED,
	EVENTS_DELAY_NOTICE, EVENTS_HELD, EVENTS_RELEASED, EVENTS_DISCARDED, EVENTS_DELETED };

struct events_record {
	long long id;                 /* assigned by the store (0 when appending) */
	time_t when;                  /* 0 when appending: now */
	enum events_kind kind;
	char account[321];            /* the SASL login, canonical; "" when the client did not log in */
	char sender[521];             /* MAIL FROM ("" = none or null sender) */
	char rcpt[521];               /* the recipient this is about; "" for a whole-message/session event */
	char qid[32];                 /* queued and later */
	char client_addr[64];
	char proto[16];               /* "smtp"; "queue" for delivery and admin events */
	char listener[64];
	char cmd[16];                 /* refused: "MAIL", "RCPT", "DATA", "AUTH", "EHLO"... */
	int code;                     /* the reply we gave (refused) or the remote's (delivered/deferred/bounced) */
	char enh[16];
	char cause_id[48];            /* explain's cause id (refused: from refusal_write_id's cause_id) */
	char ref[40];                 /* the refusal reference (ref R.C.N) */
	char text[1024];              /* our reply text / the remote's reply / the local reason. HOSTILE */
	char subject[256];            /* queued: the Subject, raw (HOSTILE: escape when shown) */
	char where[256];              /* delivered/deferred: "mx1.example.org[192.0.2.25]:25" or "local mailbox" */
	long long next_try;           /* deferred: unix time of the next attempt */
	unsigned n_rcpts;             /* queued */
};

struct events_config {
	unsigned retention_days;      /* [events] retention, default 14 */
	unsigned queue_max;           /* records waiting for the writer, default 4096 */
	bool enabled;                 /* [events] enabled = yes */
	unsigned account_max;         /* [events] account_max: records kept per account (0: 5000) */
	const char *pg_connection;    /* libpq connection string: PostgreSQL; NULL or "": <data_dir>/events.db */
	unsigned pg_timeout_ms;       /* PostgreSQL: a statement's deadline, connecting included */
};

struct conf;

struct events;
struct events_reader;

/* Open (create, migrate) <data_dir>/events.db, purge what retention says is old, start
 * the writer.  With c->enabled false: true and *e = NULL (appends are no-ops). */
bool events_open(struct events **e, const char *data_dir, const struct events_config *c, char *err, size_t errsz);
/* Any thread; never blocks on disk: a full queue drops the record and counts it
 * (metric postern_events_dropped_total).  NULL e: no-op.  Strings are cut to their
 * fields' sizes by the caller (the struct is fixed size). */
void events_append(struct events *e, const struct events_record *r);
/* Writes what is queued, stops the thread, closes; sets *e to NULL. */
void events_close(struct events **e);
/* Records dropped so far (the queue was full, or the disk refused a batch). */
unsigned long long events_dropped(const struct events *e);

/* The store [directory] and [events] of c name: the config for events_open (strings
 * point into c). */
void events_config_from(struct events_config *ec, const struct conf *c);

/* Readers: one handle per thread (web workers), read-only connection. */
bool events_reader_open(struct events_reader **r, const char *data_dir, char *err, size_t errsz);
/* The reader of the store c names: <data_dir>/events.db, or PostgreSQL with
 * [directory] backend = postgresql (connected on first query). */
bool events_reader_open_conf(struct events_reader **r, const struct conf *c, char *err, size_t errsz);
void events_reader_close(struct events_reader **r);

struct events_query {
	const char *account;          /* required: the signed-in user */
	const char *const *senders;   /* addresses the account owns (sender_list) */
	size_t n_senders;
	time_t since;                 /* 0: everything kept */
	size_t limit;                 /* 0: max */
	long long before_id;          /* paging: 0 = newest */
	const char *qid;              /* optional: one message's events */
};

/* Newest first.  A record belongs to the account when account = q->account, or its
 * sender is one of q->senders, or its qid was queued by q->account (accounts and
 * senders compared without regard to ASCII case).  Returns how many were written
 * (<= max); -1 on error. */
long events_list(struct events_reader *r, const struct events_query *q, struct events_record *out, size_t max);

/* Admin statistics since `since`: refusals by cause id, top accounts (logged-in
 * clients only) and client addresses, most first. */
struct events_count {
	char key[521];
	long long n;
};
long events_refusals_by_cause(struct events_reader *r, time_t since, struct events_count *out, size_t max);
long events_refusals_top_accounts(struct events_reader *r, time_t since, struct events_count *out, size_t max);
long events_refusals_top_clients(struct events_reader *r, time_t since, struct events_count *out, size_t max);

/* "refused", "queued", ... (for logs, the CLI, templates); "unknown" otherwise. */
const char *events_kind_name(enum events_kind k);

#endif
