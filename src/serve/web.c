/* web.c - the adapter between the HTTP transport (net/http.h) and the web room
 * (web/web.h): each request the transport hands over becomes a job on the web
 * threads (a pool of their own, [http] threads, so that a slow directory answer
 * never waits behind an fsync or a login), which routes it with web_handle using
 * that thread's struct web_worker (its own directory handle, see service.h); the
 * answer goes back to the transport on the loop thread.  At shutdown the jobs still
 * running finish and are answered before the transport is freed (server.c). */
#include "serve/service.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "net/http.h"
#include "util/log.h"
#include "serve/loopq.h"
#include "util/workq.h"
#include "web/web.h"

struct web_service {
	const struct web_site *site;
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
	if (!loopq_start(base, n, &ws->q, &ws->ev)) {
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
	loopq_stop(&ws->q, &ws->ev);   /* jobs still running finish; their answers are sent here */
	for (unsigned i = 0; i < ws->n_workers; i++)
		directory_close(&ws->workers[i].dir);
	free(ws->workers);
	free(ws->free_workers);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
	*wsp = NULL;
}
