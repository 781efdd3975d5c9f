/* admin_stats.c - GET /admin/refusals: the refusals Postern gave over the last day
 * and the last week (the event store, events/events.h), counted by cause id, by
 * logged-in account and by client address, each cause with its words from the
 * explain knowledge base (data/explain.ini) and a link to GET /admin/explain/<id>,
 * which shows the cause's meaning and its fixes.  The counts come from a read-only
 * handle of the request's own; the keys (accounts, addresses) came from clients:
 * HOSTILE, shown through the escaping templates only. */
#include "web/admin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag/explain.h"
#include "events/events.h"

#define CAUSES_MAX 64
#define TOP_MAX 10
#define DAY 86400

/* The explain knowledge base, loaded once (data/explain.ini; NULL when not found:
 * the pages then name the causes without their words). */
static pthread_once_t kb_once = PTHREAD_ONCE_INIT;
static struct explain_kb *kb;

static void kb_load(void)
{
	char path[1024], err[256];
	if (explain_kb_locate(path, sizeof(path)))
		explain_kb_load_file(&kb, path, err, sizeof(err));
}

static const struct explain_kb *knowledge(void)
{
	pthread_once(&kb_once, kb_load);
	return kb;
}

struct counts {
	struct events_count *c;
	long n;
};

typedef long count_fn(struct events_reader *, time_t, struct events_count *, size_t);

static bool count(struct events_reader *r, count_fn *fn, time_t since, size_t max, struct counts *out)
{
	out->c = calloc(max, sizeof(*out->c));
	out->n = out->c ? fn(r, since, out->c, max) : -1;
	return out->n >= 0;
}

static long long count_of(const struct counts *cs, const char *key)
{
	for (long i = 0; i < cs->n; i++)
		if (strcmp(cs->c[i].key, key) == 0)
			return cs->c[i].n;
	return 0;
}

/* Causes, most first over the week, with the day's count beside. */
static void add_causes(struct web_view *v, const struct counts *week,
	const struct counts *day)
{
	for (long i = 0; i < week->n; i++) {
		const char *id = week->c[i].key[0] ? week->c[i].key : "unknown";
		struct web_view *it = web_view_add_item(v, "causes");
		web_view_set(it, "id", id);
		web_view_setf(it, "week", "%lld", week->c[i].n);
		web_view_setf(it, "day", "%lld", count_of(day, week->c[i].key));
		if (explain_cause_id_valid(id))
			web_view_setf(it, "href", "/admin/explain/%s", id);
		const struct explain_cause *c = knowledge() ? explain_kb_cause(knowledge(), id) : NULL;
		if (c && c->words)
			web_view_set(it, "words", c->words);
	}
}

static void add_top(struct web_view *v, const char *list, const struct counts *cs, const char *empty_key)
{
	for (long i = 0; i < cs->n; i++) {
		struct web_view *it = web_view_add_item(v, list);
		web_view_set(it, "key", cs->c[i].key[0] ? cs->c[i].key : empty_key);
		web_view_setf(it, "n", "%lld", cs->c[i].n);
	}
}

static void fill(struct events_reader *r, struct web_view *v)
{
	time_t now = time(NULL);
	struct counts cw = { 0 }, cd = { 0 }, aw = { 0 }, ad = { 0 }, kw = { 0 }, kd = { 0 };
	bool ok = count(r, events_refusals_by_cause, now - 7 * DAY, CAUSES_MAX, &cw) &&
		count(r, events_refusals_by_cause, now - DAY, CAUSES_MAX, &cd) &&
		count(r, events_refusals_top_accounts, now - 7 * DAY, TOP_MAX, &aw) &&
		count(r, events_refusals_top_accounts, now - DAY, TOP_MAX, &ad) &&
		count(r, events_refusals_top_clients, now - 7 * DAY, TOP_MAX, &kw) &&
		count(r, events_refusals_top_clients, now - DAY, TOP_MAX, &kd);
	if (ok) {
		long long total_w = 0, total_d = 0;
		for (long i = 0; i < cw.n; i++)
			total_w += cw.c[i].n;
		for (long i = 0; i < cd.n; i++)
			total_d += cd.c[i].n;
		web_view_setf(v, "total_week", "%lld", total_w);
		web_view_setf(v, "total_day", "%lld", total_d);
		add_causes(v, &cw, &cd);
		add_top(v, "accounts_week", &aw, "(not logged in)");
		add_top(v, "accounts_day", &ad, "(not logged in)");
		add_top(v, "clients_week", &kw, "(unknown)");
		add_top(v, "clients_day", &kd, "(unknown)");
	} else {
		web_view_set(v, "list_error", "the event store could not be read");
	}
	struct counts *all[] = { &cw, &cd, &aw, &ad, &kw, &kd };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->c);
}

void web_admin_refusals(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	char err[256];
	struct events_reader *r = NULL;   /* this request's own read-only handle */
	if (events_reader_open_conf(&r, site->conf, err, sizeof(err)))
		fill(r, v);
	else
		web_view_setf(v, "list_error", "the event store cannot be opened: %s", err);
	events_reader_close(&r);
	web_page(site, u, "admin_refusals", "Refusals", v, resp);
	web_view_free(&v);
}

void web_admin_explain(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char id[64];
	if (!web_admin_path_tail(req, "/admin/explain/", id, sizeof(id)) || !explain_cause_id_valid(id)) {
		web_words_page(site, u, resp, 404, "Refusals", "There is no such cause.",
			"Causes are the ids postern explain names (not_authenticated, unknown_recipient, ...).",
			"Follow a cause's link on the refusals page.");
		return;
	}
	const struct explain_cause *c = knowledge() ? explain_kb_cause(knowledge(), id) : NULL;
	struct web_view *v = web_view_new();
	web_view_set(v, "id", id);
	if (!c) {
		web_view_set(v, "list_error", "the explain knowledge base (data/explain.ini) was not loaded at start");
	} else {
		web_view_set(v, "words", c->words);
		for (int i = 0; i < c->n_fixes; i++)
			web_view_set(web_view_add_item(v, "fixes"), "fix", c->fixes[i]);
	}
	char title[96];
	snprintf(title, sizeof(title), "Cause %s", id);
	web_page(site, u, "admin_explain", title, v, resp);
	web_view_free(&v);
}
