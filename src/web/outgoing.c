/* outgoing.c - "My outgoing mail" (see user.h): GET /mail, the account's messages and
 * refused attempts of the store's retention period, newest first; GET /mail/<id>,
 * one of them in full.
 *
 * The records come from the event store (events_list: those whose login is the
 * account, whose MAIL FROM is an address the account may send as, or whose message
 * the account queued), so one user never sees another's: the id in the URL is only
 * looked up among the account's own records, and an id that is not there is a 404
 * that says no more than "not yours or not kept".  A message's records share its qid:
 * the newest per recipient says where it stands.  Refusals carry explain's cause id:
 * its words and fixes come from the knowledge base loaded into the site; a returned
 * message's remote words are matched against the same base.  Every string of a
 * record is hostile (subjects, addresses, remote replies): it goes into the view as
 * text, which the template engine escapes. */
#include "web/user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "diag/explain.h"
#include "directory/directory.h"
#include "util/id.h"
#include "web/app.h"

/* --- grouping (pure) --------------------------------------------------------------- */

const char *outgoing_state_name(enum outgoing_state s)
{
	switch (s) {
	case OUT_REFUSED: return "refused";
	case OUT_QUEUED: return "accepted";
	case OUT_WAITING: return "waiting";
	case OUT_DELIVERED: return "delivered";
	case OUT_RETURNED: return "returned";
	case OUT_HELD: return "held";
	case OUT_DELETED: return "deleted";
	}
	return "unknown";
}

static enum outgoing_state kind_state(enum events_kind k)
{
	switch (k) {
	case EVENTS_REFUSED: return OUT_REFUSED;
	case EVENTS_DELIVERED: return OUT_DELIVERED;
	case EVENTS_DEFERRED: case EVENTS_DELAY_NOTICE: case EVENTS_RELEASED: return OUT_WAITING;
	case EVENTS_BOUNCED: return OUT_RETURNED;
	case EVENTS_HELD: return OUT_HELD;
	case EVENTS_DISCARDED: case EVENTS_DELETED: return OUT_DELETED;
	case EVENTS_QUEUED: break;
	}
	return OUT_QUEUED;
}

/* How much a state asks of the user: the message's headline is its worst recipient. */
static int state_weight(enum outgoing_state s)
{
	static const int w[] = { [OUT_REFUSED] = 6, [OUT_RETURNED] = 5, [OUT_HELD] = 4, [OUT_WAITING] = 3,
		[OUT_DELETED] = 2, [OUT_QUEUED] = 1, [OUT_DELIVERED] = 0 };
	return w[s];
}

static struct outgoing_item *item_for_qid(struct outgoing_item *items, size_t n, const char *qid)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].qid[0] && strcmp(items[i].qid, qid) == 0)
			return &items[i];
	return NULL;
}

/* The recipient's entry; a new one when the item has room. */
static struct outgoing_rcpt *rcpt_for(struct outgoing_item *it, const char *address)
{
	for (size_t i = 0; i < it->n_rcpts; i++)
		if (strcasecmp(it->rcpts[i].address, address) == 0)
			return &it->rcpts[i];
	if (it->n_rcpts >= OUTGOING_RCPTS_MAX)
		return NULL;
	struct outgoing_rcpt *r = &it->rcpts[it->n_rcpts++];
	memset(r, 0, sizeof(*r));
	r->address = address;
	r->state = OUT_QUEUED;
	return r;
}

/* One record into its message (records come newest first: the first seen per
 * recipient is where it stands now). */
static void add_to_message(struct outgoing_item *it, const struct events_record *r)
{
	it->n_events++;
	if (r->kind == EVENTS_QUEUED) {
		it->queued = r;
		return;
	}
	if (!r->rcpt[0]) {
		/* a whole-message event (held, released, deleted by the administrator) counts
		 * only when it is the newest thing that happened */
		if (it->n_events == 1)
			it->state = kind_state(r->kind);
		return;
	}
	struct outgoing_rcpt *rc = rcpt_for(it, r->rcpt);
	if (!rc)
		return;
	if (r->kind == EVENTS_DELAY_NOTICE) {
		rc->delay_notice = true;
		return;
	}
	if (!rc->last) {
		rc->last = r;
		rc->state = kind_state(r->kind);
	}
}

static void settle(struct outgoing_item *it)
{
	if (!it->qid[0])
		return;
	bool whole = it->state == OUT_HELD || it->state == OUT_DELETED;
	if (!whole)
		it->state = it->n_rcpts ? OUT_DELIVERED : OUT_QUEUED;
	for (size_t i = 0; i < it->n_rcpts && !whole; i++)
		if (state_weight(it->rcpts[i].state) > state_weight(it->state))
			it->state = it->rcpts[i].state;
}

size_t outgoing_group(const struct events_record *recs, size_t n, struct outgoing_item *items, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct events_record *r = &recs[i];
		struct outgoing_item *it = r->qid[0] ? item_for_qid(items, k, r->qid) : NULL;
		if (!it) {
			if (k >= max)
				continue;
			it = &items[k++];
			memset(it, 0, sizeof(*it));
			it->head = r;
			snprintf(it->qid, sizeof(it->qid), "%s", r->qid);
			it->state = r->qid[0] ? OUT_QUEUED : OUT_REFUSED;
		}
		if (r->qid[0])
			add_to_message(it, r);
		else
			it->n_events = 1;
	}
	for (size_t i = 0; i < k; i++)
		settle(&items[i]);
	return k;
}

/* --- the pages ---------------------------------------------------------------------- */

static void format_when(time_t t, char *out, size_t outsz)
{
	struct tm tm;
	if (t <= 0 || !gmtime_r(&t, &tm) || strftime(out, outsz, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(out, outsz, "unknown");
}

struct senders {
	char list[OUTGOING_SENDERS_MAX][DIR_ADDRESS_MAX];
	const char *ptr[OUTGOING_SENDERS_MAX];
	size_t n;
	const char *user;
};

static void add_sender(struct senders *s, const char *address)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->list[i], address) == 0)
			return;
	if (s->n < OUTGOING_SENDERS_MAX) {
		snprintf(s->list[s->n], sizeof(s->list[s->n]), "%s", address);
		s->ptr[s->n] = s->list[s->n];
		s->n++;
	}
}

static void sender_cb(void *arg, const char *address)
{
	add_sender(arg, address);
}

static void alias_cb(void *arg, const char *alias, const char *target)
{
	struct senders *s = arg;
	if (strcasecmp(target, s->user) == 0)
		add_sender(s, alias);
}

/* The addresses the account may send as: its own, its grants, the aliases to it. */
static void account_senders(struct web_worker *w, const char *user, struct senders *s)
{
	s->n = 0;
	s->user = user;
	add_sender(s, user);
	directory_sender_list(w->dir, user, sender_cb, s);
	directory_alias_list(w->dir, alias_cb, s);
}

/* The worker's reader of the event store, opened on first use (serve/web.c closes it). */
static struct events_reader *reader(const struct web_site *site, struct web_worker *w, char *err, size_t errsz)
{
	if (!w->events && !events_reader_open_conf(&w->events, site->conf, err, errsz))
		return NULL;
	return w->events;
}

/* The account's records (newest first) into *out (malloc'd); -1 with words in err. */
static long account_records(const struct web_site *site, struct web_worker *w, const char *user, const char *qid,
	long long before_id, size_t limit, struct events_record **out, char *err, size_t errsz)
{
	*out = NULL;
	if (!site->conf->events_enabled) {
		snprintf(err, errsz, "this server keeps no record of outgoing mail ([events] enabled = no): ask the "
			"administrator");
		return -1;
	}
	char why[256];
	struct events_reader *r = reader(site, w, why, sizeof(why));
	if (!r) {
		snprintf(err, errsz, "the record of outgoing mail cannot be read now (%s): try again in a minute", why);
		return -1;
	}
	struct senders *s = calloc(1, sizeof(*s));
	struct events_record *recs = calloc(limit, sizeof(*recs));
	long n = -1;
	if (s && recs) {
		account_senders(w, user, s);
		struct events_query q = { .account = user, .senders = s->ptr, .n_senders = s->n, .limit = limit,
			.since = time(NULL) - (time_t)site->conf->events_retention, .before_id = before_id, .qid = qid };
		n = events_list(r, &q, recs, limit);
	}
	free(s);
	if (n < 0) {
		snprintf(err, errsz, "the record of outgoing mail could not be read: try again in a minute");
		free(recs);
		return -1;
	}
	*out = recs;
	return n;
}

/* The fixes of a cause into view list `key`; the one for the user's mail program
 * marked (program NULL: none marked). */
static void add_cause(struct web_view *v, const struct explain_cause *c, const struct setup_program *program)
{
	struct web_view *ci = web_view_add_item(v, "causes");
	web_view_set(ci, "cause_id", c->id);
	web_view_set(ci, "cause_words", c->words);
	for (int pass = 0; pass < 2; pass++)       /* the user's program's fix first */
		for (int i = 0; i < c->n_fixes; i++) {
			bool mine = program && strstr(c->fixes[i], program->fix_keyword);
			if (mine != (pass == 0))
				continue;
			struct web_view *f = web_view_add_item(ci, "fixes");
			web_view_set(f, "fix", c->fixes[i]);
			web_view_set(f, "mine", mine ? "yes" : "");
		}
}

/* What a remote's reply (or our refusal) means, by the knowledge base. */
static void add_explanation(const struct web_site *site, struct web_view *v, const struct events_record *r,
	const struct setup_program *program)
{
	if (!site->kb)
		return;
	if (r->cause_id[0] && explain_cause_id_valid(r->cause_id) && strcmp(r->cause_id, "unknown") != 0) {
		add_cause(v, explain_kb_cause(site->kb, r->cause_id), program);
		return;
	}
	char text[1200];
	snprintf(text, sizeof(text), "%d %s %s", r->code, r->enh, r->text);
	struct explain_result res;
	explain_match(site->kb, text, strlen(text), &res);
	web_view_set(v, "meaning", res.meaning);
	for (int i = 0; i < res.n_causes && res.known; i++)
		add_cause(v, res.causes[i], program);
}

/* The program the user picked (?program=): its fixes are marked. */
static const struct setup_program *chosen_program(const struct http_request *req, struct web_view *v)
{
	char id[32] = "";
	http_query_param(req, "program", id, sizeof(id));
	const struct setup_program *p = setup_program_find(id);
	for (size_t i = 0; i < setup_n_programs; i++) {
		struct web_view *o = web_view_add_item(v, "programs");
		web_view_set(o, "id", setup_programs[i].id);
		web_view_set(o, "name", setup_programs[i].name);
		web_view_set(o, "selected", p == &setup_programs[i] ? "yes" : "");
	}
	web_view_set(v, "program", p ? p->id : "");
	return p;
}

/* The words of one recipient's newest event. */
static void rcpt_words(const struct outgoing_rcpt *rc, char *out, size_t outsz)
{
	const struct events_record *r = rc->last;
	char when[40], next[40];
	if (!r) {
		snprintf(out, outsz, "accepted, not tried yet");
		return;
	}
	format_when(r->when, when, sizeof(when));
	if (rc->state == OUT_DELIVERED)
		snprintf(out, outsz, "delivered %s to %s", when, r->where[0] ? r->where : "the next server");
	else if (rc->state == OUT_WAITING) {
		format_when((time_t)r->next_try, next, sizeof(next));
		snprintf(out, outsz, "waiting since %s: %s; next try %s%s", when, r->text, r->next_try ? next : "soon",
			rc->delay_notice ? "; a delay notice was sent to you" : "");
	} else if (rc->state == OUT_RETURNED)
		snprintf(out, outsz, "returned %s: %d %s %s", when, r->code, r->enh, r->text);
	else
		snprintf(out, outsz, "%s %s", outgoing_state_name(rc->state), when);
}

/* One line of the list. */
static void list_item(struct web_view *v, const struct outgoing_item *it)
{
	const struct events_record *h = it->head;
	struct web_view *e = web_view_add_item(v, "items");
	char when[40], to[600] = "", summary[1400];
	format_when(it->queued ? it->queued->when : h->when, when, sizeof(when));
	web_view_set(e, "when", when);
	web_view_set(e, "state", outgoing_state_name(it->state));
	if (it->qid[0]) {
		web_view_setf(e, "href", "/mail/%s", it->qid);
		web_view_set(e, "subject", it->queued && it->queued->subject[0] ? it->queued->subject : "(no subject)");
		for (size_t i = 0; i < it->n_rcpts; i++) {
			size_t o = strlen(to);
			snprintf(to + o, sizeof(to) - o, "%s%s", o ? ", " : "", it->rcpts[i].address);
		}
		const struct outgoing_rcpt *worst = NULL;
		for (size_t i = 0; i < it->n_rcpts; i++)
			if (it->rcpts[i].state == it->state)
				worst = &it->rcpts[i];
		if (worst)
			rcpt_words(worst, summary, sizeof(summary));
		else
			snprintf(summary, sizeof(summary), "%s", it->state == OUT_QUEUED ? "accepted, not tried yet"
				: outgoing_state_name(it->state));
	} else {
		web_view_setf(e, "href", "/mail/%lld", h->id);
		web_view_setf(e, "subject", "Refused at %s", h->cmd[0] ? h->cmd : "connection");
		snprintf(to, sizeof(to), "%s", h->rcpt);
		snprintf(summary, sizeof(summary), "%d %s %s", h->code, h->enh, h->text);
	}
	web_view_set(e, "to", to[0] ? to : "-");
	web_view_set(e, "summary", summary);
}

void web_outgoing_list(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	chosen_program(req, v);
	web_view_setf(v, "days", "%llu", (unsigned long long)(site->conf->events_retention / 86400));
	char err[400];
	struct events_record *recs;
	long n = account_records(site, w, u->address, NULL, 0, OUTGOING_LIST_MAX, &recs, err, sizeof(err));
	struct outgoing_item *items = n > 0 ? calloc((size_t)n, sizeof(*items)) : NULL;
	if (n < 0)
		web_view_set(v, "error", err);
	else if (n > 0 && items) {
		size_t k = outgoing_group(recs, (size_t)n, items, (size_t)n);
		for (size_t i = 0; i < k; i++)
			list_item(v, &items[i]);
	}
	web_page(site, u, "outgoing", "My outgoing mail", v, resp);
	snprintf(resp->log_note, sizeof(resp->log_note), "account page=mail records=%ld", n);
	free(items);
	free(recs);
	web_view_free(&v);
}

/* --- GET /mail/<qid or event id> ------------------------------------------------------- */

static void record_fields(struct web_view *e, const struct events_record *r)
{
	char when[40];
	format_when(r->when, when, sizeof(when));
	web_view_set(e, "when", when);
	web_view_set(e, "kind", events_kind_name(r->kind));
	web_view_set(e, "rcpt", r->rcpt);
	web_view_set(e, "sender", r->sender[0] ? r->sender : "(none)");
	web_view_set(e, "login", r->account[0] ? r->account : "");
	web_view_set(e, "client", r->client_addr);
	web_view_set(e, "listener", r->listener);
	web_view_set(e, "cmd", r->cmd);
	if (r->code)
		web_view_setf(e, "reply", "%d %s %s", r->code, r->enh, r->text);
	else
		web_view_set(e, "reply", r->text);
	web_view_set(e, "ref", r->ref);
	web_view_set(e, "where", r->where);
}

static void show_refusal(const struct web_site *site, struct web_view *v, const struct events_record *r,
	const struct setup_program *program)
{
	web_view_set(v, "refusal", "yes");
	record_fields(v, r);
	add_explanation(site, v, r, program);
}

static void show_rcpt(const struct web_site *site, struct web_view *v, const struct outgoing_rcpt *rc,
	const struct setup_program *program)
{
	struct web_view *e = web_view_add_item(v, "rcpts");
	char words[1400];
	rcpt_words(rc, words, sizeof(words));
	web_view_set(e, "address", rc->address);
	web_view_set(e, "state", outgoing_state_name(rc->state));
	web_view_set(e, "words", words);
	if (rc->last && rc->state == OUT_RETURNED)
		add_explanation(site, e, rc->last, program);
}

static void show_message(const struct web_site *site, struct web_view *v, const struct events_record *recs, size_t n,
	const struct setup_program *program)
{
	struct outgoing_item *it = calloc(1, sizeof(*it));
	if (!it || outgoing_group(recs, n, it, 1) != 1) {
		free(it);
		return;
	}
	web_view_set(v, "message", "yes");
	web_view_set(v, "qid", it->qid);
	web_view_set(v, "state", outgoing_state_name(it->state));
	if (it->queued) {
		record_fields(v, it->queued);
		web_view_set(v, "subject", it->queued->subject[0] ? it->queued->subject : "(no subject)");
		web_view_setf(v, "n_rcpts", "%u", it->queued->n_rcpts);
	} else
		web_view_set(v, "subject", "(accepted before the oldest record kept)");
	for (size_t i = 0; i < it->n_rcpts; i++)
		show_rcpt(site, v, &it->rcpts[i], program);
	for (size_t i = 0; i < n; i++)
		record_fields(web_view_add_item(v, "events"), &recs[i]);
	free(it);
}

static void not_yours(const struct web_site *site, const struct web_user *u, struct http_response *resp)
{
	struct web_view *v = web_view_new();
	web_view_set(v, "what", "Not found: there is no message or refused attempt of yours with this number.");
	web_view_set(v, "why", "Either it belongs to another account, or it is older than this server keeps records.");
	web_view_set(v, "todo", "Go back to My outgoing mail and pick one from the list.");
	if (web_page(site, u, "words", "Not found", v, resp))
		resp->status = 404;
	snprintf(resp->log_note, sizeof(resp->log_note), "account page=mail not-found");
	web_view_free(&v);
}

static bool all_digits(const char *s)
{
	if (!*s || strlen(s) > 18)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

void web_outgoing_show(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	const char *id = req->path + strlen("/mail/");
	bool is_qid = id_is_queue_id(id), is_event = !is_qid && all_digits(id);
	if (!is_qid && !is_event) {
		not_yours(site, u, resp);
		return;
	}
	struct web_view *v = web_view_new();
	const struct setup_program *program = chosen_program(req, v);
	web_view_set(v, "id", id);
	char err[400];
	struct events_record *recs;
	/* an event: the account's newest record below id + 1 is that event when it is the account's */
	long n = is_qid ? account_records(site, w, u->address, id, 0, OUTGOING_LIST_MAX, &recs, err, sizeof(err))
		: account_records(site, w, u->address, NULL, strtoll(id, NULL, 10) + 1, 1, &recs, err, sizeof(err));
	long long event_id = is_event ? strtoll(id, NULL, 10) : 0;
	if (n == 0 || (is_event && n > 0 && recs[0].id != event_id))
		not_yours(site, u, resp);
	else if (n > 0 && is_event && recs[0].qid[0]) {
		char to[64];
		snprintf(to, sizeof(to), "/mail/%s", recs[0].qid);   /* one event of a message: the message */
		web_redirect(resp, to);
	} else {
		if (n < 0)
			web_view_set(v, "error", err);
		else if (is_qid)
			show_message(site, v, recs, (size_t)n, program);
		else
			show_refusal(site, v, &recs[0], program);
		web_page(site, u, "outgoing_item", is_qid ? "A message you sent" : "A refused attempt", v, resp);
	}
	free(recs);
	web_view_free(&v);
}
