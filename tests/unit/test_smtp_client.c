/* test_smtp_client.c - the outbound side's pure parts: reply lines, EHLO
 * capabilities, DNS wire names, DSN wanted-or-not and the plain-words meanings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "delivery/bounce.h"
#include "delivery/mx.h"
#include "delivery/smtp_client.h"
#include "queue/queue.h"

static void test_replies(void **state)
{
	(void)state;
	struct smtp_reply r;
	smtp_reply_reset(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-first line"), 0);
	assert_int_equal(smtp_reply_feed(&r, "250 2.0.0 second"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.0.0");
	assert_string_equal(r.text, "first line second");
	smtp_reply_reset(&r);
	assert_int_equal(smtp_reply_feed(&r, "550 5.1.1 <bob@example.org>: user unknown"), 1);
	assert_string_equal(r.enh, "5.1.1");
	char out[200];
	smtp_reply_format(&r, out, sizeof(out));
	assert_string_equal(out, "550 5.1.1 <bob@example.org>: user unknown");
	smtp_reply_reset(&r);
	assert_int_equal(smtp_reply_feed(&r, "503 valid RCPT command must precede DATA"), 1);
	assert_string_equal(r.enh, "");
	assert_string_equal(r.text, "valid RCPT command must precede DATA");
	/* not replies */
	static const char *const bad[] = { "", "25", "abc def", "250x", "650 nope", "2500 ok", "199 x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_reset(&r);
		assert_int_equal(smtp_reply_feed(&r, bad[i]), -1);
	}
	/* the code may not change inside a multi-line reply */
	smtp_reply_reset(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-a"), 0);
	assert_int_equal(smtp_reply_feed(&r, "550 b"), -1);
	/* a bare code with nothing after it */
	smtp_reply_reset(&r);
	assert_int_equal(smtp_reply_feed(&r, "354"), 1);
	assert_int_equal(r.code, 354);
}

static void test_caps(void **state)
{
	(void)state;
	struct smtp_caps c;
	memset(&c, 0, sizeof(c));
	static const char *const lines[] = { "PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN",
		"STARTTLS", "AUTH LOGIN PLAIN", "ENHANCEDSTATUSCODES", "X-UNKNOWN thing" };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		smtp_caps_line(&c, lines[i]);
	assert_true(c.pipelining && c.eightbitmime && c.smtputf8 && c.chunking && c.dsn && c.starttls);
	assert_true(c.auth_plain && c.auth_login);
	assert_int_equal(c.size, 10485760);
	memset(&c, 0, sizeof(c));
	smtp_caps_line(&c, "size 12");
	smtp_caps_line(&c, "AUTH CRAM-MD5");
	assert_int_equal(c.size, 12);
	assert_false(c.auth_plain || c.auth_login);
	smtp_caps_line(&c, "SIZE");   /* no value: unknown limit */
	assert_int_equal(c.size, 12);
}

static void test_wire_names(void **state)
{
	(void)state;
	char out[256];
	const unsigned char mx[] = { 3, 'm', 'x', '1', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0 };
	assert_int_equal(mx_wire_name(mx, sizeof(mx), out, sizeof(out)), sizeof(mx));
	assert_string_equal(out, "mx1.example.org");
	const unsigned char root[] = { 0 };
	assert_int_equal(mx_wire_name(root, 1, out, sizeof(out)), 1);
	assert_string_equal(out, ".");   /* the null MX target */
	const unsigned char cut[] = { 5, 'a', 'b' };
	assert_int_equal(mx_wire_name(cut, sizeof(cut), out, sizeof(out)), 0);
	const unsigned char noend[] = { 1, 'a' };
	assert_int_equal(mx_wire_name(noend, sizeof(noend), out, sizeof(out)), 0);
	const unsigned char pointer[] = { 0xc0, 0x0c };   /* compression is not expected here */
	assert_int_equal(mx_wire_name(pointer, sizeof(pointer), out, sizeof(out)), 0);
	assert_int_equal(mx_wire_name(mx, sizeof(mx), out, 5), 0);   /* too small: refused, not cut */
}

static void test_bounce_wanted(void **state)
{
	(void)state;
	struct queue_message m;
	memset(&m, 0, sizeof(m));
	char rcpts[2][QUEUE_ADDR_MAX] = { "a@x.example", "b@x.example" };
	m.env.rcpts = rcpts;
	m.env.n_rcpts = 2;
	snprintf(m.env.sender, sizeof(m.env.sender), "s@example.test");
	assert_true(bounce_wanted(&m, 0, BOUNCE_FAILED));
	assert_true(bounce_wanted(&m, 0, BOUNCE_DELAYED));
	unsigned char notify[2] = { QUEUE_NOTIFY_NEVER, QUEUE_NOTIFY_FAILURE };
	m.env.notify = notify;
	assert_false(bounce_wanted(&m, 0, BOUNCE_FAILED));
	assert_true(bounce_wanted(&m, 1, BOUNCE_FAILED));
	assert_false(bounce_wanted(&m, 1, BOUNCE_DELAYED));
	m.env.notify = NULL;
	m.env.sender[0] = '\0';   /* never bounce a bounce */
	assert_false(bounce_wanted(&m, 0, BOUNCE_FAILED));
}

static void test_meanings(void **state)
{
	(void)state;
	assert_non_null(strstr(bounce_meaning("5.1.1", "550 5.1.1 user unknown"), "does not exist"));
	assert_non_null(strstr(bounce_meaning("5.2.2", "552 5.2.2 mailbox full"), "mailbox is full"));
	assert_non_null(strstr(bounce_meaning("5.3.4", ""), "too big"));
	assert_non_null(strstr(bounce_meaning("5.7.1", "554 5.7.1 Relay access denied"), "relaying"));
	assert_non_null(strstr(bounce_meaning("4.4.1", "relay x: refused Postern's login [relay]"), "administrator"));
	assert_non_null(strstr(bounce_meaning("", "503 valid RCPT command must precede DATA"), "refused"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_wire_names),
		cmocka_unit_test(test_bounce_wanted),
		cmocka_unit_test(test_meanings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
