/* login.c - the login front end shared by every protocol (see login.h): the SASL
 * steps and the throttle's verdict in one exchange, so that SMTP and POP3 differ
 * only in their words; and the login service, which checks credentials on its own
 * threads, counts every outcome in the throttle and logs it. */
#include "auth/login.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/credentials.h"
#include "auth/password.h"
#include "directory/directory.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/workq.h"

static struct throttle_verdict ask_throttle(const struct login_hooks *h, const char *user)
{
	struct throttle_verdict open = { THROTTLE_OPEN, 0 };
	return h->blocked ? h->blocked(h->ctx, user) : open;
}

enum login_transport login_transport_check(const struct login_listener *l)
{
	if (l->secure || l->allow_plaintext)
		return LOGIN_TRANSPORT_OK;
	return l->tls_offered ? LOGIN_NEEDS_STARTTLS : LOGIN_NEEDS_TLS_PORT;
}

struct throttle_verdict login_precheck(const struct login_hooks *h)
{
	struct throttle_verdict v = ask_throttle(h, NULL);
	if (v.block != THROTTLE_OPEN)
		metrics_count(METRIC_LOGINS, "throttled", 1);
	return v;
}

/* The credentials are complete: may this client try them? */
static enum login_step credentials_complete(struct login_exchange *x, const struct login_hooks *h)
{
	snprintf(x->user, sizeof(x->user), "%s", x->sasl.user);
	x->verdict = ask_throttle(h, x->user);
	if (x->verdict.block != THROTTLE_OPEN) {
		metrics_count(METRIC_LOGINS, "throttled", 1);
		sasl_clear(&x->sasl);
		return LOGIN_THROTTLED;
	}
	x->ready = true;
	return LOGIN_CHECK;
}

static enum login_step progress(struct login_exchange *x, const struct login_hooks *h, enum sasl_status st)
{
	switch (st) {
	case SASL_CONTINUE:
		return LOGIN_SEND_CHALLENGE;
	case SASL_DONE:
		return credentials_complete(x, h);
	case SASL_CANCELLED:
		sasl_clear(&x->sasl);
		return LOGIN_CANCELLED;
	case SASL_BAD_BASE64:
		sasl_clear(&x->sasl);
		return LOGIN_BAD_BASE64;
	case SASL_MALFORMED:
		sasl_clear(&x->sasl);
		return LOGIN_MALFORMED;
	case SASL_AUTHZID:
		sasl_clear(&x->sasl);
		return LOGIN_AUTHZID;
	}
	sasl_clear(&x->sasl);
	return LOGIN_MALFORMED;
}

enum login_step login_start(struct login_exchange *x, const struct login_hooks *h, enum sasl_mech m,
	bool has_initial, const char *initial, size_t n)
{
	login_clear(x);
	snprintf(x->mech, sizeof(x->mech), "%s", sasl_mech_name(m));
	return progress(x, h, sasl_start(&x->sasl, m, has_initial, initial, n));
}

enum login_step login_answer(struct login_exchange *x, const struct login_hooks *h, const char *line, size_t n)
{
	return progress(x, h, sasl_step(&x->sasl, line, n));
}

enum login_step login_password(struct login_exchange *x, const struct login_hooks *h, const char *mech,
	const char *user, const char *pass, size_t passlen)
{
	login_clear(x);
	snprintf(x->mech, sizeof(x->mech), "%s", mech);
	snprintf(x->sasl.user, sizeof(x->sasl.user), "%s", user);
	if (passlen >= sizeof(x->sasl.pass))
		passlen = sizeof(x->sasl.pass) - 1;
	memcpy(x->sasl.pass, pass, passlen);
	x->sasl.pass[passlen] = '\0';
	return credentials_complete(x, h);
}

const char *login_challenge(const struct login_exchange *x)
{
	return sasl_challenge(&x->sasl);
}

void login_submit(struct login_exchange *x, const struct login_hooks *h)
{
	if (!x->ready)
		return;
	x->ready = false;
	/* Copies on the stack: the hook may answer at once, and the session's answer
	 * path may clear the exchange before the hook returns. */
	char mech[LOGIN_MECH_MAX], user[SASL_USER_MAX + 1], pass[SASL_PASS_MAX + 1];
	memcpy(mech, x->mech, sizeof(mech));
	memcpy(user, x->sasl.user, sizeof(user));
	memcpy(pass, x->sasl.pass, sizeof(pass));
	sasl_clear(&x->sasl);
	h->verify(h->ctx, mech, user, pass);
	explicit_bzero(pass, sizeof(pass));
}

void login_block_end(time_t until, char *out, size_t outsz)
{
	struct tm tm;
	gmtime_r(&until, &tm);
	strftime(out, outsz, "%H:%M UTC", &tm);
}

void login_clear(struct login_exchange *x)
{
	sasl_clear(&x->sasl);
	explicit_bzero(x->user, sizeof(x->user));
	memset(x, 0, sizeof(*x));
}

/* --- the login service ------------------------------------------------------- */

struct login_service {
	struct directory *dir;
	struct workq *queue;
	struct throttle *throttle;
	struct credential_policy policy;
	void (*recorded)(void *arg, enum login_record what, const char *addr, const char *user, time_t at);
	void *recorded_arg;
	char dummy_hash[PASSWORD_HASH_MAX];   /* verified for unknown users: the same timing */
};

struct login_service *login_service_new(const struct login_service_config *cfg)
{
	struct login_service *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return NULL;
	ls->dir = cfg->dir;
	ls->recorded = cfg->recorded;
	ls->recorded_arg = cfg->recorded_arg;
	if (!password_hash("postern-timing-equaliser", ls->dummy_hash, sizeof(ls->dummy_hash)))
		ls->dummy_hash[0] = '\0';
	ls->policy = (struct credential_policy){
		.dummy_hash = ls->dummy_hash, .cache_ttl = cfg->cache_ttl, .legacy_app_passwords = cfg->legacy_app_passwords,
	};
	ls->throttle = throttle_new(&cfg->throttle);
	ls->queue = workq_new(cfg->threads ? cfg->threads : 1, cfg->notify, cfg->notify_arg);
	if (!ls->throttle || !ls->queue) {
		login_service_free(&ls);
		return NULL;
	}
	return ls;
}

void login_service_free(struct login_service **lsp)
{
	struct login_service *ls = *lsp;
	if (!ls)
		return;
	workq_free(&ls->queue);   /* answers what is still running */
	throttle_free(&ls->throttle);
	explicit_bzero(ls->dummy_hash, sizeof(ls->dummy_hash));
	free(ls);
	*lsp = NULL;
}

void login_service_run_answers(struct login_service *ls)
{
	if (ls && ls->queue)
		workq_run_done(ls->queue);
}

struct throttle_verdict login_service_blocked(struct login_service *ls, const char *addr, const char *user)
{
	return throttle_check(ls->throttle, addr, user, time(NULL));
}

size_t login_service_blocks(struct login_service *ls, struct throttle_block_info *out, size_t max)
{
	return ls ? throttle_blocks(ls->throttle, time(NULL), out, max) : 0;
}

size_t login_service_unblock(struct login_service *ls, const char *key)
{
	if (!ls)
		return 0;
	time_t now = time(NULL);
	if (ls->recorded)
		ls->recorded(ls->recorded_arg, LOGIN_RECORD_UNBLOCK, "", key, now);
	return throttle_unblock(ls->throttle, key, now);
}

bool login_service_shared(const struct login_service *ls)
{
	return ls && ls->recorded;
}

struct throttle *login_service_throttle(struct login_service *ls)
{
	return ls->throttle;
}

struct check_job {
	struct login_service *ls;
	uint64_t conn_id;
	char addr[64];
	char proto[16];
	bool tls;
	bool primary_only;
	char mech[LOGIN_MECH_MAX];
	char user[SASL_USER_MAX + 1];
	char pass[SASL_PASS_MAX + 1];
	struct credential_result result;
	login_answer_fn *answered;
	void *arg;
	long long deadline_ms;   /* directory_request_deadline() at arrival: the queue's wait counts */
};

/* Login thread: one hash, whatever the account (auth/credentials.h). */
static void check_work(void *arg)
{
	struct check_job *j = arg;
	struct credential_policy policy = j->ls->policy;
	policy.primary_only = j->primary_only;
	directory_thread_deadline(j->deadline_ms);
	credentials_check(j->ls->dir, &policy, j->user, j->pass, &j->result);
	directory_thread_deadline(0);   /* a bookkeeping write: its own full timeout */
	explicit_bzero(j->pass, sizeof(j->pass));
	if (j->result.outcome == CRED_OK && strncmp(j->result.which, "app:", 4) == 0)
		directory_app_password_used(j->ls->dir, j->result.canonical, j->result.which + 4);
}

/* Loop thread: count the result, log it, answer. */
static void check_done(void *arg)
{
	struct check_job *j = arg;
	struct throttle *t = j->ls->throttle;
	struct login_answer a = { .login = j->result.canonical };
	char q[400];
	log_quote(q, sizeof(q), j->user, strlen(j->user), 200);
	if (j->result.outcome == CRED_OK) {
		/* The name as the client typed it, as for failures and checks: the pair is
		 * what that device sends. */
		time_t now = time(NULL);
		throttle_success(t, j->addr, j->user, now);
		if (j->ls->recorded)
			j->ls->recorded(j->ls->recorded_arg, LOGIN_RECORD_OK, j->addr, j->user, now);
		log_event(LOG_INFO, "login", "conn=%llu client=%s proto=%s user=%s mech=%s password=%s%s tls=%s",
			(unsigned long long)j->conn_id, j->addr, j->proto, j->result.canonical, j->mech, j->result.which,
			j->result.legacy ? " legacy=yes hint=\"an app password in the old format: reissue it (docs/operations.md)\"" : "",
			j->tls ? "yes" : "no");
		a.result = LOGIN_OK;
		metrics_count(METRIC_LOGINS, "success", 1);
	} else if (j->result.outcome == CRED_TEMPFAIL) {
		log_event(LOG_ERR, "login_failed", "conn=%llu client=%s user=%s reason=\"directory unavailable\"",
			(unsigned long long)j->conn_id, j->addr, q);
		a.result = LOGIN_TEMPFAIL;
		metrics_count(METRIC_LOGINS, "tempfail", 1);
	} else {
		time_t now = time(NULL);
		a.delay_ms = throttle_failure(t, j->addr, j->user, now);
		if (j->ls->recorded)
			j->ls->recorded(j->ls->recorded_arg, LOGIN_RECORD_FAILED, j->addr, j->user, now);
		log_event(LOG_WARN, "login_failed", "conn=%llu client=%s proto=%s user=%s mech=%s reason=\"%s\" delay_ms=%u",
			(unsigned long long)j->conn_id, j->addr, j->proto, q, j->mech,
			j->result.outcome == CRED_NO_USER ? "no such user" : "wrong password", a.delay_ms);
		a.result = LOGIN_FAILED;
		metrics_count(METRIC_LOGINS, "failure", 1);
	}
	j->answered(j->arg, &a);
	explicit_bzero(j, sizeof(*j));
	free(j);
}

bool login_service_check(struct login_service *ls, const struct login_peer *peer, const char *mech,
	const char *user, const char *pass, login_answer_fn *answered, void *arg)
{
	struct check_job *j = calloc(1, sizeof(*j));
	if (!j)
		return false;
	j->ls = ls;
	j->conn_id = peer->conn_id;
	snprintf(j->addr, sizeof(j->addr), "%s", peer->addr ? peer->addr : "");
	snprintf(j->proto, sizeof(j->proto), "%s", peer->proto ? peer->proto : "");
	j->tls = peer->tls;
	j->primary_only = peer->primary_only;
	snprintf(j->mech, sizeof(j->mech), "%s", mech);
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->pass, sizeof(j->pass), "%s", pass);
	j->answered = answered;
	j->arg = arg;
	j->deadline_ms = directory_request_deadline();
	workq_push(ls->queue, check_work, check_done, j);
	return true;
}
