/* loopq.c - worker threads whose done callbacks run on the event loop (loopq.h). */
#include "serve/loopq.h"

#include <event2/event.h>

#include "util/workq.h"

static void wake_loop(void *arg)
{
	event_active(arg, EV_READ, 0);   /* thread-safe: evthread_use_pthreads() */
}

static void run_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct workq **q = arg;
	if (*q)
		workq_run_done(*q);
}

bool loopq_start(struct event_base *base, unsigned threads, struct workq **q, struct event **ev)
{
	*q = NULL;
	*ev = event_new(base, -1, 0, run_done, q);
	if (*ev)
		*q = workq_new(threads, wake_loop, *ev);
	if (!*q)
		loopq_stop(q, ev);
	return *q != NULL;
}

void loopq_stop(struct workq **q, struct event **ev)
{
	workq_free(q);   /* jobs still running finish; their done callbacks run here */
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}
