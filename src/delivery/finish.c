/* finish.c - the durable end of local deliveries: the Maildir directories that
 * received copies are fsync'd, one fsync per directory for every message finishing
 * at about the same time (a group commit of directory syncs), before the queue may
 * forget a message or record a recipient as delivered (see local.h, queue.h
 * queue_done, scheduler_int.h).
 *
 * Why it is correct to share: a copy's name is durable once its directory has been
 * fsync'd after the rename that made it.  A request joins the batch only after its
 * renames are done, and the batch's fsyncs all start after it was taken, so each
 * fsync covers every copy of every request in the batch.  A lone request is never
 * delayed: when no batch is being synced it syncs at once; requests that come while
 * one is being synced wait for it and are then synced together by one of them.
 *
 * Company: without waiting, the threads rarely met (a profile of 50 sessions into one
 * Maildir: 439 fsyncs of new/ for 500 messages), because the file fsync before a
 * request takes longer than the directory's.  So a leader, like the queue's group
 * commit (queue/commit.c), first waits up to FINISH_COMPANY_WAIT_US for the local
 * deliveries already under way when it began (finish_begin .. their finish_sync or
 * finish_abandon) and syncs for them too; with none under way it does not wait. */
#include "delivery/scheduler_int.h"

#include "util/fileio.h"

#define FINISH_COMPANY_WAIT_US 2000

struct finish_req {
	struct finish_dir *dirs;
	size_t n;
	bool done, ok;
	struct finish_req *next;
};

void finish_init(struct finish_group *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);   /* the company wait's deadline */
	pthread_cond_init(&g->arrived, &attr);
	pthread_condattr_destroy(&attr);
}

void finish_destroy(struct finish_group *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	pthread_cond_destroy(&g->arrived);
}

void finish_begin(struct finish_group *g)
{
	pthread_mutex_lock(&g->lock);
	g->writing++;
	g->begun++;
	pthread_mutex_unlock(&g->lock);
}

/* A delivery counted by finish_begin reached its sync, or needs none.  Lock held. */
static void settle_one(struct finish_group *g)
{
	g->writing--;
	g->settled++;
	pthread_cond_broadcast(&g->arrived);
}

void finish_abandon(struct finish_group *g)
{
	pthread_mutex_lock(&g->lock);
	settle_one(g);
	pthread_mutex_unlock(&g->lock);
}

/* The leader, before taking the batch: while deliveries that were under way when it
 * began are still writing their copies, wait for them (at most the company wait);
 * ones that begin meanwhile are not waited for (under steady load there always is
 * one).  Lock held. */
static void wait_for_company(struct finish_group *g)
{
	if (g->writing == 0)
		return;
	uint64_t in_flight_upto = g->begun;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	uint64_t ns = (uint64_t)until.tv_nsec + FINISH_COMPANY_WAIT_US * 1000u;
	until.tv_sec += (time_t)(ns / 1000000000u);
	until.tv_nsec = (long)(ns % 1000000000u);
	while (g->settled < in_flight_upto)
		if (pthread_cond_timedwait(&g->arrived, &g->lock, &until) == ETIMEDOUT)
			break;
}

/* The same directory earlier in the batch (an earlier request, or this one before
 * index i): its fsync, and its result, serve this one too.  NULL: none. */
static const struct finish_dir *synced_before(const struct finish_req *batch, const struct finish_req *req, size_t i)
{
	for (const struct finish_req *b = batch; b; b = b->next) {
		size_t end = b == req ? i : b->n;
		for (size_t k = 0; k < end; k++)
			if (strcmp(b->dirs[k].path, req->dirs[i].path) == 0)
				return &b->dirs[k];
		if (b == req)
			break;
	}
	return NULL;
}

/* The leader's work, without the lock: every distinct directory once.  A request is
 * ok when all of its directories were synced. */
static unsigned sync_batch(struct finish_req *batch)
{
	unsigned fsyncs = 0;
	for (struct finish_req *r = batch; r; r = r->next) {
		r->ok = true;
		for (size_t i = 0; i < r->n; i++) {
			struct finish_dir *fd = &r->dirs[i];
			const struct finish_dir *prev = synced_before(batch, r, i);
			if (prev) {
				fd->failed = prev->failed;
			} else {
				fd->failed = !fileio_fsync_dir(fd->path);
				fsyncs++;
				if (fd->failed)
					log_event(LOG_ERR, "delivery_error", "error=\"fsync of %s failed: %s\" action=\"the "
						"recipients delivered there are pending again; their copies are found by name on the "
						"next attempt\"", fd->path, strerror(errno));
			}
			r->ok = r->ok && !fd->failed;
		}
	}
	return fsyncs;
}

bool finish_sync(struct finish_group *g, struct finish_dir *dirs, size_t n, bool begun)
{
	if (n == 0) {
		if (begun)
			finish_abandon(g);
		return true;
	}
	struct finish_req me = { .dirs = dirs, .n = n };
	pthread_mutex_lock(&g->lock);
	if (begun)
		settle_one(g);
	me.next = g->waiting;
	g->waiting = &me;
	while (!me.done) {
		if (g->syncing) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		/* Nobody is syncing: this thread syncs everything waiting, its own included,
		 * after the company wait (others arriving meanwhile join the batch). */
		g->syncing = true;
		wait_for_company(g);
		struct finish_req *batch = g->waiting;
		g->waiting = NULL;
		pthread_mutex_unlock(&g->lock);
		unsigned fsyncs = sync_batch(batch), reqs = 0;
		pthread_mutex_lock(&g->lock);
		for (struct finish_req *r = batch, *next; r; r = next) {
			next = r->next;
			r->done = true;   /* r may be gone once the lock is released */
			reqs++;
		}
		g->syncing = false;
		g->batches++;
		g->requests += reqs;
		g->fsyncs += fsyncs;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
	return me.ok;
}
