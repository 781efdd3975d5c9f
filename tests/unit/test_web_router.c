/* test_web_router.c - web_handle (web/router.c): the listener's services decide what
 * is routed; a path served with another method is 405 with Allow; OPTIONS is 204 with
 * Allow; HEAD is routed as GET; an unknown path is 404 naming what is served.  The
 * handlers are not reached except /healthz's route check (a listener without health). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "conf/conf.h"
#include "web/web.h"

static struct conf cf;
static struct web_site site;

static int setup(void **state)
{
	(void)state;
	char err[512];
	static const char text[] =
		"[server]\nhostname = mx.example.test\ndata_dir = /nonexistent\nlocal_domains = example.test\n"
		"[listener web]\nport = 0\nrole = http\n"
		"[listener mon]\nport = 0\nrole = http\nservices = metrics\n";
	if (!conf_load_string(&cf, text, "(test)", err, sizeof(err)))
		fail_msg("%s", err);
	memset(&site, 0, sizeof(site));
	site.conf = &cf;
	site.hostname = cf.hostname;
	return 0;
}

static void route(const char *listener, const char *method, const char *path, struct http_response *resp)
{
	struct http_request req = { .method = method, .path = path, .query = "", .host = "", .client_addr = "127.0.0.1",
		.listener = listener, .body = "", .headers = NULL };
	struct web_worker w = { 0 };
	memset(resp, 0, sizeof(*resp));
	web_handle(&site, &w, &req, resp);
}

static const char *header(const struct http_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void test_not_found_names_the_services(void **state)
{
	(void)state;
	struct http_response r;
	route("web", "GET", "/nothing", &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "It serves autoconfig, mta-sts, health"));
	assert_non_null(strstr(r.body, "/healthz (health)"));
	http_response_clear(&r);
	route("mon", "GET", "/healthz", &r);   /* health is not among mon's services */
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "It serves metrics"));
	http_response_clear(&r);
}

static void test_method_not_allowed_and_options(void **state)
{
	(void)state;
	struct http_response r;
	route("web", "DELETE", "/healthz", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(header(&r, "Allow"), "GET, HEAD, OPTIONS");
	http_response_clear(&r);
	route("web", "OPTIONS", "/healthz", &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(header(&r, "Allow"), "GET, HEAD, OPTIONS");
	http_response_clear(&r);
	route("web", "PUT", "/AutoDiscover/AutoDiscover.xml", &r);   /* WEB_NOCASE, a POST row and a GET row */
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(header(&r, "Allow"), "POST"));
	assert_non_null(strstr(header(&r, "Allow"), "GET"));
	http_response_clear(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_found_names_the_services),
		cmocka_unit_test(test_method_not_allowed_and_options),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
