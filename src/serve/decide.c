/* decide.c - the decision route of the running server (see decide.h).
 *
 * The stages that read the directory or quota files run on two threads of their
 * own, not on the commit threads, so that a recipient lookup never waits behind an
 * fsync.  They use a directory handle of their own (SQLite serialises the calls on
 * it).  Each I/O stage's timeout is an event timer on the loop (DESIGN invariant 5). */
#include "serve/decide.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "dns/dns.h"
#include "util/workq.h"

#define DECISION_THREADS 2

struct decider {
	struct event_base *base;
	struct directory *dir;
	struct workq *q;
	struct event *q_ev;
	bool stopping;             /* the threads are going: run what is left inline */
	struct policy_local local;
	struct dns_pool *dns;      /* the SPF stage's resolvers, one per decision thread */
	struct policy_spf spf;
	struct policy_pipeline pipeline;
	struct policy_executor ex;
};

struct decider_timer {
	struct event *ev;
	void (*fire)(void *);
	void *arg;
};

static void notify(void *arg)
{
	event_active(arg, EV_READ, 0);   /* thread-safe: evthread_use_pthreads() */
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct decider *d = arg;
	if (d->q)
		workq_run_done(d->q);
}

static void ex_submit(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
	struct decider *d = ctx;
	if (d->stopping || !d->q) {
		work(arg);
		done(arg);
		return;
	}
	workq_push(d->q, work, done, arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct decider_timer *t = arg;
	void (*fire)(void *) = t->fire;
	void *fire_arg = t->arg;
	event_free(t->ev);
	free(t);
	fire(fire_arg);
}

static void *ex_timer_start(void *ctx, unsigned ms, void (*fire)(void *), void *arg)
{
	struct decider *d = ctx;
	struct decider_timer *t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct decider_timer){ .fire = fire, .arg = arg };
	t->ev = evtimer_new(d->base, timer_cb, t);
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	if (!t->ev || evtimer_add(t->ev, &tv) != 0) {
		if (t->ev)
			event_free(t->ev);
		free(t);
		return NULL;
	}
	return t;
}

static void ex_timer_cancel(void *ctx, void *timer)
{
	(void)ctx;
	struct decider_timer *t = timer;
	event_free(t->ev);
	free(t);
}

struct decider *decider_new(struct event_base *base, const struct conf *cf,
	long long (*pop_login_age)(void *ctx, const char *addr), void *pop_ctx, char *err, size_t errsz)
{
	struct decider *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	d->base = base;
	if (!directory_open(&d->dir, cf->data_dir, err, errsz)) {
		decider_free(&d);
		return NULL;
	}
	d->q_ev = event_new(base, -1, 0, done_cb, d);
	d->q = d->q_ev ? workq_new(DECISION_THREADS, notify, d->q_ev) : NULL;
	if (!d->q) {
		snprintf(err, errsz, "cannot start the decision threads");
		decider_free(&d);
		return NULL;
	}
	d->local = (struct policy_local){ .conf = cf, .dir = d->dir, .pop_login_age = pop_login_age, .pop_ctx = pop_ctx };
	struct dns_options dopt = { .forwarder = cf->resolver, .timeout_ms = (unsigned)cf->mailauth_spf_timeout * 1000u };
	d->dns = dns_pool_new(&dopt, DECISION_THREADS);
	d->spf = (struct policy_spf){ .conf = cf, .pool = d->dns };
	if (!d->dns || !policy_add_local_stages(&d->pipeline, &d->local) || !policy_add_spf_stage(&d->pipeline, &d->spf)) {
		snprintf(err, errsz, d->dns ? "too many decision stages" : "out of memory");
		decider_free(&d);
		return NULL;
	}
	d->ex = (struct policy_executor){ .ctx = d, .submit = ex_submit, .timer_start = ex_timer_start,
		.timer_cancel = ex_timer_cancel };
	return d;
}

struct policy_run *decider_decide(struct decider *d, struct policy_facts *facts, policy_done_fn done, void *arg)
{
	return policy_decide(&d->pipeline, &d->ex, facts, done, arg);
}

void decider_free(struct decider **dp)
{
	struct decider *d = *dp;
	if (!d)
		return;
	d->stopping = true;
	workq_free(&d->q);   /* stages still running finish; their callbacks run here */
	if (d->q_ev)
		event_free(d->q_ev);
	directory_close(&d->dir);
	dns_pool_free(&d->dns);
	free(d);
	*dp = NULL;
}
