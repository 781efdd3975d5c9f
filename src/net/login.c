/* login.c - password checks for SMTP AUTH and POP3 alike: the directory lookup and
 * the (slow, by design) hash verification run on the login threads; the answer to a
 * failure may be held back by a timer (never a sleeping thread); every outcome is
 * counted by the throttle and logged. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/credentials.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "directory/directory.h"
#include "net/internal.h"
#include "util/log.h"
#include "util/workq.h"

void login_notify(void *arg)
{
	event_active(arg, EV_READ, 0);   /* thread-safe: evthread_use_pthreads() */
}

void login_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct server *srv = arg;
	if (srv->authq)
		workq_run_done(srv->authq);
}

struct throttle_verdict login_blocked(struct conn *c, const char *user)
{
	return throttle_check(c->srv->throttle, c->addr, user, time(NULL));
}

struct auth_job {
	struct conn *conn;
	char mech[8];
	char user[SASL_USER_MAX + 1];
	char pass[SASL_PASS_MAX + 1];
	struct credential_policy policy;
	struct credential_result result;
	struct directory *dir;
	unsigned delay_ms;
};

/* Login thread: one hash, whatever the account (auth/credentials.h). */
static void auth_work(void *arg)
{
	struct auth_job *j = arg;
	credentials_check(j->dir, &j->policy, j->user, j->pass, &j->result);
	explicit_bzero(j->pass, sizeof(j->pass));
	if (j->result.outcome == CRED_OK && strncmp(j->result.which, "app:", 4) == 0)
		directory_app_password_used(j->dir, j->result.canonical, j->result.which + 4);
}

static void auth_answer(struct auth_job *j)
{
	struct conn *c = j->conn;
	c->busy--;
	if (c->closed || !c->session) {
		free(j);
		if (c->closed)
			conn_free(c);
		return;
	}
	enum credential_outcome o = j->result.outcome;
	enum login_result r = o == CRED_TEMPFAIL ? LOGIN_TEMPFAIL : o == CRED_OK ? LOGIN_OK : LOGIN_FAILED;
	c->ops->login_done(c->session, r, j->result.canonical);
	free(j);
	conn_process(c);
}

static void auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct auth_job *j = arg;
	struct conn *c = j->conn;
	event_free(c->delay);
	c->delay = NULL;
	auth_answer(j);
}

/* Loop thread: count the result, log it, answer (a failure maybe later). */
static void auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct conn *c = j->conn;
	struct server *srv = c->srv;
	char q[400];
	log_quote(q, sizeof(q), j->user, strlen(j->user), 200);
	if (j->result.outcome == CRED_OK) {
		/* The name as the client typed it, as for failures and checks: the pair is
		 * what that device sends. */
		throttle_success(srv->throttle, c->addr, j->user, time(NULL));
		log_event(LOG_INFO, "login", "conn=%llu client=%s proto=%s user=%s mech=%s password=%s%s tls=%s",
			(unsigned long long)c->id, c->addr, c->ops->name, j->result.canonical, j->mech, j->result.which,
			j->result.legacy ? " legacy=yes hint=\"an app password in the old format: reissue it (docs/operations.md)\"" : "",
			c->ssl ? "yes" : "no");
	} else if (j->result.outcome == CRED_TEMPFAIL) {
		log_event(LOG_ERR, "login_failed", "conn=%llu client=%s user=%s reason=\"directory unavailable\"",
			(unsigned long long)c->id, c->addr, q);
	} else {
		j->delay_ms = throttle_failure(srv->throttle, c->addr, j->user, time(NULL));
		log_event(LOG_WARN, "login_failed", "conn=%llu client=%s proto=%s user=%s mech=%s reason=\"%s\" delay_ms=%u",
			(unsigned long long)c->id, c->addr, c->ops->name, q, j->mech,
			j->result.outcome == CRED_NO_USER ? "no such user" : "wrong password",
			j->delay_ms);
	}
	if (j->delay_ms && !c->closed) {
		struct timeval tv = { .tv_sec = j->delay_ms / 1000, .tv_usec = (j->delay_ms % 1000) * 1000 };
		c->delay = evtimer_new(srv->base, auth_delay_cb, j);
		if (c->delay && evtimer_add(c->delay, &tv) == 0)
			return;
	}
	auth_answer(j);
}

void login_verify(struct conn *c, const char *mech, const char *user, const char *pass)
{
	struct auth_job *j = calloc(1, sizeof(*j));
	if (!j) {
		c->ops->login_done(c->session, LOGIN_TEMPFAIL, NULL);
		return;
	}
	j->conn = c;
	j->dir = c->srv->auth_dir;
	j->policy = (struct credential_policy){
		.dummy_hash = c->srv->dummy_hash, .cache_ttl = (unsigned)c->srv->conf->auth_cache_ttl,
		.legacy_app_passwords = c->srv->conf->auth_legacy_app_passwords,
	};
	snprintf(j->mech, sizeof(j->mech), "%s", mech);
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->pass, sizeof(j->pass), "%s", pass);
	c->busy++;
	workq_push(c->srv->authq, auth_work, auth_done, j);
}
