/* server.h - the listeners and connections: libevent, sockets, TLS, timeouts,
 * connection limits.  The only room that touches sockets; it knows no protocol:
 * each listener's protocol hands it a table of operations (struct proto_ops).
 * The composition root (serve/server.c) builds the server and drives these. */
#ifndef POSTERN_NET_SERVER_H
#define POSTERN_NET_SERVER_H

#include <stdbool.h>

struct server;
struct conf_listener;
struct proto_ops;

/* Watch the bound, listening socket fd for listener cl, speaking the protocol of
 * ops.  false: fd is closed and the error logged. */
bool server_listen(struct server *srv, const struct conf_listener *cl, const struct proto_ops *ops, int fd);
/* Shutdown begins: accept no more connections; tell idle clients the server stops. */
void server_stop_accepting(struct server *srv);
/* Free every connection and listener (the jobs that pointed at them are finished). */
void server_close_all(struct server *srv);

#endif
