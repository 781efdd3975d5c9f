/* login.c - the transport side of logins, shared by the SMTP and POP3 adapters:
 * a session's password check goes to the login service (auth/login.h: its threads,
 * the throttle, the log line), the connection is kept alive while it runs, and a
 * failure's answer is held back by a timer for as long as the throttle asks (never
 * a sleeping thread) before the session hears it.  The connection is reached
 * through net's API only (net/server.h). */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/login.h"
#include "directory/directory.h"
#include "net/server.h"
#include "serve/login.h"
#include "serve/service.h"

void login_notify(void *arg)
{
	event_active(arg, EV_READ, 0);   /* thread-safe: evthread_use_pthreads() */
}

void login_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct service *svc = arg;
	login_service_run_answers(svc->logins);
}

struct throttle_verdict login_blocked(struct conn *c, const char *user)
{
	struct service *svc = conn_ctx(c);
	return login_service_blocked(svc->logins, conn_addr(c), user);
}

/* What the session is to hear, kept while the connection waits. */
struct login_wait {
	struct conn *conn;
	void *session;                   /* the adapter's state: deliver's first argument */
	login_deliver_fn *deliver;
	enum login_result result;
	char login[DIR_ADDRESS_MAX];
};

static void deliver(void *arg)
{
	struct login_wait *w = arg;
	struct conn *c = w->conn;
	if (!conn_unbusy(c)) {   /* the client went away meanwhile */
		free(w);
		return;
	}
	w->deliver(w->session, w->result, w->login);
	free(w);
	conn_process(c);
}

/* Loop thread: the service answered (counted and logged); tell the session, a
 * failure maybe later. */
static void answered(void *arg, const struct login_answer *a)
{
	struct login_wait *w = arg;
	struct conn *c = w->conn;
	w->result = a->result;
	snprintf(w->login, sizeof(w->login), "%s", a->login ? a->login : "");
	if (a->delay_ms && !conn_closed(c) && conn_after(c, a->delay_ms, deliver, w))
		return;
	deliver(w);
}

void login_verify(struct conn *c, const char *mech, const char *user, const char *pass, login_deliver_fn *fn)
{
	struct service *svc = conn_ctx(c);
	void *session = conn_session(c);
	struct login_wait *w = calloc(1, sizeof(*w));
	struct login_peer peer = { .conn_id = conn_id(c), .addr = conn_addr(c), .proto = conn_protocol(c),
		.tls = conn_tls_active(c) };
	if (w) {
		w->conn = c;
		w->session = session;
		w->deliver = fn;
	}
	if (!w || !login_service_check(svc->logins, &peer, mech, user, pass, answered, w)) {
		free(w);
		fn(session, LOGIN_TEMPFAIL, NULL);
		return;
	}
	conn_busy(c);
}
