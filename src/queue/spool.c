/* spool.c - the spool files once committed: opening a message safely, listing
 * active/ and failed/, removal in a crash-safe order, moving to failed/ with a reason
 * and back, and cleaning the leftovers of crashes. */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/fileio.h"
#include "util/id.h"
#include "util/log.h"
#include "util/parse.h"

/* --- reading -------------------------------------------------------------- */

static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISLNK(mode))
		return "a symbolic link";
	return "not a regular file";
}

/* Open dirfd/name for reading as a spool file: never follow a symbolic link (one in
 * active/ could point anywhere, and its target would be delivered), never block (a
 * FIFO would hold a delivery thread in open() for ever), and accept only a regular
 * file.  Returns the descriptor (blocking again) or -1 with the reason in err; a
 * missing file says strerror(ENOENT) and leaves errno ENOENT. */
int queue_spool_open(int dirfd, const char *name, char *err, size_t errlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			snprintf(err, errlen, "a symbolic link, not a queue file (refused: it could point outside the queue)");
		else
			snprintf(err, errlen, "cannot open: %s", strerror(e));
		errno = e;
		return -1;
	}
	struct stat sb;
	bool statted = fstat(fd, &sb) == 0;
	if (!statted || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s, not a queue file (refused)", statted ? file_kind(sb.st_mode) : "unreadable");
		close(fd);
		errno = EINVAL;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

/* The added header fields between the message (ending at `at`) and the end record:
 * `gap` octets there, none or the block and its record.  False when they are not
 * exactly that (a damaged or foreign file). */
static bool added_read(int fd, uint64_t gap, uint64_t at, struct queue_message *m)
{
	if (gap == 0)
		return true;
	char rec[QUEUE_ADDED_REC_LEN + 1] = { 0 };
	uint64_t len = 0;
	if (gap < QUEUE_ADDED_REC_LEN + 2 ||
		pread(fd, rec, QUEUE_ADDED_REC_LEN, (off_t)(at + gap - QUEUE_ADDED_REC_LEN)) != QUEUE_ADDED_REC_LEN ||
		memcmp(rec, "\nADDED ", 7) != 0 || memcmp(rec + 27, " POSTERN\n", 9) != 0 ||
		!parse_u64(rec + 7, 20, &len) || len > QUEUE_ADDED_MAX || len != gap - QUEUE_ADDED_REC_LEN)
		return false;
	char *p = malloc((size_t)len + 1);
	if (!p || pread(fd, p, (size_t)len, (off_t)at) != (ssize_t)len || memcmp(p + len - 2, "\r\n", 2) != 0 ||
		memchr(p, '\0', (size_t)len)) {
		free(p);
		return false;
	}
	p[len] = '\0';
	m->added = p;
	m->added_len = (size_t)len;
	return true;
}

static bool message_open_at(int dirfd, const char *qid, struct queue_message *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!id_is_queue_id(qid)) {
		snprintf(err, errlen, "not a queue id");
		return false;
	}
	int fd = queue_spool_open(dirfd, qid, err, errlen);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)QUEUE_TRAILER_LEN) {
		snprintf(err, errlen, "file too short to be complete");
		close(fd);
		return false;
	}
	/* Read the envelope: grow until the blank line that ends it. */
	size_t want = 4096, have = 0;
	char *hdr = NULL;
	long body = -1;
	for (;;) {
		if (want > HEADER_MAX)
			want = HEADER_MAX;
		char *p = realloc(hdr, want);
		if (!p)
			break;
		hdr = p;
		ssize_t r = pread(fd, hdr + have, want - have, (off_t)have);
		if (r <= 0)
			break;
		have += (size_t)r;
		if (memmem(hdr, have, "\n\n", 2)) {
			body = queue_envelope_parse(hdr, have, &m->env);
			break;
		}
		if (have < want || want == HEADER_MAX)
			break;
		want *= 2;
	}
	free(hdr);
	if (body < 0) {
		snprintf(err, errlen, "malformed envelope");
		close(fd);
		return false;
	}
	char trailer[QUEUE_TRAILER_LEN + 1] = { 0 };
	uint64_t size = 0;
	if (pread(fd, trailer, QUEUE_TRAILER_LEN, st.st_size - QUEUE_TRAILER_LEN) != QUEUE_TRAILER_LEN ||
		memcmp(trailer, "\nEND ", 5) != 0 || memcmp(trailer + 25, " POSTERN\n", 9) != 0 ||
		!parse_u64(trailer + 5, 20, &size) || (uint64_t)st.st_size < (uint64_t)body + QUEUE_TRAILER_LEN ||
		size > (uint64_t)st.st_size - (uint64_t)body - QUEUE_TRAILER_LEN ||
		!added_read(fd, (uint64_t)st.st_size - (uint64_t)body - size - QUEUE_TRAILER_LEN, (uint64_t)body + size, m)) {
		snprintf(err, errlen, "incomplete file (no valid end record)");
		queue_envelope_free(&m->env);
		close(fd);
		return false;
	}
	m->fd = fd;
	m->body_offset = body;
	m->body_size = size;
	return true;
}

bool queue_message_open(struct queue *q, const char *qid, struct queue_message *m,
	char *err, size_t errlen)
{
	return message_open_at(q->active_dirfd, qid, m, err, errlen);
}

bool queue_failed_open(struct queue *q, const char *qid, struct queue_message *m, char *err, size_t errlen)
{
	return message_open_at(q->failed_dirfd, qid, m, err, errlen);
}

void queue_failed_describe(struct queue *q, const char *qid, char *out, size_t outsz)
{
	struct queue_message m;
	if (queue_failed_open(q, qid, &m, out, outsz)) {
		snprintf(out, outsz, "a complete queue file");
		queue_message_close(&m);
	}
}

void queue_message_close(struct queue_message *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->added);
	m->added = NULL;
	m->added_len = 0;
	queue_envelope_free(&m->env);
}

uint64_t queue_message_size(const struct queue_message *m)
{
	return m->added_len + m->body_size;
}

ssize_t queue_message_pread(const struct queue_message *m, void *buf, size_t n, uint64_t off)
{
	char *out = buf;
	size_t got = 0;
	if (off < m->added_len) {
		got = m->added_len - (size_t)off < n ? m->added_len - (size_t)off : n;
		memcpy(out, m->added + off, got);
		off = m->added_len;
	}
	uint64_t at = off - m->added_len;
	while (got < n && at < m->body_size) {
		size_t want = n - got;
		if (want > m->body_size - at)
			want = (size_t)(m->body_size - at);
		ssize_t r = pread(m->fd, out + got, want, m->body_offset + (off_t)at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;   /* the file is shorter than its end record says */
		got += (size_t)r;
		at += (uint64_t)r;
	}
	return (ssize_t)got;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static bool list_dir(struct queue *q, const char *sub, void (*cb)(void *arg, const char *qid), void *arg);

bool queue_list_active(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg)
{
	return list_dir(q, "active", cb, arg);
}

bool queue_list_failed(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg)
{
	return list_dir(q, "failed", cb, arg);
}

static bool list_dir(struct queue *q, const char *sub, void (*cb)(void *arg, const char *qid), void *arg)
{
	char p[1100];
	snprintf(p, sizeof(p), "%s/%s", q->root, sub);
	DIR *d = opendir(p);
	if (!d)
		return false;
	size_t n = 0, cap = 0;
	char (*ids)[QUEUE_ID_LEN + 1] = NULL;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!id_is_queue_id(e->d_name))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *np = realloc(ids, nc * sizeof(*ids));
			if (!np)
				break;
			ids = np;
			cap = nc;
		}
		memcpy(ids[n++], e->d_name, QUEUE_ID_LEN + 1);
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_str);
	for (size_t i = 0; i < n; i++)
		cb(arg, ids[i]);
	free(ids);
	return true;
}

/* The order of removal.  The state file says which recipients are done; the queue
 * file is the message.  A crash between two unlinks leaves one of:
 *   - a queue file without its state (state removed first): at restart every
 *     recipient counts as pending and the message is delivered again to all of
 *     them.  Unsafe: that is the order this replaced.
 *   - a state file without its queue file (queue file removed first): nothing is
 *     delivered (there is no message), and the orphan state is removed by
 *     queue_clean.  Safe.
 * So: unlink the queue file, make that durable (fsync active/), and only then unlink
 * the state file and fsync state/.  queue_move_failed follows the same order. */
bool queue_remove(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (unlinkat(q->active_dirfd, qid, 0) != 0 && errno != ENOENT)
		return false;   /* the message stays, with its state: nothing is redelivered */
	bool ok = fileio_fsync(q->active_dirfd) == 0;
	queue_crash_at("queue-file-removed");
	if (!ok)
		return false;   /* its removal may not be durable: keep the state for it */
	ok = unlinkat(q->state_dirfd, qid, 0) == 0 || errno == ENOENT;
	ok = fileio_fsync(q->state_dirfd) == 0 && ok;
	queue_crash_at("state-removed");
	return ok;
}

#define WHY_MAX 400

static void why_name(const char *qid, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s.why", qid);
}

/* failed/<qid>.why: written before the move, so a crash leaves at worst a reason
 * without its message (harmless), never a failed message without a reason. */
static void write_why(struct queue *q, const char *qid, const char *why)
{
	char name[64], line[WHY_MAX + 1];
	why_name(qid, name, sizeof(name));
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)why; *p && n < WHY_MAX - 1; p++)
		line[n++] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
	line[n++] = '\n';
	unlinkat(q->failed_dirfd, name, 0);
	int fd = openat(q->failed_dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (fileio_write_all(fd, line, n))
		fileio_fsync(fd);
	close(fd);
}

void queue_failed_reason(struct queue *q, const char *qid, char *out, size_t outsz)
{
	char name[64], err[128];
	out[0] = '\0';
	if (!id_is_queue_id(qid) || outsz == 0)
		return;
	why_name(qid, name, sizeof(name));
	int e = errno;
	int fd = queue_spool_open(q->failed_dirfd, name, err, sizeof(err));
	if (fd >= 0) {
		ssize_t r = pread(fd, out, outsz - 1, 0);
		out[r > 0 ? r : 0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		close(fd);
	}
	errno = e;
}

bool queue_move_failed(struct queue *q, const char *qid)
{
	return queue_move_failed_why(q, qid, NULL);
}

bool queue_move_failed_why(struct queue *q, const char *qid, const char *why)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (why)
		write_why(q, qid, why);
	/* renameat moves a symbolic link or a FIFO itself, never what it points to. */
	if (renameat(q->active_dirfd, qid, q->failed_dirfd, qid) != 0)
		return false;
	bool ok = fileio_fsync(q->failed_dirfd) == 0 && fileio_fsync(q->active_dirfd) == 0;
	queue_crash_at("queue-file-moved");
	if (!ok)
		return false;
	ok = unlinkat(q->state_dirfd, qid, 0) == 0 || errno == ENOENT;
	return fileio_fsync(q->state_dirfd) == 0 && ok;
}

bool queue_requeue(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	char err[160];
	struct queue_message m;
	if (!queue_failed_open(q, qid, &m, err, sizeof(err))) {
		if (errno != ENOENT)
			errno = EINVAL;   /* a FIFO, a link, a damaged file: it cannot go back */
		return false;
	}
	queue_message_close(&m);
	/* A stale state (there should be none) must not mark recipients done. */
	unlinkat(q->state_dirfd, qid, 0);
	if (fileio_fsync(q->state_dirfd) != 0)
		return false;
	if (renameat(q->failed_dirfd, qid, q->active_dirfd, qid) != 0)
		return false;
	char name[64];
	why_name(qid, name, sizeof(name));
	unlinkat(q->failed_dirfd, name, 0);
	return fileio_fsync(q->active_dirfd) == 0 && fileio_fsync(q->failed_dirfd) == 0;
}

bool queue_remove_failed(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (unlinkat(q->failed_dirfd, qid, 0) != 0)
		return false;
	char name[64];
	why_name(qid, name, sizeof(name));
	unlinkat(q->failed_dirfd, name, 0);
	return fileio_fsync(q->failed_dirfd) == 0;
}

/* --- leftovers -------------------------------------------------------------- */

static bool old_enough(int dirfd, const char *name, time_t now, time_t min_age)
{
	struct stat sb;
	return fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode) &&
		now - sb.st_mtime >= min_age;
}

/* A directory stream over a copy of dirfd, from its first entry (the queue keeps
 * dirfd open for *at() calls; closedir closes only the copy); NULL on failure. */
static DIR *dir_stream(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d && fd >= 0)
		close(fd);
	if (d)
		rewinddir(d);
	return d;
}

/* state/: "<qid>.tmp" left by a crash inside queue_state_write, and "<qid>" whose
 * queue file is gone (a crash inside queue_remove, see above).  A state file is only
 * written while its queue file exists in active/, so an old orphan is never needed
 * again; queue ids are never reused. */
static void clean_state(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	DIR *d = dir_stream(q->state_dirfd);
	if (!d)
		return;
	struct dirent *e;
	size_t seen = 0;
	bool removed = false;
	while (seen++ < max_entries && (e = readdir(d)) != NULL) {
		char id[QUEUE_ID_LEN + 1];
		size_t nl = strlen(e->d_name);
		bool tmp = nl == QUEUE_ID_LEN + 4 && strcmp(e->d_name + QUEUE_ID_LEN, ".tmp") == 0;
		if (tmp) {
			memcpy(id, e->d_name, QUEUE_ID_LEN);
			id[QUEUE_ID_LEN] = '\0';
			if (!id_is_queue_id(id))
				continue;
		} else if (!id_is_queue_id(e->d_name)) {
			continue;
		}
		struct stat sb;
		if (!tmp && (fstatat(q->active_dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT))
			continue;   /* its message is there (or cannot be told): keep */
		if (!old_enough(q->state_dirfd, e->d_name, now, min_age) || unlinkat(q->state_dirfd, e->d_name, 0) != 0)
			continue;
		removed = true;
		if (tmp)
			out->state_tmp++;
		else
			out->orphan_state++;
	}
	closedir(d);
	if (removed)
		fileio_fsync(q->state_dirfd);
}

/* active/: only "<qid>" files belong there (they are written in incoming/ and
 * renamed); anything else is junk left by hand or by another program. */
static void clean_active(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	DIR *d = dir_stream(q->active_dirfd);
	if (!d)
		return;
	struct dirent *e;
	size_t seen = 0;
	bool removed = false;
	while (seen++ < max_entries && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || id_is_queue_id(e->d_name))
			continue;
		if (!old_enough(q->active_dirfd, e->d_name, now, min_age) || unlinkat(q->active_dirfd, e->d_name, 0) != 0)
			continue;
		log_event(LOG_INFO, "spool_cleanup", "dir=active file=%s reason=\"not a queue file\"", e->d_name);
		removed = true;
		out->active_junk++;
	}
	closedir(d);
	if (removed)
		fileio_fsync(q->active_dirfd);
}

void queue_clean(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	clean_state(q, now, min_age, max_entries, out);
	clean_active(q, now, min_age, max_entries, out);
}
