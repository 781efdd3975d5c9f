/* test_quota.c - Maildir++ maildirsize: the limits line as a table, the file format
 * Dovecot and Courier read, sums of deltas, recalculation (missing, too large,
 * malformed, stale and over quota), fits/full, and the once-only warning. */
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "store/maildir.h"
#include "store/quota.h"
#include "util/log.h"

static char tmpdir[64];
static char box[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-quota-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(box, sizeof(box), "%s/bob", tmpdir);
	char err[200];
	return maildir_create(box, err, sizeof(err)) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *rel, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", box, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static char *slurp(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", box, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	char *b = calloc(1, 65536);
	size_t n = fread(b, 1, 65535, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static bool exists(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", box, rel);
	return access(p, F_OK) == 0;
}

static void test_parse_limits(void **state)
{
	(void)state;
	static const struct { const char *s; int ok; uint64_t b, c; } rows[] = {
		{ "1000S,20C", 1, 1000, 20 }, { "1000S", 1, 1000, 0 }, { "20C", 1, 0, 20 }, { "20C,1000S", 1, 1000, 20 },
		{ "0S,0C", 1, 0, 0 }, { "", 1, 0, 0 }, { "1073741824S,0C\r", 1, 1073741824, 0 },
		{ "1000", 0, 0, 0 }, { "1000X", 0, 0, 0 }, { "1000S,", 0, 0, 0 }, { "1000S,1000S", 0, 0, 0 },
		{ "S", 0, 0, 0 }, { "-1S", 0, 0, 0 }, { "99999999999999999999999S", 0, 0, 0 }, { "10S 5C", 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t b = 7, c = 7;
		bool ok = quota_parse_limits(rows[i].s, strlen(rows[i].s), &b, &c);
		if (ok != (bool)rows[i].ok)
			fail_msg("\"%s\": %d", rows[i].s, ok);
		if (ok) {
			assert_int_equal(b, rows[i].b);
			assert_int_equal(c, rows[i].c);
		}
	}
}

static void test_no_file_no_quota(void **state)
{
	(void)state;
	char err[200];
	struct quota_state st;
	put("cur/1.M1P1.h,S=100:2,", "x");
	assert_int_equal(quota_check(box, 1u << 30, &st, err, sizeof(err)), QUOTA_FITS);
	assert_false(st.defined);
	assert_false(exists(QUOTA_FILE));
	/* quota_read counts anyway (for `postern user list`), writes nothing. */
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_false(st.defined);
	assert_int_equal(st.used_bytes, 100);
	assert_int_equal(st.used_count, 1);
	assert_false(exists(QUOTA_FILE));
	assert_true(quota_add(box, 5, 1));   /* nothing to update */
	assert_false(exists(QUOTA_FILE));
	assert_false(quota_warning_due(box, &st, 90));
}

/* open(2), observed: how often maildirsize is opened (the executable's definition
 * wins over libc's for the core library's calls, as test_maildir.c's fsync does). */
static unsigned maildirsize_opens;

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	size_t n = strlen(path), k = strlen(QUOTA_FILE);
	if (n >= k && strcmp(path + n - k, QUOTA_FILE) == 0)
		maildirsize_opens++;
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static void age_dir(const char *dir, time_t secs)
{
	struct timespec ts[2] = { { .tv_sec = time(NULL) - secs }, { .tv_sec = time(NULL) - secs } };
	assert_int_equal(utimensat(AT_FDCWD, dir, ts, 0), 0);
}

/* A Maildir without maildirsize is remembered (its directory's times): checks and
 * updates then open nothing; a maildirsize put there later changes the directory
 * and is seen at the next check; a directory changed in the last seconds is never
 * remembered (coarse timestamps). */
static void test_absent_remembered(void **state)
{
	(void)state;
	char md[200], err[200];
	struct quota_state st;
	snprintf(md, sizeof(md), "%s/carol", tmpdir);
	assert_true(maildir_create(md, err, sizeof(err)));
	age_dir(md, 3600);
	maildirsize_opens = 0;
	assert_int_equal(quota_check(md, 100, &st, err, sizeof(err)), QUOTA_FITS);
	assert_false(st.defined);
	assert_int_equal(maildirsize_opens, 1);
	assert_int_equal(quota_check(md, 100, &st, err, sizeof(err)), QUOTA_FITS);
	assert_true(quota_add(md, 100, 1));
	assert_int_equal(maildirsize_opens, 1);
	/* a quota set since: seen at once */
	assert_true(quota_set(md, 1000, 0, err, sizeof(err)));
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FULL);
	assert_true(st.defined);
	assert_int_equal(st.limit_bytes, 1000);
	/* removed again: the directory just changed, so it is looked at every time ... */
	assert_true(quota_remove(md, err, sizeof(err)));
	unsigned before = maildirsize_opens;
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(maildirsize_opens, before + 2);
	/* ... until it has been still for a while */
	age_dir(md, 3600);
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(maildirsize_opens, before + 3);
	/* a mailbox not made yet has no quota, and nothing is opened for it */
	snprintf(md, sizeof(md), "%s/nobody-yet", tmpdir);
	assert_int_equal(quota_check(md, 2000, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(maildirsize_opens, before + 3);
}

static void test_set_and_round_trip(void **state)
{
	(void)state;
	char err[200];
	/* Messages in the Maildir and in a Maildir++ folder; sizes from S= or stat. */
	put("new/2.M1P1.h,S=200,W=210", "y");
	char p[256];
	snprintf(p, sizeof(p), "%s/.Sent", box);
	assert_true(maildir_create(p, err, sizeof(err)));
	put(".Sent/cur/3.M1P1.h,S=300:2,S", "z");
	put("cur/4.M1P1.h:2,", "12345");   /* no S=: 5 bytes by stat */
	assert_true(quota_set(box, 1000, 10, err, sizeof(err)));
	char *f = slurp(QUOTA_FILE);
	assert_string_equal(f, "1000S,10C\n605 4\n");
	free(f);
	assert_true(quota_add(box, 50, 1));
	assert_true(quota_add(box, -100, -1));
	f = slurp(QUOTA_FILE);
	assert_string_equal(f, "1000S,10C\n605 4\n50 1\n-100 -1\n");
	free(f);
	struct quota_state st;
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_true(st.defined);
	assert_int_equal(st.limit_bytes, 1000);
	assert_int_equal(st.limit_count, 10);
	assert_int_equal(st.used_bytes, 555);
	assert_int_equal(st.used_count, 4);
	assert_int_equal(quota_percent(&st), 55);
	/* A file written by Dovecot or Courier reads the same. */
	put(QUOTA_FILE, "2000S\n100 2\n  -10   -1\n\n5\n");
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.limit_bytes, 2000);
	assert_int_equal(st.limit_count, 0);
	assert_int_equal(st.used_bytes, 95);
	assert_int_equal(st.used_count, 1);
	/* Removing the quota. */
	assert_true(quota_remove(box, err, sizeof(err)));
	assert_false(exists(QUOTA_FILE));
}

static void test_fits_and_full(void **state)
{
	(void)state;
	char err[200];
	put(QUOTA_FILE, "1000S,5C\n900 3\n");
	struct quota_state st;
	assert_int_equal(quota_check(box, 100, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(st.used_bytes, 900);
	assert_int_equal(quota_check(box, 101, &st, err, sizeof(err)), QUOTA_FULL);
	assert_int_equal(st.limit_bytes, 1000);
	put(QUOTA_FILE, "1000S,5C\n100 4\n");
	assert_int_equal(quota_check(box, 1, &st, err, sizeof(err)), QUOTA_FITS);
	put(QUOTA_FILE, "1000S,5C\n100 5\n");
	assert_int_equal(quota_check(box, 1, &st, err, sizeof(err)), QUOTA_FULL);
	/* No limits: always fits. */
	put(QUOTA_FILE, "0S,0C\n999999 99999\n");
	assert_int_equal(quota_check(box, 1u << 30, &st, err, sizeof(err)), QUOTA_FITS);
	assert_true(st.defined);
	/* Over by the deltas but the file is fresh: full, no recalculation. */
	put(QUOTA_FILE, "1000S\n5000 1\n");
	assert_int_equal(quota_check(box, 1, &st, err, sizeof(err)), QUOTA_FULL);
	char *f = slurp(QUOTA_FILE);
	assert_string_equal(f, "1000S\n5000 1\n");
	free(f);
}

static void set_old(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", box, rel);
	struct timeval tv[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(utimes(p, tv), 0);
}

static void test_recalculation(void **state)
{
	(void)state;
	char err[200];
	uint64_t real_b, real_c;
	assert_true(quota_scan(box, &real_b, &real_c, err, sizeof(err)));
	struct quota_state st;
	/* Stale and over quota: recalculated (the deltas were wrong). */
	put(QUOTA_FILE, "1000S\n5000 1\n");
	set_old(QUOTA_FILE);
	assert_int_equal(quota_check(box, 1, &st, err, sizeof(err)), QUOTA_FITS);
	assert_int_equal(st.used_bytes, real_b);
	char want[100];
	snprintf(want, sizeof(want), "1000S,0C\n%llu %llu\n", (unsigned long long)real_b, (unsigned long long)real_c);
	char *f = slurp(QUOTA_FILE);
	assert_string_equal(f, want);
	free(f);
	/* Stale but under quota: kept as is. */
	put(QUOTA_FILE, "1000S\n10 1\n");
	set_old(QUOTA_FILE);
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.used_bytes, 10);
	/* Malformed lines: recalculated, limits kept. */
	put(QUOTA_FILE, "1000S,9C\n10 1\ngarbage\n");
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.used_bytes, real_b);
	assert_int_equal(st.limit_count, 9);
	/* A half-written last line too. */
	put(QUOTA_FILE, "1000S,9C\n10 1\n20");
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.used_bytes, real_b);
	/* Grown past 5120 bytes: quota_add rewrites it. */
	assert_true(quota_set(box, 1000, 0, err, sizeof(err)));
	for (int i = 0; i < 1000; i++)
		assert_true(quota_add(box, 0, 0));
	char p[512];
	snprintf(p, sizeof(p), "%s/" QUOTA_FILE, box);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
	assert_true(sb.st_size <= QUOTA_FILE_MAX + 10);
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.used_bytes, real_b);
	assert_int_equal(st.limit_bytes, 1000);
	/* And a file already too large is recalculated on read. */
	FILE *fp = fopen(p, "a");
	for (int i = 0; i < 1000; i++)
		fputs("1 0\n", fp);
	fclose(fp);
	assert_true(quota_read(box, &st, err, sizeof(err)));
	assert_int_equal(st.used_bytes, real_b);
	assert_int_equal(stat(p, &sb), 0);
	assert_true(sb.st_size < 100);
}

/* The quota warning is never counted (issue 9), wherever it sits and whatever its flags. */
static void test_warning_not_counted(void **state)
{
	(void)state;
	assert_true(quota_name_is_warning("new/1.M1P1Q1.h,S=461,W=470" QUOTA_WARNING_TAG));
	assert_true(quota_name_is_warning("1.M1P1Q1.h,S=461,W=470" QUOTA_WARNING_TAG ":2,S"));
	assert_false(quota_name_is_warning("1.M1P1Q1.h,S=461,W=470"));
	assert_false(quota_name_is_warning("1.M1P1Q1.h,S=461,W=470:2," QUOTA_WARNING_TAG));
	assert_false(quota_name_is_warning(""));
	char err[200];
	uint64_t b0, c0, b, c;
	assert_true(quota_scan(box, &b0, &c0, err, sizeof(err)));
	put("new/2.M2P2Q2.h,S=300,W=310" QUOTA_WARNING_TAG, "x");
	put("cur/3.M3P3Q3.h,S=400,W=410" QUOTA_WARNING_TAG ":2,S", "x");
	put("cur/4.M4P4Q4.h,S=50,W=52:2,S", "x");
	assert_true(quota_scan(box, &b, &c, err, sizeof(err)));
	assert_int_equal(b, b0 + 50);
	assert_int_equal(c, c0 + 1);
}

static void test_warning_once(void **state)
{
	(void)state;
	struct quota_state st = { .defined = true, .limit_bytes = 1000, .used_bytes = 850 };
	assert_false(quota_warning_due(box, &st, 90));
	st.used_bytes = 900;
	assert_true(quota_warning_due(box, &st, 90));
	assert_true(exists(QUOTA_WARNING_MARKER));
	assert_false(quota_warning_due(box, &st, 90));
	st.used_bytes = 990;
	assert_false(quota_warning_due(box, &st, 90));
	/* Drops below: the marker goes; the next crossing warns again. */
	st.used_bytes = 500;
	assert_false(quota_warning_due(box, &st, 90));
	assert_false(exists(QUOTA_WARNING_MARKER));
	st.used_bytes = 950;
	assert_true(quota_warning_due(box, &st, 90));
	/* The message count counts too; 0 disables. */
	struct quota_state c = { .defined = true, .limit_count = 10, .used_count = 10 };
	assert_int_equal(quota_percent(&c), 100);
	assert_false(quota_warning_due(box, &c, 0));
	struct quota_state none = { .defined = true };
	assert_int_equal(quota_percent(&none), 0);
	assert_false(quota_warning_due(box, &none, 90));
}

int main(void)
{
	log_set_level(LOG_ERR + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_no_file_no_quota),
		cmocka_unit_test(test_absent_remembered),
		cmocka_unit_test(test_set_and_round_trip),
		cmocka_unit_test(test_fits_and_full),
		cmocka_unit_test(test_recalculation),
		cmocka_unit_test(test_warning_not_counted),
		cmocka_unit_test(test_warning_once),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
