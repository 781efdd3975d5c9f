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
#include "serve/dkim_refresh.h"
#include "serve/send_limits.h"
#include "serve/loopq.h"
#include "util/workq.h"

#define DECISION_THREADS 2
/* Stages that wait on DNS (SPF) have threads of their own: a domain whose DNS
 * answers slowly holds one for up to [mailauth] spf_timeout, and must not hold the
 * recipient lookups of every other session meanwhile. */
#define DNS_DECISION_THREADS 8
/* DKIM signing is CPU work, not waiting: about one thread per core is enough, and on
 * threads of their own the signatures never hold the recipient lookups (a few tens of
 * microseconds each) of every other session behind a millisecond of RSA. */
#define SIGNING_THREADS 2
/* Content filters (milters): each thread waits on one filter's answer, up to its
 * time-outs, so that a slow filter never holds the recipient lookups or the DNS. */
#define MILTER_THREADS 8

struct decision_threads {
	struct decider *d;
	struct workq *q;
	struct event *ev;
};

struct decider {
	struct event_base *base;
	struct directory *dir;
	struct decision_threads local_threads, dns_threads, signing_threads, milter_threads;
	bool stopping;             /* the threads are going: run what is left inline */
	struct policy_local local;
	struct dns_pool *dns;      /* the SPF stage's resolvers, one per DNS thread */
	struct policy_spf spf;
	struct policy_signing signing;   /* DKIM: last at the end of data */
	struct dkim_refresh *dkim_keys;  /* the signing keys from the PostgreSQL directory (NULL: the files) */
	struct policy_inbound *inbound;   /* freed after the threads */
	struct policy_limits_stage limits;   /* outbound limits: MAIL, RCPT, the burst at the end of data */
	struct policy_pipeline pipeline;
	struct policy_executor ex;
	struct policy_executor dns_ex;   /* submit only: the DNS threads */
	struct policy_executor signing_ex;   /* submit only: the signing threads */
	struct policy_milters milters;   /* the content filters, before signing */
	struct policy_executor milter_ex;   /* submit only: the filters' threads */
};

struct decider_timer {
	struct event *ev;
	void (*fire)(void *);
	void *arg;
};

static void ex_submit(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
	struct decision_threads *t = ctx;
	if (t->d->stopping || !t->q) {
		work(arg);
		done(arg);
		return;
	}
	workq_push(t->q, work, done, arg);
}

/* The directory's stages queue for the two local threads: the request's deadline is
 * taken here, at arrival, and handed to the thread that runs it (directory.h), so the
 * time spent queued counts against [directory] timeout (PostgreSQL). */
struct dir_job {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	long long deadline_ms;
};

static void dir_job_work(void *arg)
{
	struct dir_job *j = arg;
	directory_thread_deadline(j->deadline_ms);
	j->work(j->arg);
	directory_thread_deadline(0);
}

static void dir_job_done(void *arg)
{
	struct dir_job *j = arg;
	void (*done)(void *) = j->done;
	void *done_arg = j->arg;
	free(j);
	done(done_arg);
}

static void ex_submit_dir(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
	struct decision_threads *t = ctx;
	long long deadline = directory_request_deadline();
	struct dir_job *j = deadline && !t->d->stopping && t->q ? malloc(sizeof(*j)) : NULL;
	if (!j) {
		ex_submit(ctx, work, done, arg);
		return;
	}
	*j = (struct dir_job){ .work = work, .done = done, .arg = arg, .deadline_ms = deadline };
	workq_push(t->q, dir_job_work, dir_job_done, j);
}

static bool threads_start(struct decider *d, struct decision_threads *t, unsigned n)
{
	t->d = d;
	return loopq_start(d->base, n, &t->q, &t->ev);
}

static void threads_stop(struct decision_threads *t)
{
	loopq_stop(&t->q, &t->ev);   /* stages still running finish; their callbacks run here */
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
	struct decider *d = ((struct decision_threads *)ctx)->d;
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

/* The outbound limits, after the local rules at MAIL and RCPT (a sender or recipient
 * refused anyway is not worth a limit's words). */
static bool add_limits(struct decider *d, const struct conf *cf, struct limits_service *limits)
{
	if (!limits)
		return true;
	d->limits = (struct policy_limits_stage){ .conf = cf, .dir = d->dir, .counts = limits_service_counts(limits),
		.notice = limits_service_notice, .notice_ctx = limits };
	return policy_add_limits_stages(&d->pipeline, &d->limits);
}

struct decider *decider_new(struct event_base *base, const struct conf *cf,
	long long (*pop_login_age)(void *ctx, const char *addr), void *pop_ctx, struct limits_service *limits,
	char *err, size_t errsz)
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
	if (!threads_start(d, &d->local_threads, DECISION_THREADS) || !threads_start(d, &d->dns_threads, DNS_DECISION_THREADS)
		|| !threads_start(d, &d->signing_threads, SIGNING_THREADS)
		|| !threads_start(d, &d->milter_threads, MILTER_THREADS)) {
		snprintf(err, errsz, "cannot start the decision threads");
		decider_free(&d);
		return NULL;
	}
	d->local = (struct policy_local){ .conf = cf, .dir = d->dir, .pop_login_age = pop_login_age, .pop_ctx = pop_ctx };
	/* PostgreSQL: the stage's timer a second after the directory's own deadline, so the
	 * directory's words come first and a timeout above the default still holds. */
	if (cf->directory_backend == CONF_DIRECTORY_POSTGRESQL)
		d->local.lookup_timeout_ms = (unsigned)cf->directory_timeout * 1000u + 1000u;
	struct dns_options dopt = { .forwarder = cf->resolver, .timeout_ms = (unsigned)cf->mailauth_spf_timeout * 1000u };
	d->dns = dns_pool_new(&dopt, DNS_DECISION_THREADS);
	d->dns_ex = (struct policy_executor){ .ctx = &d->dns_threads, .submit = ex_submit };
	d->spf = (struct policy_spf){ .conf = cf, .pool = d->dns, .executor = &d->dns_ex };
	bool keys = policy_signing_init(&d->signing, cf);
	if (keys && !dkim_refresh_start(&d->dkim_keys, d->signing.keys, cf, err, errsz)) {
		decider_free(&d);
		return NULL;
	}
	d->signing_ex = (struct policy_executor){ .ctx = &d->signing_threads, .submit = ex_submit };
	d->signing.executor = &d->signing_ex;
	d->inbound = d->dns ? policy_inbound_new(cf, d->dns, &d->dns_ex) : NULL;
	d->milter_ex = (struct policy_executor){ .ctx = &d->milter_threads, .submit = ex_submit };
	d->milters = (struct policy_milters){ .conf = cf, .executor = &d->milter_ex };
	/* Order at the end of data: the quota (local) first, then the inbound checks,
	 * then the content filters, then signing (after any content change). */
	if (!d->inbound || !keys || !policy_add_local_stages(&d->pipeline, &d->local)
		|| !policy_add_spf_stage(&d->pipeline, &d->spf) || !policy_add_inbound_stage(&d->pipeline, d->inbound)
		|| !add_limits(d, cf, limits) || !policy_add_milter_stage(&d->pipeline, &d->milters)
		|| !policy_add_signing_stage(&d->pipeline, &d->signing)) {
		snprintf(err, errsz, d->inbound && keys ? "too many decision stages" : "out of memory");
		decider_free(&d);
		return NULL;
	}
	d->ex = (struct policy_executor){ .ctx = &d->local_threads, .submit = ex_submit_dir, .timer_start = ex_timer_start,
		.timer_cancel = ex_timer_cancel };
	return d;
}

struct policy_milter_session *decider_milter_session(struct decider *d, const struct conf_listener *l)
{
	return policy_milter_session_new(d->milters.conf, l);
}

void decider_milter_session_end(struct decider *d, struct policy_milter_session **ms)
{
	policy_milter_session_end(ms, d && !d->stopping ? &d->milter_ex : NULL);
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
	threads_stop(&d->milter_threads);
	threads_stop(&d->signing_threads);
	threads_stop(&d->dns_threads);
	threads_stop(&d->local_threads);
	dkim_refresh_stop(&d->dkim_keys);
	directory_close(&d->dir);
	policy_inbound_free(&d->inbound);
	dns_pool_free(&d->dns);
	policy_signing_free(&d->signing);
	free(d);
	*dp = NULL;
}
