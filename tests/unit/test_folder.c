/* test_folder.c - the IMAP view of a Maildir (store/folder.h): new/ moved to cur/
 * with ":2,", UIDs in dovecot-uidlist in delivery order and never reused, flags and
 * keywords from names, INTERNALDATE from mtime, RFC822.SIZE from W= or counted,
 * sync reporting expunges/flags/exists in IMAP order, \Recent in one view only,
 * the dotlock (a live one waited for, a stale one removed), flag stores by rename,
 * keywords created on demand (26 at most), expunge of \Deleted only.
 *
 * Run with arguments (a directory and a command), it is the helper of
 * tests/integration/test_imap_store.py instead: see helper_main() below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "store/folder.h"
#include "store/mailbox.h"
#include "store/maildir.h"
#include "store/quota.h"
#include "store/uidlist.h"

static char root[256];

/* open(2), observed: how many message files (".../cur/...") a call opened. */
static unsigned msg_opens;
int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? (mode_t)va_arg(ap, int) : 0;
	va_end(ap);
	if (strstr(path, "/cur/"))
		msg_opens++;
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

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
	/* POP3's UIDL (the base name) is what it was. */
	char u1[MAILBOX_UID_MAX + 1], u2[MAILBOX_UID_MAX + 1];
	mailbox_uid_from_name("1700000001.M1P1.h,S=2:2,P", u1);
	mailbox_uid_from_name(folder_msg(f, 0)->filename, u2);
	assert_string_equal(u1, u2);
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
	/* A batch: both renamed, one fsync at the end. */
	folder_batch_begin(f);
	assert_true(folder_store_flags(f, 1, FOLDER_FLAGGED, 0, NULL, err, sizeof(err)));
	assert_true(folder_store_flags(f, 1, 0, 0, NULL, err, sizeof(err)));
	assert_true(folder_batch_end(f));
	assert_true(exists("cur/1700000002.M1P1.h,S=2:2,"));
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

/* Views of one folder share its message table (folder_view.c) and differ only where
 * they must: flags one session stored and the others were not yet told of, and \Recent,
 * which is one session's. */
static void test_shared_table(void **state)
{
	(void)state;
	for (int k = 1; k <= 20; k++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "cur/17000000%02d.M1P1.h,S=2:2,", k);
		put_file(rel, "a\n", 1700000000 + k);
	}
	char err[256];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	struct folder *g = folder_open(root, "INBOX", false, err, sizeof(err));
	struct folder *ro = folder_open(root, "INBOX", true, err, sizeof(err));
	assert_non_null(f);
	assert_non_null(g);
	assert_non_null(ro);
	/* No uidlist yet: every message is new, \Recent to f (the first view), to no other. */
	for (size_t i = 0; i < 20; i++) {
		assert_true(folder_msg_peek(f, i)->flags & FOLDER_RECENT);
		assert_false(folder_msg_peek(g, i)->flags & FOLDER_RECENT);
		assert_ptr_equal(folder_msg_peek(g, i), folder_msg_peek(ro, i));
	}
	/* g stores: g shows it at once, the others keep the old flags until their sync. */
	uint64_t ms;
	assert_true(folder_store_flags(g, 4, FOLDER_FLAGGED, 0, &ms, err, sizeof(err)));
	assert_true(folder_msg_peek(g, 4)->flags & FOLDER_FLAGGED);
	assert_int_equal(folder_msg_peek(g, 4)->modseq, ms);
	assert_false(folder_msg_peek(ro, 4)->flags & FOLDER_FLAGGED);
	assert_false(folder_msg_peek(f, 4)->flags & FOLDER_FLAGGED);
	assert_ptr_equal(folder_msg_peek(g, 3), folder_msg_peek(ro, 3));
	struct seen s = { "" };
	struct folder_changes ch = { on_expunged, on_exists, on_flags, &s };
	assert_true(folder_sync(ro, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "F5 ");
	assert_int_equal(folder_msg_peek(ro, 4)->modseq, ms);
	s.log[0] = '\0';
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "F5 ");
	assert_int_equal(folder_msg_peek(f, 4)->flags, FOLDER_FLAGGED | FOLDER_RECENT);
	s.log[0] = '\0';
	assert_true(folder_sync(g, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "");   /* its own change: told by the STORE itself */
	assert_ptr_equal(folder_msg_peek(g, 4), folder_msg_peek(ro, 4));
	/* A new message: \Recent to the first read-write view that syncs, to no other. */
	put_file("new/1700000099.M1P1.h", "new\n", 0);
	assert_true(folder_sync(g, &ch, err, sizeof(err)));
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_true(folder_sync(ro, &ch, err, sizeof(err)));
	assert_int_equal(folder_count(f), 21);
	assert_true(folder_msg_peek(g, 20)->flags & FOLDER_RECENT);
	assert_false(folder_msg_peek(f, 20)->flags & FOLDER_RECENT);
	assert_false(folder_msg_peek(ro, 20)->flags & FOLDER_RECENT);
	assert_true(folder_msg_peek(f, 19)->flags & FOLDER_RECENT);
	/* g moved it from new/ (its listing is of stamps that moved since): its table is its
	 * own until its next sync, which takes the listing f made and ro shares. */
	assert_ptr_equal(folder_msg_peek(f, 7)->filename, folder_msg_peek(ro, 7)->filename);
	assert_true(folder_sync(g, &ch, err, sizeof(err)));
	assert_ptr_equal(folder_msg_peek(g, 7), folder_msg_peek(ro, 7));
	assert_true(folder_msg_peek(g, 20)->flags & FOLDER_RECENT);
	/* An expunge keeps the others' numbers until they are told; \Recent stays theirs. */
	assert_true(folder_store_flags(g, 0, FOLDER_DELETED, 0, NULL, err, sizeof(err)));
	uint32_t uid1 = 1;
	assert_true(folder_expunge(g, &uid1, 1, NULL, err, sizeof(err)));
	assert_int_equal(folder_count(f), 21);
	assert_int_equal(folder_msg_peek(f, 0)->uid, 1);
	s.log[0] = '\0';
	assert_true(folder_sync(f, &ch, err, sizeof(err)));
	assert_string_equal(s.log, "X1/1 ");
	assert_int_equal(folder_count(f), 20);
	assert_int_equal(folder_msg_peek(f, 0)->uid, 2);
	assert_true(folder_msg_peek(f, 0)->flags & FOLDER_RECENT);
	assert_false(folder_msg_peek(f, 19)->flags & FOLDER_RECENT);
	assert_true(folder_sync(ro, &ch, err, sizeof(err)));
	assert_int_equal(folder_msg(ro, 19)->size, 5);   /* filled in on first use */
	assert_int_equal(folder_msg(f, 19)->size, 5);
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

/* A version 1 list (old Dovecot) keeps its UIDs; it is written back as version 3. */
static void test_uidlist_v1(void **state)
{
	(void)state;
	put_file("cur/1700000001.M1P1.h:2,S", "a\n", 0);
	put_file("cur/1700000002.M1P1.h:2,", "b\n", 0);
	put_file("dovecot-uidlist", "1 1234 8\n5 1700000001.M1P1.h:2,S\n7 1700000002.M1P1.h\n", 0);
	put_file("new/1700000003.M1P1.h", "c\n", 0);
	char err[256];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(folder_uidvalidity(f), 1234);
	assert_int_equal(folder_count(f), 3);
	assert_int_equal(folder_msg(f, 0)->uid, 5);
	assert_int_equal(folder_msg(f, 1)->uid, 7);
	assert_int_equal(folder_msg(f, 2)->uid, 8);
	folder_close(&f);
	assert_memory_equal(slurp("dovecot-uidlist"), "3 V1234 N9 G", 12);
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
	assert_int_equal(folder_create(root, "Entw\xc3\xbc" "rfe/Sub", err, sizeof(err)), STORE_OK);
	assert_true(exists(".Entw&APw-rfe.Sub/cur"));
	assert_true(folder_subscribe(root, "Entw\xc3\xbc" "rfe/Sub", true, err, sizeof(err)));
	assert_true(folder_subscribe(root, "inbox", true, err, sizeof(err)));
	assert_true(folder_subscribe(root, "Gone", true, err, sizeof(err)));
	/* Dovecot 2.3's form: a version line, then modified UTF-7 with TAB separators. */
	assert_string_equal(slurp("subscriptions"), "V\t2\n\nEntw&APw-rfe\tSub\nINBOX\nGone\n");
	assert_true(folder_subscribe(root, "Gone", false, err, sizeof(err)));
	folder_ensure_special(root);
	struct folder_info *fi;
	size_t n;
	assert_true(folder_list(root, &fi, &n, err, sizeof(err)));
	char got[1024] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s%s%s%s%s;", fi[i].name,
			fi[i].noselect ? " noselect" : "", fi[i].has_children ? " children" : "",
			fi[i].subscribed ? " sub" : "", fi[i].special ? " " : "",
			fi[i].special ? folder_special_attr(fi[i].special) : "");
	free(fi);
	assert_string_equal(got, "INBOX sub;Archive sub \\Archive;Drafts sub \\Drafts;"
		"Entw\xc3\xbc" "rfe noselect children;Entw\xc3\xbc" "rfe/Sub sub;Junk sub \\Junk;"
		"Sent \\Sent;Trash sub \\Trash;");
	/* Rename moves the children; delete leaves them. */
	assert_int_equal(folder_create(root, "A", err, sizeof(err)), STORE_OK);
	assert_int_equal(folder_create(root, "A/B", err, sizeof(err)), STORE_OK);
	assert_int_equal(folder_rename(root, "A", "C", err, sizeof(err)), STORE_OK);
	assert_true(exists(".C/cur") && exists(".C.B/cur") && !exists(".A") && !exists(".A.B"));
	assert_int_equal(folder_rename(root, "C", "C/D", err, sizeof(err)), STORE_CANNOT);
	assert_int_equal(folder_rename(root, "C", "Sent", err, sizeof(err)), STORE_EXISTS);
	assert_int_equal(folder_rename(root, "Nope", "X", err, sizeof(err)), STORE_NONEXISTENT);
	assert_int_equal(folder_delete(root, "C", err, sizeof(err)), STORE_OK);
	assert_true(!exists(".C") && exists(".C.B/cur"));
	assert_int_equal(folder_delete(root, "INBOX", err, sizeof(err)), STORE_CANNOT);
	assert_int_equal(folder_delete(root, "C", err, sizeof(err)), STORE_NONEXISTENT);
	/* Renaming INBOX moves its messages into the new folder. */
	put_file("cur/1700000001.M1P1.h:2,S", "a\n", 0);
	assert_int_equal(folder_rename(root, "INBOX", "Old", err, sizeof(err)), STORE_OK);
	assert_true(exists(".Old/cur/1700000001.M1P1.h:2,S") && !exists("cur/1700000001.M1P1.h:2,S"));
}

static void test_append_copy(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(folder_create(root, "Sent", err, sizeof(err)), STORE_OK);
	const char *kws[] = { "$Forwarded" };
	struct folder_append_src src = { .fd = -1, .data = "Subject: x\r\n\r\nbody\r\n", .len = 20,
		.flags = FOLDER_SEEN | FOLDER_RECENT, .keywords = kws, .n_keywords = 1, .date = 1600000000 };
	uint32_t uid, validity;
	assert_int_equal(folder_append(root, "Sent", &src, &uid, &validity, NULL, err, sizeof(err)), STORE_OK);
	assert_int_equal(uid, 1);
	assert_int_equal(folder_append(root, "Sent", &src, &uid, &validity, NULL, err, sizeof(err)), STORE_OK);
	assert_int_equal(uid, 2);
	uint32_t u2, v2;
	assert_int_equal(folder_append(root, "Nope", &src, &u2, &v2, NULL, err, sizeof(err)), STORE_NONEXISTENT);
	struct folder *f = folder_open(root, "Sent", false, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(folder_uidvalidity(f), validity);
	assert_int_equal(folder_count(f), 2);
	const struct folder_msg *m = folder_msg(f, 1);
	assert_int_equal(m->uid, 2);
	assert_int_equal(m->flags & FOLDER_STORABLE, FOLDER_SEEN);
	assert_int_equal(m->internaldate, 1600000000);
	assert_int_equal(m->size, 20);
	assert_string_equal(folder_keyword_name(f, (int)__builtin_ctzll(m->keywords)), "$Forwarded");
	char *hdr;
	size_t len;
	assert_true(folder_msg_header(f, 1, &hdr, &len));
	assert_string_equal(hdr, "Subject: x\n\n");   /* LF on disk */
	free(hdr);
	/* COPY into INBOX: a new UID there, the same flags and keyword (by name). */
	uint32_t nu, nv;
	assert_int_equal(folder_copy(f, 1, "INBOX", &nu, &nv, err, sizeof(err)), STORE_OK);
	assert_int_equal(folder_copy(f, 0, "INBOX", &nu, &nv, err, sizeof(err)), STORE_OK);
	assert_int_equal(folder_copy(f, 0, "Nope", &u2, &v2, err, sizeof(err)), STORE_NONEXISTENT);
	struct folder *in = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(in);
	assert_int_equal(folder_uidvalidity(in), nv);
	assert_int_equal(folder_count(in), 2);
	assert_int_equal(folder_msg(in, 1)->uid, nu);
	assert_int_equal(folder_msg(in, 0)->flags & FOLDER_STORABLE, FOLDER_SEEN);
	assert_int_equal(folder_msg(in, 0)->internaldate, 1600000000);
	assert_string_equal(folder_keyword_name(in, (int)__builtin_ctzll(folder_msg(in, 0)->keywords)), "$Forwarded");
	folder_close(&in);
	folder_close(&f);
	/* Over quota: STORE_QUOTA with the usage. */
	assert_true(quota_set(root, 50, 0, err, sizeof(err)));
	struct quota_state qs;
	assert_int_equal(folder_append(root, "Sent", &src, &uid, &validity, &qs, err, sizeof(err)), STORE_QUOTA);
	assert_int_equal(qs.limit_bytes, 50);
	assert_true(qs.used_bytes > 0);
}

static void test_index(void **state)
{
	(void)state;
	char err[256];
	put_file("cur/1700000001.M1P1.h,W=12:2,", "Subject: a\n\nbody\n", 0);
	put_file("cur/1700000002.M1P1.h,W=12:2,", "Subject: b\n\nbody\n", 0);
	put_file("cur/1700000003.M1P1.h,W=12:2,", "Subject: c\n\nbody\n", 0);
	struct folder *a = folder_open(root, "INBOX", false, err, sizeof(err));
	struct folder *b = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(a);
	uint64_t h0 = folder_highestmodseq(a);
	assert_int_equal(folder_highestmodseq(b), h0);
	uint64_t ms;
	assert_true(folder_store_flags(a, 1, FOLDER_SEEN, 0, &ms, err, sizeof(err)));
	assert_int_equal(ms, h0 + 1);
	/* Another view gets the same MODSEQ for the same change. */
	assert_true(folder_sync(b, NULL, err, sizeof(err)));
	assert_int_equal(folder_msg(b, 1)->modseq, ms);
	assert_int_equal(folder_highestmodseq(b), ms);
	/* A change by another program (rename): a new MODSEQ, once, for both views. */
	char x[512], y[512];
	snprintf(x, sizeof(x), "%s/cur/1700000003.M1P1.h,W=12:2,", root);
	snprintf(y, sizeof(y), "%s/cur/1700000003.M1P1.h,W=12:2,F", root);
	assert_int_equal(rename(x, y), 0);
	assert_true(folder_sync(a, NULL, err, sizeof(err)));
	assert_true(folder_sync(b, NULL, err, sizeof(err)));
	assert_true(folder_msg(a, 2)->modseq > ms);
	assert_int_equal(folder_msg(a, 2)->modseq, folder_msg(b, 2)->modseq);
	uint64_t before_expunge = folder_highestmodseq(a);
	/* Header blocks: read once, then from the index's cache. */
	char *hdr;
	size_t len;
	assert_true(folder_msg_header(a, 0, &hdr, &len));
	assert_string_equal(hdr, "Subject: a\n\n");
	free(hdr);
	msg_opens = 0;
	assert_true(folder_msg_header(b, 0, &hdr, &len));
	assert_string_equal(hdr, "Subject: a\n\n");
	free(hdr);
	assert_int_equal(msg_opens, 0);
	/* Expunged by another program: VANISHED from the log. */
	snprintf(x, sizeof(x), "%s/cur/1700000001.M1P1.h,W=12:2,", root);
	unlink(x);
	assert_true(folder_sync(a, NULL, err, sizeof(err)));
	uint32_t *gone;
	size_t n;
	bool complete;
	assert_true(folder_vanished_since(a, before_expunge, &gone, &n, &complete));
	assert_int_equal(n, 1);
	assert_int_equal(gone[0], 1);
	assert_true(complete);
	free(gone);
	assert_true(folder_vanished_since(a, folder_highestmodseq(a), &gone, &n, &complete));
	assert_int_equal(n, 0);
	free(gone);
	uint64_t last = folder_highestmodseq(a), kept = folder_msg(a, 0)->modseq;
	folder_close(&a);
	folder_close(&b);
	/* Written at the last close; read back by the next view: the same MODSEQs, no
	 * message opened (dates and sizes came from the index too). */
	assert_true(exists("postern-index"));
	msg_opens = 0;
	a = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(folder_msg(a, 0)->modseq, kept);
	assert_true(folder_highestmodseq(a) >= last);
	assert_int_equal(folder_msg(a, 0)->size, 12);
	assert_int_equal(msg_opens, 0);
	folder_close(&a);
	/* A lost index is rebuilt, MODSEQs starting over from the Maildir. */
	snprintf(x, sizeof(x), "%s/postern-index", root);
	unlink(x);
	a = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(folder_count(a), 2);
	folder_close(&a);
}

/* Threads appending and syncing one folder at once: every message gets its own
 * UID, none twice (the in-process mutex and the dotlock). */
enum { APPENDERS = 3, PER_THREAD = 60 };
static void *appender(void *arg)
{
	(void)arg;
	char err[256];
	struct folder_append_src src = { .fd = -1, .data = "S: x\r\n\r\nb\r\n", .len = 11 };
	uint32_t uid, v;
	for (int i = 0; i < PER_THREAD; i++)
		if (folder_append(root, "INBOX", &src, &uid, &v, NULL, err, sizeof(err)) != STORE_OK)
			return (void *)1;
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char err[256];
	pthread_t t[APPENDERS];
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	assert_non_null(f);
	for (int i = 0; i < APPENDERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, appender, NULL), 0);
	for (int k = 0; k < 50; k++)
		assert_true(folder_sync(f, NULL, err, sizeof(err)));
	for (int i = 0; i < APPENDERS; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	assert_true(folder_sync(f, NULL, err, sizeof(err)));
	assert_int_equal(folder_count(f), APPENDERS * PER_THREAD);
	for (size_t i = 0; i < folder_count(f); i++)
		assert_int_equal(folder_msg(f, i)->uid, i + 1);
	assert_int_equal(folder_uidnext(f), APPENDERS * PER_THREAD + 1);
	folder_close(&f);
}

/* Opening a big folder reads no message: 10,000 here (bench: 100,000). */
static void test_big_open(void **state)
{
	(void)state;
	enum { N = 10000 };
	char rel[128];
	for (int i = 0; i < N; i++) {
		snprintf(rel, sizeof(rel), "new/%d.M%dP1.host,S=9,W=11", 1700000000 + i, i);
		put_file(rel, "A: b\n\nhi\n", 0);
	}
	char err[256];
	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	msg_opens = 0;
	struct folder *f = folder_open(root, "INBOX", false, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(f);
	assert_int_equal(folder_count(f), N);
	assert_int_equal(folder_msg(f, N - 1)->uid, N);
	folder_close(&f);
	f = folder_open(root, "INBOX", false, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t2);
	assert_int_equal(msg_opens, 0);   /* folder_msg(N - 1) above: its date by stat */
	assert_int_equal(folder_count(f), N);
	/* Counting flags at SELECT: nothing opened, nothing stat'ed. */
	size_t unseen = 0;
	for (size_t i = 0; i < folder_count(f); i++)
		unseen += !(folder_msg_peek(f, i)->flags & FOLDER_SEEN);
	assert_int_equal(unseen, N);
	assert_int_equal(folder_msg(f, 5)->size, 11);   /* W= */
	assert_int_equal(msg_opens, 0);
	folder_close(&f);
	double first = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	double again = (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9;
	print_message("open of %d messages: first %.3f s (new/ -> cur/, UIDs), again %.3f s\n", N, first, again);
	assert_true(first < 20.0 && again < 10.0);
}

/* --- the integration test's helper ----------------------------------------------------- */

/* Run with arguments, this program is tests/integration/test_imap_store.py's hand
 * on the store (test-only; not part of the user interface):
 *   test_folder DIR dump [FOLDER]              "uid flags... keywords..." per message
 *   test_folder DIR store UID FLAG...          add system flags (\\Seen...) or keywords, INBOX
 *   test_folder DIR expunge                    expunge every \\Deleted message of INBOX
 *   test_folder DIR create FOLDER
 *   test_folder DIR open                       open INBOX, print the count (bench)
 *   test_folder DIR list                       "name [noselect] [children] [sub]" per folder
 *   test_folder DIR append FOLDER FLAG... < message */
static const char *const SYS_FLAGS[] = { "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft" };

static void parse_flags(struct folder *f, char **args, int n, uint32_t *flags, uint64_t *kw, const char **names,
	size_t *n_names)
{
	for (int a = 0; a < n; a++) {
		bool known = false;
		for (int k = 0; k < 5; k++)
			if (strcasecmp(args[a], SYS_FLAGS[k]) == 0) {
				*flags |= 1u << k;
				known = true;
			}
		if (known)
			continue;
		if (names)
			names[(*n_names)++] = args[a];
		int idx = f ? folder_keyword_index(f, args[a], true) : -1;
		if (idx >= 0)
			*kw |= 1ull << idx;
	}
}

static int print_folder(struct folder *f)
{
	printf("uidvalidity %u uidnext %u\n", folder_uidvalidity(f), folder_uidnext(f));
	for (size_t i = 0; i < folder_count(f); i++) {
		const struct folder_msg *m = folder_msg(f, i);
		printf("%u", m->uid);
		for (int k = 0; k < 5; k++)
			if (m->flags & (1u << k))
				printf(" %s", SYS_FLAGS[k]);
		for (int k = 0; k < FOLDER_KEYWORDS_MAX; k++)
			if ((m->keywords & (1ull << k)) && folder_keyword_name(f, k))
				printf(" %s", folder_keyword_name(f, k));
		printf("\n");
	}
	return 0;
}

static int helper_main(int argc, char **argv)
{
	char err[512];
	const char *dir = argv[1], *cmd = argv[2];
	if (strcmp(cmd, "create") == 0 && argc == 4)
		return folder_create(dir, argv[3], err, sizeof(err)) == STORE_OK ? 0 : 6;
	if (strcmp(cmd, "append") == 0 && argc >= 4) {
		static char msg[1 << 20];
		size_t len = fread(msg, 1, sizeof(msg), stdin);
		const char *names[64];
		struct folder_append_src src = { .fd = -1, .data = msg, .len = len, .keywords = names };
		uint64_t unused = 0;
		parse_flags(NULL, argv + 4, argc - 4 < 64 ? argc - 4 : 64, &src.flags, &unused, names, &src.n_keywords);
		uint32_t uid, validity;
		if (folder_append(dir, argv[3], &src, &uid, &validity, NULL, err, sizeof(err)) != STORE_OK) {
			fprintf(stderr, "append: %s\n", err);
			return 7;
		}
		printf("%u %u\n", validity, uid);
		return 0;
	}
	if (strcmp(cmd, "list") == 0) {
		struct folder_info *fi;
		size_t n;
		if (!folder_list(dir, &fi, &n, err, sizeof(err)))
			return 8;
		for (size_t i = 0; i < n; i++)
			printf("%s%s%s%s\n", fi[i].name, fi[i].noselect ? " noselect" : "",
				fi[i].has_children ? " children" : "", fi[i].subscribed ? " sub" : "");
		free(fi);
		return 0;
	}
	struct folder *f = folder_open(dir, strcmp(cmd, "dump") == 0 && argc > 3 ? argv[3] : "INBOX", false, err,
		sizeof(err));
	if (!f) {
		fprintf(stderr, "open: %s\n", err);
		return 2;
	}
	int rc = 0;
	if (strcmp(cmd, "open") == 0) {
		printf("%zu messages, %u opens of message files\n", folder_count(f), msg_opens);
		folder_close(&f);
		return 0;
	}
	if (strcmp(cmd, "store") == 0 && argc >= 5) {
		size_t i = folder_find_uid(f, (uint32_t)strtoul(argv[3], NULL, 10));
		const struct folder_msg *m = folder_msg(f, i);
		uint32_t flags = m ? m->flags & FOLDER_STORABLE : 0;
		uint64_t kw = m ? m->keywords : 0;
		parse_flags(f, argv + 4, argc - 4, &flags, &kw, NULL, NULL);
		if (!m || !folder_store_flags(f, i, flags, kw, NULL, err, sizeof(err)))
			rc = 4;
	} else if (strcmp(cmd, "expunge") == 0) {
		uint32_t *uids = calloc(folder_count(f) + 1, sizeof(uint32_t));
		for (size_t i = 0; i < folder_count(f); i++)
			uids[i] = folder_msg(f, i)->uid;
		if (!folder_expunge(f, uids, folder_count(f), NULL, err, sizeof(err)) || !folder_sync(f, NULL, err,
				sizeof(err)))
			rc = 5;
		free(uids);
	}
	if (rc == 0)
		print_folder(f);
	folder_close(&f);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 3)
		return helper_main(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_and_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidlist_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_open, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
