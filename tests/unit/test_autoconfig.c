/* test_autoconfig.c - web/autoconfig.c: which listeners are advertised and in what
 * order, the XML escaping, address checks, and the config-v1.1 document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "directory/directory.h"
#include "web/autoconfig.h"

/* The default listeners of `make run`, plus the ones that must never show. */
static void typical(struct autoconfig_settings *s)
{
	autoconfig_settings_init(s, "mx.example.test");
	assert_false(autoconfig_settings_add(s, ROLE_MX, TLS_STARTTLS, 25));
	assert_true(autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_STARTTLS, 587));
	assert_true(autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_IMPLICIT, 465));
	assert_false(autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_NONE, 26));
	assert_true(autoconfig_settings_add(s, ROLE_POP3, TLS_STARTTLS, 110));
	assert_true(autoconfig_settings_add(s, ROLE_POP3, TLS_IMPLICIT, 995));
	assert_false(autoconfig_settings_add(s, ROLE_POP3, TLS_IMPLICIT, 0));
}

static void test_endpoint_order(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	typical(&s);
	const struct autoconfig_endpoint *e[AUTOCONFIG_MAX_ENDPOINTS];
	assert_int_equal(autoconfig_endpoints(&s, AUTOCONFIG_SUBMISSION, e, AUTOCONFIG_MAX_ENDPOINTS), 2);
	assert_int_equal(e[0]->port, 465);
	assert_true(e[0]->implicit_tls);
	assert_int_equal(e[1]->port, 587);
	assert_false(e[1]->implicit_tls);
	assert_int_equal(autoconfig_endpoints(&s, AUTOCONFIG_POP3, e, AUTOCONFIG_MAX_ENDPOINTS), 2);
	assert_int_equal(e[0]->port, 995);
	assert_int_equal(e[1]->port, 110);
	/* bounded by max */
	assert_int_equal(autoconfig_endpoints(&s, AUTOCONFIG_POP3, e, 1), 1);
	assert_int_equal(e[0]->port, 995);
}

static void test_from_conf(void **state)
{
	(void)state;
	struct conf c;
	char err[512];
	assert_true(conf_load_string(&c, conf_embedded_default, "(embedded)", err, sizeof err));
	struct autoconfig_settings s;
	autoconfig_settings_from_conf(&s, &c);
	assert_string_equal(s.hostname, "localhost");
	const struct autoconfig_endpoint *e[AUTOCONFIG_MAX_ENDPOINTS];
	assert_int_equal(autoconfig_endpoints(&s, AUTOCONFIG_SUBMISSION, e, AUTOCONFIG_MAX_ENDPOINTS), 2);
	assert_int_equal(e[0]->port, 2465);
	assert_int_equal(e[1]->port, 2587);
	for (size_t i = 0; i < s.n_endpoints; i++)
		assert_int_not_equal(s.endpoints[i].port, 2525);   /* the mx listener */
}

static void test_xml_escape(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } rows[] = {
		{ "plain", "plain" },
		{ "a&b", "a&amp;b" },
		{ "<x>", "&lt;x&gt;" },
		{ "\"q'", "&quot;q&apos;" },
		{ "bell\x07nul\x01", "bellnul" },
		{ "tab\tok", "tab\tok" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct buf b;
		buf_init(&b, 256);
		assert_true(autoconfig_xml_escape(&b, rows[i].in));
		assert_string_equal(buf_cstr(&b), rows[i].out);
		buf_free(&b);
	}
	struct buf small;
	buf_init(&small, 4);
	assert_false(autoconfig_xml_escape(&small, "&&&&"));
	assert_true(small.truncated);
	buf_free(&small);
}

static void test_address_valid(void **state)
{
	(void)state;
	static const struct { const char *in; bool ok; const char *domain; } rows[] = {
		{ "alice@example.test", true, "example.test" },
		{ "Alice@EXAMPLE.Test", true, "example.test" },
		{ "a.b+tag_x-y@example.test", true, "example.test" },
		{ "o'neil&co@example.test", false, NULL },   /* atext the directory never stores */
		{ "a@b", true, "b" },
		{ "", false, NULL },
		{ "alice", false, NULL },
		{ "@example.test", false, NULL },
		{ "alice@", false, NULL },
		{ "a@b@example.test", false, NULL },
		{ "al ice@example.test", false, NULL },
		{ "<alice@example.test>", false, NULL },
		{ "alice@exa_mple.test", false, NULL },
		{ "alice@-example.test", false, NULL },
		{ "\"quoted\"@example.test", false, NULL },
		{ "alice@example.test\r\nX: y", false, NULL },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char a[400], d[DIR_ADDRESS_MAX];
		strcpy(a, rows[i].in);
		bool ok = autoconfig_address_valid(a, d, sizeof d);
		if (ok != rows[i].ok)
			fail_msg("row %zu (%s): %d", i, rows[i].in, ok);
		if (ok)
			assert_string_equal(d, rows[i].domain);
	}
	char longlocal[400];
	memset(longlocal, 'a', 65);
	strcpy(longlocal + 65, "@example.test");
	char d[DIR_ADDRESS_MAX];
	assert_false(autoconfig_address_valid(longlocal, d, sizeof d));
}

static void test_render(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	typical(&s);
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	assert_true(autoconfig_render(&s, "example.test", "o'neil&co@example.test", NULL, 0, &b));
	const char *x = buf_cstr(&b);
	assert_non_null(strstr(x, "<clientConfig version=\"1.1\">"));
	assert_non_null(strstr(x, "<emailProvider id=\"example.test\">"));
	assert_non_null(strstr(x, "<username>o&apos;neil&amp;co@example.test</username>"));
	assert_null(strstr(x, "%EMAILADDRESS%"));
	assert_null(strstr(x, "<port>25<"));
	assert_null(strstr(x, "<port>26<"));
	/* 465 before 587, 995 before 110, incoming before outgoing */
	const char *p995 = strstr(x, "<port>995</port>"), *p110 = strstr(x, "<port>110</port>");
	const char *p465 = strstr(x, "<port>465</port>"), *p587 = strstr(x, "<port>587</port>");
	assert_true(p995 && p110 && p465 && p587);
	assert_true(p995 < p110 && p110 < p465 && p465 < p587);
	assert_non_null(strstr(p465, "<socketType>SSL</socketType>"));
	assert_true(strstr(p587, "<socketType>STARTTLS</socketType>") != NULL);
	assert_true(strstr(p465, "<socketType>SSL</socketType>") < p587);
	assert_non_null(strstr(x, "<authentication>password-cleartext</authentication>"));
	assert_non_null(strstr(x, "<hostname>mx.example.test</hostname>"));

	buf_reset(&b);
	const char *others[] = { "example.test", "other.test" };
	assert_true(autoconfig_render(&s, "example.test", NULL, others, 2, &b));
	x = buf_cstr(&b);
	assert_non_null(strstr(x, "<username>%EMAILADDRESS%</username>"));
	assert_non_null(strstr(x, "<domain>other.test</domain>"));
	const char *first = strstr(x, "<domain>example.test</domain>");
	assert_non_null(first);
	assert_null(strstr(first + 1, "<domain>example.test</domain>"));   /* listed once */
	buf_free(&b);
}

static void test_render_needs_both(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_POP3, TLS_IMPLICIT, 995);
	assert_false(autoconfig_render(&s, "example.test", NULL, NULL, 0, &b));   /* no submission */
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	assert_false(autoconfig_render(&s, "example.test", NULL, NULL, 0, &b));   /* no POP3 */
	buf_reset(&b);
	struct buf tiny;
	buf_init(&tiny, 100);
	typical(&s);
	assert_false(autoconfig_render(&s, "example.test", NULL, NULL, 0, &tiny));   /* cut: refused */
	buf_free(&tiny);
	buf_free(&b);
}

/* With an imap listener, IMAP comes first (993 before 143), then POP3; IMAP alone
 * (no POP3) is enough for a document. */
static void test_render_imap(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	typical(&s);
	assert_true(autoconfig_settings_add(&s, ROLE_IMAP, TLS_STARTTLS, 143));
	assert_true(autoconfig_settings_add(&s, ROLE_IMAP, TLS_IMPLICIT, 993));
	assert_false(autoconfig_settings_add(&s, ROLE_IMAP, TLS_NONE, 1143));
	assert_true(autoconfig_render(&s, "example.test", NULL, NULL, 0, &b));
	const char *x = buf_cstr(&b);
	const char *imap = strstr(x, "<incomingServer type=\"imap\">"), *pop = strstr(x, "<incomingServer type=\"pop3\">");
	const char *p993 = strstr(x, "<port>993</port>"), *p143 = strstr(x, "<port>143</port>");
	assert_true(imap && pop && p993 && p143 && imap < p993 && p993 < p143 && p143 < pop);
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_IMAP, TLS_IMPLICIT, 993);
	autoconfig_settings_add(&s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	buf_reset(&b);
	assert_true(autoconfig_render(&s, "example.test", NULL, NULL, 0, &b));
	assert_null(strstr(buf_cstr(&b), "pop3"));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint_order),
		cmocka_unit_test(test_from_conf),
		cmocka_unit_test(test_xml_escape),
		cmocka_unit_test(test_address_valid),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_needs_both),
		cmocka_unit_test(test_render_imap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
