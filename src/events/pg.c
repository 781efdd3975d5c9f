/* pg.c - the event store on PostgreSQL (pg_int.h): one connection with deadlines, the
 * writer's batches, retention, and the readers' queries, on the table postern_events
 * (directory/postgres.c's migrations make it; the layout is store.c's SQLite table).
 *
 * A query is sent with PQsendQueryParams and its answer awaited with poll() on the
 * connection's socket until the deadline (connecting too: PQconnectStart/PQconnectPoll),
 * so a database that is slow or gone costs the caller at most [directory] timeout; past
 * it the connection is dropped (the server's statement_timeout, set a little longer,
 * ends the query there).  Records hold text from clients and remote servers in any
 * bytes; PostgreSQL's text must be valid UTF-8, so invalid bytes are written as "?"
 * (the page shows such text escaped anyway). */
#include "events/pg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"

#define INSERT_ROWS 64             /* records per INSERT statement (19 parameters each) */
#define RECORD_FIELDS 19
#define LIST_MAX 10000             /* records returned by one query at most (query.c's bound) */
#define SENDERS_MAX 64

struct events_pg {
	PGconn *conn;                  /* NULL: not connected (yet, or again) */
	unsigned timeout_ms;
	char conninfo[1024];
};

struct events_pg *events_pg_new(const char *conninfo, unsigned timeout_ms)
{
	struct events_pg *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->timeout_ms = timeout_ms ? timeout_ms : 5000;
	snprintf(p->conninfo, sizeof(p->conninfo), "%s", conninfo);
	return p;
}

void events_pg_free(struct events_pg **pp)
{
	struct events_pg *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	PQfinish(p->conn);
	free(p);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 ready, 0 the deadline passed, -1 an error. */
static int wait_socket(PGconn *c, short events, long long deadline)
{
	int fd = PQsocket(c);
	if (fd < 0)
		return -1;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static void conn_reason(PGconn *c, char *out, size_t outsz)
{
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	snprintf(out, outsz, "%.*s", (int)strcspn(m, "\n"), m);
}

bool events_pg_ok(const PGresult *r)
{
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

void events_pg_reason(const PGresult *r, char *out, size_t outsz)
{
	const char *m = r ? PQresultErrorMessage(r) : "";
	if (!m[0])
		m = "(no answer)";
	snprintf(out, outsz, "%.*s", (int)strcspn(m, "\n"), m);
}

/* The last result of what was sent, by the deadline, or NULL with err. */
static PGresult *await_result(struct events_pg *p, long long deadline, char *err, size_t errsz)
{
	while (PQisBusy(p->conn)) {
		int w = wait_socket(p->conn, POLLIN, deadline);
		if (w == 0) {
			snprintf(err, errsz, "PostgreSQL did not answer within %u ms", p->timeout_ms);
			return NULL;
		}
		if (w < 0 || !PQconsumeInput(p->conn)) {
			char why[200];
			conn_reason(p->conn, why, sizeof(why));
			snprintf(err, errsz, "the PostgreSQL connection failed: %s", why);
			return NULL;
		}
	}
	PGresult *last = NULL, *r;
	while ((r = PQgetResult(p->conn)) != NULL) {
		PQclear(last);
		last = r;
	}
	if (!last)
		snprintf(err, errsz, "PostgreSQL gave no answer");
	return last;
}

static bool connect_by(struct events_pg *p, long long deadline, char *err, size_t errsz)
{
	PGconn *c = PQconnectStart(p->conninfo);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline) <= 0) {
			snprintf(err, errsz, "cannot reach PostgreSQL within %u ms", p->timeout_ms);
			PQfinish(c);
			return false;
		}
		st = PQconnectPoll(c);
	}
	if (!c || PQstatus(c) != CONNECTION_OK) {
		char why[200];
		conn_reason(c, why, sizeof(why));
		snprintf(err, errsz, "cannot connect to PostgreSQL: %s", why);
		PQfinish(c);
		return false;
	}
	p->conn = c;
	char set[96];
	snprintf(set, sizeof(set), "SET statement_timeout = %u; SET application_name = 'postern-events'",
		p->timeout_ms + 500);
	PGresult *r = PQsendQuery(c, set) ? await_result(p, deadline, err, errsz) : NULL;
	bool ok = events_pg_ok(r);
	if (r && !ok)
		events_pg_reason(r, err, errsz);
	PQclear(r);
	if (!ok) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	return ok;
}

PGresult *events_pg_run(struct events_pg *p, const char *sql, int n, const char *const *params, char *err,
	size_t errsz)
{
	long long deadline = now_ms() + p->timeout_ms;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = !p->conn;
		if (!p->conn && !connect_by(p, deadline, err, errsz))
			return NULL;
		PGresult *r = PQsendQueryParams(p->conn, sql, n, NULL, params, NULL, NULL, 0)
			? await_result(p, deadline, err, errsz) : NULL;
		if (!r && !err[0])
			conn_reason(p->conn, err, errsz);
		if (r && PQstatus(p->conn) == CONNECTION_OK)
			return r;
		/* No answer, or a connection that broke since its last use (the database
		 * restarted): never reuse it; once more on a fresh one in the time left. */
		PQclear(r);
		PQfinish(p->conn);
		p->conn = NULL;
		if (fresh || now_ms() >= deadline)
			return NULL;
		err[0] = '\0';
	}
	return NULL;
}

/* --- writing ------------------------------------------------------------------------ */

/* Invalid UTF-8 bytes become '?' (RFC 3629 §4: no overlongs, no surrogates, <= U+10FFFF). */
static void make_utf8(char *s)
{
	unsigned char *u = (unsigned char *)s;
	while (*u) {
		size_t len = *u < 0x80 ? 1 : (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3 : (*u & 0xF8) == 0xF0 ? 4 : 0;
		bool ok = len > 0 && !(len == 2 && *u < 0xC2) && !(len == 4 && *u > 0xF4);
		for (size_t i = 1; ok && i < len; i++)
			ok = (u[i] & 0xC0) == 0x80;
		if (ok && len == 3)
			ok = !(u[0] == 0xE0 && u[1] < 0xA0) && !(u[0] == 0xED && u[1] >= 0xA0);
		if (ok && len == 4)
			ok = !(u[0] == 0xF0 && u[1] < 0x90) && !(u[0] == 0xF4 && u[1] >= 0x90);
		if (!ok) {
			*u++ = '?';
			continue;
		}
		u += len;
	}
}

static void record_utf8(struct events_record *r)
{
	char *fields[] = { r->account, r->sender, r->rcpt, r->qid, r->client_addr, r->proto, r->listener, r->cmd,
		r->enh, r->cause_id, r->ref, r->text, r->subject, r->where };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		make_utf8(fields[i]);
}

struct numbers {
	char v[4][24];                 /* at, kind, code, next_try: text parameters */
	char n_rcpts[24];
};

static void record_params(struct events_record *r, struct numbers *num, const char **out)
{
	record_utf8(r);
	snprintf(num->v[0], sizeof(num->v[0]), "%lld", (long long)r->when);
	snprintf(num->v[1], sizeof(num->v[1]), "%d", (int)r->kind);
	snprintf(num->v[2], sizeof(num->v[2]), "%d", r->code);
	snprintf(num->v[3], sizeof(num->v[3]), "%lld", r->next_try);
	snprintf(num->n_rcpts, sizeof(num->n_rcpts), "%u", r->n_rcpts);
	const char *p[RECORD_FIELDS] = { num->v[0], num->v[1], r->account, r->sender, r->rcpt, r->qid, r->client_addr,
		r->proto, r->listener, r->cmd, num->v[2], r->enh, r->cause_id, r->ref, r->text, r->subject, r->where,
		num->v[3], num->n_rcpts };
	memcpy(out, p, sizeof(p));
}

/* One INSERT of up to INSERT_ROWS records: 1, 0 (refused), -1 (no answer). */
static int insert_rows(struct events_pg *p, struct events_record **b, size_t n, char *err, size_t errsz)
{
	static const char head[] = "INSERT INTO postern_events (at, kind, account, sender, rcpt, qid, client_addr, proto,"
		" listener, cmd, code, enh, cause_id, ref, text, subject, where_to, next_try, n_rcpts) VALUES ";
	struct numbers num[INSERT_ROWS];
	const char *params[INSERT_ROWS * RECORD_FIELDS];
	struct buf sql;
	buf_init(&sql, 64 * 1024);
	buf_appends(&sql, head);
	for (size_t i = 0; i < n; i++) {
		record_params(b[i], &num[i], &params[i * RECORD_FIELDS]);
		buf_appends(&sql, i ? ", (" : "(");
		for (int f = 0; f < RECORD_FIELDS; f++)
			buf_printf(&sql, "%s$%zu", f ? ", " : "", i * RECORD_FIELDS + (size_t)f + 1);
		buf_appendc(&sql, ')');
	}
	PGresult *r = events_pg_run(p, buf_cstr(&sql), (int)(n * RECORD_FIELDS), params, err, errsz);
	buf_free(&sql);
	if (!r)
		return -1;
	int res = 1;
	if (!events_pg_ok(r)) {
		events_pg_reason(r, err, errsz);
		/* undefined_table: `postern directory migrate` has not run yet; the records wait. */
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		res = state && strcmp(state, "42P01") == 0 ? -1 : 0;
	}
	PQclear(r);
	return res;
}

int events_pg_write(struct events_pg *p, struct events_record **b, size_t n, size_t *written, char *err,
	size_t errsz)
{
	int res = 1;
	*written = 0;
	while (*written < n && res == 1) {
		size_t chunk = n - *written < INSERT_ROWS ? n - *written : INSERT_ROWS;
		res = insert_rows(p, b + *written, chunk, err, errsz);
		if (res == 1)
			*written += chunk;
	}
	return res;
}

static long long changed(PGresult *r)
{
	const char *t = r ? PQcmdTuples(r) : "";
	return t && t[0] ? strtoll(t, NULL, 10) : 0;
}

bool events_pg_purge(struct events_pg *p, time_t before, long long cap, long long anonymous_cap, long long *removed,
	long long *trimmed, char *err, size_t errsz)
{
	char at[24], c1[24], c2[24];
	snprintf(at, sizeof(at), "%lld", (long long)before);
	snprintf(c1, sizeof(c1), "%lld", cap);
	snprintf(c2, sizeof(c2), "%lld", anonymous_cap);
	PGresult *r = events_pg_run(p, "DELETE FROM postern_events WHERE at < $1", 1, (const char *[]){ at }, err, errsz);
	bool ok = events_pg_ok(r);
	*removed = ok ? changed(r) : 0;
	if (r && !ok)
		events_pg_reason(r, err, errsz);
	PQclear(r);
	if (!ok)
		return false;
	/* The newest `cap` of each account (case-insensitively, as SQLite's NOCASE), the
	 * records without a login sharing one larger cap. */
	r = events_pg_run(p, "DELETE FROM postern_events WHERE id IN (SELECT id FROM (SELECT id, account,"
		" row_number() OVER (PARTITION BY lower(account) ORDER BY id DESC) AS rn FROM postern_events) t"
		" WHERE rn > (CASE WHEN account = '' THEN $2::bigint ELSE $1::bigint END))", 2, (const char *[]){ c1, c2 },
		err, errsz);
	ok = events_pg_ok(r);
	*trimmed = ok ? changed(r) : 0;
	if (r && !ok)
		events_pg_reason(r, err, errsz);
	PQclear(r);
	return ok;
}

/* --- reading ------------------------------------------------------------------------ */

#define COLUMNS "id, at, kind, account, sender, rcpt, qid, client_addr, proto, listener, cmd, code, enh, " \
	"cause_id, ref, text, subject, where_to, next_try, n_rcpts"

static void copy_col(PGresult *r, int row, int col, char *dst, size_t dstsz)
{
	snprintf(dst, dstsz, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static long long int_col(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void row_to_record(PGresult *res, int row, struct events_record *r)
{
	memset(r, 0, sizeof(*r));
	r->id = int_col(res, row, 0);
	r->when = (time_t)int_col(res, row, 1);
	r->kind = (enum events_kind)int_col(res, row, 2);
	copy_col(res, row, 3, r->account, sizeof(r->account));
	copy_col(res, row, 4, r->sender, sizeof(r->sender));
	copy_col(res, row, 5, r->rcpt, sizeof(r->rcpt));
	copy_col(res, row, 6, r->qid, sizeof(r->qid));
	copy_col(res, row, 7, r->client_addr, sizeof(r->client_addr));
	copy_col(res, row, 8, r->proto, sizeof(r->proto));
	copy_col(res, row, 9, r->listener, sizeof(r->listener));
	copy_col(res, row, 10, r->cmd, sizeof(r->cmd));
	r->code = (int)int_col(res, row, 11);
	copy_col(res, row, 12, r->enh, sizeof(r->enh));
	copy_col(res, row, 13, r->cause_id, sizeof(r->cause_id));
	copy_col(res, row, 14, r->ref, sizeof(r->ref));
	copy_col(res, row, 15, r->text, sizeof(r->text));
	copy_col(res, row, 16, r->subject, sizeof(r->subject));
	copy_col(res, row, 17, r->where, sizeof(r->where));
	r->next_try = int_col(res, row, 18);
	r->n_rcpts = (unsigned)int_col(res, row, 19);
}

/* query.c's statement in PostgreSQL's words: $1 account, $2 since, $3 limit, then
 * before_id, qid and the senders when present.  Accounts and senders compare without
 * regard to case (lower() on both sides, as the indexes are made). */
static int list_sql(struct buf *sql, const struct events_query *q, const char **params, char num[3][24],
	const char *const *senders, size_t n_senders, size_t limit)
{
	int n = 0;
	params[n++] = q->account;
	snprintf(num[0], 24, "%lld", (long long)q->since);
	params[n++] = num[0];
	snprintf(num[1], 24, "%zu", limit);
	params[n++] = num[1];
	buf_printf(sql, "SELECT " COLUMNS " FROM postern_events WHERE at >= $2::bigint");
	if (q->before_id > 0) {
		snprintf(num[2], 24, "%lld", q->before_id);
		params[n++] = num[2];
		buf_printf(sql, " AND id < $%d::bigint", n);
	}
	if (q->qid && q->qid[0]) {
		params[n++] = q->qid;
		buf_printf(sql, " AND qid = $%d", n);
	}
	buf_printf(sql, " AND (lower(account) = lower($1) OR (qid <> '' AND qid IN (SELECT qid FROM postern_events"
		" WHERE kind = %d AND lower(account) = lower($1)))", EVENTS_QUEUED);
	if (n_senders) {
		buf_printf(sql, " OR lower(sender) IN (");
		for (size_t i = 0; i < n_senders; i++) {
			params[n++] = senders[i];
			buf_printf(sql, "%slower($%d)", i ? ", " : "", n);
		}
		buf_printf(sql, ")");
	}
	buf_printf(sql, ") ORDER BY id DESC LIMIT $3::bigint");
	return n;
}

long events_pg_list(struct events_pg *p, const struct events_query *q, struct events_record *out, size_t limit)
{
	const char *senders[SENDERS_MAX];
	size_t n_senders = 0;
	for (size_t i = 0; i < q->n_senders && n_senders < SENDERS_MAX; i++)
		if (q->senders[i] && q->senders[i][0])
			senders[n_senders++] = q->senders[i];
	const char *params[5 + SENDERS_MAX];
	char num[3][24], err[256] = "";
	struct buf sql;
	buf_init(&sql, 8192);
	int n = list_sql(&sql, q, params, num, senders, n_senders, limit);
	PGresult *r = events_pg_run(p, buf_cstr(&sql), n, params, err, sizeof(err));
	buf_free(&sql);
	if (!events_pg_ok(r)) {
		PQclear(r);
		return -1;
	}
	long rows = PQntuples(r);
	if ((size_t)rows > limit)
		rows = (long)limit;
	for (long i = 0; i < rows; i++)
		row_to_record(r, (int)i, &out[i]);
	PQclear(r);
	return rows;
}

long events_pg_refusals(struct events_pg *p, const char *group_sql, time_t since, struct events_count *out,
	size_t max)
{
	char sql[512], at[24], lim[24], err[256] = "";
	snprintf(sql, sizeof(sql), "SELECT k, n FROM (SELECT %s AS k, COUNT(*) AS n FROM postern_events WHERE kind = %d"
		" AND at >= $1::bigint GROUP BY 1) t WHERE k <> '' ORDER BY n DESC, k LIMIT $2::bigint", group_sql,
		EVENTS_REFUSED);
	snprintf(at, sizeof(at), "%lld", (long long)since);
	snprintf(lim, sizeof(lim), "%zu", max > LIST_MAX ? (size_t)LIST_MAX : max);
	PGresult *r = events_pg_run(p, sql, 2, (const char *[]){ at, lim }, err, sizeof(err));
	if (!events_pg_ok(r)) {
		PQclear(r);
		return -1;
	}
	long rows = PQntuples(r);
	if ((size_t)rows > max)
		rows = (long)max;
	for (long i = 0; i < rows; i++) {
		copy_col(r, (int)i, 0, out[i].key, sizeof(out[i].key));
		out[i].n = int_col(r, (int)i, 1);
	}
	PQclear(r);
	return rows;
}
