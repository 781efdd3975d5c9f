/* local.h - the local delivery agent: threads that take committed messages from the
 * queue and deliver each recipient into its Maildir, retrying temporary failures with
 * back-off.  The queue file is removed only when every recipient is done.  All of its
 * disk work runs on its own threads, never on the event loop. */
#ifndef POSTERN_DELIVERY_LOCAL_H
#define POSTERN_DELIVERY_LOCAL_H

struct conf;
struct queue;
struct delivery;

/* Starts the threads and schedules every message already in queue/active/. */
struct delivery *delivery_start(const struct conf *c, struct queue *q);
/* A message was committed (thread-safe). */
void delivery_enqueue(struct delivery *d, const char *qid);
/* Finish the current attempts and stop; undelivered messages stay queued. */
void delivery_stop(struct delivery **d);

#endif
