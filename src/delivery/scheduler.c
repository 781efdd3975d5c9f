/* scheduler.c - the queue runner (see delivery.h): the delivery threads, start and
 * stop.  The lists and per-domain limits are lists.c, one attempt at a message
 * attempt.c, the chores chores.c, the admin commands admin.c (scheduler_int.h). */
#include "delivery/scheduler_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* --- threads ------------------------------------------------------------------ */

static struct item **earliest(struct delivery *d)
{
	struct item **best = NULL;
	for (struct item **p = &d->deferred; *p; p = &(*p)->next)
		if (!best || (*p)->due < (*best)->due)
			best = p;
	return best;
}

/* Next item whose message no other thread is working on (lock held). */
static struct item *take_ready(struct delivery *d)
{
	struct item *prev = NULL;
	for (struct item **p = &d->ready_head; *p; prev = *p, p = &(*p)->next)
		if (!sched_is_busy(d, (*p)->qid))
			return sched_ready_unlink(d, p, prev);
	return NULL;
}

/* The thread's remote context, remade when the DNSSEC gate changed its mind. */
static void ensure_remote(struct worker *w)
{
	struct delivery *d = w->d;
	if (w->remote && remote_ctx_stale(w->remote))
		remote_ctx_free(&w->remote);
	if (w->remote)
		return;
	char err[256];
	w->remote = remote_ctx_new(d->conf, d->creds, d->cancel, d->dnssec, err, sizeof(err));
	if (w->remote) {
		remote_ctx_on_host(w->remote, sched_where_host, w);
		remote_ctx_set_cache(w->remote, d->conns);
	}
	else
		log_event(LOG_ERR, "resolver_error", "error=\"%s\"", err);
}

static void *delivery_thread(void *arg)
{
	struct worker *w = arg;
	struct delivery *d = w->d;
	char err[256];
	if (w->index == 0 && d->dnssec) {
		unsigned generation;   /* at start, before any message (dnssec.h) */
		(void)dnssec_gate_anchor(d->dnssec, &generation);
	}
	/* The thread's directory handle at start, not with its first message (opened again
	 * below if this fails): its set-up is not part of a message's work. */
	if (!directory_open(&w->dir, d->conf->data_dir, err, sizeof(err)))
		log_event(LOG_ERR, "directory_error", "error=\"%s\"", err);
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		sched_run_chores(d);
		if (d->stopping)
			break;
		struct item *it = take_ready(d);
		if (!it) {
			struct item **e = earliest(d);
			time_t now = time(NULL);
			if (e && (*e)->due <= now) {
				it = *e;
				*e = it->next;
				if (sched_is_busy(d, it->qid)) {
					it->due = now + 1;
					it->next = d->deferred;
					d->deferred = it;
					it = NULL;
				}
			}
			if (!it) {
				pthread_mutex_unlock(&d->lock);
				queue_done_flush(d->queue);   /* state files of finished messages (queue_done) */
				if (w->remote)
					remote_idle(w->remote);   /* no more work now: close kept connections */
				pthread_mutex_lock(&d->lock);
				if (d->stopping)
					break;
				e = earliest(d);
				time_t wake = sched_chores_due(d);
				if (d->ready_head)
					wake = time(NULL) + 1;
				else if (e && (*e)->due < wake)
					wake = (*e)->due;
				struct timespec ts = { .tv_sec = wake };
				pthread_cond_timedwait(&d->cond, &d->lock, &ts);
				continue;
			}
		}
		snprintf(d->busy[w->index], QUEUE_ID_LEN + 1, "%s", it->qid);
		w->arrival = it->arrival;
		w->envelope_arrival = 0;
		pthread_mutex_unlock(&d->lock);
		if (!w->dir && !directory_open(&w->dir, d->conf->data_dir, err, sizeof(err)))
			log_event(LOG_ERR, "directory_error", "error=\"%s\"", err);
		ensure_remote(w);
		time_t again = w->dir && w->remote ? sched_process(w, it->qid, it->force, it->fresh)
			: time(NULL) + (time_t)d->conf->retry_min;
		pthread_mutex_lock(&d->lock);
		sched_attempt_done(w, it, again);
	}
	pthread_mutex_unlock(&d->lock);
	remote_ctx_free(&w->remote);
	directory_close(&w->dir);
	pthread_mutex_lock(&d->lock);
	d->running--;
	pthread_cond_broadcast(&d->exited);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Found in the queue at start: a crash may have interrupted its last attempt. */
static void enqueue_existing(void *arg, const char *qid)
{
	struct delivery *d = arg;
	pthread_mutex_lock(&d->lock);
	sched_add_item(d, qid, 0, false, false);
	pthread_mutex_unlock(&d->lock);
}

struct delivery *delivery_start(const struct conf *c, struct queue *q, const struct relay_credentials *creds,
	struct events *ev)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->events = ev;
	d->conf = c;
	d->queue = q;
	d->creds = creds;
	pthread_mutex_init(&d->lock, NULL);
	finish_init(&d->finish);
	pthread_cond_init(&d->cond, NULL);   /* CLOCK_REALTIME: due times are wall-clock */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* the stop deadline is a span */
	pthread_cond_init(&d->exited, &ca);
	pthread_condattr_destroy(&ca);
	d->cancel = net_cancel_new();   /* NULL: a stop waits for command_timeout, as before */
	if (!c->relay_host[0])
		d->dnssec = dnssec_gate_new(c);   /* NULL: the configured anchor as is */
	char cerr[256];
	d->conns = remote_conncache_new(c, cerr, sizeof(cerr));
	if (!d->conns)
		log_event(LOG_ERR, "delivery_error", "error=\"%s\" action=\"remote connections are not kept\"", cerr);
	queue_list_active(q, enqueue_existing, d);
	unsigned n = (unsigned)c->delivery_threads;
	d->threads = calloc(n, sizeof(pthread_t));
	d->started = calloc(n, sizeof(bool));
	d->busy = calloc(n, sizeof(*d->busy));
	d->where = calloc(n, sizeof(*d->where));
	struct worker *ws = calloc(n, sizeof(struct worker));
	if (!d->threads || !d->busy || !d->where || !ws || !d->started) {
		free(ws);
		free(d->threads);
		free(d->started);
		free(d->busy);
		free(d->where);
		dnssec_gate_free(&d->dnssec);
		conncache_free(&d->conns);
		finish_destroy(&d->finish);
		free(d);
		return NULL;
	}
	d->workers = ws;
	for (unsigned i = 0; i < n; i++) {
		ws[i].d = d;
		ws[i].index = i;
	}
	d->nthreads = n;   /* busy[] has n slots whether or not every thread starts */
	unsigned started = 0;
	for (unsigned i = 0; i < n; i++) {
		pthread_mutex_lock(&d->lock);
		d->started[i] = pthread_create(&d->threads[i], NULL, delivery_thread, &ws[i]) == 0;
		d->running += d->started[i];
		pthread_mutex_unlock(&d->lock);
		started += d->started[i];
	}
	if (started == 0) {
		delivery_stop(&d);
		return NULL;
	}
	return d;
}

static void free_list(struct item *it)
{
	while (it) {
		struct item *n = it->next;
		free(it);
		it = n;
	}
}

void delivery_stop_begin(struct delivery *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	if (!d->stopping) {
		d->stopping = true;
		clock_gettime(CLOCK_MONOTONIC, &d->deadline);
		d->deadline.tv_sec += (time_t)(d->conf->shutdown_timeout ? d->conf->shutdown_timeout : 10);
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Wait for the threads until the deadline, then cut off what still runs: the
 * cancel wakes every blocked connect, read and write at once.  The recipients of a
 * transaction cut off keep their state (pending, no attempt counted), so the
 * message is delivered after the next start; a peer that had already taken the
 * message but not yet answered may get it twice (RFC 5321 §6.1 accepts this). */
static void wait_or_cut_off(struct delivery *d)
{
	pthread_mutex_lock(&d->lock);
	int rc = 0;
	while (d->running > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&d->exited, &d->lock, &d->deadline);
	unsigned left = d->running;
	if (left)
		d->cancelled = true;
	pthread_mutex_unlock(&d->lock);
	if (left) {
		log_event(LOG_WARN, "delivery_cut_off", "threads=%u timeout=%llus reason=\"shutdown_timeout reached; "
			"unfinished deliveries stay queued\"", left,
			(unsigned long long)(d->conf->shutdown_timeout ? d->conf->shutdown_timeout : 10));
		net_cancel_fire(d->cancel);
	}
}

void delivery_stop(struct delivery **dp)
{
	struct delivery *d = *dp;
	if (!d)
		return;
	delivery_stop_begin(d);
	wait_or_cut_off(d);
	for (unsigned i = 0; i < d->nthreads; i++)
		if (d->started[i])
			pthread_join(d->threads[i], NULL);
	free_list(d->ready_head);
	free_list(d->deferred);
	conncache_free(&d->conns);   /* QUIT to the idle ones, before the cancel goes */
	queue_done_flush(d->queue);
	pthread_mutex_destroy(&d->lock);
	finish_destroy(&d->finish);
	pthread_cond_destroy(&d->cond);
	pthread_cond_destroy(&d->exited);
	net_cancel_free(&d->cancel);
	dnssec_gate_free(&d->dnssec);
	free(d->workers);
	free(d->threads);
	free(d->started);
	free(d->busy);
	free(d->where);
	free(d);
	*dp = NULL;
}
