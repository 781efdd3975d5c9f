/* test_edits.c - the changes an end-of-data stage asks for (policy/edits.c), made real
 * by the server's materialiser (serve/edit.c) on a real queue writer (queue/writer.c):
 * what each edit accepts and refuses, the header indices over H (the added fields, then
 * the message's) with folded fields kept whole, a changed field keeping its place, the
 * replacement body's line ends, the envelope (sender, recipients with their ESMTP
 * arguments read by the SMTP parser), every recipient deleted, a write that fails (the
 * old file intact, 451 4.3.0), a stage that finishes after the session gave up, and a
 * message held at the commit (its state written before it enters active/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "queue/queue.h"
#include "serve/edit.h"
#include "util/id.h"

struct fixture {
	char dir[64];
	struct queue *q;
	struct queue_writer *w;
	struct spool_share *share;
	struct policy_facts *f;
	char qid[QUEUE_ID_LEN + 1];
};

static const char message[] =
	"Received: from c (unknown [192.0.2.1])\r\n\tby mx.example.test (Postern)\r\n"
	"Subject: hello\r\n world\r\n"
	"X-A: 1\r\n"
	"To: b@example.test\r\n"
	"X-A: 2\r\n\tfolded\r\n"
	"\r\n"
	"body line\r\n.dot line\r\n";

static const char *spool_text = message;   /* what setup spools */

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/postern-edits-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	char err[256];
	if (!queue_open(&fx->q, fx->dir, err, sizeof(err)))
		return -1;
	struct queue_envelope env;
	char rcpt[2][QUEUE_ADDR_MAX];
	memset(&env, 0, sizeof(env));
	id_new_queue_id(env.qid);
	env.arrival = 1700000000;
	snprintf(env.client_addr, sizeof(env.client_addr), "192.0.2.1");
	snprintf(env.helo, sizeof(env.helo), "client.example.test");
	snprintf(env.protocol, sizeof(env.protocol), "ESMTP");
	snprintf(env.sender, sizeof(env.sender), "a@example.test");
	snprintf(rcpt[0], QUEUE_ADDR_MAX, "b@example.test");
	snprintf(rcpt[1], QUEUE_ADDR_MAX, "c@other.test");
	env.rcpts = rcpt;
	env.n_rcpts = 2;
	assert_true(queue_envelope_set_dsn(&env, 1, QUEUE_NOTIFY_FAILURE, "rfc822;c@other.test"));
	fx->w = queue_writer_open(fx->q, &env, err, sizeof(err));
	free(env.notify);
	free(env.orcpt);
	if (!fx->w)
		return -1;
	memcpy(fx->qid, env.qid, sizeof(fx->qid));
	assert_true(queue_writer_write(fx->w, spool_text, strlen(spool_text)));
	assert_true(queue_writer_flush(fx->w));
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	snprintf(f->message_path, sizeof(f->message_path), "%s", queue_writer_path(fx->w));
	f->message_offset = queue_writer_message_offset(fx->w);
	f->message_size = queue_writer_size(fx->w);
	snprintf(f->address, sizeof(f->address), "a@example.test");
	assert_true(policy_facts_set_rcpts(f, 2));
	snprintf(f->rcpts[0].address, sizeof(f->rcpts[0].address), "b@example.test");
	f->rcpts[0].domain_local = true;
	snprintf(f->rcpts[1].address, sizeof(f->rcpts[1].address), "c@other.test");
	fx->share = spool_share_new(fx->w, 7, 4096, f);
	assert_non_null(fx->share);
	fx->f = f;
	*state = fx;
	return 0;
}

/* A message whose first line is folded (no field to fold into): it is no field of
 * H, never joins the last added field (a fuzzer found that), and no field put at the
 * end of H swallows it. */
static int setup_folded_first(void **state)
{
	spool_text = "\tnot a field\r\nSubject: x\r\n\r\nbody\r\n";
	int r = setup(state);
	spool_text = message;
	return r;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	policy_facts_free(&fx->f);
	spool_share_release(&fx->share, false);
	queue_writer_free(&fx->w);
	queue_close(&fx->q);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	int r = system(cmd);
	(void)r;
	free(fx);
	return 0;
}

/* The message the spool file holds now, from the facts' bounds. */
static char *spooled(const struct policy_facts *f)
{
	char *buf = calloc(1, f->message_size + 1);
	int fd = open(f->message_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, f->message_size, (off_t)f->message_offset), (ssize_t)f->message_size);
	close(fd);
	return buf;
}

/* Commit, then read the queued message back as every reader gets it. */
static char *commit_and_read(struct fixture *fx, struct queue_message *m)
{
	char err[256] = "";
	spool_share_release(&fx->share, false);
	if (!queue_writer_commit(fx->w, err, sizeof(err)))
		fail_msg("commit: %s", err);
	queue_writer_free(&fx->w);
	if (!queue_message_open(fx->q, fx->qid, m, err, sizeof(err)))
		fail_msg("open: %s", err);
	uint64_t n = queue_message_size(m);
	char *buf = calloc(1, n + 1);
	assert_int_equal(queue_message_pread(m, buf, n, 0), (ssize_t)n);
	return buf;
}

static void test_refusals(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_false(policy_edit_header_add(f, "", "x"));
	assert_false(policy_edit_header_add(f, "Bad Name", "x"));
	assert_false(policy_edit_header_add(f, "Bad:Name", "x"));
	assert_false(policy_edit_header_add(f, "X-B", "one\ntwo: a second field"));
	assert_false(policy_edit_header_add(f, "X-B", "bare\rcr"));
	assert_false(policy_edit_header_add(f, "X-B", "ctl\x01"));
	assert_false(policy_edit_header_add(f, "X-B", "blank\n\nline"));
	assert_false(policy_edit_header_add(f, NULL, "x"));
	char *big = malloc(POLICY_EDIT_FIELD_MAX + 10);
	memset(big, 'a', POLICY_EDIT_FIELD_MAX + 9);
	big[POLICY_EDIT_FIELD_MAX + 9] = '\0';
	assert_false(policy_edit_header_add(f, "X-Big", big));
	free(big);
	assert_false(policy_edits_pending(f));
	/* the SMTP parser's refusals */
	assert_false(policy_edit_rcpt_add(f, "not an address", NULL));
	assert_false(policy_edit_rcpt_add(f, "d@example.test", "FOO=bar"));
	assert_false(policy_edit_rcpt_add(f, "d@example.test", "NOTIFY=SOMETIMES"));
	assert_false(policy_edit_sender(f, "a@", NULL));
	assert_false(policy_edit_sender(f, "a@example.test", "BODY=9BIT"));
	assert_false(policy_edits_pending(f));
	/* the body: a NUL, or past the bound (4096 here), spoils it */
	assert_true(policy_edit_body_append(f, "ok\n", 3));
	assert_false(policy_edit_body_append(f, "a\0b", 3));
	assert_false(policy_edit_body_append(f, "more", 4));
	struct verdict v;
	verdict_set(&v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
	char *before = spooled(f);
	assert_false(policy_edits_apply(f, &v));
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, "4.3.0");
	char *after = spooled(f);
	assert_string_equal(before, after);   /* untouched */
	free(before);
	free(after);
	/* not at the end of data: nothing */
	struct policy_facts *g = policy_facts_new(POLICY_AT_RCPT);
	assert_false(policy_edit_header_add(g, "X-B", "x"));
	policy_facts_free(&g);
}

static void test_headers(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_facts_add_header(f, "Authentication-Results: mx.example.test; spf=pass"));
	/* H: 0 Authentication-Results, 1 Received (folded), 2 Subject (folded), 3 X-A: 1,
	 * 4 To, 5 X-A: 2 (folded) */
	assert_true(policy_edit_header_insert(f, 0, "X-First", "top"));          /* before A-R */
	assert_true(policy_edit_header_insert(f, 3, "X-Third", "between"));      /* before Subject: now index 3 */
	assert_true(policy_edit_header_change(f, "subject", 1, "[SPAM] hello\n\tagain"));   /* in place, whole */
	assert_true(policy_edit_header_change(f, "X-A", 2, ""));                 /* the folded one, whole */
	assert_true(policy_edit_header_change(f, "X-Missing", 1, ""));           /* nothing */
	assert_true(policy_edit_header_change(f, "X-New", 3, "added at the end"));
	assert_true(policy_edit_header_add(f, "X-Spam-Score", " 15.3\r\n"));      /* leading space kept, line end dropped */
	assert_true(policy_edit_header_add(f, "X-Empty", ""));
	assert_true(policy_edit_header_insert(f, 999, "X-Last", "past the end"));
	assert_true(policy_edits_pending(f));
	struct verdict v;
	verdict_set(&v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
	assert_true(policy_edits_apply(f, &v));
	assert_int_equal(v.code, 250);
	assert_false(policy_edits_pending(f));
	assert_null(f->added);   /* folded into the message */
	assert_int_equal(f->added_len, 0);
	static const char want[] =
		"X-First: top\r\n"
		"Authentication-Results: mx.example.test; spf=pass\r\n"
		"Received: from c (unknown [192.0.2.1])\r\n\tby mx.example.test (Postern)\r\n"
		"X-Third: between\r\n"
		"Subject: [SPAM] hello\r\n\tagain\r\n"
		"X-A: 1\r\n"
		"To: b@example.test\r\n"
		"X-New: added at the end\r\n"
		"X-Spam-Score: 15.3\r\n"
		"X-Empty:\r\n"
		"X-Last: past the end\r\n"
		"\r\n"
		"body line\r\n.dot line\r\n";
	char *now = spooled(f);
	assert_string_equal(now, want);
	free(now);
	/* a second round counts over the new H; the signing stage's fields then go in the
	 * added block, after the commit, first */
	assert_true(policy_edit_header_change(f, "X-A", 1, "one again"));
	assert_true(policy_edits_apply(f, &v));
	assert_true(policy_facts_add_header(f, "DKIM-Signature: v=1; d=example.test"));
	struct queue_message m;
	char *got = commit_and_read(fx, &m);
	assert_non_null(strstr(got, "\r\nX-A: one again\r\nTo: b@example.test\r\n"));
	queue_message_close(&m);
	free(got);
}

static void test_body(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_edit_body_append(f, "new body\nsecond\r", 16));
	assert_true(policy_edit_body_append(f, "\nthird\r\rfourth", 14));   /* CR LF split across pieces */
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	char *now = spooled(f);
	const char *body = strstr(now, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body, "\r\n\r\nnew body\r\nsecond\r\nthird\r\n\r\nfourth\r\n");
	assert_non_null(strstr(now, "Subject: hello\r\n world\r\n"));   /* the header untouched */
	free(now);
	/* an empty replacement: the header and the blank line */
	assert_true(policy_edit_body_append(f, "", 0));
	assert_true(policy_edits_apply(f, &v));
	now = spooled(f);
	size_t n = strlen(now);
	assert_true(n > 4 && strcmp(now + n - 4, "\r\n\r\n") == 0);
	free(now);
}

static void test_envelope(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_edit_sender(f, "<bounces@example.test>", "RET=HDRS ENVID=env+2B1"));
	assert_true(policy_edit_rcpt_add(f, "d@example.test", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;d@example.test"));
	assert_true(policy_edit_rcpt_add(f, "<B@example.test>", NULL));   /* already there: not twice */
	assert_true(policy_edit_rcpt_del(f, "<c@other.test>"));
	assert_true(policy_edit_rcpt_del(f, "nobody@example.test"));        /* not there: nothing */
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	assert_string_equal(f->address, "bounces@example.test");
	assert_string_equal(f->domain, "example.test");
	assert_false(f->null_sender);
	assert_int_equal(f->n_rcpts, 2);
	assert_string_equal(f->rcpts[0].address, "b@example.test");
	assert_true(f->rcpts[0].domain_local);   /* kept from RCPT */
	assert_string_equal(f->rcpts[1].address, "d@example.test");
	assert_false(f->rcpts[1].domain_local);
	struct queue_message m;
	char *got = commit_and_read(fx, &m);
	assert_string_equal(got, message);   /* the message itself unchanged */
	assert_string_equal(m.env.sender, "bounces@example.test");
	assert_int_equal(m.env.ret, QUEUE_RET_HDRS);
	assert_string_equal(m.env.envid, "env+1");
	assert_string_equal(m.env.helo, "client.example.test");   /* the rest kept */
	assert_int_equal(m.env.arrival, 1700000000);
	assert_int_equal(m.env.n_rcpts, 2);
	assert_string_equal(m.env.rcpts[0], "b@example.test");
	assert_string_equal(m.env.rcpts[1], "d@example.test");
	assert_non_null(m.env.notify);
	assert_int_equal(m.env.notify[0], 0);
	assert_int_equal(m.env.notify[1], QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE);
	assert_string_equal(m.env.orcpt[1], "rfc822;d@example.test");
	queue_message_close(&m);
	free(got);
}

static void test_null_sender_and_dsn_kept(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_edit_sender(f, "<>", NULL));
	assert_true(policy_edit_rcpt_del(f, "b@example.test"));
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	assert_true(f->null_sender);
	assert_string_equal(f->address, "");
	struct queue_message m;
	char *got = commit_and_read(fx, &m);
	assert_string_equal(m.env.sender, "");
	assert_int_equal(m.env.n_rcpts, 1);
	assert_string_equal(m.env.rcpts[0], "c@other.test");
	assert_int_equal(m.env.notify[0], QUEUE_NOTIFY_FAILURE);   /* its RCPT's DSN, kept */
	assert_string_equal(m.env.orcpt[0], "rfc822;c@other.test");
	queue_message_close(&m);
	free(got);
}

static void test_folded_first_line(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_facts_add_header(f, "Authentication-Results: mx.example.test; none"));
	assert_true(policy_edit_header_add(f, "X-End", "of H"));
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	char *now = spooled(f);
	/* H is the added field alone; the message, all body, follows it after the blank
	 * line that ends the header */
	assert_string_equal(now, "Authentication-Results: mx.example.test; none\r\nX-End: of H\r\n\r\n"
		"\tnot a field\r\nSubject: x\r\n\r\nbody\r\n");
	free(now);
}

static void test_every_rcpt_deleted(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	assert_true(policy_edit_rcpt_del(f, "b@example.test"));
	assert_true(policy_edit_rcpt_del(f, "C@OTHER.TEST"));
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	assert_int_equal(f->disposition, POLICY_DISCARD);
	assert_non_null(strstr(f->disposition_reason, "every recipient"));
}

/* A write that fails half way (the file size limit stands in for a full disk: the
 * same write(2) failing): 451 4.3.0, the old file and the writer as they were. */
static void test_write_fails(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	char *before = spooled(f);
	unsigned long long off = f->message_offset, size = f->message_size;
	char *value = malloc(12000);
	memset(value, 'v', 11999);
	value[11999] = '\0';
	assert_true(policy_edit_header_add(f, "X-Long", value));
	free(value);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	struct verdict v;
	verdict_set(&v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
	bool ok = policy_edits_apply(f, &v);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_false(ok);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, "4.3.0");
	assert_int_equal(v.cause, CAUSE_EDIT_FAILED);
	assert_int_equal(f->message_offset, off);
	assert_int_equal(f->message_size, size);
	char *after = spooled(f);
	assert_string_equal(before, after);
	char edit[POLICY_PATH_MAX + 16];
	snprintf(edit, sizeof(edit), "%s.edit", f->message_path);
	assert_int_equal(access(edit, F_OK), -1);   /* no leftover */
	/* the writer still commits the message as it was */
	struct queue_message m;
	char *got = commit_and_read(fx, &m);
	assert_string_equal(got, message);
	queue_message_close(&m);
	free(got);
	free(before);
	free(after);
}

/* The session gave up (the stage timed out) while the stage still applies its edits:
 * the writer lives until the facts go, then the incoming file goes with it. */
static void test_session_gave_up(void **state)
{
	struct fixture *fx = *state;
	struct policy_facts *f = fx->f;
	char path[POLICY_PATH_MAX];
	snprintf(path, sizeof(path), "%s", f->message_path);
	spool_share_release(&fx->share, true);   /* the writer is the share's now */
	fx->w = NULL;
	assert_true(policy_edit_header_add(f, "X-Late", "yes"));
	struct verdict v;
	assert_true(policy_edits_apply(f, &v));
	assert_int_equal(access(path, F_OK), 0);
	policy_facts_free(&fx->f);
	assert_int_equal(access(path, F_OK), -1);
}

static const char *crash_qid;
static struct queue *crash_q;
static int crash_seen;

/* At each step of the commit, what a delivery thread could see. */
static void on_crash_point(const char *step)
{
	char path[512];
	struct queue_state st;
	if (strcmp(step, "hold-written") == 0) {
		snprintf(path, sizeof(path), "%s/active/%s", queue_dir(crash_q), crash_qid);
		assert_int_equal(access(path, F_OK), -1);   /* not in active/ yet */
		assert_true(queue_state_read(crash_q, crash_qid, 2, &st));
		assert_true(st.held);
		assert_false(st.damaged);
		queue_state_free(&st);
		crash_seen++;
	} else if (strcmp(step, "active-renamed") == 0) {
		assert_true(queue_state_read(crash_q, crash_qid, 2, &st));
		assert_true(st.held);
		queue_state_free(&st);
		crash_seen++;
	}
}

static void test_hold_at_commit(void **state)
{
	struct fixture *fx = *state;
	policy_facts_hold(fx->f, "quarantined by the content filter (rspamd): \"spam\"\n score 15");
	assert_int_equal(fx->f->disposition, POLICY_HOLD);
	assert_true(queue_writer_set_hold(fx->w, fx->f->disposition_reason));
	crash_qid = fx->qid;
	crash_q = fx->q;
	crash_seen = 0;
	queue_crash_point = on_crash_point;
	struct queue_message m;
	char *got = commit_and_read(fx, &m);
	queue_crash_point = NULL;
	assert_int_equal(crash_seen, 2);
	struct queue_state st;
	assert_true(queue_state_read(fx->q, fx->qid, m.env.n_rcpts, &st));
	assert_true(st.held);
	assert_string_equal(st.hold_reason, "quarantined by the content filter (rspamd): \"spam\"\n score 15");
	assert_int_equal(st.r[0].state, RCPT_PENDING);
	assert_int_equal(st.r[1].state, RCPT_PENDING);
	/* released: the reason goes with the hold; written and read back */
	st.held = false;
	st.hold_reason[0] = '\0';
	assert_true(queue_state_write(fx->q, fx->qid, &st));
	queue_state_free(&st);
	assert_true(queue_state_read(fx->q, fx->qid, 2, &st));
	assert_false(st.held);
	assert_string_equal(st.hold_reason, "");
	queue_state_free(&st);
	queue_message_close(&m);
	free(got);
	/* discard wins over hold */
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	policy_facts_discard(f, "dropped");
	policy_facts_hold(f, "held");
	assert_int_equal(f->disposition, POLICY_DISCARD);
	policy_facts_free(&f);
}

static void test_state_reason_parse(void **state)
{
	(void)state;
	static const char good[] = "POSTERN-STATE 2\nheld 1\nhold-reason spam%20score%0A15\ndelay-notified 0\n"
		"r 0 0 0 0 -\n";
	struct queue_state st;
	assert_true(queue_state_parse(good, sizeof(good) - 1, 1, &st));
	assert_true(st.held);
	assert_string_equal(st.hold_reason, "spam score\n15");
	queue_state_free(&st);
	static const char bad[] = "POSTERN-STATE 2\nheld 1\nhold-reason bad%zz\ndelay-notified 0\nr 0 0 0 0 -\n";
	assert_false(queue_state_parse(bad, sizeof(bad) - 1, 1, &st));
	assert_true(queue_state_recover(good, sizeof(good) - 1, 1, &st));
	assert_true(st.held);
	assert_string_equal(st.hold_reason, "spam score\n15");
	queue_state_free(&st);
	/* an older file, without the line: held, no reason */
	static const char old[] = "POSTERN-STATE 2\nheld 1\ndelay-notified 0\nr 0 0 0 0 -\n";
	assert_true(queue_state_parse(old, sizeof(old) - 1, 1, &st));
	assert_true(st.held);
	assert_string_equal(st.hold_reason, "");
	queue_state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_sender_and_dsn_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_rcpt_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folded_first_line, setup_folded_first, teardown),
		cmocka_unit_test_setup_teardown(test_write_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_gave_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_at_commit, setup, teardown),
		cmocka_unit_test(test_state_reason_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
