/* control.h - the admin control socket, data_dir/run/control.sock (mode 0600): the
 * `postern queue flush|retry|hold|release|delete|bounce|requeue` commands reach the
 * running server here, so the queue runner changes its own state safely, and
 * `queue list` asks which messages are being delivered right now ("inflight"), and
 * `postern user unblock ADDRESS|IP` lifts a login throttle's block ("unblock KEY").  One
 * line in, one line out (at most 16 KiB).  The work runs on a worker thread, never on the event loop.
 *
 * Read-only questions about the node (control_query.c), for the cluster's tools too:
 *   "status"  node=NAME started=UNIX now=UNIX queue=N deferred=N held=N oldest=UNIX
 *             (node=- on a single server; oldest=0 when the queue is empty)
 *   "queue"   node=NAME now=UNIX, then per message a TAB and
 *             "QID STATE ARRIVAL SIZE SENDER RCPT PENDING NEXT_TRY" (SENDER, RCPT: the
 *             addresses %-escaped, RCPT the first pending recipient or "-"), and last a
 *             TAB and "total=N shown=M" (the oldest first; as many as fit the answer)
 *
 * The same protocol over the network (control_tcp.c): a listener of role control
 * (implicit TLS) where the first line is `AUTH <node token>` (auth/node_token.h, purpose
 * "control", signed with the cluster's shared secret), then one command, answered as
 * here; only the read-only commands (status, queue, inflight) are served there, the
 * rest stay on the Unix socket of the node itself. */
#ifndef POSTERN_SERVE_CONTROL_H
#define POSTERN_SERVE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct workq;
struct delivery;
struct login_service;
struct control;

struct queue;
struct proto_ops;

#define CONTROL_REPLY_MAX 16384
#define CONTROL_TOKEN_PURPOSE "control"

/* What the read-only answers say about this node. */
struct control_node {
	struct queue *queue;
	char name[33];             /* [cluster] node; "" on a single server */
	long long started;         /* unix seconds */
};

struct control *control_start(struct event_base *base, const char *data_dir, struct workq *q, struct delivery *d,
	struct login_service *logins, const struct control_node *node, char *err, size_t errlen);
void control_stop(struct control **c);

/* Client side: returns the server's status (0 ok, 1 refused) with its answer in
 * reply, or -1 when no server listens (reply says why). */
int control_send(const char *data_dir, const char *command, char *reply, size_t replysz);

/* Is the command one of the read-only ones the network listener serves? */
bool control_read_only(const char *command);
/* Run one command as the Unix socket does; answered(arg, status, reply) runs later on
 * the loop thread (never inside this call).  false: out of memory, nothing will run. */
bool control_ask(struct control *ctl, const char *command, void (*answered)(void *arg, int status, const char *reply),
	void *arg);
/* control_query.c: the answers to "status" and "queue" (the control's worker thread). */
int control_status_answer(const struct control_node *n, const char *inflight, char *reply, size_t replysz);
int control_queue_answer(const struct control_node *n, const char *inflight, char *reply, size_t replysz);

/* control_tcp.c: the listener of role control (its context: the struct service). */
extern const struct proto_ops control_proto_ops;
/* Client side: one command to a node's control listener at "host:port" ("[v6]:port"),
 * over TLS (the node's certificate is not verified: the token proves the asker, and
 * the answers are read-only), with `token` in the AUTH line, all within deadline_ms.
 * Returns the answer's status (0 ok, 1 refused) with the answer in reply, or -1 when
 * the node could not be asked (reply says why: refused, no answer in time, ...). */
int control_send_tcp(const char *hostport, const char *token, const char *command, unsigned deadline_ms, char *reply,
	size_t replysz);

#endif
