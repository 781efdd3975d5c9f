/* smtp.c - the SMTP adapter: what an SMTP session asks of the rest of the server:
 * decisions (MAIL, RCPT, the From: check, the end of data: the policy pipeline of
 * serve/decide.c), the spool and its durable commit on the commit threads (with the
 * header fields the end-of-data stages added), logins.  The transport
 * (net/) sees it only through smtp_proto_ops; the message being received is this
 * adapter's per-connection state (struct smtp_conn), not the connection's. */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/util.h>

#include "delivery/delivery.h"
#include "conf/conf.h"
#include "events/events.h"
#include "msg/header.h"
#include "net/server.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "serve/decide.h"
#include "serve/edit.h"
#include "serve/login.h"
#include "serve/send_limits.h"
#include "serve/service.h"
#include "serve/state_feed.h"
#include "smtp/reply.h"
#include "smtp/session.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/workq.h"

/* Who sends the message, for the outbound limits (serve/send_limits.h): a logged-in
 * client per account and sending domain, a trusted network per sending domain. */
struct sent_by {
	bool counted;
	char login[POLICY_LOGIN_MAX];
	char sender_domain[POLICY_DOMAIN_MAX];
	size_t rcpts;
};

/* One SMTP connection as this adapter sees it: the session, and the message being
 * received (spool writer, queue id, the header fields the end-of-data stages added). */
struct smtp_conn {
	struct service *svc;
	struct conn *conn;
	struct smtp_session *session;
	struct queue_writer *writer;     /* the message being received */
	uint64_t space;                  /* queue space above [queue] min_free when the spool opened */
	char *added;                     /* header fields to put before it (policy_facts_add_header) */
	size_t added_len;
	bool spool_no_space;             /* the last spool failure was for lack of space */
	char qid[QUEUE_ID_LEN + 1];
	struct spool_share *share;       /* the end-of-data stages' way to change it (serve/edit.h) */
	enum policy_disposition disposition;   /* held or discarded at the commit (policy_facts_hold) */
	char disposition_reason[POLICY_REASON_MAX];
	struct policy_milter_session *milters;   /* the listener's content filters; NULL: none */
	unsigned client_port;
	struct sent_by sent;             /* what the outbound limits count at the commit */
	char sender[QUEUE_ADDR_MAX];     /* the message's MAIL FROM, for the event store */
	struct msg_field_scan *subject;  /* its Subject: as it streams to the spool (events on only) */
	bool local;                      /* on the local socket (sendmail): peer says who */
	bool local_pending;              /* the user's name is being looked up: input waits */
	struct conn_peer peer;
	char local_name[64];
};

struct commit_job {
	struct smtp_conn *sc;
	struct sent_by sent;
	struct queue_writer *writer;
	char *added;
	size_t added_len;
	char qid[QUEUE_ID_LEN + 1];
	char hold_reason[POLICY_REASON_MAX];   /* "": not held */
	char sender[QUEUE_ADDR_MAX];
	char subject[256];
	bool ok;
	bool no_space;
	char err[256];
};

/* The message being received is dropped (aborted, refused, or the client left). */
static void message_drop(struct smtp_conn *sc)
{
	if (sc->share) {
		/* A stage may still be writing it (it timed out): freed when its facts go. */
		spool_share_release(&sc->share, sc->writer != NULL);
		sc->writer = NULL;
	}
	queue_writer_free(&sc->writer);
	sc->disposition = POLICY_QUEUE;
	sc->disposition_reason[0] = '\0';
	free(sc->added);
	sc->added = NULL;
	sc->added_len = 0;
	free(sc->subject);
	sc->subject = NULL;
}


/* --- the session as the connection code sees it ---------------------------- */

static struct smtp_session *sess(const void *s) { return ((const struct smtp_conn *)s)->session; }

static size_t op_feed(void *s, const void *p, size_t n) { return smtp_session_feed(sess(s), p, n); }
static struct buf *op_output(void *s) { return smtp_session_output(sess(s)); }
static bool op_wants_close(const void *s) { return smtp_session_wants_close(sess(s)); }
static bool op_waiting(const void *s)
{
	return ((const struct smtp_conn *)s)->local_pending || smtp_session_waiting(sess(s));
}
static bool op_wants_tls(const void *s) { return smtp_session_wants_tls(sess(s)); }
static void op_tls_started(void *s, const char *d) { smtp_session_tls_started(sess(s), d); }
static void op_timeout(void *s) { smtp_session_timeout(sess(s)); }
static void op_shutdown(void *s) { smtp_session_shutdown(sess(s)); }
static void op_disconnected(void *s) { smtp_session_disconnected(sess(s)); }
static bool op_line_pending(const void *s) { return smtp_session_line_pending(sess(s)); }
static bool op_in_data(const void *s) { return smtp_session_in_data(sess(s)); }
static const char *op_login(const void *s) { return smtp_session_login(sess(s)); }

static void op_deadline(void *s, enum deadline_kind which, unsigned long long limit)
{
	enum smtp_deadline d = which == DEADLINE_LINE ? SMTP_DEADLINE_LINE : which == DEADLINE_DATA_RATE
		? SMTP_DEADLINE_DATA_RATE : which == DEADLINE_LOGIN ? SMTP_DEADLINE_LOGIN : SMTP_DEADLINE_SESSION;
	smtp_session_deadline(sess(s), d, limit);
}

static void op_destroy(void *s)
{
	struct smtp_conn *sc = s;
	message_drop(sc);
	decider_milter_session_end(sc->svc->decider, &sc->milters);
	smtp_session_free(&sc->session);
	free(sc);
}

/* The login service's answer (serve/login.c), told to the session. */
static void tell_login(void *state, enum login_result r, const char *login)
{
	struct smtp_conn *sc = state;
	smtp_session_auth_done(sc->session, r, login, 0);
}


/* --- login hooks ------------------------------------------------------------- */

static struct throttle_verdict hook_auth_blocked(void *ctx, const char *user)
{
	struct smtp_conn *sc = ctx;
	return login_blocked(sc->conn, user);
}

static void hook_auth_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct smtp_conn *sc = ctx;
	login_verify(sc->conn, mech, user, pass, tell_login);
}


/* --- decisions ---------------------------------------------------------------- */

/* One decision asked by a session: answered during the call (every stage it needed
 * was pure) or later, on the loop, after the decision threads. */
struct asking {
	struct smtp_conn *sc;
	bool in_call;          /* still inside hook_decide */
	bool answered;
	struct verdict *now;   /* in_call: where the session wants the verdict */
};

/* What the stages found goes to the session (the transaction's findings); the header
 * fields of an end of data that passed wait here for the commit. */
static void take_findings(struct smtp_conn *sc, const struct verdict *v, struct policy_facts *f)
{
	if (!f)
		return;
	smtp_session_findings(sc->session, f);
	if (f->point != POLICY_AT_END_OF_DATA || v->kind != VERDICT_OK)
		return;
	free(sc->added);
	sc->added = f->added;
	sc->added_len = f->added_len;
	f->added = NULL;
	f->added_len = 0;
	sc->disposition = f->disposition;
	snprintf(sc->disposition_reason, sizeof(sc->disposition_reason), "%s", f->disposition_reason);
	if (policy_edits_pending(f))
		log_event(LOG_WARN, "edits_unapplied", "conn=%llu qid=%s", (unsigned long long)conn_id(sc->conn), sc->qid);
}

static void decision_done(void *arg, const struct verdict *v, struct policy_facts *f)
{
	struct asking *a = arg;
	if (a->in_call) {
		take_findings(a->sc, v, f);
		*a->now = *v;
		a->answered = true;
		return;
	}
	struct smtp_conn *sc = a->sc;
	struct conn *c = sc->conn;
	free(a);
	if (!conn_unbusy(c))
		return;
	take_findings(sc, v, f);
	smtp_session_decided(sc->session, v);
	/* The stop began while the decision was out: tell this client now, as it would
	 * have been told had it been idle. */
	if (sc->svc->shutting_down && !smtp_session_waiting(sc->session))
		smtp_session_shutdown(sc->session);
	conn_process(c);   /* pipelined commands waiting behind the answer */
}

/* What the content filters are told of the connection (the transport's facts). */
static void connection_facts(const struct smtp_conn *sc, struct policy_facts *f)
{
	const struct conf_listener *l = conn_listener(sc->conn);
	f->milters = sc->milters;
	f->client_port = sc->client_port;
	snprintf(f->listener, sizeof(f->listener), "%s", l->name);
	snprintf(f->daemon_addr, sizeof(f->daemon_addr), "%s", l->address);
	conn_tls_params(sc->conn, f->tls_version, sizeof(f->tls_version), f->tls_cipher, sizeof(f->tls_cipher),
		&f->tls_cipher_bits);
}

/* The end of data: where the stages read the message (the spool file, flushed by
 * hook_spool_flush), its size as queued (our Received: field included), and how they
 * may change it (f->spool, serve/edit.h). */
static void message_facts(struct smtp_conn *sc, struct policy_facts *f)
{
	connection_facts(sc, f);
	if (f->point != POLICY_AT_END_OF_DATA || !sc->writer)
		return;
	snprintf(f->queue_id, sizeof(f->queue_id), "%s", sc->qid);
	snprintf(f->message_path, sizeof(f->message_path), "%s", queue_writer_path(sc->writer));
	f->message_offset = queue_writer_message_offset(sc->writer);
	f->message_size = queue_writer_size(sc->writer);
	spool_share_release(&sc->share, false);
	sc->share = spool_share_new(sc->writer, conn_id(sc->conn), sc->svc->conf->message_size, f);
}

/* A local user (the kernel's word, SO_PEERCRED) sends as themselves: root and the
 * server's user as anyone (docs/operations.md "sendmail and the local socket"). */
static bool local_refuses_sender(struct smtp_conn *sc, const struct policy_facts *f, struct verdict *now)
{
	char own[320], why[VERDICT_REASON_MAX];
	if (local_sender_allowed(sc->svc, sc->peer.uid, sc->local_name, f, own, sizeof(own)))
		return false;
	int n = snprintf(why, sizeof(why), "you are the local user %s (uid %u) and may send only as %.200s, not as ", sc->local_name,
		sc->peer.uid, own);
	if (n > 0 && (size_t)n < sizeof(why))
		snprintf(why + n, sizeof(why) - (size_t)n, "%.100s@%.100s", f->local, f->domain);
	reply_verdict(now, V_LOCAL_SENDER_NOT_OWNED, CAUSE_SENDER_NOT_OWNED, why);
	return true;
}

/* MAIL, RCPT, the From: check and the end of data all go through the server's one
 * pipeline (serve/decide.c); the connection counts as busy while a decision is out,
 * so it is freed only after the answer, even if the client goes away. */
static bool hook_decide(void *ctx, struct policy_facts *f, struct verdict *now)
{
	struct smtp_conn *sc = ctx;
	if (sc->local && f->point == POLICY_AT_MAIL && local_refuses_sender(sc, f, now)) {
		policy_facts_free(&f);
		return true;
	}
	message_facts(sc, f);
	struct asking *a = calloc(1, sizeof(*a));
	if (!a) {
		policy_facts_free(&f);
		reply_verdict(now, V_DECISION_NO_MEMORY, CAUSE_LOOKUP_FAILED, NULL);
		return true;
	}
	*a = (struct asking){ .sc = sc, .in_call = true, .now = now };
	decider_decide(sc->svc->decider, f, decision_done, a);
	a->in_call = false;
	if (a->answered) {
		free(a);
		return true;
	}
	conn_busy(sc->conn);
	return false;
}

static void sent_by_note(struct smtp_conn *sc, const struct smtp_envelope *env)
{
	const char *login = smtp_session_login(sc->session);
	sc->sent = (struct sent_by){ .counted = login || conn_trusted(sc->conn), .rcpts = env->n_rcpts };
	snprintf(sc->sent.login, sizeof(sc->sent.login), "%s", login ? login : "");
	snprintf(sc->sent.sender_domain, sizeof(sc->sent.sender_domain), "%s", env->sender->null ? "" : env->sender->domain);
}

static bool hook_spool_open(void *ctx, const struct smtp_envelope *env, char *qid)
{
	struct smtp_conn *sc = ctx;
	struct queue_envelope qe;
	memset(&qe, 0, sizeof(qe));
	/* qe.qid left empty: the queue names the message after a spool file made ahead off
	 * the loop (queue_reserve_start), so the loop does not wait for its creation. */
	qe.arrival = time(NULL);
	snprintf(qe.client_addr, sizeof(qe.client_addr), "%s", conn_addr(sc->conn));
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
	message_drop(sc);
	sc->spool_no_space = false;
	sc->space = sc->svc->conf->min_free ? queue_space_room(sc->svc->queue) : UINT64_MAX;
	sc->writer = dsn_ok ? queue_writer_open(sc->svc->queue, &qe, err, sizeof(err)) : NULL;
	if (!sc->writer && dsn_ok)
		sc->spool_no_space = errno == ENOSPC || errno == EDQUOT;
	free(qe.notify);
	free(qe.orcpt);
	free(qe.rcpts);
	if (!sc->writer) {
		if (!sc->spool_no_space)   /* lack of space is logged by the queue, once a minute */
			log_event(LOG_ERR, "spool_error", "conn=%llu error=\"%s\"", (unsigned long long)conn_id(sc->conn), err);
		return false;
	}
	memcpy(sc->qid, queue_writer_envelope(sc->writer)->qid, sizeof(sc->qid));
	memcpy(qid, sc->qid, QUEUE_ID_LEN + 1);
	sent_by_note(sc, env);
	snprintf(sc->sender, sizeof(sc->sender), "%s", qe.sender);
	if (sc->svc->events && (sc->subject = malloc(sizeof(*sc->subject))))
		msg_field_scan_init(sc->subject, "Subject");
	return true;
}

static bool hook_spool_write(void *ctx, const void *p, size_t n)
{
	struct smtp_conn *sc = ctx;
	if (!sc->writer)
		return false;
	/* A message without SIZE= that outgrows the space above min_free stops here, so
	 * the reserve stays for deliveries and logs: 452 4.3.1 as for a full disk. */
	if (queue_writer_size(sc->writer) + n > sc->space) {
		sc->spool_no_space = true;
		return false;
	}
	if (sc->subject && !sc->subject->done)
		msg_field_scan_feed(sc->subject, p, n);
	if (queue_writer_write(sc->writer, p, n))
		return true;
	sc->spool_no_space = queue_writer_no_space(sc->writer);
	return false;
}

static bool hook_spool_flush(void *ctx)
{
	struct smtp_conn *sc = ctx;
	if (sc->writer && queue_writer_flush(sc->writer))
		return true;
	sc->spool_no_space = sc->writer && queue_writer_no_space(sc->writer);
	return false;
}

static bool hook_spool_no_space(void *ctx)
{
	struct smtp_conn *sc = ctx;
	return sc->spool_no_space;
}

/* MAIL: is there room on the queue's filesystem for a message of `size` octets (0:
 * not declared; then only "no room at all" refuses)?  statvfs at most once a second. */
static bool hook_spool_room(void *ctx, uint64_t size)
{
	struct smtp_conn *sc = ctx;
	uint64_t room = queue_space_room(sc->svc->queue);
	return room > 0 && size <= room;
}

static void hook_spool_abort(void *ctx)
{
	message_drop(ctx);
}

/* --- the event store (events/events.h): refusals, and each message accepted ---- */

static void event_fill(struct events_record *r, const struct smtp_conn *sc, enum events_kind kind, const char *login)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->when = time(NULL);
	snprintf(r->account, sizeof(r->account), "%s", login ? login : "");
	snprintf(r->client_addr, sizeof(r->client_addr), "%s", conn_addr(sc->conn));
	snprintf(r->proto, sizeof(r->proto), "smtp");
	snprintf(r->listener, sizeof(r->listener), "%s", conn_listener(sc->conn)->name);
}

/* The session wrote a refusal (smtp/respond.c's one writer). */
static void hook_refused(void *ctx, const struct smtp_refusal_note *n)
{
	struct smtp_conn *sc = ctx;
	if (!sc->svc->events)
		return;
	struct events_record r;
	event_fill(&r, sc, EVENTS_REFUSED, n->login);
	snprintf(r.cmd, sizeof(r.cmd), "%s", n->cmd ? n->cmd : "");
	r.code = n->code;
	snprintf(r.enh, sizeof(r.enh), "%s", n->enh ? n->enh : "");
	snprintf(r.cause_id, sizeof(r.cause_id), "%s", n->cause_id ? n->cause_id : "");
	snprintf(r.ref, sizeof(r.ref), "%s", n->ref ? n->ref : "");
	snprintf(r.text, sizeof(r.text), "%.*s", (int)(n->text_len < sizeof(r.text) ? n->text_len : sizeof(r.text) - 1),
		n->text ? n->text : "");
	snprintf(r.sender, sizeof(r.sender), "%s", n->mail_from ? n->mail_from : "");
	snprintf(r.rcpt, sizeof(r.rcpt), "%s", n->rcpt ? n->rcpt : "");
	events_append(sc->svc->events, &r);
}

/* The Subject: as the message had it, unfolded (RFC 5322 §2.2.3: the line ends of a
 * folded field removed), cut at a character boundary.  Raw otherwise: HOSTILE. */
static void subject_text(const struct smtp_conn *sc, char *out, size_t outsz)
{
	const char *v;
	size_t len, k = 0;
	out[0] = '\0';
	if (!sc->subject || !msg_field_scan_value(sc->subject, &v, &len))
		return;
	for (size_t i = 0; i < len && k + 1 < outsz; i++)
		if (v[i] != '\r' && v[i] != '\n')
			out[k++] = v[i];
	while (k > 0 && k + 1 >= outsz && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
		k--;   /* cut inside a UTF-8 sequence: drop its continuation octets... */
	if (k > 0 && k + 1 >= outsz && ((unsigned char)out[k - 1] & 0xC0) == 0xC0)
		k--;   /* ...and its lead octet */
	out[k] = '\0';
}

/* The message is on stable storage (or discarded by a filter): queued, held, discarded. */
static void event_message(const struct smtp_conn *sc, enum events_kind kind, const char *login, const char *qid,
	const char *sender, const char *subject, size_t n_rcpts, const char *reason)
{
	if (!sc->svc->events)
		return;
	struct events_record r;
	event_fill(&r, sc, kind, login);
	snprintf(r.qid, sizeof(r.qid), "%s", qid);
	snprintf(r.sender, sizeof(r.sender), "%s", sender);
	snprintf(r.subject, sizeof(r.subject), "%s", subject);
	snprintf(r.text, sizeof(r.text), "%s", reason ? reason : "");
	r.n_rcpts = (unsigned)n_rcpts;
	events_append(sc->svc->events, &r);
}

/* Worker thread: the blocking part.  The added header fields go into the same file
 * under the same fsync (invariant 1: never queued without them). */
static void commit_work(void *arg)
{
	struct commit_job *j = arg;
	queue_writer_set_hold(j->writer, j->hold_reason);
	if (!queue_writer_set_added(j->writer, j->added, j->added_len)) {
		snprintf(j->err, sizeof(j->err), "the added header fields (%zu octets) cannot be stored", j->added_len);
		j->ok = false;
		return;
	}
	j->ok = queue_writer_commit(j->writer, j->err, sizeof(j->err));
	j->no_space = !j->ok && queue_writer_no_space(j->writer);
}

/* Loop thread: tell the session, wake the delivery agent. */
static void commit_done(void *arg)
{
	struct commit_job *j = arg;
	struct smtp_conn *sc = j->sc;
	struct conn *c = sc->conn;
	struct service *srv = sc->svc;
	queue_writer_free(&j->writer);
	free(j->added);
	if (j->ok) {
		metrics_count(METRIC_MESSAGES_QUEUED, conn_listener(c)->name, 1);
		event_message(sc, EVENTS_QUEUED, j->sent.login, j->qid, j->sender, j->subject, j->sent.rcpts, NULL);
		if (j->hold_reason[0])
			event_message(sc, EVENTS_HELD, j->sent.login, j->qid, j->sender, j->subject, j->sent.rcpts, j->hold_reason);
	}
	if (j->ok && j->sent.counted && srv->limits)   /* counted once on stable storage: a refusal never counts */
	{
		limits_service_count(srv->limits, j->sent.login, j->sent.sender_domain, j->sent.rcpts);
		state_feed_sent(srv->state, j->sent.login, j->sent.sender_domain, j->sent.rcpts, time(NULL));
	}
	if (j->ok && j->hold_reason[0]) {
		char q[POLICY_REASON_MAX * 4 + 8];
		log_event(LOG_WARN, "held", "conn=%llu qid=%s reason=%s", (unsigned long long)conn_id(c), j->qid,
			log_quote(q, sizeof(q), j->hold_reason, strlen(j->hold_reason), POLICY_REASON_MAX));
	} else if (j->ok)
		delivery_enqueue(srv->delivery, j->qid);
	else if (!j->no_space)   /* lack of space: logged by the queue */
		log_event(LOG_ERR, "spool_error", "conn=%llu qid=%s op=commit error=\"%s\"", (unsigned long long)conn_id(c),
			j->qid, j->err);
	if (!conn_unbusy(c)) {
		free(j);
		return;
	}
	sc->spool_no_space = j->no_space;
	smtp_session_commit_done(sc->session, j->ok);
	free(j);
	conn_process(c);
}

/* A message a stage discarded (policy_facts_discard): 250, nothing queued. */
static void message_discard(struct smtp_conn *sc)
{
	char q[POLICY_REASON_MAX * 4 + 8];
	log_event(LOG_WARN, "discarded", "conn=%llu qid=%s reason=%s", (unsigned long long)conn_id(sc->conn), sc->qid,
		log_quote(q, sizeof(q), sc->disposition_reason, strlen(sc->disposition_reason), POLICY_REASON_MAX));
	char subject[256];
	subject_text(sc, subject, sizeof(subject));
	event_message(sc, EVENTS_DISCARDED, sc->sent.login, sc->qid, sc->sender, subject, sc->sent.rcpts,
		sc->disposition_reason);
	message_drop(sc);
	smtp_session_commit_done(sc->session, true);
}

static void hook_spool_commit(void *ctx)
{
	struct smtp_conn *sc = ctx;
	spool_share_release(&sc->share, false);   /* the stages are done: the commit takes the writer */
	if (sc->disposition == POLICY_DISCARD) {
		message_discard(sc);
		return;
	}
	struct commit_job *j = calloc(1, sizeof(*j));
	if (!j) {
		message_drop(sc);
		smtp_session_commit_done(sc->session, false);
		return;
	}
	j->sc = sc;
	j->sent = sc->sent;
	j->writer = sc->writer;
	sc->writer = NULL;
	j->added = sc->added;
	j->added_len = sc->added_len;
	sc->added = NULL;
	sc->added_len = 0;
	if (sc->disposition == POLICY_HOLD)
		snprintf(j->hold_reason, sizeof(j->hold_reason), "%s", sc->disposition_reason);
	sc->disposition = POLICY_QUEUE;
	memcpy(j->qid, sc->qid, sizeof(j->qid));
	memcpy(j->sender, sc->sender, sizeof(j->sender));
	subject_text(sc, j->subject, sizeof(j->subject));
	conn_busy(sc->conn);
	workq_push(sc->svc->commitq, commit_work, commit_done, j);
}

/* A refused recipient's answer held back (directory harvesting): a timer, so the
 * loop serves everyone else meanwhile.  The connection counts as busy, so it is freed
 * only after the timer, even if the client goes away. */
static void hold_cb(void *arg)
{
	struct smtp_conn *sc = arg;
	struct conn *c = sc->conn;
	if (!conn_unbusy(c))
		return;
	smtp_session_hold_done(sc->session);
	conn_process(c);
}

static void hook_hold(void *ctx, unsigned ms)
{
	struct smtp_conn *sc = ctx;
	if (conn_after(sc->conn, ms, hold_cb, sc)) {
		conn_busy(sc->conn);
		return;
	}
	smtp_session_hold_done(sc->session);   /* no timer: answer now rather than never */
}

/* LMTP between nodes: XNODE's token, made with the shared secret for purpose "lmtp"
 * (auth/node_token.h).  HMAC of a short text: cheap enough for the loop. */
static bool hook_node_check(void *ctx, const char *token, char *peer, size_t peersz, char *why, size_t whysz)
{
	struct smtp_conn *sc = ctx;
	const struct service *srv = sc->svc;
	char node[DIR_NODE_NAME_MAX];
	if (!srv->node_secret_len) {
		snprintf(why, whysz, "this server is not a node of a cluster ([cluster] node is not set)");
		return false;
	}
	bool ok = node_token_check(srv->node_secret, srv->node_secret_len, "lmtp", token, time(NULL), node);
	snprintf(peer, peersz, "%s", node);
	if (!ok)
		snprintf(why, whysz, "the token%s%s is not valid for LMTP now (another secret, or a clock more than %d s "
			"off)", node[0] ? " of node " : "", node, NODE_TOKEN_SKEW);
	log_event(ok ? LOG_INFO : LOG_WARN, ok ? "node_peer" : "node_token_refused", "conn=%llu node=%s",
		(unsigned long long)conn_id(sc->conn),
		node[0] ? node : "-");
	return ok;
}

/* This listener's port and the server's submission ports as bound (the port-25
 * trap names them: smtp/wrong_port.c). */
static void submission_ports(const struct service *srv, const struct conf_listener *l, struct smtp_conn_info *info)
{
	const struct conf *cf = srv->conf;
	for (size_t i = 0; i < cf->n_listeners && i < CONF_LISTENERS_BOUND; i++) {
		const struct conf_listener *o = &cf->listeners[i];
		unsigned port = srv->bound_port[i] ? srv->bound_port[i] : o->port;
		if (o == l)
			info->port = port;
		if (o->role != ROLE_SUBMISSION)
			continue;
		if (o->tls == TLS_IMPLICIT && !info->submissions_port)
			info->submissions_port = port;
		else if (o->tls == TLS_STARTTLS && !info->submission_port)
			info->submission_port = port;
	}
}

/* A local connection: the user's name (getpwuid_r may read files or ask a
 * directory service: never on the loop) before its first command is read. */
static void local_name_work(void *arg)
{
	struct smtp_conn *sc = arg;
	local_user_name(sc->peer.uid, sc->local_name, sizeof(sc->local_name));
}

static void local_name_done(void *arg)
{
	struct smtp_conn *sc = arg;
	struct conn *c = sc->conn;
	if (!conn_unbusy(c))
		return;
	sc->local_pending = false;
	smtp_session_local_user(sc->session, sc->local_name, sc->peer.uid);
	conn_process(c);
}

static bool op_start(struct conn *c, const char *tls_desc)
{
	struct service *srv = conn_ctx(c);
	const struct conf *cf = srv->conf;
	const struct conf_listener *l = conn_listener(c);
	struct smtp_conn *sc = calloc(1, sizeof(*sc));
	if (!sc) {
		conn_close(c);
		return false;
	}
	sc->svc = srv;
	sc->conn = c;
	sc->client_port = conn_port(c);
	if (l->n_milters && !(sc->milters = decider_milter_session(srv->decider, l))) {
		free(sc);
		conn_close(c);
		return false;
	}
	struct smtp_conn_info info = {
		.conn_id = conn_id(c), .run_id = srv->run_id, .hostname = cf->hostname, .client_addr = conn_addr(c), .client_name = NULL,
		.listener = l->name, .submission = l->role == ROLE_SUBMISSION, .trusted_network = conn_trusted(c),
		.tls_offered = l->tls == TLS_STARTTLS && conn_tls_available(c), .tls_active = tls_desc != NULL,
		.tls_description = tls_desc, .allow_plaintext_auth = l->allow_plaintext_auth,
		.check_from_header = cf->check_from_header, .authserv_id = conf_authserv_id(cf),
		.lmtp = l->role == ROLE_LMTP,
	};
	submission_ports(srv, l, &info);
	struct smtp_limits lim = {
		.max_message = cf->message_size, .max_recipients = (unsigned)cf->recipients,
		.max_line = (size_t)cf->line_length, .max_bad_commands = (unsigned)cf->bad_commands,
		.idle_timeout = (unsigned)cf->idle_timeout, .max_message_line = cf->message_line_length,
		.max_refused_rcpts = (unsigned)cf->refused_recipients,
		.refused_rcpt_delay_after = (unsigned)cf->refused_recipients_delay_after,
		.refused_rcpt_delay_ms = (unsigned)cf->refused_recipient_delay_ms,
	};
	struct smtp_hooks hooks = {
		.ctx = sc, .decide = hook_decide, .spool_open = hook_spool_open,
		.spool_write = hook_spool_write, .spool_abort = hook_spool_abort,
		.spool_commit = hook_spool_commit, .auth_blocked = hook_auth_blocked,
		.auth_verify = hook_auth_verify, .hold = hook_hold,
		.spool_room = hook_spool_room, .spool_no_space = hook_spool_no_space, .spool_flush = hook_spool_flush,
		.refused = hook_refused, .node_check = hook_node_check,
	};
	sc->session = smtp_session_new(&info, &lim, &hooks);
	if (!sc->session) {
		decider_milter_session_end(srv->decider, &sc->milters);
		free(sc);
		conn_close(c);
		return false;
	}
	conn_set_session(c, sc);
	if ((sc->local = conn_peer(c, &sc->peer))) {
		sc->local_pending = true;
		conn_busy(c);
		workq_push(srv->commitq, local_name_work, local_name_done, sc);
	}
	smtp_session_start(sc->session);
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
