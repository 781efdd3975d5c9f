/* test_login.c - the shared login front end (auth/login.h) with fake hooks: PLAIN
 * and LOGIN exchanges, USER/PASS, cancel, bad base64, and the throttle's verdicts
 * passed through as they are; and the login service on its threads against a real
 * directory: right, wrong and unknown, one hash each, the throttle counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/login.h"
#include "auth/password.h"
#include "directory/directory.h"

struct fake {
	struct throttle_verdict verdict;     /* what blocked() answers */
	const char *blocked_for;             /* the user blocked() refuses (NULL: any, when verdict set) */
	int blocked_calls;
	const char *last_asked;              /* user blocked() was asked about ("(null)" for NULL) */
	char asked[400];
	int verify_calls;
	char mech[16], user[400], pass[600];
	struct login_exchange *x;            /* to check the password is gone when verify runs */
	bool pass_wiped_at_verify;
};

static struct throttle_verdict fake_blocked(void *ctx, const char *user)
{
	struct fake *f = ctx;
	f->blocked_calls++;
	snprintf(f->asked, sizeof(f->asked), "%s", user ? user : "(null)");
	f->last_asked = f->asked;
	struct throttle_verdict open = { THROTTLE_OPEN, 0 };
	if (f->verdict.block == THROTTLE_OPEN)
		return open;
	if (f->blocked_for && (!user || strcmp(user, f->blocked_for) != 0))
		return open;
	return f->verdict;
}

static void fake_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct fake *f = ctx;
	f->verify_calls++;
	snprintf(f->mech, sizeof(f->mech), "%s", mech);
	snprintf(f->user, sizeof(f->user), "%s", user);
	snprintf(f->pass, sizeof(f->pass), "%s", pass);
	f->pass_wiped_at_verify = f->x && f->x->sasl.pass[0] == '\0';
}

static struct login_hooks hooks_for(struct fake *f)
{
	return (struct login_hooks){ f, fake_blocked, fake_verify };
}

/* base64 of "\0alice@example.test\0secret" */
#define PLAIN_ALICE "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
#define B64_ALICE "YWxpY2VAZXhhbXBsZS50ZXN0"   /* alice@example.test */
#define B64_SECRET "c2VjcmV0"                  /* secret */

static void test_plain_initial_response(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	f.x = &x;
	struct login_hooks h = hooks_for(&f);
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, PLAIN_ALICE, strlen(PLAIN_ALICE)), LOGIN_CHECK);
	assert_int_equal(f.blocked_calls, 1);
	assert_string_equal(f.last_asked, "alice@example.test");
	assert_int_equal(f.verify_calls, 0);   /* not before the session waits */
	login_submit(&x, &h);
	assert_int_equal(f.verify_calls, 1);
	assert_string_equal(f.mech, "PLAIN");
	assert_string_equal(f.user, "alice@example.test");
	assert_string_equal(f.pass, "secret");
	assert_true(f.pass_wiped_at_verify);
	assert_string_equal(x.user, "alice@example.test");   /* kept for the answer's words */
	assert_string_equal(x.mech, "PLAIN");
	login_submit(&x, &h);                                /* only once */
	assert_int_equal(f.verify_calls, 1);
	login_clear(&x);
	assert_string_equal(x.user, "");
}

static void test_plain_empty_challenge(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	struct login_hooks h = hooks_for(&f);
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, false, NULL, 0), LOGIN_SEND_CHALLENGE);
	assert_string_equal(login_challenge(&x), "");
	assert_int_equal(login_answer(&x, &h, PLAIN_ALICE, strlen(PLAIN_ALICE)), LOGIN_CHECK);
	login_submit(&x, &h);
	assert_string_equal(f.user, "alice@example.test");
	/* "=" is an empty initial response: nothing for PLAIN. */
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, "=", 1), LOGIN_MALFORMED);
}

static void test_login_mechanism(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	struct login_hooks h = hooks_for(&f);
	assert_int_equal(login_start(&x, &h, SASL_LOGIN, false, NULL, 0), LOGIN_SEND_CHALLENGE);
	assert_string_equal(login_challenge(&x), "VXNlcm5hbWU6");   /* "Username:" */
	assert_int_equal(login_answer(&x, &h, B64_ALICE, strlen(B64_ALICE)), LOGIN_SEND_CHALLENGE);
	assert_string_equal(login_challenge(&x), "UGFzc3dvcmQ6");   /* "Password:" */
	assert_int_equal(f.blocked_calls, 0);
	assert_int_equal(login_answer(&x, &h, B64_SECRET, strlen(B64_SECRET)), LOGIN_CHECK);
	login_submit(&x, &h);
	assert_string_equal(f.mech, "LOGIN");
	assert_string_equal(f.user, "alice@example.test");
	assert_string_equal(f.pass, "secret");
	/* The user name as the initial response (RFC 4954 §4 allows it). */
	assert_int_equal(login_start(&x, &h, SASL_LOGIN, true, B64_ALICE, strlen(B64_ALICE)), LOGIN_SEND_CHALLENGE);
	assert_string_equal(login_challenge(&x), "UGFzc3dvcmQ6");
}

static void test_cancel_and_bad_answers(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	struct login_hooks h = hooks_for(&f);
	assert_int_equal(login_start(&x, &h, SASL_LOGIN, false, NULL, 0), LOGIN_SEND_CHALLENGE);
	assert_int_equal(login_answer(&x, &h, "*", 1), LOGIN_CANCELLED);
	assert_int_equal(login_start(&x, &h, SASL_LOGIN, false, NULL, 0), LOGIN_SEND_CHALLENGE);
	assert_int_equal(login_answer(&x, &h, B64_ALICE, strlen(B64_ALICE)), LOGIN_SEND_CHALLENGE);
	assert_int_equal(login_answer(&x, &h, "*", 1), LOGIN_CANCELLED);
	assert_string_equal(x.sasl.user, "");   /* forgotten */
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, "not base64!", 11), LOGIN_BAD_BASE64);
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, false, NULL, 0), LOGIN_SEND_CHALLENGE);
	assert_int_equal(login_answer(&x, &h, "A=GF", 4), LOGIN_BAD_BASE64);
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, "YWxpY2U=", 8), LOGIN_MALFORMED);   /* no NUL */
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, "Ym9iAGFsaWNlAHNlY3JldA==", 24), LOGIN_AUTHZID);
	assert_int_equal(f.blocked_calls, 0);
	assert_int_equal(f.verify_calls, 0);
	login_submit(&x, &h);   /* nothing complete: nothing handed over */
	assert_int_equal(f.verify_calls, 0);
}

static void test_user_pass(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	struct login_hooks h = hooks_for(&f);
	assert_int_equal(login_password(&x, &h, "USER", "bob@example.test", "hunter2xyz", 6), LOGIN_CHECK);
	login_submit(&x, &h);
	assert_string_equal(f.mech, "USER");
	assert_string_equal(f.user, "bob@example.test");
	assert_string_equal(f.pass, "hunter");   /* passlen counts, not the NUL */
}

static void test_throttle_verdicts_passed_through(void **state)
{
	(void)state;
	struct fake f = { .verdict = { THROTTLE_ACCOUNT, 1700000000 }, .blocked_for = "alice@example.test" };
	struct login_exchange x;
	struct login_hooks h = hooks_for(&f);
	/* Before the user is known the account block does not apply. */
	struct throttle_verdict v = login_precheck(&h);
	assert_int_equal(v.block, THROTTLE_OPEN);
	assert_string_equal(f.last_asked, "(null)");
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, PLAIN_ALICE, strlen(PLAIN_ALICE)), LOGIN_THROTTLED);
	assert_int_equal(x.verdict.block, THROTTLE_ACCOUNT);
	assert_int_equal(x.verdict.until, 1700000000);
	assert_string_equal(x.user, "alice@example.test");
	assert_string_equal(x.sasl.pass, "");   /* never kept when refused */
	login_submit(&x, &h);
	assert_int_equal(f.verify_calls, 0);
	/* Someone else from the same address may try. */
	assert_int_equal(login_password(&x, &h, "USER", "bob@example.test", "pw", 2), LOGIN_CHECK);
	/* An address block: refused whoever it is, with its own end. */
	f.verdict = (struct throttle_verdict){ THROTTLE_ADDRESS, 1700000600 };
	f.blocked_for = NULL;
	v = login_precheck(&h);
	assert_int_equal(v.block, THROTTLE_ADDRESS);
	assert_int_equal(v.until, 1700000600);
	assert_int_equal(login_password(&x, &h, "USER", "bob@example.test", "pw", 2), LOGIN_THROTTLED);
	assert_int_equal(x.verdict.block, THROTTLE_ADDRESS);
	assert_int_equal(x.verdict.until, 1700000600);
}

static void test_block_end_words(void **state)
{
	(void)state;
	char when[32];
	login_block_end(1700000000, when, sizeof(when));   /* 2023-11-14 22:13:20 UTC */
	assert_string_equal(when, "22:13 UTC");
}

static void test_transport(void **state)
{
	(void)state;
	struct login_listener tls_up = { .secure = true }, starttls = { .tls_offered = true }, plain = { 0 },
		plain_allowed = { .allow_plaintext = true };
	assert_int_equal(login_transport_check(&tls_up), LOGIN_TRANSPORT_OK);
	assert_int_equal(login_transport_check(&starttls), LOGIN_NEEDS_STARTTLS);
	assert_int_equal(login_transport_check(&plain), LOGIN_NEEDS_TLS_PORT);
	assert_int_equal(login_transport_check(&plain_allowed), LOGIN_TRANSPORT_OK);
}

static void test_no_throttle_hook(void **state)
{
	(void)state;
	struct fake f = { 0 };
	struct login_exchange x;
	struct login_hooks h = { &f, NULL, fake_verify };
	assert_int_equal(login_precheck(&h).block, THROTTLE_OPEN);
	assert_int_equal(login_start(&x, &h, SASL_PLAIN, true, PLAIN_ALICE, strlen(PLAIN_ALICE)), LOGIN_CHECK);
	login_submit(&x, &h);
	assert_int_equal(f.verify_calls, 1);
}

/* --- the service ------------------------------------------------------------ */

static atomic_int notified;

static void count_notify(void *arg)
{
	(void)arg;
	atomic_fetch_add(&notified, 1);
}

struct heard {
	int calls;
	enum login_result result;
	char login[DIR_ADDRESS_MAX];
	unsigned delay_ms;
};

static void hear(void *arg, const struct login_answer *a)
{
	struct heard *h = arg;
	h->calls++;
	h->result = a->result;
	snprintf(h->login, sizeof(h->login), "%s", a->login ? a->login : "");
	h->delay_ms = a->delay_ms;
}

/* Ask, then run the answers on this ("loop") thread until it came. */
static struct heard check(struct login_service *ls, const char *user, const char *pass)
{
	struct heard h = { 0 };
	struct login_peer peer = { .conn_id = 7, .addr = "192.0.2.7", .proto = "smtp", .tls = true };
	assert_true(login_service_check(ls, &peer, "PLAIN", user, pass, hear, &h));
	assert_int_equal(h.calls, 0);   /* never inside the call */
	for (int i = 0; i < 5000 && h.calls == 0; i++) {
		usleep(2000);
		login_service_run_answers(ls);
	}
	assert_int_equal(h.calls, 1);
	return h;
}

static void test_service(void **state)
{
	(void)state;
	char path[] = "/tmp/postern-test-login-XXXXXX";
	assert_non_null(mkdtemp(path));
	char err[256], hash[PASSWORD_HASH_MAX];
	struct directory *dir = NULL;
	assert_true(directory_open(&dir, path, err, sizeof(err)));
	assert_int_equal(directory_domain_add(dir, "example.test"), DIR_OK);
	assert_true(password_hash("alice-pw", hash, sizeof(hash)));
	assert_int_equal(directory_user_add(dir, "alice@example.test", hash), DIR_OK);
	struct login_service_config cfg = {
		.dir = dir, .threads = 1, .cache_ttl = 0, .notify = count_notify,
		.throttle = { .pair_limit = 2, .ip_accounts = 5, .ip_failures = 100, .account_delay_after = 1,
			.max_delay_ms = 5000, .window = 600, .block = 600, .known_for = 3600, .max_entries = 64 },
	};
	struct login_service *ls = login_service_new(&cfg);
	assert_non_null(ls);

	struct heard h = check(ls, "alice@example.test", "alice-pw");
	assert_int_equal(h.result, LOGIN_OK);
	assert_string_equal(h.login, "alice@example.test");
	assert_int_equal(h.delay_ms, 0);
	assert_true(atomic_load(&notified) > 0);

	/* An unknown user costs one hash too (the service's own dummy hash). */
	unsigned long before = password_verifications();
	h = check(ls, "nobody@example.test", "guess");
	assert_int_equal(h.result, LOGIN_FAILED);
	assert_int_equal(password_verifications() - before, 1);

	/* Wrong passwords: counted by the throttle, which then delays and blocks. */
	assert_int_equal(login_service_blocked(ls, "192.0.2.7", "alice@example.test").block, THROTTLE_OPEN);
	h = check(ls, "alice@example.test", "wrong");
	assert_int_equal(h.result, LOGIN_FAILED);
	assert_int_equal(h.delay_ms, 0);
	h = check(ls, "alice@example.test", "wrong");
	assert_int_equal(h.result, LOGIN_FAILED);
	assert_true(h.delay_ms > 0);
	struct throttle_verdict v = login_service_blocked(ls, "192.0.2.7", "alice@example.test");
	assert_int_equal(v.block, THROTTLE_ACCOUNT);
	assert_true(v.until > 0);
	/* Only that pair: the account from elsewhere is open. */
	assert_int_equal(login_service_blocked(ls, "198.51.100.1", "alice@example.test").block, THROTTLE_OPEN);

	login_service_free(&ls);
	assert_null(ls);
	directory_close(&dir);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", path);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_initial_response),
		cmocka_unit_test(test_plain_empty_challenge),
		cmocka_unit_test(test_login_mechanism),
		cmocka_unit_test(test_cancel_and_bad_answers),
		cmocka_unit_test(test_user_pass),
		cmocka_unit_test(test_throttle_verdicts_passed_through),
		cmocka_unit_test(test_no_throttle_hook),
		cmocka_unit_test(test_block_end_words),
		cmocka_unit_test(test_transport),
		cmocka_unit_test(test_service),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
