/* test_http.c - the pure half of the HTTP transport (net/http_view.c): the path
 * made safe (a table of attacks and of paths that must survive), the Host name,
 * query parameters, header lookup and the response helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/http.h"

static const struct { const char *in, *out; } good_paths[] = {
	{ "/", "/" },
	{ "/healthz", "/healthz" },
	{ "/a/b/../c", "/a/c" },
	{ "/a/./b", "/a/b" },
	{ "/a//b", "/a/b" },
	{ "/a/b/", "/a/b/" },
	{ "/a/..", "/" },
	{ "/a/%2e%2e/b", "/b" },
	{ "/%41%62", "/Ab" },
	{ "/mail/config-v1.1.xml", "/mail/config-v1.1.xml" },
	{ "/.well-known/mta-sts.txt", "/.well-known/mta-sts.txt" },
	{ "/autodiscover/autodiscover.json/v1.0/a%40b.example", "/autodiscover/autodiscover.json/v1.0/a@b.example" },
};

static const char *const bad_paths[] = {
	"", "healthz", "*", "/..", "/../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E", "/a/../../b",
	"/..%2f..%2fetc", "/a\\b", "/a%5cb", "/%00", "/a%00b", "/%", "/%2", "/%zz", "/%0d%0a", "/a b", "/\x01",
	"/\xc3\xa9",
};

static void test_paths(void **state)
{
	(void)state;
	char out[256];
	for (size_t i = 0; i < sizeof(good_paths) / sizeof(good_paths[0]); i++) {
		const char *why = http_path_normalise(good_paths[i].in, strlen(good_paths[i].in), out, sizeof(out));
		if (why)
			fail_msg("%s refused: %s", good_paths[i].in, why);
		assert_string_equal(out, good_paths[i].out);
	}
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
		if (!http_path_normalise(bad_paths[i], strlen(bad_paths[i]), out, sizeof(out)))
			fail_msg("%s accepted as %s", bad_paths[i], out);
	/* NUL inside the given length */
	assert_non_null(http_path_normalise("/a\0b", 4, out, sizeof(out)));
	/* too long for the output */
	assert_non_null(http_path_normalise("/abcdef", 7, out, 4));
}

static void test_hosts(void **state)
{
	(void)state;
	char h[64];
	http_host_normalise("Autoconfig.Example.COM:8080", h, sizeof(h));
	assert_string_equal(h, "autoconfig.example.com");
	http_host_normalise("example.com.", h, sizeof(h));
	assert_string_equal(h, "example.com");
	http_host_normalise("[::1]:443", h, sizeof(h));
	assert_string_equal(h, "[::1]");
	http_host_normalise("evil.example/../x", h, sizeof(h));
	assert_string_equal(h, "");
	http_host_normalise(NULL, h, sizeof(h));
	assert_string_equal(h, "");
}

static void test_query(void **state)
{
	(void)state;
	struct http_request r = { .query = "a=1&emailaddress=bob%40example.com&b=x+y&empty" };
	char v[64];
	assert_true(http_query_param(&r, "emailaddress", v, sizeof(v)));
	assert_string_equal(v, "bob@example.com");
	assert_true(http_query_param(&r, "b", v, sizeof(v)));
	assert_string_equal(v, "x y");
	assert_true(http_query_param(&r, "empty", v, sizeof(v)));
	assert_string_equal(v, "");
	assert_false(http_query_param(&r, "missing", v, sizeof(v)));
	assert_false(http_query_param(&r, "emailaddress", v, 4));   /* too long */
	struct http_request bad = { .query = "x=%00&y=%g1" };
	assert_false(http_query_param(&bad, "x", v, sizeof(v)));
	assert_false(http_query_param(&bad, "y", v, sizeof(v)));
}

static void test_headers_and_responses(void **state)
{
	(void)state;
	struct http_header hs[] = { { "Host", "a" }, { "Authorization", "Basic x" } };
	struct http_request r = { .headers = hs, .n_headers = 2 };
	assert_string_equal(http_request_header(&r, "authorization"), "Basic x");
	assert_null(http_request_header(&r, "Cookie"));
	struct http_response resp = { 0 };
	assert_true(http_response_printf(&resp, 200, "text/plain", "n=%d", 5));
	assert_int_equal(resp.body_len, 3);
	assert_string_equal(resp.body, "n=5");
	assert_true(http_response_header(&resp, "Allow", "GET"));
	assert_false(http_response_header(&resp, "X-Bad", "a\r\nSet-Cookie: b"));
	assert_false(http_response_header(&resp, "Bad Name", "v"));
	http_response_clear(&resp);
	assert_null(resp.body);
	assert_string_equal(http_status_phrase(404), "Not Found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_headers_and_responses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
