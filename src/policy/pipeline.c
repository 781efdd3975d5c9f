/* pipeline.c - the decision runner (see policy.h, "the decision pipeline").
 *
 * A decision walks the stages in order.  Pure stages run at once on the loop thread;
 * a stage that does I/O is handed to the executor (a worker thread) with a timer, and
 * the walk goes on from its done callback.  The first verdict that is not OK ends the
 * walk.  When the timer fires first, the asker gets a temporary refusal naming the
 * stage and the run is left to finish on its worker thread, then freed unread: a
 * thread cannot be interrupted, and the facts it reads belong to the run, not to the
 * asker (DESIGN invariant 5: the loop never waits; every wait has a timeout with its
 * own words). */
#include "policy/policy.h"

#include "util/log.h"
#include "wire/enh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct policy_run {
	const struct policy_pipeline *pipe;
	struct policy_executor ex;
	struct policy_facts *facts;
	policy_done_fn done;
	void *done_arg;
	size_t next;          /* the stage running or to run */
	struct verdict v;     /* written by the stage, on a worker thread while in_work */
	void *timer;
	bool in_work;         /* a stage is on a worker thread: the run must outlive it */
	bool in_decide;       /* inside policy_decide: it frees the run, not the walk */
	bool answered;        /* done was called (verdict or timeout) */
	bool cancelled;       /* the asker went away */
};

struct policy_facts *policy_facts_new(enum policy_point point)
{
	struct policy_facts *f = calloc(1, sizeof(*f));
	if (f)
		f->point = point;
	return f;
}

bool policy_facts_set_from(struct policy_facts *f, const char *const *addrs, size_t n)
{
	free(f->from);
	f->from = NULL;
	f->n_from = 0;
	if (n == 0)
		return true;
	f->from = calloc(n, sizeof(*f->from));
	if (!f->from)
		return false;
	for (size_t i = 0; i < n; i++)
		snprintf(f->from[i], sizeof(f->from[i]), "%s", addrs[i]);
	f->n_from = n;
	return true;
}

bool policy_facts_set_rcpts(struct policy_facts *f, size_t n)
{
	free(f->rcpts);
	f->rcpts = NULL;
	f->n_rcpts = 0;
	if (n == 0)
		return true;
	f->rcpts = calloc(n, sizeof(*f->rcpts));
	if (!f->rcpts)
		return false;
	f->n_rcpts = n;
	return true;
}

void policy_facts_free(struct policy_facts **fp)
{
	struct policy_facts *f = *fp;
	if (!f)
		return;
	free(f->from);
	free(f->rcpts);
	free(f->added);
	policy_edits_free(&f->edits);
	if (f->spool.release)
		f->spool.release(f->spool.ctx);   /* serve/'s hold on the spool file (policy.h) */
	free(f);
	*fp = NULL;
}

/* The octets field takes as stored (line ends as CR LF, one at the end), or 0 when it
 * is not one well-formed field (see policy_facts_add_header). */
static size_t field_stored_len(const char *field)
{
	size_t i = 0;
	/* RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":". */
	while (field[i] > 32 && field[i] < 127 && field[i] != ':')
		i++;
	if (i == 0 || field[i] != ':')
		return 0;
	size_t out = i;
	for (; field[i]; i++) {
		unsigned char c = (unsigned char)field[i];
		if (c == '\r') {
			if (field[i + 1] != '\n')
				return 0;   /* a bare CR */
			continue;       /* stored with its LF */
		}
		if (c == '\n') {
			char next = field[i + 1];
			if (next == '\0')
				break;      /* the field's own line end */
			if (next != ' ' && next != '\t')
				return 0;   /* a second field, or an empty line that would end the header */
			out += 2;
			continue;
		}
		if ((c < 32 && c != '\t') || c == 127)
			return 0;
		out++;
	}
	return out + 2;
}

bool policy_facts_add_header(struct policy_facts *f, const char *field)
{
	size_t n = field ? field_stored_len(field) : 0;
	if (n == 0 || n > POLICY_ADDED_MAX - f->added_len)
		return false;
	char *p = realloc(f->added, f->added_len + n + 1);
	if (!p)
		return false;
	f->added = p;
	char *o = p + f->added_len;
	for (const char *c = field; *c; c++) {
		if (*c == '\r')
			continue;
		if (*c == '\n') {
			if (c[1] == '\0')
				break;
			*o++ = '\r';
		}
		*o++ = *c;
	}
	*o++ = '\r';
	*o++ = '\n';
	*o = '\0';
	f->added_len += n;
	return true;
}

bool policy_pipeline_add(struct policy_pipeline *p, const struct policy_stage *st)
{
	if (p->n >= POLICY_STAGES_MAX)
		return false;
	p->stages[p->n++] = *st;
	return true;
}

/* "10 seconds", "1 second", "250 milliseconds" */
static const char *duration_words(unsigned ms, char *out, size_t outsz)
{
	if (ms % 1000 == 0)
		snprintf(out, outsz, "%u second%s", ms / 1000, ms == 1000 ? "" : "s");
	else
		snprintf(out, outsz, "%u milliseconds", ms);
	return out;
}

void policy_stage_timeout_verdict(const struct policy_stage *st, struct verdict *v)
{
	char reason[VERDICT_REASON_MAX], took[32];
	snprintf(reason, sizeof(reason), "temporary failure: %s did not answer within %s",
		st->words ? st->words : st->name, duration_words(st->timeout_ms, took, sizeof(took)));
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_DIRECTORY_SERVER, CAUSE_STAGE_TIMEOUT, reason,
		"Nothing is lost: your mail program will try again later");
}

/* The OK that a decision gets when no stage objects. */
static void verdict_ok(enum policy_point point, struct verdict *v)
{
	const char *enh = point == POLICY_AT_RCPT ? ENH_OK_DEST_VALID : point == POLICY_AT_MAIL ? ENH_OK_ADDRESS : ENH_OK;
	verdict_set(v, VERDICT_OK, 250, enh, CAUSE_NONE, "", "");
}

static void run_free(struct policy_run *r)
{
	policy_facts_free(&r->facts);
	free(r);
}

/* Free the run once nobody needs it: the asker has its verdict (or left), no worker
 * thread holds it, and policy_decide has returned. */
static void release_if_idle(struct policy_run *r)
{
	if ((r->answered || r->cancelled) && !r->in_work && !r->in_decide)
		run_free(r);
}

static void stop_timer(struct policy_run *r)
{
	if (r->timer && r->ex.timer_cancel)
		r->ex.timer_cancel(r->ex.ctx, r->timer);
	r->timer = NULL;
}

/* The facts go with the verdict unless a worker thread may still write them. */
static void answer(struct policy_run *r, const struct verdict *v)
{
	r->answered = true;
	struct policy_facts *f = r->in_work ? NULL : r->facts;
	if (f && v->kind != VERDICT_OK) {
		/* A message refused is not queued: no stage's fields survive it. */
		free(f->added);
		f->added = NULL;
		f->added_len = 0;
	}
	if (!r->cancelled)
		r->done(r->done_arg, v, f);
}

static bool stage_applies(const struct policy_stage *st, const struct policy_facts *f)
{
	return (st->points & POLICY_AT(f->point)) != 0 && (!st->wanted || st->wanted(st->ctx, f));
}

static void walk(struct policy_run *r);

static void stage_work(void *arg)
{
	struct policy_run *r = arg;
	const struct policy_stage *st = &r->pipe->stages[r->next];
	st->decide(st->ctx, r->facts, &r->v);
}

/* Loop thread: an I/O stage came back. */
static void stage_done(void *arg)
{
	struct policy_run *r = arg;
	r->in_work = false;
	if (r->answered || r->cancelled) {   /* timed out, or the asker left */
		release_if_idle(r);
		return;
	}
	stop_timer(r);
	r->next++;
	if (r->v.kind != VERDICT_OK) {
		answer(r, &r->v);
		release_if_idle(r);
		return;
	}
	walk(r);
}

/* Loop thread: an I/O stage took longer than its timeout. */
static void stage_timed_out(void *arg)
{
	struct policy_run *r = arg;
	const struct policy_stage *st = &r->pipe->stages[r->next];
	r->timer = NULL;
	if (r->answered || r->cancelled)
		return;
	struct verdict tv;
	if (st->describe) {
		/* The stage names what it waited for; it reads request fields the worker
		 * thread does not write. */
		char words[160];
		struct policy_stage named = *st;
		named.words = st->describe(st->ctx, r->facts, words, sizeof(words));
		policy_stage_timeout_verdict(&named, &tv);
	} else
		policy_stage_timeout_verdict(st, &tv);
	log_event(LOG_WARN, "policy_timeout", "conn=%llu stage=%s timeout_ms=%u", r->facts->conn_id, st->name,
		st->timeout_ms);
	answer(r, &tv);
	release_if_idle(r);   /* still in_work: freed by stage_done */
}

static void start_io(struct policy_run *r, const struct policy_stage *st)
{
	r->in_work = true;
	/* The timer first: an executor may run the job at once (workq_push without memory). */
	if (st->timeout_ms && r->ex.timer_start)
		r->timer = r->ex.timer_start(r->ex.ctx, st->timeout_ms, stage_timed_out, r);
	/* A stage that waits on the network may have threads of its own, so that a slow
	 * DNS answer never holds the threads the directory stages need. */
	const struct policy_executor *ex = st->executor ? st->executor : &r->ex;
	ex->submit(ex->ctx, stage_work, stage_done, r);
}

/* Run stages from r->next on: pure ones here, until one refuses, all passed, or an
 * I/O stage went to a worker thread (then stage_done goes on). */
static void walk(struct policy_run *r)
{
	enum policy_point point = r->facts->point;
	for (; r->next < r->pipe->n; r->next++) {
		const struct policy_stage *st = &r->pipe->stages[r->next];
		if (!stage_applies(st, r->facts))
			continue;
		verdict_ok(point, &r->v);
		if (st->does_io) {
			start_io(r, st);
			return;
		}
		st->decide(st->ctx, r->facts, &r->v);
		if (r->v.kind != VERDICT_OK) {
			r->next++;
			answer(r, &r->v);
			release_if_idle(r);
			return;
		}
	}
	verdict_ok(point, &r->v);
	answer(r, &r->v);
	release_if_idle(r);
}

struct policy_run *policy_decide(const struct policy_pipeline *p, const struct policy_executor *ex,
	struct policy_facts *facts, policy_done_fn done, void *arg)
{
	struct policy_run *r = calloc(1, sizeof(*r));
	if (!r) {
		struct verdict v;
		verdict_set(&v, VERDICT_TEMP, 451, ENH_TEMP_SYSTEM, CAUSE_LOOKUP_FAILED,
			"temporary failure: the server is short of memory", "Nothing is lost: your mail program will try again later");
		policy_facts_free(&facts);
		done(arg, &v, NULL);
		return NULL;
	}
	r->pipe = p;
	r->ex = *ex;
	r->facts = facts;
	r->done = done;
	r->done_arg = arg;
	r->in_decide = true;
	walk(r);
	r->in_decide = false;
	if (r->answered) {
		release_if_idle(r);
		return NULL;
	}
	return r;
}

void policy_run_cancel(struct policy_run **rp)
{
	struct policy_run *r = *rp;
	if (!r)
		return;
	*rp = NULL;
	r->cancelled = true;
	stop_timer(r);
	release_if_idle(r);
}
