/* postgres_state.c - the state feed on PostgreSQL (directory.h, "state shared by the
 * nodes"): one table, postern_state_feed, that every node appends what happened to it
 * (login failures and successes, unblocks, POP3 logins, sent mail) and reads the other
 * nodes' rows from (serve/state_feed.c applies them).  Called from the feed's own thread
 * only, through the pool and deadlines of postgres.c (a database that is down costs that
 * thread a timeout, never the event loop).
 *
 * A batch goes in one statement with three parameters: the rows as lines of
 * space-separated fields (numbers, and names %XX-escaped so they hold no space or
 * newline), split by the server (regexp_split_to_table), plus the node and run id.  So a
 * batch is one round trip and every value is still a parameter, never SQL text. */
#include "directory/postgres_int.h"
#include "util/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[DIR_STATE_KIND_COUNT] = {
	[DIR_STATE_LOGIN_FAILED] = "login_failed", [DIR_STATE_LOGIN_OK] = "login_ok", [DIR_STATE_UNBLOCK] = "unblock",
	[DIR_STATE_POP_LOGIN] = "pop_login", [DIR_STATE_SENT] = "sent",
};

/* Bytes outside printable ASCII, the space and '%' become %XX. */
bool directory_state_escape(const char *in, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		bool plain = *p > 0x20 && *p < 0x7f && *p != '%';
		if (n + (plain ? 1 : 3) >= outsz)
			return false;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (outsz == 0)
		return false;
	out[n] = '\0';
	return true;
}

/* The reverse; a broken escape or a %00 (never written) is refused. */
bool directory_state_unescape(const char *in, char *out, size_t outsz)
{
	size_t n = 0;
	for (const char *p = in; *p; p++) {
		if (n + 1 >= outsz)
			return false;
		if (*p != '%') {
			out[n++] = *p;
			continue;
		}
		int hi = parse_hex_digit(p[1]), lo = hi < 0 ? -1 : parse_hex_digit(p[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return false;
		out[n++] = (char)(hi * 16 + lo);
		p += 2;
	}
	if (outsz == 0)
		return false;
	out[n] = '\0';
	return true;
}

#define ESC_MAX (DIR_STATE_NAME_MAX * 3)
#define LINE_MAX_FEED (48 + 3 * ESC_MAX)

/* One row as a line: at kind ip account domain n. */
static bool put_line(char *buf, size_t bufsz, size_t *len, const struct dir_state_row *r)
{
	char ip[ESC_MAX], account[ESC_MAX], domain[ESC_MAX];
	if (r->kind < 0 || r->kind >= DIR_STATE_KIND_COUNT || !directory_state_escape(r->ip, ip, sizeof(ip))
		|| !directory_state_escape(r->account, account, sizeof(account))
		|| !directory_state_escape(r->domain, domain, sizeof(domain)))
		return false;
	int w = snprintf(buf + *len, bufsz - *len, "%lld %s %s %s %s %lld\n", r->at, kind_names[r->kind], ip, account,
		domain, r->n);
	if (w < 0 || (size_t)w >= bufsz - *len)
		return false;
	*len += (size_t)w;
	return true;
}

enum dir_result pg_state_publish(struct dir_backend *b, const char *node, const char *run,
	const struct dir_state_row *rows, size_t n, char *err)
{
	if (n > DIR_STATE_BATCH_MAX)
		n = DIR_STATE_BATCH_MAX;
	size_t cap = n * LINE_MAX_FEED + 1, len = 0;
	char *text = malloc(cap);
	if (!text) {
		snprintf(err, DIR_ERROR_MAX, "out of memory");
		return DIR_ERROR;
	}
	text[0] = '\0';
	for (size_t i = 0; i < n; i++)
		(void)put_line(text, cap, &len, &rows[i]);   /* false: a name too long for the feed; that row stays local */
	text[len] = '\0';
	enum dir_result res = pg_exec(b, SQL("INSERT INTO postern_state_feed (at, node, run, kind, ip, account, domain, n) "
		"SELECT split_part(l, ' ', 1)::bigint, $2, $3, split_part(l, ' ', 2), split_part(l, ' ', 3), "
		"split_part(l, ' ', 4), split_part(l, ' ', 5), split_part(l, ' ', 6)::bigint "
		"FROM regexp_split_to_table($1, E'\\n') WITH ORDINALITY AS t(l, i) WHERE l <> '' ORDER BY i",
		text, node, run), false, "state feed publish", err);
	free(text);
	return res;
}

static bool kind_of(const char *name, enum dir_state_kind *out)
{
	for (int k = 0; k < DIR_STATE_KIND_COUNT; k++)
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum dir_state_kind)k;
			return true;
		}
	return false;   /* a kind of a newer node: skipped */
}

/* One result row into r; false when it does not decode (skipped). */
static bool row_of(PGresult *res, int i, struct dir_state_row *r)
{
	*r = (struct dir_state_row){ .id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
		.at = strtoll(PQgetvalue(res, i, 1), NULL, 10), .n = strtoll(PQgetvalue(res, i, 6), NULL, 10) };
	snprintf(r->node, sizeof(r->node), "%s", PQgetvalue(res, i, 7));
	return kind_of(PQgetvalue(res, i, 2), &r->kind) && directory_state_unescape(PQgetvalue(res, i, 3), r->ip, sizeof(r->ip))
		&& directory_state_unescape(PQgetvalue(res, i, 4), r->account, sizeof(r->account))
		&& directory_state_unescape(PQgetvalue(res, i, 5), r->domain, sizeof(r->domain));
}

enum dir_result pg_state_read(struct dir_backend *b, long long after_id, long long since, const char *skip_run,
	unsigned max, void (*cb)(void *arg, const struct dir_state_row *r), void *arg, unsigned *count, char *err)
{
	char after[24], from[24], limit[16];
	snprintf(after, sizeof(after), "%lld", after_id);
	snprintf(from, sizeof(from), "%lld", since);
	snprintf(limit, sizeof(limit), "%u", max ? max : 1);
	PGresult *res;
	enum dir_result r = pg_select(b, SQL_READ("SELECT id, at, kind, ip, account, domain, n, node FROM postern_state_feed "
		"WHERE id > $1::bigint AND at >= $2::bigint AND run <> $3 ORDER BY id LIMIT $4::int", after, from, skip_run, limit),
		&res, "state feed read", err);
	if (r == DIR_OK) {
		int rows = PQntuples(res);
		for (int i = 0; i < rows; i++) {
			struct dir_state_row row;
			if (row_of(res, i, &row))
				cb(arg, &row);
		}
		*count = (unsigned)rows;
	}
	PQclear(res);
	return r == DIR_NOT_FOUND ? DIR_OK : r;
}

enum dir_result pg_state_expire(struct dir_backend *b, long long before, char *err)
{
	char t[24];
	snprintf(t, sizeof(t), "%lld", before);
	return pg_exec(b, SQL("DELETE FROM postern_state_feed WHERE at < $1::bigint", t), false, "state feed expiry", err);
}
