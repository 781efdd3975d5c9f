/* test_folder.c - the IMAP view of a Maildir (store/folder.h): new/ moved to cur/
 * with ":2,", UIDs in dovecot-uidlist in delivery order and never reused, flags and
 * keywords from names, INTERNALDATE from mtime, RFC822.SIZE from W= or counted,
 * sync reporting expunges/flags/exists in IMAP order, \Recent in one view only,
 * the dotlock (a live one waited for, a stale one removed), flag stores by rename,
 * keywords created on demand (26 at most), expunge of \Deleted only.
 *
 * Run with an argument (a directory), it is the helper of
 * tests/integration/test_imap_store.py instead: see dump_main() below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "store/folder.h"
#include "store/maildir.h"
#include "store/uidlist.h"

static char root[256];

static void put_file(const char *rel, const char *body, time_t mtime)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(body, fp);
	fclose(fp);
	if (mtime) {
		struct utimbuf ut = { mtime, mtime };
		utime(p, &ut);
	}
}

static char *slurp(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *fp = fopen(p, "r");
	if (!fp)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

static bool exists(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return access(p, F_OK) == 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_folder.XXXXXX");
	assert_non_null(mkdtemp(root));
	char err[256];
	assert_true(maildir_create(root, err, sizeof(err)));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

struct seen { char log[512]; };
static void on_expunged(void *a, uint32_t seq, uint32_t uid)
{
	struct seen *s = a;
	snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "X%u/%u ", seq, uid);
}
static void on_exists(void *a, size_t n)
{
	struct seen *s = a;
	snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "E%zu ", n);
}
static void on_flags(void *a, size_t seq)
{
	struct seen *s = a;
	snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "F%zu ", seq);
}

static void test_open_inbox(void **state)
{
	(void)state;
	put_file("new/1700000002.M5P1.host,S=9,W=11", "A: b\n\nhi\n", 1700000002);
	put_file("cur/1700000001.M9P1.host:2,SF", "A: b\r\n\r\nhi\r\n", 1700000001);
	put_file("cur/1700000003.M1P1.host:2,Rab", "X: y\n\nbody\n", 1700000003);
	put_file("dovecot-keywords", "0 $Forwarded\n1 work\n", 0);
	char err[256];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(folder_count(f), 3);
	assert_false(exists("new/1700000002.M5P1.host,S=9,W=11"));
	assert_true(exists("cur/1700000002.M5P1.host,S=9,W=11:2,"));
	/* Delivery order: UIDs 1, 2, 3. */
	const struct folder_msg *m = folder_msg(f, 0);
	assert_int_equal(m->uid, 1);
	assert_int_equal(m->flags & FOLDER_STORABLE, FOLDER_SEEN | FOLDER_FLAGGED);
	assert_int_equal(m->internaldate, 1700000001);
	assert_int_equal(m->size, 12);                          /* CRLF already: counted as is */
	m = folder_msg(f, 1);
	assert_int_equal(m->uid, 2);
	assert_int_equal(m->size, 11);                          /* from W= */
	assert_int_equal(m->flags & FOLDER_STORABLE, 0);
	m = folder_msg(f, 2);
	assert_int_equal(m->flags & FOLDER_STORABLE, FOLDER_ANSWERED);
	assert_int_equal(m->keywords, 3);
	assert_int_equal(m->size, 14);                          /* 11 octets + 3 LFs */
	assert_string_equal(folder_keyword_name(f, 0), "$Forwarded");
	assert_string_equal(folder_keyword_name(f, 1), "work");
	assert_null(folder_keyword_name(f, 2));
	assert_int_equal(folder_uidnext(f), 4);
	assert_true(folder_uidvalidity(f) > 0);
	/* Every message arrived before this process looked: recent here. */
	assert_true(folder_msg(f, 0)->flags & FOLDER_RECENT);
	char *ul = slurp("dovecot-uidlist");
	char want[256];
	snprintf(want, sizeof(want), "3 V%u N4 G", folder_uidvalidity(f));
	assert_memory_equal(ul, want, strlen(want));
	assert_non_null(strstr(ul, "\n1 :1700000001.M9P1.host\n2 W11 :1700000002.M5P1.host,S=9,W=11\n3 :1700000003.M1P1.host\n"));
	/* A second view in this process sees the same UIDs; none recent for it. */
	struct folder *g = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(g);
	assert_int_equal(folder_count(g), 3);
	assert_int_equal(folder_msg(g, 2)->uid, 3);
	assert_false(folder_msg(g, 2)->flags & FOLDER_RECENT);
	assert_int_equal(folder_uidvalidity(g), folder_uidvalidity(f));
	folder_close(&g);
	folder_close(&f);
	assert_null(f);
	errno = 0;
	assert_null(folder_open(root, "Nope", false, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
}

static void test_sync_reports(void **state)
{
	(void)state;
	put_file("cur/1700000001.M1P1.h:2,", "a\n", 0);
	put_file("cur/1700000002.M1P1.h:2,", "b\n", 0);
	put_file("cur/1700000003.M1P1.h:2,", "c\n", 0);
	char err[256];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	struct folder *other = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	assert_non_null(other);
	struct seen s = { "" };
	struct folder_changes ch = { on_expunged, on_exists, on_flags, &s };
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "");
	/* Another program: flags on 3, 1 and 2 removed, one delivered. */
	char a[512], b[512];
	snprintf(a, sizeof(a), "%s/cur/1700000003.M1P1.h:2,", root);
	snprintf(b, sizeof(b), "%s/cur/1700000003.M1P1.h:2,S", root);
	assert_int_equal(rename(a, b), 0);
	snprintf(a, sizeof(a), "%s/cur/1700000001.M1P1.h:2,", root);
	unlink(a);
	snprintf(a, sizeof(a), "%s/cur/1700000002.M1P1.h:2,", root);
	unlink(a);
	put_file("new/1700000009.M1P1.h", "d\n", 0);
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "X2/2 X1/1 F1 E2 ");
	assert_int_equal(folder_count(f), 2);
	assert_int_equal(folder_msg(f, 0)->uid, 3);
	assert_int_equal(folder_msg(f, 1)->uid, 4);
	assert_true(folder_msg(f, 0)->flags & FOLDER_SEEN);
	/* The UID of a gone message is never given again: nextuid only grows. */
	assert_int_equal(folder_uidnext(f), 5);
	/* The other view: in-process counter moved, the same picture. */
	assert_true(folder_changed_since_sync(other));
	struct seen s2 = { "" };
	ch.arg = &s2;
	assert_true(folder_sync(other, &ch, err, sizeof(err)));
	assert_string_equal(s2.log, "X2/2 X1/1 F1 E2 ");
	/* UID 4 went to the first view that saw it. */
	assert_true(folder_msg(f, 1)->flags & FOLDER_RECENT);
	assert_false(folder_msg(other, 1)->flags & FOLDER_RECENT);
	folder_close(&other);
	folder_close(&f);
}

static void test_store_and_expunge(void **state)
{
	(void)state;
	put_file("cur/1700000001.M1P1.h,S=2:2,P", "a\n", 0);
	put_file("cur/1700000002.M1P1.h,S=2:2,", "b\n", 0);
	char err[256];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	struct folder *g = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	int kw = folder_keyword_index(f, "Work", true);
	assert_int_equal(kw, 0);
	assert_int_equal(folder_keyword_index(f, "work", false), 0);     /* any case */
	assert_int_equal(folder_keyword_index(f, "bad name", true), -1);
	assert_string_equal(slurp("dovecot-keywords"), "0 Work\n");
	uint64_t ms0 = folder_highestmodseq(f), ms;
	assert_true(folder_store_flags(f, 0, FOLDER_SEEN | FOLDER_DELETED, 1ull << kw, &ms, err, sizeof(err)));
	assert_true(ms > ms0);
	assert_int_equal(folder_highestmodseq(f), ms);
	/* P ("passed") is not IMAP's, and stays. */
	assert_true(exists("cur/1700000001.M1P1.h,S=2:2,PSTa"));
	assert_string_equal(folder_msg(f, 0)->filename, "1700000001.M1P1.h,S=2:2,PSTa");
	/* The other view sees the change at its next sync. */
	struct seen s = { "" };
	struct folder_changes ch = { on_expunged, on_exists, on_flags, &s };
	assert_true(folder_sync(g, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "F1 ");
	assert_int_equal(folder_msg(g, 0)->keywords, 1);
	assert_string_equal(folder_keyword_name(g, 0), "Work");
	/* Expunge: only messages with \Deleted go. */
	uint32_t uids[] = { 1, 2 };
	size_t removed;
	assert_true(folder_expunge(f, uids, 2, &removed, err, sizeof(err)));
	assert_int_equal(removed, 1);
	s.log[0] = '\0';
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "X1/1 ");
	assert_int_equal(folder_count(f), 1);
	/* Keywords: 26 at most. */
	char name[16];
	for (int i = 1; i < 26; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		assert_int_equal(folder_keyword_index(f, name, true), i);
	}
	assert_int_equal(folder_keyword_index(f, "one-too-many", true), -1);
	/* Read-only views store nothing. */
	struct folder *ro = folder_open(root, "INBOX", true, err, sizeof(err));
	assert_false(folder_store_flags(ro, 0, FOLDER_SEEN, 0, NULL, err, sizeof(err)));
	folder_close(&ro);
	folder_close(&g);
	folder_close(&f);
}

static void test_lock(void **state)
{
	(void)state;
	char err[256];
	put_file("cur/1700000001.M1P1.h:2,", "a\n", 0);
	/* A stale lock (its writer died two minutes ago or more) is taken over. */
	put_file("dovecot-uidlist.lock", "", time(NULL) - UIDLIST_LOCK_STALE - 5);
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(folder_count(f), 1);
	assert_false(exists("dovecot-uidlist.lock"));
	folder_close(&f);
	/* A lost uidlist: rebuilt with a new UIDVALIDITY. */
	char *ul = slurp("dovecot-uidlist");
	unsigned v1 = 0;
	assert_int_equal(sscanf(ul, "3 V%u", &v1), 1);
	char p[512];
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", root);
	unlink(p);
	put_file("dovecot-uidlist", "not a uidlist\n", 0);
	f = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_not_equal(folder_uidvalidity(f), v1);
	folder_close(&f);
}

static void test_folders(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(folder_create(root, "Sent", err, sizeof(err)), STORE_OK);
	assert_int_equal(folder_create(root, "Sent", err, sizeof(err)), STORE_EXISTS);
	assert_int_equal(folder_create(root, "a.b", err, sizeof(err)), STORE_CANNOT);
	assert_true(exists(".Sent/cur"));
	assert_true(exists(".Sent/maildirfolder"));
	struct folder *f = folder_open(root, "Sent", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(folder_count(f), 0);
	assert_int_equal(folder_uidnext(f), 1);
	folder_close(&f);
}

/* --- the integration test's helper ----------------------------------------------------- */

/* test_folder DIR dump          : "uid flags keywords" per message
 * test_folder DIR store UID +F  : add flags/keywords (\Seen \Flagged... or a keyword)
 * test_folder DIR expunge       : expunge every \Deleted message */
static int dump_main(int argc, char **argv)
{
	char err[512];
	struct folder *f = folder_open(argv[1], argc > 3 && strcmp(argv[2], "dump") == 0 ? argv[3] : "INBOX",
		false, err, sizeof(err));
	if (!f) {
		fprintf(stderr, "open: %s\n", err);
		return 2;
	}
	static const char *sys[] = { "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft" };
	if (argc >= 5 && strcmp(argv[2], "store") == 0) {
		size_t i = folder_find_uid(f, (uint32_t)strtoul(argv[3], NULL, 10));
		const struct folder_msg *m = folder_msg(f, i);
		if (!m)
			return 3;
		uint32_t flags = m->flags & FOLDER_STORABLE;
		uint64_t kw = m->keywords;
		for (int a = 4; a < argc; a++) {
			bool known = false;
			for (int k = 0; k < 5; k++)
				if (strcasecmp(argv[a], sys[k]) == 0) {
					flags |= 1u << k;
					known = true;
				}
			int idx = known ? -1 : folder_keyword_index(f, argv[a], true);
			if (idx >= 0)
				kw |= 1ull << idx;
		}
		if (!folder_store_flags(f, i, flags, kw, NULL, err, sizeof(err)))
			return 4;
	} else if (argc >= 3 && strcmp(argv[2], "expunge") == 0) {
		uint32_t *uids = calloc(folder_count(f) + 1, sizeof(uint32_t));
		for (size_t i = 0; i < folder_count(f); i++)
			uids[i] = folder_msg(f, i)->uid;
		bool ok = folder_expunge(f, uids, folder_count(f), NULL, err, sizeof(err));
		free(uids);
		if (!ok)
			return 5;
	}
	printf("uidvalidity %u uidnext %u\n", folder_uidvalidity(f), folder_uidnext(f));
	for (size_t i = 0; i < folder_count(f); i++) {
		const struct folder_msg *m = folder_msg(f, i);
		printf("%u", m->uid);
		for (int k = 0; k < 5; k++)
			if (m->flags & (1u << k))
				printf(" %s", sys[k]);
		for (int k = 0; k < FOLDER_KEYWORDS_MAX; k++)
			if ((m->keywords & (1ull << k)) && folder_keyword_name(f, k))
				printf(" %s", folder_keyword_name(f, k));
		printf("\n");
	}
	folder_close(&f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3)
		return dump_main(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_and_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
