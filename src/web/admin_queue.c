/* admin_queue.c - GET /admin/queue and /admin/queue/<qid>: the queue as `postern
 * queue list` and `postern queue show` print it, from the same view of queue/
 * (queue_view_list, queue_view_one), filtered by sender and state, with the
 * buttons of admin_actions.c.  Which message is being delivered right now is asked
 * of the queue runner (the queue_control hook, "inflight").  Everything shown from a
 * message (addresses, subjects, remote replies, hold reasons) is hostile and goes
 * through the escaping templates only. */
#include "web/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"

#define QUEUE_PAGE_MAX 500      /* messages on one page; the rest are counted */
#define INFLIGHT_MAX 16384

static void ask_inflight(const struct web_site *site, char *out, size_t outsz)
{
	out[0] = '\0';
	if (!site->hooks.queue_control || site->hooks.queue_control(site->hooks.ctx, "inflight", out, outsz) != 0)
		out[0] = '\0';
}

static void utc(time_t t, char *out, size_t outsz)
{
	struct tm tm;
	strftime(out, outsz, "%Y-%m-%d %H:%M UTC", gmtime_r(&t, &tm));
}

/* "<alice@example.org>", or the null sender's "<> (a bounce)" */
static void set_sender(struct web_view *v, const struct queue_envelope *env)
{
	if (env->sender[0])
		web_view_setf(v, "sender", "<%s>", env->sender);
	else
		web_view_set(v, "sender", "<> (a bounce or notice)");
}

/* "in 12m" / "now" */
static void next_try_words(long long next, time_t now, char *out, size_t outsz)
{
	if (next > now) {
		char age[32];
		queue_view_age(next - now, age, sizeof(age));
		snprintf(out, outsz, "in %s", age);
	} else {
		snprintf(out, outsz, "now");
	}
}

/* What the list says of a message beyond its envelope: held, being sent, waiting. */
static void set_summary(struct web_view *m, const struct queue_view_item *it, time_t now)
{
	const struct queue_state *st = it->st;
	if (it->state == QUEUE_VIEW_FAILED) {
		web_view_set(m, "why", it->failed_reason[0] ? it->failed_reason : "(not recorded)");
		return;
	}
	if (!st)
		return;
	if (st->held)
		web_view_set(m, "held", st->hold_reason[0] ? st->hold_reason : "by the administrator");
	if (st->damaged)
		web_view_setf(m, "damaged", "delivery state damaged (%s): %zu of %zu recipient(s) recovered", st->damage,
			st->recovered, st->n);
	if (it->pending && it->where) {
		web_view_setf(m, "sending", "being delivered now (%s); %zu recipient(s) pending", it->where, it->pending);
	} else if (it->pending) {
		char next[48];
		next_try_words(it->next_try, now, next, sizeof(next));
		web_view_set(m, "to", it->m->env.rcpts[it->first_pending]);
		if (it->pending > 1)
			web_view_setf(m, "more", "and %zu more", it->pending - 1);
		web_view_set(m, "next", next);
		const char *last = st->r[it->first_pending].last_reply;
		web_view_set(m, "last", last[0] ? last : "(not tried yet)");
	}
}

struct list_page {
	struct web_view *v;
	time_t now;
	unsigned shown, more;
};

static void add_message(void *arg, const struct queue_view_item *it)
{
	struct list_page *lp = arg;
	if (lp->shown >= QUEUE_PAGE_MAX) {
		lp->more++;
		return;
	}
	lp->shown++;
	struct web_view *m = web_view_add_item(lp->v, "messages");
	web_view_set(m, "qid", it->qid);
	web_view_set(m, "state", queue_view_state_name(it->state));
	if (!it->m) {
		web_view_set(m, "error", it->error);
		set_summary(m, it, lp->now);
		return;
	}
	char age[32];
	queue_view_age(lp->now - it->m->env.arrival, age, sizeof(age));
	web_view_set(m, "age", age);
	web_view_setf(m, "size", "%llu", (unsigned long long)queue_message_size(it->m));
	set_sender(m, &it->m->env);
	if (it->state == QUEUE_VIEW_FAILED && it->m->env.n_rcpts)
		web_view_set(m, "to", it->m->env.rcpts[0]);
	set_summary(m, it, lp->now);
}

/* ?state= as the filter's bits ("" and "all": everything, failed/ too). */
static bool state_filter(const char *state, unsigned *bits)
{
	enum queue_view_state s;
	if (!state[0] || strcmp(state, "all") == 0)
		*bits = QUEUE_VIEW_IN_ACTIVE | QUEUE_VIEW_FAILED;
	else if (!queue_view_state_parse(state, &s) || s == QUEUE_VIEW_SENDING || s == QUEUE_VIEW_DAMAGED)
		return false;
	else
		*bits = s == QUEUE_VIEW_ACTIVE ? QUEUE_VIEW_ACTIVE | QUEUE_VIEW_SENDING : (unsigned)s;
	return true;
}

static void filter_form(struct web_view *v, const char *sender, const char *state)
{
	static const char *const states[] = { "all", "active", "deferred", "held", "failed" };
	web_view_set(v, "f_sender", sender);
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		struct web_view *o = web_view_add_item(v, "states");
		web_view_set(o, "value", states[i]);
		web_view_set(o, "selected", strcmp(states[i], state[0] ? state : "all") == 0 ? "yes" : "");
	}
}

void web_admin_queue(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char sender[QUEUE_ADDR_MAX] = "", state[16] = "";
	if (!http_query_param(req, "sender", sender, sizeof(sender)))
		sender[0] = '\0';
	if (!http_query_param(req, "state", state, sizeof(state)))
		state[0] = '\0';
	struct queue_view_filter f = { .sender = sender };
	if (!state_filter(state, &f.states)) {
		web_words_page(site, u, resp, 400, "Queue", "There is no such state to filter by.",
			"The queue knows the states active, deferred, held and failed.", "Pick one from the list on the queue page.");
		return;
	}
	char *inflight = malloc(INFLIGHT_MAX);
	struct web_view *v = web_view_new();
	struct list_page lp = { .v = v, .now = time(NULL) };
	if (inflight)
		ask_inflight(site, inflight, INFLIGHT_MAX);
	bool ok = inflight && site->queue && queue_view_list(site->queue, &f, inflight, add_message, &lp);
	free(inflight);
	filter_form(v, sender, state);
	if (!ok)
		web_view_set(v, "list_error", site->queue ? strerror(errno) : "the queue is not open");
	web_view_setf(v, "count", "%u", lp.shown + lp.more);
	if (lp.more)
		web_view_setf(v, "more", "%u more not shown: filter by sender or state to see them.", lp.more);
	web_view_set(v, "filtered", sender[0] || (state[0] && strcmp(state, "all") != 0) ? "yes" : "");
	web_page(site, u, "admin_queue", "Queue", v, resp);
	web_view_free(&v);
}

/* --- one message ----------------------------------------------------------------- */

static void add_action(struct web_view *v, const char *action, const char *label, const char *about, bool danger)
{
	struct web_view *a = web_view_add_item(v, "actions");
	web_view_set(a, "action", action);
	web_view_set(a, "label", label);
	web_view_set(a, "about", about);
	web_view_set(a, "danger", danger ? "yes" : "");
}

/* The buttons a message in this state has (admin_actions.c runs them). */
static void add_actions(struct web_view *v, const struct queue_view_item *it)
{
	if (it->state == QUEUE_VIEW_FAILED) {
		add_action(v, "requeue", "Try again", "back into the queue, every recipient tried now", false);
		add_action(v, "delete", "Delete", "remove it from queue/failed/ for good", true);
		return;
	}
	if (it->state == QUEUE_VIEW_DAMAGED)
		return;   /* the queue runner moves it to queue/failed/ */
	if (it->st && it->st->held) {
		add_action(v, "release", "Release", "deliver it: every pending recipient is tried now", false);
	} else {
		add_action(v, "retry", "Try now", "try its pending recipients now", false);
		add_action(v, "hold", "Hold", "no delivery until you release it", false);
	}
	add_action(v, "bounce", "Bounce", "remove it and return it to its sender with a report", true);
	add_action(v, "delete", "Delete", "remove it silently: neither sender nor recipients are told", true);
}

static void add_recipients(struct web_view *v, const struct queue_view_item *it, time_t now)
{
	const struct queue_message *m = it->m;
	for (size_t i = 0; i < m->env.n_rcpts; i++) {
		struct web_view *r = web_view_add_item(v, "recipients");
		web_view_set(r, "address", m->env.rcpts[i]);
		if (!it->st || i >= it->st->n)
			continue;
		const struct queue_rcpt_state *rs = &it->st->r[i];
		web_view_set(r, "state", queue_view_rcpt_state(rs));
		web_view_setf(r, "attempts", "%u", rs->attempts);
		if (rs->state == RCPT_PENDING) {
			char next[48];
			next_try_words(rs->next_try, now, next, sizeof(next));
			web_view_set(r, "next", next);
		}
		web_view_set(r, "last", rs->last_reply[0] ? rs->last_reply : "(not tried yet)");
	}
}

struct one_page {
	struct web_view *v;
	time_t now;
};

static void show_message(void *arg, const struct queue_view_item *it)
{
	struct one_page *op = arg;
	struct web_view *v = op->v;
	web_view_set(v, "qid", it->qid);
	web_view_set(v, "state", queue_view_state_name(it->state));
	web_view_set(v, "where", it->where);
	web_view_set(v, "error", it->error);
	set_summary(v, it, op->now);
	add_actions(v, it);
	if (!it->m)
		return;
	const struct queue_envelope *env = &it->m->env;
	char when[64];
	utc(env->arrival, when, sizeof(when));
	web_view_set(v, "arrived", when);
	web_view_setf(v, "client", "%s (HELO %s, %s)", env->client_addr, env->helo, env->protocol);
	set_sender(v, env);
	web_view_setf(v, "size", "%llu", (unsigned long long)queue_message_size(it->m));
	add_recipients(v, it, op->now);
	char *header = malloc(8192);
	if (header && queue_view_header(it->m, header, 8192))
		web_view_set(v, "header", header);
	free(header);
}

void web_admin_message(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char qid[QUEUE_ID_LEN + 2];
	if (!web_admin_path_tail(req, "/admin/queue/", qid, sizeof(qid)) || !id_is_queue_id(qid)) {
		web_words_page(site, u, resp, 404, "Queue", "That is not a queue id.",
			"A queue id is 16 hexadecimal digits, as the queue page lists them.", "Open the message from the queue page.");
		return;
	}
	char *inflight = malloc(INFLIGHT_MAX);
	struct web_view *v = web_view_new();
	struct one_page op = { .v = v, .now = time(NULL) };
	if (inflight)
		ask_inflight(site, inflight, INFLIGHT_MAX);
	bool found = inflight && site->queue && queue_view_one(site->queue, qid, inflight, show_message, &op);
	free(inflight);
	if (found) {
		char title[64];
		snprintf(title, sizeof(title), "Message %s", qid);
		web_page(site, u, "admin_message", title, v, resp);
	} else {
		char what[128];
		snprintf(what, sizeof(what), "There is no message %s in the queue.", qid);
		web_words_page(site, u, resp, 404, "Queue", what,
			"It may have been delivered, bounced or deleted meanwhile (also queue/failed/ was looked in).",
			"Go back to the queue page for the messages there now.");
	}
	web_view_free(&v);
}
