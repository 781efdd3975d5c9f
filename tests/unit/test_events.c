/* test_events.c - events/: what a user's query returns (own login, owned senders,
 * messages queued by the login, paging, one message), the refusal counts, retention
 * by age and by the per-account cap at start, and a flood into a tiny queue while the
 * disk is stuck: appends stay fast, the excess is dropped and counted, the rest is
 * written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events/events.h"
#include "util/metrics.h"

static char dir[256];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_events.XXXXXX");
	assert_non_null(mkdtemp(dir));
	metrics_reset();
	return 0;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct events *open_store(unsigned queue_max, unsigned retention_days, unsigned account_max)
{
	struct events_config c = { .enabled = true, .queue_max = queue_max, .retention_days = retention_days,
		.account_max = account_max };
	struct events *e = NULL;
	char err[512];
	assert_true(events_open(&e, dir, &c, err, sizeof(err)));
	assert_non_null(e);
	return e;
}

static void add(struct events *e, enum events_kind kind, const char *account, const char *sender, const char *qid,
	const char *cause, const char *client)
{
	struct events_record r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	snprintf(r.account, sizeof(r.account), "%s", account);
	snprintf(r.sender, sizeof(r.sender), "%s", sender);
	snprintf(r.qid, sizeof(r.qid), "%s", qid);
	snprintf(r.cause_id, sizeof(r.cause_id), "%s", cause);
	snprintf(r.client_addr, sizeof(r.client_addr), "%s", client);
	snprintf(r.text, sizeof(r.text), "<script>alert(1)</script>");
	events_append(e, &r);
}

static long list(const char *account, const char *const *senders, size_t n_senders, long long before, const char *qid,
	struct events_record *out, size_t max)
{
	struct events_reader *r = NULL;
	char err[512];
	assert_true(events_reader_open(&r, dir, err, sizeof(err)));
	struct events_query q = { .account = account, .senders = senders, .n_senders = n_senders, .before_id = before,
		.qid = qid };
	long n = events_list(r, &q, out, max);
	events_reader_close(&r);
	return n;
}

static void test_disabled_is_null(void **state)
{
	(void)state;
	struct events_config c = { .enabled = false };
	struct events *e = (struct events *)1;
	char err[64];
	assert_true(events_open(&e, dir, &c, err, sizeof(err)));
	assert_null(e);
	events_append(NULL, NULL);   /* no-op */
	events_close(&e);
}

static void test_list_belongs(void **state)
{
	(void)state;
	struct events *e = open_store(64, 14, 0);
	add(e, EVENTS_REFUSED, "alice@example.test", "", "", "relay_denied", "192.0.2.1");      /* 1: her login */
	add(e, EVENTS_REFUSED, "", "Alice@Example.test", "", "auth_required", "192.0.2.2");      /* 2: her address */
	add(e, EVENTS_QUEUED, "alice@example.test", "other@example.test", "Q1", "", "192.0.2.1"); /* 3 */
	add(e, EVENTS_DELIVERED, "", "other@example.test", "Q1", "", "");                        /* 4: her message */
	add(e, EVENTS_REFUSED, "bob@example.test", "bob@example.test", "", "relay_denied", "192.0.2.9"); /* 5 */
	add(e, EVENTS_BOUNCED, "", "", "Q2", "", "");                                            /* 6: nobody's */
	add(e, EVENTS_REFUSED, "", "", "", "unknown_user", "192.0.2.2");                           /* 7: nobody's */
	events_close(&e);
	assert_null(e);
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/events.db", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);   /* addresses and subjects: the owner's alone */
	struct events_record out[16];
	const char *senders[] = { "", "alice@example.test" };
	long n = list("ALICE@example.test", senders, 2, 0, NULL, out, 16);
	assert_int_equal(n, 4);
	assert_true(out[0].id > out[1].id && out[1].id > out[2].id && out[2].id > out[3].id);   /* newest first */
	assert_int_equal(out[0].kind, EVENTS_DELIVERED);
	assert_string_equal(out[0].qid, "Q1");
	assert_int_equal(out[3].kind, EVENTS_REFUSED);
	assert_string_equal(out[3].cause_id, "relay_denied");
	assert_string_equal(out[3].text, "<script>alert(1)</script>");
	assert_true(out[3].when > 0);
	/* Paging: the two after the second newest. */
	long m = list("alice@example.test", senders, 2, out[1].id, NULL, out + 8, 2);
	assert_int_equal(m, 2);
	assert_int_equal(out[8].id, out[2].id);
	/* One message. */
	assert_int_equal(list("alice@example.test", NULL, 0, 0, "Q1", out, 16), 2);
	/* Another's message is not hers, whatever the id asked for. */
	assert_int_equal(list("alice@example.test", senders, 2, 0, "Q2", out, 16), 0);
	assert_int_equal(list("bob@example.test", NULL, 0, 0, NULL, out, 16), 1);
	/* No account: nothing (the null sender and anonymous refusals are nobody's). */
	assert_int_equal(list("", senders, 2, 0, NULL, out, 16), 0);
}

static void test_refusal_counts(void **state)
{
	(void)state;
	struct events *e = open_store(64, 14, 0);
	for (int i = 0; i < 3; i++)
		add(e, EVENTS_REFUSED, "", "", "", "unknown_user", "192.0.2.7");
	add(e, EVENTS_REFUSED, "carol@example.test", "", "", "relay_denied", "192.0.2.8");
	add(e, EVENTS_REFUSED, "Carol@example.test", "", "", "", "192.0.2.8");
	add(e, EVENTS_QUEUED, "carol@example.test", "", "Q9", "", "192.0.2.8");   /* not a refusal */
	events_close(&e);
	struct events_reader *r = NULL;
	char err[512];
	assert_true(events_reader_open(&r, dir, err, sizeof(err)));
	struct events_count c[8];
	assert_int_equal(events_refusals_by_cause(r, 0, c, 8), 3);
	assert_string_equal(c[0].key, "unknown_user");
	assert_int_equal(c[0].n, 3);
	assert_int_equal(events_refusals_top_accounts(r, 0, c, 8), 1);
	assert_string_equal(c[0].key, "carol@example.test");
	assert_int_equal(c[0].n, 2);
	assert_int_equal(events_refusals_top_clients(r, 0, c, 1), 1);
	assert_string_equal(c[0].key, "192.0.2.7");
	assert_int_equal(events_refusals_by_cause(r, time(NULL) + 60, c, 8), 0);
	events_reader_close(&r);
}

static long long count_rows(const char *where)
{
	char path[512], sql[256];
	snprintf(path, sizeof(path), "%s/events.db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM events WHERE %s", where);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void exec_on_file(const char *sql)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/events.db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_retention_at_start(void **state)
{
	(void)state;
	struct events *e = open_store(64, 14, 10);
	for (int i = 0; i < 15; i++)
		add(e, EVENTS_REFUSED, "dave@example.test", "", "", "relay_denied", "192.0.2.3");
	add(e, EVENTS_REFUSED, "erin@example.test", "", "", "relay_denied", "192.0.2.3");
	events_close(&e);
	char sql[256];
	snprintf(sql, sizeof(sql), "INSERT INTO events (at, kind, account) VALUES (%lld, 1, 'old@example.test'),"
		" (%lld, 1, 'old@example.test')", (long long)time(NULL) - 20 * 86400, (long long)time(NULL) - 13 * 86400);
	exec_on_file(sql);
	e = open_store(64, 14, 10);   /* the purge runs first thing */
	events_close(&e);
	assert_int_equal(count_rows("account = 'old@example.test'"), 1);   /* 20 days old: gone; 13: kept */
	assert_int_equal(count_rows("account = 'dave@example.test'"), 10); /* the cap, newest kept */
	assert_int_equal(count_rows("account = 'dave@example.test' AND id <= 5"), 0);
	assert_int_equal(count_rows("account = 'erin@example.test'"), 1);
}

#define FLOOD 2000
#define FLOOD_QUEUE 8

/* The disk is stuck (another connection holds the write lock): the writer waits in
 * SQLite's busy handler, appends go on at memory speed, the queue stays at its
 * bound and the rest is dropped and counted. */
static void test_flood_drops_without_blocking(void **state)
{
	(void)state;
	struct events *e = open_store(FLOOD_QUEUE, 14, 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/events.db", dir);
	sqlite3 *lock = NULL;
	assert_int_equal(sqlite3_open(path, &lock), SQLITE_OK);
	sqlite3_busy_timeout(lock, 5000);   /* the writer's start-up purge may hold it a moment */
	assert_int_equal(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	double t0 = metrics_now();
	for (int i = 0; i < FLOOD; i++)
		add(e, EVENTS_REFUSED, "", "", "", "unknown_user", "192.0.2.4");
	double spent = metrics_now() - t0;
	assert_true(spent < 0.5);   /* 2000 appends: microseconds each, never the disk's wait */
	unsigned long long dropped = events_dropped(e);
	assert_true(dropped >= FLOOD - 2 * FLOOD_QUEUE);
	assert_int_equal(metrics_counter_value(METRIC_EVENTS_DROPPED, NULL), dropped);
	assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	events_close(&e);   /* what was queued is written */
	assert_int_equal(count_rows("1"), (long long)(FLOOD - dropped));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disabled_is_null, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_list_belongs, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_refusal_counts, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_retention_at_start, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_flood_drops_without_blocking, make_dir, remove_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
