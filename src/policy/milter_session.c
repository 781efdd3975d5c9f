/* milter_session.c - one SMTP connection's conversations with its listener's content
 * filters (policy.h "content filters"; private header milter_stage.h).
 *
 * The connection (serve/smtp.c) owns a reference; each stage run takes one more.  A
 * stage holds a filter's conversation by claiming it: a stage whose run timed out in
 * the pipeline may still be talking to the filter on its thread when the client's
 * next command asks again, and the two must never write to one socket.  The later
 * stage finds the peer claimed and counts that filter as failed (its default action)
 * instead of waiting.  When the connection goes, every conversation is ended on a
 * filter thread (QUIT can block for a command time-out: never on the event loop); a
 * peer still claimed then is closed by its stage when it comes back. */
#include "policy/milter_stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static enum milter_action action_of(enum conf_milter_action a)
{
	return a == CONF_MILTER_ACCEPT ? MILTER_DEFAULT_ACCEPT : a == CONF_MILTER_REJECT ? MILTER_DEFAULT_REJECT
		: MILTER_DEFAULT_TEMPFAIL;
}

struct policy_milter_session *policy_milter_session_new(const struct conf *c, const struct conf_listener *l)
{
	if (!l || l->n_milters == 0)
		return NULL;
	struct policy_milter_session *ms = calloc(1, sizeof(*ms) + l->n_milters * sizeof(ms->peers[0]));
	if (!ms)
		return NULL;
	if (pthread_mutex_init(&ms->mu, NULL) != 0) {
		free(ms);
		return NULL;
	}
	ms->refs = 1;
	ms->n = l->n_milters;
	for (size_t i = 0; i < l->n_milters; i++) {
		const struct conf_milter *cm = &c->milters[l->milters[i]];
		struct milter_peer *p = &ms->peers[i];
		snprintf(p->fc.name, sizeof(p->fc.name), "%s", cm->name);
		snprintf(p->fc.socket, sizeof(p->fc.socket), "%s", cm->socket);
		p->fc.connect_ms = cm->connect_timeout_ms;
		p->fc.command_ms = cm->command_timeout_ms;
		p->fc.content_ms = cm->content_timeout_ms;
		p->fc.default_action = action_of(cm->default_action);
		snprintf(p->display, sizeof(p->display), "%s", conf_milter_display(cm));
		p->session_refusal = MILTER_CONTINUE;
	}
	return ms;
}

void milter_session_hold(struct policy_milter_session *ms)
{
	pthread_mutex_lock(&ms->mu);
	ms->refs++;
	pthread_mutex_unlock(&ms->mu);
}

void milter_session_release(struct policy_milter_session *ms)
{
	pthread_mutex_lock(&ms->mu);
	bool last = --ms->refs == 0;
	pthread_mutex_unlock(&ms->mu);
	if (!last)
		return;
	/* Nobody else can reach it now: every peer was closed by whoever held it last. */
	for (size_t i = 0; i < ms->n; i++)
		milter_close(&ms->peers[i].mc);
	pthread_mutex_destroy(&ms->mu);
	free(ms);
}

unsigned long long milter_session_new_txn(struct policy_milter_session *ms)
{
	pthread_mutex_lock(&ms->mu);
	unsigned long long t = ++ms->last_txn;
	pthread_mutex_unlock(&ms->mu);
	return t;
}

bool milter_session_ended(struct policy_milter_session *ms)
{
	pthread_mutex_lock(&ms->mu);
	bool ended = ms->ended;
	pthread_mutex_unlock(&ms->mu);
	return ended;
}

struct milter_peer *milter_peer_claim(struct policy_milter_session *ms, size_t i)
{
	pthread_mutex_lock(&ms->mu);
	struct milter_peer *p = &ms->peers[i];
	bool free_to_use = !p->busy && !ms->ended;
	if (free_to_use)
		p->busy = true;
	pthread_mutex_unlock(&ms->mu);
	return free_to_use ? p : NULL;
}

void milter_peer_drop(struct milter_peer *p)
{
	if (p->mc && p->in_txn)
		milter_abort(p->mc);
	milter_close(&p->mc);
	p->greeted = false;
	p->in_txn = false;
	p->helo[0] = '\0';
}

void milter_peer_unclaim(struct policy_milter_session *ms, struct milter_peer *p)
{
	pthread_mutex_lock(&ms->mu);
	bool ended = ms->ended;
	pthread_mutex_unlock(&ms->mu);
	if (ended)   /* the connection went while we talked: say goodbye for it */
		milter_peer_drop(p);
	pthread_mutex_lock(&ms->mu);
	p->busy = false;
	pthread_mutex_unlock(&ms->mu);
}

/* On a filter thread: abort the open transactions and QUIT, then the connection's
 * reference goes. */
static void session_end_work(void *arg)
{
	struct policy_milter_session *ms = arg;
	for (size_t i = 0; i < ms->n; i++) {
		pthread_mutex_lock(&ms->mu);
		struct milter_peer *p = &ms->peers[i];
		bool mine = !p->busy;
		if (mine)
			p->busy = true;
		pthread_mutex_unlock(&ms->mu);
		if (!mine)
			continue;   /* its stage closes it when it returns (milter_peer_unclaim) */
		milter_peer_drop(p);
		pthread_mutex_lock(&ms->mu);
		p->busy = false;
		pthread_mutex_unlock(&ms->mu);
	}
	milter_session_release(ms);
}

static void session_end_done(void *arg)
{
	(void)arg;
}

void policy_milter_session_end(struct policy_milter_session **msp, const struct policy_executor *ex)
{
	struct policy_milter_session *ms = *msp;
	if (!ms)
		return;
	*msp = NULL;
	pthread_mutex_lock(&ms->mu);
	ms->ended = true;
	bool open = false;
	for (size_t i = 0; i < ms->n; i++)
		open = open || ms->peers[i].mc || ms->peers[i].busy;
	pthread_mutex_unlock(&ms->mu);
	if (!open || !ex) {   /* nothing to say goodbye to (or the threads are gone: at the stop) */
		session_end_work(ms);
		return;
	}
	ex->submit(ex->ctx, session_end_work, session_end_done, ms);
}
