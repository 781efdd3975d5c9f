/* lists.c - the runner's lists and counts (the lock held): the ready list and the
 * deferred ones, the messages being worked on, the per-domain concurrency limits,
 * and the stop state.  Shared by the threads, one attempt and the chores (see
 * scheduler_int.h). */
#include "delivery/scheduler_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/metrics.h"

/* --- lists (lock held) ------------------------------------------------------ */

void sched_push_ready(struct delivery *d, struct item *it)
{
	it->next = NULL;
	if (d->ready_tail)
		d->ready_tail->next = it;
	else
		d->ready_head = it;
	d->ready_tail = it;
}

/* Unlink *p from the ready list, keeping the tail right without a walk. */
struct item *sched_ready_unlink(struct delivery *d, struct item **p, struct item *prev)
{
	struct item *it = *p;
	*p = it->next;
	if (d->ready_tail == it)
		d->ready_tail = prev;
	return it;
}

/* Remove qid from both lists; returns whether it was there. */
bool sched_unlist(struct delivery *d, const char *qid)
{
	bool found = false;
	struct item *prev = NULL;
	for (struct item **p = &d->ready_head; *p;) {
		if (strcmp((*p)->qid, qid) == 0) {
			struct item *dead = sched_ready_unlink(d, p, prev);
			d->n_items--;
			sched_queue_gauges(d, dead->arrival ? dead->arrival : 1);
			free(dead);
			found = true;
		} else {
			prev = *p;
			p = &(*p)->next;
		}
	}
	for (struct item **p = &d->deferred; *p;) {
		if (strcmp((*p)->qid, qid) == 0) {
			struct item *dead = *p;
			*p = dead->next;
			d->n_items--;
			sched_queue_gauges(d, dead->arrival ? dead->arrival : 1);
			free(dead);
			found = true;
		} else {
			p = &(*p)->next;
		}
	}
	return found;
}

bool sched_is_busy(struct delivery *d, const char *qid)
{
	for (unsigned i = 0; i < d->nthreads; i++)
		if (strcmp(d->busy[i], qid) == 0)
			return true;
	return false;
}

void sched_add_item(struct delivery *d, const char *qid, time_t due, bool force, bool fresh)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it) {
		log_event(LOG_ERR, "delivery_error", "qid=%s error=\"out of memory; tried at next start\"", qid);
		return;
	}
	snprintf(it->qid, sizeof(it->qid), "%s", qid);
	it->due = due;
	it->force = force;
	it->fresh = fresh;
	it->arrival = fresh ? time(NULL) : 0;   /* just committed; else known after the first attempt */
	d->n_items++;
	if (it->arrival && (!d->oldest_arrival || it->arrival < d->oldest_arrival))
		d->oldest_arrival = it->arrival;
	sched_queue_gauges(d, 0);
	if (due <= time(NULL))
		sched_push_ready(d, it);
	else {
		it->next = d->deferred;
		d->deferred = it;
	}
	pthread_cond_signal(&d->cond);
}

/* A message just committed: fresh (no state file, no copy anywhere: sched_process
 * reads nothing), unless a rescan of active/ found files nobody had scheduled in the
 * last minute: it may have listed this one between its rename and this call, and the
 * two items must not both believe there is no state. */
void delivery_enqueue(struct delivery *d, const char *qid)
{
	pthread_mutex_lock(&d->lock);
	bool rescanned = d->rescan_found && time(NULL) - d->rescan_found < RESCAN_RACE_SECONDS;
	sched_add_item(d, qid, 0, false, !rescanned);
	pthread_mutex_unlock(&d->lock);
}

bool sched_stop_state(struct delivery *d, bool *cancelled)
{
	pthread_mutex_lock(&d->lock);
	bool stopping = d->stopping;
	if (cancelled)
		*cancelled = d->cancelled;
	pthread_mutex_unlock(&d->lock);
	return stopping;
}

static void oldest_of(time_t *oldest, time_t arrival)
{
	if (arrival && (!*oldest || arrival < *oldest))
		*oldest = arrival;
}

/* The walk for the oldest arrival, stopping at the first item as old as `was` (the
 * oldest before): none is older (oldest_arrival is never above a known arrival), so
 * the oldest is still `was`.  Arrivals are whole seconds and the ready list runs
 * oldest first, so under load that is one of the first items: the full walk it
 * replaced ran under the lock the loop's enqueue takes, once per delivered message
 * of the oldest second, over every queued message. */
static time_t walk_oldest(const struct delivery *d, time_t was)
{
	time_t oldest = 0;
	for (const struct item *it = d->ready_head; it; it = it->next) {
		if (was && it->arrival == was)
			return was;
		oldest_of(&oldest, it->arrival);
	}
	for (unsigned i = 0; d->workers && i < d->nthreads; i++)
		if (d->busy[i][0]) {
			if (was && d->workers[i].arrival == was)
				return was;
			oldest_of(&oldest, d->workers[i].arrival);
		}
	for (const struct item *it = d->deferred; it; it = it->next) {
		if (was && it->arrival == was)
			return was;
		oldest_of(&oldest, it->arrival);
	}
	return oldest;
}

/* Counted on the delivery threads, off the event loop: a walk of the lists only when
 * the item that went was (or may have been) the oldest. */
void sched_queue_gauges(struct delivery *d, time_t gone)
{
	if (gone && (!d->oldest_arrival || gone <= d->oldest_arrival))
		d->oldest_arrival = d->n_items ? walk_oldest(d, d->oldest_arrival) : 0;
	metrics_gauge_set(METRIC_QUEUE_MESSAGES, NULL, (int64_t)d->n_items);
	metrics_gauge_set(METRIC_QUEUE_OLDEST_AGE, NULL, (int64_t)d->oldest_arrival);
}

void delivery_set_node_secret(struct delivery *d, const unsigned char *secret, size_t len)
{
	pthread_mutex_lock(&d->lock);
	d->node_secret_len = len <= sizeof(d->node_secret) ? len : 0;
	memcpy(d->node_secret, secret, d->node_secret_len);
	pthread_mutex_unlock(&d->lock);
}

void delivery_queue_counts(struct delivery *d, long long *messages, long long *oldest)
{
	pthread_mutex_lock(&d->lock);
	*messages = (long long)d->n_items;
	*oldest = (long long)d->oldest_arrival;
	pthread_mutex_unlock(&d->lock);
}

/* After an attempt (lock held): the item deferred until `again`, or freed (0). */
void sched_attempt_done(struct worker *w, struct item *it, time_t again)
{
	struct delivery *d = w->d;
	d->busy[w->index][0] = '\0';
	d->where[w->index][0] = '\0';
	w->arrival = 0;
	if (!again) {
		d->n_items--;
		sched_queue_gauges(d, it->arrival ? it->arrival : 1);
		free(it);
		return;
	}
	it->due = again;
	it->force = false;
	it->fresh = false;
	if (w->envelope_arrival)
		it->arrival = w->envelope_arrival;
	it->next = d->deferred;
	d->deferred = it;
	if (it->arrival && (!d->oldest_arrival || it->arrival < d->oldest_arrival))
		d->oldest_arrival = it->arrival;
	sched_queue_gauges(d, 0);
}

/* --- per-domain concurrency ------------------------------------------------- */

bool sched_domain_acquire(struct delivery *d, const char *domain)
{
	pthread_mutex_lock(&d->lock);
	struct domain_slot *free_slot = NULL;
	bool ok = false;
	for (size_t i = 0; i < MAX_DOMAINS_ACTIVE; i++) {
		struct domain_slot *s = &d->domains[i];
		if (s->active && strcasecmp(s->name, domain) == 0) {
			ok = s->active < d->conf->domain_concurrency;
			if (ok)
				s->active++;
			pthread_mutex_unlock(&d->lock);
			return ok;
		}
		if (!s->active && !free_slot)
			free_slot = s;
	}
	if (free_slot) {
		snprintf(free_slot->name, sizeof(free_slot->name), "%s", domain);
		free_slot->active = 1;
		ok = true;
	}
	pthread_mutex_unlock(&d->lock);
	return ok;
}

void sched_domain_release(struct delivery *d, const char *domain)
{
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < MAX_DOMAINS_ACTIVE; i++)
		if (d->domains[i].active && strcasecmp(d->domains[i].name, domain) == 0) {
			d->domains[i].active--;
			break;
		}
	pthread_mutex_unlock(&d->lock);
}
