/* test_autodiscover.c - web/autodiscover.c: the POX request scanner on the bodies
 * Outlook sends and on hostile ones, and the response and error documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/autodiscover.h"

#define OUTLOOK_REQUEST \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n" \
	"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\r\n" \
	"  <Request>\r\n" \
	"    <EMailAddress>alice@example.test</EMailAddress>\r\n" \
	"    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\r\n" \
	"  </Request>\r\n" \
	"</Autodiscover>\r\n"

static bool parse(const char *body, struct autodiscover_request *r)
{
	return autodiscover_parse(body, strlen(body), r);
}

static void test_outlook_request(void **state)
{
	(void)state;
	struct autodiscover_request r;
	assert_true(parse(OUTLOOK_REQUEST, &r));
	assert_string_equal(r.address, "alice@example.test");
	assert_string_equal(r.schema, AUTODISCOVER_OUTLOOK_SCHEMA);
}

static void test_accepted_shapes(void **state)
{
	(void)state;
	static const struct { const char *body, *address, *schema; } rows[] = {
		/* a prefix, single quotes, a comment, a BOM, LegacyDN ignored */
		{ "\xEF\xBB\xBF<a:Autodiscover xmlns:a='x'><a:Request><!-- hi --><a:EMailAddress> bob@example.test </a:EMailAddress>"
		  "<a:LegacyDN>/o=x</a:LegacyDN></a:Request></a:Autodiscover>", "bob@example.test", "" },
		/* references and CDATA */
		{ "<Autodiscover><Request><EMailAddress>o&apos;neil&#38;co&#x40;example.test</EMailAddress>"
		  "<AcceptableResponseSchema><![CDATA[s<1>]]></AcceptableResponseSchema></Request></Autodiscover>",
		  "o'neil&co@example.test", "s<1>" },
		/* no EMailAddress: parses, empty */
		{ "<Autodiscover><Request/></Autodiscover>", "", "" },
		{ "<Autodiscover><Request><EMailAddress/></Request></Autodiscover>", "", "" },
		/* EMailAddress elsewhere is not the request's */
		{ "<Autodiscover><Other><EMailAddress>x@y</EMailAddress></Other><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>", "a@b", "" },
		{ "<?xml version='1.0'?>\n<Autodiscover>\n</Autodiscover>\n<!-- trailing -->\n", "", "" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct autodiscover_request r;
		if (!parse(rows[i].body, &r))
			fail_msg("row %zu refused: %s", i, r.error);
		assert_string_equal(r.address, rows[i].address);
		assert_string_equal(r.schema, rows[i].schema);
	}
}

static void test_refused_shapes(void **state)
{
	(void)state;
	static const struct { const char *body, *why; } rows[] = {
		{ "", "no body" },
		{ "hello", "text outside" },
		{ "<Autodiscover>", "ends inside" },
		{ "<Autodiscover></Request>", "does not match" },
		{ "<Autodiscover><Request></Autodiscover></Request>", "does not match" },
		{ "<!DOCTYPE lolz [<!ENTITY lol \"lol\">]><Autodiscover>&lol;</Autodiscover>", "DTD" },
		{ "<Autodiscover>&lol;</Autodiscover>", "entity" },
		{ "<Autodiscover>&#0;</Autodiscover>", "does not allow" },
		{ "<Autodiscover>&#xD800;</Autodiscover>", "does not allow" },
		{ "<Autodiscover>&#9999999;</Autodiscover>", "out of range" },
		{ "<Autodiscover>&amp</Autodiscover>", "no ';'" },
		{ "<Autodiscover><Request/><Request/></Autodiscover>", "more than one Request" },
		{ "<Autodiscover><Request><EMailAddress>a@b</EMailAddress><EMailAddress>c@d</EMailAddress></Request></Autodiscover>", "more than one EMailAddress" },
		{ "<Autodiscover><Request><EMailAddress>a<b/>@b</EMailAddress></Request></Autodiscover>", "inside EMailAddress" },
		{ "<Autodiscover/><Autodiscover/>", "not one Autodiscover" },
		{ "<Other/>", "not one Autodiscover" },
		{ "<Autodiscover a=b/>", "not quoted" },
		{ "<Autodiscover a/>", "no '='" },
		{ "<Autodiscover a=\"x<y\"/>", "holds '<'" },
		{ "<Autodiscover a=\"x/>", "does not end" },
		{ "<Autodiscover><!-- x </Autodiscover>", "comment does not end" },
		{ "<Autodiscover><![CDATA[x</Autodiscover>", "CDATA section does not end" },
		{ "<Autodiscover>\x01</Autodiscover>", "control character" },
		{ "< Autodiscover/>", "not followed by a name" },
		{ "<Autodiscover><b><c><d><e><f><g><h><i/></h></g></f></e></d></c></b></Autodiscover>", "deeper than 8" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct autodiscover_request r;
		if (parse(rows[i].body, &r))
			fail_msg("row %zu accepted: %s", i, rows[i].body);
		if (!strstr(r.error, rows[i].why))
			fail_msg("row %zu: error \"%s\" does not say \"%s\"", i, r.error, rows[i].why);
	}
}

static void test_bounds(void **state)
{
	(void)state;
	struct autodiscover_request r;
	/* a body over 16 KiB is refused before it is read */
	size_t big = AUTODISCOVER_REQUEST_MAX + 1;
	char *b = malloc(big);
	memset(b, ' ', big);
	assert_false(autodiscover_parse(b, big, &r));
	assert_non_null(strstr(r.error, "larger than 16 KiB"));
	/* an address longer than the field */
	char body[2048];
	char addr[600];
	memset(addr, 'a', sizeof addr - 1);
	addr[sizeof addr - 1] = '\0';
	snprintf(body, sizeof body, "<Autodiscover><Request><EMailAddress>%s</EMailAddress></Request></Autodiscover>", addr);
	assert_false(parse(body, &r));
	assert_non_null(strstr(r.error, "too long"));
	/* a long name */
	char name[100];
	memset(name, 'n', 70);
	name[70] = '\0';
	snprintf(body, sizeof body, "<Autodiscover><%s/></Autodiscover>", name);
	assert_false(parse(body, &r));
	assert_non_null(strstr(r.error, "longer than 64"));
	/* NUL inside the body */
	static const char nul[] = "<Autodiscover>\0</Autodiscover>";
	assert_false(autodiscover_parse(nul, sizeof nul - 1, &r));
	free(b);
}

static void settings(struct autoconfig_settings *s)
{
	autoconfig_settings_init(s, "mx.example.test");
	autoconfig_settings_add(s, ROLE_MX, TLS_STARTTLS, 25);
	autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_STARTTLS, 587);
	autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	autoconfig_settings_add(s, ROLE_POP3, TLS_IMPLICIT, 995);
	autoconfig_settings_add(s, ROLE_POP3, TLS_STARTTLS, 110);
}

static void test_render(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	settings(&s);
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	assert_true(autodiscover_render(&s, "a&b@example.test", &b));
	const char *x = buf_cstr(&b);
	assert_non_null(strstr(x, "<Response xmlns=\"" AUTODISCOVER_OUTLOOK_SCHEMA "\">"));
	assert_non_null(strstr(x, "<AccountType>email</AccountType>"));
	assert_non_null(strstr(x, "<Action>settings</Action>"));
	assert_non_null(strstr(x, "<LoginName>a&amp;b@example.test</LoginName>"));
	assert_null(strstr(x, "<Port>25</Port>"));
	const char *p465 = strstr(x, "<Port>465</Port>"), *p587 = strstr(x, "<Port>587</Port>");
	const char *p995 = strstr(x, "<Port>995</Port>"), *p110 = strstr(x, "<Port>110</Port>");
	assert_true(p465 && p587 && p995 && p110 && p465 < p587 && p995 < p110);
	/* 465: SSL on, no Encryption before the next block; 587: Encryption TLS */
	const char *enc = strstr(p465, "<Encryption>");
	assert_true(enc > p587);
	assert_non_null(strstr(p587, "<Encryption>TLS</Encryption>"));
	assert_non_null(strstr(p465, "<UsePOPAuth>on</UsePOPAuth>"));
	assert_non_null(strstr(x, "<SPA>off</SPA>"));
	assert_non_null(strstr(x, "<AuthRequired>on</AuthRequired>"));
	buf_free(&b);
}

static void test_render_error(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	autodiscover_render_error(AUTODISCOVER_ERR_INVALID, "a <bad> body", &b);
	assert_non_null(strstr(buf_cstr(&b), "<ErrorCode>600</ErrorCode>"));
	assert_non_null(strstr(buf_cstr(&b), "<Message>Invalid Request</Message>"));
	assert_non_null(strstr(buf_cstr(&b), "<DebugData>a &lt;bad&gt; body</DebugData>"));
	buf_reset(&b);
	autodiscover_render_error(AUTODISCOVER_ERR_NO_PROVIDER, "", &b);
	assert_non_null(strstr(buf_cstr(&b), "<ErrorCode>601</ErrorCode>"));
	buf_reset(&b);
	autodiscover_render_error(AUTODISCOVER_ERR_NOT_FOUND, NULL, &b);
	assert_non_null(strstr(buf_cstr(&b), "<ErrorCode>500</ErrorCode>"));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outlook_request),
		cmocka_unit_test(test_accepted_shapes),
		cmocka_unit_test(test_refused_shapes),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
