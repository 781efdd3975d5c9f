/* test_sasl.c - SASL PLAIN/LOGIN exchanges and base64, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "auth/sasl.h"

struct plain_case {
	const char *b64;
	enum sasl_status want;
	const char *user, *pass;
};

/* base64 of "\0alice@example.test\0secret" etc. */
static const struct plain_case plain_cases[] = {
	{ "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=", SASL_DONE, "alice@example.test", "secret" },
	{ "YWxpY2VAZXhhbXBsZS50ZXN0AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=", SASL_DONE, "alice@example.test", "secret" }, /* authzid = authcid */
	{ "Ym9iAGFsaWNlAHNlY3JldA==", SASL_AUTHZID, NULL, NULL },        /* bob\0alice\0secret */
	{ "AGFsaWNlAA==", SASL_MALFORMED, NULL, NULL },                   /* \0alice\0 : empty password */
	{ "AABzZWNyZXQ=", SASL_MALFORMED, NULL, NULL },                   /* empty user */
	{ "YWxpY2U=", SASL_MALFORMED, NULL, NULL },                       /* no NUL at all */
	{ "AGFsaWNl", SASL_MALFORMED, NULL, NULL },                       /* \0alice only */
	{ "not base64!", SASL_BAD_BASE64, NULL, NULL },
	{ "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ", SASL_BAD_BASE64, NULL, NULL }, /* length not a multiple of 4 */
	{ "A=GF", SASL_BAD_BASE64, NULL, NULL },                          /* padding in the middle */
	{ "*", SASL_CANCELLED, NULL, NULL },
	{ "AGEAYg0K", SASL_MALFORMED, NULL, NULL },                       /* \0a\0b\r\n: CR LF in password */
};

static void test_plain_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		const struct plain_case *c = &plain_cases[i];
		struct sasl_exchange x;
		/* Both as an initial response and as the answer to the empty challenge. */
		enum sasl_status st = sasl_start(&x, SASL_PLAIN, true, c->b64, strlen(c->b64));
		assert_int_equal(st, c->want);
		if (c->want == SASL_DONE) {
			assert_string_equal(x.user, c->user);
			assert_string_equal(x.pass, c->pass);
		}
		sasl_clear(&x);
		assert_int_equal(sasl_start(&x, SASL_PLAIN, false, NULL, 0), SASL_CONTINUE);
		assert_string_equal(sasl_challenge(&x), "");
		assert_int_equal(sasl_step(&x, c->b64, strlen(c->b64)), c->want);
		sasl_clear(&x);
	}
}

static void test_login_exchange(void **state)
{
	(void)state;
	struct sasl_exchange x;
	assert_int_equal(sasl_start(&x, SASL_LOGIN, false, NULL, 0), SASL_CONTINUE);
	assert_string_equal(sasl_challenge(&x), "VXNlcm5hbWU6");   /* Username: */
	assert_int_equal(sasl_step(&x, "YWxpY2VAZXhhbXBsZS50ZXN0", 24), SASL_CONTINUE);
	assert_string_equal(sasl_challenge(&x), "UGFzc3dvcmQ6");   /* Password: */
	assert_int_equal(sasl_step(&x, "c2VjcmV0", 8), SASL_DONE);
	assert_string_equal(x.user, "alice@example.test");
	assert_string_equal(x.pass, "secret");
	sasl_clear(&x);
	assert_int_equal(x.pass[0], 0);
	/* Initial response carries the user name. */
	assert_int_equal(sasl_start(&x, SASL_LOGIN, true, "YWxpY2VAZXhhbXBsZS50ZXN0", 24), SASL_CONTINUE);
	assert_string_equal(sasl_challenge(&x), "UGFzc3dvcmQ6");
	assert_int_equal(sasl_step(&x, "*", 1), SASL_CANCELLED);
	/* "=" is an empty initial response: LOGIN asks for the user name. */
	assert_int_equal(sasl_start(&x, SASL_LOGIN, true, "=", 1), SASL_CONTINUE);
	assert_string_equal(sasl_challenge(&x), "VXNlcm5hbWU6");
	assert_int_equal(sasl_step(&x, "", 0), SASL_MALFORMED);   /* empty user name */
}

static void test_mech_names(void **state)
{
	(void)state;
	enum sasl_mech m;
	assert_true(sasl_mech_from_name("plain", 5, &m));
	assert_int_equal(m, SASL_PLAIN);
	assert_true(sasl_mech_from_name("LOGIN", 5, &m));
	assert_int_equal(m, SASL_LOGIN);
	assert_false(sasl_mech_from_name("CRAM-MD5", 8, &m));
	assert_false(sasl_mech_from_name("PLAINX", 6, &m));
}

static void test_base64(void **state)
{
	(void)state;
	unsigned char out[16];
	size_t n;
	assert_true(sasl_base64_decode("", 0, out, sizeof(out), &n));
	assert_int_equal(n, 0);
	assert_true(sasl_base64_decode("YQ==", 4, out, sizeof(out), &n));
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'a');
	assert_true(sasl_base64_decode("YWI=", 4, out, sizeof(out), &n));
	assert_int_equal(n, 2);
	assert_false(sasl_base64_decode("YQ=a", 4, out, sizeof(out), &n));
	assert_false(sasl_base64_decode("YWJjZGVmZ2hpamtsbW5vcHFy", 24, out, sizeof(out), &n));   /* too long for out */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_table),
		cmocka_unit_test(test_login_exchange),
		cmocka_unit_test(test_mech_names),
		cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
