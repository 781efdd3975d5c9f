/* reserve.c - spool files made ahead, off the event loop (see queue.h,
 * queue_reserve_start).
 *
 * Creating a file costs the filesystem an inode allocation, and that is not cheap
 * under the churn a mail queue makes: on ext4 every new inode skips the inodes freed
 * in the last few seconds (recently_deleted(), reading their inode table blocks), so
 * with a thousand spool files removed per second one create took about 0.8 ms, and
 * on the event loop that was 62% of its time at 50 sessions (docs/operations.md,
 * "Threads, the event loop and memory per connection").  The loop must not wait for
 * the disk (DESIGN invariant 5): this thread keeps up to `want` empty files
 * incoming/<qid> created and open, and queue_writer_open on the loop takes one (a
 * mutex held for a copy of a few bytes) and wakes the thread to make the next.  When
 * none is ready the writer makes its own file as before, so a slow disk slows the
 * loop only as much as it did without the reserve.  Files not taken are removed at
 * queue_close; after a crash the server's start removes every file in incoming/.
 *
 * Recycled files: a delivered message's queue file is not unlinked but renamed to
 * incoming/free.<qid> (queue_reserve_recycle, from queue_done) and becomes the next
 * file made ahead: renamed to incoming/<new qid> and opened, no inode allocated.
 * The create is what costs (above: it grows with the inodes freed in the last 30 s,
 * which the queue's own unlinks were most of: a profile of 50 Maildir sessions spent
 * 35% of the server's time in ext4_create).  The file is emptied when it is recycled
 * and again when it is opened for reuse (O_TRUNC), so nothing of the delivered
 * message stays in incoming/ or reaches the new one.  A crash leaves free.* files in incoming/,
 * which the next start removes with the rest; the pool is bounded (FREE_MAX), beyond
 * it queue_done unlinks as before. */
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/id.h"

#define RESERVE_MAX 64
#define FREE_MAX 128               /* recycled files waiting to be made ahead */
#define FREE_PREFIX "free."
#define FREE_NAME_LEN (sizeof(FREE_PREFIX) - 1 + QUEUE_ID_LEN)
#define RESERVE_RETRY_SECONDS 1   /* after a failed create (no space, no inodes) */

struct reserved_file {
	int fd;
	char qid[QUEUE_ID_LEN + 1];
};

struct spool_reserve {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool stopping;
	unsigned want;
	char dir[1100];
	int dirfd;                 /* incoming/ */
	/* Recycled files (free.<qid> in incoming/): their own lock, never taken by the
	 * event loop, as the renames happen outside it but the pool's users wait on it. */
	pthread_mutex_t free_lock;
	char freed[FREE_MAX][FREE_NAME_LEN + 1];
	unsigned free_head, free_n, free_pending;
	/* A ring, oldest first: messages take the files in the order they were made, so
	 * their ids (time-based) keep the order of their arrival. */
	struct reserved_file files[RESERVE_MAX];
	unsigned head, n;
};

/* The oldest recycled file's name, taken out of the pool; false when none. */
static bool free_pop(struct spool_reserve *r, char name[FREE_NAME_LEN + 1])
{
	pthread_mutex_lock(&r->free_lock);
	bool got = r->free_n > 0;
	if (got) {
		memcpy(name, r->freed[r->free_head], FREE_NAME_LEN + 1);
		r->free_head = (r->free_head + 1) % FREE_MAX;
		r->free_n--;
	}
	pthread_mutex_unlock(&r->free_lock);
	return got;
}

/* A recycled file renamed to incoming/<qid> and opened; false (the file removed)
 * when either step failed: then a new one is made. */
static bool reuse_file(struct spool_reserve *r, const char *name, struct reserved_file *out)
{
	if (renameat(r->dirfd, name, r->dirfd, out->qid) != 0) {
		unlinkat(r->dirfd, name, 0);
		return false;
	}
	/* O_TRUNC: empty, as a new file (queue_reserve_recycle emptied it already, unless
	 * that failed); readers before the commit (a filter's edits, the signing stage)
	 * take the file's size for the message's. */
	out->fd = openat(r->dirfd, out->qid, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	if (out->fd < 0) {
		unlinkat(r->dirfd, out->qid, 0);
		return false;
	}
	return true;
}

/* One file in incoming/, recycled when one is free, else new and empty (the
 * thread's blocking step, without the lock). */
static bool make_file(struct spool_reserve *r, struct reserved_file *out)
{
	char path[1200], name[FREE_NAME_LEN + 1];
	id_new_queue_id(out->qid);
	if (free_pop(r, name) && reuse_file(r, name, out))
		return true;
	snprintf(path, sizeof(path), "%s/%s", r->dir, out->qid);
	out->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return out->fd >= 0;
}

static void *reserve_main(void *arg)
{
	struct spool_reserve *r = arg;
	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		if (r->n >= r->want) {
			pthread_cond_wait(&r->wake, &r->lock);
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		struct reserved_file f;
		bool made = make_file(r, &f);
		pthread_mutex_lock(&r->lock);
		if (made && !r->stopping) {
			r->files[(r->head + r->n++) % RESERVE_MAX] = f;
			continue;
		}
		if (made) {   /* stopping meanwhile: not handed out, so removed here */
			char path[1200];
			snprintf(path, sizeof(path), "%s/%s", r->dir, f.qid);
			close(f.fd);
			unlink(path);
			break;
		}
		/* The writer on the loop meets the same failure and reports it in its words
		 * (the space watch for ENOSPC); here, only do not spin. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += RESERVE_RETRY_SECONDS;
		pthread_cond_timedwait(&r->wake, &r->lock, &until);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

bool queue_reserve_start(struct queue *q, unsigned files, char *err, size_t errlen)
{
	if (files == 0 || q->reserve)
		return true;
	struct spool_reserve *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	r->want = files < RESERVE_MAX ? files : RESERVE_MAX;
	snprintf(r->dir, sizeof(r->dir), "%s/incoming", q->root);
	r->dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", r->dir, strerror(errno));
		free(r);
		return false;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->free_lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	int e = pthread_create(&r->thread, NULL, reserve_main, r);
	if (e != 0) {
		snprintf(err, errlen, "cannot start the spool file thread: %s", strerror(e));
		pthread_cond_destroy(&r->wake);
		pthread_mutex_destroy(&r->free_lock);
		pthread_mutex_destroy(&r->lock);
		close(r->dirfd);
		free(r);
		return false;
	}
	q->reserve = r;
	return true;
}

bool queue_reserve_take(struct queue *q, char qid[QUEUE_ID_LEN + 1], int *fd)
{
	struct spool_reserve *r = q->reserve;
	if (!r)
		return false;
	pthread_mutex_lock(&r->lock);
	bool got = r->n > 0;
	if (got) {
		struct reserved_file f = r->files[r->head];
		r->head = (r->head + 1) % RESERVE_MAX;
		r->n--;
		memcpy(qid, f.qid, QUEUE_ID_LEN + 1);
		*fd = f.fd;
		/* Woken for a quarter of the files at a time, not for each: a wake-up per
		 * message was two context switches per message (the thread makes one file and
		 * sleeps again); a quarter left is still far more than the loop takes in
		 * the time the thread needs to wake. */
		unsigned batch = r->want / 4 ? r->want / 4 : 1;
		if (r->n + batch <= r->want)
			pthread_cond_signal(&r->wake);
	}
	pthread_mutex_unlock(&r->lock);
	return got;
}

void queue_reserve_stop(struct queue *q)
{
	struct spool_reserve *r = q->reserve;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	for (unsigned i = 0; i < r->n; i++) {
		const struct reserved_file *f = &r->files[(r->head + i) % RESERVE_MAX];
		char path[1200];
		snprintf(path, sizeof(path), "%s/%s", r->dir, f->qid);
		close(f->fd);
		unlink(path);
	}
	char name[FREE_NAME_LEN + 1];
	while (free_pop(r, name))
		unlinkat(r->dirfd, name, 0);
	/* A recycle between the pool's check and its push (free_pending) cannot be
	 * running: queue_close stops the delivery threads first. */
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->free_lock);
	pthread_mutex_destroy(&r->lock);
	close(r->dirfd);
	free(r);
	q->reserve = NULL;
}

bool queue_reserve_recycle(struct queue *q, const char *qid)
{
	struct spool_reserve *r = q->reserve;
	if (!r)
		return false;
	pthread_mutex_lock(&r->free_lock);
	bool room = r->free_n + r->free_pending < FREE_MAX;
	if (room)
		r->free_pending++;
	pthread_mutex_unlock(&r->free_lock);
	if (!room)
		return false;
	char name[FREE_NAME_LEN + 1];
	snprintf(name, sizeof(name), FREE_PREFIX "%s", qid);
	bool moved = renameat(q->active_dirfd, qid, r->dirfd, name) == 0;
	/* Emptied now, on the delivery thread: no delivered mail lingers in incoming/,
	 * and the spool-file thread's open finds nothing to cut. */
	char path[1200];
	if (moved && snprintf(path, sizeof(path), "%s/%s", r->dir, name) < (int)sizeof(path))
		(void)truncate(path, 0);
	pthread_mutex_lock(&r->free_lock);
	r->free_pending--;
	if (moved) {
		memcpy(r->freed[(r->free_head + r->free_n) % FREE_MAX], name, sizeof(name));
		r->free_n++;
	}
	pthread_mutex_unlock(&r->free_lock);
	return moved;
}
