/* queue.c - the durable spool (see queue.h for the file format): opening and closing
 * the queue, and the watch over free space.  The writer and its durable commit are
 * writer.c, the envelope encoding envelope.c, per-recipient state state.c, reading,
 * listing, removing and cleaning spool files spool.c; the delivery side's removal
 * (queue_done, batched) is here. */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/parse.h"
#include "wire/enh.h"

void (*queue_crash_point)(const char *step);

void queue_crash_at(const char *step)
{
	if (queue_crash_point)
		queue_crash_point(step);
}

/* Remove leftovers of messages that were never acknowledged. */
static void clean_incoming(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		/* Everything but . and ..: also the .body-* file a filter's replacement body
		 * briefly has on a filesystem without O_TMPFILE (policy/edits.c). */
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* free.*: delivered messages' files kept for reuse (reserve.c): nothing to say. */
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 && strncmp(e->d_name, "free.", 5) != 0)
			log_event(LOG_INFO, "spool_cleanup", "file=%s reason=\"never acknowledged\"", e->d_name);
	}
	closedir(d);
}

static bool queue_open_mode(struct queue **qp, const char *data_dir, bool server, char *err, size_t errlen);

bool queue_open(struct queue **qp, const char *data_dir, char *err, size_t errlen)
{
	return queue_open_mode(qp, data_dir, true, err, errlen);
}

bool queue_attach(struct queue **qp, const char *data_dir, char *err, size_t errlen)
{
	return queue_open_mode(qp, data_dir, false, err, errlen);
}

static bool queue_open_mode(struct queue **qp, const char *data_dir, bool server, char *err, size_t errlen)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	q->active_dirfd = q->state_dirfd = q->failed_dirfd = -1;
	pthread_mutex_init(&q->space.lock, NULL);
	queue_group_init(&q->group);
	pthread_mutex_init(&q->done_lock, NULL);
	snprintf(q->root, sizeof(q->root), "%s/queue", data_dir);
	static const char *const subdirs[] = { "incoming", "active", "state", "failed" };
	for (size_t i = 0; i < 4; i++) {
		char p[1100];
		snprintf(p, sizeof(p), "%s/%s", q->root, subdirs[i]);
		if (!fileio_mkdir_p(p, 0700)) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			pthread_mutex_destroy(&q->space.lock);
			queue_group_destroy(&q->group);
			pthread_mutex_destroy(&q->done_lock);
			free(q);
			return false;
		}
	}
	char p[1100];
	snprintf(p, sizeof(p), "%s/incoming", q->root);
	if (server)
		clean_incoming(p);   /* only the server, at start: files there were never acknowledged */
	snprintf(p, sizeof(p), "%s/active", q->root);
	q->active_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/state", q->root);
	q->state_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->state_dirfd >= 0) {
		snprintf(p, sizeof(p), "%s/failed", q->root);
		q->failed_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (q->active_dirfd < 0 || q->state_dirfd < 0 || q->failed_dirfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
		queue_close(&q);
		return false;
	}
	*qp = q;
	return true;
}

bool queue_writable(struct queue *q, char *err, size_t errlen)
{
	char dir[1100], p[1200];
	snprintf(dir, sizeof(dir), "%s/incoming", q->root);
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	bool named = fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR);   /* a filesystem without O_TMPFILE */
	if (named) {
		snprintf(p, sizeof(p), "%s/.writable-%ld-%lx", dir, (long)getpid(), (unsigned long)pthread_self());
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
		return false;
	}
	bool ok = write(fd, "x", 1) == 1;
	int e = errno;
	close(fd);
	if (named)
		unlink(p);
	if (!ok)
		snprintf(err, errlen, "cannot write in %s: %s", dir, strerror(e));
	return ok;
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;
	if (!q)
		return;
	queue_reserve_stop(q);   /* reserve.c: its thread and the files not taken */
	if (q->active_dirfd >= 0 && q->state_dirfd >= 0)
		queue_done_flush(q);
	pthread_mutex_destroy(&q->done_lock);
	if (q->active_dirfd >= 0)
		close(q->active_dirfd);
	if (q->state_dirfd >= 0)
		close(q->state_dirfd);
	pthread_mutex_destroy(&q->space.lock);
	queue_group_destroy(&q->group);
	if (q->failed_dirfd >= 0)
		close(q->failed_dirfd);
	free(q);
	*qp = NULL;
}

const char *queue_dir(const struct queue *q)
{
	return q->root;
}

/* --- the delivery side's removal (see queue.h, queue_done) ------------------- */

bool queue_done(struct queue *q, const char *qid, bool had_state)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	/* Recycled as a spool file made ahead (reserve.c) when there is room, else gone. */
	if (!queue_reserve_recycle(q, qid) && unlinkat(q->active_dirfd, qid, 0) != 0 && errno != ENOENT)
		return false;   /* the message stays, with its state: nothing is redelivered */
	queue_crash_at("queue-file-removed");
	if (!had_state)
		return true;
	pthread_mutex_lock(&q->done_lock);
	bool full = q->n_forget == QUEUE_FORGET_MAX;
	pthread_mutex_unlock(&q->done_lock);
	if (full)
		queue_done_flush(q);
	pthread_mutex_lock(&q->done_lock);
	if (q->n_forget < QUEUE_FORGET_MAX)
		memcpy(q->forget[q->n_forget++], qid, QUEUE_ID_LEN + 1);
	/* else: others filled it meanwhile; the state file stays an orphan for queue_clean */
	pthread_mutex_unlock(&q->done_lock);
	return true;
}

/* One fsync of active/ makes every unlink of the batch durable; only then may their
 * state files go (a state file gone while its queue file came back would make every
 * recipient pending again).  state/ is not fsync'd: a state file a crash brings back
 * has no queue file and queue_clean removes it. */
void queue_done_flush(struct queue *q)
{
	char ids[QUEUE_FORGET_MAX][QUEUE_ID_LEN + 1];
	pthread_mutex_lock(&q->done_lock);
	size_t n = q->n_forget;
	memcpy(ids, q->forget, n * sizeof(ids[0]));
	q->n_forget = 0;
	pthread_mutex_unlock(&q->done_lock);
	if (n == 0)
		return;
	if (fileio_fsync(q->active_dirfd) != 0) {
		log_event(LOG_ERR, "queue_error", "op=remove error=\"fsync of %s/active failed: %s\" "
			"action=\"%zu state file(s) kept; removed by the cleanup once their messages are gone\"", q->root,
			strerror(errno), n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		unlinkat(q->state_dirfd, ids[i], 0);
	queue_crash_at("state-removed");
}

/* --- space for new messages (see queue.h) ------------------------------------ */

#define SPACE_LOG_EVERY 60   /* seconds between two queue_space_low lines */

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1;   /* never 0: 0 means "never checked" */
}

static void space_stat(struct space_watch *sw, int dirfd, time_t now)
{
	struct statvfs vfs;
	sw->checked = now;
	sw->known = fstatvfs(dirfd, &vfs) == 0;
	if (sw->known)
		sw->free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

/* Lock held.  The condition holds: say so when it starts, then once a minute. */
static void space_log_low(struct queue *q, time_t now, const char *why)
{
	struct space_watch *sw = &q->space;
	if (sw->low && now - sw->logged < SPACE_LOG_EVERY)
		return;
	char f[32], m[32];
	log_event(LOG_ERR, "queue_space_low", "path=%s free=\"%s\" free_bytes=%llu min_free=\"%s\" reason=\"%s\" "
		"hint=\"new mail gets 452 " ENH_TEMP_SYSTEM_FULL " until space is freed on this filesystem\"", q->root,
		sw->known ? format_size(sw->free, f, sizeof(f)) : "unknown", (unsigned long long)sw->free,
		format_size(sw->min_free, m, sizeof(m)), why);
	sw->low = true;
	sw->logged = now;
}

void queue_space_exhausted(struct queue *q)
{
	struct space_watch *sw = &q->space;
	time_t now = mono_now();
	pthread_mutex_lock(&sw->lock);
	sw->exhausted = now;
	space_stat(sw, q->active_dirfd, now);   /* for the log line */
	space_log_low(q, now, "a write failed: no space left on the filesystem");
	/* The failed message is about to be removed: MAIL looks again, not at this figure. */
	sw->checked = 0;
	pthread_mutex_unlock(&sw->lock);
}

void queue_set_min_free(struct queue *q, uint64_t bytes)
{
	pthread_mutex_lock(&q->space.lock);
	q->space.min_free = bytes;
	q->space.checked = 0;
	pthread_mutex_unlock(&q->space.lock);
}

uint64_t queue_space_room(struct queue *q)
{
	struct space_watch *sw = &q->space;
	time_t now = mono_now();
	pthread_mutex_lock(&sw->lock);
	if (sw->checked != now)
		space_stat(sw, q->active_dirfd, now);
	uint64_t room = !sw->known ? UINT64_MAX : sw->free > sw->min_free ? sw->free - sw->min_free : 0;
	if (room == 0) {
		space_log_low(q, now, "free space is at or below [queue] min_free");
	} else if (sw->low && now - sw->exhausted >= SPACE_LOG_EVERY) {
		/* Room again, and no write has failed for a minute: the condition is over. */
		char f[32];
		log_event(LOG_INFO, "queue_space_ok", "path=%s free=\"%s\" free_bytes=%llu", q->root,
			sw->known ? format_size(sw->free, f, sizeof(f)) : "unknown", (unsigned long long)sw->free);
		sw->low = false;
	}
	pthread_mutex_unlock(&sw->lock);
	return room;
}
