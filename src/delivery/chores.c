/* chores.c - the delivery threads' chores: leftovers (queue_clean, maildir tmp/),
 * a rescan of active/ for files nobody scheduled, and one postmaster notice per
 * batch of messages moved to failed/ (see scheduler_int.h). */
#include "delivery/scheduler_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* --- chores ------------------------------------------------------------------- */

/* Leftovers: Maildir tmp/ files older than 36 hours, stale files in queue/state/
 * and junk in queue/active/ (see queue_clean).  Bounded per pass. */
static void clean_leftovers(struct delivery *d, bool first)
{
	struct queue_clean_counts qc = { 0 };
	time_t now = time(NULL);
	queue_clean(d->queue, now, LEFTOVER_AGE, CLEAN_ENTRIES, &qc);
	char mail_root[1100];
	snprintf(mail_root, sizeof(mail_root), "%s/mail", d->conf->data_dir);
	unsigned boxes = 0, tmp_removed = 0;
	maildir_clean_all(mail_root, now, MAILDIR_TMP_MAX_AGE, &d->mail_cursor, CLEAN_MAILBOXES, &boxes, &tmp_removed);
	if (first || tmp_removed || qc.state_tmp || qc.orphan_state || qc.active_junk)
		log_event(tmp_removed || qc.state_tmp || qc.orphan_state || qc.active_junk ? LOG_WARN : LOG_INFO, "cleanup",
			"maildir_tmp=%u mailboxes=%u state_tmp=%u orphan_state=%u active_junk=%u", tmp_removed, boxes,
			qc.state_tmp, qc.orphan_state, qc.active_junk);
}

/* Files in active/ the runner does not know of (put there by hand, or back from
 * failed/ by an administrator with mv): scheduled now, so that a hostile one (a FIFO,
 * a link) is moved aside and a real one delivered, without waiting for a restart. */
struct rescan {
	struct delivery *d;
	char (*known)[QUEUE_ID_LEN + 1];
	size_t n_known;
	unsigned added;
};

static int cmp_qid(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void rescan_one(void *arg, const char *qid)
{
	struct rescan *rs = arg;
	if (rs->known && bsearch(qid, rs->known, rs->n_known, sizeof(*rs->known), cmp_qid))
		return;
	/* Enqueued since the snapshot (a commit that just finished)?  Rare: walk to be sure. */
	pthread_mutex_lock(&rs->d->lock);
	bool known = sched_is_busy(rs->d, qid);
	for (struct item *it = rs->d->ready_head; it && !known; it = it->next)
		known = strcmp(it->qid, qid) == 0;
	for (struct item *it = rs->d->deferred; it && !known; it = it->next)
		known = strcmp(it->qid, qid) == 0;
	if (!known)
		sched_add_item(rs->d, qid, 0, false, false);
	pthread_mutex_unlock(&rs->d->lock);
	rs->added += !known;
}

static void rescan_active(struct delivery *d)
{
	struct rescan rs = { .d = d };
	pthread_mutex_lock(&d->lock);
	size_t n = 0;
	for (struct item *it = d->ready_head; it; it = it->next)
		n++;
	for (struct item *it = d->deferred; it; it = it->next)
		n++;
	rs.known = calloc(n ? n : 1, sizeof(*rs.known));
	if (rs.known) {
		for (struct item *it = d->ready_head; it; it = it->next)
			memcpy(rs.known[rs.n_known++], it->qid, QUEUE_ID_LEN + 1);
		for (struct item *it = d->deferred; it; it = it->next)
			memcpy(rs.known[rs.n_known++], it->qid, QUEUE_ID_LEN + 1);
	}
	pthread_mutex_unlock(&d->lock);
	if (!rs.known)
		return;
	qsort(rs.known, rs.n_known, sizeof(*rs.known), cmp_qid);
	queue_list_active(d->queue, rescan_one, &rs);
	free(rs.known);
	if (rs.added) {
		pthread_mutex_lock(&d->lock);
		d->rescan_found = time(NULL);   /* see delivery_enqueue */
		pthread_mutex_unlock(&d->lock);
	}
	if (rs.added)
		log_event(LOG_INFO, "queue_rescan", "found=%u reason=\"in queue/active/ but not scheduled\"", rs.added);
}

/* The one notice for the batch of newly failed messages. */
static void send_failed_notice(struct delivery *d)
{
	struct failed_item items[NOTICE_BATCH_MAX];
	pthread_mutex_lock(&d->lock);
	size_t n = d->n_batch, more = d->batch_more;
	memcpy(items, d->batch, n * sizeof(items[0]));
	d->n_batch = d->batch_more = 0;
	pthread_mutex_unlock(&d->lock);
	if (!n)
		return;
	char qid[QUEUE_ID_LEN + 1], err[256] = "", to[QUEUE_ADDR_MAX];
	notice_recipient(d->conf, to, sizeof(to));
	if (notice_failed_send(d->queue, d->conf, items, n, more, qid, err, sizeof(err))) {
		log_event(LOG_WARN, "failed_notice_sent", "notice_qid=%s to=<%s> messages=%zu", qid, to, n + more);
		delivery_enqueue(d, qid);
	} else {
		log_event(LOG_ERR, "failed_notice_error", "to=<%s> messages=%zu error=\"%s\"", to, n + more, err);
	}
}

/* Lock held; returns with it held.  One thread at a time. */
void sched_run_chores(struct delivery *d)
{
	time_t now = time(NULL);
	bool clean = now >= d->next_clean, notice = d->n_batch + d->batch_more && now >= d->batch_due;
	if (d->chores_running || (!clean && !notice))
		return;
	d->chores_running = true;
	bool first = d->next_clean == 0;
	if (clean)
		d->next_clean = now + (time_t)d->conf->cleanup_interval;
	pthread_mutex_unlock(&d->lock);
	if (clean) {
		clean_leftovers(d, first);
		if (!first)
			rescan_active(d);   /* at start delivery_start has just listed them */
	}
	if (notice)
		send_failed_notice(d);
	pthread_mutex_lock(&d->lock);
	d->chores_running = false;
}

/* When a waiting thread must wake up for the chores (lock held). */
time_t sched_chores_due(const struct delivery *d)
{
	time_t t = d->next_clean;
	if (d->n_batch + d->batch_more && d->batch_due < t)
		t = d->batch_due;
	return t;
}
