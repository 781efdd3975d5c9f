/* view.c - the queue as the administrator sees it (queue.h, "the admin's view"):
 * each message with the state a person thinks in (active, deferred, held, being
 * sent, failed, damaged), its pending recipients summed up, filtered by sender and
 * state.  `postern queue list/show` (cli/queue_cmd.c) and the web site's /admin/queue
 * (web/admin_queue.c) print the same items, each in its own form.  Which message is
 * being delivered right now only the running server knows: the caller passes its
 * answer to delivery_control("inflight"). */
#include "queue/queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	enum queue_view_state state;
	const char *name;
} state_names[] = {
	{ QUEUE_VIEW_ACTIVE, "active" }, { QUEUE_VIEW_DEFERRED, "deferred" }, { QUEUE_VIEW_HELD, "held" },
	{ QUEUE_VIEW_SENDING, "sending" }, { QUEUE_VIEW_FAILED, "failed" }, { QUEUE_VIEW_DAMAGED, "damaged" },
};

const char *queue_view_state_name(enum queue_view_state s)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (state_names[i].state == s)
			return state_names[i].name;
	return "unknown";
}

bool queue_view_state_parse(const char *name, enum queue_view_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (strcmp(state_names[i].name, name) == 0) {
			*out = state_names[i].state;
			return true;
		}
	return false;
}

const char *queue_view_rcpt_state(const struct queue_rcpt_state *r)
{
	if (r->state == RCPT_DELIVERED)
		return "delivered";
	if (r->state == RCPT_FAILED)
		return "failed";
	return r->attempts ? "deferred" : "pending";
}

void queue_view_age(long long secs, char *out, size_t outsz)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, outsz, "%llds", secs);
	else if (secs < 7200)
		snprintf(out, outsz, "%lldm", secs / 60);
	else if (secs < 172800)
		snprintf(out, outsz, "%lldh", secs / 3600);
	else
		snprintf(out, outsz, "%lldd", secs / 86400);
}

/* "delivering QID WHERE QID WHERE ..." (delivery.h): where qid is being delivered,
 * spaces given back, or NULL. */
const char *queue_view_inflight_where(const char *inflight, const char *qid, char *out, size_t outsz)
{
	if (!inflight || !qid[0])
		return NULL;
	size_t qlen = strlen(qid);
	const char *p = strstr(inflight, qid);
	while (p && (p == inflight || p[-1] != ' ' || p[qlen] != ' '))
		p = strstr(p + 1, qid);
	if (!p)
		return NULL;
	p += qlen + 1;
	size_t n = strcspn(p, " ");
	snprintf(out, outsz, "%.*s", (int)n, p);
	for (char *c = out; *c; c++)
		if (*c == '+')
			*c = ' ';   /* the server writes spaces as '+' (one token per field) */
	return out;
}

/* The state of a message in active/, and its pending recipients summed up. */
static void summarise(struct queue_view_item *it, const char *inflight, char *where, size_t wheresz)
{
	const struct queue_state *st = it->st;
	bool deferred = false;
	for (size_t i = 0; i < st->n; i++) {
		if (st->r[i].state != RCPT_PENDING)
			continue;
		if (!it->pending++)
			it->first_pending = i;
		if (!it->next_try || st->r[i].next_try < it->next_try)
			it->next_try = st->r[i].next_try;
		deferred = deferred || st->r[i].attempts;
	}
	it->where = queue_view_inflight_where(inflight, it->qid, where, wheresz);
	it->state = it->where ? QUEUE_VIEW_SENDING : st->held ? QUEUE_VIEW_HELD
		: deferred ? QUEUE_VIEW_DEFERRED : QUEUE_VIEW_ACTIVE;
}

static bool sender_matches(const struct queue_view_filter *f, const struct queue_message *m)
{
	return !f->sender || !f->sender[0] || (m && strcasecmp(f->sender, m->env.sender) == 0);
}

/* A message in active/: opened with its state (a damaged state is salvaged, never
 * refused), or, when the file cannot be read, a DAMAGED item.  false: it was removed
 * meanwhile (nothing to show). */
static bool show_active(struct queue *q, const char *qid, const struct queue_view_filter *f, const char *inflight,
	queue_view_fn *cb, void *arg)
{
	struct queue_message m;
	struct queue_state st;
	char err[256], where[300];
	struct queue_view_item it = { .qid = qid, .failed_reason = "" };
	errno = 0;   /* a damaged file fails without setting it */
	if (!queue_message_open(q, qid, &m, err, sizeof(err))) {
		if (errno == ENOENT)
			return false;
		it.state = QUEUE_VIEW_DAMAGED;
		it.error = err;
		if (!f || ((!f->states || (f->states & QUEUE_VIEW_DAMAGED)) && (!f->sender || !f->sender[0])))
			cb(arg, &it);
		return true;
	}
	if (!queue_state_read(q, qid, m.env.n_rcpts, &st)) {
		queue_message_close(&m);
		it.state = QUEUE_VIEW_DAMAGED;
		it.error = "out of memory";
		cb(arg, &it);
		return true;
	}
	it.m = &m;
	it.st = &st;
	summarise(&it, inflight, where, sizeof(where));
	if (!f || ((!f->states || (f->states & it.state)) && sender_matches(f, &m)))
		cb(arg, &it);
	queue_state_free(&st);
	queue_message_close(&m);
	return true;
}

/* A message in failed/ (readable or not: shown with why it is there).  false: no such one. */
static bool show_failed(struct queue *q, const char *qid, const struct queue_view_filter *f, queue_view_fn *cb,
	void *arg)
{
	struct queue_message m;
	char err[256], why[400];
	queue_failed_reason(q, qid, why, sizeof(why));
	errno = 0;
	bool ok = queue_failed_open(q, qid, &m, err, sizeof(err));
	if (!ok && errno == ENOENT)
		return false;
	struct queue_view_item it = { .qid = qid, .state = QUEUE_VIEW_FAILED, .m = ok ? &m : NULL,
		.error = ok ? NULL : err, .failed_reason = why };
	if (!f || !ok || sender_matches(f, &m))   /* an unreadable one is never hidden */
		cb(arg, &it);
	if (ok)
		queue_message_close(&m);
	return true;
}

struct list_ctx {
	struct queue *q;
	const struct queue_view_filter *f;
	const char *inflight;
	queue_view_fn *cb;
	void *arg;
};

static void list_active_one(void *arg, const char *qid)
{
	struct list_ctx *lc = arg;
	show_active(lc->q, qid, lc->f, lc->inflight, lc->cb, lc->arg);
}

static void list_failed_one(void *arg, const char *qid)
{
	struct list_ctx *lc = arg;
	show_failed(lc->q, qid, lc->f, lc->cb, lc->arg);
}

bool queue_view_list(struct queue *q, const struct queue_view_filter *f, const char *inflight, queue_view_fn *cb,
	void *arg)
{
	struct list_ctx lc = { q, f, inflight, cb, arg };
	unsigned states = f->states ? f->states : QUEUE_VIEW_IN_ACTIVE;
	bool ok = true;
	if (states & QUEUE_VIEW_IN_ACTIVE)
		ok = queue_list_active(q, list_active_one, &lc);
	if (states & QUEUE_VIEW_FAILED)
		ok = queue_list_failed(q, list_failed_one, &lc) && ok;
	return ok;
}

bool queue_view_one(struct queue *q, const char *qid, const char *inflight, queue_view_fn *cb, void *arg)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (show_active(q, qid, NULL, inflight, cb, arg) || show_failed(q, qid, NULL, cb, arg))
		return true;
	errno = ENOENT;
	return false;
}

bool queue_view_header(const struct queue_message *m, char *buf, size_t bufsz)
{
	if (bufsz < 2)
		return false;
	ssize_t r = queue_message_pread(m, buf, bufsz - 1, 0);   /* added fields first (queue.h) */
	if (r <= 0)
		return false;
	buf[r] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	if (end)
		end[2] = '\0';
	return true;
}
