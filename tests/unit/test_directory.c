/* test_directory.c - recipient resolution (directory/resolve.c) against a
 * temporary SQLite directory: users, aliases, unknown addresses, domains that are
 * not ours, the postmaster (RFC 5321 §4.5.1), case folding, the quota recorded for an
 * account, a directory that cannot be read; and where store/ puts the resolved mailbox.
 * The lookups keep their statements prepared: what another handle writes is seen at
 * once, and two threads can share one handle (the decision threads do).  The admin
 * flag (schema version 5) and the migration of a version 4 database to it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "store/layout.h"

static char dir_path[] = "/tmp/postern-test-directory-XXXXXX";
static struct directory *dir;
static struct conf cf;

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir_path));
	char err[256];
	assert_true(directory_open(&dir, dir_path, err, sizeof(err)));
	conf_defaults(&cf);
	snprintf(cf.data_dir, sizeof(cf.data_dir), "%s", dir_path);
	snprintf(cf.hostname, sizeof(cf.hostname), "mx.example.test");
	/* One domain from the configuration, one from the directory. */
	snprintf(cf.local_domains[0], sizeof(cf.local_domains[0]), "conf.example");
	cf.n_local_domains = 1;
	assert_int_equal(directory_domain_add(dir, "example.test"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "alice@example.test", "x"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "bob@conf.example", "x"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "carol@example.test", "x"), DIR_OK);
	assert_int_equal(directory_alias_add(dir, "sales@example.test", "alice@example.test"), DIR_OK);
	assert_int_equal(directory_alias_add(dir, "gone@example.test", "carol@example.test"), DIR_OK);
	assert_int_equal(directory_user_del(dir, "carol@example.test"), DIR_OK);   /* alias left dangling */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	directory_close(&dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir_path);
	return system(cmd) == 0 ? 0 : -1;
}

static enum dir_rcpt_kind resolve(const char *address, struct dir_recipient *r)
{
	return directory_resolve_recipient(dir, &cf, address, r);
}

static void assert_mailbox(const struct dir_recipient *r, const char *domain, const char *local, const char *user)
{
	assert_true(directory_recipient_has_mailbox(r));
	assert_string_equal(r->mailbox.domain, domain);
	assert_string_equal(r->mailbox.local, local);
	assert_string_equal(r->user, user);
}

static void test_user(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(resolve("alice@example.test", &r), DIR_RCPT_USER);
	assert_mailbox(&r, "example.test", "alice", "alice@example.test");
	assert_int_equal(r.quota, 0);
	/* A user of a domain listed only in the configuration. */
	assert_int_equal(resolve("bob@conf.example", &r), DIR_RCPT_USER);
	assert_mailbox(&r, "conf.example", "bob", "bob@conf.example");
}

static void test_case_folding(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(resolve("Alice@Example.TEST", &r), DIR_RCPT_USER);
	assert_mailbox(&r, "example.test", "alice", "alice@example.test");
	assert_int_equal(resolve("SALES@example.Test", &r), DIR_RCPT_ALIAS);
	assert_mailbox(&r, "example.test", "alice", "alice@example.test");
	assert_int_equal(resolve("BOB@CONF.EXAMPLE", &r), DIR_RCPT_USER);
}

static void test_alias(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(resolve("sales@example.test", &r), DIR_RCPT_ALIAS);
	assert_mailbox(&r, "example.test", "alice", "alice@example.test");
	/* An alias whose user was deleted leads nowhere. */
	assert_int_equal(resolve("gone@example.test", &r), DIR_RCPT_UNKNOWN);
	assert_false(directory_recipient_has_mailbox(&r));
}

static void test_no_catch_all(void **state)
{
	(void)state;
	/* Aliases name one address: there is no "@domain" catch-all. */
	assert_int_equal(directory_alias_add(dir, "@example.test", "alice@example.test"), DIR_INVALID);
	struct dir_recipient r;
	assert_int_equal(resolve("anyone@example.test", &r), DIR_RCPT_UNKNOWN);
}

static void test_unknown_and_not_local(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(resolve("nobody@example.test", &r), DIR_RCPT_UNKNOWN);
	assert_false(directory_recipient_has_mailbox(&r));
	assert_int_equal(resolve("nobody@conf.example", &r), DIR_RCPT_UNKNOWN);
	assert_int_equal(resolve("alice@elsewhere.example", &r), DIR_RCPT_NOT_LOCAL);
	assert_false(directory_recipient_has_mailbox(&r));
	/* A local part too long to be anyone's. */
	char longer[DIR_ADDRESS_MAX + 40];
	memset(longer, 'a', DIR_ADDRESS_MAX + 10);
	snprintf(longer + DIR_ADDRESS_MAX + 10, 20, "@example.test");
	assert_int_equal(resolve(longer, &r), DIR_RCPT_UNKNOWN);
}

static void test_postmaster(void **state)
{
	(void)state;
	struct dir_recipient r;
	/* No postmaster user and none configured: the domain's own mailbox. */
	cf.postmaster[0] = '\0';
	assert_int_equal(resolve("PostMaster@example.test", &r), DIR_RCPT_POSTMASTER);
	assert_mailbox(&r, "example.test", "postmaster", "");
	/* Bare <postmaster>: the first local domain's. */
	assert_int_equal(resolve("postmaster", &r), DIR_RCPT_POSTMASTER);
	assert_mailbox(&r, "conf.example", "postmaster", "");
	/* Configured to be a user: that user's mailbox. */
	snprintf(cf.postmaster, sizeof(cf.postmaster), "alice@example.test");
	assert_int_equal(resolve("postmaster@conf.example", &r), DIR_RCPT_POSTMASTER);
	assert_mailbox(&r, "example.test", "alice", "alice@example.test");
	/* Configured to someone who is not a user here: the domain's own mailbox again. */
	snprintf(cf.postmaster, sizeof(cf.postmaster), "admin@elsewhere.example");
	assert_int_equal(resolve("postmaster@example.test", &r), DIR_RCPT_POSTMASTER);
	assert_mailbox(&r, "example.test", "postmaster", "");
	/* Not ours: not our postmaster either. */
	assert_int_equal(resolve("postmaster@elsewhere.example", &r), DIR_RCPT_NOT_LOCAL);
	/* A real postmaster user wins. */
	assert_int_equal(directory_user_add(dir, "postmaster@example.test", "x"), DIR_OK);
	assert_int_equal(resolve("postmaster@example.test", &r), DIR_RCPT_USER);
	assert_mailbox(&r, "example.test", "postmaster", "postmaster@example.test");
	assert_int_equal(directory_user_del(dir, "postmaster@example.test"), DIR_OK);
	cf.postmaster[0] = '\0';
}

static void test_bare_postmaster_without_local_domains(void **state)
{
	(void)state;
	struct dir_recipient r;
	size_t n = cf.n_local_domains;
	cf.n_local_domains = 0;
	/* The host name is no domain of ours here, so neither is its postmaster. */
	assert_int_equal(resolve("postmaster", &r), DIR_RCPT_NOT_LOCAL);
	snprintf(cf.hostname, sizeof(cf.hostname), "example.test");
	assert_int_equal(resolve("postmaster", &r), DIR_RCPT_POSTMASTER);
	assert_mailbox(&r, "example.test", "postmaster", "");
	snprintf(cf.hostname, sizeof(cf.hostname), "mx.example.test");
	cf.n_local_domains = n;
}

static void test_quota(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(directory_user_quota_set(dir, "Alice@example.test", 500000), DIR_OK);
	assert_int_equal(resolve("sales@example.test", &r), DIR_RCPT_ALIAS);
	assert_int_equal(r.quota, 500000);
	assert_int_equal(directory_user_quota_set(dir, "nobody@example.test", 1), DIR_NOT_FOUND);
	assert_int_equal(directory_user_quota_set(dir, "not an address", 1), DIR_INVALID);
	assert_int_equal(directory_user_quota_set(dir, "alice@example.test", 0), DIR_OK);
	assert_int_equal(resolve("alice@example.test", &r), DIR_RCPT_USER);
	assert_int_equal(r.quota, 0);
}

/* The front's contract with every backend: addresses reach it valid and lower case. */
static void test_front_normalises(void **state)
{
	(void)state;
	assert_int_equal(directory_domain_exists(dir, "EXAMPLE.Test"), DIR_OK);
	assert_int_equal(directory_domain_add(dir, "Example.TEST"), DIR_EXISTS);
	assert_int_equal(directory_domain_add(dir, "bad..example"), DIR_INVALID);
	assert_int_equal(directory_user_add(dir, "ALICE@example.test", "x"), DIR_EXISTS);
	assert_int_equal(directory_user_add(dir, ".dot@example.test", "x"), DIR_INVALID);
	assert_int_equal(directory_user_add(dir, "Erin@Example.Test", "x"), DIR_OK);
	struct dir_user u;
	assert_int_equal(directory_user_lookup(dir, "ERIN", "example.TEST", &u), DIR_OK);
	assert_string_equal(u.address, "erin@example.test");
	assert_string_equal(u.local, "erin");
	assert_int_equal(directory_alias_add(dir, "Erin@example.test", "alice@example.test"), DIR_EXISTS);
	assert_int_equal(directory_alias_add(dir, "Info@Example.Test", "ERIN@example.test"), DIR_OK);
	char target[DIR_ADDRESS_MAX];
	assert_int_equal(directory_alias_lookup(dir, "INFO", "example.test", target, sizeof(target)), DIR_OK);
	assert_string_equal(target, "erin@example.test");
	/* Sender ownership: the address itself, an alias to the user, a grant. */
	assert_int_equal(directory_sender_owned(dir, "erin@example.test", "ERIN@example.test"), DIR_OK);
	assert_int_equal(directory_sender_owned(dir, "Erin@example.test", "info@EXAMPLE.test"), DIR_OK);
	assert_int_equal(directory_sender_owned(dir, "erin@example.test", "sales@example.test"), DIR_NOT_FOUND);
	assert_int_equal(directory_sender_allow(dir, "ERIN@example.test", "@Example.Test"), DIR_OK);
	assert_int_equal(directory_sender_owned(dir, "erin@example.test", "sales@example.test"), DIR_OK);
	assert_int_equal(directory_sender_deny(dir, "erin@EXAMPLE.test", "@example.TEST"), DIR_OK);
	assert_int_equal(directory_sender_owned(dir, "erin@example.test", "sales@example.test"), DIR_NOT_FOUND);
	/* Too long to be anyone: not found, never truncated into someone. */
	char longer[DIR_ADDRESS_MAX * 3];
	memset(longer, 'e', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(directory_user_lookup(dir, longer, "example.test", NULL), DIR_NOT_FOUND);
	struct dir_login_hash h;
	assert_int_equal(directory_login_hash(dir, longer, NULL, &h), DIR_NOT_FOUND);
	assert_int_equal(directory_login_hash(dir, "ERIN@Example.test", NULL, &h), DIR_OK);
	assert_string_equal(h.canonical, "erin@example.test");
	assert_int_equal(directory_alias_del(dir, "info@example.test"), DIR_OK);
	assert_int_equal(directory_user_del(dir, "ERIN@example.test"), DIR_OK);
}

static void test_mailbox_path(void **state)
{
	(void)state;
	struct dir_recipient r;
	char path[1400], want[1400];
	assert_int_equal(resolve("Sales@Example.test", &r), DIR_RCPT_ALIAS);
	assert_true(store_mailbox_path(cf.data_dir, r.mailbox.domain, r.mailbox.local, path, sizeof(path)));
	snprintf(want, sizeof(want), "%s/mail/example.test/alice", dir_path);
	assert_string_equal(path, want);
	char small[16];
	assert_false(store_mailbox_path(cf.data_dir, r.mailbox.domain, r.mailbox.local, small, sizeof(small)));
}

/* Last: breaks the database under the open handle. */
/* The admin commands write through a handle of their own while the server's handles
 * keep their lookups prepared: no read transaction may outlive a lookup. */
static void test_other_handle_writes_seen(void **state)
{
	(void)state;
	struct dir_recipient r;
	assert_int_equal(resolve("dave@example.test", &r), DIR_RCPT_UNKNOWN);
	struct directory *admin;
	char err[256];
	assert_true(directory_open(&admin, dir_path, err, sizeof(err)));
	assert_int_equal(directory_user_add(admin, "dave@example.test", "x"), DIR_OK);
	assert_int_equal(resolve("dave@example.test", &r), DIR_RCPT_USER);
	assert_int_equal(directory_alias_add(admin, "d@example.test", "dave@example.test"), DIR_OK);
	assert_int_equal(resolve("d@example.test", &r), DIR_RCPT_ALIAS);
	assert_int_equal(directory_user_del(admin, "dave@example.test"), DIR_OK);
	assert_int_equal(directory_alias_del(admin, "d@example.test"), DIR_OK);
	assert_int_equal(resolve("dave@example.test", &r), DIR_RCPT_UNKNOWN);
	assert_int_equal(resolve("d@example.test", &r), DIR_RCPT_UNKNOWN);
	directory_close(&admin);
}

#define SHARED_LOOKUPS 3000

static void *lookups_thread(void *arg)
{
	unsigned *wrong = arg;
	for (unsigned i = 0; i < SHARED_LOOKUPS; i++) {
		struct dir_recipient r;
		bool user = i % 2 == 0;
		enum dir_rcpt_kind k = resolve(user ? "alice@example.test" : "nobody@example.test", &r);
		if (k != (user ? DIR_RCPT_USER : DIR_RCPT_UNKNOWN) || (user && strcmp(r.user, "alice@example.test") != 0))
			(*wrong)++;
	}
	return NULL;
}

/* Two threads on one handle, as the two decision threads: each lookup gets its own
 * answer, never the other thread's row. */
static void test_threads_share_handle(void **state)
{
	(void)state;
	pthread_t t[2];
	unsigned wrong[2] = { 0, 0 };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, lookups_thread, &wrong[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(wrong[0] + wrong[1], 0);
}

static void test_directory_unreadable(void **state)
{
	(void)state;
	char path[1100];
	snprintf(path, sizeof(path), "%s/directory.db", dir_path);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE users", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct dir_recipient r;
	assert_int_equal(resolve("alice@example.test", &r), DIR_RCPT_TEMPFAIL);
	assert_false(directory_recipient_has_mailbox(&r));
	assert_non_null(strstr(r.error, "users"));
	/* The domain is still known to be remote without reading users. */
	assert_int_equal(resolve("alice@elsewhere.example", &r), DIR_RCPT_NOT_LOCAL);
}

static void test_admin_flag(void **state)
{
	(void)state;
	struct dir_user u;
	assert_int_equal(directory_user_lookup(dir, "alice", "example.test", &u), DIR_OK);
	assert_false(u.admin);
	assert_int_equal(directory_user_admin_set(dir, "Alice@Example.test", true), DIR_OK);
	assert_int_equal(directory_user_lookup(dir, "alice", "example.test", &u), DIR_OK);
	assert_true(u.admin);
	assert_int_equal(directory_user_admin_set(dir, "alice@example.test", false), DIR_OK);
	assert_int_equal(directory_user_lookup(dir, "alice", "example.test", &u), DIR_OK);
	assert_false(u.admin);
	assert_int_equal(directory_user_admin_set(dir, "nobody@example.test", true), DIR_NOT_FOUND);
	assert_int_equal(directory_user_admin_set(dir, "not an address", true), DIR_INVALID);
}

/* A database a version 4 server left (users without the admin column) opens as
 * version 5: its users are not administrators until made so. */
static void test_migration_from_v4(void **state)
{
	(void)state;
	char path[] = "/tmp/postern-test-directory-v4-XXXXXX", db_path[128], err[256];
	assert_non_null(mkdtemp(path));
	snprintf(db_path, sizeof(db_path), "%s/directory.db", path);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE domains (name TEXT PRIMARY KEY NOT NULL, created INTEGER NOT NULL);"
		"CREATE TABLE users (address TEXT PRIMARY KEY NOT NULL, local TEXT NOT NULL, domain TEXT NOT NULL,"
		" password_hash TEXT NOT NULL, quota INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
		" limit_messages_per_hour INTEGER, limit_recipients_per_day INTEGER);"
		"INSERT INTO domains VALUES ('old.example', 0);"
		"INSERT INTO users(address, local, domain, password_hash, created) VALUES ('dan@old.example', 'dan', 'old.example', 'x', 0);"
		"PRAGMA user_version=4;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct directory *d = NULL;
	assert_true(directory_open(&d, path, err, sizeof(err)));
	struct dir_user u;
	assert_int_equal(directory_user_lookup(d, "dan", "old.example", &u), DIR_OK);
	assert_false(u.admin);
	assert_int_equal(directory_user_admin_set(d, "dan@old.example", true), DIR_OK);
	assert_int_equal(directory_user_lookup(d, "dan", "old.example", &u), DIR_OK);
	assert_true(u.admin);
	assert_string_equal(u.home_node, "");   /* version 6: no home node until one is set */
	assert_int_equal(directory_user_home_set(d, "dan@old.example", "node-2"), DIR_OK);
	assert_int_equal(directory_user_lookup(d, "dan", "old.example", &u), DIR_OK);
	assert_string_equal(u.home_node, "node-2");
	assert_int_equal(directory_user_home_set(d, "dan@old.example", "Node 2"), DIR_INVALID);
	assert_int_equal(directory_user_home_set(d, "dan@old.example", ""), DIR_OK);
	assert_int_equal(directory_user_lookup(d, "dan", "old.example", &u), DIR_OK);
	assert_string_equal(u.home_node, "");
	struct dir_node n;
	char nerr[DIR_ERROR_MAX];
	assert_int_equal(directory_node_get(d, "node-2", &n, nerr), DIR_ERROR);   /* SQLite has no registry */
	assert_non_null(strstr(nerr, "only with the postgresql directory backend"));
	directory_close(&d);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 6);
	sqlite3_finalize(st);
	sqlite3_close(db);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_case_folding),
		cmocka_unit_test(test_alias),
		cmocka_unit_test(test_no_catch_all),
		cmocka_unit_test(test_unknown_and_not_local),
		cmocka_unit_test(test_postmaster),
		cmocka_unit_test(test_bare_postmaster_without_local_domains),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_front_normalises),
		cmocka_unit_test(test_mailbox_path),
		cmocka_unit_test(test_other_handle_writes_seen),
		cmocka_unit_test(test_threads_share_handle),
		cmocka_unit_test(test_admin_flag),
		cmocka_unit_test(test_directory_unreadable),
		cmocka_unit_test(test_migration_from_v4),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
