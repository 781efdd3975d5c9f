/* test_mailbox.c - the POP3 view of a real Maildir in a temporary directory: new/ ->
 * cur/ with ":2,", stable UIDLs across opens, sizes from W= (or counted), [IN-USE]
 * for a second open, reading in chunks, a file renamed by another program, expunge
 * with quota accounting, and mail delivered during a session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/mailbox.h"
#include "store/maildir.h"
#include "store/quota.h"
#include "util/log.h"

static char tmpdir[64];
static char box[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-mailbox-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(box, sizeof(box), "%s/alice", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void deliver(const char *msg, char *name, size_t namesz)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/src-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	char err[300];
	assert_int_equal(maildir_deliver(box, "", fd, 0, strlen(msg), name, namesz, err, sizeof(err)), STORE_OK);
	close(fd);
}

static void put_file(const char *sub, const char *name, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s/%s", box, sub, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static size_t count_dir(const char *sub)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", box, sub);
	DIR *d = opendir(p);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static char *read_all(struct mailbox *mb, size_t i, size_t chunk)
{
	struct mailbox_reader *r = mailbox_reader_open(mb, i);
	assert_non_null(r);
	char *all = calloc(1, 1 << 16);
	size_t len = 0;
	ssize_t n;
	while ((n = mailbox_reader_read(r, all + len, chunk)) > 0)
		len += (size_t)n;
	assert_int_equal(n, 0);
	mailbox_reader_close(&r);
	assert_null(r);
	return all;
}

static void test_uid_from_name(void **state)
{
	(void)state;
	static const struct { const char *name, *uid; } rows[] = {
		{ "1700000000.M123P45Q6.host,S=100,W=103:2,S", "1700000000.M123P45Q6.host" },
		{ "1700000000.M123P45Q6.host,S=100,W=103:2,", "1700000000.M123P45Q6.host" },
		{ "1700000000.M123P45Q6.host,S=100,W=103", "1700000000.M123P45Q6.host" },
		{ "1700000000.M123P45Q6.host:2,RS", "1700000000.M123P45Q6.host" },
		{ "1234.5678_1.mail", "1234.5678_1.mail" },
		{ "a", "a" },
	};
	char uid[MAILBOX_UID_MAX + 1];
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		mailbox_uid_from_name(rows[i].name, uid);
		assert_string_equal(uid, rows[i].uid);
	}
	/* Too long, or bytes outside 0x21-0x7E: a hash, stable and within the rules. */
	char longname[120];
	memset(longname, 'x', 100);
	strcpy(longname + 100, ":2,S");
	mailbox_uid_from_name(longname, uid);
	assert_int_equal(strlen(uid), 41);
	assert_int_equal(uid[0], 'H');
	char again[MAILBOX_UID_MAX + 1];
	longname[101] = '\0';   /* other flags part: same uid */
	strcpy(longname + 100, ":2,RS");
	mailbox_uid_from_name(longname, again);
	assert_string_equal(uid, again);
	mailbox_uid_from_name("caf\xc3\xa9 name,S=1", uid);
	assert_int_equal(uid[0], 'H');
	for (const char *p = uid; *p; p++)
		assert_true(*p >= 0x21 && *p <= 0x7e);
}

static void test_open_list_read(void **state)
{
	(void)state;
	char n1[600], n2[600], n3[600];
	deliver("Subject: 1\r\n\r\nfirst\r\n", n1, sizeof(n1));
	deliver("Subject: 2\r\n\r\n.dot\r\nsecond\r\n", n2, sizeof(n2));
	deliver("Subject: 3\r\n\r\nthird", n3, sizeof(n3));
	/* A foreign file without S=/W=, with mixed line ends; an old one in cur/ with flags. */
	put_file("new", "1600000000.M1P1.other", "Subject: x\r\n\nmixed\n");
	put_file("cur", "1500000000.M1P1.older:2,S", "Subject: old\n\nold\n");
	assert_int_equal(count_dir("new"), 4);

	struct mailbox *mb;
	char err[300];
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	assert_int_equal(count_dir("new"), 0);
	assert_int_equal(count_dir("cur"), 5);
	assert_int_equal(mailbox_count(mb), 5);
	/* Delivery order: the oldest first. */
	assert_string_equal(mailbox_msg(mb, 0)->uid, "1500000000.M1P1.older");
	assert_string_equal(mailbox_msg(mb, 1)->uid, "1600000000.M1P1.other");
	/* The Maildir names moved to cur/ keep their base name plus ":2,". */
	char p[900];
	snprintf(p, sizeof(p), "%s/cur/%s:2,", box, n1 + 4);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	/* Sizes: W= (CRLF form) and S= (on disk). */
	assert_int_equal(mailbox_msg(mb, 2)->size, strlen("Subject: 1\r\n\r\nfirst\r\n"));
	assert_int_equal(mailbox_msg(mb, 2)->file_size, strlen("Subject: 1\n\nfirst\n"));
	assert_int_equal(mailbox_msg(mb, 4)->size, strlen("Subject: 3\r\n\r\nthird"));
	/* Counted for the foreign file: the CRLF stays, the bare LFs count twice. */
	assert_int_equal(mailbox_msg(mb, 1)->size, strlen("Subject: x\r\n\r\nmixed\r\n"));
	assert_int_equal(mailbox_msg(mb, 1)->file_size, strlen("Subject: x\r\n\nmixed\n"));
	/* UIDs: the base names. */
	char base[600];
	snprintf(base, sizeof(base), "%s", n2 + 4);
	*strchr(base, ',') = '\0';
	assert_string_equal(mailbox_msg(mb, 3)->uid, base);
	for (size_t i = 0; i < mailbox_count(mb); i++) {
		const char *u = mailbox_msg(mb, i)->uid;
		assert_true(strlen(u) >= 1 && strlen(u) <= 70);
		for (const char *c = u; *c; c++)
			assert_true(*c >= 0x21 && *c <= 0x7e);
	}
	/* Reading in chunks of any size gives the stored bytes. */
	for (size_t chunk = 1; chunk < 40; chunk += 7) {
		char *t = read_all(mb, 3, chunk);
		assert_string_equal(t, "Subject: 2\n\n.dot\nsecond\n");
		free(t);
	}
	/* Another program renames the file (flags): still readable. */
	char from[900], to[900];
	snprintf(from, sizeof(from), "%s/cur/%s", box, mailbox_msg(mb, 3)->name);
	snprintf(to, sizeof(to), "%s/cur/%sRS", box, mailbox_msg(mb, 3)->name);
	assert_int_equal(rename(from, to), 0);
	char *t = read_all(mb, 3, 4096);
	assert_string_equal(t, "Subject: 2\n\n.dot\nsecond\n");
	free(t);
	assert_null(mailbox_reader_open(mb, 99));
	assert_string_equal(mailbox_path(mb), box);
	assert_null(mailbox_msg(mb, 5));

	/* Stable across opens: the same order, the same uids. */
	char uids[5][MAILBOX_UID_MAX + 1];
	for (size_t i = 0; i < 5; i++)
		snprintf(uids[i], sizeof(uids[i]), "%s", mailbox_msg(mb, i)->uid);
	mailbox_close(&mb);
	assert_null(mb);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
		assert_int_equal(mailbox_count(mb), 5);
		for (size_t i = 0; i < 5; i++)
			assert_string_equal(mailbox_msg(mb, i)->uid, uids[i]);
		mailbox_close(&mb);
	}
}

static void test_in_use(void **state)
{
	(void)state;
	struct mailbox *a, *b;
	char err[300];
	assert_int_equal(mailbox_open(box, &a, err, sizeof(err)), MAILBOX_OK);
	assert_int_equal(mailbox_open(box, &b, err, sizeof(err)), MAILBOX_IN_USE);
	assert_null(b);
	assert_non_null(strstr(err, "in use"));
	mailbox_close(&a);
	assert_int_equal(mailbox_open(box, &b, err, sizeof(err)), MAILBOX_OK);
	mailbox_close(&b);
}

static void test_delivered_during_session(void **state)
{
	(void)state;
	struct mailbox *mb;
	char err[300], n[600];
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	size_t before = mailbox_count(mb);
	deliver("Subject: late\r\n\r\nlate\r\n", n, sizeof(n));
	assert_int_equal(mailbox_count(mb), before);
	mailbox_close(&mb);
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	assert_int_equal(mailbox_count(mb), before + 1);
	mailbox_close(&mb);
}

static void test_expunge_and_quota(void **state)
{
	(void)state;
	char err[300];
	assert_true(quota_set(box, 1000000, 0, err, sizeof(err)));
	struct quota_state q0;
	assert_true(quota_read(box, &q0, err, sizeof(err)));
	struct mailbox *mb;
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	size_t n = mailbox_count(mb);
	assert_true(n >= 3);
	assert_int_equal(q0.used_count, n);
	bool *del = calloc(n, sizeof(bool));
	del[0] = del[2] = true;
	uint64_t freed = mailbox_msg(mb, 0)->file_size + mailbox_msg(mb, 2)->file_size;
	char uid1[MAILBOX_UID_MAX + 1];
	snprintf(uid1, sizeof(uid1), "%s", mailbox_msg(mb, 1)->uid);
	size_t removed = 0;
	assert_true(mailbox_expunge(mb, del, &removed, err, sizeof(err)));
	assert_int_equal(removed, 2);
	mailbox_close(&mb);
	free(del);
	assert_int_equal(count_dir("cur"), n - 2);
	struct quota_state q1;
	assert_true(quota_read(box, &q1, err, sizeof(err)));
	assert_int_equal(q1.used_count, q0.used_count - 2);
	assert_int_equal(q1.used_bytes, q0.used_bytes - freed);
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	assert_int_equal(mailbox_count(mb), n - 2);
	assert_string_equal(mailbox_msg(mb, 0)->uid, uid1);
	mailbox_close(&mb);
}

static void test_duplicate_base_names(void **state)
{
	(void)state;
	put_file("cur", "1800000000.M1P1.dup,S=5:2,", "a\nb\n\n");
	put_file("cur", "1800000000.M1P1.dup,S=5:2,S", "a\nb\n\n");
	struct mailbox *mb;
	char err[300];
	assert_int_equal(mailbox_open(box, &mb, err, sizeof(err)), MAILBOX_OK);
	size_t n = mailbox_count(mb);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(mailbox_msg(mb, i)->uid, mailbox_msg(mb, j)->uid);
	mailbox_close(&mb);
}

int main(void)
{
	log_set_level(LOG_ERR + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_from_name),
		cmocka_unit_test(test_open_list_read),
		cmocka_unit_test(test_in_use),
		cmocka_unit_test(test_delivered_during_session),
		cmocka_unit_test(test_expunge_and_quota),
		cmocka_unit_test(test_duplicate_base_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
