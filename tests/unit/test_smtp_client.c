/* test_smtp_client.c - the outbound side's pure parts (reply lines and EHLO
 * keywords are in test_wire.c; DNS wire names in test_dns.c): DSN wanted-or-not, the plain-words meanings, and the
 * wire encoder (CR LF only, dot-stuffing, no line over 1000 octets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/bounce.h"
#include "delivery/smtp_wire.h"
#include "queue/queue.h"

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

/* The big receivers' authentication refusals (their real reply texts): words for the
 * user naming what failed and `postern dns check DOMAIN`; anything else: no advice. */
static void test_auth_advice(void **state)
{
	(void)state;
	static const struct { const char *enh, *reply, *want; } rows[] = {
		{ "5.7.26", "142.250.1.27 said: 550-5.7.26 This mail has been blocked because the sender is unauthenticated. "
		  "Gmail requires all senders to authenticate with either SPF or DKIM. - gsmtp", "Gmail refused the message because "
		  "it could not confirm that it really comes from example.org" },
		{ "5.7.26", "said: 550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. "
		  "- gsmtp", "because of the DMARC policy of the sender's domain example.org" },
		{ "5.7.27", "said: 550-5.7.27 The sender's SPF record did not pass. - gsmtp", "SPF record of example.org" },
		{ "5.7.25", "said: 550-5.7.25 The IP address sending this message does not have a PTR record setup - gsmtp",
		  "no reverse DNS name (PTR record) matching its name mail.example.org" },
		{ "4.7.28", "said: 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail. - gsmtp", "slowing down" },
		{ "5.7.515", "said: 550 5.7.515 Access denied, sending domain [EXAMPLE.ORG] does not meet the required "
		  "authentication level.", "Microsoft (Outlook.com, Hotmail) refused" },
		{ "5.7.509", "said: 550 5.7.509 Access denied, sending domain [example.org] does not pass DMARC verification and "
		  "has a DMARC policy of reject.", "DMARC policy" },
		{ "5.7.23", "said: 550 5.7.23 The message was rejected because of Sender Policy Framework violation",
		  "SPF record of example.org" },
		{ "5.7.9", "said: 554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
		  "Yahoo refused the message because it could not confirm" },
		{ "4.7.0", "said: 421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume or user "
		  "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "Yahoo is slowing down" },
		{ "5.7.1", "said: 554 5.7.1 [HM08] Message rejected due to local policy. Please visit "
		  "https://support.apple.com/en-us/HT204137", "iCloud refused the message under its local policy" },
	};
	char out[2048];
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_true(bounce_auth_advice(rows[i].enh, rows[i].reply, "example.org", "mail.example.org", out, sizeof(out)));
		if (!strstr(out, rows[i].want) || !strstr(out, "postern dns check example.org"))
			fail_msg("row %zu: %s", i, out);
	}
	assert_false(bounce_auth_advice("5.1.1", "550 5.1.1 user unknown", "example.org", "m", out, sizeof(out)));
	assert_false(bounce_auth_advice("5.7.1", "554 5.7.1 Relay access denied", "example.org", "m", out, sizeof(out)));
	assert_false(bounce_auth_advice("", "550 DMARC fail", "example.org", "m", out, sizeof(out)));   /* no X.7.X */
}

/* Encode in pieces of `piece` octets (a CR LF split across pieces must not matter). */
static char *wire(const char *in, size_t n, bool stuff, size_t piece, size_t *outn, struct smtp_wire *w)
{
	char *out = malloc(SMTP_WIRE_OUT_MAX(n) + 8);
	size_t o = 0;
	smtp_wire_init(w, stuff);
	for (size_t i = 0; i < n; i += piece)
		o += smtp_wire_feed(w, in + i, n - i < piece ? n - i : piece, out + o);
	o += smtp_wire_finish(w, out + o);
	assert_int_equal(o, w->failed ? o : w->out_size);
	*outn = o;
	return out;
}

/* No bare CR or LF and no line over 1000 octets with its CR LF. */
static void assert_wire_clean(const char *p, size_t n)
{
	size_t line = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			assert_true(i + 1 < n && p[i + 1] == '\n');
			assert_true(line + 2 <= 1000);
			line = 0;
			i++;
		} else {
			assert_true(p[i] != '\n');
			line++;
		}
	}
	assert_int_equal(line, 0);   /* ends with CR LF */
}

static void test_wire_table(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		bool stuff;
		const char *want;
	} rows[] = {
		{ "a\r\nb\r\n", true, "a\r\nb\r\n" },
		{ "a\nb\n", true, "a\r\nb\r\n" },                           /* bare LF */
		{ "a\rb\r", true, "a\r\nb\r\n" },                           /* bare CR */
		{ "x\r\n\r.\r\nz\r\n", true, "x\r\n\r\n..\r\nz\r\n" },        /* \r. is stuffed */
		{ ".\r\n..x\r\n", true, "..\r\n...x\r\n" },
		{ ".\r\n", false, ".\r\n" },                                /* BDAT: no stuffing */
		{ "a\r\n\nb", false, "a\r\n\r\nb\r\n" },                     /* last line gets its CR LF */
		{ "", true, "" },
		{ "\r\r\n", true, "\r\n\r\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		for (size_t piece = 1; piece <= 4; piece++) {
			struct smtp_wire w;
			size_t n;
			char *out = wire(rows[i].in, strlen(rows[i].in), rows[i].stuff, piece, &n, &w);
			assert_false(w.failed);
			if (n != strlen(rows[i].want) || memcmp(out, rows[i].want, n) != 0)
				fail_msg("row %zu piece %zu: got %.*s", i, piece, (int)n, out);
			assert_wire_clean(out, n);
			free(out);
		}
}

/* A header line of 2500 octets with spaces is folded (unfolding gives it back); a
 * body line of 1500 octets stops the encoder and says which line and how long. */
static void test_wire_long_lines(void **state)
{
	(void)state;
	char *msg = malloc(8000);
	size_t n = (size_t)sprintf(msg, "Received: by x\r\nReferences:");
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(msg + n, " <%020d@example.test>", i);
	n += (size_t)sprintf(msg + n, "\r\nSubject: s\r\n\r\nshort\r\n");
	struct smtp_wire w;
	size_t on;
	char *out = wire(msg, n, true, 7, &on, &w);
	assert_false(w.failed);
	assert_wire_clean(out, on);
	/* unfolding (RFC 5322 §2.2.3: remove CR LF before WSP) gives the input back */
	char *unf = malloc(on + 1);
	size_t u = 0;
	for (size_t i = 0; i < on; i++) {
		if (out[i] == '\r' && i + 2 < on && out[i + 1] == '\n' && (out[i + 2] == ' ' || out[i + 2] == '\t')) {
			i++;
			continue;
		}
		unf[u++] = out[i];
	}
	assert_int_equal(u, n);
	assert_memory_equal(unf, msg, n);
	free(unf);
	free(out);
	/* a long body line */
	n = (size_t)sprintf(msg, "Subject: s\r\n\r\nfirst\r\n");
	memset(msg + n, 'x', 1500);
	n += 1500;
	n += (size_t)sprintf(msg + n, "\r\nlast\r\n");
	out = wire(msg, n, true, 64, &on, &w);
	assert_true(w.failed);
	assert_false(w.bad_in_header);
	assert_int_equal(w.bad_line, 4);
	assert_int_equal(w.bad_len, 1500);
	char why[700];
	smtp_wire_describe(&w, why, sizeof(why));
	assert_non_null(strstr(why, "line 4 of the message is 1500 octets long"));
	free(out);
	/* exactly 998 passes; 998 starting with "." is 999 on the wire with DATA: refused */
	n = (size_t)sprintf(msg, "S: s\r\n\r\n");
	memset(msg + n, 'y', 998);
	n += 998;
	memcpy(msg + n, "\r\n", 2);
	n += 2;
	out = wire(msg, n, true, 100, &on, &w);
	assert_false(w.failed);
	assert_wire_clean(out, on);
	free(out);
	msg[n - 1000] = '.';
	out = wire(msg, n, true, 100, &on, &w);
	assert_true(w.failed);
	free(out);
	out = wire(msg, n, false, 100, &on, &w);   /* BDAT: no stuffing, 998 fits */
	assert_false(w.failed);
	free(out);
	/* a header line with nowhere to fold */
	n = (size_t)sprintf(msg, "X-Long: ");
	memset(msg + n, 'z', 1200);
	n += 1200;
	n += (size_t)sprintf(msg + n, "\r\n\r\nbody\r\n");
	out = wire(msg, n, true, 50, &on, &w);
	assert_true(w.failed);
	assert_true(w.bad_in_header);
	assert_int_equal(w.bad_line, 1);
	assert_int_equal(w.bad_len, 1208);
	free(out);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce_wanted),
		cmocka_unit_test(test_auth_advice),
		cmocka_unit_test(test_meanings),
		cmocka_unit_test(test_wire_table),
		cmocka_unit_test(test_wire_long_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
