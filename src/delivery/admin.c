/* admin.c - `postern queue ...` as the runner sees it (through the control socket):
 * hold, release, flush, retry, bounce, the messages in flight (see delivery.h). */
#include "delivery/scheduler_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* --- admin control -------------------------------------------------------------- */

/* The administrator acted on a message: the event store hears it (the user sees
 * "held by the administrator", "deleted"...). */
static void admin_event(struct delivery *d, const char *qid, enum events_kind kind, const char *sender)
{
	if (!d->events)
		return;
	struct events_record e;
	sched_event_init(&e, kind, qid, sender, "", kind == EVENTS_HELD ? "held by the mail administrator"
		: kind == EVENTS_RELEASED ? "released by the mail administrator" : "deleted by the mail administrator");
	events_append(d->events, &e);
}

/* The message's envelope sender, before it is deleted ("" when unreadable). */
static void message_sender(struct delivery *d, const char *qid, char *out, size_t outsz)
{
	struct queue_message m;
	char err[256];
	out[0] = '\0';
	if (!d->events || !queue_message_open(d->queue, qid, &m, err, sizeof(err)))
		return;
	snprintf(out, outsz, "%s", m.env.sender);
	queue_message_close(&m);
}

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
			st.hold_reason[0] = '\0';   /* a content filter's quarantine ends with it */
		if (!held)
			for (size_t i = 0; i < st.n; i++)
				st.r[i].next_try = 0;
		ok = queue_state_write(d->queue, qid, &st);
		queue_state_free(&st);
	}
	if (ok)
		admin_event(d, qid, held ? EVENTS_HELD : EVENTS_RELEASED, m.env.sender);
	queue_message_close(&m);
	snprintf(reply, replysz, ok ? "%s %s" : "cannot change %s", qid, held ? "held" : "released");
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

/* `queue flush`: every deferred message, and every ready one, is tried now. */
static void flush_all(struct delivery *d, char *reply, size_t replysz)
{
	pthread_mutex_lock(&d->lock);
	unsigned n = 0;
	while (d->deferred) {
		struct item *it = d->deferred;
		d->deferred = it->next;
		it->force = true;
		sched_push_ready(d, it);
		n++;
	}
	for (struct item *it = d->ready_head; it; it = it->next)
		it->force = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	snprintf(reply, replysz, "flushing: %u deferred message(s) will be tried now", n);
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
		flush_all(d, reply, replysz);
		return 0;
	}
	if (!qid[0] || !id_is_queue_id(qid)) {
		snprintf(reply, replysz, "%s needs a queue id", verb);
		return 1;
	}
	/* Take the message out of the runner's hands while we change it. */
	pthread_mutex_lock(&d->lock);
	for (int tries = 0; sched_is_busy(d, qid) && tries < 300; tries++) {
		pthread_mutex_unlock(&d->lock);
		usleep(100000);
		pthread_mutex_lock(&d->lock);
	}
	if (sched_is_busy(d, qid)) {
		pthread_mutex_unlock(&d->lock);
		snprintf(reply, replysz, "%s is being delivered right now; try again in a minute", qid);
		return 1;
	}
	sched_unlist(d, qid);
	pthread_mutex_unlock(&d->lock);
	bool ok;
	if (strcmp(verb, "retry") == 0 || strcmp(verb, "release") == 0) {
		ok = strcmp(verb, "release") == 0 ? set_held(d, qid, false, reply, replysz) : true;
		if (ok && strcmp(verb, "retry") == 0)
			snprintf(reply, replysz, "%s will be tried now", qid);
		if (ok) {
			pthread_mutex_lock(&d->lock);
			sched_add_item(d, qid, 0, true, false);
			pthread_mutex_unlock(&d->lock);
		}
	} else if (strcmp(verb, "hold") == 0) {
		ok = set_held(d, qid, true, reply, replysz);
	} else if (strcmp(verb, "delete") == 0) {
		char sender[QUEUE_ADDR_MAX];
		message_sender(d, qid, sender, sizeof(sender));
		ok = queue_remove(d->queue, qid);
		snprintf(reply, replysz, ok ? "%s deleted" : "cannot delete %s", qid);
		if (ok)
			log_event(LOG_WARN, "deleted", "qid=%s by=admin", qid);
		if (ok)
			admin_event(d, qid, EVENTS_DELETED, sender);
	} else if (strcmp(verb, "bounce") == 0) {
		ok = sched_bounce_now(d, qid, reply, replysz);
	} else if (strcmp(verb, "requeue") == 0) {
		ok = queue_requeue(d->queue, qid);
		if (ok) {
			log_event(LOG_WARN, "requeued", "qid=%s by=admin from=queue/failed", qid);
			snprintf(reply, replysz, "%s back in the queue: every recipient will be tried now", qid);
			pthread_mutex_lock(&d->lock);
			sched_add_item(d, qid, 0, true, false);
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
