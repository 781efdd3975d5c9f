/* local.c - the local delivery agent (see local.h).
 *
 * Threads take queue ids from a FIFO (new messages) or from the deferred list when
 * their retry time comes.  Per message: open and verify the queue file, load which
 * recipients are done, deliver the others into their Maildirs, record progress
 * durably, then remove the file (all done), keep it for a retry (temporary failure),
 * or move it to queue/failed/ (some recipient failed for good). */
#include "delivery/local.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "queue/queue.h"
#include "store/maildir.h"
#include "util/log.h"
#include "util/parse.h"

struct item {
	char qid[QUEUE_ID_LEN + 1];
	unsigned attempts;
	time_t due;
	struct item *next;
};

struct delivery {
	const struct conf *conf;
	struct queue *queue;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *ready_head, *ready_tail;
	struct item *deferred;          /* unsorted; small in practice, scanned for the earliest */
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
};

enum outcome { OUT_DONE, OUT_RETRY };

static void push_ready(struct delivery *d, struct item *it)
{
	it->next = NULL;
	if (d->ready_tail)
		d->ready_tail->next = it;
	else
		d->ready_head = it;
	d->ready_tail = it;
}

void delivery_enqueue(struct delivery *d, const char *qid)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it) {
		log_event(LOG_ERR, "delivery_error", "qid=%s error=\"out of memory; delivered at next start\"", qid);
		return;
	}
	snprintf(it->qid, sizeof(it->qid), "%s", qid);
	pthread_mutex_lock(&d->lock);
	push_ready(d, it);
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Where a local recipient's mail goes.  Returns false for "no such mailbox"
 * (permanent), sets *temp for a directory failure. */
static bool resolve_mailbox(struct delivery *d, struct directory *dir, const char *rcpt,
	char *path, size_t pathsz, bool *temp, bool *remote)
{
	const struct conf *c = d->conf;
	*temp = *remote = false;
	char local[320], domain[320];
	const char *at = strrchr(rcpt, '@');
	if (!at) {
		/* bare <postmaster> */
		snprintf(local, sizeof(local), "postmaster");
		snprintf(domain, sizeof(domain), "%s", c->n_local_domains ? c->local_domains[0] : c->hostname);
	} else {
		size_t ln = (size_t)(at - rcpt);
		if (ln >= sizeof(local))
			return false;
		memcpy(local, rcpt, ln);
		local[ln] = '\0';
		snprintf(domain, sizeof(domain), "%s", at + 1);
		ascii_lower(local);
		ascii_lower(domain);
	}
	bool is_local = conf_is_local_domain(c, domain);
	if (!is_local) {
		enum dir_result r = directory_domain_exists(dir, domain);
		if (r == DIR_ERROR) {
			*temp = true;
			return false;
		}
		is_local = r == DIR_OK;
	}
	if (!is_local) {
		*remote = true;
		return false;
	}
	struct dir_user u;
	enum dir_result r = directory_user_lookup(dir, local, domain, &u);
	if (r == DIR_NOT_FOUND) {
		/* An alias: deliver to the user it points to. */
		char target[DIR_ADDRESS_MAX];
		r = directory_alias_lookup(dir, local, domain, target, sizeof(target));
		const char *tat = r == DIR_OK ? strrchr(target, '@') : NULL;
		if (tat) {
			*(char *)tat = '\0';
			r = directory_user_lookup(dir, target, tat + 1, &u);
		} else if (r == DIR_OK) {
			r = DIR_NOT_FOUND;
		}
	}
	if (r == DIR_ERROR) {
		*temp = true;
		return false;
	}
	if (r == DIR_OK) {
		return snprintf(path, pathsz, "%s/mail/%s/%s", c->data_dir, u.domain, u.local) < (int)pathsz;
	}
	if (strcmp(local, "postmaster") == 0) {
		/* RFC 5321 §4.5.1: postmaster mail is never refused nor lost. */
		const char *pm = c->postmaster;
		const char *pat = strrchr(pm, '@');
		if (pm[0] && pat) {
			char pl[320];
			size_t pn = (size_t)(pat - pm);
			if (pn < sizeof(pl)) {
				memcpy(pl, pm, pn);
				pl[pn] = '\0';
				if (directory_user_lookup(dir, pl, pat + 1, &u) == DIR_OK)
					return snprintf(path, pathsz, "%s/mail/%s/%s", c->data_dir, u.domain, u.local) < (int)pathsz;
			}
		}
		return snprintf(path, pathsz, "%s/mail/%s/postmaster", c->data_dir, domain) < (int)pathsz;
	}
	return false;
}

static enum outcome deliver_message(struct delivery *d, struct directory *dir, const char *qid, char *why, size_t whysz)
{
	struct queue_message m;
	char err[512];
	if (!queue_message_open(d->queue, qid, &m, err, sizeof(err))) {
		if (strstr(err, "No such file"))
			return OUT_DONE;   /* already finished (e.g. removed by the admin) */
		log_event(LOG_ERR, "queue_corrupt", "qid=%s error=\"%s\" action=\"moved to queue/failed\"", qid, err);
		queue_move_failed(d->queue, qid);
		return OUT_DONE;
	}
	size_t n = m.env.n_rcpts;
	unsigned char *state = calloc(n, 1);
	if (!state || !queue_state_load(d->queue, qid, state, n)) {
		free(state);
		queue_message_close(&m);
		snprintf(why, whysz, "cannot read the delivery state");
		return OUT_RETRY;
	}
	bool pending = false, failed = false, changed = false;
	for (size_t i = 0; i < n; i++) {
		if (state[i] != RCPT_PENDING)
			continue;
		const char *rcpt = m.env.rcpts[i];
		char path[1400];
		bool temp, remote;
		if (!resolve_mailbox(d, dir, rcpt, path, sizeof(path), &temp, &remote)) {
			if (temp || remote) {
				snprintf(why, whysz, "%s", temp ? "the user directory could not be read"
					: "remote delivery is not available in this version; the message stays queued");
				log_event(LOG_INFO, "deferred", "qid=%s to=<%s> reason=\"%s\"", qid, rcpt, why);
				pending = true;
				continue;
			}
			/* The mailbox was deleted after the message was accepted. */
			state[i] = RCPT_FAILED;
			failed = changed = true;
			log_event(LOG_WARN, "failed", "qid=%s to=<%s> reason=\"no such mailbox (removed after the message was accepted)\"", qid, rcpt);
			continue;
		}
		char prefix[1200];
		snprintf(prefix, sizeof(prefix), "Return-Path: <%s>\nDelivered-To: %s\n", m.env.sender,
			strchr(rcpt, '@') ? rcpt : "postmaster");
		char name[600];
		enum store_result r = maildir_deliver(path, prefix, m.fd, m.body_offset, m.body_size,
			name, sizeof(name), err, sizeof(err));
		if (r == STORE_OK) {
			state[i] = RCPT_DELIVERED;
			changed = true;
			log_event(LOG_INFO, "delivered", "qid=%s to=<%s> mailbox=%s file=%s size=%llu", qid, rcpt, path,
				name, (unsigned long long)m.body_size);
		} else {
			snprintf(why, whysz, "%s", err);
			log_event(LOG_WARN, "deferred", "qid=%s to=<%s> reason=\"%s\"", qid, rcpt, err);
			pending = true;
		}
	}
	enum outcome out = OUT_DONE;
	if (pending) {
		if (changed && !queue_state_save(d->queue, qid, state, n))
			log_event(LOG_ERR, "state_error", "qid=%s error=\"cannot save delivery state: %s\"", qid, strerror(errno));
		out = OUT_RETRY;
	} else if (failed) {
		queue_move_failed(d->queue, qid);
		log_event(LOG_WARN, "kept", "qid=%s reason=\"some recipients failed\" where=queue/failed", qid);
	} else {
		queue_remove(d->queue, qid);
		log_event(LOG_INFO, "removed", "qid=%s reason=\"all recipients delivered\"", qid);
	}
	free(state);
	queue_message_close(&m);
	return out;
}

/* Earliest deferred item, or NULL. */
static struct item **earliest(struct delivery *d)
{
	struct item **best = NULL;
	for (struct item **p = &d->deferred; *p; p = &(*p)->next)
		if (!best || (*p)->due < (*best)->due)
			best = p;
	return best;
}

static void *delivery_thread(void *arg)
{
	struct delivery *d = arg;
	struct directory *dir = NULL;
	char err[256];
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct item *it = d->ready_head;
		if (it) {
			d->ready_head = it->next;
			if (!d->ready_head)
				d->ready_tail = NULL;
		} else {
			struct item **e = earliest(d);
			time_t now = time(NULL);
			if (e && (*e)->due <= now) {
				it = *e;
				*e = it->next;
			} else if (e) {
				struct timespec ts = { .tv_sec = (*e)->due };
				pthread_cond_timedwait(&d->cond, &d->lock, &ts);
				continue;
			} else {
				pthread_cond_wait(&d->cond, &d->lock);
				continue;
			}
		}
		pthread_mutex_unlock(&d->lock);
		if (!dir && !directory_open(&dir, d->conf->data_dir, err, sizeof(err)))
			log_event(LOG_ERR, "directory_error", "error=\"%s\"", err);
		char why[512] = "";
		enum outcome out = dir ? deliver_message(d, dir, it->qid, why, sizeof(why)) : OUT_RETRY;
		pthread_mutex_lock(&d->lock);
		if (out == OUT_DONE) {
			free(it);
			continue;
		}
		it->attempts++;
		uint64_t delay = d->conf->retry_min;
		for (unsigned i = 1; i < it->attempts && delay < d->conf->retry_max; i++)
			delay *= 2;
		if (delay > d->conf->retry_max)
			delay = d->conf->retry_max;
		it->due = time(NULL) + (time_t)delay;
		it->next = d->deferred;
		d->deferred = it;
		log_event(LOG_INFO, "retry_scheduled", "qid=%s attempt=%u retry_in=%llu", it->qid, it->attempts,
			(unsigned long long)delay);
	}
	pthread_mutex_unlock(&d->lock);
	directory_close(&dir);
	return NULL;
}

static void enqueue_existing(void *arg, const char *qid)
{
	delivery_enqueue(arg, qid);
}

struct delivery *delivery_start(const struct conf *c, struct queue *q)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->conf = c;
	d->queue = q;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&d->cond, &ca);   /* CLOCK_REALTIME: due times are wall-clock */
	pthread_condattr_destroy(&ca);
	queue_list_active(q, enqueue_existing, d);
	unsigned n = (unsigned)c->delivery_threads;
	d->threads = calloc(n, sizeof(pthread_t));
	for (unsigned i = 0; d->threads && i < n; i++)
		if (pthread_create(&d->threads[i], NULL, delivery_thread, d) == 0)
			d->nthreads++;
	if (d->nthreads == 0) {
		free(d->threads);
		free(d);
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

void delivery_stop(struct delivery **dp)
{
	struct delivery *d = *dp;
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	free_list(d->ready_head);
	free_list(d->deferred);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d->threads);
	free(d);
	*dp = NULL;
}
