/* control.h - the admin control socket, data_dir/run/control.sock (mode 0600): the
 * `postern queue flush|retry|hold|release|delete|bounce|requeue` commands reach the
 * running server here, so the queue runner changes its own state safely, and
 * `queue list` asks which messages are being delivered right now ("inflight"), and
 * `postern user unblock ADDRESS|IP` lifts a login throttle's block ("unblock KEY").  One
 * line in, one line out (at most 16 KiB).  The work runs on a worker thread, never on the event loop. */
#ifndef POSTERN_SERVE_CONTROL_H
#define POSTERN_SERVE_CONTROL_H

#include <stddef.h>

struct event_base;
struct workq;
struct delivery;
struct login_service;
struct control;

struct control *control_start(struct event_base *base, const char *data_dir, struct workq *q, struct delivery *d,
	struct login_service *logins, char *err, size_t errlen);
void control_stop(struct control **c);

/* Client side: returns the server's status (0 ok, 1 refused) with its answer in
 * reply, or -1 when no server listens (reply says why). */
int control_send(const char *data_dir, const char *command, char *reply, size_t replysz);

#endif
