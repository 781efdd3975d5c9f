/* web.c - the adapter between the HTTP transport (net/http.h) and the web room
 * (web/web.h): each request the transport hands over becomes a job on the web
 * threads (a pool of their own, [http] threads, so that a slow directory answer
 * never waits behind an fsync or a login), which routes it with web_handle using
 * that thread's struct web_worker (its own directory handle, see service.h); the
 * answer goes back to the transport on the loop thread.  At shutdown the jobs still
 * running finish and are answered before the transport is freed (server.c).
 * It also gives the web room its hooks (struct web_hooks): a sign-in on the account
 * page is a job for the login service (its throttle is the loop thread's, shared
 * with SMTP and POP3), so the web thread hands it to the loop and waits on a
 * condition variable, with a deadline, for the answer. */
#include "serve/service.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/login.h"
#include "conf/conf.h"
#include "delivery/delivery.h"
#include "directory/directory.h"
#include "events/events.h"
#include "net/http.h"
#include "util/log.h"
#include "serve/loopq.h"
#include "util/workq.h"
#include "web/web.h"

/* One sign-in on its way: made by the web thread, answered on the loop thread. */
struct web_login {
	struct service *svc;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done, abandoned;        /* under m: answered; the web thread gave up waiting (the loop frees it) */
	unsigned long long id;
	char addr[64];
	bool tls;
	char user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
	enum login_result result;
	char canonical[DIR_ADDRESS_MAX];
	char why[1024];
	struct event *delay;         /* a failure's answer held back (the throttle's delay) */
	struct web_login *next;      /* in the service's list, while not done */
};

#define WEB_LOGIN_DEADLINE_S 15   /* a hash and the throttle's delay (at most 5 s) fit well */

struct web_service {
	const struct web_site *site;
	struct event_base *base;
	struct event *login_ev;      /* sign-ins handed over */
	struct web_login *logins_new;        /* under lock: handed over, not yet started */
	struct web_login *logins_running;    /* loop thread only: with the login service or its delay */
	bool stopping;
	struct workq *q;
	struct event *ev;
	struct web_worker *workers;
	unsigned n_workers;
	pthread_mutex_t lock;        /* the free workers */
	unsigned *free_workers;
	unsigned n_free;
};

struct web_job {
	struct web_service *ws;
	struct http_exchange *x;
	struct http_response resp;
};

/* As many workers as threads, so a running job always finds one free. */
static struct web_worker *worker_take(struct web_service *ws)
{
	pthread_mutex_lock(&ws->lock);
	struct web_worker *w = ws->n_free ? &ws->workers[ws->free_workers[--ws->n_free]] : NULL;
	pthread_mutex_unlock(&ws->lock);
	return w;
}

static void worker_give(struct web_service *ws, struct web_worker *w)
{
	pthread_mutex_lock(&ws->lock);
	ws->free_workers[ws->n_free++] = w->index;
	pthread_mutex_unlock(&ws->lock);
}

static void job_work(void *arg)
{
	struct web_job *job = arg;
	struct web_worker *w = worker_take(job->ws);
	if (!w) {
		http_response_printf(&job->resp, 503, "text/plain; charset=utf-8", "Service unavailable: no web worker is free. Try again in a moment.\n");
		return;
	}
	web_handle(job->ws->site, w, http_exchange_request(job->x), &job->resp);
	worker_give(job->ws, w);
}

static void job_done(void *arg)
{
	struct web_job *job = arg;
	if (!job->resp.status)
		http_response_printf(&job->resp, 500, "text/plain; charset=utf-8", "Internal error: the handler gave no answer.\n");
	http_exchange_reply(job->x, &job->resp);
	http_response_clear(&job->resp);
	free(job);
}

void web_http_request(void *ctx, struct http_exchange *x)
{
	struct service *srv = ctx;
	struct web_job *job = srv->web ? calloc(1, sizeof(*job)) : NULL;
	if (!job) {
		struct http_response r = { 0 };
		http_response_printf(&r, 503, "text/plain; charset=utf-8", "Service unavailable: the web service is not running. Try again in a moment.\n");
		http_exchange_reply(x, &r);
		http_response_clear(&r);
		return;
	}
	job->ws = srv->web;
	job->x = x;
	workq_push(srv->web->q, job_work, job_done, job);
}

/* Loop thread: the answer is there; tell the web thread, or free it if it left. */
static void login_finish(struct web_login *l)
{
	struct web_service *ws = l->svc->web;
	for (struct web_login **p = &ws->logins_running; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	if (l->delay)
		event_free(l->delay);
	l->delay = NULL;
	explicit_bzero(l->pass, sizeof(l->pass));
	pthread_mutex_lock(&l->m);
	bool gone = l->abandoned;
	l->done = true;
	pthread_cond_signal(&l->c);
	pthread_mutex_unlock(&l->m);
	if (gone) {
		pthread_mutex_destroy(&l->m);
		pthread_cond_destroy(&l->c);
		free(l);
	}
}

static void login_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	login_finish(arg);
}

static void login_answered(void *arg, const struct login_answer *a)
{
	struct web_login *l = arg;
	l->result = a->result;
	snprintf(l->canonical, sizeof(l->canonical), "%s", a->login ? a->login : "");
	struct timeval tv = { a->delay_ms / 1000, (a->delay_ms % 1000) * 1000 };
	if (a->delay_ms && !l->svc->web->stopping && (l->delay = evtimer_new(l->svc->web->base, login_delay_cb, l)) &&
		evtimer_add(l->delay, &tv) == 0)
		return;
	login_finish(l);
}

static void blocked_words(const struct throttle_verdict *v, const struct web_login *l, char *out, size_t outsz)
{
	char until[32];
	login_block_end(v->until, until, sizeof(until));
	if (v->block == THROTTLE_ACCOUNT)
		snprintf(out, outsz, "Too many failed sign-ins to %.200s from your address (%s): this account may not sign "
			"in from there until %s, on this page and in mail programs alike.", l->user, l->addr, until);
	else
		snprintf(out, outsz, "Your address (%s) failed to sign in to several accounts: it may not sign in to any "
			"account it has not used successfully before until %s, on this page and in mail programs alike.",
			l->addr, until);
}

/* Loop thread: start the sign-ins handed over (the throttle first, as SMTP and POP3 ask it). */
static void login_ev_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct web_service *ws = arg;
	pthread_mutex_lock(&ws->lock);
	struct web_login *l = ws->logins_new;
	ws->logins_new = NULL;
	pthread_mutex_unlock(&ws->lock);
	while (l) {
		struct web_login *next = l->next;
		l->next = ws->logins_running;
		ws->logins_running = l;
		struct throttle_verdict v = login_service_blocked(l->svc->logins, l->addr, l->user);
		struct login_peer peer = { .conn_id = l->id, .addr = l->addr, .proto = "http", .tls = l->tls, .primary_only = true };
		if (v.block != THROTTLE_OPEN) {
			l->result = LOGIN_BLOCKED;
			blocked_words(&v, l, l->why, sizeof(l->why));
			login_finish(l);
		} else {
			bool asked = login_service_check(l->svc->logins, &peer, "FORM", l->user, l->pass, login_answered, l);
			explicit_bzero(l->pass, sizeof(l->pass));   /* the service has its copy; never answered in the call */
			if (!asked) {
				l->result = LOGIN_TEMPFAIL;
				login_finish(l);
			}
		}
		l = next;
	}
}

/* Web thread: hand the sign-in over and wait for its answer, WEB_LOGIN_DEADLINE_S at most. */
static enum login_result web_login_hook(void *ctx, const char *client_addr, bool tls, const char *user, const char *pass,
	bool primary_only, char *canonical, size_t canonsz, char *why, size_t whysz)
{
	(void)primary_only;   /* always: the web page takes the account's own password only */
	struct service *svc = ctx;
	struct web_service *ws = svc->web;
	static unsigned long long next_id;
	struct web_login *l = ws && svc->logins ? calloc(1, sizeof(*l)) : NULL;
	if (!l)
		return LOGIN_TEMPFAIL;
	l->svc = svc;
	l->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	l->tls = tls;
	snprintf(l->addr, sizeof(l->addr), "%s", client_addr);
	snprintf(l->user, sizeof(l->user), "%s", user);
	snprintf(l->pass, sizeof(l->pass), "%s", pass);
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->c, NULL);
	pthread_mutex_lock(&ws->lock);
	bool stopping = ws->stopping;
	if (!stopping) {
		l->next = ws->logins_new;
		ws->logins_new = l;
	}
	pthread_mutex_unlock(&ws->lock);
	if (stopping) {
		explicit_bzero(l->pass, sizeof(l->pass));
		pthread_mutex_destroy(&l->m);
		pthread_cond_destroy(&l->c);
		free(l);
		return LOGIN_TEMPFAIL;
	}
	event_active(ws->login_ev, EV_READ, 0);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WEB_LOGIN_DEADLINE_S;
	pthread_mutex_lock(&l->m);
	while (!l->done && pthread_cond_timedwait(&l->c, &l->m, &deadline) == 0)
		;
	bool done = l->done;
	enum login_result r = done ? l->result : LOGIN_TEMPFAIL;
	if (done) {
		snprintf(canonical, canonsz, "%s", l->canonical);
		snprintf(why, whysz, "%s", l->why);
	}
	l->abandoned = !done;
	pthread_mutex_unlock(&l->m);
	if (done) {
		pthread_mutex_destroy(&l->m);
		pthread_cond_destroy(&l->c);
		free(l);
	}
	return r;
}

/* The admin pages' hooks (web/admin.h): blocking on the web thread, as the control
 * socket's commands block its worker (delivery_control waits up to 30 s for a message
 * being delivered). */
static int web_queue_control_hook(void *ctx, const char *command, char *reply, size_t replysz)
{
	struct service *svc = ctx;
	if (!svc->delivery) {
		snprintf(reply, replysz, "the queue runner is not running");
		return 1;
	}
	return delivery_control(svc->delivery, command, reply, replysz);
}

static size_t web_throttle_blocks_hook(void *ctx, struct throttle_block_info *out, size_t max)
{
	struct service *svc = ctx;
	return login_service_blocks(svc->logins, out, max);
}

static bool web_throttle_unblock_hook(void *ctx, const char *key)
{
	struct service *svc = ctx;
	return login_service_unblock(svc->logins, key) > 0;
}

void web_service_hooks(struct service *svc, struct web_site *site)
{
	site->hooks.ctx = svc;
	site->hooks.login = web_login_hook;
	site->hooks.queue_control = web_queue_control_hook;
	site->hooks.throttle_blocks = web_throttle_blocks_hook;
	site->hooks.throttle_unblock = web_throttle_unblock_hook;
}

void web_service_stop_logins(struct web_service *ws)
{
	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->stopping = true;
	struct web_login *l = ws->logins_new;
	ws->logins_new = NULL;
	pthread_mutex_unlock(&ws->lock);
	while (l) {   /* not started: nothing else holds them */
		struct web_login *next = l->next;
		l->next = ws->logins_running;
		ws->logins_running = l;
		l->result = LOGIN_TEMPFAIL;
		login_finish(l);
		l = next;
	}
	/* Those held for the throttle's delay are told now; those with the login
	 * service are answered by login_service_free (no delay while stopping). */
	struct web_login *held = ws->logins_running;
	while (held) {
		struct web_login *next = held->next;
		if (held->delay)
			login_finish(held);
		held = next;
	}
}

struct web_service *web_service_new(struct event_base *base, const struct conf *cf, const struct web_site *site, char *err, size_t errsz)
{
	struct web_service *ws = calloc(1, sizeof(*ws));
	unsigned n = (unsigned)cf->http_threads;
	if (!ws) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&ws->lock, NULL);
	ws->site = site;
	ws->workers = calloc(n, sizeof(*ws->workers));
	ws->free_workers = calloc(n, sizeof(*ws->free_workers));
	if (!ws->workers || !ws->free_workers) {
		snprintf(err, errsz, "out of memory");
		web_service_free(&ws);
		return NULL;
	}
	ws->n_workers = n;
	for (unsigned i = 0; i < n; i++) {
		ws->workers[i].index = i;
		if (!directory_open(&ws->workers[i].dir, cf->data_dir, err, errsz)) {
			web_service_free(&ws);
			return NULL;
		}
		ws->free_workers[ws->n_free++] = i;
	}
	ws->base = base;
	ws->login_ev = event_new(base, -1, 0, login_ev_run, ws);
	if (!ws->login_ev || !loopq_start(base, n, &ws->q, &ws->ev)) {
		snprintf(err, errsz, "cannot start the web threads");
		web_service_free(&ws);
		return NULL;
	}
	return ws;
}

void web_service_free(struct web_service **wsp)
{
	struct web_service *ws = *wsp;
	if (!ws)
		return;
	web_service_stop_logins(ws);
	loopq_stop(&ws->q, &ws->ev);   /* jobs still running finish; their answers are sent here */
	if (ws->login_ev)
		event_free(ws->login_ev);
	for (unsigned i = 0; i < ws->n_workers; i++) {
		directory_close(&ws->workers[i].dir);
		events_reader_close(&ws->workers[i].events);   /* opened by the account pages (web/outgoing.c) */
	}
	free(ws->workers);
	free(ws->free_workers);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
	*wsp = NULL;
}
