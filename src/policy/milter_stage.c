/* milter_stage.c - the content filters (milters) as decision stages (policy.h
 * "content filters"), in the order Postfix talks to its smtpd_milters:
 *
 *   MAIL         connect and helo on the first use of a conversation (lazily: a
 *                session that never sends mail never wakes a filter), then mail; an
 *                earlier transaction that ended without end of message is aborted first;
 *   RCPT         rcpt (a refusal refuses that recipient only);
 *   END_OF_DATA  data, every header field of H (the fields stages added, then the
 *                spooled message's, Postern's Received: first), end of headers, the
 *                body from the spool file in chunks of at most 65,535 octets, end of
 *                message; then the changes the filters asked for.
 *
 * Each step sends the macros Postfix sends at that step.  Every filter of the
 * listener is asked in turn, on the filters' own threads (the milter room's driver
 * blocks, under the filter's time-outs); the first refusal wins.  A filter that is
 * down, slow or answers garbage (MILTER_FAILED) gets its default action, never a
 * protocol error; its conversation is closed and opened again at the next
 * transaction. */
#include "policy/milter_stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "util/log.h"
#include "util/metrics.h"

#define MACROS_MAX 16
#define STAGE_TIMEOUT_CAP_MS (600u * 1000u)  /* RFC 5321 §4.5.3.2.6: a client waits 10 minutes at the end of data */
#define ENVELOPE_TIMEOUT_CAP_MS (300u * 1000u)   /* §4.5.3.2.2-3: 5 minutes for MAIL and RCPT */

struct macros {
	struct milter_macro m[MACROS_MAX];
	size_t n;
	char port[12], bits[12], underscore[POLICY_DOMAIN_MAX + 80], addr[POLICY_ADDR_MAX + 2];
};

static void macro(struct macros *ms, const char *name, const char *value)
{
	if (ms->n < MACROS_MAX && value)
		ms->m[ms->n++] = (struct milter_macro){ name, value };
}

/* connect: who we are and who the client is (Postfix milter_connect_macros, with
 * the client's own macros, which rspamd reads). */
static void connect_macros(const struct policy_milters *pm, const struct policy_facts *f, struct macros *ms)
{
	snprintf(ms->port, sizeof(ms->port), "%u", f->client_port);
	snprintf(ms->underscore, sizeof(ms->underscore), "%s [%s]", f->client_name[0] ? f->client_name : "unknown",
		f->client_addr);
	macro(ms, "j", pm->conf->hostname);
	macro(ms, "{daemon_name}", f->listener);
	macro(ms, "{daemon_addr}", f->daemon_addr);
	macro(ms, "v", "Postern");
	macro(ms, "_", ms->underscore);
	macro(ms, "{client_addr}", f->client_addr);
	macro(ms, "{client_port}", ms->port);
	macro(ms, "{client_name}", f->client_name[0] ? f->client_name : "unknown");
}

/* helo: the TLS facts (milter_helo_macros). */
static void helo_macros(const struct policy_facts *f, struct macros *ms)
{
	if (!f->tls_version[0])
		return;
	snprintf(ms->bits, sizeof(ms->bits), "%d", f->tls_cipher_bits);
	macro(ms, "{tls_version}", f->tls_version);
	macro(ms, "{cipher}", f->tls_cipher);
	macro(ms, "{cipher_bits}", ms->bits);
}

/* mail: the login (a filter scores a logged-in user's mail as outbound) and the sender. */
static void mail_macros(const struct policy_facts *f, struct macros *ms)
{
	if (f->login[0]) {
		macro(ms, "{auth_type}", f->auth_mech[0] ? f->auth_mech : "PLAIN");
		macro(ms, "{auth_authen}", f->login);
	}
	macro(ms, "{mail_addr}", f->address);
	macro(ms, "{mail_host}", f->null_sender ? "" : f->domain);
	macro(ms, "{mail_mailer}", f->null_sender ? "error" : "smtp");
}

static void rcpt_macros(const struct policy_facts *f, struct macros *ms)
{
	macro(ms, "{rcpt_addr}", f->address);
	macro(ms, "{rcpt_host}", f->domain);
	macro(ms, "{rcpt_mailer}", f->rcpt.domain_local ? "local" : "smtp");
}

/* "<address>" as the MAIL and RCPT commands carry it. */
static const char *angle(const struct policy_facts *f, struct macros *ms)
{
	snprintf(ms->addr, sizeof(ms->addr), "<%s>", f->address);
	return ms->addr;
}

/* A filter's answer to one step.  True: go on with this filter; false: it has
 * finished with this decision (refused, accepted, failed, discarded). */
bool milter_judge(struct milter_peer *p, const struct policy_facts *f, enum milter_verdict mv,
	const struct milter_outcome *out, struct verdict *v)
{
	switch (mv) {
	case MILTER_CONTINUE:
	case MILTER_SKIP:
		return true;
	case MILTER_ACCEPT:
		p->done = true;   /* nothing more from it in this transaction */
		return false;
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
	case MILTER_REPLYCODE:
		milter_refusal_verdict(p, f->point, mv, out->reply, v);
		log_event(LOG_INFO, "milter_refused", "conn=%llu filter=%s code=%d", f->conn_id, p->fc.name, v->code);
		if (f->point != POLICY_AT_RCPT)
			p->done = true;
		return false;
	case MILTER_DISCARD:
		p->discard = true;
		p->done = true;
		return false;
	case MILTER_QUARANTINE:
		p->quarantine = true;
		snprintf(p->quarantine_reason, sizeof(p->quarantine_reason), "%s", out->reason);
		return true;
	case MILTER_FAILED:
		break;
	}
	p->failed = true;
	snprintf(p->failure, sizeof(p->failure), "%s", out->failure[0] ? out->failure : "failed");
	milter_peer_drop(p);
	milter_failure_verdict(p, f, p->failure, v);
	if (v->kind == VERDICT_OK)
		p->done = true;   /* default accept: as if it had accepted */
	return false;
}

/* The failure of a peer that never got a conversation. */
static bool fail_with(struct milter_peer *p, const struct policy_facts *f, const char *what, struct verdict *v)
{
	struct milter_outcome out = { .verdict = MILTER_FAILED };
	snprintf(out.failure, sizeof(out.failure), "%s", what);
	return milter_judge(p, f, MILTER_FAILED, &out, v);
}

/* connect and helo, once per conversation (helo again after a new EHLO). */
static bool greet(const struct policy_milters *pm, struct milter_peer *p, const struct policy_facts *f,
	struct verdict *v)
{
	struct milter_outcome out;
	memset(&out, 0, sizeof(out));
	enum milter_verdict mv = MILTER_CONTINUE;
	if (!p->mc) {
		p->mc = milter_open(&p->fc, NULL, &out);
		if (!p->mc)
			return fail_with(p, f, out.failure[0] ? out.failure : "cannot connect", v);
	}
	if (!p->greeted) {
		struct macros ms = { .n = 0 };
		connect_macros(pm, f, &ms);
		char family = strchr(f->client_addr, ':') ? '6' : '4';
		mv = milter_connect(p->mc, ms.m, ms.n, f->client_name[0] ? f->client_name : "unknown", family, f->client_port,
			f->client_addr, &out);
		p->greeted = true;
	}
	if (mv == MILTER_CONTINUE && f->helo[0] && strcmp(p->helo, f->helo) != 0) {
		struct macros ms = { .n = 0 };
		helo_macros(f, &ms);
		mv = milter_helo(p->mc, ms.m, ms.n, f->helo, &out);
		snprintf(p->helo, sizeof(p->helo), "%s", f->helo);
	}
	bool go_on = milter_judge(p, f, mv, &out, v);
	if (!go_on && (mv == MILTER_REJECT || mv == MILTER_TEMPFAIL || mv == MILTER_REPLYCODE)) {
		/* A refused connection stays refused for the session (as Postfix does). */
		p->session_refusal = mv;
		snprintf(p->session_reply, sizeof(p->session_reply), "%s", out.reply);
	}
	milter_outcome_clear(&out);
	return go_on;
}

static void at_mail(const struct policy_milters *pm, struct milter_peer *p, const struct policy_facts *f,
	struct verdict *v)
{
	if (p->mc && p->in_txn)
		milter_abort(p->mc);   /* the last transaction ended without end of message */
	p->in_txn = false;
	p->txn = f->txn.milter_txn;
	p->done = p->failed = p->discard = p->quarantine = false;
	if (p->session_refusal != MILTER_CONTINUE) {
		struct milter_outcome out = { .verdict = p->session_refusal };
		snprintf(out.reply, sizeof(out.reply), "%s", p->session_reply);
		milter_judge(p, f, p->session_refusal, &out, v);
		return;
	}
	if (!greet(pm, p, f, v))
		return;
	struct macros ms = { .n = 0 };
	mail_macros(f, &ms);
	char size[40];
	const char *argv[2] = { angle(f, &ms), size };
	snprintf(size, sizeof(size), "SIZE=%llu", f->declared_size);
	struct milter_outcome out;
	memset(&out, 0, sizeof(out));
	enum milter_verdict mv = milter_mail(p->mc, ms.m, ms.n, argv, f->declared_size ? 2 : 1, &out);
	p->in_txn = mv != MILTER_FAILED;
	milter_judge(p, f, mv, &out, v);
	milter_outcome_clear(&out);
}

static void at_rcpt(struct milter_peer *p, const struct policy_facts *f, struct verdict *v)
{
	struct macros ms = { .n = 0 };
	rcpt_macros(f, &ms);
	const char *argv[1] = { angle(f, &ms) };
	struct milter_outcome out;
	memset(&out, 0, sizeof(out));
	milter_judge(p, f, milter_rcpt(p->mc, ms.m, ms.n, argv, 1, &out), &out, v);
	milter_outcome_clear(&out);
}

/* One filter's turn in this decision. */
static void ask_peer(const struct policy_milters *pm, struct milter_peer *p, struct policy_facts *f,
	const struct milter_message *msg, struct verdict *v)
{
	if (f->point == POLICY_AT_MAIL) {
		at_mail(pm, p, f, v);
		return;
	}
	if (p->txn != f->txn.milter_txn || p->done)
		return;   /* not in this transaction, or it accepted the message already */
	if (p->failed) {   /* its default action answers for the rest of the transaction */
		milter_failure_verdict(p, f, p->failure, v);
		return;
	}
	if (!p->mc) {
		fail_with(p, f, "has no open conversation", v);
		return;
	}
	if (f->point == POLICY_AT_RCPT)
		at_rcpt(p, f, v);
	else if (f->point == POLICY_AT_END_OF_DATA)
		milter_message_send(p, f, msg, v);
}

static void stage_milter(void *ctx, struct policy_facts *f, struct verdict *v)
{
	const struct policy_milters *pm = ctx;
	struct policy_milter_session *ms = f->milters;
	milter_session_hold(ms);
	if (f->point == POLICY_AT_MAIL)
		f->txn.milter_txn = milter_session_new_txn(ms);
	struct milter_message msg;
	bool have_msg = f->point != POLICY_AT_END_OF_DATA || milter_message_open(&msg, f);
	if (!have_msg)
		log_event(LOG_ERR, "milter_failed", "conn=%llu what=\"the spooled message cannot be read\"", f->conn_id);
	bool asked[CONF_MAX_MILTERS] = { false };
	for (size_t i = 0; i < ms->n && v->kind == VERDICT_OK; i++) {
		struct milter_peer *p = milter_peer_claim(ms, i);
		asked[i] = p != NULL;
		if (!p && milter_session_ended(ms))
			break;   /* nobody waits for this verdict any more */
		if (!p) {
			/* A stage that timed out still holds this filter: it has failed for us. */
			milter_failure_verdict(&ms->peers[i], f, "still busy with a command that did not answer in time", v);
			continue;
		}
		double t0 = metrics_now();
		if (have_msg)
			ask_peer(pm, p, f, &msg, v);
		else if (f->txn.milter_txn == p->txn && !p->done)
			fail_with(p, f, "the spooled message cannot be read", v);
		metrics_observe(METRIC_MILTER_DURATION, p->fc.name, metrics_now() - t0);
		milter_peer_unclaim(ms, p);
	}
	if (f->point == POLICY_AT_END_OF_DATA && have_msg) {
		if (v->kind == VERDICT_OK)
			milter_message_finish(ms, f, asked, v);
		milter_message_close(&msg);
	}
	milter_session_release(ms);
}

static bool milter_wanted(void *ctx, const struct policy_facts *f)
{
	(void)ctx;
	if (!f->milters)
		return false;
	return f->point == POLICY_AT_MAIL || ((f->point == POLICY_AT_RCPT || f->point == POLICY_AT_END_OF_DATA)
		&& f->txn.milter_txn != 0);
}

static const char *milter_describe(void *ctx, const struct policy_facts *f, char *out, size_t outsz)
{
	(void)ctx;
	size_t o = (size_t)snprintf(out, outsz, "the content filter%s (", f->milters && f->milters->n > 1 ? "s" : "");
	for (size_t i = 0; f->milters && i < f->milters->n && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? ", " : "", f->milters->peers[i].display);
	if (o < outsz)
		snprintf(out + o, outsz - o, ")");
	return out;
}

/* The pipeline's own bound, above the filters' time-outs (which answer first, with
 * the default action): every command of the longest listener's filters at its
 * time-out, the end of message at ten times content_timeout (progress), capped by
 * how long a client waits. */
static unsigned backstop_ms(const struct conf *c, bool content)
{
	unsigned long long worst = 0;
	for (size_t i = 0; i < c->n_listeners; i++) {
		unsigned long long sum = 0;
		for (size_t k = 0; k < c->listeners[i].n_milters; k++) {
			const struct conf_milter *m = &c->milters[c->listeners[i].milters[k]];
			sum += content ? 8ull * m->command_timeout_ms + 10ull * m->content_timeout_ms
				: m->connect_timeout_ms + 5ull * m->command_timeout_ms;
		}
		worst = sum > worst ? sum : worst;
	}
	unsigned cap = content ? STAGE_TIMEOUT_CAP_MS : ENVELOPE_TIMEOUT_CAP_MS;
	return worst + 5000 > cap ? cap : (unsigned)worst + 5000;
}

bool policy_add_milter_stage(struct policy_pipeline *p, struct policy_milters *m)
{
	struct policy_stage envelope = {
		.name = "milter", .words = "the content filter",
		.points = POLICY_AT(POLICY_AT_MAIL) | POLICY_AT(POLICY_AT_RCPT),
		.does_io = true, .timeout_ms = backstop_ms(m->conf, false),
		.decide = stage_milter, .wanted = milter_wanted, .describe = milter_describe,
		.executor = m->executor, .ctx = m,
	};
	struct policy_stage content = envelope;
	content.points = POLICY_AT(POLICY_AT_END_OF_DATA);
	content.timeout_ms = backstop_ms(m->conf, true);
	return policy_pipeline_add(p, &envelope) && policy_pipeline_add(p, &content);
}
