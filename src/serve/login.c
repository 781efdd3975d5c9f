/* login.c - the transport side of logins, shared by the SMTP and POP3 adapters:
 * a session's password check goes to the login service (auth/login.h: its threads,
 * the throttle, the log line), the connection is kept alive while it runs, and a
 * failure's answer is held back by a timer for as long as the throttle asks (never
 * a sleeping thread) before the session hears it. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/login.h"
#include "directory/directory.h"
#include "net/internal.h"
#include "serve/login.h"

void login_notify(void *arg)
{
	event_active(arg, EV_READ, 0);   /* thread-safe: evthread_use_pthreads() */
}

void login_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct server *srv = arg;
	login_service_run_answers(srv->logins);
}

struct throttle_verdict login_blocked(struct conn *c, const char *user)
{
	return login_service_blocked(c->srv->logins, c->addr, user);
}

/* What the session is to hear, kept while the connection waits. */
struct login_wait {
	struct conn *conn;
	login_deliver_fn *deliver;
	enum login_result result;
	char login[DIR_ADDRESS_MAX];
};

static void deliver(struct login_wait *w)
{
	struct conn *c = w->conn;
	c->busy--;
	if (c->closed || !c->session) {
		free(w);
		if (c->closed)
			conn_free(c);
		return;
	}
	w->deliver(c->session, w->result, w->login);
	free(w);
	conn_process(c);
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct login_wait *w = arg;
	struct conn *c = w->conn;
	event_free(c->delay);
	c->delay = NULL;
	deliver(w);
}

/* Loop thread: the service answered (counted and logged); tell the session, a
 * failure maybe later. */
static void answered(void *arg, const struct login_answer *a)
{
	struct login_wait *w = arg;
	struct conn *c = w->conn;
	w->result = a->result;
	snprintf(w->login, sizeof(w->login), "%s", a->login ? a->login : "");
	if (a->delay_ms && !c->closed) {
		struct timeval tv = { .tv_sec = a->delay_ms / 1000, .tv_usec = (a->delay_ms % 1000) * 1000 };
		c->delay = evtimer_new(c->srv->base, delay_cb, w);
		if (c->delay && evtimer_add(c->delay, &tv) == 0)
			return;
	}
	deliver(w);
}

void login_verify(struct conn *c, const char *mech, const char *user, const char *pass, login_deliver_fn *fn)
{
	struct login_wait *w = calloc(1, sizeof(*w));
	struct login_peer peer = { .conn_id = c->id, .addr = c->addr, .proto = c->ops->name, .tls = c->ssl != NULL };
	if (w) {
		w->conn = c;
		w->deliver = fn;
	}
	if (!w || !login_service_check(c->srv->logins, &peer, mech, user, pass, answered, w)) {
		free(w);
		fn(c->session, LOGIN_TEMPFAIL, NULL);
		return;
	}
	c->busy++;
}
