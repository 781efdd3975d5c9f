/* test_maildir.c - Maildir++ delivery: CRLF -> LF, S= and W= sizes, prefix first,
 * the file in new/, nothing left in tmp/; a queued message's copy named after its
 * queue id and recipient is made once (a repeat is found in new/ or cur/); new
 * directories are made durable; a failed fsync of new/ is a failed delivery.
 *
 * fsync is replaced below (the executable's definition wins over libc's for the
 * core library's calls): it records which directories were synced and can fail
 * on demand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "store/maildir.h"

/* --- fsync, observed ------------------------------------------------------- */

static char synced[64][PATH_MAX];
static size_t n_synced;
static char fail_fsync_of[PATH_MAX];   /* a directory whose fsync fails (EIO) */

int fsync(int fd)
{
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (fail_fsync_of[0] && strcmp(target, fail_fsync_of) == 0) {
			errno = EIO;
			return -1;
		}
		if (n_synced < 64)
			snprintf(synced[n_synced++], PATH_MAX, "%s", target);
	}
	return (int)syscall(SYS_fsync, fd);
}

static bool was_synced(const char *dir)
{
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return false;
	for (size_t i = 0; i < n_synced; i++)
		if (strcmp(synced[i], real) == 0)
			return true;
	return false;
}

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-maildir-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	int r = system(cmd);
	(void)r;
	return 0;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return (size_t)-1;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A source file holding junk, then the message at `offset`, then junk. */
static int source(const char *msg, size_t len, off_t *offset)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/src-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "JUNKJUNK", 8), 8);
	assert_int_equal(write(fd, msg, len), (ssize_t)len);
	assert_int_equal(write(fd, "TRAILER", 7), 7);
	*offset = 8;
	return fd;
}

static const struct {
	const char *prefix;
	const char *msg;
	size_t msg_len;
	const char *want;
	size_t want_len;
} table[] = {
#define M(s) s, sizeof(s) - 1
	{ "", M("a\r\nb\r\n"), M("a\nb\n") },
	{ "Return-Path: <s@x>\nDelivered-To: alice@example.test\n", M("Subject: x\r\n\r\nbody\r\n"),
	  M("Return-Path: <s@x>\nDelivered-To: alice@example.test\nSubject: x\n\nbody\n") },
	{ "", M(""), M("") },
	{ "P: 1\n", M(""), M("P: 1\n") },
	{ "", M("no newline at end"), M("no newline at end") },
	{ "", M("bare\rcr\r\n"), M("bare\rcr\n") },
	{ "", M("cr at end\r"), M("cr at end\r") },
	{ "", M("\r\r\n\r\n"), M("\r\n\n") },
	{ "", M("bare lf\nstays\n"), M("bare lf\nstays\n") },
	{ "", M("nul\0byte\r\n\xff"), M("nul\0byte\n\xff") },
#undef M
};

static void deliver_and_check(size_t row, const char *prefix, const char *msg, size_t msg_len,
	const char *want, size_t want_len)
{
	off_t off;
	int fd = source(msg, msg_len, &off);
	char md[256], name[512], err[256] = "";
	snprintf(md, sizeof(md), "%s/mail/alice/Maildir", tmpdir);
	enum store_result r = maildir_deliver(md, prefix, fd, off, msg_len, name, sizeof(name), err, sizeof(err));
	close(fd);
	if (r != STORE_OK)
		fail_msg("row %zu: result %d: %s", row, r, err);
	assert_true(strncmp(name, "new/", 4) == 0);
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", md, name);
	struct stat st;
	if (stat(path, &st) != 0)
		fail_msg("row %zu: %s not found", row, path);
	/* the contents */
	char *got = malloc((size_t)st.st_size + 1);
	int in = open(path, O_RDONLY);
	assert_int_equal(read(in, got, (size_t)st.st_size), st.st_size);
	close(in);
	if ((size_t)st.st_size != want_len || memcmp(got, want, want_len) != 0)
		fail_msg("row %zu: file of %lld octets differs", row, (long long)st.st_size);
	/* S= is the file size, W= the size with CRLF line ends */
	size_t lfs = 0;
	for (size_t i = 0; i < want_len; i++)
		lfs += want[i] == '\n';
	const char *s = strstr(name, ",S=");
	const char *w = strstr(name, ",W=");
	assert_non_null(s);
	assert_non_null(w);
	uint64_t sv = strtoull(s + 3, NULL, 10), wv = strtoull(w + 3, NULL, 10);
	if (sv != (uint64_t)st.st_size || wv != (uint64_t)st.st_size + lfs)
		fail_msg("row %zu: %s: S=%" PRIu64 " W=%" PRIu64 ", file %lld octets, %zu LFs", row, name, sv, wv,
			(long long)st.st_size, lfs);
	/* Maildir names hold no '/' after new/ and no ':' */
	assert_null(strchr(name + 4, '/'));
	assert_null(strchr(name, ':'));
	free(got);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		deliver_and_check(i, table[i].prefix, table[i].msg, table[i].msg_len, table[i].want, table[i].want_len);
	char d[256];
	snprintf(d, sizeof(d), "%s/mail/alice/Maildir/new", tmpdir);
	assert_int_equal(count_files(d), sizeof(table) / sizeof(table[0]));   /* unique names */
	snprintf(d, sizeof(d), "%s/mail/alice/Maildir/tmp", tmpdir);
	assert_int_equal(count_files(d), 0);
	snprintf(d, sizeof(d), "%s/mail/alice/Maildir/cur", tmpdir);
	assert_int_equal(count_files(d), 0);
}

/* Larger than the copy buffer, with a CR LF split across the buffer boundary. */
static void test_large(void **state)
{
	(void)state;
	size_t n = (64u << 10) * 3 + 17;
	char *msg = malloc(n), *want = malloc(n + 16);
	size_t wl = 0;
	memcpy(want, "X-Prefix: 1\n", 12);
	wl = 12;
	for (size_t i = 0; i < n; i++)
		msg[i] = (i % 41 == 40) ? '\n' : (i % 41 == 39) ? '\r' : (char)('a' + i % 26);
	msg[(64u << 10) - 1] = '\r';
	msg[(64u << 10)] = '\n';
	for (size_t i = 0; i < n; i++) {
		if (msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n')
			continue;
		want[wl++] = msg[i];
	}
	deliver_and_check(100, "X-Prefix: 1\n", msg, n, want, wl);
	free(msg);
	free(want);
}

static void test_short_source(void **state)
{
	(void)state;
	off_t off;
	int fd = source("abc", 3, &off);
	char md[256], name[512], err[256] = "";
	snprintf(md, sizeof(md), "%s/mail/bob/Maildir", tmpdir);
	/* asks for more bytes than the file has */
	enum store_result r = maildir_deliver(md, "", fd, off, 1000, name, sizeof(name), err, sizeof(err));
	close(fd);
	assert_int_not_equal(r, STORE_OK);
	assert_true(err[0] != '\0');
	char d[300];
	snprintf(d, sizeof(d), "%s/new", md);
	assert_int_equal(count_files(d), 0);
	snprintf(d, sizeof(d), "%s/tmp", md);
	assert_int_equal(count_files(d), 0);
}

static void test_create(void **state)
{
	(void)state;
	char md[256], err[256];
	snprintf(md, sizeof(md), "%s/a/b/c/Maildir", tmpdir);
	assert_true(maildir_create(md, err, sizeof(err)));
	assert_true(maildir_create(md, err, sizeof(err)));   /* idempotent */
	char d[300];
	snprintf(d, sizeof(d), "%s/cur", md);
	assert_int_equal(count_files(d), 0);
	/* a file in the way */
	snprintf(md, sizeof(md), "%s/file", tmpdir);
	int fd = open(md, O_WRONLY | O_CREAT, 0600);
	close(fd);
	assert_false(maildir_create(md, err, sizeof(err)));
	assert_non_null(strstr(err, md));
}

static int deliver_copy_sync(const char *md, const struct maildir_copy_id *id, const char *msg, bool sync_new,
	char *name, size_t namesz, char *err, size_t errsz)
{
	off_t off;
	int fd = source(msg, strlen(msg), &off);
	enum store_result r = maildir_deliver_copy(md, id, "Delivered-To: a@b\n", fd, off, strlen(msg), sync_new, name,
		namesz, err, errsz);
	close(fd);
	return (int)r;
}

static int deliver_copy(const char *md, const struct maildir_copy_id *id, const char *msg, char *name, size_t namesz,
	char *err, size_t errsz)
{
	return deliver_copy_sync(md, id, msg, true, name, namesz, err, errsz);
}

/* A second delivery of the same queue id to the same recipient is detected and
 * skipped, whether the first copy is still in new/ or a mail program moved it. */
static void test_copy_once(void **state)
{
	(void)state;
	char md[256], name[512], name2[512], found[512], err[256] = "", d[300];
	snprintf(md, sizeof(md), "%s/mail/carol/Maildir", tmpdir);
	struct maildir_copy_id id = { .arrival = 1764579600, .qid = "0006451A2B3C4D5E", .rcpt_index = 1 };
	assert_int_equal(maildir_find_copy(md, &id, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_ABSENT);
	assert_int_equal(deliver_copy(md, &id, "Subject: x\r\n\r\nhi\r\n", name, sizeof(name), err, sizeof(err)), STORE_OK);
	/* Dovecot-compatible: <time>.<unique>.<host>,S=<size>,W=<vsize>, no ':' */
	assert_true(strncmp(name, "new/1764579600.M0006451A2B3C4D5E_R1.", 36) == 0);
	assert_non_null(strstr(name, ",S=33,W=37"));
	assert_null(strchr(name, ':'));
	/* again: nothing new */
	assert_int_equal(deliver_copy(md, &id, "Subject: x\r\n\r\nhi\r\n", name2, sizeof(name2), err, sizeof(err)),
		STORE_DUPLICATE);
	assert_string_equal(name, name2);
	snprintf(d, sizeof(d), "%s/new", md);
	assert_int_equal(count_files(d), 1);
	snprintf(d, sizeof(d), "%s/tmp", md);
	assert_int_equal(count_files(d), 0);
	assert_int_equal(maildir_find_copy(md, &id, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_PRESENT);
	assert_string_equal(found, name);
	/* another recipient of the same message, and the same recipient of another message */
	struct maildir_copy_id other = id;
	other.rcpt_index = 2;
	assert_int_equal(maildir_find_copy(md, &other, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_ABSENT);
	assert_int_equal(deliver_copy(md, &other, "Subject: x\r\n\r\nhi\r\n", name2, sizeof(name2), err, sizeof(err)),
		STORE_OK);
	other = id;
	other.qid = "0006451A2B3C4D5F";
	assert_int_equal(maildir_find_copy(md, &other, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_ABSENT);
	/* a mail program moved the first copy to cur/ and flagged it */
	char from[1200], to[1200];
	snprintf(from, sizeof(from), "%s/%s", md, name);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", md, name + 4);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(maildir_find_copy(md, &id, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_PRESENT);
	assert_true(strncmp(found, "cur/", 4) == 0);
	/* index 1 is not mistaken for index 10 */
	other = id;
	other.rcpt_index = 10;
	assert_int_equal(maildir_find_copy(md, &other, found, sizeof(found), err, sizeof(err)), MAILDIR_COPY_ABSENT);
}

/* Directories created for a new mailbox are durable: the parent of each one made
 * (down to new/ and cur/) was fsync'd; existing ones cost nothing. */
static void test_create_durable(void **state)
{
	(void)state;
	char md[256], err[256], p[400];
	snprintf(p, sizeof(p), "%s/mail", tmpdir);
	assert_int_equal(mkdir(p, 0700), 0);
	n_synced = 0;
	snprintf(md, sizeof(md), "%s/mail/example.test/dave", tmpdir);
	assert_true(maildir_create(md, err, sizeof(err)));
	assert_true(was_synced(p));                       /* holds example.test/ */
	snprintf(p, sizeof(p), "%s/mail/example.test", tmpdir);
	assert_true(was_synced(p));                       /* holds dave/ */
	assert_true(was_synced(md));                      /* holds cur/ new/ tmp/ */
	assert_false(was_synced(tmpdir));                 /* existed: not touched */
	n_synced = 0;
	assert_true(maildir_create(md, err, sizeof(err)));
	assert_int_equal(n_synced, 0);
}

/* new/ cannot be synced: the delivery fails (temporary), and no file is left that
 * a retry would take for a durable copy, nor a second one after it. */
static void test_fsync_new_fails(void **state)
{
	(void)state;
	char md[256], name[512], err[256] = "", d[300];
	snprintf(md, sizeof(md), "%s/mail/erin/Maildir", tmpdir);
	assert_true(maildir_create(md, err, sizeof(err)));
	snprintf(d, sizeof(d), "%s/new", md);
	assert_non_null(realpath(d, fail_fsync_of));
	struct maildir_copy_id id = { .arrival = 1764579600, .qid = "0006451A2B3C4D60", .rcpt_index = 0 };
	assert_int_equal(deliver_copy(md, &id, "Subject: y\r\n\r\nhi\r\n", name, sizeof(name), err, sizeof(err)),
		STORE_TEMP);
	assert_non_null(strstr(err, "fsync"));
	assert_int_equal(count_files(d), 0);
	off_t off;
	int fd = source("a\r\n", 3, &off);
	assert_int_equal(maildir_deliver(md, "", fd, off, 3, name, sizeof(name), err, sizeof(err)), STORE_TEMP);
	close(fd);
	assert_int_equal(count_files(d), 0);
	fail_fsync_of[0] = '\0';
	assert_int_equal(deliver_copy(md, &id, "Subject: y\r\n\r\nhi\r\n", name, sizeof(name), err, sizeof(err)),
		STORE_OK);
	assert_int_equal(count_files(d), 1);
}

/* A queued copy may leave the fsync of new/ to its caller (delivery shares it among
 * the copies delivered together): the file is synced, the directory is not, and
 * maildir_copy_dir names the directory to sync. */
static void test_copy_leaves_dir_sync(void **state)
{
	(void)state;
	char md[256], name[512], err[256] = "", d[300], dir[400];
	snprintf(md, sizeof(md), "%s/mail/frank/Maildir", tmpdir);
	assert_true(maildir_create(md, err, sizeof(err)));
	snprintf(d, sizeof(d), "%s/new", md);
	n_synced = 0;
	struct maildir_copy_id id = { .arrival = 1764579600, .qid = "0006451A2B3C4D61", .rcpt_index = 0 };
	assert_int_equal(deliver_copy_sync(md, &id, "Subject: z\r\n\r\nhi\r\n", false, name, sizeof(name), err,
		sizeof(err)), STORE_OK);
	assert_false(was_synced(d));
	assert_int_equal(count_files(d), 1);
	snprintf(d, sizeof(d), "%s/tmp", md);
	assert_int_equal(count_files(d), 0);   /* renamed, not linked: nothing left behind */
	assert_true(maildir_copy_dir(md, name, dir, sizeof(dir)));
	snprintf(d, sizeof(d), "%s/new", md);
	assert_string_equal(dir, d);
	assert_true(maildir_copy_dir(md, "cur/1.M2.h,S=3:2,S", dir, sizeof(dir)));
	snprintf(d, sizeof(d), "%s/cur", md);
	assert_string_equal(dir, d);
	assert_false(maildir_copy_dir(md, "tmp/x", dir, sizeof(dir)));
	assert_false(maildir_copy_dir(md, "newer/x", dir, sizeof(dir)));
	assert_false(maildir_copy_dir(md, name, dir, 8));
	/* a repeat is still a duplicate, named the same */
	char name2[512];
	assert_int_equal(deliver_copy_sync(md, &id, "Subject: z\r\n\r\nhi\r\n", false, name2, sizeof(name2), err,
		sizeof(err)), STORE_DUPLICATE);
	assert_string_equal(name, name2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_new_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_leaves_dir_sync, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
