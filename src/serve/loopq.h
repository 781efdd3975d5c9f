/* loopq.h - worker threads whose finished jobs are answered on the event loop.
 *
 * util/workq.h runs jobs on threads and leaves it to its owner to wake the loop; every
 * pool of serve/ (commits, decisions, web requests, the limits' saves and notices)
 * wakes it the same way: an event that a worker activates (event_active is thread-safe
 * once evthread_use_pthreads() ran) and whose callback runs the done callbacks. */
#ifndef POSTERN_SERVE_LOOPQ_H
#define POSTERN_SERVE_LOOPQ_H

#include <stdbool.h>

struct event;
struct event_base;
struct workq;

/* Start `threads` workers on base's loop: *q gets the queue, *ev the event that wakes
 * the loop (its callback reads *q, so q must stay where it is).  False (both NULL)
 * when either cannot be made. */
bool loopq_start(struct event_base *base, unsigned threads, struct workq **q, struct event **ev);
/* Wait for running jobs and run their done callbacks (workq_free), then free the
 * event.  Safe on what loopq_start left NULL, and twice. */
void loopq_stop(struct workq **q, struct event **ev);

#endif
