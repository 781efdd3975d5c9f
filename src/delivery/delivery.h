/* delivery.h - the queue runner: threads that take committed messages and deliver
 * every recipient, locally or remotely, keeping a durable state per recipient
 * (queue/state/<id>: pending, delivered, failed; attempts, next try, last reply).
 * Temporary failures are retried with doubling back-off (retry_min .. retry_max);
 * after max_lifetime the sender gets a failure report; after delay_notice, once, a
 * delay notice.  A restart resumes where it stopped; a recipient already delivered
 * is never delivered again.  Disk and network work run on these threads only; so do
 * the chores: removing leftovers (at start, then every [queue] cleanup_interval) and
 * the one postmaster notice per batch of messages moved to queue/failed/. */
#ifndef POSTERN_DELIVERY_DELIVERY_H
#define POSTERN_DELIVERY_DELIVERY_H

#include <stddef.h>

struct conf;
struct events;
struct queue;
struct relay_credentials;
struct delivery;

/* Starts the threads and schedules every message already in queue/active/.  ev: the
 * event store that hears each outcome (delivered, deferred, bounced, delay notice,
 * and the admin's hold/release/delete/bounce); NULL: none. */
struct delivery *delivery_start(const struct conf *c, struct queue *q, const struct relay_credentials *creds,
	struct events *ev);
/* A message was committed (thread-safe). */
void delivery_enqueue(struct delivery *d, const char *qid);
/* A stop begins (SIGTERM): no new attempt starts; those running may finish until
 * [server] shutdown_timeout from now.  Thread-safe, idempotent. */
void delivery_stop_begin(struct delivery *d);
/* Stop: begins the stop if not begun, waits for running attempts until the
 * deadline, then cuts off outbound transactions still running (their recipients
 * stay pending, untouched) and frees everything.  Undelivered messages stay queued. */
void delivery_stop(struct delivery **d);

/* [cluster]: the shared secret the node tokens of LMTP to home nodes are made with
 * (node_lmtp.h); called once after delivery_start, before any message is for
 * another node (the bytes are copied). */
void delivery_set_node_secret(struct delivery *d, const unsigned char *secret, size_t len);

/* The messages in the queue and the arrival (unix seconds) of the oldest, 0 when
 * empty (thread-safe; for the node registry's heartbeat). */
void delivery_queue_counts(struct delivery *d, long long *messages, long long *oldest);

/* Admin commands (thread-safe; disk work: call off the event loop):
 *   "flush"             every message: try now
 *   "retry QID"         one message: try now
 *   "hold QID"          no delivery until released
 *   "release QID"
 *   "delete QID"        remove silently
 *   "bounce QID"        remove, returning it to the sender with a report
 *   "requeue QID"       move it from queue/failed/ back, every recipient pending
 *   "inflight"          "delivering QID WHERE ..." for each message a thread is on
 *                       (WHERE: the server being talked to, "mx1.example.org[192.0.2.25]:25" or
 *                       "relay+smarthost.example:587"; "MX+of+example.org" while its MX are
 *                       looked up; "local+mailbox"; spaces written as '+')
 * Writes a one-line answer into reply; returns 0 on success, 1 on failure. */
int delivery_control(struct delivery *d, const char *command, char *reply, size_t replysz);

#endif
