/* internal.h - what the files of src/queue/ share and no other room sees: the queue
 * handle, the space watch, the value encoding of envelope and state records, and the
 * safe opening of spool files.  The public interface is queue.h. */
#ifndef POSTERN_QUEUE_INTERNAL_H
#define POSTERN_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/id.h"

struct buf;
struct queue_envelope;

#define QUEUE_MAGIC "POSTERN-QUEUE 1\n"
#define HEADER_MAX (8u << 20)

/* The space watch (see queue.h); the loop and the commit threads report to it. */
struct space_watch {
	pthread_mutex_t lock;
	uint64_t min_free;
	time_t checked;         /* monotonic seconds of the last statvfs; 0: never */
	uint64_t free;          /* bytes available to us then */
	bool known;             /* the last statvfs worked */
	bool low;               /* the condition holds (logged) */
	time_t logged;          /* last queue_space_low line */
	time_t exhausted;       /* last write that failed for lack of space */
};

/* Group commit (spool.c, queue.h): commits that rename their files into active/ at
 * about the same moment share one fsync of the directory.  Each rename takes a ticket
 * (renamed, in order); a leader reads `renamed` just before its fsync begins, so the
 * fsync covers every ticket up to that value, whose renames had all returned by then. */
struct commit_group {
	pthread_mutex_t lock;
	pthread_cond_t synced;      /* a directory fsync finished (synced_upto moved) */
	pthread_cond_t arrived;     /* a commit being written renamed its file, or gave up */
	uint64_t renamed;           /* tickets handed out = renames into active/ finished */
	uint64_t synced_upto;       /* every ticket <= this was covered by a finished fsync */
	uint64_t failed_upto;       /* highest ticket covered by a failed fsync (0: none) */
	int failed_errno;           /* that fsync's errno */
	unsigned writing;           /* commits between their start and their rename */
	uint64_t begun;             /* commits started so far */
	uint64_t settled;           /* of those, renamed or given up */
	bool syncing;               /* a leader is waiting for company or fsyncing active/ */
	uint64_t wait_us;           /* [queue] commit_batch_wait */
};
#define QUEUE_FORGET_MAX 64   /* state files waiting for one fsync of active/ (queue_done) */

struct queue {
	char root[1024];        /* data_dir/queue */
	int active_dirfd;
	int state_dirfd;
	struct space_watch space;
	int failed_dirfd;
	struct spool_reserve *reserve;   /* reserve.c: spool files made ahead; NULL: none */
	struct commit_group group;
	/* queue_done's batch: messages whose queue file is unlinked, their state file not yet */
	pthread_mutex_t done_lock;
	size_t n_forget;
	char forget[QUEUE_FORGET_MAX][QUEUE_ID_LEN + 1];
};

/* The test hook queue_crash_point (queue.h), if set, at a named step. */
void queue_crash_at(const char *step);

/* envelope.c: one "key value\n" record, the value percent-encoded (bytes outside
 * 0x21..0x7e and '%' become %XX); and its decoding into out (NUL-terminated), false
 * if malformed or too long. */
void queue_record_put(struct buf *b, const char *key, const char *val);
bool queue_value_decode(const char *p, size_t n, char *out, size_t outsz);
/* The envelope records that begin a queue file, ending in the blank line. */
bool queue_envelope_encode(struct buf *b, const struct queue_envelope *env);

/* spool.c: dirfd/name opened for reading as a spool file: no symbolic link, no FIFO,
 * regular files only.  The descriptor, or -1 with the reason in err (errno ENOENT
 * if the file is missing). */
int queue_spool_open(int dirfd, const char *name, char *err, size_t errlen);

/* reserve.c: a spool file made ahead (its id and open descriptor, which the caller
 * now owns), or false when none is ready.  Never waits for the disk. */
bool queue_reserve_take(struct queue *q, char qid[QUEUE_ID_LEN + 1], int *fd);
/* queue_done's removal of active/<qid>: renamed into incoming/ for reuse as a file
 * made ahead.  False when it was not (no reserve, the pool full, the rename failed):
 * the caller unlinks it as before. */
bool queue_reserve_recycle(struct queue *q, const char *qid);
/* Stop the thread and remove the files not taken (queue_close). */
void queue_reserve_stop(struct queue *q);
/* commit.c: the group commit's lock and conditions (queue_open / queue_close). */
void queue_group_init(struct commit_group *g);
void queue_group_destroy(struct commit_group *g);
/* A commit starts (before its file's fsync), or stops before its rename (failed). */
void queue_group_begin(struct queue *q);
void queue_group_abandon(struct queue *q);
/* The commit's file was just renamed into active/: wait until a directory fsync that
 * began after the rename has finished (leading one if none is running).  True when it
 * succeeded; false with the reason in err (the name may not be durable). */
bool queue_group_renamed(struct queue *q, char *err, size_t errlen);

/* queue.c: a write failed for lack of space (logged by the space watch). */
void queue_space_exhausted(struct queue *q);

#endif
