/* server.h - the transport: listeners, connections, TLS, timeouts, connection
 * limits, on one libevent loop.  The only room that touches sockets, and it knows
 * no protocol: each listener's protocol (an adapter in serve/) hands it a table of
 * operations, struct proto_ops, and a context; the adapter reaches the connection
 * through the conn_* calls below.  net never calls upward except through the ops
 * table and the callbacks it is given. */
#ifndef POSTERN_NET_SERVER_H
#define POSTERN_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct conf;
struct conf_listener;
struct conn;
struct event_base;
struct net;
struct net_client;
struct tls;

/* Why a connection is refused before any session exists. */
enum conn_refusal {
	CONN_REFUSE_TOTAL,       /* [limits] connections */
	CONN_REFUSE_ADDRESS,     /* [limits] connections_per_ip */
	CONN_REFUSE_RESERVED,    /* [limits] connections_reserved: kept for new addresses */
};

/* Limits on how long a client may take (deadline.c). */
enum deadline_kind { DEADLINE_LINE, DEADLINE_DATA_RATE, DEADLINE_LOGIN, DEADLINE_SESSION, DEADLINE_TLS, DEADLINE_NONE };

/* What the connection code needs from a listener's protocol (SMTP or POP3): the
 * transport knows no protocol words.  `s` is whatever start() gave conn_set_session.
 * start, refuse_busy and refuse_plaintext act before a session exists; the refusals
 * write one line, in the client's own protocol, that is sent before closing. */
struct proto_ops {
	const char *name;
	bool (*start)(struct conn *c, const char *tls_desc);   /* create the session, greet; false: c freed */
	void (*refuse_busy)(struct buf *out, const struct conf *cf, enum conn_refusal why);
	void (*refuse_plaintext)(struct buf *out, const struct conf *cf);   /* on an implicit-TLS port */
	size_t (*feed)(void *s, const void *p, size_t n);
	struct buf *(*output)(void *s);
	bool (*wants_close)(const void *s);
	bool (*waiting)(const void *s);
	bool (*wants_tls)(const void *s);
	void (*tls_started)(void *s, const char *desc);
	void (*timeout)(void *s);
	void (*shutdown)(void *s);
	void (*disconnected)(void *s);
	void (*destroy)(void *s);
	bool (*streaming)(const void *s);   /* NULL: never streams */
	void (*pump)(void *s);
	/* For the deadlines (deadline.c). */
	bool (*line_pending)(const void *s);   /* a command line is partly received */
	bool (*in_data)(const void *s);        /* NULL: never receives message content */
	const char *(*login)(const void *s);   /* the logged-in user, or NULL */
	/* A deadline passed (not DEADLINE_TLS): reply in the protocol's words and close. */
	void (*deadline)(void *s, enum deadline_kind which, unsigned long long limit);
	/* The client's compressed stream (conn_start_deflate) cannot be inflated: say so
	 * in the protocol's words and close.  NULL: the connection is closed at once. */
	void (*input_broken)(void *s, const char *why);
};

/* Who runs the client of a connection on a unix socket (SO_PEERCRED, socket(7)). */
struct conn_peer {
	unsigned uid, gid;
	int pid;   /* 0: not known (a connection handed in with net_adopt) */
};

/* --- the transport ------------------------------------------------------------ */

/* The event loop and an empty transport (call evthread_use_pthreads() first). */
struct net *net_new(const struct conf *cf);
struct event_base *net_base(struct net *n);
/* The server's TLS contexts (net frees them); NULL: no TLS listener. */
void net_set_tls(struct net *n, struct tls *tls);
/* Watch the bound, listening socket fd for listener cl, speaking the protocol of
 * ops; ctx is handed to its connections (conn_ctx).  false: fd closed, error logged. */
bool net_listen(struct net *n, const struct conf_listener *cl, const struct proto_ops *ops, void *ctx, int fd);
/* Serve fd (a connected stream socket, e.g. one end of a socketpair) as a connection
 * of the listener cl, from peer: the maildrop pickup hands its messages through the
 * local listener this way.  On the loop's thread only.  false: fd closed (no such
 * listener, or shutting down). */
bool net_adopt(struct net *n, const struct conf_listener *cl, int fd, const struct conn_peer *peer);
/* Shutdown begins: accept no more connections, tell idle clients (ops->shutdown);
 * the loop exits once the last connection is gone.  true: none is open now. */
bool net_stop_accepting(struct net *n);
unsigned net_open_connections(const struct net *n);
/* Free every connection (the jobs that pointed at them are finished) and listener. */
void net_close_all(struct net *n);
void net_free(struct net **n);

/* --- one connection, as its protocol adapter sees it --------------------------- */

void *conn_ctx(const struct conn *c);                 /* the listener's ctx */
void conn_set_session(struct conn *c, void *session);   /* the `s` of the ops */
void *conn_session(const struct conn *c);
const char *conn_protocol(const struct conn *c);        /* its proto_ops' name */
uint64_t conn_id(const struct conn *c);
const char *conn_addr(const struct conn *c);            /* the client's address, text */
const struct conf_listener *conn_listener(const struct conn *c);
bool conn_trusted(const struct conn *c);                /* inside trusted_networks, or local */
/* On a unix socket: who the client is (SO_PEERCRED).  false: a network client. */
bool conn_peer(const struct conn *c, struct conn_peer *peer);
bool conn_tls_active(const struct conn *c);
/* With TLS active: the protocol ("TLSv1.3"), cipher and its secret bits (content
 * filters are told them); false without TLS. */
bool conn_tls_params(const struct conn *c, char *version, size_t vsz, char *cipher, size_t csz, int *bits);
unsigned conn_port(const struct conn *c);               /* the client's port; 0: unknown */
bool conn_tls_available(const struct conn *c);          /* the server has TLS contexts */
void conn_set_idle_timeout(struct conn *c, unsigned seconds);
/* Move the session's output to the socket; close once flushed if it wants to close.
 * May free c. */
void conn_flush(struct conn *c);
/* Feed buffered input to the session (after it stopped waiting).  May free c. */
void conn_process(struct conn *c);
/* Drop the connection now (freed when no job points at it). */
void conn_close(struct conn *c);
/* A job off the loop (commit, login check, mailbox, timer) points at c: it is not
 * freed, and no deadline expires, until the matching conn_unbusy. */
void conn_busy(struct conn *c);
/* The job is done.  false: the connection went away meanwhile and is now freed
 * (with its session): touch neither. */
bool conn_unbusy(struct conn *c);
bool conn_closed(const struct conn *c);
/* From now on everything sent is raw-deflate compressed (flushed after every
 * burst) and everything received is inflated (RFC 4978 §3: call it once the
 * protocol's OK to COMPRESS has been flushed; conn_flush sends it uncompressed
 * before this call).  Works over TLS too (compression runs above it).  false: not
 * started (already on, or zlib could not start: err says why). */
bool conn_start_deflate(struct conn *c, char *err, size_t errlen);
/* Call cb(arg) after ms on the loop (one such timer per connection; it is freed
 * with the connection).  false: none could be set (or one is already running). */
bool conn_after(struct conn *c, unsigned ms, void (*cb)(void *arg), void *arg);
/* The protocol is done with c: from now on its bytes are carried unchanged between
 * the client and *peer (an outbound connection from net/client.h, TLS or not, made
 * off the loop), both ways, with bounded buffers (back-pressure) and idle_seconds
 * without a byte either way closing both (bridge.c).  The session is no longer fed
 * nor flushed (flush its last reply before this call); it is destroyed with c.
 * What the client sent after its last command and what *peer had already read go
 * first.  Either side closing closes the other once what is buffered for it has
 * gone.  *peer is taken (NULL afterwards) in every case; false: not bridged (err
 * says why; compressed or mid-handshake connections cannot be), c untouched. */
bool conn_bridge(struct conn *c, struct net_client **peer, unsigned idle_seconds, char *err, size_t errlen);
bool conn_bridged(const struct conn *c);
/* The client's address as a trusted peer vouched for it (a node of the cluster
 * proxying a login, XCLIENT-style): logs, conn_addr() and the per-address
 * connection count are addr's from now on (the node that connected is logged as
 * via=).  false: not an IP address (nothing changed). */
bool conn_set_client_addr(struct conn *c, const char *addr);

#endif
