/* server.h - the listeners and connections: libevent, sockets, timeouts, connection
 * limits, privilege drop.  The only room that touches sockets.  It wires SMTP
 * sessions to the directory, the policy and the queue. */
#ifndef POSTERN_NET_SERVER_H
#define POSTERN_NET_SERVER_H

struct conf;

/* Bind, drop privileges, serve until SIGTERM/SIGINT.  Returns the exit status. */
int server_run(const struct conf *c);

#endif
