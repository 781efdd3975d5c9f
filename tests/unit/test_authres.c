/* test_authres.c - the Authentication-Results field (RFC 8601): the layout of the
 * field, pvalues as tokens, mailboxes, domains or quoted strings, reason= and
 * comments, hostile values that must not end the field or add a resinfo, and the
 * bound.  (The integration tests parse Postern's real field with python3-authres.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mailauth/authres.h"

static void test_field(void **state)
{
	(void)state;
	struct authres a;
	authres_begin(&a, "mx.example.org");
	authres_result(&a, "spf", "pass", NULL, NULL);
	authres_prop(&a, "smtp", "mailfrom", "bounce@example.com");
	authres_result(&a, "dkim", "fail", "the body was changed after signing", NULL);
	authres_prop(&a, "header", "d", "example.com");
	authres_prop(&a, "header", "s", "sel1");
	authres_prop(&a, "header", "b", "abc/de+f");
	authres_result(&a, "dmarc", "fail", NULL, "p=reject dis=reject");
	authres_prop(&a, "header", "from", "example.com");
	assert_string_equal(authres_field(&a),
		"Authentication-Results: mx.example.org;\r\n"
		"\tspf=pass smtp.mailfrom=bounce@example.com;\r\n"
		"\tdkim=fail reason=\"the body was changed after signing\" header.d=example.com header.s=sel1 header.b=\"abc/de+f\";\r\n"
		"\tdmarc=fail (p=reject dis=reject) header.from=example.com");
	assert_false(a.truncated);
	assert_int_equal(a.n_results, 3);
}

static void test_none(void **state)
{
	(void)state;
	struct authres a;
	authres_begin(&a, "mx.example.org");
	authres_prop(&a, "smtp", "mailfrom", "x@example.com");   /* no resinfo: ignored */
	assert_string_equal(authres_field(&a), "Authentication-Results: mx.example.org; none");
	assert_string_equal(authres_field(&a), "Authentication-Results: mx.example.org; none");
}

static void test_values(void **state)
{
	(void)state;
	char out[128];
	authres_value(out, sizeof(out), "example.com", false);
	assert_string_equal(out, "example.com");
	authres_value(out, sizeof(out), "user.name+tag@example.com", false);
	assert_string_equal(out, "user.name+tag@example.com");
	authres_value(out, sizeof(out), "@example.com", false);
	assert_string_equal(out, "@example.com");
	authres_value(out, sizeof(out), "a b", false);
	assert_string_equal(out, "\"a b\"");
	authres_value(out, sizeof(out), "x;y", false);
	assert_string_equal(out, "\"x;y\"");
	authres_value(out, sizeof(out), "say \"hi\\\"", false);
	assert_string_equal(out, "\"say \\\"hi\\\\\\\"\"");
	authres_value(out, sizeof(out), "line\r\nX-Evil: 1", false);
	assert_string_equal(out, "\"line??X-Evil: 1\"");
	authres_value(out, sizeof(out), "", false);
	assert_string_equal(out, "\"\"");
	authres_value(out, sizeof(out), "a..b@example.com", false);
	assert_string_equal(out, "\"a..b@example.com\"");
	authres_value(out, sizeof(out), "token", true);
	assert_string_equal(out, "\"token\"");
	char tiny[6];
	authres_value(tiny, sizeof(tiny), "a long value", false);
	assert_string_equal(tiny, "\"a l\"");
}

static void test_hostile_and_bound(void **state)
{
	(void)state;
	struct authres a;
	authres_begin(&a, "mx.example.org");
	authres_result(&a, "dkim", "fail", "x\r\n\tdmarc=pass", "a) (b\\");
	authres_prop(&a, "header", "d", "evil.example;\r\n dmarc=pass");
	const char *f = authres_field(&a);
	assert_null(strstr(f, "\r\n\tdmarc"));
	assert_null(strstr(f, "; dmarc"));
	assert_non_null(strstr(f, "(a\\) \\(b\\\\)"));
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	authres_begin(&a, "mx.example.org");
	for (int i = 0; i < 40; i++) {
		authres_result(&a, "dkim", "pass", NULL, NULL);
		authres_prop(&a, "header", "d", big);
	}
	assert_true(a.truncated);
	assert_true(strlen(authres_field(&a)) < AUTHRES_FIELD_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_hostile_and_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
