/* test_wire.c - wire/: reply lines, enhanced status codes where RFC 3463 and RFC 2034
 * put them, EHLO keywords; and delivery's recorded reasons read back (reason.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "delivery/reason.h"
#include "wire/enh.h"
#include "wire/wire.h"

static void test_replies(void **state)
{
	(void)state;
	struct wire_reply r;
	wire_reply_reset(&r);
	assert_int_equal(wire_reply_feed(&r, "250-first line"), 0);
	assert_int_equal(wire_reply_feed(&r, "250 2.0.0 second"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.0.0");
	assert_string_equal(r.text, "first line second");
	wire_reply_reset(&r);
	assert_int_equal(wire_reply_feed(&r, "550 5.1.1 <bob@example.org>: user unknown"), 1);
	assert_string_equal(r.enh, "5.1.1");
	char out[200];
	wire_reply_format(&r, out, sizeof(out));
	assert_string_equal(out, "550 5.1.1 <bob@example.org>: user unknown");
	wire_reply_reset(&r);
	assert_int_equal(wire_reply_feed(&r, "503 valid RCPT command must precede DATA"), 1);
	assert_string_equal(r.enh, "");
	assert_string_equal(r.text, "valid RCPT command must precede DATA");
	/* not replies */
	static const char *const bad[] = { "", "25", "abc def", "250x", "650 nope", "2500 ok", "199 x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wire_reply_reset(&r);
		assert_int_equal(wire_reply_feed(&r, bad[i]), -1);
	}
	/* the code may not change inside a multi-line reply */
	wire_reply_reset(&r);
	assert_int_equal(wire_reply_feed(&r, "250-a"), 0);
	assert_int_equal(wire_reply_feed(&r, "550 b"), -1);
	/* a bare code with nothing after it */
	wire_reply_reset(&r);
	assert_int_equal(wire_reply_feed(&r, "354"), 1);
	assert_int_equal(r.code, 354);
}

static void test_caps(void **state)
{
	(void)state;
	struct wire_caps c;
	memset(&c, 0, sizeof(c));
	static const char *const lines[] = { "PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN",
		"STARTTLS", "AUTH LOGIN PLAIN", "ENHANCEDSTATUSCODES", "X-UNKNOWN thing" };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		wire_caps_line(&c, lines[i]);
	assert_true(c.pipelining && c.eightbitmime && c.smtputf8 && c.chunking && c.dsn && c.starttls);
	assert_true(c.auth_plain && c.auth_login);
	assert_int_equal(c.size, 10485760);
	memset(&c, 0, sizeof(c));
	wire_caps_line(&c, "size 12");
	wire_caps_line(&c, "AUTH CRAM-MD5");
	assert_int_equal(c.size, 12);
	assert_false(c.auth_plain || c.auth_login);
	wire_caps_line(&c, "SIZE");   /* no value: unknown limit */
	assert_int_equal(c.size, 12);
}

static void test_enh_lead(void **state)
{
	(void)state;
	char enh[WIRE_ENH_MAX] = "";
	assert_int_equal(wire_enh_lead("5.1.1 user unknown", enh, sizeof(enh)), 5);
	assert_string_equal(enh, "5.1.1");
	assert_int_equal(wire_enh_lead("5.999.999", enh, sizeof(enh)), 9);
	static const char *const no[] = { "", "user 5.1.1 unknown", "4.5.3.1.6 long line", "5.1.1.", "5.1.1x",
		"3.0.0 x", "5.1000.1 x", " 5.1.1", "5.1" };
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (wire_enh_lead(no[i], enh, sizeof(enh)) != 0)
			fail_msg("\"%s\" taken for a code", no[i]);
	assert_true(wire_reply_enh("550 5.1.1 unknown", enh, sizeof(enh)));
	assert_string_equal(enh, "5.1.1");
	assert_true(wire_reply_enh("452-4.2.2 full", enh, sizeof(enh)));
	assert_string_equal(enh, "4.2.2");
	assert_false(wire_reply_enh("550 line too long (RFC 5321 4.5.3.1.6)", enh, sizeof(enh)));
	assert_true(wire_enh_valid("5.1.10"));
	assert_false(wire_enh_valid("5.1.10 "));
	assert_int_equal(wire_enh_len("4.5.3.1.6", 9), 0);
	assert_int_equal(wire_enh_len("5.7.1,", 6), 5);
}

static void test_reason_status(void **state)
{
	(void)state;
	static const struct {
		const char *reason, *status;
	} t[] = {
		{ "192.0.2.1 said: 550 5.1.1 <bob@example.org>: user unknown", "5.1.1" },
		{ "192.0.2.1 said to MAIL FROM: 451 4.3.0 try later", "4.3.0" },
		{ "5.6.3 line 3 of the message is 1200 octets long; ... (RFC 5321 4.5.3.1.6)", "5.6.3" },
		{ "gave up after 5 days of trying; last: 4.4.1 no mail server for x.example could be reached", "4.4.1" },
		{ "5.0.0 192.0.2.1 said: 550 no such user", "5.0.0" },
		/* before: bounce.c read the first "4."/"5." word, here 4.5.3.1.6 */
		{ "line 3 is too long (RFC 5321 4.5.3.1.6)", NULL },
		{ "192.0.2.1 said: 550 see 5.1.1", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char enh[WIRE_ENH_MAX] = "";
		bool found = reason_status(t[i].reason, enh, sizeof(enh));
		if (found != (t[i].status != NULL) || (found && strcmp(enh, t[i].status) != 0))
			fail_msg("row %zu: \"%s\" gave %s", i, t[i].reason, found ? enh : "none");
	}
}

static void test_rcpt_result_reason(void **state)
{
	(void)state;
	struct wire_reply r;
	struct rcpt_result x;
	char out[RCPT_REASON_MAX];
	wire_reply_reset(&r);
	wire_reply_feed(&r, "550 5.1.1 <bob@example.org>: user unknown");
	rcpt_result_from_reply(&x, &r, "192.0.2.1 said");
	assert_int_equal(x.outcome, OUT_FAIL);
	assert_int_equal(x.code, 550);
	assert_string_equal(x.enh, "5.1.1");
	assert_string_equal(x.text, "<bob@example.org>: user unknown");
	rcpt_result_reason(&x, out, sizeof(out));
	assert_string_equal(out, "192.0.2.1 said: 550 5.1.1 <bob@example.org>: user unknown");
	wire_reply_reset(&r);
	wire_reply_feed(&r, "450 mailbox busy");
	rcpt_result_from_reply(&x, &r, "192.0.2.1 said");
	rcpt_result_reason(&x, out, sizeof(out));
	assert_string_equal(out, "4.0.0 192.0.2.1 said: 450 mailbox busy");
	wire_reply_reset(&r);
	wire_reply_feed(&r, "250 2.0.0 queued");
	rcpt_result_from_reply(&x, &r, "192.0.2.1 said");
	rcpt_result_reason(&x, out, sizeof(out));
	assert_string_equal(out, "192.0.2.1 said: 250 2.0.0 queued");
	rcpt_result_set(&x, OUT_FAIL, "5.6.3", "line 3 is too long (RFC 5321 4.5.3.1.6)");
	rcpt_result_reason(&x, out, sizeof(out));
	assert_string_equal(out, "5.6.3 line 3 is too long (RFC 5321 4.5.3.1.6)");
	rcpt_result_set(&x, OUT_DEFER, "4.4.1", "4.4.1 already first");
	rcpt_result_reason(&x, out, sizeof(out));
	assert_string_equal(out, "4.4.1 already first");
}

/* The enhanced-code catalogue (wire/enh.h): every row a valid code whose class its
 * name says (ENH_OK_ 2, ENH_TEMP_ 4, ENH_PERM_ 5), with words and a source; no code
 * or name twice; and every id the header defines has its row (read from the header,
 * so a #define without a row fails here). */
static void test_enh_catalogue(void **state)
{
	(void)state;
	size_t n;
	const struct wire_enh_entry *c = wire_enh_catalogue(&n);
	assert_true(n >= 30);
	for (size_t i = 0; i < n; i++) {
		if (!wire_enh_valid(c[i].code))
			fail_msg("%s: \"%s\" is not an enhanced code", c[i].name, c[i].code);
		char want = strncmp(c[i].name, "ENH_OK", 6) == 0 ? '2' : strncmp(c[i].name, "ENH_TEMP", 8) == 0 ? '4'
			: strncmp(c[i].name, "ENH_PERM", 8) == 0 ? '5' : '?';
		if (c[i].code[0] != want)
			fail_msg("%s: class of %s does not match its name", c[i].name, c[i].code);
		assert_true(c[i].meaning && c[i].meaning[0] && c[i].rfc && strncmp(c[i].rfc, "RFC ", 4) == 0);
		assert_string_equal(wire_enh_meaning(c[i].code), c[i].meaning);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c[i].code, c[j].code) == 0 || strcmp(c[i].name, c[j].name) == 0)
				fail_msg("%s and %s: listed twice", c[j].name, c[i].name);
	}
	assert_null(wire_enh_meaning("5.9.9"));
	assert_null(wire_enh_meaning(NULL));
	assert_string_equal(ENH_PERM_MAILBOX_FULL, "5.2.2");
	assert_string_equal(wire_enh_meaning(ENH_PERM_NOT_AUTHORIZED), "delivery not authorized, message refused");

	FILE *f = fopen(POSTERN_SOURCE_DIR "/src/wire/enh.h", "r");
	assert_non_null(f);
	char line[512];
	size_t defined = 0;
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		if (sscanf(line, "#define %63[A-Z_0-9]", name) != 1 || strncmp(name, "ENH_", 4) != 0)
			continue;
		defined++;
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(c[i].name, name) == 0;
		if (!found)
			fail_msg("%s is defined in wire/enh.h but has no row in enh.c", name);
	}
	fclose(f);
	assert_int_equal(defined, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_enh_lead),
		cmocka_unit_test(test_reason_status),
		cmocka_unit_test(test_rcpt_result_reason),
		cmocka_unit_test(test_enh_catalogue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
