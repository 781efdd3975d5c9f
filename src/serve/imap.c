/* imap.c - the IMAP adapter: what an IMAP session asks of the rest of the server:
 * logins (shared with SMTP and POP3 through serve/login.c and the login service),
 * its jobs on the IMAP worker threads ([imap] threads: every folder command, one per
 * session at a time; contracts §H), the user's Maildir (found in the directory, on
 * a worker, with a directory handle of the pool's own), and IDLE's timer.  The
 * transport (net/) sees it only through imap_proto_ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "events/events.h"
#include "imap/session.h"
#include "net/server.h"
#include "serve/login.h"
#include "serve/loopq.h"
#include "serve/service.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "util/log.h"
#include "util/workq.h"

struct imap_service {
	struct workq *q;
	struct event *ev;
	struct directory *dir;    /* the worker threads' (service.h: one handle per group of threads) */
	const struct conf *conf;
};

struct imap_conn {
	struct service *svc;
	struct conn *conn;
	struct imap_session *session;
	bool timer_set;
	char login[DIR_ADDRESS_MAX];   /* the canonical login, while proxy.c looks for its home node */
};

static struct imap_session *sess(const void *s) { return ((const struct imap_conn *)s)->session; }

static void arm_timer(struct imap_conn *ic);
/* IDLE starts in a feed: its timer is armed there (RFC 2177: updates while idling). */
static size_t op_feed(void *s, const void *p, size_t n)
{
	struct imap_conn *ic = s;
	size_t r = imap_session_feed(ic->session, p, n);
	if (imap_session_wants_compress(ic->session)) {
		/* RFC 4978 §3: the tagged OK leaves uncompressed, everything after it compressed. */
		char err[200];
		conn_flush(ic->conn);
		bool on = conn_start_deflate(ic->conn, err, sizeof(err));
		if (!on)
			log_event(LOG_ERR, "compress_error", "conn=%llu error=\"%s\"", (unsigned long long)conn_id(ic->conn), err);
		imap_session_compress_started(ic->session, on);
	}
	arm_timer(s);
	return r;
}
static struct buf *op_output(void *s) { return imap_session_output(sess(s)); }
static bool op_wants_close(const void *s) { return imap_session_wants_close(sess(s)); }
static bool op_waiting(const void *s) { return imap_session_waiting(sess(s)); }
static bool op_wants_tls(const void *s) { return imap_session_wants_tls(sess(s)); }
static void op_tls_started(void *s, const char *d) { imap_session_tls_started(sess(s), d); }
static void op_timeout(void *s) { imap_session_timeout(sess(s)); }
static void op_shutdown(void *s) { imap_session_shutdown(sess(s)); }
static void op_disconnected(void *s) { imap_session_disconnected(sess(s)); }
static bool op_streaming(const void *s) { return imap_session_streaming(sess(s)); }
static void op_pump(void *s) { imap_session_pump(sess(s)); }
static bool op_line_pending(const void *s) { return imap_session_line_pending(sess(s)); }
static bool op_in_data(const void *s) { return imap_session_in_literal(sess(s)); }
static const char *op_login(const void *s) { return imap_session_login(sess(s)); }
static void op_input_broken(void *s, const char *why) { imap_session_input_broken(sess(s), why); }

static void op_deadline(void *s, enum deadline_kind which, unsigned long long limit)
{
	enum imap_deadline d = which == DEADLINE_LINE || which == DEADLINE_DATA_RATE ? IMAP_DEADLINE_LINE
		: which == DEADLINE_LOGIN ? IMAP_DEADLINE_LOGIN : IMAP_DEADLINE_SESSION;
	imap_session_deadline(sess(s), d, limit);
}

static void op_destroy(void *s)
{
	struct imap_conn *ic = s;
	imap_session_free(&ic->session);
	free(ic);
}

/* --- IDLE's timer --------------------------------------------------------------- */

static void tick_cb(void *arg)
{
	struct imap_conn *ic = arg;
	ic->timer_set = false;
	imap_session_tick(ic->session);   /* may start a job */
	arm_timer(ic);
}

static void arm_timer(struct imap_conn *ic)
{
	unsigned ms = imap_session_timer_ms(ic->session);
	if (ms && !ic->timer_set)
		ic->timer_set = conn_after(ic->conn, ms, tick_cb, ic);
}

/* --- hooks ------------------------------------------------------------------- */

static struct throttle_verdict hook_auth_blocked(void *ctx, const char *user)
{
	struct imap_conn *ic = ctx;
	return login_blocked(ic->conn, user);
}

/* The home node's answer to a proxied login (proxy.c): passed on under the client's
 * tag, then the bytes are bridged; or the refusal naming the node. */
static bool proxied(void *arg, struct proxy_outcome *o)
{
	struct imap_conn *ic = arg;
	char err[200];
	switch (o->kind) {
	case PROXY_LOCAL:
		imap_session_auth_done(ic->session, LOGIN_OK, ic->login, 0);
		return true;
	case PROXY_CONNECTED:
		imap_session_proxy_done(ic->session, IMAP_PROXY_OK, o->node, o->untagged, o->text);
		conn_flush(ic->conn);
		if (!conn_bridge(ic->conn, &o->peer, (unsigned)ic->svc->conf->imap_autologout, err, sizeof(err))) {
			log_event(LOG_ERR, "bridge_error", "conn=%llu error=\"%s\"", (unsigned long long)conn_id(ic->conn), err);
			conn_close(ic->conn);
			return false;
		}
		return true;
	case PROXY_REFUSED:
		imap_session_proxy_done(ic->session, IMAP_PROXY_REFUSED, o->node, o->untagged, o->text);
		return true;
	case PROXY_UNAVAILABLE:
		imap_session_proxy_done(ic->session, IMAP_PROXY_UNAVAILABLE, o->node, NULL, o->text);
		return true;
	}
	return true;
}

/* The login service's answer; on a node of a cluster a right password first goes to
 * proxy.c (the mailbox may live elsewhere). */
static void tell_login(void *state, enum login_result r, const char *login)
{
	struct imap_conn *ic = state;
	if (r == LOGIN_OK && proxy_login(ic->svc, ic->conn, PROXY_IMAP, login, proxied, ic)) {
		snprintf(ic->login, sizeof(ic->login), "%s", login);
		return;
	}
	imap_session_auth_done(ic->session, r, login, 0);
	arm_timer(ic);
}

static bool hook_xclient(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz)
{
	struct imap_conn *ic = ctx;
	return proxy_xclient_check(ic->svc, ic->conn, "imap", token, addr, login, why, whysz);
}

static void hook_auth_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct imap_conn *ic = ctx;
	login_verify(ic->conn, mech, user, pass, tell_login);
}

static void job_work(void *arg)
{
	struct imap_conn *ic = arg;
	imap_session_job_run(ic->session);
}

static void job_done(void *arg)
{
	struct imap_conn *ic = arg;
	struct conn *c = ic->conn;
	if (!conn_unbusy(c))
		return;   /* the client went away: c and the session are freed */
	imap_session_job_done(ic->session);
	arm_timer(ic);
	conn_flush(c);
	if (!conn_closed(c))
		conn_process(c);
}

static void hook_job(void *ctx)
{
	struct imap_conn *ic = ctx;
	conn_busy(ic->conn);
	workq_push(ic->svc->imap->q, job_work, job_done, ic);
}

/* Worker thread: the canonical user's Maildir (created when no mail came yet). */
static bool hook_maildir_root(void *ctx, const char *user, char *path, size_t pathsz, char *err, size_t errsz)
{
	struct imap_conn *ic = ctx;
	struct imap_service *is = ic->svc->imap;
	struct dir_recipient dr;
	directory_resolve_recipient(is->dir, is->conf, user, &dr);
	if (dr.kind == DIR_RCPT_TEMPFAIL) {
		snprintf(err, errsz, "the user directory could not be read");
		return false;
	}
	if (!directory_recipient_has_mailbox(&dr)) {
		snprintf(err, errsz, "no mailbox for %.200s", user);
		return false;
	}
	if (!store_mailbox_path(is->conf->data_dir, dr.mailbox.domain, dr.mailbox.local, path, pathsz)) {
		snprintf(err, errsz, "the mailbox path is too long");
		return false;
	}
	struct stat st;
	char cur[1300];
	snprintf(cur, sizeof(cur), "%s/cur", path);
	if (stat(cur, &st) != 0 && !maildir_create(path, err, errsz))
		return false;
	return true;
}

/* --- the [ALERT] at login ------------------------------------------------------ */

#define ALERT_SCAN 20          /* the account's newest records of the last day looked at */
#define ALERT_WINDOW 86400

/* Where the account's own page is, for the alert's words: an http listener serving
 * "account" (its address is the server's name unless it listens on loopback only). */
static void alert_page(const struct conf *cf, char *out, size_t outsz)
{
	out[0] = '\0';
	for (size_t i = 0; i < cf->n_listeners; i++) {
		const struct conf_listener *l = &cf->listeners[i];
		if (l->role != ROLE_HTTP || !conf_listener_serves(l, "account"))
			continue;
		bool tls = l->tls == TLS_IMPLICIT, std = l->port == (tls ? 443u : 80u);
		char port[16] = "";
		if (!std)
			snprintf(port, sizeof(port), ":%u", l->port);
		snprintf(out, outsz, " See %s://%s%s/mail for why and what to change.", tls ? "https" : "http",
			strncmp(l->address, "127.", 4) == 0 ? l->address : cf->hostname, port);
		return;
	}
}

/* IMAP text is 7-bit without CR or LF (RFC 3501 §9 TEXT-CHAR); the remote's words are
 * anyone's: anything else becomes '?' or a space. */
static void alert_clean(char *t)
{
	for (unsigned char *p = (unsigned char *)t; *p; p++)
		if (*p < 0x20)
			*p = ' ';
		else if (*p >= 0x7f || *p == ']')
			*p = '?';
}

/* Worker thread: when the newest outgoing record of the account in the last day is a
 * failure (refused before it was accepted, or returned), words for an [ALERT]: a phone
 * shows [ALERT] text to its user (RFC 3501 §7.1), so the user learns there, at the next
 * check for mail, that mail did not go, and why.  Records by its login, or with its
 * address as the sender (a mail program that sent on port 25 without logging in). */
static bool hook_login_alert(void *ctx, const char *user, char *text, size_t textsz)
{
	struct imap_conn *ic = ctx;
	const struct conf *cf = ic->svc->conf;
	struct events_reader *r = NULL;
	char err[256];
	if (!ic->svc->events || !events_reader_open_conf(&r, cf, err, sizeof(err)))
		return false;
	struct events_record *recs = calloc(ALERT_SCAN, sizeof(*recs));
	const char *senders[1] = { user };
	struct events_query q = { .account = user, .senders = senders, .n_senders = 1,
		.since = time(NULL) - ALERT_WINDOW, .limit = ALERT_SCAN };
	long n = recs ? events_list(r, &q, recs, ALERT_SCAN) : -1;
	events_reader_close(&r);
	const struct events_record *latest = NULL;
	long failures = 0;
	for (long i = 0; i < n; i++) {
		enum events_kind k = recs[i].kind;
		bool failed = k == EVENTS_REFUSED || k == EVENTS_BOUNCED;
		if (!latest && (failed || k == EVENTS_QUEUED || k == EVENTS_DELIVERED))
			latest = &recs[i];
		failures += failed;
	}
	bool alert = latest && (latest->kind == EVENTS_REFUSED || latest->kind == EVENTS_BOUNCED);
	if (alert) {
		char page[512], when[16];
		alert_page(cf, page, sizeof(page));
		strftime(when, sizeof(when), "%H:%M UTC", gmtime(&latest->when));
		snprintf(text, textsz, "Your outgoing mail is failing: %ld message(s) or attempt(s) in the last day were "
			"refused or returned; the latest, at %s: %d %s %.160s.%s", failures, when, latest->code, latest->enh,
			latest->text, page);
		alert_clean(text);
	}
	free(recs);
	return alert;
}

static bool op_start(struct conn *c, const char *tls_desc)
{
	struct service *srv = conn_ctx(c);
	const struct conf *cf = srv->conf;
	const struct conf_listener *l = conn_listener(c);
	struct imap_conn *ic = calloc(1, sizeof(*ic));
	if (!ic || !srv->imap) {
		free(ic);
		conn_close(c);
		return false;
	}
	ic->svc = srv;
	ic->conn = c;
	struct imap_conn_info info = {
		.conn_id = conn_id(c), .run_id = srv->run_id, .hostname = cf->hostname, .client_addr = conn_addr(c),
		.listener = l->name, .tls_offered = l->tls == TLS_STARTTLS && conn_tls_available(c),
		.tls_active = tls_desc != NULL, .tls_description = tls_desc, .allow_plaintext_auth = l->allow_plaintext_auth,
	};
	struct imap_limits lim = {
		.max_bad_commands = (unsigned)cf->bad_commands,
		.settings = { .threads = (unsigned)cf->imap_threads, .autologout = (unsigned)cf->imap_autologout,
			.idle_poll_ms = (unsigned)cf->imap_idle_poll * 1000u, .append_max = cf->message_size },
	};
	struct imap_hooks hooks = {
		.ctx = ic, .auth_blocked = hook_auth_blocked, .auth_verify = hook_auth_verify, .job = hook_job,
		.maildir_root = hook_maildir_root, .login_alert = hook_login_alert,
		.xclient = srv->node_secret_len ? hook_xclient : NULL,
	};
	ic->session = imap_session_new(&info, &lim, &hooks);
	if (!ic->session) {
		free(ic);
		conn_close(c);
		return false;
	}
	conn_set_session(c, ic);
	conn_set_idle_timeout(c, (unsigned)cf->imap_autologout);
	imap_session_start(ic->session);
	conn_flush(c);
	return true;
}

static void op_refuse_busy(struct buf *out, const struct conf *cf, enum conn_refusal why)
{
	switch (why) {
	case CONN_REFUSE_TOTAL:
		imap_refusal_line(out, IMAP_REFUSE_BUSY, cf->hostname, cf->connections);
		break;
	case CONN_REFUSE_ADDRESS:
		imap_refusal_line(out, IMAP_REFUSE_ADDRESS_BUSY, cf->hostname, cf->connections_per_ip);
		break;
	case CONN_REFUSE_RESERVED:
		imap_refusal_line(out, IMAP_REFUSE_RESERVED, cf->hostname, 0);
		break;
	}
}

static void op_refuse_plaintext(struct buf *out, const struct conf *cf)
{
	imap_refusal_line(out, IMAP_REFUSE_TLS_EXPECTED, cf->hostname, 0);
}

const struct proto_ops imap_proto_ops = {
	.name = "imap", .start = op_start, .refuse_busy = op_refuse_busy, .refuse_plaintext = op_refuse_plaintext,
	.feed = op_feed, .output = op_output, .wants_close = op_wants_close,
	.waiting = op_waiting, .wants_tls = op_wants_tls, .tls_started = op_tls_started,
	.timeout = op_timeout, .shutdown = op_shutdown, .disconnected = op_disconnected,
	.destroy = op_destroy, .streaming = op_streaming, .pump = op_pump,
	.line_pending = op_line_pending, .in_data = op_in_data, .login = op_login, .deadline = op_deadline,
	.input_broken = op_input_broken,
};

/* --- the worker pool -------------------------------------------------------------- */

struct imap_service *imap_service_new(struct event_base *base, const struct conf *cf, char *err, size_t errsz)
{
	struct imap_service *is = calloc(1, sizeof(*is));
	if (!is) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	is->conf = cf;
	if (!directory_open(&is->dir, cf->data_dir, err, errsz)) {
		free(is);
		return NULL;
	}
	if (!loopq_start(base, (unsigned)cf->imap_threads, &is->q, &is->ev)) {
		snprintf(err, errsz, "cannot start the IMAP threads");
		imap_service_free(&is);
		return NULL;
	}
	return is;
}

void imap_service_free(struct imap_service **isp)
{
	struct imap_service *is = *isp;
	if (!is)
		return;
	loopq_stop(&is->q, &is->ev);   /* running jobs finish; their sessions are answered here */
	directory_close(&is->dir);
	free(is);
	*isp = NULL;
}
