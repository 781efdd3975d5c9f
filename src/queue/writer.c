/* writer.c - writing a new message into the spool and its durable commit (see
 * queue.h): created with O_EXCL in incoming/, the envelope records, the body, the
 * end record; then fsync, rename into active/ and an fsync of the directory (shared
 * with the commits renamed at the same moment: commit.c) before the caller may say
 * 250 (invariant 1).  Before the commit the message may be replaced
 * whole (a content filter's changes: queue_writer_rewrite) and marked held (its
 * state file written before the rename, queue_writer_set_hold). */
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/id.h"
#include "util/log.h"

#define WRITE_BUF (64u << 10)

struct queue_writer {
	struct queue *q;
	char qid[QUEUE_ID_LEN + 1];
	char path[1100];
	int fd;
	struct buf wbuf;
	uint64_t message_offset;   /* the envelope records' length */
	uint64_t body_size;
	char *added;               /* queue_writer_set_added */
	size_t added_len;
	struct queue_envelope env; /* as written (queue_writer_open, queue_writer_rewrite) */
	char hold_reason[QUEUE_HOLD_REASON_MAX];   /* queue_writer_set_hold; "": not held */
	bool failed;
	bool no_space;          /* failed with ENOSPC or EDQUOT */
	bool committed;
};

/* A write failed: remember whether for lack of space (logged by the space watch, once
 * a minute) or for another reason (logged here, it is rare and each one matters). */
static void writer_failed(struct queue_writer *w, const char *op)
{
	int e = errno;
	w->failed = true;
	if (e == ENOSPC || e == EDQUOT) {
		w->no_space = true;
		queue_space_exhausted(w->q);
	} else {
		log_event(LOG_ERR, "spool_error", "qid=%s op=%s error=\"%s\"", w->qid, op, strerror(e));
	}
	errno = e;
}

static bool writer_flush(struct queue_writer *w)
{
	if (w->failed)
		return false;
	if (w->wbuf.len && !fileio_write_all(w->fd, w->wbuf.data, w->wbuf.len))
		writer_failed(w, "write");
	buf_reset(&w->wbuf);
	return !w->failed;
}

struct queue_writer *queue_writer_open(struct queue *q, const struct queue_envelope *env,
	char *err, size_t errlen)
{
	struct queue_writer *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->q = q;
	w->fd = -1;
	snprintf(w->qid, sizeof(w->qid), "%s", env->qid);
	/* No id given: a file made ahead (reserve.c), else one made here under a new id. */
	if (!w->qid[0] && !queue_reserve_take(q, w->qid, &w->fd))
		id_new_queue_id(w->qid);
	snprintf(w->path, sizeof(w->path), "%s/incoming/%s", q->root, w->qid);
	buf_init(&w->wbuf, HEADER_MAX);
	if (w->fd < 0)
		w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot create %s: %s", w->path, strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			queue_space_exhausted(q);
		buf_free(&w->wbuf);
		free(w);
		errno = e;   /* the caller tells "out of space" from other failures */
		return NULL;
	}
	bool encoded = queue_envelope_copy(&w->env, env);
	if (encoded)
		memcpy(w->env.qid, w->qid, sizeof(w->env.qid));
	encoded = encoded && queue_envelope_encode(&w->wbuf, &w->env);
	w->message_offset = w->wbuf.len;
	if (!encoded || !writer_flush(w)) {
		int e = w->no_space ? ENOSPC : EIO;
		snprintf(err, errlen, "cannot write the envelope of %s", env->qid);
		queue_writer_free(&w);
		errno = e;
		return NULL;
	}
	return w;
}

bool queue_writer_write(struct queue_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return false;
	w->body_size += n;
	if (w->wbuf.len + n > WRITE_BUF) {
		if (!writer_flush(w))
			return false;
		if (n >= WRITE_BUF) {
			if (!fileio_write_all(w->fd, p, n))
				writer_failed(w, "write");
			return !w->failed;
		}
	}
	buf_append(&w->wbuf, p, n);
	return true;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->body_size;
}

bool queue_writer_no_space(const struct queue_writer *w)
{
	return w->no_space;
}

bool queue_writer_flush(struct queue_writer *w)
{
	return writer_flush(w);
}

const char *queue_writer_path(const struct queue_writer *w)
{
	return w->path;
}

uint64_t queue_writer_message_offset(const struct queue_writer *w)
{
	return w->message_offset;
}

bool queue_writer_set_added(struct queue_writer *w, const char *block, size_t len)
{
	free(w->added);
	w->added = NULL;
	w->added_len = 0;
	if (len == 0)
		return true;
	if (len > QUEUE_ADDED_MAX || len < 2 || memcmp(block + len - 2, "\r\n", 2) != 0 || memchr(block, '\0', len))
		return false;
	w->added = malloc(len);
	if (!w->added)
		return false;
	memcpy(w->added, block, len);
	w->added_len = len;
	return true;
}

/* The added fields and their record, then the end record: all after the message,
 * so the message is never rewritten, and all before the one fsync (invariant 1). */
static bool write_tail(struct queue_writer *w)
{
	char rec[QUEUE_ADDED_REC_LEN + 1];
	if (w->added_len) {
		if (!writer_flush(w))
			return false;
		if (!fileio_write_all(w->fd, w->added, w->added_len)) {
			writer_failed(w, "write");
			return false;
		}
		snprintf(rec, sizeof(rec), "\nADDED %020zu POSTERN\n", w->added_len);
		buf_append(&w->wbuf, rec, QUEUE_ADDED_REC_LEN);
	}
	char trailer[QUEUE_TRAILER_LEN + 1];
	snprintf(trailer, sizeof(trailer), "\nEND %020" PRIu64 " POSTERN\n", w->body_size);
	buf_append(&w->wbuf, trailer, QUEUE_TRAILER_LEN);
	return writer_flush(w);
}

bool queue_writer_set_hold(struct queue_writer *w, const char *reason)
{
	snprintf(w->hold_reason, sizeof(w->hold_reason), "%s", reason ? reason : "");
	return true;
}

/* The state of a message held at the commit: every recipient pending, held, why;
 * durable (queue_state_write: write, fsync, rename, fsync of state/) before the
 * message's name appears in active/. */
static bool write_hold(struct queue_writer *w, char *err, size_t errlen)
{
	struct queue_state st;
	memset(&st, 0, sizeof(st));
	st.n = w->env.n_rcpts;
	st.r = calloc(st.n ? st.n : 1, sizeof(*st.r));
	st.held = true;
	snprintf(st.hold_reason, sizeof(st.hold_reason), "%s", w->hold_reason);
	bool ok = st.r && queue_state_write(w->q, w->qid, &st);
	int e = errno;
	free(st.r);
	if (!ok) {
		snprintf(err, errlen, "cannot write the held state: %s", st.r ? strerror(e) : "out of memory");
		w->failed = true;
		return false;
	}
	queue_crash_at("hold-written");
	return true;
}

/* Invariant 1: data on disk, then the name, then the directory entry.  The file's
 * own fsync runs here, on this commit thread, in parallel with the other commits';
 * false when the file did not reach its place in active/. */
static bool commit_file(struct queue_writer *w, char *err, size_t errlen)
{
	if (!write_tail(w)) {
		snprintf(err, errlen, "write failed: %s", strerror(errno));
		return false;
	}
	if (fileio_fsync(w->fd) != 0) {
		snprintf(err, errlen, "fsync failed: %s", strerror(errno));
		writer_failed(w, "fsync");
		return false;
	}
	close(w->fd);
	w->fd = -1;
	queue_crash_at("incoming-synced");
	if (w->hold_reason[0] && !write_hold(w, err, errlen))
		return false;
	char dst[1100];
	snprintf(dst, sizeof(dst), "%s/active/%s", w->q->root, w->qid);
	if (rename(w->path, dst) != 0) {
		snprintf(err, errlen, "rename to %s failed: %s", dst, strerror(errno));
		w->failed = true;
		if (w->hold_reason[0])
			unlinkat(w->q->state_dirfd, w->qid, 0);
		return false;
	}
	w->committed = true;
	return true;
}

bool queue_writer_commit(struct queue_writer *w, char *err, size_t errlen)
{
	queue_group_begin(w->q);
	if (!commit_file(w, err, errlen)) {
		queue_group_abandon(w->q);
		return false;
	}
	queue_crash_at("active-renamed");
	/* The directory fsync, shared with the commits renamed at about the same time
	 * (commit.c).  When it fails the file is in place but its name may not be
	 * durable: refuse the 250; the client retries, and at worst the message is
	 * delivered twice, never lost. */
	return queue_group_renamed(w->q, err, errlen);
}

void queue_writer_free(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed)
		unlink(w->path);
	buf_free(&w->wbuf);
	free(w->added);
	queue_envelope_free(&w->env);
	free(w);
	*wp = NULL;
}

const struct queue_envelope *queue_writer_envelope(const struct queue_writer *w)
{
	return &w->env;
}

/* Copy len octets of fd from off into out; false with errno set (EIO: short). */
static bool copy_range(int out, int fd, uint64_t off, uint64_t len)
{
	char buf[64 << 10];
	while (len) {
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = pread(fd, buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;   /* the file is shorter than it should be */
			return false;
		}
		if (!fileio_write_all(out, buf, (size_t)r))
			return false;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return true;
}

/* The new file's content: the envelope records, then every piece.  *offset and
 * *size: where the message is in it.  False with errno set. */
static bool rewrite_write(int fd, const struct queue_envelope *env, const struct queue_piece *pieces, size_t n,
	uint64_t *offset, uint64_t *size)
{
	struct buf b;
	buf_init(&b, HEADER_MAX);
	bool ok = queue_envelope_encode(&b, env);
	if (!ok)
		errno = E2BIG;
	ok = ok && fileio_write_all(fd, b.data, b.len);
	*offset = b.len;
	buf_free(&b);
	*size = 0;
	for (size_t i = 0; ok && i < n; i++) {
		ok = pieces[i].mem ? fileio_write_all(fd, pieces[i].mem, (size_t)pieces[i].len)
			: copy_range(fd, pieces[i].fd, pieces[i].off, pieces[i].len);
		*size += pieces[i].len;
	}
	return ok;
}

bool queue_writer_rewrite(struct queue_writer *w, const struct queue_envelope *env,
	const struct queue_piece *pieces, size_t n, char *err, size_t errlen)
{
	if (w->failed || w->committed || !writer_flush(w)) {
		snprintf(err, errlen, "the message's spool file is no longer usable");
		return false;
	}
	struct queue_envelope copy;
	if (!queue_envelope_copy(&copy, env)) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	snprintf(copy.qid, sizeof(copy.qid), "%s", w->qid);
	char tmp[1200];
	snprintf(tmp, sizeof(tmp), "%s.edit", w->path);
	unlink(tmp);   /* a leftover of an earlier try: never opened */
	uint64_t offset = 0, size = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && rewrite_write(fd, &copy, pieces, n, &offset, &size);
	if (ok)
		queue_crash_at("rewrite-written");
	ok = ok && rename(tmp, w->path) == 0;
	if (!ok) {
		int e = errno;
		snprintf(err, errlen, "cannot write the changed message: %s", strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			queue_space_exhausted(w->q);
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		queue_envelope_free(&copy);
		errno = e;
		return false;
	}
	close(w->fd);
	w->fd = fd;
	w->message_offset = offset;
	w->body_size = size;
	queue_envelope_free(&w->env);
	w->env = copy;
	return true;
}
