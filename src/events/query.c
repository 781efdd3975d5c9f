/* query.c - the reading side of the event store (events.h): one read-only connection
 * per reader (a web thread, the CLI), a user's records newest first with paging, one
 * message's records, and the administrator's refusal counts.
 *
 * WAL mode lets readers run while the writer commits (they see the last committed
 * batch).  Every query is bounded by its LIMIT; the caller's array bounds it too. */
#include "events/events.h"
#include "events/pg_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "util/buf.h"

#define EVENTS_SENDERS_MAX 64      /* addresses of one account looked at in one query */
#define EVENTS_LIST_MAX 10000      /* records returned by one query at most */

struct events_reader {
	sqlite3 *db;
	struct events_pg *pg;      /* PostgreSQL; then db is NULL */
};

void events_config_from(struct events_config *ec, const struct conf *c)
{
	*ec = (struct events_config){ .enabled = c->events_enabled, .retention_days = (unsigned)(c->events_retention / 86400),
		.queue_max = (unsigned)c->events_queue_max, .account_max = (unsigned)c->events_account_max };
	if (c->directory_backend == CONF_DIRECTORY_POSTGRESQL) {
		ec->pg_connection = c->directory_connection;
		ec->pg_timeout_ms = (unsigned)(c->directory_timeout * 1000);
	}
}

bool events_reader_open_conf(struct events_reader **out, const struct conf *c, char *err, size_t errsz)
{
	if (c->directory_backend != CONF_DIRECTORY_POSTGRESQL)
		return events_reader_open(out, c->data_dir, err, errsz);
	*out = NULL;
	struct events_reader *r = calloc(1, sizeof(*r));
	if (r)
		r->pg = events_pg_new(c->directory_connection, (unsigned)(c->directory_timeout * 1000));
	if (!r || !r->pg) {
		free(r);
		snprintf(err, errsz, "out of memory");
		return false;
	}
	*out = r;
	return true;
}

bool events_reader_open(struct events_reader **out, const char *data_dir, char *err, size_t errsz)
{
	*out = NULL;
	char path[4096];
	snprintf(path, sizeof(path), "%s/events.db", data_dir);
	struct events_reader *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errsz, "out of memory");
		return false;
	}
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s: %s (is [events] enabled = no, or has the server never run?)", path,
			r->db ? sqlite3_errmsg(r->db) : "cannot open");
		sqlite3_close(r->db);
		free(r);
		return false;
	}
	sqlite3_busy_timeout(r->db, 2000);
	*out = r;
	return true;
}

void events_reader_close(struct events_reader **pr)
{
	struct events_reader *r = *pr;
	if (!r)
		return;
	*pr = NULL;
	sqlite3_close(r->db);
	events_pg_free(&r->pg);
	free(r);
}

#define COLUMNS "id, at, kind, account, sender, rcpt, qid, client_addr, proto, listener, cmd, code, enh, " \
	"cause_id, ref, text, subject, where_to, next_try, n_rcpts"

static void column_copy(sqlite3_stmt *st, int i, char *dst, size_t dstsz)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	snprintf(dst, dstsz, "%s", v ? (const char *)v : "");
}

static void row_to_record(sqlite3_stmt *st, struct events_record *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->when = (time_t)sqlite3_column_int64(st, 1);
	r->kind = (enum events_kind)sqlite3_column_int(st, 2);
	column_copy(st, 3, r->account, sizeof(r->account));
	column_copy(st, 4, r->sender, sizeof(r->sender));
	column_copy(st, 5, r->rcpt, sizeof(r->rcpt));
	column_copy(st, 6, r->qid, sizeof(r->qid));
	column_copy(st, 7, r->client_addr, sizeof(r->client_addr));
	column_copy(st, 8, r->proto, sizeof(r->proto));
	column_copy(st, 9, r->listener, sizeof(r->listener));
	column_copy(st, 10, r->cmd, sizeof(r->cmd));
	r->code = sqlite3_column_int(st, 11);
	column_copy(st, 12, r->enh, sizeof(r->enh));
	column_copy(st, 13, r->cause_id, sizeof(r->cause_id));
	column_copy(st, 14, r->ref, sizeof(r->ref));
	column_copy(st, 15, r->text, sizeof(r->text));
	column_copy(st, 16, r->subject, sizeof(r->subject));
	column_copy(st, 17, r->where, sizeof(r->where));
	r->next_try = sqlite3_column_int64(st, 18);
	r->n_rcpts = (unsigned)sqlite3_column_int64(st, 19);
}

/* The senders worth matching: non-empty (the null sender belongs to nobody), at most
 * EVENTS_SENDERS_MAX. */
static size_t usable_senders(const struct events_query *q, const char **out)
{
	size_t n = 0;
	for (size_t i = 0; i < q->n_senders && n < EVENTS_SENDERS_MAX; i++)
		if (q->senders[i] && q->senders[i][0])
			out[n++] = q->senders[i];
	return n;
}

/* The statement: parameters ?1 account, ?2 since, ?3 limit, then before_id, qid and the
 * senders in that order when present (numbered from 4). */
static void list_sql(struct buf *sql, const struct events_query *q, size_t n_senders)
{
	int next = 4;
	buf_printf(sql, "SELECT " COLUMNS " FROM events WHERE at >= ?2");
	if (q->before_id > 0)
		buf_printf(sql, " AND id < ?%d", next++);
	if (q->qid && q->qid[0])
		buf_printf(sql, " AND qid = ?%d", next++);
	buf_printf(sql, " AND (account = ?1 OR (qid <> '' AND qid IN (SELECT qid FROM events WHERE kind = %d"
		" AND account = ?1))", EVENTS_QUEUED);
	if (n_senders) {
		buf_printf(sql, " OR sender IN (");
		for (size_t i = 0; i < n_senders; i++)
			buf_printf(sql, "%s?%d", i ? ", " : "", next++);
		buf_printf(sql, ")");
	}
	buf_printf(sql, ") ORDER BY id DESC LIMIT ?3");
}

long events_list(struct events_reader *r, const struct events_query *q, struct events_record *out, size_t max)
{
	if (!r || !q || !q->account || !q->account[0])
		return r && q ? 0 : -1;   /* no account: nobody's records */
	const char *senders[EVENTS_SENDERS_MAX];
	size_t n_senders = usable_senders(q, senders);
	size_t limit = q->limit && q->limit < max ? q->limit : max;
	if (limit > EVENTS_LIST_MAX)
		limit = EVENTS_LIST_MAX;
	if (r->pg)
		return events_pg_list(r->pg, q, out, limit);
	struct buf sql;
	buf_init(&sql, 8192);
	list_sql(&sql, q, n_senders);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(r->db, buf_cstr(&sql), -1, &st, NULL);
	buf_free(&sql);
	if (rc != SQLITE_OK)
		return -1;
	int next = 4;
	sqlite3_bind_text(st, 1, q->account, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)q->since);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	if (q->before_id > 0)
		sqlite3_bind_int64(st, next++, q->before_id);
	if (q->qid && q->qid[0])
		sqlite3_bind_text(st, next++, q->qid, -1, SQLITE_TRANSIENT);
	for (size_t i = 0; i < n_senders; i++)
		sqlite3_bind_text(st, next++, senders[i], -1, SQLITE_TRANSIENT);
	long n = 0;
	while ((size_t)n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
		row_to_record(st, &out[n++]);
	bool failed = (size_t)n < limit && rc != SQLITE_DONE;
	sqlite3_finalize(st);
	return failed ? -1 : n;
}

/* One "count refusals since, grouped by `column`" query. */
static long refusal_counts(struct events_reader *r, const char *group_sql, time_t since, struct events_count *out,
	size_t max)
{
	if (!r)
		return -1;
	if (r->pg)
		return events_pg_refusals(r->pg, group_sql, since, out, max);
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT %s AS k, COUNT(*) AS n FROM events WHERE kind = %d AND at >= ?1"
		" GROUP BY k HAVING k <> '' ORDER BY n DESC, k LIMIT ?2", group_sql, EVENTS_REFUSED);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > EVENTS_LIST_MAX ? EVENTS_LIST_MAX : max));
	long n = 0;
	int rc = SQLITE_DONE;
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		column_copy(st, 0, out[n].key, sizeof(out[n].key));
		out[n++].n = sqlite3_column_int64(st, 1);
	}
	bool failed = (size_t)n < max && rc != SQLITE_DONE;
	sqlite3_finalize(st);
	return failed ? -1 : n;
}

long events_refusals_by_cause(struct events_reader *r, time_t since, struct events_count *out, size_t max)
{
	return refusal_counts(r, "CASE WHEN cause_id = '' THEN 'unknown' ELSE cause_id END", since, out, max);
}

long events_refusals_top_accounts(struct events_reader *r, time_t since, struct events_count *out, size_t max)
{
	return refusal_counts(r, "lower(account)", since, out, max);
}

long events_refusals_top_clients(struct events_reader *r, time_t since, struct events_count *out, size_t max)
{
	return refusal_counts(r, "client_addr", since, out, max);
}
