/* writer.c - writing a new message into the spool and its durable commit (see
 * queue.h): created with O_EXCL in incoming/, the envelope records, the body, the
 * end record; then fsync, rename into active/ and fsync of the directory before the
 * caller may say 250 (invariant 1). */
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
	snprintf(w->path, sizeof(w->path), "%s/incoming/%s", q->root, env->qid);
	buf_init(&w->wbuf, HEADER_MAX);
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
	bool encoded = queue_envelope_encode(&w->wbuf, env);
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

bool queue_writer_commit(struct queue_writer *w, char *err, size_t errlen)
{
	if (!write_tail(w)) {
		snprintf(err, errlen, "write failed: %s", strerror(errno));
		return false;
	}
	/* Invariant 1: data on disk, then the name, then the directory entry. */
	if (fsync(w->fd) != 0) {
		snprintf(err, errlen, "fsync failed: %s", strerror(errno));
		writer_failed(w, "fsync");
		return false;
	}
	close(w->fd);
	w->fd = -1;
	queue_crash_at("incoming-synced");
	char dst[1100];
	snprintf(dst, sizeof(dst), "%s/active/%s", w->q->root, w->qid);
	if (rename(w->path, dst) != 0) {
		snprintf(err, errlen, "rename to %s failed: %s", dst, strerror(errno));
		w->failed = true;
		return false;
	}
	w->committed = true;
	queue_crash_at("active-renamed");
	if (fsync(w->q->active_dirfd) != 0) {
		/* The file is in place but its name may not be durable: refuse the 250; the
		 * client retries, and at worst the message is delivered twice, never lost. */
		snprintf(err, errlen, "directory fsync failed: %s", strerror(errno));
		return false;
	}
	return true;
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
	free(w);
	*wp = NULL;
}
