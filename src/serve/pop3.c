/* pop3.c - the POP3 adapter: what a POP3 session asks of the rest of the server: logins (shared
 * with SMTP through serve/login.c and the login service), opening the
 * user's Maildir on a worker thread, and POP-before-SMTP bookkeeping.  The transport
 * (net/) sees it only through pop3_proto_ops. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "net/server.h"
#include "pop3/session.h"
#include "serve/login.h"
#include "serve/service.h"
#include "serve/state_feed.h"
#include "store/layout.h"
#include "store/mailbox.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/workq.h"

/* --- the session as the connection code sees it ---------------------------- */

/* One POP3 connection as this adapter sees it. */
struct pop3_conn {
	struct service *svc;
	struct conn *conn;
	struct pop3_session *session;
	unsigned idle;   /* seconds: the bridge's too, once proxied */
	char login[DIR_ADDRESS_MAX];   /* the canonical login, while proxy.c looks for its home node */
};

static struct pop3_session *sess(const void *s) { return ((const struct pop3_conn *)s)->session; }

static size_t op_feed(void *s, const void *p, size_t n) { return pop3_session_feed(sess(s), p, n); }
static struct buf *op_output(void *s) { return pop3_session_output(sess(s)); }
static bool op_wants_close(const void *s) { return pop3_session_wants_close(sess(s)); }
static bool op_waiting(const void *s) { return pop3_session_waiting(sess(s)); }
static bool op_wants_tls(const void *s) { return pop3_session_wants_tls(sess(s)); }
static void op_tls_started(void *s, const char *d) { pop3_session_tls_started(sess(s), d); }
static void op_timeout(void *s) { pop3_session_timeout(sess(s)); }
static void op_shutdown(void *s) { pop3_session_shutdown(sess(s)); }
static void op_disconnected(void *s) { pop3_session_disconnected(sess(s)); }
static bool op_streaming(const void *s) { return pop3_session_streaming(sess(s)); }
static void op_pump(void *s) { pop3_session_pump(sess(s)); }
static bool op_line_pending(const void *s) { return pop3_session_line_pending(sess(s)); }
static const char *op_login(const void *s) { return pop3_session_login(sess(s)); }

static void op_deadline(void *s, enum deadline_kind which, unsigned long long limit)
{
	enum pop3_deadline d = which == DEADLINE_LINE ? POP3_DEADLINE_LINE : which == DEADLINE_LOGIN
		? POP3_DEADLINE_LOGIN : POP3_DEADLINE_SESSION;
	pop3_session_deadline(sess(s), d, limit);
}

static void op_destroy(void *s)
{
	struct pop3_conn *pc = s;
	pop3_session_free(&pc->session);
	free(pc);
}



/* --- POP-before-SMTP --------------------------------------------------------- */

static unsigned addr_hash(const char *s)
{
	return hash_fnv1a(s) % POP_LOGIN_BUCKETS;
}

/* The table is written on the loop (a POP3 login here) and by the state feed's thread
 * (one on another node), and read by the decision threads. */
static pthread_mutex_t pop_logins_lock = PTHREAD_MUTEX_INITIALIZER;

void pop3_login_seen(struct service *srv, const char *addr, time_t when)
{
	unsigned h = addr_hash(addr);
	time_t window = (time_t)srv->conf->pop_before_smtp;
	pthread_mutex_lock(&pop_logins_lock);
	for (struct pop_login **pp = &srv->pop_logins[h]; *pp;) {
		struct pop_login *p = *pp;
		if (strcmp(p->addr, addr) == 0) {
			if (when > p->when)
				p->when = when;
			pthread_mutex_unlock(&pop_logins_lock);
			return;
		}
		if (window && when - p->when > window) {   /* its window is over: the chain stays short */
			*pp = p->next;
			free(p);
		} else {
			pp = &p->next;
		}
	}
	struct pop_login *p = calloc(1, sizeof(*p));
	if (p) {
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
		p->when = when;
		p->next = srv->pop_logins[h];
		srv->pop_logins[h] = p;
	}
	pthread_mutex_unlock(&pop_logins_lock);
}

static void remember_login(struct service *srv, const char *addr)
{
	time_t now = time(NULL);
	pop3_login_seen(srv, addr, now);
	state_feed_pop_login(srv->state, addr, now);
}

long long pop3_login_age(struct service *srv, const char *addr)
{
	long long age = -1;
	pthread_mutex_lock(&pop_logins_lock);
	for (struct pop_login *p = srv->pop_logins[addr_hash(addr)]; p; p = p->next)
		if (strcmp(p->addr, addr) == 0) {
			age = (long long)(time(NULL) - p->when);
			if (age < 0)
				age = 0;   /* a login on another node whose clock is a little ahead */
			break;
		}
	pthread_mutex_unlock(&pop_logins_lock);
	return age;
}

void pop3_forget_logins(struct service *srv)
{
	pthread_mutex_lock(&pop_logins_lock);
	for (size_t i = 0; i < POP_LOGIN_BUCKETS; i++)
		while (srv->pop_logins[i]) {
			struct pop_login *n = srv->pop_logins[i]->next;
			free(srv->pop_logins[i]);
			srv->pop_logins[i] = n;
		}
	pthread_mutex_unlock(&pop_logins_lock);
}

/* --- hooks ------------------------------------------------------------------- */

static struct throttle_verdict hook_auth_blocked(void *ctx, const char *user)
{
	struct pop3_conn *pc = ctx;
	return login_blocked(pc->conn, user);
}

/* The home node's answer to a proxied login (proxy.c): passed on, then the bytes
 * are bridged; or the refusal naming the node. */
static bool proxied(void *arg, struct proxy_outcome *o)
{
	struct pop3_conn *pc = arg;
	char err[200];
	switch (o->kind) {
	case PROXY_LOCAL:
		pop3_session_auth_done(pc->session, LOGIN_OK, pc->login, 0);
		return true;
	case PROXY_CONNECTED:
		pop3_session_proxy_done(pc->session, POP3_PROXY_OK, o->node, o->text);
		conn_flush(pc->conn);
		if (!conn_bridge(pc->conn, &o->peer, pc->idle, err, sizeof(err))) {
			log_event(LOG_ERR, "bridge_error", "conn=%llu error=\"%s\"", (unsigned long long)conn_id(pc->conn), err);
			conn_close(pc->conn);
			return false;
		}
		return true;
	case PROXY_REFUSED:
		pop3_session_proxy_done(pc->session, POP3_PROXY_REFUSED, o->node, o->text);
		return true;
	case PROXY_UNAVAILABLE:
		pop3_session_proxy_done(pc->session, POP3_PROXY_UNAVAILABLE, o->node, o->text);
		return true;
	}
	return true;
}

/* The login service's answer (serve/login.c), told to the session; on a node of a
 * cluster a right password first goes to proxy.c (the mailbox may live elsewhere). */
static void tell_login(void *state, enum login_result r, const char *login)
{
	struct pop3_conn *pc = state;
	if (r == LOGIN_OK && proxy_login(pc->svc, pc->conn, PROXY_POP3, login, proxied, pc)) {
		snprintf(pc->login, sizeof(pc->login), "%s", login);
		return;
	}
	pop3_session_auth_done(pc->session, r, login, 0);
}

static bool hook_xclient(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz)
{
	struct pop3_conn *pc = ctx;
	return proxy_xclient_check(pc->svc, pc->conn, "pop3", token, addr, login, why, whysz);
}

static void hook_auth_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct pop3_conn *pc = ctx;
	login_verify(pc->conn, mech, user, pass, tell_login);
}

struct open_job {
	struct pop3_conn *pc;
	struct directory *dir;
	const struct conf *conf;
	char user[DIR_ADDRESS_MAX];
	struct mailbox *mb;
	enum pop3_mailbox_result result;
	char err[300];
};

/* Worker thread: find the Maildir and lock it (a scan of cur/ and new/). */
static void open_work(void *arg)
{
	struct open_job *j = arg;
	char path[1400];
	struct dir_recipient dr;
	directory_resolve_recipient(j->dir, j->conf, j->user, &dr);
	bool found = directory_recipient_has_mailbox(&dr);
	if (dr.kind == DIR_RCPT_TEMPFAIL ||
		(found && !store_mailbox_path(j->conf->data_dir, dr.mailbox.domain, dr.mailbox.local, path, sizeof(path)))) {
		j->result = POP3_MAILBOX_TEMP;
		snprintf(j->err, sizeof(j->err), "the user directory could not be read");
		return;
	}
	if (!found) {
		j->result = POP3_MAILBOX_PERM;
		snprintf(j->err, sizeof(j->err), "no mailbox for %.200s", j->user);
		return;
	}
	switch (mailbox_open(path, &j->mb, j->err, sizeof(j->err))) {
	case MAILBOX_OK:
		j->result = POP3_MAILBOX_OK;
		break;
	case MAILBOX_IN_USE:
		j->result = POP3_MAILBOX_IN_USE;
		break;
	case MAILBOX_TEMP:
		j->result = POP3_MAILBOX_TEMP;
		break;
	}
}

static void open_done(void *arg)
{
	struct open_job *j = arg;
	struct pop3_conn *pc = j->pc;
	struct conn *c = pc->conn;
	if (j->result != POP3_MAILBOX_OK)
		log_event(LOG_WARN, "pop3_mailbox_error", "conn=%llu user=%s result=%d error=\"%s\"", (unsigned long long)conn_id(c),
			j->user, (int)j->result, j->err);
	else if (pc->svc->conf->pop_before_smtp)
		remember_login(pc->svc, conn_addr(c));
	if (!conn_unbusy(c)) {
		if (j->mb)
			mailbox_close(&j->mb);
		free(j);
		return;
	}
	pop3_session_mailbox_done(pc->session, j->result, &pop3_maildir_ops, j->mb);
	free(j);
	conn_process(c);
}

static void hook_mailbox_open(void *ctx, const char *user)
{
	struct pop3_conn *pc = ctx;
	struct open_job *j = calloc(1, sizeof(*j));
	if (!j) {
		pop3_session_mailbox_done(pc->session, POP3_MAILBOX_TEMP, NULL, NULL);
		return;
	}
	j->pc = pc;
	j->dir = pc->svc->dir;
	j->conf = pc->svc->conf;
	snprintf(j->user, sizeof(j->user), "%s", user);
	conn_busy(pc->conn);
	workq_push(pc->svc->commitq, open_work, open_done, j);
}

static bool op_start(struct conn *c, const char *tls_desc)
{
	struct service *srv = conn_ctx(c);
	const struct conf *cf = srv->conf;
	const struct conf_listener *l = conn_listener(c);
	struct pop3_conn *pc = calloc(1, sizeof(*pc));
	if (!pc) {
		conn_close(c);
		return false;
	}
	pc->svc = srv;
	pc->conn = c;
	struct pop3_conn_info info = {
		.conn_id = conn_id(c), .run_id = srv->run_id, .hostname = cf->hostname, .client_addr = conn_addr(c), .listener = l->name,
		.tls_offered = l->tls == TLS_STARTTLS && conn_tls_available(c), .tls_active = tls_desc != NULL,
		.tls_description = tls_desc, .allow_plaintext_auth = l->allow_plaintext_auth,
	};
	/* RFC 1939 §3: an autologout timer of at least 10 minutes. */
	unsigned idle = cf->idle_timeout > 600 ? (unsigned)cf->idle_timeout : 600;
	struct pop3_limits lim = { .max_line = 512, .max_bad_commands = (unsigned)cf->bad_commands, .idle_timeout = idle };
	struct pop3_hooks hooks = {
		.ctx = pc, .auth_blocked = hook_auth_blocked, .auth_verify = hook_auth_verify,
		.mailbox_open = hook_mailbox_open, .xclient = srv->node_secret_len ? hook_xclient : NULL,
	};
	pc->idle = idle;
	pc->session = pop3_session_new(&info, &lim, &hooks);
	if (!pc->session) {
		free(pc);
		conn_close(c);
		return false;
	}
	conn_set_session(c, pc);
	conn_set_idle_timeout(c, idle);
	pop3_session_start(pc->session);
	conn_flush(c);
	return true;
}

/* RFC 2449 §8, RFC 3206: a refused connection gets -ERR with a response code in
 * place of the +OK greeting, then the server closes. */
static void op_refuse_busy(struct buf *out, const struct conf *cf, enum conn_refusal why)
{
	switch (why) {
	case CONN_REFUSE_TOTAL:
		pop3_refusal_line(out, POP3_REFUSE_BUSY, cf->hostname, cf->connections);
		break;
	case CONN_REFUSE_ADDRESS:
		pop3_refusal_line(out, POP3_REFUSE_ADDRESS_BUSY, cf->hostname, cf->connections_per_ip);
		break;
	case CONN_REFUSE_RESERVED:
		pop3_refusal_line(out, POP3_REFUSE_RESERVED, cf->hostname, 0);
		break;
	}
}

static void op_refuse_plaintext(struct buf *out, const struct conf *cf)
{
	pop3_refusal_line(out, POP3_REFUSE_TLS_EXPECTED, cf->hostname, 0);
}

const struct proto_ops pop3_proto_ops = {
	.name = "pop3", .start = op_start, .refuse_busy = op_refuse_busy, .refuse_plaintext = op_refuse_plaintext,
	.feed = op_feed, .output = op_output, .wants_close = op_wants_close,
	.waiting = op_waiting, .wants_tls = op_wants_tls, .tls_started = op_tls_started,
	.timeout = op_timeout, .shutdown = op_shutdown, .disconnected = op_disconnected,
	.destroy = op_destroy, .streaming = op_streaming, .pump = op_pump,
	.line_pending = op_line_pending, .login = op_login, .deadline = op_deadline,
};
