/* smtp.c - the SMTP adapter: what an SMTP session asks of the rest of the server: recipient
 * decisions (directory + policy, quotas, POP-before-SMTP), the spool and its
 * durable commit on the commit threads, logins, sender ownership. */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery/delivery.h"
#include "directory/directory.h"
#include "net/internal.h"
#include "serve/login.h"
#include "net/tls.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "smtp/reply.h"
#include "smtp/session.h"
#include "store/layout.h"
#include "store/quota.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/log.h"
#include "util/workq.h"

/* The local recipients of the message being received, resolved when the spool opens
 * (on the loop, as RCPT does), for the quota check at the end of data, which runs with
 * the commit on a commit thread (maildirsize reads are file reads). */
struct room_target {
	char *address;
	char *maildir;
};

struct room_check {
	struct room_target *targets;
	size_t n_targets;
	size_t n_other;   /* other domains, postmaster, directory failures: not checked */
	uint64_t space;   /* queue space above [queue] min_free when the spool opened */
};

enum commit_outcome { COMMIT_OK, COMMIT_FAILED, COMMIT_NO_ROOM };

struct commit_job {
	struct conn *conn;
	struct queue_writer *writer;
	struct room_check *room;
	bool full_is_permanent;
	char qid[QUEUE_ID_LEN + 1];
	enum commit_outcome outcome;
	bool no_space;
	enum message_quota quota;
	uint64_t size;
	char err[256];
	char detail[1024];
};

static void room_free(struct room_check **rp)
{
	struct room_check *r = *rp;
	if (!r)
		return;
	for (size_t i = 0; i < r->n_targets; i++) {
		free(r->targets[i].address);
		free(r->targets[i].maildir);
	}
	free(r->targets);
	free(r);
	*rp = NULL;
}

/* Resolve rcpt (directory/): true when its mail goes into a local Maildir, whose
 * path is then in path.  A path that does not fit counts as a directory failure. */
static bool recipient_maildir(struct server *srv, const char *rcpt, struct dir_recipient *dr, char *path,
	size_t pathsz)
{
	directory_resolve_recipient(srv->dir, srv->conf, rcpt, dr);
	if (!directory_recipient_has_mailbox(dr))
		return false;
	if (store_mailbox_path(srv->conf->data_dir, dr->mailbox.domain, dr->mailbox.local, path, pathsz))
		return true;
	dr->kind = DIR_RCPT_TEMPFAIL;
	snprintf(dr->error, sizeof(dr->error), "the mailbox path of %.200s is too long", rcpt);
	return false;
}

/* Which recipients of env have a local Maildir (aliases followed).  NULL on no memory:
 * then nothing is checked at the end of data (delivery still checks). */
static struct room_check *room_resolve(struct conn *c, const struct queue_envelope *qe)
{
	struct server *srv = c->srv;
	struct room_check *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->targets = calloc(qe->n_rcpts ? qe->n_rcpts : 1, sizeof(*r->targets));
	if (!r->targets) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < qe->n_rcpts; i++) {
		struct room_target *t = &r->targets[r->n_targets];
		const char *at = strrchr(qe->rcpts[i], '@');
		bool postmaster = at ? (size_t)(at - qe->rcpts[i]) == 10 && strncasecmp(qe->rcpts[i], "postmaster", 10) == 0
			: strcasecmp(qe->rcpts[i], "postmaster") == 0;
		char path[1400];
		struct dir_recipient dr;
		if (postmaster || !recipient_maildir(srv, qe->rcpts[i], &dr, path, sizeof(path))) {
			r->n_other++;   /* RFC 5321 §4.5.1: postmaster is never refused */
			continue;
		}
		t->address = strdup(qe->rcpts[i]);
		t->maildir = strdup(path);
		r->n_targets++;   /* freed with the rest, even when a strdup failed */
		if (!t->address || !t->maildir) {
			room_free(&r);
			return NULL;
		}
	}
	return r;
}

/* Commit thread: can the message, at its real size, go to at least one recipient?
 * The figure is the one delivery checks (the queued body); see local_deliver. */
static enum message_quota room_check_run(struct commit_job *j)
{
	struct room_check *r = j->room;
	if (!r || r->n_targets == 0)
		return MQ_ACCEPT;
	struct mailbox_room *rooms = calloc(r->n_targets, sizeof(*rooms));
	if (!rooms)
		return MQ_ACCEPT;
	size_t n = 0, other = r->n_other;
	for (size_t i = 0; i < r->n_targets; i++) {
		struct quota_state st;
		char err[256];
		enum quota_verdict qv = quota_check(r->targets[i].maildir, j->size, &st, err, sizeof(err));
		if (qv == QUOTA_ERROR) {
			other++;   /* delivery will retry and say why */
			continue;
		}
		rooms[n++] = (struct mailbox_room){ .address = r->targets[i].address, .fits = qv == QUOTA_FITS,
			.used = st.used_bytes, .limit = st.limit_bytes };
	}
	struct message_quota_facts f = { .size = j->size, .mailboxes = rooms, .n_mailboxes = n, .n_other = other,
		.full_is_permanent = j->full_is_permanent };
	enum message_quota mq = policy_check_message_quota(&f, j->detail, sizeof(j->detail));
	free(rooms);
	return mq;
}


/* --- the session as the connection code sees it ---------------------------- */

static size_t op_feed(void *s, const void *p, size_t n) { return smtp_session_feed(s, p, n); }
static struct buf *op_output(void *s) { return smtp_session_output(s); }
static bool op_wants_close(const void *s) { return smtp_session_wants_close(s); }
static bool op_waiting(const void *s) { return smtp_session_waiting(s); }
static bool op_wants_tls(const void *s) { return smtp_session_wants_tls(s); }
static void op_tls_started(void *s, const char *d) { smtp_session_tls_started(s, d); }
static void op_timeout(void *s) { smtp_session_timeout(s); }
static void op_shutdown(void *s) { smtp_session_shutdown(s); }
static void op_disconnected(void *s) { smtp_session_disconnected(s); }
static bool op_line_pending(const void *s) { return smtp_session_line_pending(s); }
static bool op_in_data(const void *s) { return smtp_session_in_data(s); }
static const char *op_login(const void *s) { return smtp_session_login(s); }

static void op_deadline(void *s, enum deadline_kind which, unsigned long long limit)
{
	enum smtp_deadline d = which == DEADLINE_LINE ? SMTP_DEADLINE_LINE : which == DEADLINE_DATA_RATE
		? SMTP_DEADLINE_DATA_RATE : which == DEADLINE_LOGIN ? SMTP_DEADLINE_LOGIN : SMTP_DEADLINE_SESSION;
	smtp_session_deadline(s, d, limit);
}

static void op_destroy(void *s)
{
	struct smtp_session *p = s;
	smtp_session_free(&p);
}

/* --- login hooks ------------------------------------------------------------- */

static struct throttle_verdict hook_auth_blocked(void *ctx, const char *user)
{
	return login_blocked(ctx, user);
}

/* The login service's answer (serve/login.c), told to the session. */
static void tell_login(void *session, enum login_result r, const char *login)
{
	smtp_session_auth_done(session, r, login, 0);
}

static void hook_auth_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	login_verify(ctx, mech, user, pass, tell_login);
}


/* RCPT time: is there room for the message?  Its size is known when MAIL declared
 * SIZE= (RFC 1870 §6.1), otherwise only a mailbox already full is refused here, and
 * the end of data checks again with the real size (commit_work).  Delivery checks
 * once more.  A quota read is a small file read, as the directory lookup before it. */
static void check_quota(struct conn *c, const char *path, struct rcpt_facts *f)
{
	struct quota_state st;
	char err[256];
	uint64_t declared = smtp_session_declared_size(c->session);
	if (quota_check(path, declared, &st, err, sizeof(err)) == QUOTA_FULL) {
		f->mailbox_full = true;
		f->full_is_permanent = c->srv->conf->quota_full_permanent;
		f->quota_used = st.used_bytes;
		f->quota_limit = st.limit_bytes;
		f->message_size = declared;
	}
}

/* The facts policy needs, from the same resolution delivery uses (local domains
 * from the configuration and the directory, users, aliases, postmaster). */
static void hook_check_rcpt(void *ctx, const struct smtp_path *rcpt, struct verdict *v)
{
	struct conn *c = ctx;
	struct server *srv = c->srv;
	struct rcpt_facts f = { .local = rcpt->local, .domain = rcpt->domain, .user = USER_MISSING };
	if (rcpt->bare_postmaster) {
		f.is_postmaster = true;
		f.domain_local = true;
		f.local = "postmaster";
		f.domain = srv->conf->hostname;
	} else if (!rcpt->domain_literal) {
		char addr[SMTP_ADDR_MAX + 1], path[1400];
		smtp_path_format(rcpt, addr, sizeof(addr));
		struct dir_recipient dr;
		bool found = recipient_maildir(srv, addr, &dr, path, sizeof(path));
		f.domain_local = dr.kind != DIR_RCPT_NOT_LOCAL;
		f.is_postmaster = f.domain_local && strcasecmp(rcpt->local, "postmaster") == 0;
		f.user = found ? USER_FOUND : dr.kind == DIR_RCPT_TEMPFAIL ? USER_LOOKUP_FAILED : USER_MISSING;
		if (dr.kind == DIR_RCPT_TEMPFAIL)
			log_event(LOG_ERR, "directory_error", "conn=%llu error=\"%s\"", (unsigned long long)c->id, dr.error);
		if (found && !f.is_postmaster)
			check_quota(c, path, &f);
	}
	struct policy_client pc = {
		.submission_port = c->listener->role == ROLE_SUBMISSION,
		.authenticated = smtp_session_login(c->session) != NULL,
		.trusted_network = c->trusted,
		.pop_window = srv->conf->pop_before_smtp,
		.pop_login_age = srv->conf->pop_before_smtp ? pop3_glue_login_age(srv, c->addr) : -1,
	};
	policy_check_rcpt(&pc, &f, v);
}

static bool hook_spool_open(void *ctx, const struct smtp_envelope *env, char *qid)
{
	struct conn *c = ctx;
	struct queue_envelope qe;
	memset(&qe, 0, sizeof(qe));
	id_new_queue_id(qe.qid);
	qe.arrival = time(NULL);
	snprintf(qe.client_addr, sizeof(qe.client_addr), "%s", c->addr);
	snprintf(qe.helo, sizeof(qe.helo), "%s", env->helo);
	snprintf(qe.protocol, sizeof(qe.protocol), "%s", env->protocol);
	smtp_path_format(env->sender, qe.sender, sizeof(qe.sender));
	qe.smtputf8 = env->params->smtputf8;
	qe.eightbit = env->params->body != BODY_7BIT;
	qe.n_rcpts = env->n_rcpts;
	qe.rcpts = calloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*qe.rcpts));
	if (!qe.rcpts)
		return false;
	for (size_t i = 0; i < env->n_rcpts; i++)
		smtp_path_format(&env->rcpts[i], qe.rcpts[i], QUEUE_ADDR_MAX);
	/* RFC 3461: what the sender asked to be told, carried to the next hop. */
	qe.ret = env->params->ret == 1 ? QUEUE_RET_FULL : env->params->ret == 2 ? QUEUE_RET_HDRS : QUEUE_RET_DEFAULT;
	snprintf(qe.envid, sizeof(qe.envid), "%s", env->params->envid);
	bool dsn_ok = true;
	for (size_t i = 0; env->rcpt_params && i < env->n_rcpts; i++)
		if (env->rcpt_params[i].notify || env->rcpt_params[i].orcpt[0])
			dsn_ok = queue_envelope_set_dsn(&qe, i, env->rcpt_params[i].notify, env->rcpt_params[i].orcpt) && dsn_ok;
	char err[256] = "out of memory";
	room_free(&c->room);
	c->spool_no_space = false;
	c->room = room_resolve(c, &qe);
	if (c->room)
		c->room->space = c->srv->conf->min_free ? queue_space_room(c->srv->queue) : UINT64_MAX;
	c->writer = dsn_ok ? queue_writer_open(c->srv->queue, &qe, err, sizeof(err)) : NULL;
	if (!c->writer && dsn_ok)
		c->spool_no_space = errno == ENOSPC || errno == EDQUOT;
	free(qe.notify);
	free(qe.orcpt);
	free(qe.rcpts);
	if (!c->writer) {
		if (!c->spool_no_space)   /* lack of space is logged by the queue, once a minute */
			log_event(LOG_ERR, "spool_error", "conn=%llu error=\"%s\"", (unsigned long long)c->id, err);
		room_free(&c->room);
		return false;
	}
	memcpy(c->qid, qe.qid, sizeof(c->qid));
	memcpy(qid, qe.qid, QUEUE_ID_LEN + 1);
	return true;
}

static bool hook_spool_write(void *ctx, const void *p, size_t n)
{
	struct conn *c = ctx;
	if (!c->writer)
		return false;
	/* A message without SIZE= that outgrows the space above min_free stops here, so
	 * the reserve stays for deliveries and logs: 452 4.3.1 as for a full disk. */
	if (c->room && queue_writer_size(c->writer) + n > c->room->space) {
		c->spool_no_space = true;
		return false;
	}
	if (queue_writer_write(c->writer, p, n))
		return true;
	c->spool_no_space = queue_writer_no_space(c->writer);
	return false;
}

static bool hook_spool_no_space(void *ctx)
{
	struct conn *c = ctx;
	return c->spool_no_space;
}

/* MAIL: is there room on the queue's filesystem for a message of `size` octets (0:
 * not declared; then only "no room at all" refuses)?  statvfs at most once a second. */
static bool hook_spool_room(void *ctx, uint64_t size)
{
	struct conn *c = ctx;
	uint64_t room = queue_space_room(c->srv->queue);
	return room > 0 && size <= room;
}

static void hook_spool_abort(void *ctx)
{
	struct conn *c = ctx;
	queue_writer_free(&c->writer);
	room_free(&c->room);
}

/* Worker thread: the blocking part.  The quota check comes first, so that a message
 * no recipient can take is never committed (nothing to undo). */
static void commit_work(void *arg)
{
	struct commit_job *j = arg;
	j->quota = room_check_run(j);
	if (j->quota != MQ_ACCEPT) {
		j->outcome = COMMIT_NO_ROOM;
		return;
	}
	j->outcome = queue_writer_commit(j->writer, j->err, sizeof(j->err)) ? COMMIT_OK : COMMIT_FAILED;
	j->no_space = j->outcome == COMMIT_FAILED && queue_writer_no_space(j->writer);
}

/* Loop thread: tell the session, wake the delivery agent. */
static void commit_done(void *arg)
{
	struct commit_job *j = arg;
	struct conn *c = j->conn;
	struct server *srv = c->srv;
	queue_writer_free(&j->writer);
	room_free(&j->room);
	if (j->outcome == COMMIT_OK)
		delivery_enqueue(srv->delivery, j->qid);
	else if (j->outcome == COMMIT_FAILED && !j->no_space)   /* lack of space: logged by the queue */
		log_event(LOG_ERR, "spool_error", "conn=%llu qid=%s op=commit error=\"%s\"", (unsigned long long)c->id,
			j->qid, j->err);
	c->busy--;
	if (c->closed) {
		free(j);
		conn_free(c);
		return;
	}
	c->spool_no_space = j->no_space;
	if (j->outcome == COMMIT_NO_ROOM)
		smtp_session_commit_refused(c->session, j->quota, j->size, j->detail);
	else
		smtp_session_commit_done(c->session, j->outcome == COMMIT_OK);
	free(j);
	conn_process(c);
}

static void hook_spool_commit(void *ctx)
{
	struct conn *c = ctx;
	struct commit_job *j = calloc(1, sizeof(*j));
	if (!j) {
		queue_writer_free(&c->writer);
		room_free(&c->room);
		smtp_session_commit_done(c->session, false);
		return;
	}
	j->conn = c;
	j->writer = c->writer;
	c->writer = NULL;
	j->room = c->room;
	c->room = NULL;
	j->size = queue_writer_size(j->writer);
	j->full_is_permanent = c->srv->conf->quota_full_permanent;
	memcpy(j->qid, c->qid, sizeof(j->qid));
	c->busy++;
	workq_push(c->srv->commitq, commit_work, commit_done, j);
}

static bool hook_sender_owned(void *ctx, const char *login, const char *address, bool *tempfail)
{
	struct conn *c = ctx;
	enum dir_result r = directory_sender_owned(c->srv->dir, login, address);
	*tempfail = r == DIR_ERROR;
	return r == DIR_OK;
}

/* A refused recipient's answer held back (directory harvesting): a timer, so the
 * loop serves everyone else meanwhile.  The connection counts as busy, so it is freed
 * only after the timer, even if the client goes away. */
static void hold_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	event_free(c->delay);
	c->delay = NULL;
	c->busy--;
	if (c->closed) {
		conn_free(c);
		return;
	}
	smtp_session_hold_done(c->session);
	conn_process(c);
}

static void hook_hold(void *ctx, unsigned ms)
{
	struct conn *c = ctx;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	if (!c->delay) {
		c->delay = evtimer_new(c->srv->base, hold_cb, c);
		if (c->delay && evtimer_add(c->delay, &tv) == 0) {
			c->busy++;
			return;
		}
		if (c->delay)
			event_free(c->delay);
		c->delay = NULL;
	}
	smtp_session_hold_done(c->session);   /* no timer: answer now rather than never */
}

static bool op_start(struct conn *c, const char *tls_desc)
{
	struct server *srv = c->srv;
	const struct conf *cf = srv->conf;
	const struct conf_listener *l = c->listener;
	struct smtp_conn_info info = {
		.conn_id = c->id, .run_id = c->srv->run_id, .hostname = cf->hostname, .client_addr = c->addr, .client_name = NULL,
		.listener = l->name, .submission = l->role == ROLE_SUBMISSION, .trusted_network = c->trusted,
		.tls_offered = l->tls == TLS_STARTTLS && srv->tls, .tls_active = tls_desc != NULL,
		.tls_description = tls_desc, .allow_plaintext_auth = l->allow_plaintext_auth,
		.check_from_header = cf->check_from_header,
	};
	struct smtp_limits lim = {
		.max_message = cf->message_size, .max_recipients = (unsigned)cf->recipients,
		.max_line = (size_t)cf->line_length, .max_bad_commands = (unsigned)cf->bad_commands,
		.idle_timeout = (unsigned)cf->idle_timeout, .max_message_line = cf->message_line_length,
		.max_refused_rcpts = (unsigned)cf->refused_recipients,
		.refused_rcpt_delay_after = (unsigned)cf->refused_recipients_delay_after,
		.refused_rcpt_delay_ms = (unsigned)cf->refused_recipient_delay_ms,
	};
	struct smtp_hooks hooks = {
		.ctx = c, .check_rcpt = hook_check_rcpt, .spool_open = hook_spool_open,
		.spool_write = hook_spool_write, .spool_abort = hook_spool_abort,
		.spool_commit = hook_spool_commit, .auth_blocked = hook_auth_blocked,
		.auth_verify = hook_auth_verify, .sender_owned = hook_sender_owned, .hold = hook_hold,
		.spool_room = hook_spool_room, .spool_no_space = hook_spool_no_space,
	};
	c->ops = &smtp_proto_ops;
	c->session = smtp_session_new(&info, &lim, &hooks);
	if (!c->session) {
		conn_free(c);
		return false;
	}
	smtp_session_start(c->session);
	conn_flush(c);
	return true;
}

/* RFC 5321 §3.1: a server that will not serve answers the connection with 421
 * (busy, try later) or 554 (never here) instead of 220, then closes. */
static void line_with(struct buf *out, enum reply_id id, ...)
{
	va_list ap;
	va_start(ap, id);
	reply_vid_line(out, id, ap);   /* before any greeting: one line, hint included */
	va_end(ap);
}

static void op_refuse_busy(struct buf *out, const struct conf *cf, enum conn_refusal why)
{
	switch (why) {
	case CONN_REFUSE_TOTAL:
		line_with(out, R_TOO_MANY_CONNECTIONS, cf->hostname);
		break;
	case CONN_REFUSE_ADDRESS:
		line_with(out, R_TOO_MANY_FROM_IP, cf->hostname, (unsigned long long)cf->connections_per_ip);
		break;
	case CONN_REFUSE_RESERVED:
		line_with(out, R_RESERVED_CONNECTIONS, cf->hostname);
		break;
	}
}

static void op_refuse_plaintext(struct buf *out, const struct conf *cf)
{
	line_with(out, R_TLS_EXPECTED, cf->hostname);
}

const struct proto_ops smtp_proto_ops = {
	.name = "smtp", .start = op_start, .refuse_busy = op_refuse_busy, .refuse_plaintext = op_refuse_plaintext,
	.feed = op_feed, .output = op_output, .wants_close = op_wants_close,
	.waiting = op_waiting, .wants_tls = op_wants_tls, .tls_started = op_tls_started,
	.timeout = op_timeout, .shutdown = op_shutdown, .disconnected = op_disconnected,
	.destroy = op_destroy,
	.line_pending = op_line_pending, .in_data = op_in_data, .login = op_login, .deadline = op_deadline,
};
