/* test_mta_sts.c - the pure parts of outbound transport security: the MTA-STS TXT
 * record and policy parsers (RFC 8461 §3.1, §3.2) on tables of good and bad inputs,
 * MX pattern matching (§4.1), the policy's HTTP response (§3.3: 200 text/plain only,
 * redirects refused), and DANE's record selection and words (RFC 7672 §3.1.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "delivery/dane.h"
#include "delivery/mta_sts.h"

struct txt_case {
	const char *txt;
	const char *id;   /* NULL: refused */
};

static void test_txt_records(void **state)
{
	(void)state;
	static const struct txt_case cases[] = {
		{ "v=STSv1; id=20160831085700Z;", "20160831085700Z" },
		{ "v=STSv1; id=abc", "abc" },
		{ "v=STSv1;id=abc;", "abc" },
		{ "v=STSv1 ; id=abc ; ", "abc" },
		{ "v=STSv1; foo=bar; id=X1", "X1" },             /* unknown fields ignored */
		{ "v=STSv1; id=a; id=b", "a" },                   /* the first */
		{ "v=STSv1; id=abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345" },
		{ "v=STSv1; id=abcdefghijklmnopqrstuvwxyz0123456", NULL },   /* 33 characters */
		{ "v=STSv1; id=a-b", NULL },                      /* not alphanumeric */
		{ "v=STSv1; id=", NULL },
		{ "v=STSv1;", NULL },                             /* no id */
		{ "v=STSv1", NULL },
		{ "id=abc; v=STSv1", NULL },                      /* the version comes first */
		{ "v=STSv2; id=abc", NULL },
		{ "v=spf1 -all", NULL },
		{ "v=STSv1x; id=abc", NULL },
		{ "v=STSv1; garbage", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[STS_ID_MAX], err[200];
		bool ok = sts_parse_txt(cases[i].txt, strlen(cases[i].txt), id, sizeof(id), err, sizeof(err));
		if (cases[i].id) {
			assert_true(ok);
			assert_string_equal(id, cases[i].id);
		} else if (ok) {
			fail_msg("accepted \"%s\"", cases[i].txt);
		}
	}
}

struct policy_case {
	const char *text;
	bool ok;
	enum sts_mode mode;
	size_t n_mx;
	unsigned max_age;
};

static void test_policies(void **state)
{
	(void)state;
	static const struct policy_case cases[] = {
		{ "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
			true, STS_MODE_ENFORCE, 2, 604800 },
		{ "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\n", true, STS_MODE_TESTING, 1, 86400 },
		{ "version: STSv1\nmode: none\nmax_age: 0", true, STS_MODE_NONE, 0, 0 },    /* none needs no mx */
		{ "mode: enforce\nmax_age: 1\nmx: a.b\nversion: STSv1\n", true, STS_MODE_ENFORCE, 1, 1 },   /* any order */
		{ "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557600\nextension: x\n", true, STS_MODE_ENFORCE, 1, 31557600 },
		{ "version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 5\n", true, STS_MODE_ENFORCE, 1, 5 },
		{ "version: STSv1\nmode: enforce\nmx: A.B.\nmax_age: 5\n", true, STS_MODE_ENFORCE, 1, 5 },
		{ "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", false, 0, 0, 0 },   /* over the bound */
		{ "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", false, 0, 0, 0 },
		{ "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", false, 0, 0, 0 },
		{ "version: STSv1\nmode: enforce\nmax_age: 5\n", false, 0, 0, 0 },               /* enforce without mx */
		{ "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 5\n", false, 0, 0, 0 },
		{ "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 5\n", false, 0, 0, 0 },
		{ "mode: enforce\nmx: a.b\nmax_age: 5\n", false, 0, 0, 0 },                       /* no version */
		{ "version: STSv1\nmx: a.b\nmax_age: 5\n", false, 0, 0, 0 },                      /* no mode */
		{ "version: STSv1\nmode: enforce\nmx: a.b\n", false, 0, 0, 0 },                   /* no max_age */
		{ "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 5\n", false, 0, 0, 0 },
		{ "version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 5\n", false, 0, 0, 0 },
		{ "version: STSv1\nmode: enforce\nmx: a b\nmax_age: 5\n", false, 0, 0, 0 },
		{ "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 5\ngarbage\n", false, 0, 0, 0 },
		{ "<html>not a policy</html>", false, 0, 0, 0 },
		{ "", false, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sts_policy p;
		char err[200];
		bool ok = sts_parse_policy(cases[i].text, strlen(cases[i].text), &p, err, sizeof(err));
		if (ok != cases[i].ok)
			fail_msg("case %zu: %s (%s)", i, ok ? "accepted" : "refused", err);
		if (!ok)
			continue;
		assert_int_equal(p.mode, cases[i].mode);
		assert_int_equal(p.n_mx, cases[i].n_mx);
		assert_int_equal(p.max_age, cases[i].max_age);
	}
	struct sts_policy p;
	char err[200];
	assert_true(sts_parse_policy(cases[6].text, strlen(cases[6].text), &p, err, sizeof(err)));
	assert_string_equal(p.mx[0], "a.b");   /* lower case, no trailing dot */
}

static void test_mx_matching(void **state)
{
	(void)state;
	struct sts_policy p;
	char err[200];
	const char *text = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 60\n";
	assert_true(sts_parse_policy(text, strlen(text), &p, err, sizeof(err)));
	assert_true(sts_mx_matches(&p, "mail.example.com"));
	assert_true(sts_mx_matches(&p, "MAIL.Example.COM."));
	assert_false(sts_mx_matches(&p, "mail.example.com.evil.test"));
	assert_false(sts_mx_matches(&p, "xmail.example.com"));
	assert_true(sts_mx_matches(&p, "mx1.example.net"));
	assert_false(sts_mx_matches(&p, "example.net"));           /* §4.1: exactly one label */
	assert_false(sts_mx_matches(&p, "a.b.example.net"));
	assert_false(sts_mx_matches(&p, ".example.net"));
	assert_false(sts_mx_matches(&p, ""));
}

static void test_http_responses(void **state)
{
	(void)state;
	const char *body;
	size_t blen;
	char err[300];
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello";
	assert_true(sts_http_response(ok, strlen(ok), &body, &blen, err, sizeof(err)));
	assert_int_equal(blen, 5);
	assert_memory_equal(body, "hello", 5);
	const char *redirect = "HTTP/1.0 301 Moved\r\nLocation: https://x/\r\nContent-Type: text/plain\r\n\r\n";
	assert_false(sts_http_response(redirect, strlen(redirect), &body, &blen, err, sizeof(err)));
	assert_non_null(strstr(err, "redirect (HTTP 301)"));
	const char *html = "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nversion: STSv1";
	assert_false(sts_http_response(html, strlen(html), &body, &blen, err, sizeof(err)));
	const char *plainx = "HTTP/1.0 200 OK\r\nContent-Type: text/plainx\r\n\r\nx";
	assert_false(sts_http_response(plainx, strlen(plainx), &body, &blen, err, sizeof(err)));
	const char *cut = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 50\r\n\r\nshort";
	assert_false(sts_http_response(cut, strlen(cut), &body, &blen, err, sizeof(err)));
	const char *chunked = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	assert_false(sts_http_response(chunked, strlen(chunked), &body, &blen, err, sizeof(err)));
	const char *notfound = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n";
	assert_false(sts_http_response(notfound, strlen(notfound), &body, &blen, err, sizeof(err)));
	assert_non_null(strstr(err, "HTTP 404"));
	const char *noend = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
	assert_false(sts_http_response(noend, strlen(noend), &body, &blen, err, sizeof(err)));
	assert_false(sts_http_response("SSH-2.0", 7, &body, &blen, err, sizeof(err)));
}

static void test_dane_records(void **state)
{
	(void)state;
	unsigned char d32[32] = { 1 }, d64[64] = { 2 }, d5[5] = { 3 };
	struct net_tlsa in[] = {
		{ 3, 1, 1, d32, 32 },   /* DANE-EE SPKI SHA-256: usable */
		{ 2, 0, 2, d64, 64 },   /* DANE-TA cert SHA-512: usable */
		{ 3, 0, 0, d5, 5 },     /* full certificate (exact): usable */
		{ 1, 1, 1, d32, 32 },   /* PKIX-EE: not for SMTP (RFC 7672 §3.1.3) */
		{ 0, 0, 1, d32, 32 },   /* PKIX-TA: not for SMTP */
		{ 3, 2, 1, d32, 32 },   /* unknown selector */
		{ 3, 1, 3, d32, 32 },   /* unknown matching type */
		{ 3, 1, 1, d5, 5 },     /* SHA-256 of the wrong length */
	};
	static struct dane_host d;
	assert_int_equal(dane_take_usable(in, sizeof(in) / sizeof(in[0]), &d), 3);
	char one[80];
	dane_describe(&d.tlsa[0], one, sizeof(one));
	assert_string_equal(one, "usage 3, SHA-256 of the public key");
	dane_describe(&d.tlsa[1], one, sizeof(one));
	assert_string_equal(one, "usage 2, SHA-512 of the certificate");
	dane_describe(&d.tlsa[2], one, sizeof(one));
	assert_string_equal(one, "usage 3, the certificate itself");
	char words[600];
	d.n = 1;
	dane_mismatch_words("mx.example.com", &d, words, sizeof(words));
	assert_string_equal(words, "mx.example.com's certificate does not match its DANE TLSA record (usage 3, SHA-256 of the public key)");
	d.n = 2;
	dane_mismatch_words("mx.example.com", &d, words, sizeof(words));
	assert_string_equal(words, "mx.example.com's certificate does not match its DANE TLSA records (usage 3, SHA-256 of the "
		"public key; usage 2, SHA-512 of the certificate)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_records),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_mx_matching),
		cmocka_unit_test(test_http_responses),
		cmocka_unit_test(test_dane_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
