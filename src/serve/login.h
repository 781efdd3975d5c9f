/* login.h - the transport side of logins (serve/login.c), used by the protocol
 * adapters serve/smtp.c and serve/pop3.c: a session's hooks call these with its
 * connection as the context. */
#ifndef POSTERN_SERVE_LOGIN_H
#define POSTERN_SERVE_LOGIN_H

#include <event2/util.h>

#include "auth/login.h"

struct conn;

/* How an adapter tells its session the answer (smtp_session_auth_done, ...); the
 * first argument is the connection's session pointer (conn_session: the adapter's
 * per-connection state). */
typedef void login_deliver_fn(void *session, enum login_result r, const char *login);

/* The throttle's verdict for this connection's address and user (NULL: not known). */
struct throttle_verdict login_blocked(struct conn *c, const char *user);
/* Check the credentials off the loop; deliver(session, ...) later, a failure after
 * the throttle's delay; at once (TEMPFAIL) when out of memory. */
void login_verify(struct conn *c, const char *mech, const char *user, const char *pass, login_deliver_fn *deliver);
/* The login service's notify and the loop's event callback (serve/server.c). */
void login_notify(void *arg);
void login_ev_cb(evutil_socket_t fd, short what, void *arg);

#endif
