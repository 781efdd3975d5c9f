/* scheduler.c - the queue runner (see delivery.h). */
#include "delivery/delivery.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "delivery/bounce.h"
#include "delivery/local.h"
#include "delivery/notice.h"
#include "delivery/remote.h"
#include "directory/directory.h"
#include "net/client.h"
#include "queue/queue.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "util/id.h"
#include "util/log.h"

#define MAX_DOMAINS_ACTIVE 1024
#define BUSY_DOMAIN_WAIT 5      /* seconds before trying a domain at its limit again */
#define WHERE_MAX 300           /* "MX of example.org", "relay host:port", "local mailbox" */
#define NOTICE_BATCH_MAX 50     /* failed messages named in one postmaster notice */
#define NOTICE_GATHER 5         /* seconds to gather a batch before the notice goes */
#define LEFTOVER_AGE 3600       /* queue leftovers this old are removed */
#define CLEAN_ENTRIES 100000    /* directory entries examined per queue directory per pass */
#define CLEAN_MAILBOXES 2000    /* mailboxes whose tmp/ is cleaned per pass */

struct item {
	char qid[QUEUE_ID_LEN + 1];
	time_t due;
	bool force;                 /* flush/retry: ignore the recipients' next_try */
	bool fresh;                 /* just committed, never tried: cannot repeat a delivery */
	struct item *next;
};

struct domain_slot {
	char name[256];
	unsigned active;
};

struct delivery {
	const struct conf *conf;
	struct queue *queue;
	const struct relay_credentials *creds;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *ready_head, *ready_tail;
	struct item *deferred;          /* unsorted; scanned for the earliest */
	char (*busy)[QUEUE_ID_LEN + 1]; /* messages being worked on, one per thread */
	char (*where)[WHERE_MAX];       /* per thread: where busy[] is being delivered now */
	/* chores (run by whichever delivery thread finds them due) */
	bool chores_running;
	time_t next_clean;
	size_t mail_cursor;             /* maildir_clean_all's place */
	struct failed_item batch[NOTICE_BATCH_MAX];
	size_t n_batch, batch_more;     /* newly failed messages not yet told to the postmaster */
	time_t batch_due;
	struct domain_slot domains[MAX_DOMAINS_ACTIVE];
	bool stopping;                  /* no new attempt starts */
	bool cancelled;                 /* the stop deadline passed: transactions were cut off */
	struct timespec deadline;       /* CLOCK_MONOTONIC: when a stop cuts deliveries off */
	struct net_cancel *cancel;      /* fired at the deadline: wakes blocked connections */
	unsigned running;               /* threads not yet finished */
	pthread_cond_t exited;          /* CLOCK_MONOTONIC; signalled as each thread ends */
	unsigned nthreads;
	pthread_t *threads;
	bool *started;
	struct worker *workers;
};

struct worker {
	struct delivery *d;
	unsigned index;
	struct directory *dir;
	struct remote_ctx *remote;
};

/* --- lists (lock held) ------------------------------------------------------ */

static void push_ready(struct delivery *d, struct item *it)
{
	it->next = NULL;
	if (d->ready_tail)
		d->ready_tail->next = it;
	else
		d->ready_head = it;
	d->ready_tail = it;
}

/* Unlink *p from the ready list, keeping the tail right without a walk. */
static struct item *ready_unlink(struct delivery *d, struct item **p, struct item *prev)
{
	struct item *it = *p;
	*p = it->next;
	if (d->ready_tail == it)
		d->ready_tail = prev;
	return it;
}

/* Remove qid from both lists; returns whether it was there. */
static bool unlist(struct delivery *d, const char *qid)
{
	bool found = false;
	struct item *prev = NULL;
	for (struct item **p = &d->ready_head; *p;) {
		if (strcmp((*p)->qid, qid) == 0) {
			free(ready_unlink(d, p, prev));
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
			free(dead);
			found = true;
		} else {
			p = &(*p)->next;
		}
	}
	return found;
}

static bool is_busy(struct delivery *d, const char *qid)
{
	for (unsigned i = 0; i < d->nthreads; i++)
		if (strcmp(d->busy[i], qid) == 0)
			return true;
	return false;
}

static void add_item(struct delivery *d, const char *qid, time_t due, bool force, bool fresh)
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
	if (due <= time(NULL))
		push_ready(d, it);
	else {
		it->next = d->deferred;
		d->deferred = it;
	}
	pthread_cond_signal(&d->cond);
}

void delivery_enqueue(struct delivery *d, const char *qid)
{
	pthread_mutex_lock(&d->lock);
	add_item(d, qid, 0, false, true);
	pthread_mutex_unlock(&d->lock);
}

static bool stop_state(struct delivery *d, bool *cancelled)
{
	pthread_mutex_lock(&d->lock);
	bool stopping = d->stopping;
	if (cancelled)
		*cancelled = d->cancelled;
	pthread_mutex_unlock(&d->lock);
	return stopping;
}

/* --- per-domain concurrency ------------------------------------------------- */

static bool domain_acquire(struct delivery *d, const char *domain)
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

static void domain_release(struct delivery *d, const char *domain)
{
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < MAX_DOMAINS_ACTIVE; i++)
		if (d->domains[i].active && strcasecmp(d->domains[i].name, domain) == 0) {
			d->domains[i].active--;
			break;
		}
	pthread_mutex_unlock(&d->lock);
}

/* --- one message ------------------------------------------------------------- */

static time_t backoff(const struct conf *c, unsigned attempts)
{
	uint64_t delay = c->retry_min;
	for (unsigned i = 1; i < attempts && delay < c->retry_max; i++)
		delay *= 2;
	return (time_t)(delay > c->retry_max ? c->retry_max : delay);
}

/* Record where this thread's message is being delivered (for `queue list`). */
static void set_where(struct worker *w, const char *fmt, const char *arg)
{
	struct delivery *d = w->d;
	if (!d->workers || w != &d->workers[w->index])
		return;   /* an admin command's stand-in worker */
	pthread_mutex_lock(&d->lock);
	snprintf(d->where[w->index], WHERE_MAX, fmt, arg);
	pthread_mutex_unlock(&d->lock);
}

/* remote.c says which server it is trying now. */
static void where_host(void *arg, const char *host)
{
	struct worker *w = arg;
	set_where(w, w->d->conf->relay_host[0] ? "relay %s" : "%s", host);
}

/* A message moved to queue/failed/: told to the postmaster in the next notice. */
static void note_failed(struct delivery *d, const char *qid, const char *why)
{
	pthread_mutex_lock(&d->lock);
	if (d->n_batch < NOTICE_BATCH_MAX) {
		struct failed_item *it = &d->batch[d->n_batch++];
		snprintf(it->qid, sizeof(it->qid), "%s", qid);
		snprintf(it->why, sizeof(it->why), "%s", why);
	} else {
		d->batch_more++;
	}
	if (d->n_batch + d->batch_more == 1)
		d->batch_due = time(NULL) + NOTICE_GATHER;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void keep_failed(struct delivery *d, const char *qid, const char *why, bool tell)
{
	if (!queue_move_failed_why(d->queue, qid, why)) {
		log_event(LOG_ERR, "queue_error", "qid=%s error=\"cannot move to queue/failed: %s\"", qid, strerror(errno));
		return;
	}
	if (tell)
		note_failed(d, qid, why);
}

static const char *domain_of(const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	return at ? at + 1 : "";
}

struct run {
	struct worker *w;
	struct queue_message m;
	struct queue_state st;
	time_t now;
	bool changed;               /* st differs from queue/state/<qid> */
	bool force;
	bool may_repeat;            /* a crash may have cut an earlier attempt short */
	size_t *newly_failed;
	size_t n_failed;
	size_t *group;              /* scratch: recipients of one domain */
	struct rcpt_result *res;
};

static void fail_rcpt(struct run *r, size_t i, const char *why)
{
	struct queue_rcpt_state *s = &r->st.r[i];
	s->state = RCPT_FAILED;
	snprintf(s->last_reply, sizeof(s->last_reply), "%s", why);
	r->newly_failed[r->n_failed++] = i;
	r->changed = true;
	log_event(LOG_WARN, "bounced", "qid=%s to=<%s> reason=\"%s\"", r->m.env.qid, r->m.env.rcpts[i], why);
}

static void defer_rcpt(struct run *r, size_t i, const char *why)
{
	struct queue_rcpt_state *s = &r->st.r[i];
	s->attempts++;
	time_t wait = backoff(r->w->d->conf, s->attempts);
	s->next_try = r->now + wait;
	snprintf(s->last_reply, sizeof(s->last_reply), "%s", why);
	r->changed = true;
	log_event(LOG_INFO, "deferred", "qid=%s to=<%s> attempt=%u retry_in=%lld reason=\"%s\"", r->m.env.qid,
		r->m.env.rcpts[i], s->attempts, (long long)wait, why);
}

/* Deliver recipient i, resolved to a local mailbox, into its Maildir. */
static void deliver_local(struct run *r, size_t i, const struct dir_recipient *dr)
{
	const struct conf *c = r->w->d->conf;
	struct queue_rcpt_state *s = &r->st.r[i];
	char path[1400], why[700];
	if (!store_mailbox_path(c->data_dir, dr->mailbox.domain, dr->mailbox.local, path, sizeof(path))) {
		defer_rcpt(r, i, "the user directory could not be read");
		return;
	}
	set_where(r->w, "%s", "local mailbox");
	switch (local_deliver(c, &r->m, i, path, r->may_repeat, why, sizeof(why))) {
	case LOCAL_DELIVERED:
		s->state = RCPT_DELIVERED;
		r->changed = true;
		break;
	case LOCAL_TEMP:
		defer_rcpt(r, i, why);
		break;
	case LOCAL_PERM:
		fail_rcpt(r, i, why);
		break;
	}
}

static void deliver_locals(struct run *r, bool *remote)
{
	const struct conf *c = r->w->d->conf;
	for (size_t i = 0; i < r->m.env.n_rcpts; i++) {
		struct queue_rcpt_state *s = &r->st.r[i];
		remote[i] = false;
		if (s->state != RCPT_PENDING || (!r->force && s->next_try > r->now))
			continue;
		struct dir_recipient dr;
		switch (directory_resolve_recipient(r->w->dir, c, r->m.env.rcpts[i], &dr)) {
		case DIR_RCPT_NOT_LOCAL:
			remote[i] = true;
			break;
		case DIR_RCPT_TEMPFAIL:
			defer_rcpt(r, i, "the user directory could not be read");
			break;
		case DIR_RCPT_UNKNOWN:
			fail_rcpt(r, i, "5.1.1 no such mailbox here (it was removed after the message was accepted)");
			break;
		case DIR_RCPT_USER:
		case DIR_RCPT_ALIAS:
		case DIR_RCPT_POSTMASTER:
			deliver_local(r, i, &dr);
			break;
		}
	}
}

/* Save the outcomes recorded so far before slow work (a remote transaction) begins,
 * so a crash during it cannot undo them: a delivered recipient is never tried
 * again.  Local copies are safe even without it (their Maildir names make a repeat
 * detectable, see local.h); remote ones are not, and bounces would repeat.  Costs one
 * write+fsync+rename only when a message has more work after the current step, so a
 * message to one mailbox or to one destination pays nothing extra. */
static void checkpoint(struct run *r)
{
	if (!r->changed)
		return;
	if (queue_state_write(r->w->d->queue, r->m.env.qid, &r->st))
		r->changed = false;
	else
		log_event(LOG_ERR, "state_error", "qid=%s error=\"cannot save the delivery state: %s\"", r->m.env.qid,
			strerror(errno));
}

static bool any(const bool *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			return true;
	return false;
}

/* Remote recipients, one destination domain at a time (or all via the relay). */
static void deliver_remotes(struct run *r, bool *remote)
{
	struct delivery *d = r->w->d;
	size_t n = r->m.env.n_rcpts;
	bool via_relay = d->conf->relay_host[0] != '\0';
	for (size_t i = 0; i < n; i++) {
		if (!remote[i])
			continue;
		if (stop_state(d, NULL))
			return;   /* stopping: the rest waits, untouched, for the next start */
		const char *dom = via_relay ? d->conf->relay_host : domain_of(r->m.env.rcpts[i]);
		size_t g = 0;
		for (size_t k = i; k < n; k++) {
			if (remote[k] && (via_relay || strcasecmp(domain_of(r->m.env.rcpts[k]), dom) == 0)) {
				r->group[g++] = k;
				remote[k] = false;
			}
		}
		if (!domain_acquire(d, dom)) {
			/* At the per-domain limit: come back soon, without counting an attempt. */
			for (size_t k = 0; k < g; k++)
				r->st.r[r->group[k]].next_try = r->now + BUSY_DOMAIN_WAIT;
			r->changed = true;
			continue;
		}
		if (via_relay) {
			char hp[300];
			snprintf(hp, sizeof(hp), "%.255s:%llu", dom, (unsigned long long)d->conf->relay_port);
			set_where(r->w, "relay %s", hp);
		} else {
			set_where(r->w, "MX of %s", dom);
		}
		remote_deliver(r->w->remote, &r->m, via_relay ? "" : dom, r->group, g, r->res);
		domain_release(d, dom);
		bool cut_off = false;
		stop_state(d, &cut_off);
		for (size_t k = 0; k < g; k++) {
			size_t idx = r->group[k];
			struct rcpt_result *x = &r->res[k];
			if (cut_off && x->outcome == OUT_DEFER)
				continue;   /* aborted by the shutdown, not the peer: no attempt counted */
			char why[QUEUE_REPLY_MAX];
			rcpt_result_reason(x, why, sizeof(why));
			if (x->outcome == OUT_DELIVERED) {
				r->st.r[idx].state = RCPT_DELIVERED;
				snprintf(r->st.r[idx].last_reply, sizeof(r->st.r[idx].last_reply), "%s", why);
				r->changed = true;
				log_event(LOG_INFO, "delivered", "qid=%s to=<%s> remote=\"%s\"", r->m.env.qid, r->m.env.rcpts[idx], why);
			} else if (x->outcome == OUT_FAIL) {
				fail_rcpt(r, idx, why);
			} else {
				defer_rcpt(r, idx, why);
			}
		}
		if (any(remote + i, n - i))
			checkpoint(r);
	}
}

/* Past the lifetime: give up on whatever is still pending. */
static void expire(struct run *r)
{
	const struct conf *c = r->w->d->conf;
	if (r->now - r->m.env.arrival < (time_t)c->max_lifetime)
		return;
	for (size_t i = 0; i < r->m.env.n_rcpts; i++) {
		if (r->st.r[i].state != RCPT_PENDING)
			continue;
		char why[QUEUE_REPLY_MAX], span[32];
		bounce_duration(c->max_lifetime, span, sizeof(span));
		snprintf(why, sizeof(why), "gave up after %s of trying; last: %.500s", span,
			r->st.r[i].last_reply[0] ? r->st.r[i].last_reply : "no attempt");
		fail_rcpt(r, i, why);
	}
}

static void send_report(struct run *r, enum bounce_kind kind, const size_t *idx, size_t n)
{
	size_t want[n ? n : 1], k = 0;
	for (size_t j = 0; j < n; j++)
		if (bounce_wanted(&r->m, idx[j], kind))
			want[k++] = idx[j];
	if (!k)
		return;
	char qid[QUEUE_ID_LEN + 1], err[256] = "";
	if (bounce_send(r->w->d->queue, r->w->d->conf, &r->m, kind, want, k, r->st.r, qid, err, sizeof(err))) {
		log_event(LOG_INFO, kind == BOUNCE_FAILED ? "bounce_sent" : "delay_notice_sent", "qid=%s report_qid=%s to=<%s> recipients=%zu",
			r->m.env.qid, qid, r->m.env.sender, k);
		delivery_enqueue(r->w->d, qid);
	} else {
		log_event(LOG_ERR, "bounce_error", "qid=%s error=\"%s\"", r->m.env.qid, err);
	}
}

/* Once, when the message has waited delay_notice: tell the sender. */
static void maybe_delay_notice(struct run *r)
{
	const struct conf *c = r->w->d->conf;
	if (r->st.delay_notified || !c->delay_notice || r->now - r->m.env.arrival < (time_t)c->delay_notice)
		return;
	size_t n = 0;
	for (size_t i = 0; i < r->m.env.n_rcpts; i++)
		if (r->st.r[i].state == RCPT_PENDING)
			r->group[n++] = i;
	if (!n)
		return;
	send_report(r, BOUNCE_DELAYED, r->group, n);
	r->st.delay_notified = true;
	r->changed = true;
}

/* The state file was damaged; queue_state_read kept what it could read.  Say so, and
 * write the salvaged state back at the end of this run (r->changed). */
static void note_damaged_state(struct run *r)
{
	size_t todo = 0;
	for (size_t i = 0; i < r->st.n; i++)
		todo += r->st.r[i].state == RCPT_PENDING;
	log_event(LOG_ERR, "state_corrupt", "qid=%s error=\"the delivery state file is damaged: %s\" recovered=%zu "
		"recipients=%zu action=\"delivering to the %zu recipient(s) not known to be done; some may receive it twice\"",
		r->m.env.qid, r->st.damage, r->st.recovered, r->st.n, todo);
	r->changed = true;
}

/* Returns 0 when the message is finished, else the time to look at it again. */
static time_t process(struct worker *w, const char *qid, bool force, bool fresh)
{
	struct delivery *d = w->d;
	struct run r = { .w = w, .now = time(NULL), .force = force };
	char err[512];
	if (!queue_message_open(d->queue, qid, &r.m, err, sizeof(err))) {
		if (strstr(err, "No such file"))
			return 0;   /* finished elsewhere, or deleted by the admin */
		log_event(LOG_ERR, "queue_corrupt", "qid=%s error=\"%s\" action=\"moved to queue/failed\"", qid, err);
		keep_failed(d, qid, err, true);
		return 0;
	}
	size_t n = r.m.env.n_rcpts;
	time_t again = 0;
	if (!queue_state_read(d->queue, qid, n, &r.st)) {
		log_event(LOG_ERR, "state_error", "qid=%s error=\"cannot read the delivery state (out of memory)\"", qid);
		queue_message_close(&r.m);
		return r.now + (time_t)d->conf->retry_min;
	}
	if (r.st.damaged)
		note_damaged_state(&r);
	if (r.st.held) {
		queue_state_free(&r.st);
		queue_message_close(&r.m);
		return 0;   /* waits for `postern queue release` */
	}
	bool *remote = calloc(n, sizeof(bool));
	r.newly_failed = calloc(n, sizeof(size_t));
	r.group = calloc(n, sizeof(size_t));
	r.res = calloc(n, sizeof(struct rcpt_result));
	if (!remote || !r.newly_failed || !r.group || !r.res) {
		again = r.now + (time_t)d->conf->retry_min;
		goto out;
	}
	/* A message just committed and never tried cannot have a copy anywhere yet;
	 * anything else (found at start, retried) may follow an attempt a crash cut
	 * short before its state was saved. */
	r.may_repeat = !fresh || r.st.delay_notified || r.st.damaged;
	for (size_t i = 0; i < n && !r.may_repeat; i++)
		r.may_repeat = r.st.r[i].attempts > 0 || r.st.r[i].state != RCPT_PENDING;
	deliver_locals(&r, remote);
	if (any(remote, n))
		checkpoint(&r);
	deliver_remotes(&r, remote);
	expire(&r);
	if (r.n_failed)
		send_report(&r, BOUNCE_FAILED, r.newly_failed, r.n_failed);
	maybe_delay_notice(&r);
	bool pending = false, failed = false;
	for (size_t i = 0; i < n; i++) {
		if (r.st.r[i].state == RCPT_PENDING) {
			pending = true;
			time_t t = r.st.r[i].next_try > r.now ? (time_t)r.st.r[i].next_try : r.now + 1;
			if (!again || t < again)
				again = t;
		}
		failed |= r.st.r[i].state == RCPT_FAILED;
	}
	if (pending) {
		if (r.changed && !queue_state_write(d->queue, qid, &r.st))
			log_event(LOG_ERR, "state_error", "qid=%s error=\"cannot save the delivery state: %s\"", qid, strerror(errno));
	} else if (failed && !r.m.env.sender[0]) {
		/* Nobody to tell (a bounce that failed): keep it for the administrator, and
		 * tell the postmaster, unless it is the postmaster's own notice (no loop). */
		char why[NOTICE_REASON_MAX + 200] = "undeliverable report";
		for (size_t i = 0; i < n; i++)
			if (r.st.r[i].state == RCPT_FAILED) {
				snprintf(why, sizeof(why), "undeliverable report to <%.200s>: %.180s", r.m.env.rcpts[i],
					r.st.r[i].last_reply);
				break;
			}
		keep_failed(d, qid, why, strcmp(r.m.env.protocol, NOTICE_PROTOCOL) != 0);
		log_event(LOG_WARN, "kept", "qid=%s reason=\"undeliverable report\" where=queue/failed", qid);
	} else {
		queue_remove(d->queue, qid);
		log_event(LOG_INFO, "removed", "qid=%s reason=\"%s\"", qid, failed ? "done; failures reported to the sender"
			: "all recipients delivered");
	}
out:
	free(remote);
	free(r.newly_failed);
	free(r.group);
	free(r.res);
	queue_state_free(&r.st);
	queue_message_close(&r.m);
	return again;
}

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
	bool known = is_busy(rs->d, qid);
	for (struct item *it = rs->d->ready_head; it && !known; it = it->next)
		known = strcmp(it->qid, qid) == 0;
	for (struct item *it = rs->d->deferred; it && !known; it = it->next)
		known = strcmp(it->qid, qid) == 0;
	if (!known)
		add_item(rs->d, qid, 0, false, false);
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
static void run_chores(struct delivery *d)
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
static time_t chores_due(const struct delivery *d)
{
	time_t t = d->next_clean;
	if (d->n_batch + d->batch_more && d->batch_due < t)
		t = d->batch_due;
	return t;
}

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
		if (!is_busy(d, (*p)->qid))
			return ready_unlink(d, p, prev);
	return NULL;
}

static void *delivery_thread(void *arg)
{
	struct worker *w = arg;
	struct delivery *d = w->d;
	char err[256];
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		run_chores(d);
		if (d->stopping)
			break;
		struct item *it = take_ready(d);
		if (!it) {
			struct item **e = earliest(d);
			time_t now = time(NULL);
			if (e && (*e)->due <= now) {
				it = *e;
				*e = it->next;
				if (is_busy(d, it->qid)) {
					it->due = now + 1;
					it->next = d->deferred;
					d->deferred = it;
					it = NULL;
				}
			}
			if (!it) {
				pthread_mutex_unlock(&d->lock);
				if (w->remote)
					remote_idle(w->remote);   /* no more work now: close kept connections */
				pthread_mutex_lock(&d->lock);
				if (d->stopping)
					break;
				e = earliest(d);
				time_t wake = chores_due(d);
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
		pthread_mutex_unlock(&d->lock);
		if (!w->dir && !directory_open(&w->dir, d->conf->data_dir, err, sizeof(err)))
			log_event(LOG_ERR, "directory_error", "error=\"%s\"", err);
		if (!w->remote) {
			w->remote = remote_ctx_new(d->conf, d->creds, d->cancel, err, sizeof(err));
			if (w->remote)
				remote_ctx_on_host(w->remote, where_host, w);
			else
				log_event(LOG_ERR, "resolver_error", "error=\"%s\"", err);
		}
		time_t again = w->dir && w->remote ? process(w, it->qid, it->force, it->fresh)
			: time(NULL) + (time_t)d->conf->retry_min;
		pthread_mutex_lock(&d->lock);
		d->busy[w->index][0] = '\0';
		d->where[w->index][0] = '\0';
		if (again) {
			it->due = again;
			it->force = false;
			it->fresh = false;
			it->next = d->deferred;
			d->deferred = it;
		} else {
			free(it);
		}
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
	add_item(d, qid, 0, false, false);
	pthread_mutex_unlock(&d->lock);
}

struct delivery *delivery_start(const struct conf *c, struct queue *q, const struct relay_credentials *creds)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->conf = c;
	d->queue = q;
	d->creds = creds;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);   /* CLOCK_REALTIME: due times are wall-clock */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* the stop deadline is a span */
	pthread_cond_init(&d->exited, &ca);
	pthread_condattr_destroy(&ca);
	d->cancel = net_cancel_new();   /* NULL: a stop waits for command_timeout, as before */
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
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	pthread_cond_destroy(&d->exited);
	net_cancel_free(&d->cancel);
	free(d->workers);
	free(d->threads);
	free(d->started);
	free(d->busy);
	free(d->where);
	free(d);
	*dp = NULL;
}

/* --- admin control -------------------------------------------------------------- */

/* Change a message's state file (hold / release); the message must not be busy. */
static bool set_held(struct delivery *d, const char *qid, bool held, char *reply, size_t replysz)
{
	struct queue_message m;
	char err[256];
	if (!queue_message_open(d->queue, qid, &m, err, sizeof(err))) {
		snprintf(reply, replysz, "no message %s in the queue", qid);
		return false;
	}
	struct queue_state st;
	bool ok = queue_state_read(d->queue, qid, m.env.n_rcpts, &st);
	if (ok) {
		st.held = held;
		if (!held)
			for (size_t i = 0; i < st.n; i++)
				st.r[i].next_try = 0;
		ok = queue_state_write(d->queue, qid, &st);
		queue_state_free(&st);
	}
	queue_message_close(&m);
	snprintf(reply, replysz, ok ? "%s %s" : "cannot change %s", qid, held ? "held" : "released");
	return ok;
}

/* Return the message to its sender: every pending recipient failed by the admin. */
static bool bounce_now(struct delivery *d, const char *qid, char *reply, size_t replysz)
{
	struct worker w = { .d = d };
	struct run r = { .w = &w, .now = time(NULL) };
	char err[256];
	if (!queue_message_open(d->queue, qid, &r.m, err, sizeof(err))) {
		snprintf(reply, replysz, "no message %s in the queue", qid);
		return false;
	}
	size_t n = r.m.env.n_rcpts;
	bool ok = queue_state_read(d->queue, qid, n, &r.st);
	r.newly_failed = calloc(n, sizeof(size_t));
	if (ok && r.newly_failed) {
		for (size_t i = 0; i < n; i++)
			if (r.st.r[i].state == RCPT_PENDING) {
				char why[QUEUE_REPLY_MAX];
				snprintf(why, sizeof(why), "5.0.0 returned by the mail administrator; last attempt: %.480s",
					r.st.r[i].last_reply[0] ? r.st.r[i].last_reply : "none");
				fail_rcpt(&r, i, why);
			}
		if (r.n_failed)
			send_report(&r, BOUNCE_FAILED, r.newly_failed, r.n_failed);
	}
	free(r.newly_failed);
	queue_state_free(&r.st);
	queue_message_close(&r.m);
	if (ok)
		queue_remove(d->queue, qid);
	snprintf(reply, replysz, ok ? "%s returned to the sender and removed" : "cannot bounce %s", qid);
	return ok;
}

/* "delivering QID WHERE QID WHERE ..." (spaces in WHERE written as '+'), bounded. */
static void list_inflight(struct delivery *d, char *reply, size_t replysz)
{
	size_t len = (size_t)snprintf(reply, replysz, "delivering");
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->nthreads && len < replysz; i++) {
		if (!d->busy[i][0])
			continue;
		char where[WHERE_MAX];
		snprintf(where, sizeof(where), "%s", d->where[i][0] ? d->where[i] : "starting");
		for (char *c = where; *c; c++)
			if (*c == ' ' || *c == '+' || (unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
				*c = '+';
		size_t need = strlen(d->busy[i]) + strlen(where) + 2;
		if (len + need >= replysz)
			break;
		len += (size_t)snprintf(reply + len, replysz - len, " %s %s", d->busy[i], where);
	}
	pthread_mutex_unlock(&d->lock);
}

int delivery_control(struct delivery *d, const char *command, char *reply, size_t replysz)
{
	char verb[16] = "", qid[64] = "";
	if (sscanf(command, "%15s %63s", verb, qid) < 1) {
		snprintf(reply, replysz, "empty command");
		return 1;
	}
	if (strcmp(verb, "inflight") == 0) {
		list_inflight(d, reply, replysz);
		return 0;
	}
	if (strcmp(verb, "flush") == 0) {
		pthread_mutex_lock(&d->lock);
		unsigned n = 0;
		while (d->deferred) {
			struct item *it = d->deferred;
			d->deferred = it->next;
			it->force = true;
			push_ready(d, it);
			n++;
		}
		for (struct item *it = d->ready_head; it; it = it->next)
			it->force = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		snprintf(reply, replysz, "flushing: %u deferred message(s) will be tried now", n);
		return 0;
	}
	if (!qid[0] || !id_is_queue_id(qid)) {
		snprintf(reply, replysz, "%s needs a queue id", verb);
		return 1;
	}
	/* Take the message out of the runner's hands while we change it. */
	pthread_mutex_lock(&d->lock);
	for (int tries = 0; is_busy(d, qid) && tries < 300; tries++) {
		pthread_mutex_unlock(&d->lock);
		usleep(100000);
		pthread_mutex_lock(&d->lock);
	}
	if (is_busy(d, qid)) {
		pthread_mutex_unlock(&d->lock);
		snprintf(reply, replysz, "%s is being delivered right now; try again in a minute", qid);
		return 1;
	}
	unlist(d, qid);
	pthread_mutex_unlock(&d->lock);
	bool ok;
	if (strcmp(verb, "retry") == 0 || strcmp(verb, "release") == 0) {
		ok = strcmp(verb, "release") == 0 ? set_held(d, qid, false, reply, replysz) : true;
		if (ok && strcmp(verb, "retry") == 0)
			snprintf(reply, replysz, "%s will be tried now", qid);
		if (ok) {
			pthread_mutex_lock(&d->lock);
			add_item(d, qid, 0, true, false);
			pthread_mutex_unlock(&d->lock);
		}
	} else if (strcmp(verb, "hold") == 0) {
		ok = set_held(d, qid, true, reply, replysz);
	} else if (strcmp(verb, "delete") == 0) {
		ok = queue_remove(d->queue, qid);
		snprintf(reply, replysz, ok ? "%s deleted" : "cannot delete %s", qid);
		if (ok)
			log_event(LOG_WARN, "deleted", "qid=%s by=admin", qid);
	} else if (strcmp(verb, "bounce") == 0) {
		ok = bounce_now(d, qid, reply, replysz);
	} else if (strcmp(verb, "requeue") == 0) {
		ok = queue_requeue(d->queue, qid);
		if (ok) {
			log_event(LOG_WARN, "requeued", "qid=%s by=admin from=queue/failed", qid);
			snprintf(reply, replysz, "%s back in the queue: every recipient will be tried now", qid);
			pthread_mutex_lock(&d->lock);
			add_item(d, qid, 0, true, false);
			pthread_mutex_unlock(&d->lock);
		} else {
			snprintf(reply, replysz, errno == ENOENT ? "no message %s in queue/failed/"
				: "%s is not a readable queue file and cannot be requeued (postern queue delete removes it)", qid);
		}
	} else {
		snprintf(reply, replysz, "unknown command %s (flush, retry, hold, release, delete, bounce, requeue, inflight)", verb);
		ok = false;
	}
	return ok ? 0 : 1;
}
