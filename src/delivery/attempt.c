/* attempt.c - one attempt at one message: local recipients, then each remote
 * destination, the outcomes saved to the state file, reports (failure, delay) and
 * the message's removal when nothing is left (see scheduler_int.h). */
#include "delivery/scheduler_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "delivery/node_lmtp.h"
#include "delivery/reason.h"
#include "util/fileio.h"
#include "util/metrics.h"
#include "wire/enh.h"

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
void sched_where_host(void *arg, const char *host)
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
	const struct rcpt_result *reply;   /* the remote reply being recorded (events), or NULL */
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
	/* Local copies whose directory is not yet fsync'd (local.h): the distinct
	 * directories, and per recipient which of them holds its copy (index + 1, 0: none). */
	struct finish_dir *sync;
	size_t n_sync, cap_sync;
	size_t *sync_of;
	bool finish_begun;          /* counted as under way by the finish group (finish_begin) */
	char (*home)[DIR_NODE_NAME_MAX];   /* per recipient: the other node it goes to by LMTP ("": not) */
};

void sched_event_init(struct events_record *e, enum events_kind kind, const char *qid, const char *sender,
	const char *rcpt, const char *text)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->when = time(NULL);
	snprintf(e->qid, sizeof(e->qid), "%s", qid);
	snprintf(e->sender, sizeof(e->sender), "%s", sender);
	snprintf(e->rcpt, sizeof(e->rcpt), "%s", rcpt);
	snprintf(e->text, sizeof(e->text), "%s", text ? text : "");
	snprintf(e->proto, sizeof(e->proto), "queue");
}

/* What became of recipient i, for the user's "My outgoing mail": where it went (or
 * was tried), the reply that decided it (the remote's code and status when a remote
 * answered), and for a deferral when it is tried again. */
static void rcpt_event(struct run *r, size_t i, enum events_kind kind, const char *where, const char *why)
{
	struct delivery *d = r->w->d;
	if (!d->events)
		return;
	struct events_record e;
	sched_event_init(&e, kind, r->m.env.qid, r->m.env.sender, r->m.env.rcpts[i], why);
	if (where)
		snprintf(e.where, sizeof(e.where), "%s", where);
	else if (d->workers && r->w == &d->workers[r->w->index]) {
		pthread_mutex_lock(&d->lock);
		snprintf(e.where, sizeof(e.where), "%s", d->where[r->w->index]);
		pthread_mutex_unlock(&d->lock);
	}
	if (r->reply && r->reply->code) {
		e.code = r->reply->code;
		snprintf(e.enh, sizeof(e.enh), "%s", r->reply->enh);
	} else if (!reason_status(why, e.enh, sizeof(e.enh))) {
		e.enh[0] = '\0';
	}
	if (kind == EVENTS_DEFERRED)
		e.next_try = (long long)r->st.r[i].next_try;
	events_append(d->events, &e);
}

/* A recipient delivered: the count, and the time since the message arrived (arrival
 * is kept in whole seconds, so the latency is exact to within one second). */
static void count_delivered(struct run *r, const char *route)
{
	metrics_count(METRIC_DELIVERED, route, 1);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	metrics_observe(METRIC_DELIVERY_LATENCY, route,
		(double)(ts.tv_sec - r->m.env.arrival) + (double)ts.tv_nsec / 1e9);
}

/* route labels the delivery metrics: "local", "remote", or "queue" when the queue itself
 * gave up (lifetime, `postern queue bounce`). */
static void fail_rcpt(struct run *r, size_t i, const char *route, const char *why)
{
	metrics_count(METRIC_BOUNCED, route, 1);
	struct queue_rcpt_state *s = &r->st.r[i];
	s->state = RCPT_FAILED;
	snprintf(s->last_reply, sizeof(s->last_reply), "%s", why);
	r->newly_failed[r->n_failed++] = i;
	r->changed = true;
	log_event(LOG_WARN, "bounced", "qid=%s to=<%s> reason=\"%s\"", r->m.env.qid, r->m.env.rcpts[i], why);
	rcpt_event(r, i, EVENTS_BOUNCED, strcmp(route, "local") == 0 ? "local mailbox" : strcmp(route, "queue") == 0
		? "the queue" : NULL, why);
}

static void defer_rcpt(struct run *r, size_t i, const char *route, const char *why)
{
	metrics_count(METRIC_DEFERRED, route, 1);
	struct queue_rcpt_state *s = &r->st.r[i];
	s->attempts++;
	time_t wait = backoff(r->w->d->conf, s->attempts);
	s->next_try = r->now + wait;
	snprintf(s->last_reply, sizeof(s->last_reply), "%s", why);
	r->changed = true;
	log_event(LOG_INFO, "deferred", "qid=%s to=<%s> attempt=%u retry_in=%lld reason=\"%s\"", r->m.env.qid,
		r->m.env.rcpts[i], s->attempts, (long long)wait, why);
	rcpt_event(r, i, EVENTS_DEFERRED, strcmp(route, "local") == 0 ? "local mailbox" : NULL, why);
}

/* Recipient i's copy is in dir, whose fsync is still to come: remember both. */
static bool note_unsynced(struct run *r, size_t i, const char *dir)
{
	size_t k = 0;
	while (k < r->n_sync && strcmp(r->sync[k].path, dir) != 0)
		k++;
	if (k == r->n_sync) {
		if (r->n_sync == r->cap_sync) {
			size_t nc = r->cap_sync ? r->cap_sync * 2 : 4;
			void *p = realloc(r->sync, nc * sizeof(*r->sync));
			if (!p)
				return false;
			r->sync = p;
			r->cap_sync = nc;
		}
		snprintf(r->sync[k].path, sizeof(r->sync[k].path), "%s", dir);
		r->sync[k].failed = false;
		r->n_sync++;
	}
	r->sync_of[i] = k + 1;
	return true;
}

/* Make this attempt's local copies durable (their directories fsync'd, shared with
 * the other threads' deliveries: finish.c) before anything records them: a state
 * file saying delivered, or the queue forgetting the message.  A recipient whose
 * directory could not be synced is pending again (its copy is found by name next
 * time).  Returns false when one was. */
static bool sync_locals(struct run *r)
{
	bool begun = r->finish_begun;
	r->finish_begun = false;
	if (r->n_sync == 0) {
		if (begun)
			finish_abandon(&r->w->d->finish);
		return true;
	}
	bool ok = finish_sync(&r->w->d->finish, r->sync, r->n_sync, begun);
	for (size_t i = 0; i < r->m.env.n_rcpts; i++) {
		if (r->sync_of[i] && r->sync[r->sync_of[i] - 1].failed) {
			struct queue_rcpt_state *s = &r->st.r[i];
			s->state = RCPT_PENDING;
			s->next_try = r->now + (time_t)r->w->d->conf->retry_min;
			snprintf(s->last_reply, sizeof(s->last_reply), "the Maildir directory could not be synced");
			r->changed = true;
		}
		r->sync_of[i] = 0;
	}
	r->n_sync = 0;
	return ok;
}

/* Deliver recipient i, resolved to a local mailbox, into its Maildir. */
static void deliver_local(struct run *r, size_t i, const struct dir_recipient *dr)
{
	const struct conf *c = r->w->d->conf;
	struct queue_rcpt_state *s = &r->st.r[i];
	char path[1400], why[700], dir[FINISH_DIR_MAX];
	if (!store_mailbox_path(c->data_dir, dr->mailbox.domain, dr->mailbox.local, path, sizeof(path))) {
		defer_rcpt(r, i, "local", "the user directory could not be read");
		return;
	}
	set_where(r->w, "%s", "local mailbox");
	if (!r->finish_begun) {
		finish_begin(&r->w->d->finish);   /* a syncing thread may wait for this copy (finish.c) */
		r->finish_begun = true;
	}
	enum local_result lr = local_deliver(c, &r->m, i, path, r->may_repeat, dir, sizeof(dir), why, sizeof(why));
	if (lr == LOCAL_DELIVERED && !note_unsynced(r, i, dir) && !fileio_fsync_dir(dir)) {
		defer_rcpt(r, i, "local", "out of memory, and the Maildir directory could not be synced");
		return;
	}
	switch (lr) {
	case LOCAL_DELIVERED:
		s->state = RCPT_DELIVERED;
		r->changed = true;
		count_delivered(r, "local");
		rcpt_event(r, i, EVENTS_DELIVERED, "local mailbox", "delivered to the mailbox");
		break;
	case LOCAL_TEMP:
		defer_rcpt(r, i, "local", why);
		break;
	case LOCAL_PERM:
		fail_rcpt(r, i, "local", why);
		break;
	}
}

/* [cluster]: the recipient's mailbox lives on another node (its home node), which
 * gets the message by LMTP (node_lmtp.h).  home: the node, into the run's list. */
static bool homed_elsewhere(struct run *r, size_t i, const struct dir_recipient *dr)
{
	const char *self = r->w->d->conf->cluster_node;
	if (!self[0] || !dr->home_node[0] || strcmp(dr->home_node, self) == 0)
		return false;
	snprintf(r->home[i], sizeof(r->home[i]), "%s", dr->home_node);
	return true;
}

static void deliver_locals(struct run *r, bool *remote)
{
	const struct conf *c = r->w->d->conf;
	for (size_t i = 0; i < r->m.env.n_rcpts; i++) {
		struct queue_rcpt_state *s = &r->st.r[i];
		remote[i] = false;
		r->home[i][0] = '\0';
		if (s->state != RCPT_PENDING || (!r->force && s->next_try > r->now))
			continue;
		struct dir_recipient dr;
		switch (directory_resolve_recipient(r->w->dir, c, r->m.env.rcpts[i], &dr)) {
		case DIR_RCPT_NOT_LOCAL:
			remote[i] = true;
			break;
		case DIR_RCPT_TEMPFAIL:
			defer_rcpt(r, i, "local", "the user directory could not be read");
			break;
		case DIR_RCPT_UNKNOWN:
			fail_rcpt(r, i, "local", ENH_PERM_BAD_MAILBOX " no such mailbox here (it was removed after the message was accepted)");
			break;
		case DIR_RCPT_USER:
		case DIR_RCPT_ALIAS:
		case DIR_RCPT_POSTMASTER:
			if (!homed_elsewhere(r, i, &dr))
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
	sync_locals(r);
	if (queue_state_write(r->w->d->queue, r->m.env.qid, &r->st)) {
		r->changed = false;
		r->st.on_disk = true;
	} else
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

/* What the peer said of each recipient of r->group[0..g) (r->res[k]), recorded;
 * route labels the metrics and the log ("remote", "node"). */
static void record_results(struct run *r, size_t g, bool cut_off, const char *route)
{
	for (size_t k = 0; k < g; k++) {
		size_t idx = r->group[k];
		struct rcpt_result *x = &r->res[k];
		if (cut_off && x->outcome == OUT_DEFER)
			continue;   /* aborted by the shutdown, not the peer: no attempt counted */
		char why[QUEUE_REPLY_MAX];
		rcpt_result_reason(x, why, sizeof(why));
		r->reply = x;
		if (x->outcome == OUT_DELIVERED) {
			r->st.r[idx].state = RCPT_DELIVERED;
			snprintf(r->st.r[idx].last_reply, sizeof(r->st.r[idx].last_reply), "%s", why);
			r->changed = true;
			log_event(LOG_INFO, "delivered", "qid=%s to=<%s> %s=\"%s\"", r->m.env.qid, r->m.env.rcpts[idx], route, why);
			count_delivered(r, route);
			rcpt_event(r, idx, EVENTS_DELIVERED, NULL, why);
		} else if (x->outcome == OUT_FAIL) {
			fail_rcpt(r, idx, route, why);
		} else {
			defer_rcpt(r, idx, route, why);
		}
		r->reply = NULL;
	}
}

/* Recipients whose home is another node ([cluster]): one LMTP transaction per home
 * node.  The outcomes are saved first (checkpoint), so a crash during the transfer
 * repeats at most this transfer: a second copy, never a lost one. */
static void deliver_nodes(struct run *r)
{
	struct delivery *d = r->w->d;
	size_t n = r->m.env.n_rcpts;
	struct node_lmtp x = { .conf = d->conf, .dir = r->w->dir, .cancel = d->cancel };
	pthread_mutex_lock(&d->lock);
	unsigned char secret[sizeof(d->node_secret)];
	memcpy(secret, d->node_secret, d->node_secret_len);
	x.secret = secret;
	x.secret_len = d->node_secret_len;
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < n; i++) {
		if (!r->home[i][0])
			continue;
		if (sched_stop_state(d, NULL))
			break;
		char node[DIR_NODE_NAME_MAX];
		snprintf(node, sizeof(node), "%s", r->home[i]);
		size_t g = 0;
		for (size_t k = i; k < n; k++)
			if (strcmp(r->home[k], node) == 0) {
				r->group[g++] = k;
				r->home[k][0] = '\0';
			}
		checkpoint(r);
		set_where(r->w, "node %s", node);
		node_lmtp_deliver(&x, &r->m, node, r->group, g, r->res);
		bool cut_off = false;
		sched_stop_state(d, &cut_off);
		record_results(r, g, cut_off, "node");
	}
	explicit_bzero(secret, sizeof(secret));
}

/* Remote recipients, one destination domain at a time (or all via the relay). */
static void deliver_remotes(struct run *r, bool *remote)
{
	struct delivery *d = r->w->d;
	size_t n = r->m.env.n_rcpts;
	bool via_relay = d->conf->relay_host[0] != '\0';
	/* The local copies' directories before the first remote transaction, not after
	 * it: a thread syncing for others waits for copies still under way (finish.c). */
	if (any(remote, n))
		sync_locals(r);
	for (size_t i = 0; i < n; i++) {
		if (!remote[i])
			continue;
		if (sched_stop_state(d, NULL))
			return;   /* stopping: the rest waits, untouched, for the next start */
		const char *dom = via_relay ? d->conf->relay_host : domain_of(r->m.env.rcpts[i]);
		size_t g = 0;
		for (size_t k = i; k < n; k++) {
			if (remote[k] && (via_relay || strcasecmp(domain_of(r->m.env.rcpts[k]), dom) == 0)) {
				r->group[g++] = k;
				remote[k] = false;
			}
		}
		if (!sched_domain_acquire(d, dom)) {
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
		sched_domain_release(d, dom);
		bool cut_off = false;
		sched_stop_state(d, &cut_off);
		record_results(r, g, cut_off, "remote");
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
		fail_rcpt(r, i, "queue", why);
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
		if (kind == BOUNCE_DELAYED && r->w->d->events) {
			struct events_record e;
			char text[256];
			snprintf(text, sizeof(text), "a delay notice was sent to <%.120s> for %zu recipient(s) still waiting",
				r->m.env.sender, k);
			sched_event_init(&e, EVENTS_DELAY_NOTICE, r->m.env.qid, r->m.env.sender, "", text);
			events_append(r->w->d->events, &e);
		}
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

/* After the attempt: save the state while anything is pending, keep an undeliverable
 * report for the administrator, or remove the message.  Returns when it is due
 * again (0: done with it). */
static time_t settle(struct run *r, const char *qid)
{
	size_t n = r->m.env.n_rcpts;
	time_t again = 0;
	bool pending = false, failed = false;
	sync_locals(r);   /* first: whatever follows records the local copies */
	for (size_t i = 0; i < n; i++) {
		if (r->st.r[i].state == RCPT_PENDING) {
			pending = true;
			time_t t = r->st.r[i].next_try > r->now ? (time_t)r->st.r[i].next_try : r->now + 1;
			if (!again || t < again)
				again = t;
		}
		failed |= r->st.r[i].state == RCPT_FAILED;
	}
	if (pending) {
		if (r->changed && !queue_state_write(r->w->d->queue, qid, &r->st))
			log_event(LOG_ERR, "state_error", "qid=%s error=\"cannot save the delivery state: %s\"", qid, strerror(errno));
		else
			r->st.on_disk = true;
	} else if (failed && !r->m.env.sender[0]) {
		/* Nobody to tell (a bounce that failed): keep it for the administrator, and
		 * tell the postmaster, unless it is the postmaster's own notice (no loop). */
		char why[NOTICE_REASON_MAX + 200] = "undeliverable report";
		for (size_t i = 0; i < n; i++)
			if (r->st.r[i].state == RCPT_FAILED) {
				snprintf(why, sizeof(why), "undeliverable report to <%.200s>: %.180s", r->m.env.rcpts[i],
					r->st.r[i].last_reply);
				break;
			}
		keep_failed(r->w->d, qid, why, strcmp(r->m.env.protocol, NOTICE_PROTOCOL) != 0);
		log_event(LOG_WARN, "kept", "qid=%s reason=\"undeliverable report\" where=queue/failed", qid);
	} else {
		/* Every outcome is durable (queue.h, queue_done): no fsync, and no state file to
		 * remove unless an earlier attempt or a checkpoint wrote one. */
		if (!queue_done(r->w->d->queue, qid, r->st.on_disk))
			log_event(LOG_ERR, "queue_error", "qid=%s error=\"cannot remove the delivered message: %s\" "
				"action=\"delivered again at the next start\"", qid, strerror(errno));
		log_event(LOG_INFO, "removed", "qid=%s reason=\"%s\"", qid, failed ? "done; failures reported to the sender"
			: "all recipients delivered");
	}
	return again;
}

/* Returns 0 when the message is finished, else the time to look at it again. */
time_t sched_process(struct worker *w, const char *qid, bool force, bool fresh)
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
	w->envelope_arrival = r.m.env.arrival;
	size_t n = r.m.env.n_rcpts;
	time_t again = 0;
	/* A message just committed has no state file (a held one is never enqueued as
	 * fresh, see lists.c): nothing to read, no failing open. */
	if (!(fresh ? queue_state_fresh(&r.st, n) : queue_state_read(d->queue, qid, n, &r.st))) {
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
	r.sync_of = calloc(n, sizeof(size_t));
	r.home = calloc(n, sizeof(*r.home));
	if (!remote || !r.newly_failed || !r.group || !r.res || !r.sync_of || !r.home) {
		again = r.now + (time_t)d->conf->retry_min;
		goto out;
	}
	/* A message just committed and never tried cannot have a copy anywhere yet;
	 * anything else (found at start, retried) may follow an attempt a crash cut
	 * short before its state was saved. */
	r.may_repeat = !fresh || r.st.delay_notified || r.st.damaged;
	for (size_t i = 0; i < n && !r.may_repeat; i++)
		r.may_repeat = r.st.r[i].attempts > 0 || r.st.r[i].state != RCPT_PENDING;
	/* No checkpoint after the local copies: a repeat finds each by its Maildir name
	 * (local.h), and a local failure or deferral comes out the same again.  Their
	 * directories are synced before the first remote transaction or at the end
	 * (settle). */
	deliver_locals(&r, remote);
	deliver_nodes(&r);
	deliver_remotes(&r, remote);
	expire(&r);
	if (r.n_failed)
		send_report(&r, BOUNCE_FAILED, r.newly_failed, r.n_failed);
	maybe_delay_notice(&r);
	again = settle(&r, qid);
out:
	free(remote);
	free(r.newly_failed);
	free(r.group);
	free(r.res);
	free(r.sync);
	free(r.sync_of);
	free(r.home);
	queue_state_free(&r.st);
	queue_message_close(&r.m);
	return again;
}

/* Return the message to its sender: every pending recipient failed by the admin. */
bool sched_bounce_now(struct delivery *d, const char *qid, char *reply, size_t replysz)
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
				snprintf(why, sizeof(why), ENH_PERM " returned by the mail administrator; last attempt: %.480s",
					r.st.r[i].last_reply[0] ? r.st.r[i].last_reply : "none");
				fail_rcpt(&r, i, "queue", why);
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
