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
 * queue_close; after a crash the server's start removes every file in incoming/. */
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
	/* A ring, oldest first: messages take the files in the order they were made, so
	 * their ids (time-based) keep the order of their arrival. */
	struct reserved_file files[RESERVE_MAX];
	unsigned head, n;
};

/* One new empty file in incoming/ (the thread's blocking step, without the lock). */
static bool make_file(const struct spool_reserve *r, struct reserved_file *out)
{
	char path[1200];
	id_new_queue_id(out->qid);
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
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	int e = pthread_create(&r->thread, NULL, reserve_main, r);
	if (e != 0) {
		snprintf(err, errlen, "cannot start the spool file thread: %s", strerror(e));
		pthread_cond_destroy(&r->wake);
		pthread_mutex_destroy(&r->lock);
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
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
	q->reserve = NULL;
}
