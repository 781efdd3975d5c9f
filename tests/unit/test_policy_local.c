/* test_policy_local.c - the local rules as decision stages (policy/local.c), run
 * through the real stage list (policy_add_local_stages) and the real runner against
 * a temporary SQLite directory and real Maildir++ quota files: each stage's verdict
 * for its facts, and their order (the first refusal wins, so a stage dropped or
 * moved changes a verdict here).  The executor runs every job at once, as workq_push
 * does without memory: the verdicts do not depend on threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "policy/policy.h"
#include "store/layout.h"
#include "store/quota.h"

static char data_dir[] = "/tmp/postern-test-local-XXXXXX";
static struct directory *dir;
static struct conf cf;
static struct policy_local local;
static struct policy_pipeline pipe_local;
static long long pop_age = -1;   /* what the POP3 table says for the client */

static long long fake_pop_login_age(void *ctx, const char *addr)
{
	(void)ctx;
	assert_string_equal(addr, "192.0.2.9");
	return pop_age;
}

/* --- an executor that runs each job at once -------------------------------- */

static unsigned jobs_run;

static void inline_submit(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
	(void)ctx;
	jobs_run++;
	work(arg);
	done(arg);
}

static const struct policy_executor executor = { .submit = inline_submit };

static struct verdict got;
static unsigned answers;
static bool got_maildir_quota;   /* the RCPT finding the end of data relies on */

static void on_verdict(void *arg, const struct verdict *v, struct policy_facts *f)
{
	(void)arg;
	answers++;
	got = *v;
	got_maildir_quota = f && f->maildir_quota;
}

/* --- the directory and the mailboxes --------------------------------------- */

static void make_maildir(const char *address_local, const char *domain, char path[1400], size_t pathsz)
{
	assert_true(store_mailbox_path(data_dir, domain, address_local, path, pathsz));
	char cmd[3 * 1400 + 64];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/cur' '%s/new' '%s/tmp'", path, path, path);
	assert_int_equal(system(cmd), 0);
}

/* alice and bob at example.test; bob may also send as sales@; carol's mailbox
 * (1000 bytes) holds 2000 bytes. */
static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(data_dir));
	char err[256];
	assert_true(directory_open(&dir, data_dir, err, sizeof(err)));
	conf_defaults(&cf);
	snprintf(cf.data_dir, sizeof(cf.data_dir), "%s", data_dir);
	snprintf(cf.hostname, sizeof(cf.hostname), "mx.example.test");
	assert_int_equal(directory_domain_add(dir, "example.test"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "alice@example.test", "x"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "bob@example.test", "x"), DIR_OK);
	assert_int_equal(directory_user_add(dir, "carol@example.test", "x"), DIR_OK);
	assert_int_equal(directory_sender_allow(dir, "bob@example.test", "sales@example.test"), DIR_OK);
	char md[1400];
	make_maildir("carol", "example.test", md, sizeof(md));
	assert_true(quota_set(md, 1000, 0, err, sizeof(err)));
	assert_true(quota_add(md, 2000, 1));
	local = (struct policy_local){ .conf = &cf, .dir = dir, .pop_login_age = fake_pop_login_age };
	pipe_local.n = 0;
	assert_true(policy_add_local_stages(&pipe_local, &local));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	directory_close(&dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int reset(void **state)
{
	(void)state;
	memset(&got, 0, sizeof(got));
	answers = 0;
	jobs_run = 0;
	pop_age = -1;
	cf.pop_before_smtp = 0;
	cf.quota_full_permanent = false;
	return 0;
}

/* --- asking ------------------------------------------------------------------ */

struct client_kind {
	bool submission, authenticated, trusted;
	const char *login;
};

static const struct client_kind mx_stranger = { false, false, false, "" };
static const struct client_kind submission_stranger = { true, false, false, "" };
static const struct client_kind bob_logged_in = { true, true, false, "bob@example.test" };
static const struct client_kind trusted_network = { false, false, true, "" };

static struct policy_facts *facts(enum policy_point point, const struct client_kind *k)
{
	struct policy_facts *f = policy_facts_new(point);
	assert_non_null(f);
	f->conn_id = 1;
	f->client = (struct policy_client){ .submission_port = k->submission, .authenticated = k->authenticated,
		.trusted_network = k->trusted, .pop_login_age = -1 };
	snprintf(f->client_addr, sizeof(f->client_addr), "192.0.2.9");
	snprintf(f->login, sizeof(f->login), "%s", k->login);
	return f;
}

static void set_address(struct policy_facts *f, const char *local_part, const char *domain)
{
	snprintf(f->address, sizeof(f->address), "%s@%s", local_part, domain);
	snprintf(f->local, sizeof(f->local), "%s", local_part);
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
}

/* Run one decision to its verdict (every job runs at once). */
static const struct verdict *decide(struct policy_facts *f)
{
	assert_null(policy_decide(&pipe_local, &executor, f, on_verdict, NULL));
	assert_int_equal(answers, 1);
	answers = 0;
	return &got;
}

static const struct verdict *mail_from(const struct client_kind *k, const char *local_part, const char *domain)
{
	struct policy_facts *f = facts(POLICY_AT_MAIL, k);
	if (local_part)
		set_address(f, local_part, domain);
	else
		f->null_sender = true;
	return decide(f);
}

static const struct verdict *rcpt_to(const struct client_kind *k, const char *local_part, const char *domain,
	unsigned long long declared_size)
{
	struct policy_facts *f = facts(POLICY_AT_RCPT, k);
	set_address(f, local_part, domain);
	f->declared_size = declared_size;
	return decide(f);
}

static const struct verdict *from_header(const struct client_kind *k, const char *const *from, size_t n)
{
	struct policy_facts *f = facts(POLICY_AT_FROM_HEADER, k);
	assert_true(policy_facts_set_from(f, from, n));
	return decide(f);
}

static void assert_refused(const struct verdict *v, enum verdict_kind kind, int code, const char *enh,
	enum refusal_cause cause, const char *words)
{
	assert_int_equal(v->kind, kind);
	assert_int_equal(v->code, code);
	assert_string_equal(v->enh, enh);
	assert_int_equal(v->cause, cause);
	if (!strstr(v->reason, words))
		fail_msg("reason \"%s\" does not say \"%s\"", v->reason, words);
	assert_true(v->hint[0] != '\0');
}

static void assert_accepted(const struct verdict *v, const char *enh)
{
	if (v->kind != VERDICT_OK)
		fail_msg("refused: %d %s %s", v->code, v->enh, v->reason);
	assert_int_equal(v->code, 250);
	assert_string_equal(v->enh, enh);
}

/* --- the stage list ------------------------------------------------------------- */

/* The order the rules depend on: postmaster and the directory's findings first (the
 * "recipient" stage), then POP-before-SMTP (its words explain a relay refusal better
 * than the plain one), then relaying (DESIGN invariant 2), then the mailbox. */
static void test_stage_list(void **state)
{
	(void)state;
	static const struct { const char *name; unsigned points; bool io; } want[] = {
		{ "submission", POLICY_AT(POLICY_AT_MAIL), false },
		{ "sender", POLICY_AT(POLICY_AT_MAIL), true },
		{ "recipient", POLICY_AT(POLICY_AT_RCPT), true },
		{ "pop-before-smtp", POLICY_AT(POLICY_AT_RCPT), false },
		{ "relay", POLICY_AT(POLICY_AT_RCPT), false },
		{ "mailbox", POLICY_AT(POLICY_AT_RCPT), false },
		{ "from-header", POLICY_AT(POLICY_AT_FROM_HEADER), true },
		{ "quota", POLICY_AT(POLICY_AT_END_OF_DATA), true },
	};
	assert_int_equal(pipe_local.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < pipe_local.n; i++) {
		const struct policy_stage *st = &pipe_local.stages[i];
		assert_string_equal(st->name, want[i].name);
		assert_int_equal(st->points, want[i].points);
		assert_int_equal(st->does_io, want[i].io);
		assert_ptr_equal(st->ctx, &local);
		if (st->does_io) {   /* a lookup that hangs becomes 451 4.4.3 naming the directory */
			assert_int_equal(st->timeout_ms, POLICY_LOOKUP_TIMEOUT_MS);
			assert_string_equal(st->words, "the user directory");
		}
	}
	/* A pipeline with no room for all of them says so. */
	struct policy_pipeline small = { .n = POLICY_STAGES_MAX - 3 };
	assert_false(policy_add_local_stages(&small, &local));
}

/* --- MAIL ----------------------------------------------------------------------- */

static void test_mail_submission_needs_login(void **state)
{
	(void)state;
	assert_refused(mail_from(&submission_stranger, "alice", "example.test"), VERDICT_PERM, 530, "5.7.0",
		CAUSE_AUTH_REQUIRED, "authentication required: this is a submission port");
	/* On port 25 anyone may name any sender: SPF/DMARC judge it later. */
	assert_accepted(mail_from(&mx_stranger, "alice", "example.test"), "2.1.0");
	assert_accepted(mail_from(&mx_stranger, "someone", "elsewhere.example"), "2.1.0");
	assert_int_equal(jobs_run, 0);   /* no login: the sender stage is not wanted */
}

static void test_mail_sender_owned(void **state)
{
	(void)state;
	assert_accepted(mail_from(&bob_logged_in, "bob", "example.test"), "2.1.0");
	assert_accepted(mail_from(&bob_logged_in, "sales", "example.test"), "2.1.0");   /* granted */
	assert_int_equal(jobs_run, 2);   /* the directory was asked off the loop */
	assert_refused(mail_from(&bob_logged_in, "alice", "example.test"), VERDICT_PERM, 553, "5.7.1",
		CAUSE_SENDER_NOT_OWNED, "you are logged in as bob@example.test, and alice@example.test is not one of your "
		"addresses (MAIL FROM)");
	assert_non_null(strstr(got.hint, "Send from the address you log in with (bob@example.test)"));
	/* The null sender (bounces) is not a claim to an address. */
	jobs_run = 0;
	assert_accepted(mail_from(&bob_logged_in, NULL, NULL), "2.1.0");
	assert_int_equal(jobs_run, 0);
}

/* Both MAIL rules would refuse (a login name without a login): submission comes first. */
static void test_mail_order(void **state)
{
	(void)state;
	struct client_kind half = submission_stranger;
	half.login = "bob@example.test";
	assert_refused(mail_from(&half, "alice", "example.test"), VERDICT_PERM, 530, "5.7.0", CAUSE_AUTH_REQUIRED,
		"authentication required");
}

/* --- RCPT ----------------------------------------------------------------------- */

static void test_rcpt_local_user(void **state)
{
	(void)state;
	/* Without the recipient stage's findings the relay rule would refuse these. */
	assert_accepted(rcpt_to(&mx_stranger, "alice", "example.test", 0), "2.1.5");
	assert_accepted(rcpt_to(&mx_stranger, "Alice", "example.test", 0), "2.1.5");
	assert_accepted(rcpt_to(&mx_stranger, "postmaster", "example.test", 0), "2.1.5");
	assert_int_equal(jobs_run, 3);
}

static void test_rcpt_unknown_user(void **state)
{
	(void)state;
	assert_refused(rcpt_to(&mx_stranger, "nobody", "example.test", 0), VERDICT_PERM, 550, "5.1.1",
		CAUSE_UNKNOWN_USER, "no mailbox named \"nobody\" here at example.test");
	/* Logging in does not make a missing mailbox exist. */
	assert_refused(rcpt_to(&bob_logged_in, "nobody", "example.test", 0), VERDICT_PERM, 550, "5.1.1",
		CAUSE_UNKNOWN_USER, "no mailbox named");
}

static void test_rcpt_relay(void **state)
{
	(void)state;
	assert_refused(rcpt_to(&mx_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied: elsewhere.example is not a domain of this server");
	assert_refused(rcpt_to(&submission_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_RELAY_NOT_LOGGED_IN, "you have not logged in");
	assert_accepted(rcpt_to(&bob_logged_in, "someone", "elsewhere.example", 0), "2.1.5");
	assert_accepted(rcpt_to(&trusted_network, "someone", "elsewhere.example", 0), "2.1.5");
}

static void test_rcpt_mailbox_full(void **state)
{
	(void)state;
	assert_refused(rcpt_to(&mx_stranger, "carol", "example.test", 0), VERDICT_TEMP, 452, "4.2.2",
		CAUSE_MAILBOX_FULL, "the mailbox of carol@example.test is full");
	cf.quota_full_permanent = true;
	assert_refused(rcpt_to(&mx_stranger, "carol", "example.test", 0), VERDICT_PERM, 552, "5.2.2",
		CAUSE_MAILBOX_FULL, "is full");
	/* A declared SIZE larger than the whole mailbox can never fit (RFC 1870). */
	cf.quota_full_permanent = false;
	assert_refused(rcpt_to(&mx_stranger, "carol", "example.test", 5000), VERDICT_PERM, 552, "5.2.2",
		CAUSE_MAILBOX_FULL, "carol@example.test");
	/* alice has no quota: any size fits. */
	assert_accepted(rcpt_to(&mx_stranger, "alice", "example.test", 5000), "2.1.5");
}

static void test_rcpt_pop_before_smtp(void **state)
{
	(void)state;
	cf.pop_before_smtp = 600;
	pop_age = 60;
	assert_accepted(rcpt_to(&mx_stranger, "someone", "elsewhere.example", 0), "2.1.5");
	/* The window passed: its own words, not the plain relay refusal (stage order). */
	pop_age = 1200;
	assert_refused(rcpt_to(&mx_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_POP_EXPIRED, "you last checked mail 20 minutes ago; this server relays for 10 minutes");
	/* Never checked mail: the plain relay refusal. */
	pop_age = -1;
	assert_refused(rcpt_to(&mx_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied");
	/* Off (the default): the POP3 table is not even asked. */
	cf.pop_before_smtp = 0;
	pop_age = 60;
	assert_refused(rcpt_to(&mx_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied");
	/* Local mail needs no window. */
	pop_age = 1200;
	cf.pop_before_smtp = 600;
	assert_accepted(rcpt_to(&mx_stranger, "alice", "example.test", 0), "2.1.5");
}

/* Postmaster at a local domain is accepted even when nothing else would be (RFC 5321
 * §4.5.1), and the bare <postmaster> goes to the server's own postmaster. */
static void test_rcpt_postmaster(void **state)
{
	(void)state;
	struct policy_facts *f = facts(POLICY_AT_RCPT, &mx_stranger);
	snprintf(f->address, sizeof(f->address), "postmaster");
	snprintf(f->local, sizeof(f->local), "postmaster");
	f->bare_postmaster = true;
	assert_accepted(decide(f), "2.1.5");
}

/* --- the From: check ------------------------------------------------------------ */

static void test_from_header(void **state)
{
	(void)state;
	const char *own[] = { "bob@example.test", "sales@example.test" };
	assert_accepted(from_header(&bob_logged_in, own, 2), "2.0.0");
	const char *mixed[] = { "bob@example.test", "alice@example.test" };
	assert_refused(from_header(&bob_logged_in, mixed, 2), VERDICT_PERM, 550, "5.7.1", CAUSE_SENDER_NOT_OWNED,
		"alice@example.test is not one of your addresses (From: header)");
	/* Mail from the Internet is not judged by this rule. */
	jobs_run = 0;
	assert_accepted(from_header(&mx_stranger, mixed, 2), "2.0.0");
	assert_int_equal(jobs_run, 0);
}

/* A stage takes part only in its own decision: the From: rule never judges MAIL FROM,
 * the MAIL rules never judge a recipient. */
static void test_points_kept_apart(void **state)
{
	(void)state;
	/* A submission client without login gets 530 at MAIL, but its RCPT (had MAIL passed)
	 * is judged by the relay rule alone. */
	assert_refused(rcpt_to(&submission_stranger, "someone", "elsewhere.example", 0), VERDICT_PERM, 554, "5.7.1",
		CAUSE_RELAY_NOT_LOGGED_IN, "relaying denied");
	assert_accepted(rcpt_to(&submission_stranger, "alice", "example.test", 0), "2.1.5");
	/* bob names alice at RCPT: that is not a sender claim. */
	assert_accepted(rcpt_to(&bob_logged_in, "alice", "example.test", 0), "2.1.5");
}

/* --- the end of data ----------------------------------------------------------- */

struct eod_rcpt {
	const char *address;
	bool local, quota;
};

static const struct verdict *end_of_data(const struct eod_rcpt *r, size_t n, unsigned long long size)
{
	struct policy_facts *f = facts(POLICY_AT_END_OF_DATA, &mx_stranger);
	set_address(f, "s", "elsewhere.example");
	f->message_size = size;
	assert_true(policy_facts_set_rcpts(f, n));
	for (size_t i = 0; i < n; i++) {
		snprintf(f->rcpts[i].address, sizeof(f->rcpts[i].address), "%s", r[i].address);
		f->rcpts[i].domain_local = r[i].local;
		f->rcpts[i].quota = r[i].quota;
	}
	return decide(f);
}

/* The message at its real size fits no recipient's mailbox: refused in the quota's
 * words before the commit; the mailboxes are resolved in the directory by the stage. */
static void test_end_of_data_quota(void **state)
{
	(void)state;
	/* RCPT tells whether a mailbox has a quota at all (carol's has, alice's not). */
	rcpt_to(&mx_stranger, "carol", "example.test", 0);
	assert_true(got_maildir_quota);
	assert_accepted(rcpt_to(&mx_stranger, "alice", "example.test", 0), "2.1.5");
	assert_false(got_maildir_quota);
	const struct eod_rcpt carol = { "carol@example.test", true, true };
	jobs_run = 0;
	const struct verdict *v = end_of_data(&carol, 1, 500);
	assert_refused(v, VERDICT_TEMP, 452, "4.2.2", CAUSE_MAILBOX_FULL, "it is ");
	if (!strstr(v->reason, ", and the mailbox of carol@example.test is full"))
		fail_msg("reason \"%s\"", v->reason);
	assert_int_equal(jobs_run, 1);   /* off the loop */
	cf.quota_full_permanent = true;
	assert_refused(end_of_data(&carol, 1, 500), VERDICT_PERM, 552, "5.2.2", CAUSE_MAILBOX_FULL,
		"the mailbox of carol@example.test");
	/* Someone else can take it, so it is queued (carol's copy fails at delivery); and
	 * nothing is looked up when a recipient has no quota or is not local. */
	const struct eod_rcpt some_room[] = { carol, { "alice@example.test", true, false } };
	const struct eod_rcpt remote[] = { carol, { "r@elsewhere.example", false, false } };
	jobs_run = 0;
	assert_accepted(end_of_data(some_room, 2, 500), "2.0.0");
	assert_accepted(end_of_data(remote, 2, 500), "2.0.0");
	assert_int_equal(jobs_run, 0);
	/* Postmaster is never refused (RFC 5321 §4.5.1), even with a quota found. */
	const struct eod_rcpt postmaster[] = { carol, { "postmaster@example.test", true, true } };
	assert_accepted(end_of_data(postmaster, 2, 500), "2.0.0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_stage_list, reset),
		cmocka_unit_test_setup(test_mail_submission_needs_login, reset),
		cmocka_unit_test_setup(test_mail_sender_owned, reset),
		cmocka_unit_test_setup(test_mail_order, reset),
		cmocka_unit_test_setup(test_rcpt_local_user, reset),
		cmocka_unit_test_setup(test_rcpt_unknown_user, reset),
		cmocka_unit_test_setup(test_rcpt_relay, reset),
		cmocka_unit_test_setup(test_rcpt_mailbox_full, reset),
		cmocka_unit_test_setup(test_rcpt_pop_before_smtp, reset),
		cmocka_unit_test_setup(test_rcpt_postmaster, reset),
		cmocka_unit_test_setup(test_from_header, reset),
		cmocka_unit_test_setup(test_points_kept_apart, reset),
		cmocka_unit_test_setup(test_end_of_data_quota, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
