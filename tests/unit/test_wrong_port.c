/* test_wrong_port.c - the port-25 trap (smtp/wrong_port.c): on an mx listener AUTH is
 * never offered and is answered 502 5.5.1 before any credentials are read, and a
 * relay refusal names the server's submission ports; a submission listener is
 * untouched. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "smtp/session.h"
#include "util/buf.h"

static int verify_calls;

static bool decide(void *ctx, struct policy_facts *pf, struct verdict *v)
{
	(void)ctx;
	if (pf->point == POLICY_AT_MAIL) {
		policy_check_mail(&pf->client, v);
	} else {
		struct rcpt_facts facts = { .local = pf->local, .domain = pf->domain,
			.domain_local = strcmp(pf->domain, "example.test") == 0, .user = USER_FOUND };
		policy_check_rcpt(&pf->client, &facts, v);
	}
	policy_facts_free(&pf);
	return true;
}

static bool spool_open(void *ctx, const struct smtp_envelope *env, char *qid)
{
	(void)ctx, (void)env, (void)qid;
	return false;
}
static bool spool_write(void *ctx, const void *p, size_t n) { (void)ctx, (void)p, (void)n; return false; }
static void spool_abort(void *ctx) { (void)ctx; }
static void spool_commit(void *ctx) { (void)ctx; }
static struct throttle_verdict blocked(void *ctx, const char *user)
{
	(void)ctx, (void)user;
	return (struct throttle_verdict){ THROTTLE_OPEN, 0 };
}
static void verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	(void)ctx, (void)mech, (void)user, (void)pass;
	verify_calls++;
}

static struct smtp_session *session(bool submission, bool tls, unsigned tls_port, unsigned starttls_port)
{
	struct smtp_conn_info info = {
		.conn_id = 3, .hostname = "mx.example.test", .client_addr = "192.0.2.7", .listener = "smtp",
		.submission = submission, .port = 25, .submissions_port = tls_port, .submission_port = starttls_port,
		.tls_offered = true, .tls_active = tls, .tls_description = tls ? "TLSv1.3" : NULL,
	};
	struct smtp_limits lim = { .max_message = 10000, .max_recipients = 5, .max_line = 512, .max_bad_commands = 5 };
	struct smtp_hooks h = { .decide = decide, .spool_open = spool_open, .spool_write = spool_write,
		.spool_abort = spool_abort, .spool_commit = spool_commit, .auth_blocked = blocked, .auth_verify = verify };
	struct smtp_session *s = smtp_session_new(&info, &lim, &h);
	assert_non_null(s);
	smtp_session_start(s);
	struct buf *o = smtp_session_output(s);
	buf_consume(o, o->len);
	return s;
}

static const char *say(struct smtp_session *s, const char *line, struct buf *out)
{
	buf_reset(out);
	assert_int_equal(smtp_session_feed(s, line, strlen(line)), strlen(line));
	struct buf *o = smtp_session_output(s);
	buf_append(out, o->data ? o->data : "", o->len);
	buf_consume(o, o->len);
	return buf_cstr(out);
}

static void test_auth_on_mx(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 16);
	for (int tls = 0; tls < 2; tls++) {
		verify_calls = 0;
		struct smtp_session *s = session(false, tls, 465, 587);
		assert_null(strstr(say(s, "EHLO client.example\r\n", &out), "AUTH"));
		/* an initial response on the line: refused at once, never checked */
		const char *r = say(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n", &out);
		assert_true(strncmp(r, "502-5.5.1 AUTH is not offered on port 25", 40) == 0);
		assert_non_null(strstr(r, "465 with SSL/TLS, or 587 with STARTTLS"));
		assert_null(strstr(r, "AGFsaWNl"));
		assert_non_null(strstr(r, "(ref 3."));
		/* LOGIN gets no challenge either: no 334, the next line is a command */
		r = say(s, "AUTH LOGIN\r\n", &out);
		assert_true(strncmp(r, "502-5.5.1 ", 10) == 0);
		r = say(s, "NOOP\r\n", &out);
		assert_true(strncmp(r, "250 ", 4) == 0);
		assert_int_equal(verify_calls, 0);
		smtp_session_free(&s);
	}
	buf_free(&out);
}

static void test_relay_on_mx_names_ports(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 16);
	struct smtp_session *s = session(false, false, 0, 2587);
	say(s, "EHLO client.example\r\n", &out);
	say(s, "MAIL FROM:<someone@elsewhere.example>\r\n", &out);
	const char *r = say(s, "RCPT TO:<friend@other.example>\r\n", &out);
	assert_true(strncmp(r, "554-5.7.1 ", 10) == 0);
	assert_non_null(strstr(r, "relaying denied"));
	assert_non_null(strstr(r, "Port 25 is for mail from other mail servers"));
	assert_non_null(strstr(r, "submission port: 2587 with STARTTLS"));
	assert_null(strstr(r, "465"));
	/* local mail is still taken from anyone */
	r = say(s, "RCPT TO:<alice@example.test>\r\n", &out);
	assert_true(strncmp(r, "250 ", 4) == 0);
	r = say(s, "RSET\r\nMAIL FROM:<someone@elsewhere.example>\r\nRCPT TO:<friend@other.example>\r\nDATA\r\n", &out);
	r = strstr(r, "503-5.5.1 ");
	assert_non_null(r);
	assert_non_null(strstr(r, "Wrong port: port 25 is for mail from other mail servers"));
	smtp_session_free(&s);
	buf_free(&out);
}

static void test_no_submission_listener(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 16);
	struct smtp_session *s = session(false, false, 0, 0);
	say(s, "EHLO client.example\r\n", &out);
	const char *r = say(s, "AUTH PLAIN\r\n", &out);
	assert_non_null(strstr(r, "none is configured here"));
	smtp_session_free(&s);
	buf_free(&out);
}

static void test_submission_untouched(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 1 << 16);
	verify_calls = 0;
	struct smtp_session *s = session(true, true, 465, 587);
	assert_non_null(strstr(say(s, "EHLO client.example\r\n", &out), "250-AUTH PLAIN LOGIN\r\n"));
	assert_string_equal(say(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n", &out), "");
	assert_int_equal(verify_calls, 1);
	smtp_session_free(&s);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_on_mx),
		cmocka_unit_test(test_relay_on_mx_names_ports),
		cmocka_unit_test(test_no_submission_listener),
		cmocka_unit_test(test_submission_untouched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
