/* test_web_app.c - the web application core (web/app.h) without a server: the
 * template engine (escaping, #each, #if/else, partials, the scope of an item, and
 * the start-up errors with file:line), the sessions (ids, idle and absolute expiry,
 * the bound, destroy), the CSRF comparison, the form parser, and the decision that
 * refuses plain HTTP unless the listener is bound to loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "web/app.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/web/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void fresh_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_web_app.XXXXXX");
	assert_non_null(mkdtemp(dir));
	char web[128];
	snprintf(web, sizeof(web), "%s/web", dir);
	assert_int_equal(mkdir(web, 0700), 0);
	put("layout.html", "<main>{{content}}</main>");
	put("style.css", "body{}");
	put("app.js", "//");
}

static void clean_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static char *render(struct web_templates *ts, const char *name, const struct web_view *v)
{
	static char out[4096];
	struct buf b;
	buf_init(&b, sizeof(out) - 1);
	assert_true(web_template_render(ts, name, v, &b));
	snprintf(out, sizeof(out), "%s", buf_cstr(&b));
	buf_free(&b);
	return out;
}

static void test_template_escapes_and_blocks(void **state)
{
	(void)state;
	fresh_dir();
	put("page.html", "<p title=\"{{t}}\">{{t}}</p>{{raw}}{{#if none}}X{{else}}Y{{/if}}{{#if t}}T{{/if}}"
		"<ul>{{#each rows}}<li>{{name}}/{{csrf}}{{#if flag}}!{{/if}}</li>{{/each}}</ul>{{> part}}{{missing}}");
	put("part.html", "[{{t}}]");
	char err[512] = "";
	struct web_templates *ts = web_templates_load(dir, err, sizeof(err));
	assert_non_null(ts);
	struct web_view *v = web_view_new();
	web_view_set(v, "t", "<a href=\"x\">'&'</a>");
	web_view_set_html(v, "raw", "<svg/>");
	web_view_set(v, "csrf", "tok");
	struct web_view *r1 = web_view_add_item(v, "rows");
	web_view_set(r1, "name", "<b>one</b>");
	web_view_set(r1, "flag", "yes");
	web_view_setf(web_view_add_item(v, "rows"), "name", "two %d", 2);
	assert_false(web_view_failed(v));
	const char *esc = "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;";
	char want[1024];
	snprintf(want, sizeof(want), "<p title=\"%s\">%s</p><svg/>YT<ul><li>&lt;b&gt;one&lt;/b&gt;/tok!</li>"
		"<li>two 2/tok</li></ul>[%s]", esc, esc, esc);
	assert_string_equal(render(ts, "page", v), want);
	/* a value set again replaces the old one */
	web_view_set(v, "t", "x");
	assert_string_equal(render(ts, "part", v), "[x]");
	web_view_free(&v);
	assert_null(v);
	size_t len = 0;
	assert_string_equal(web_templates_static(ts, "style.css", &len), "body{}");
	assert_null(web_templates_static(ts, "../etc/passwd", &len));
	web_templates_free(&ts);
	clean_dir();
}

static void expect_error(const char *text, const char *want)
{
	fresh_dir();
	put("bad.html", text);
	char err[512] = "";
	struct web_templates *ts = web_templates_load(dir, err, sizeof(err));
	assert_null(ts);
	if (!strstr(err, want))
		fail_msg("template %s: error \"%s\" lacks \"%s\"", text, err, want);
	clean_dir();
}

static void test_template_errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("a\nb {{name\n}}", "/web/bad.html:2: a tag opened with {{ is not closed");
	expect_error("x\n\n{{#each rows}}\n", "bad.html:3: {{#each rows}} is not closed: the file ends first");
	expect_error("{{#if a}}\n{{/each}}", "bad.html:1: {{#if a}} is closed by {{/each}}");
	expect_error("\n{{/if}}", "bad.html:2: a closing tag");
	expect_error("{{{raw}}}", "bad.html:1: unknown tag {{{raw}");
	expect_error("{{a b}}", "bad.html:1: unknown tag {{a b}}");
	expect_error("{{#if a}}{{else}}{{else}}{{/if}}", "bad.html:1: a second {{else}}");
	expect_error("\n\n{{> nowhere}}", "bad.html:3: {{> nowhere}} names no template");
	/* no layout */
	fresh_dir();
	char path[256], err[512];
	snprintf(path, sizeof(path), "%s/web/layout.html", dir);
	unlink(path);
	assert_null(web_templates_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "layout.html: missing"));
	clean_dir();
}

static void test_partial_recursion_is_bounded(void **state)
{
	(void)state;
	fresh_dir();
	put("loop.html", "x{{> loop}}");
	char err[512];
	struct web_templates *ts = web_templates_load(dir, err, sizeof(err));
	assert_non_null(ts);
	struct web_view *v = web_view_new();
	struct buf b;
	buf_init(&b, 4096);
	assert_false(web_template_render(ts, "loop", v, &b));
	assert_false(web_template_render(ts, "no-such", v, &b));
	buf_free(&b);
	web_view_free(&v);
	web_templates_free(&ts);
	clean_dir();
}

static void test_sessions(void **state)
{
	(void)state;
	struct web_sessions *ss = web_sessions_new(60, 600);
	struct web_user u, f;
	assert_true(web_session_create(ss, "alice@example.test", false, &u));
	assert_int_equal(strlen(u.session_id), 43);
	assert_int_equal(strlen(u.csrf), 43);
	assert_string_not_equal(u.session_id, u.csrf);
	time_t now = time(NULL);
	assert_true(web_session_find(ss, u.session_id, now, &f));
	assert_string_equal(f.address, "alice@example.test");
	assert_string_equal(f.csrf, u.csrf);
	/* one character off, shorter, longer, empty: not found */
	char wrong[64];
	snprintf(wrong, sizeof(wrong), "%s", u.session_id);
	wrong[10] = wrong[10] == 'A' ? 'B' : 'A';
	assert_false(web_session_find(ss, wrong, now, &f));
	wrong[42] = '\0';
	assert_false(web_session_find(ss, wrong, now, &f));
	assert_false(web_session_find(ss, "", now, &f));
	/* the flash is shown once */
	web_session_set_flash(ss, u.session_id, "done");
	assert_true(web_session_find(ss, u.session_id, now, &f));
	assert_string_equal(f.flash, "done");
	assert_true(web_session_find(ss, u.session_id, now, &f));
	assert_string_equal(f.flash, "");
	/* idle: use keeps it alive; 60 s without use ends it */
	assert_true(web_session_find(ss, u.session_id, now + 50, &f));
	assert_true(web_session_find(ss, u.session_id, now + 100, &f));
	assert_false(web_session_find(ss, u.session_id, now + 161, &f));
	/* absolute: 600 s after sign-in, however used */
	assert_true(web_session_create(ss, "bob@example.test", true, &u));
	for (int t = 50; t < 600; t += 50)
		assert_true(web_session_find(ss, u.session_id, now + t, &f));
	assert_true(f.admin);
	assert_false(web_session_find(ss, u.session_id, now + 601, &f));
	/* destroy */
	assert_true(web_session_create(ss, "carol@example.test", false, &u));
	web_session_destroy(ss, u.session_id);
	assert_false(web_session_find(ss, u.session_id, time(NULL), &f));
	web_sessions_free(&ss);
	assert_null(ss);
}

static void test_sessions_are_bounded(void **state)
{
	(void)state;
	struct web_sessions *ss = web_sessions_new(3600, 7200);
	struct web_user first, u;
	assert_true(web_session_create(ss, "first@example.test", false, &first));
	for (int i = 0; i < WEB_SESSIONS_MAX + 10; i++)
		assert_true(web_session_create(ss, "many@example.test", false, &u));
	assert_int_equal(web_sessions_count(ss), WEB_SESSIONS_MAX);
	struct web_user f;
	assert_false(web_session_find(ss, first.session_id, time(NULL), &f));   /* the oldest went */
	assert_true(web_session_find(ss, u.session_id, time(NULL), &f));        /* the newest stays */
	web_sessions_free(&ss);
}

static void test_token_equal(void **state)
{
	(void)state;
	assert_true(web_token_equal("abc", "abc"));
	assert_false(web_token_equal("abc", "abd"));
	assert_false(web_token_equal("abc", "abcd"));
	assert_false(web_token_equal("", ""));
}

static void test_form_fields(void **state)
{
	(void)state;
	struct http_header h[] = { { "Content-Type", "application/x-www-form-urlencoded" } };
	const char *body = "csrf=a%2Bb&name=My+phone%20%3Cx%3E&empty=&long=0123456789";
	struct http_request r = { .method = "POST", .path = "/", .query = "", .body = body, .body_len = strlen(body),
		.headers = h, .n_headers = 1 };
	char out[8];
	char big[64];
	assert_true(web_form_field(&r, "csrf", big, sizeof(big)));
	assert_string_equal(big, "a+b");
	assert_true(web_form_field(&r, "name", big, sizeof(big)));
	assert_string_equal(big, "My phone <x>");
	assert_true(web_form_field(&r, "empty", big, sizeof(big)));
	assert_string_equal(big, "");
	assert_false(web_form_field(&r, "long", out, sizeof(out)));   /* too long for out */
	assert_false(web_form_field(&r, "absent", big, sizeof(big)));
	h[0].value = "text/plain";
	assert_false(web_form_field(&r, "csrf", big, sizeof(big)));   /* not a form */
	h[0].value = "application/x-www-form-urlencoded; charset=UTF-8";
	assert_true(web_form_field(&r, "csrf", big, sizeof(big)));
	const char nul[] = "csrf=a\0&x=1";
	r.body = nul;
	r.body_len = sizeof(nul) - 1;
	assert_false(web_form_field(&r, "csrf", big, sizeof(big)));   /* a NUL: the whole body refused */
}

static void test_plain_http_only_on_loopback(void **state)
{
	(void)state;
	const char *loop[] = { "127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "localhost", "::ffff:127.0.0.1" };
	const char *not_loop[] = { "0.0.0.0", "::", "192.0.2.1", "10.0.0.1", "128.0.0.1", "::ffff:192.0.2.1", "", "mail.example.org",
		"126.255.255.255", "fe80::1" };
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		if (!web_address_is_loopback(loop[i]))
			fail_msg("%s is loopback", loop[i]);
	for (size_t i = 0; i < sizeof(not_loop) / sizeof(not_loop[0]); i++)
		if (web_address_is_loopback(not_loop[i]))
			fail_msg("%s is not loopback", not_loop[i]);
	assert_false(web_address_is_loopback(NULL));
}

/* Where signing in may lead: a path of this site, never another site. */
static void test_local_paths(void **state)
{
	(void)state;
	const char *ok[] = { "/", "/mail", "/mail/12", "/setup/thunderbird/profile", "/a?b=c%20d" };
	const char *bad[] = { "", "mail", "//evil.example", "/\\evil.example", "/a b", "/a\r\nSet-Cookie:x", "https://evil.example/",
		"/\x7f", "/caf\xc3\xa9" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!web_local_path(ok[i]))
			fail_msg("%s is a local path", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (web_local_path(bad[i]))
			fail_msg("%s is not a local path", bad[i]);
	assert_false(web_local_path(NULL));
}

/* web_transport_ok on a site whose listener is bound to a public address: a plain
 * request is refused with the https:// address; over TLS it passes. */
static void test_plain_request_on_public_listener_refused(void **state)
{
	(void)state;
	struct conf cf;
	char err[512];
	static const char text[] =
		"[server]\nhostname = mx.example.test\ndata_dir = /nonexistent\nlocal_domains = example.test\n"
		"[listener web]\naddress = 192.0.2.1\nport = 8080\nrole = http\n"
		"[listener webs]\naddress = 192.0.2.1\nport = 8443\nrole = http\ntls = implicit\n"
		"[listener local]\naddress = 127.0.0.1\nport = 8081\nrole = http\n";
	if (!conf_load_string(&cf, text, "(test)", err, sizeof(err)))
		fail_msg("%s", err);
	struct web_site site = { .conf = &cf, .hostname = cf.hostname };
	struct http_request req = { .method = "GET", .path = "/quota", .query = "", .host = "mail.example.org",
		.client_addr = "198.51.100.7", .listener = "web", .body = "" };
	struct http_response resp = { 0 };
	assert_false(web_transport_ok(&site, &req, &resp));
	assert_int_equal(resp.status, 403);
	assert_non_null(strstr(resp.body, "Use https://mail.example.org:8443/quota"));
	http_response_clear(&resp);
	req.tls = true;
	memset(&resp, 0, sizeof(resp));
	assert_true(web_transport_ok(&site, &req, &resp));
	req.tls = false;
	req.listener = "local";
	assert_true(web_transport_ok(&site, &req, &resp));
	assert_int_equal(resp.status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template_escapes_and_blocks),
		cmocka_unit_test(test_template_errors_name_file_and_line),
		cmocka_unit_test(test_partial_recursion_is_bounded),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_sessions_are_bounded),
		cmocka_unit_test(test_token_equal),
		cmocka_unit_test(test_form_fields),
		cmocka_unit_test(test_plain_http_only_on_loopback),
		cmocka_unit_test(test_local_paths),
		cmocka_unit_test(test_plain_request_on_public_listener_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
