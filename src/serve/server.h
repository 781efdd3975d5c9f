/* server.h - `postern serve`: the composition root that builds every room the
 * running server needs (queue, directory, delivery, auth, the protocol adapters)
 * and hands the listeners to the transport (net/). */
#ifndef POSTERN_SERVE_SERVER_H
#define POSTERN_SERVE_SERVER_H

struct conf;

/* Bind, drop privileges, serve until SIGTERM/SIGINT.  Returns the exit status. */
int server_run(const struct conf *c);

#endif
