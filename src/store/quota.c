/* quota.c - Maildir++ maildirsize (see quota.h).
 *
 * Courier's README.maildirquota and Dovecot's quota-maildir.c are the two readers
 * that must agree with us: limits line first, then signed "<bytes> <count>" lines,
 * usage = their sum; rewrite through tmp/ + rename when recalculating. */
#include "store/quota.h"

#include "util/parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"

#define PATH_MAX_LEN 1200

static atomic_uint recalc_counter;

static void set_err(char *err, size_t errlen, const char *fmt, const char *path)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, path, strerror(errno));
}

/* --- parsing --------------------------------------------------------------- */

bool quota_parse_limits(const char *line, size_t n, uint64_t *bytes, uint64_t *count)
{
	*bytes = *count = 0;
	size_t i = 0;
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
		n--;
	if (n == 0)
		return true;   /* an empty first line: no limits */
	bool seen_s = false, seen_c = false;
	while (i < n) {
		size_t start = i;
		while (i < n && line[i] >= '0' && line[i] <= '9')
			i++;
		if (i == n)
			return false;   /* digits without a unit */
		uint64_t v;
		if (!parse_u64(line + start, i - start, &v))
			return false;
		if (line[i] == 'S' && !seen_s) {
			*bytes = v;
			seen_s = true;
		} else if (line[i] == 'C' && !seen_c) {
			*count = v;
			seen_c = true;
		} else {
			return false;
		}
		i++;
		if (i < n) {
			if (line[i] != ',')
				return false;
			i++;
			if (i == n)
				return false;
		}
	}
	return true;
}

/* "<bytes> <count>", both signed; the count may be missing (old writers). */
static bool parse_delta(const char *p, size_t n, int64_t *bytes, int64_t *count)
{
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	size_t i = 0;
	int64_t vals[2] = { 0, 0 };
	int got = 0;
	while (i < n && got < 2) {
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n)
			break;
		bool neg = false;
		if (p[i] == '-') {
			neg = true;
			i++;
		}
		size_t start = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		uint64_t v;
		if (!parse_u64(p + start, i - start, &v) || v > (uint64_t)INT64_MAX)
			return false;
		vals[got++] = neg ? -(int64_t)v : (int64_t)v;
	}
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (got == 0 || i != n)
		return false;
	*bytes = vals[0];
	*count = vals[1];
	return true;
}

/* --- scanning -------------------------------------------------------------- */

/* ",S=<digits>" in a Maildir file name (before the ":2," part). */
static bool name_size(const char *name, uint64_t *size)
{
	const char *colon = strchr(name, ':');
	size_t end = colon ? (size_t)(colon - name) : strlen(name);
	for (size_t i = 0; i + 3 < end; i++) {
		if (name[i] == ',' && name[i + 1] == 'S' && name[i + 2] == '=') {
			size_t j = i + 3;
			while (j < end && name[j] >= '0' && name[j] <= '9')
				j++;
			if (parse_u64(name + i + 3, j - i - 3, size))
				return true;
		}
	}
	return false;
}

bool quota_name_is_warning(const char *name)
{
	const char *colon = strchr(name, ':');
	size_t end = colon ? (size_t)(colon - name) : strlen(name);
	size_t tag = sizeof(QUOTA_WARNING_TAG) - 1;
	/* the tag is the last field before ":2,": see local.c quota_warning */
	return end >= tag && memcmp(name + end - tag, QUOTA_WARNING_TAG, tag) == 0;
}

static bool scan_dir(const char *dir, uint64_t *bytes, uint64_t *count)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || quota_name_is_warning(e->d_name))
			continue;
		uint64_t sz;
		if (!name_size(e->d_name, &sz)) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, 0) != 0) {
				if (errno == ENOENT)
					continue;   /* moved or expunged meanwhile */
				closedir(d);
				return false;
			}
			if (!S_ISREG(st.st_mode))
				continue;
			sz = (uint64_t)st.st_size;
		}
		*bytes += sz;
		(*count)++;
	}
	closedir(d);
	return true;
}

static bool scan_folder(const char *folder, uint64_t *bytes, uint64_t *count)
{
	char p[PATH_MAX_LEN];
	snprintf(p, sizeof(p), "%s/cur", folder);
	if (!scan_dir(p, bytes, count))
		return false;
	snprintf(p, sizeof(p), "%s/new", folder);
	return scan_dir(p, bytes, count);
}

bool quota_scan(const char *maildir, uint64_t *bytes, uint64_t *count, char *err, size_t errlen)
{
	*bytes = *count = 0;
	if (!scan_folder(maildir, bytes, count)) {
		set_err(err, errlen, "cannot read %s: %s", maildir);
		return false;
	}
	DIR *d = opendir(maildir);
	if (!d) {
		if (errno == ENOENT)
			return true;
		set_err(err, errlen, "cannot read %s: %s", maildir);
		return false;
	}
	struct dirent *e;
	bool ok = true;
	while ((e = readdir(d)) != NULL) {
		/* Maildir++ folders: ".Name" directories (not "." and ".."). */
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISDIR(st.st_mode))
			continue;
		char p[PATH_MAX_LEN];
		snprintf(p, sizeof(p), "%s/%s", maildir, e->d_name);
		if (!scan_folder(p, bytes, count)) {
			set_err(err, errlen, "cannot read %s: %s", p);
			ok = false;
			break;
		}
	}
	closedir(d);
	return ok;
}

/* --- mailboxes known to have no maildirsize ---------------------------------- */

/* Most mailboxes have no quota, and every RCPT check and delivery used to find that
 * out by opening a maildirsize that is not there.  Instead the process remembers, per
 * Maildir directory (device and inode), its modification and change times when the
 * file was last found missing.  maildirsize lives in that directory, so creating it
 * (postern user quota, Dovecot, an administrator's cp or mv) changes the directory's
 * mtime, and the next look opens the file again; deliveries (new/, tmp/) do not touch
 * it.  Timestamps are coarse (a clock tick), so a directory changed within the last
 * ABSENT_SETTLE seconds is never remembered: a change after our look then always
 * carries a later time.  A stat(2) that succeeds replaces the open that failed. */
#define ABSENT_SLOTS 256
#define ABSENT_SETTLE 2

struct absent_entry {
	dev_t dev;
	ino_t ino;
	struct timespec mtime, ctime;
	bool used;
};

static struct absent_entry absent[ABSENT_SLOTS];
static pthread_mutex_t absent_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t absent_slot(const struct stat *dir)
{
	return (size_t)(((uint64_t)dir->st_ino * 2654435761u) ^ (uint64_t)dir->st_dev) % ABSENT_SLOTS;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool absent_known(const struct stat *dir)
{
	pthread_mutex_lock(&absent_lock);
	const struct absent_entry *e = &absent[absent_slot(dir)];
	bool known = e->used && e->dev == dir->st_dev && e->ino == dir->st_ino && same_time(&e->mtime, &dir->st_mtim) &&
		same_time(&e->ctime, &dir->st_ctim);
	pthread_mutex_unlock(&absent_lock);
	return known;
}

/* maildirsize was missing after dir was stat'd as *dir: remember it if the directory
 * had been still long enough (see above). */
static void absent_remember(const struct stat *dir)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec - dir->st_mtim.tv_sec < ABSENT_SETTLE)
		return;   /* (a create changes mtime: a still mtime is enough; ctime is compared as identity) */
	pthread_mutex_lock(&absent_lock);
	absent[absent_slot(dir)] = (struct absent_entry){ .dev = dir->st_dev, .ino = dir->st_ino, .mtime = dir->st_mtim,
		.ctime = dir->st_ctim, .used = true };
	pthread_mutex_unlock(&absent_lock);
}

/* Is maildirsize certainly missing without opening it?  *dir is filled (for
 * absent_remember) when the directory could be stat'd; *have says so. */
static bool absent_now(const char *maildir, struct stat *dir, bool *have)
{
	*have = stat(maildir, dir) == 0;
	if (!*have)
		return errno == ENOENT;   /* no Maildir yet: no maildirsize in it */
	return S_ISDIR(dir->st_mode) && absent_known(dir);
}

/* --- the file ------------------------------------------------------------- */

enum file_status { FILE_OK, FILE_MISSING, FILE_NEEDS_RECALC, FILE_ERROR };

/* Read maildirsize: limits and sum.  FILE_NEEDS_RECALC when too large or malformed
 * (the limits are still filled in when the first line could be read). */
static enum file_status read_file(const char *maildir, struct quota_state *st, time_t *mtime,
	char *err, size_t errlen)
{
	char path[PATH_MAX_LEN];
	snprintf(path, sizeof(path), "%s/" QUOTA_FILE, maildir);
	memset(st, 0, sizeof(*st));
	struct stat dir;
	bool have_dir;
	if (absent_now(maildir, &dir, &have_dir))
		return FILE_MISSING;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT && have_dir)
			absent_remember(&dir);
		errno = e;
		if (e == ENOENT)
			return FILE_MISSING;
		set_err(err, errlen, "cannot open %s: %s", path);
		return FILE_ERROR;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		set_err(err, errlen, "cannot stat %s: %s", path);
		close(fd);
		return FILE_ERROR;
	}
	*mtime = sb.st_mtime;
	char data[QUOTA_FILE_MAX + 1];
	size_t len = 0;
	while (len < sizeof(data)) {
		ssize_t r = read(fd, data + len, sizeof(data) - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, errlen, "cannot read %s: %s", path);
			close(fd);
			return FILE_ERROR;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	st->defined = true;
	const char *nl = memchr(data, '\n', len);
	if (!nl || !quota_parse_limits(data, (size_t)(nl - data), &st->limit_bytes, &st->limit_count))
		return FILE_NEEDS_RECALC;
	if (len > QUOTA_FILE_MAX || (uint64_t)sb.st_size > QUOTA_FILE_MAX)
		return FILE_NEEDS_RECALC;
	int64_t sum_b = 0, sum_c = 0;
	const char *p = nl + 1, *end = data + len;
	bool any = false;
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			return FILE_NEEDS_RECALC;   /* a half-written last line */
		int64_t b, c;
		if (e > p) {
			if (!parse_delta(p, (size_t)(e - p), &b, &c))
				return FILE_NEEDS_RECALC;
			if ((b > 0 && sum_b > INT64_MAX - b) || (b < 0 && sum_b < INT64_MIN - b) ||
				(c > 0 && sum_c > INT64_MAX - c) || (c < 0 && sum_c < INT64_MIN - c))
				return FILE_NEEDS_RECALC;
			sum_b += b;
			sum_c += c;
			any = true;
		}
		p = e + 1;
	}
	if (!any)
		return FILE_NEEDS_RECALC;   /* limits but no total */
	st->used_bytes = sum_b > 0 ? (uint64_t)sum_b : 0;
	st->used_count = sum_c > 0 ? (uint64_t)sum_c : 0;
	return FILE_OK;
}

/* Count the Maildir and write a fresh maildirsize through tmp/ and rename. */
static bool recalculate(const char *maildir, struct quota_state *st, char *err, size_t errlen)
{
	uint64_t b, c;
	if (!quota_scan(maildir, &b, &c, err, errlen))
		return false;
	st->defined = true;
	st->used_bytes = b;
	st->used_count = c;
	char tmp[PATH_MAX_LEN], dst[PATH_MAX_LEN];
	snprintf(tmp, sizeof(tmp), "%s/tmp/%lld.P%ldQ%u.maildirsize", maildir, (long long)time(NULL), (long)getpid(),
		atomic_fetch_add(&recalc_counter, 1));
	snprintf(dst, sizeof(dst), "%s/" QUOTA_FILE, maildir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_err(err, errlen, "cannot create %s: %s", tmp);
		return false;
	}
	char text[128];
	int n = snprintf(text, sizeof(text), "%" PRIu64 "S,%" PRIu64 "C\n%" PRIu64 " %" PRIu64 "\n", st->limit_bytes,
		st->limit_count, b, c);
	bool ok = fileio_write_all(fd, text, (size_t)n);
	if (!ok)
		set_err(err, errlen, "cannot write %s: %s", tmp);
	if (close(fd) != 0 && ok) {
		set_err(err, errlen, "cannot write %s: %s", tmp);
		ok = false;
	}
	if (ok && rename(tmp, dst) != 0) {
		set_err(err, errlen, "cannot rename to %s: %s", dst);
		ok = false;
	}
	if (!ok)
		unlink(tmp);
	else
		log_event(LOG_INFO, "quota_recalculated", "maildir=%s bytes=%" PRIu64 " messages=%" PRIu64, maildir, b, c);
	return ok;
}

static bool over_limit(const struct quota_state *st, uint64_t add_bytes, uint64_t add_count)
{
	if (st->limit_bytes && (st->used_bytes > st->limit_bytes || add_bytes > st->limit_bytes - st->used_bytes))
		return true;
	if (st->limit_count && (st->used_count > st->limit_count || add_count > st->limit_count - st->used_count))
		return true;
	return false;
}

bool quota_set(const char *maildir, uint64_t limit_bytes, uint64_t limit_count, char *err, size_t errlen)
{
	struct quota_state st = { .limit_bytes = limit_bytes, .limit_count = limit_count };
	return recalculate(maildir, &st, err, errlen);
}

bool quota_remove(const char *maildir, char *err, size_t errlen)
{
	char path[PATH_MAX_LEN];
	snprintf(path, sizeof(path), "%s/" QUOTA_FILE, maildir);
	if (unlink(path) != 0 && errno != ENOENT) {
		set_err(err, errlen, "cannot remove %s: %s", path);
		return false;
	}
	snprintf(path, sizeof(path), "%s/" QUOTA_WARNING_MARKER, maildir);
	unlink(path);
	return true;
}

/* Read, recalculating when needed; `extra_bytes` is the message about to come (the
 * stale-file rule looks at whether it would go over). */
static enum file_status load(const char *maildir, uint64_t extra_bytes, struct quota_state *st, char *err, size_t errlen)
{
	time_t mtime = 0;
	enum file_status fs = read_file(maildir, st, &mtime, err, errlen);
	if (fs == FILE_MISSING || fs == FILE_ERROR)
		return fs;
	bool stale = fs == FILE_OK && over_limit(st, extra_bytes, extra_bytes ? 1 : 0) &&
		time(NULL) - mtime > QUOTA_STALE_SECONDS;
	if (fs == FILE_NEEDS_RECALC || stale) {
		if (!recalculate(maildir, st, err, errlen))
			return FILE_ERROR;
	}
	return FILE_OK;
}

bool quota_read(const char *maildir, struct quota_state *st, char *err, size_t errlen)
{
	enum file_status fs = load(maildir, 0, st, err, errlen);
	if (fs == FILE_ERROR)
		return false;
	if (fs == FILE_MISSING) {
		memset(st, 0, sizeof(*st));
		return quota_scan(maildir, &st->used_bytes, &st->used_count, err, errlen);
	}
	return true;
}

enum quota_verdict quota_check(const char *maildir, uint64_t msg_bytes, struct quota_state *st_out,
	char *err, size_t errlen)
{
	struct quota_state st;
	enum file_status fs = load(maildir, msg_bytes, &st, err, errlen);
	if (fs == FILE_MISSING)
		memset(&st, 0, sizeof(st));
	if (st_out)
		*st_out = st;
	if (fs == FILE_ERROR)
		return QUOTA_ERROR;
	return over_limit(&st, msg_bytes, 1) ? QUOTA_FULL : QUOTA_FITS;
}

bool quota_add(const char *maildir, int64_t bytes, int64_t count)
{
	char path[PATH_MAX_LEN];
	snprintf(path, sizeof(path), "%s/" QUOTA_FILE, maildir);
	struct stat dir;
	bool have_dir;
	if (absent_now(maildir, &dir, &have_dir))
		return true;
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && have_dir) {
		absent_remember(&dir);
		return true;
	}
	if (fd < 0)
		return errno == ENOENT;
	struct stat sb;
	if (fstat(fd, &sb) == 0 && sb.st_size > QUOTA_FILE_MAX) {
		close(fd);
		struct quota_state st;
		time_t mtime;
		char err[256];
		/* Keep the limits; the new total already includes this change. */
		if (read_file(maildir, &st, &mtime, err, sizeof(err)) == FILE_ERROR || !recalculate(maildir, &st, err, sizeof(err))) {
			log_event(LOG_WARN, "quota_error", "maildir=%s error=\"%s\"", maildir, err);
			return false;
		}
		return true;
	}
	char line[64];
	int n = snprintf(line, sizeof(line), "%" PRId64 " %" PRId64 "\n", bytes, count);
	bool ok = fileio_write_all(fd, line, (size_t)n);   /* one write: O_APPEND keeps it whole */
	if (!ok)
		log_event(LOG_WARN, "quota_error", "maildir=%s error=\"append: %s\"", maildir, strerror(errno));
	close(fd);
	return ok;
}

unsigned quota_percent(const struct quota_state *st)
{
	unsigned p = 0;
	if (st->limit_bytes) {
		long double v = (long double)st->used_bytes * 100.0L / (long double)st->limit_bytes;
		unsigned q = v > 100000.0L ? 100000u : (unsigned)v;
		if (q > p)
			p = q;
	}
	if (st->limit_count) {
		long double v = (long double)st->used_count * 100.0L / (long double)st->limit_count;
		unsigned q = v > 100000.0L ? 100000u : (unsigned)v;
		if (q > p)
			p = q;
	}
	return p;
}

bool quota_warning_due(const char *maildir, const struct quota_state *st, unsigned percent)
{
	if (percent == 0 || !st->defined || (!st->limit_bytes && !st->limit_count))
		return false;
	char path[PATH_MAX_LEN];
	snprintf(path, sizeof(path), "%s/" QUOTA_WARNING_MARKER, maildir);
	if (quota_percent(st) < percent) {
		unlink(path);
		return false;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;   /* already warned (or cannot remember: do not warn every time) */
	close(fd);
	return true;
}
