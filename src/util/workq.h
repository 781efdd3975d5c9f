/* workq.h - a pool of threads for blocking work (fsync, disk writes, password hashes).
 *
 * The event loop pushes a job; a worker thread runs work(arg); the loop is then told
 * through `notify` (called from the worker thread; it must be thread-safe, e.g.
 * event_active) and calls workq_run_done(), which runs done(arg) on the loop thread. */
#ifndef POSTERN_UTIL_WORKQ_H
#define POSTERN_UTIL_WORKQ_H

struct workq;

struct workq *workq_new(unsigned threads, void (*notify)(void *), void *notify_arg);
/* Runs done callbacks of finished jobs (loop thread only). */
void workq_run_done(struct workq *q);
/* Both callbacks are required; done may free arg. */
void workq_push(struct workq *q, void (*work)(void *arg), void (*done)(void *arg), void *arg);
/* Waits for running jobs, runs remaining done callbacks, stops the threads. */
void workq_free(struct workq **q);

#endif
