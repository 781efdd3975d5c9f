/* commit.c - group commit: the fsync of active/ that makes the names of accepted
 * messages durable, shared by the commits that rename their files at about the same
 * moment (queue.h, "Group commit").
 *
 * Every commit runs on its own commit thread: it writes its trailer, fsyncs its own
 * file (so the data fsyncs of a batch run in parallel) and renames it into active/.
 * Then it takes a ticket (the count of renames so far) and waits until a directory
 * fsync covering its ticket has finished.  When no fsync is running, the waiting
 * commit leads one: it reads the newest ticket just before calling fsync, so the fsync
 * covers exactly the renames that had returned before it began (DESIGN invariant 1:
 * no 250 before the data and the name are durable), then wakes every follower it
 * covered.  Commits that rename while a leader's fsync runs are covered by the next
 * one, led by one of them.  A lone commit leads at once and waits for nobody; a leader
 * waits up to [queue] commit_batch_wait for company only while other commits are
 * still between their start and their rename, and never longer than that.
 *
 * A failed directory fsync fails every commit it covered (their files are in active/
 * but their names may not be durable: no 250, the client sends again, at worst a
 * message is delivered twice, never lost).  The failed range is remembered as its
 * highest ticket: a commit at or below it that a later fsync may also have covered
 * still fails, which is the safe side. */
#include "queue/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue/internal.h"
#include "util/fileio.h"
#include "util/metrics.h"

void queue_group_init(struct commit_group *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);   /* the company wait's deadline */
	pthread_cond_init(&g->synced, &attr);
	pthread_cond_init(&g->arrived, &attr);
	pthread_condattr_destroy(&attr);
	g->wait_us = QUEUE_COMMIT_BATCH_WAIT_DEFAULT_US;
}

void queue_group_destroy(struct commit_group *g)
{
	pthread_cond_destroy(&g->arrived);
	pthread_cond_destroy(&g->synced);
	pthread_mutex_destroy(&g->lock);
}

void queue_set_commit_batch_wait(struct queue *q, uint64_t microseconds)
{
	pthread_mutex_lock(&q->group.lock);
	q->group.wait_us = microseconds;
	pthread_mutex_unlock(&q->group.lock);
}

void queue_group_begin(struct queue *q)
{
	pthread_mutex_lock(&q->group.lock);
	q->group.writing++;
	q->group.begun++;
	pthread_mutex_unlock(&q->group.lock);
}

void queue_group_abandon(struct queue *q)
{
	struct commit_group *g = &q->group;
	pthread_mutex_lock(&g->lock);
	g->writing--;
	g->settled++;
	pthread_cond_broadcast(&g->arrived);   /* a leader waiting for it stops waiting */
	pthread_mutex_unlock(&g->lock);
}

/* The leader, before its fsync: while the commits already in flight when it began
 * to wait are still writing or fsyncing their files, wait for them to rename (at most
 * wait_us), so that one directory fsync covers them too.  Commits that start during
 * the wait are not waited for (under steady load there always is one: the wait would
 * always run to its end).  Nobody in flight: no wait at all.  Lock held. */
static void wait_for_company(struct commit_group *g)
{
	if (g->wait_us == 0 || g->writing == 0)
		return;
	uint64_t in_flight_upto = g->begun;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	uint64_t ns = (uint64_t)until.tv_nsec + g->wait_us * 1000u;
	until.tv_sec += (time_t)(ns / 1000000000u);
	until.tv_nsec = (long)(ns % 1000000000u);
	while (g->settled < in_flight_upto)
		if (pthread_cond_timedwait(&g->arrived, &g->lock, &until) == ETIMEDOUT)
			break;
}

/* One directory fsync for every rename finished before it began.  Called with the
 * lock held and no other leader; returns with it held. */
static void lead_one_sync(struct queue *q)
{
	struct commit_group *g = &q->group;
	g->syncing = true;
	wait_for_company(g);
	uint64_t from = g->synced_upto;
	uint64_t target = g->renamed;   /* read before the fsync begins: those renames are done */
	pthread_mutex_unlock(&g->lock);
	int r = fileio_fsync(q->active_dirfd);
	int e = errno;
	pthread_mutex_lock(&g->lock);
	if (r != 0) {
		g->failed_upto = target;
		g->failed_errno = e;
	} else {
		metrics_observe(METRIC_COMMIT_BATCH_SIZE, NULL, (double)(target - from));
	}
	g->synced_upto = target;
	g->syncing = false;
	pthread_cond_broadcast(&g->synced);
}

bool queue_group_renamed(struct queue *q, char *err, size_t errlen)
{
	struct commit_group *g = &q->group;
	pthread_mutex_lock(&g->lock);
	g->writing--;
	g->settled++;
	uint64_t ticket = ++g->renamed;
	pthread_cond_broadcast(&g->arrived);
	/* No deadline of its own: a follower waits for the leader's fsync, which takes
	 * as long as the fsync this commit would otherwise have made itself. */
	while (g->synced_upto < ticket) {
		if (g->syncing)
			pthread_cond_wait(&g->synced, &g->lock);
		else
			lead_one_sync(q);
	}
	bool ok = ticket > g->failed_upto;
	int e = g->failed_errno;
	pthread_mutex_unlock(&g->lock);
	if (!ok)
		snprintf(err, errlen, "directory fsync failed: %s", strerror(e));
	return ok;
}
