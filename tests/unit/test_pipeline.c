/* test_pipeline.c - the decision runner (policy_decide) with a fake executor: the
 * tests say when a worker "thread" runs a job and when a timer fires. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

/* --- the fake executor ------------------------------------------------------ */

#define FAKE_MAX 8

struct fake_job { void (*work)(void *); void (*done)(void *); void *arg; };
struct fake_timer { unsigned ms; void (*fire)(void *); void *arg; bool live; };

static struct fake {
	struct fake_job jobs[FAKE_MAX];
	size_t n_jobs;
	struct fake_timer timers[FAKE_MAX];
	size_t n_timers;
	bool on_worker;       /* a job's work is running */
	bool inline_jobs;     /* run jobs inside submit, as workq_push does without memory */
} fake;

static void fake_submit(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
	(void)ctx;
	if (fake.inline_jobs) {
		fake.on_worker = true;
		work(arg);
		fake.on_worker = false;
		done(arg);
		return;
	}
	assert_true(fake.n_jobs < FAKE_MAX);
	fake.jobs[fake.n_jobs++] = (struct fake_job){ work, done, arg };
}

static void *fake_timer_start(void *ctx, unsigned ms, void (*fire)(void *), void *arg)
{
	(void)ctx;
	assert_true(fake.n_timers < FAKE_MAX);
	struct fake_timer *t = &fake.timers[fake.n_timers++];
	*t = (struct fake_timer){ ms, fire, arg, true };
	return t;
}

static void fake_timer_cancel(void *ctx, void *timer)
{
	(void)ctx;
	struct fake_timer *t = timer;
	assert_true(t->live);
	t->live = false;
}

/* The oldest job: its work "on a worker thread", then its done on the loop. */
static void fake_run_job(void)
{
	assert_true(fake.n_jobs > 0);
	struct fake_job j = fake.jobs[0];
	memmove(&fake.jobs[0], &fake.jobs[1], (fake.n_jobs - 1) * sizeof(fake.jobs[0]));
	fake.n_jobs--;
	fake.on_worker = true;
	j.work(j.arg);
	fake.on_worker = false;
	j.done(j.arg);
}

static void fake_fire_timer(size_t i)
{
	struct fake_timer *t = &fake.timers[i];
	assert_true(t->live);
	t->live = false;
	t->fire(t->arg);
}

static size_t fake_live_timers(void)
{
	size_t n = 0;
	for (size_t i = 0; i < fake.n_timers; i++)
		n += fake.timers[i].live;
	return n;
}

static const struct policy_executor executor = {
	.ctx = NULL, .submit = fake_submit, .timer_start = fake_timer_start, .timer_cancel = fake_timer_cancel,
};

/* --- stages that record what ran ------------------------------------------ */

static char trace[256];   /* "a b c " in the order stages ran; '*' after one run on a worker */

struct stage_behaviour {
	const char *tag;
	enum verdict_kind kind;   /* VERDICT_OK: no objection */
	int code;
	const char *enh;
};

static void stage_decide(void *ctx, struct policy_facts *f, struct verdict *v)
{
	const struct stage_behaviour *b = ctx;
	(void)f;
	assert_int_equal(v->kind, VERDICT_OK);   /* preset by the runner */
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "%s%s ", b->tag, fake.on_worker ? "*" : "");
	if (b->kind != VERDICT_OK) {
		char reason[64];
		snprintf(reason, sizeof(reason), "refused by %s", b->tag);
		verdict_set(v, b->kind, b->code, b->enh, CAUSE_UNKNOWN_USER, reason, "hint");
	}
}

static const struct stage_behaviour pass_a = { "a", VERDICT_OK, 0, NULL };
static const struct stage_behaviour pass_b = { "b", VERDICT_OK, 0, NULL };
static const struct stage_behaviour pass_c = { "c", VERDICT_OK, 0, NULL };
static const struct stage_behaviour refuse_b = { "b", VERDICT_PERM, 550, "5.1.1" };
static const struct stage_behaviour refuse_c = { "c", VERDICT_PERM, 554, "5.7.1" };
static const struct stage_behaviour temp_io = { "io", VERDICT_TEMP, 451, "4.3.0" };
static const struct stage_behaviour pass_io = { "io", VERDICT_OK, 0, NULL };

static struct policy_stage pure(const struct stage_behaviour *b, unsigned points)
{
	return (struct policy_stage){ .name = b->tag, .words = b->tag, .points = points, .decide = stage_decide,
		.ctx = (void *)b };
}

static struct policy_stage io(const struct stage_behaviour *b, unsigned points, unsigned timeout_ms)
{
	return (struct policy_stage){ .name = "directory", .words = "the user directory", .points = points,
		.does_io = true, .timeout_ms = timeout_ms, .decide = stage_decide, .ctx = (void *)b };
}

#define AT_RCPT POLICY_AT(POLICY_AT_RCPT)
#define AT_EOD POLICY_AT(POLICY_AT_END_OF_DATA)
#define AT_ALL (POLICY_AT(POLICY_AT_MAIL) | AT_RCPT | POLICY_AT(POLICY_AT_FROM_HEADER))

/* --- the asker ------------------------------------------------------------- */

static struct answer {
	unsigned calls;
	struct verdict v;
	bool had_facts;          /* the facts came with the verdict */
	char added[2048];        /* f->added, as the asker saw it */
	size_t added_len;
	struct policy_txn txn;
} got;

static void on_verdict(void *arg, const struct verdict *v, struct policy_facts *f)
{
	assert_ptr_equal(arg, &got);
	got.calls++;
	got.v = *v;
	got.had_facts = f != NULL;
	got.added[0] = '\0';
	got.added_len = 0;
	if (!f)
		return;
	got.txn = f->txn;
	if (f->added) {
		assert_true(f->added_len < sizeof(got.added));
		assert_int_equal(strlen(f->added), f->added_len);
		memcpy(got.added, f->added, f->added_len + 1);
		got.added_len = f->added_len;
	}
}

static int reset(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	memset(&got, 0, sizeof(got));
	trace[0] = '\0';
	return 0;
}

static struct policy_run *decide(const struct policy_pipeline *p, enum policy_point point)
{
	struct policy_facts *f = policy_facts_new(point);
	assert_non_null(f);
	f->conn_id = 7;
	return policy_decide(p, &executor, f, on_verdict, &got);
}

static void add(struct policy_pipeline *p, struct policy_stage st)
{
	assert_true(policy_pipeline_add(p, &st));
}

/* --- tests ------------------------------------------------------------------ */

static void test_all_pass_in_order(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, pure(&pass_a, AT_RCPT));
	add(&p, pure(&pass_b, AT_RCPT));
	add(&p, pure(&pass_c, AT_RCPT));
	assert_null(decide(&p, POLICY_AT_RCPT));   /* pure stages: answered at once */
	assert_string_equal(trace, "a b c ");
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_OK);
	assert_int_equal(got.v.code, 250);
	assert_string_equal(got.v.enh, "2.1.5");
	assert_int_equal(got.v.cause, CAUSE_NONE);
}

static void test_ok_words_per_point(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	assert_null(decide(&p, POLICY_AT_MAIL));   /* no stages at all: OK */
	assert_int_equal(got.calls, 1);
	assert_string_equal(got.v.enh, "2.1.0");
	assert_null(decide(&p, POLICY_AT_FROM_HEADER));
	assert_int_equal(got.calls, 2);
	assert_string_equal(got.v.enh, "2.0.0");
}

static void test_first_refusal_wins(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, pure(&pass_a, AT_RCPT));
	add(&p, pure(&refuse_b, AT_RCPT));
	add(&p, pure(&refuse_c, AT_RCPT));
	assert_null(decide(&p, POLICY_AT_RCPT));
	assert_string_equal(trace, "a b ");   /* c never ran */
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_PERM);
	assert_int_equal(got.v.code, 550);
	assert_string_equal(got.v.enh, "5.1.1");
	assert_string_equal(got.v.reason, "refused by b");
}

static void test_stages_only_at_their_points(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, pure(&pass_a, AT_ALL));
	add(&p, pure(&refuse_b, POLICY_AT(POLICY_AT_MAIL)));
	add(&p, pure(&pass_c, AT_RCPT));
	assert_null(decide(&p, POLICY_AT_RCPT));
	assert_string_equal(trace, "a c ");
	assert_int_equal(got.v.kind, VERDICT_OK);
	trace[0] = '\0';
	assert_null(decide(&p, POLICY_AT_MAIL));
	assert_string_equal(trace, "a b ");
	assert_int_equal(got.v.code, 550);
}

static void test_io_stage_runs_off_the_loop(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, pure(&pass_a, AT_RCPT));
	add(&p, io(&pass_io, AT_RCPT, 5000));
	add(&p, pure(&pass_c, AT_RCPT));
	struct policy_run *r = decide(&p, POLICY_AT_RCPT);
	assert_non_null(r);                    /* waiting for the worker */
	assert_string_equal(trace, "a ");      /* the I/O stage did not run on the loop */
	assert_int_equal(got.calls, 0);
	assert_int_equal(fake.n_jobs, 1);
	assert_int_equal(fake.n_timers, 1);
	assert_int_equal(fake.timers[0].ms, 5000);
	fake_run_job();
	assert_string_equal(trace, "a io* c ");   /* on the worker, then c on the loop */
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_OK);
	assert_int_equal(fake_live_timers(), 0);  /* answered in time: the timer is cancelled */
}

static void test_io_refusal_wins(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&temp_io, AT_RCPT, 5000));
	add(&p, pure(&refuse_c, AT_RCPT));
	assert_non_null(decide(&p, POLICY_AT_RCPT));
	fake_run_job();
	assert_string_equal(trace, "io* ");
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_TEMP);
	assert_int_equal(got.v.code, 451);
	assert_string_equal(got.v.reason, "refused by io");
	assert_int_equal(fake_live_timers(), 0);
}

static void test_timeout_gives_its_own_words(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&pass_io, AT_RCPT, 5000));
	add(&p, pure(&pass_c, AT_RCPT));
	assert_non_null(decide(&p, POLICY_AT_RCPT));
	fake_fire_timer(0);
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_TEMP);
	assert_int_equal(got.v.code, 451);
	assert_string_equal(got.v.enh, "4.4.3");
	assert_int_equal(got.v.cause, CAUSE_STAGE_TIMEOUT);
	assert_string_equal(got.v.reason, "temporary failure: the user directory did not answer within 5 seconds");
	assert_true(got.v.hint[0] != '\0');
	/* The stage comes back late: its verdict is dropped, nothing after it runs. */
	fake_run_job();
	assert_string_equal(trace, "io* ");
	assert_int_equal(got.calls, 1);
}

/* A stage may name what it waited for from the facts ("the SPF check of example.com"). */
static const char *describe_domain(void *ctx, const struct policy_facts *f, char *out, size_t outsz)
{
	(void)ctx;
	snprintf(out, outsz, "the SPF check of %s", f->domain);
	return out;
}

static void test_timeout_words_from_the_facts(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	struct policy_stage st = io(&pass_io, POLICY_AT(POLICY_AT_MAIL), 25000);
	st.describe = describe_domain;
	add(&p, st);
	struct policy_facts *f = policy_facts_new(POLICY_AT_MAIL);
	assert_non_null(f);
	snprintf(f->domain, sizeof(f->domain), "example.com");
	assert_non_null(policy_decide(&p, &executor, f, on_verdict, &got));
	fake_fire_timer(0);
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_TEMP);
	assert_string_equal(got.v.reason, "temporary failure: the SPF check of example.com did not answer within 25 seconds");
	fake_run_job();   /* the late answer is dropped */
	assert_int_equal(got.calls, 1);
}

static void test_timeout_verdict_words(void **state)
{
	(void)state;
	struct policy_stage st = { .name = "milter", .words = "the content filter", .timeout_ms = 1000 };
	struct verdict v;
	policy_stage_timeout_verdict(&st, &v);
	assert_string_equal(v.reason, "temporary failure: the content filter did not answer within 1 second");
	st.timeout_ms = 250;
	st.words = NULL;
	policy_stage_timeout_verdict(&st, &v);
	assert_string_equal(v.reason, "temporary failure: milter did not answer within 250 milliseconds");
	assert_int_equal(v.code / 100, 4);
	assert_int_equal(v.enh[0], '4');
	assert_string_equal(policy_cause_name(CAUSE_STAGE_TIMEOUT), "a check did not answer in time");
	unsigned counts[CAUSE_COUNT] = { 0 };
	counts[CAUSE_STAGE_TIMEOUT] = 1;
	assert_string_equal(policy_best_fix(counts), "Fix: nothing on your side; try again in a few minutes");
}

static void test_cancel_while_working(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&pass_io, AT_RCPT, 5000));
	add(&p, pure(&pass_c, AT_RCPT));
	struct policy_run *r = decide(&p, POLICY_AT_RCPT);
	assert_non_null(r);
	policy_run_cancel(&r);
	assert_null(r);
	assert_int_equal(fake_live_timers(), 0);
	fake_run_job();                        /* finishes on its thread, then is freed */
	assert_int_equal(got.calls, 0);
	assert_string_equal(trace, "io* ");
}

static void test_inline_executor(void **state)
{
	(void)state;
	fake.inline_jobs = true;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&pass_io, AT_RCPT, 5000));
	add(&p, io(&temp_io, AT_RCPT, 5000));
	add(&p, pure(&pass_c, AT_RCPT));
	assert_null(decide(&p, POLICY_AT_RCPT));
	assert_string_equal(trace, "io* io* ");
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.code, 451);
	assert_int_equal(fake_live_timers(), 0);
}

/* A lookup stage records a finding; a later pure stage judges it. */
static void find_stage(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	(void)v;
	f->rcpt.domain_local = strcmp(f->domain, "example.test") == 0;
}

static void judge_stage(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	if (!f->rcpt.domain_local)
		verdict_set(v, VERDICT_PERM, 554, "5.7.1", CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied", "");
}

static void test_findings_reach_later_stages(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, (struct policy_stage){ .name = "find", .points = AT_RCPT, .does_io = true, .timeout_ms = 1000,
		.decide = find_stage });
	add(&p, (struct policy_stage){ .name = "judge", .points = AT_RCPT, .decide = judge_stage });
	const char *domains[] = { "example.test", "elsewhere.example" };
	for (size_t i = 0; i < 2; i++) {
		struct policy_facts *f = policy_facts_new(POLICY_AT_RCPT);
		snprintf(f->domain, sizeof(f->domain), "%s", domains[i]);
		assert_non_null(policy_decide(&p, &executor, f, on_verdict, &got));
		fake_run_job();
		assert_int_equal(got.calls, i + 1);
		assert_int_equal(got.v.kind, i == 0 ? VERDICT_OK : VERDICT_PERM);
	}
}

static void test_from_list_and_full_pipeline(void **state)
{
	(void)state;
	struct policy_facts *f = policy_facts_new(POLICY_AT_FROM_HEADER);
	const char *from[] = { "alice@example.test", "bob@example.test" };
	assert_true(policy_facts_set_from(f, from, 2));
	assert_int_equal(f->n_from, 2);
	assert_string_equal(f->from[1], "bob@example.test");
	policy_facts_free(&f);
	assert_null(f);
	struct policy_pipeline p = { .n = 0 };
	for (size_t i = 0; i < POLICY_STAGES_MAX; i++)
		add(&p, pure(&pass_a, AT_RCPT));
	struct policy_stage one_more = pure(&pass_b, AT_RCPT);
	assert_false(policy_pipeline_add(&p, &one_more));
}

/* --- the end of data: stages that add header fields --------------------------- */

/* An inbound check: adds its field (on a worker thread). */
static void authres_stage(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	(void)v;
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "authres%s ", fake.on_worker ? "*" : "");
	assert_true(policy_facts_add_header(f, "Authentication-Results: mx.example.test;\n\tspf=pass"));
}

/* Signing, last: sees what the checks before it added, adds its own after it. */
static void sign_stage(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	(void)v;
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "sign ");
	assert_non_null(f->added);
	assert_string_equal(f->added, "Authentication-Results: mx.example.test;\r\n\tspf=pass\r\n");
	assert_true(policy_facts_add_header(f, "DKIM-Signature: v=1; a=ed25519-sha256; d=example.test\r\n"));
}

static const struct stage_behaviour quota_ok = { "quota", VERDICT_OK, 0, NULL };
static const struct stage_behaviour quota_full = { "quota", VERDICT_TEMP, 452, "4.2.2" };

static void test_end_of_data_order_and_added_fields(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&quota_ok, AT_EOD, 10000));
	add(&p, (struct policy_stage){ .name = "dmarc", .words = "the DMARC check", .points = AT_EOD, .does_io = true,
		.timeout_ms = 20000, .decide = authres_stage });
	add(&p, (struct policy_stage){ .name = "dkim-sign", .points = AT_EOD, .decide = sign_stage });
	add(&p, pure(&refuse_c, AT_RCPT));   /* another point's stage never runs here */
	assert_non_null(decide(&p, POLICY_AT_END_OF_DATA));
	fake_run_job();
	assert_string_equal(trace, "quota* ");
	assert_int_equal(got.calls, 0);
	fake_run_job();
	assert_string_equal(trace, "quota* authres* sign ");
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_OK);
	assert_int_equal(got.v.code, 250);
	assert_string_equal(got.v.enh, "2.0.0");
	assert_true(got.had_facts);
	/* in the order added, each one CR LF ended, the LF of the fold made CR LF */
	assert_string_equal(got.added, "Authentication-Results: mx.example.test;\r\n\tspf=pass\r\n"
		"DKIM-Signature: v=1; a=ed25519-sha256; d=example.test\r\n");
	assert_int_equal(got.added_len, strlen(got.added));
	assert_int_equal(fake_live_timers(), 0);
}

static void test_end_of_data_first_refusal_wins(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, io(&quota_full, AT_EOD, 10000));
	add(&p, (struct policy_stage){ .name = "dmarc", .points = AT_EOD, .does_io = true, .timeout_ms = 20000,
		.decide = authres_stage });
	assert_non_null(decide(&p, POLICY_AT_END_OF_DATA));
	fake_run_job();
	assert_string_equal(trace, "quota* ");   /* the checks after the quota never ran */
	assert_int_equal(fake.n_jobs, 0);
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.code, 452);
	assert_string_equal(got.v.enh, "4.2.2");
	assert_string_equal(got.v.reason, "refused by quota");
	assert_int_equal(got.added_len, 0);
}

static void test_refusal_after_a_field_drops_the_fields(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, (struct policy_stage){ .name = "dmarc", .points = AT_EOD, .does_io = true, .timeout_ms = 20000,
		.decide = authres_stage });
	add(&p, pure(&refuse_c, AT_EOD));
	assert_non_null(decide(&p, POLICY_AT_END_OF_DATA));
	fake_run_job();
	assert_string_equal(trace, "authres* c ");
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.kind, VERDICT_PERM);
	assert_int_equal(got.v.code, 554);
	assert_true(got.had_facts);
	assert_int_equal(got.added_len, 0);   /* not queued: no field survives */
}

static void test_end_of_data_timeout_words(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, (struct policy_stage){ .name = "dmarc", .words = "the DMARC check", .points = AT_EOD, .does_io = true,
		.timeout_ms = 20000, .decide = authres_stage });
	add(&p, (struct policy_stage){ .name = "dkim-sign", .points = AT_EOD, .decide = sign_stage });
	assert_non_null(decide(&p, POLICY_AT_END_OF_DATA));
	assert_int_equal(fake.timers[0].ms, 20000);
	fake_fire_timer(0);
	assert_int_equal(got.calls, 1);
	assert_int_equal(got.v.code, 451);
	assert_string_equal(got.v.enh, "4.4.3");
	assert_string_equal(got.v.reason, "temporary failure: the DMARC check did not answer within 20 seconds");
	assert_false(got.had_facts);   /* its thread still holds them */
	fake_run_job();                /* late: dropped, signing never runs */
	assert_string_equal(trace, "authres* ");
	assert_int_equal(got.calls, 1);
}

static void test_add_header_shapes(void **state)
{
	(void)state;
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	assert_non_null(f);
	assert_true(policy_facts_add_header(f, "X-A: 1"));
	assert_true(policy_facts_add_header(f, "X-B: two\r\n three\n\tfour\r\n"));
	assert_string_equal(f->added, "X-A: 1\r\nX-B: two\r\n three\r\n\tfour\r\n");
	size_t before = f->added_len;
	static const char *const bad[] = {
		"", ":", "no colon", " X-Lead: space", "X Y: space in the name", "X-C: bare\rcr", "X-D: one\r\nX-E: two",
		"X-F: empty line\r\n\r\n", "X-G: \x01 control", "\xc3\xa9: 8-bit name",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(policy_facts_add_header(f, bad[i]));
	assert_false(policy_facts_add_header(f, NULL));
	assert_int_equal(f->added_len, before);   /* nothing of them stored */
	/* Bounded: fill to the limit, then one octet more is refused. */
	static char big[POLICY_ADDED_MAX];
	size_t want = POLICY_ADDED_MAX - f->added_len - 2;   /* its CR LF is added */
	memset(big, 'x', want);
	memcpy(big, "X-Big: ", 7);
	big[want] = '\0';
	assert_true(policy_facts_add_header(f, big));
	assert_int_equal(f->added_len, POLICY_ADDED_MAX);
	assert_false(policy_facts_add_header(f, "X-H: 1"));
	policy_facts_free(&f);
	/* Recipients are zeroed room for the session to fill. */
	f = policy_facts_new(POLICY_AT_END_OF_DATA);
	assert_true(policy_facts_set_rcpts(f, 3));
	assert_int_equal(f->n_rcpts, 3);
	assert_false(f->rcpts[2].domain_local);
	policy_facts_free(&f);
}

/* A MAIL stage's findings come back with the verdict, for the transaction. */
static void txn_stage(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	(void)v;
	f->txn.spf_done = true;
	snprintf(f->txn.spf.domain, sizeof(f->txn.spf.domain), "example.com");
}

static void test_txn_findings_come_back(void **state)
{
	(void)state;
	struct policy_pipeline p = { .n = 0 };
	add(&p, (struct policy_stage){ .name = "spf", .points = POLICY_AT(POLICY_AT_MAIL), .does_io = true,
		.timeout_ms = 1000, .decide = txn_stage });
	assert_non_null(decide(&p, POLICY_AT_MAIL));
	fake_run_job();
	assert_int_equal(got.calls, 1);
	assert_true(got.had_facts);
	assert_true(got.txn.spf_done);
	assert_string_equal(got.txn.spf.domain, "example.com");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_all_pass_in_order, reset),
		cmocka_unit_test_setup(test_ok_words_per_point, reset),
		cmocka_unit_test_setup(test_first_refusal_wins, reset),
		cmocka_unit_test_setup(test_stages_only_at_their_points, reset),
		cmocka_unit_test_setup(test_io_stage_runs_off_the_loop, reset),
		cmocka_unit_test_setup(test_io_refusal_wins, reset),
		cmocka_unit_test_setup(test_timeout_gives_its_own_words, reset),
		cmocka_unit_test_setup(test_timeout_verdict_words, reset),
		cmocka_unit_test_setup(test_timeout_words_from_the_facts, reset),
		cmocka_unit_test_setup(test_cancel_while_working, reset),
		cmocka_unit_test_setup(test_inline_executor, reset),
		cmocka_unit_test_setup(test_findings_reach_later_stages, reset),
		cmocka_unit_test_setup(test_from_list_and_full_pipeline, reset),
		cmocka_unit_test_setup(test_end_of_data_order_and_added_fields, reset),
		cmocka_unit_test_setup(test_end_of_data_first_refusal_wins, reset),
		cmocka_unit_test_setup(test_refusal_after_a_field_drops_the_fields, reset),
		cmocka_unit_test_setup(test_end_of_data_timeout_words, reset),
		cmocka_unit_test_setup(test_add_header_shapes, reset),
		cmocka_unit_test_setup(test_txn_findings_come_back, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
