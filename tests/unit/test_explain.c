/* test_explain.c - the knowledge base against real-world replies: each row is a reply
 * text as Postfix, Exim, Exchange/Office 365, Gmail, Yahoo, Sendmail, qmail, Dovecot
 * or Postern words it (or a client's error message), and the cause explain must name
 * first.  Plus the code parser, the loader's checks and the "unknown" answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diag/explain.h"

static struct explain_kb *kb;

struct row {
	const char *text;
	const char *cause;   /* expected first cause */
};

static const struct row rows[] = {
	/* 503 sequence errors: the client did not log in */
	{ "503 5.5.1 Error: valid RCPT command must precede DATA", "not_authenticated" },                 /* Postfix */
	{ "503 valid RCPT command must precede DATA", "not_authenticated" },                               /* Exim */
	{ "503-All RCPT commands were rejected with this error:\n503-relay not permitted\n503 Valid RCPT command must precede DATA", "not_authenticated" }, /* Exim */
	{ "503 5.5.2 Need rcpt command", "not_authenticated" },                                            /* Exchange */
	{ "503 5.0.0 Need RCPT (recipient)", "not_authenticated" },                                        /* Sendmail */
	{ "503 RCPT first (#5.5.1)", "not_authenticated" },                                                /* qmail */
	{ "503 5.5.1 No valid recipients, so there is no message to send: the server refused the only recipient\n"
	  "<bob@example.org>: relaying denied (ref 1.2)\nFix: log in before sending (ref 1.3)", "not_authenticated" }, /* Postern */
	{ "503 5.5.1 Send MAIL FROM first", "command_sequence" },                                           /* Postern */
	/* authentication required, TLS required */
	{ "530 5.7.0 Authentication required", "not_authenticated" },                                      /* Postfix/Exchange */
	{ "550 5.7.1 Message refused: the message claims to be from example.com, but example.com's DMARC policy says to reject mail that neither SPF nor DKIM confirms; SPF: 192.0.2.7 is not allowed to send for example.com; DKIM: no signature (ref 1.4)", "dmarc_failed" }, /* Postern */
	{ "451 4.4.3 Message not accepted: temporary failure: the DMARC check of example.com could not finish: the DNS lookup of _dmarc.example.com failed (TIMEOUT) (ref 1.5)", "server_unavailable" }, /* Postern */
	{ "451 4.3.0 Message not accepted: temporary failure: the changes the content filter asked for could not be stored on this server (ref 1.6)", "server_unavailable" }, /* Postern */
	{ "552 5.3.4 Message refused: the message's header is larger than 1 MB, too large for the changes the content filter asked for (ref 1.7)", "message_too_large" }, /* Postern */
	{ "530 5.7.0 authentication required: this is a submission port, and it accepts mail only from users who have logged in (ref 1.1)", "not_authenticated" }, /* Postern */
	{ "530 5.7.57 SMTP; Client was not authenticated to send anonymous mail during MAIL FROM", "not_authenticated" }, /* Office 365 */
	{ "530 5.7.0 Must issue a STARTTLS command first", "tls_required" },                               /* Postfix/Gmail */
	{ "530 5.7.0 Must issue a STARTTLS command first: passwords are accepted only over an encrypted connection", "tls_required" }, /* Postern */
	{ "538 5.7.11 Encryption required: this port does not offer TLS, so it cannot accept passwords", "tls_required" }, /* Postern */
	{ "530 Must issue a STARTTLS command first. u3sm1234567wrb.12 - gsmtp", "tls_required" },          /* Gmail */
	/* wrong credentials, app passwords */
	{ "535 5.7.8 Error: authentication failed: authentication failure", "wrong_credentials" },          /* Postfix */
	{ "535 Incorrect authentication data", "wrong_credentials" },                                      /* Exim */
	{ "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials", "wrong_credentials" }, /* Gmail */
	{ "535 5.7.3 Authentication unsuccessful", "wrong_credentials" },                                  /* Exchange */
	{ "535 5.7.8 Authentication credentials invalid: the user name or the password is wrong", "wrong_credentials" }, /* Postern */
	{ "535 5.7.0 (#AUTH005) Too many bad auth attempts.", "wrong_credentials" },                      /* Yahoo */
	{ "auth failed (Dovecot: Authentication failed)", "wrong_credentials" },                           /* Dovecot (submission) */
	{ "534-5.7.9 Application-specific password required. Learn more at\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor", "app_password_required" }, /* Gmail */
	{ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", "app_password_required" }, /* Office 365 */
	{ "534-5.7.14 <https://accounts.google.com/signin/continue?...> Please log in via your web browser and then try again. WebLoginRequired", "app_password_required" }, /* Gmail */
	/* relaying denied */
	{ "554 5.7.1 <bob@example.org>: Relay access denied", "not_authenticated" },                       /* Postfix */
	{ "550 relay not permitted", "not_authenticated" },                                                /* Exim */
	{ "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "not_authenticated" },      /* Exchange */
	{ "550 5.7.1 <bob@example.org>... Relaying denied", "not_authenticated" },                         /* Sendmail */
	{ "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "not_authenticated" }, /* qmail */
	{ "550 we do not relay", "not_authenticated" },
	{ "554 5.7.1 <bob@example.org>: relaying denied: example.org is not a domain of this server, and this server only relays mail for clients that have logged in; you have not logged in (ref 2.1)", "not_authenticated" }, /* Postern */
	/* sender not owned */
	{ "553 5.7.1 <carol@example.com>: Sender address rejected: not owned by user alice@example.com", "sender_not_owned" }, /* Postfix */
	{ "550 5.7.60 SMTP; Client does not have permissions to send as this sender", "sender_not_owned" }, /* Office 365 */
	{ "553 5.7.1 sender address rejected: you are logged in as alice@example.test, and carol@example.test is not one of your addresses (MAIL FROM) (ref 1.4)", "sender_not_owned" }, /* Postern */
	/* mailbox full */
	{ "552 5.2.2 <bob@example.org>: Recipient address rejected: Mailbox full", "mailbox_full" },      /* Postfix */
	{ "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp", "mailbox_full" }, /* Gmail */
	{ "552 1 Requested mail action aborted, mailbox not found", "unknown_recipient" },                 /* Yahoo style */
	{ "550 5.2.2 mailbox full (Dovecot: Quota exceeded (mailbox for user is full))", "mailbox_full" }, /* Dovecot LMTP */
	{ "452 4.2.2 Mailbox full", "mailbox_full" },
	{ "452-4.2.2 <bob@example.test>: the mailbox of bob@example.test is full (1 MB of 1 MB used)\n452 4.2.2 its owner must delete mail before it can receive more; try again later", "mailbox_full" }, /* Postern */
	{ "552 5.2.2 <bob@example.test>: the mailbox of bob@example.test is full (1 MB of 1 MB used); try again later", "mailbox_full" }, /* Postern, full_is_permanent */
	/* message too big */
	{ "552 5.3.4 Message size exceeds fixed limit", "message_too_large" },                             /* Postfix */
	{ "552 Message size exceeds maximum permitted", "message_too_large" },                             /* Exim */
	{ "552 5.3.4 Message too big: the limit here is 26214400 octets; the message was not accepted", "message_too_large" }, /* Postern */
	{ "552 5.3.4 Your message exceeded Google's message size limits.", "message_too_large" },          /* Gmail */
	/* unknown user */
	{ "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in local recipient table", "unknown_recipient" }, /* Postfix */
	{ "550-5.1.1 The email account that you tried to reach does not exist. Please try\n550 5.1.1 double-checking the recipient's email address", "unknown_recipient" }, /* Gmail */
	{ "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "unknown_recipient" }, /* Office 365 */
	{ "554 delivery error: dd This user doesn't have a yahoo.com account (bob@yahoo.com) [0] - mta1.mail.yahoo.com", "unknown_recipient" }, /* Yahoo */
	{ "550 5.1.1 no mailbox named \"bob\" here at example.test (ref 1.2)", "unknown_recipient" },     /* Postern */
	{ "550 sorry, no mailbox here by that name. (#5.1.1)", "unknown_recipient" },                       /* qmail */
	/* throttling, greylisting */
	{ "421 4.7.0 Too many connections; try again later", "throttled" },                                 /* Postern */
	{ "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", "throttled" }, /* Yahoo */
	{ "454 4.7.0 Too many failed logins from your address; try again after 10:15 UTC", "throttled" }, /* Postern before */
	{ "454-4.7.0 Too many failed logins as anna@example.test from your address: logging in to this account from here is "
	  "blocked until 10:15 UTC\n454 4.7.0 A device that uses this account has a wrong password saved", "throttled" }, /* Postern */
	{ "454-4.7.0 Logging in from your address is blocked until 10:15 UTC: there were failed logins to several different "
	  "accounts from it\n454 4.7.0 Your own password is not the problem", "throttled" },                   /* Postern */
	{ "-ERR [SYS/TEMP] Logging in from your address is blocked until 10:15 UTC: there were failed logins to several "
	  "different accounts from it - your own password is not the problem; try again after that time", "throttled" }, /* Postern POP3 */
	{ "450 4.2.0 <bob@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html", "greylisted" }, /* Postgrey */
	{ "451 4.7.1 Please try again later", "greylisted" },
	{ "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n450 4.2.1 prevents additional messages from being delivered.", "throttled" }, /* Gmail */
	/* spam and policy, sender authentication, rDNS, blocklists */
	{ "550 5.7.1 Message rejected as spam by Content Filtering.", "spam_or_policy" },                  /* Exchange */
	{ "554 5.7.1 The message was rejected because it contains prohibited virus or spam content", "spam_or_policy" }, /* Gmail */
	{ "550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users\n550 5.7.26 DMARC policy of the sender's domain", "dmarc_failed" }, /* Gmail: names DMARC */
	{ "550 5.7.23 The message was rejected because of Sender Policy Framework violation", "spf_failed" }, /* Office 365 */
	/* the big receivers' authentication refusals, as they word them (issue 11) */
	{ "550-5.7.26 This mail has been blocked because the sender is unauthenticated.\n550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.\n550 5.7.26 Authentication results: DKIM = did not pass SPF [example.org] with ip: [192.0.2.7] = did not pass - gsmtp", "sender_authentication_failed" }, /* Gmail */
	{ "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\n550-5.7.26 sender and Gmail users, and has been blocked. The sender must\n550 5.7.26 authenticate with at least one of SPF or DKIM.", "sender_authentication_failed" }, /* Gmail */
	{ "550 5.7.1 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. Please contact administrator of example.org domain if this was a legitimate mail. - gsmtp", "dmarc_failed" }, /* Gmail */
	{ "550-5.7.27 The sender's domain's SPF authentication did not pass. - gsmtp", "spf_failed" }, /* Gmail */
	{ "421-4.7.27 This mail has been rate limited because SPF does not pass. - gsmtp", "spf_failed" }, /* Gmail */
	{ "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", "throttled" }, /* Gmail */
	{ "550 5.7.515 Access denied, sending domain [EXAMPLE.ORG] does not meet the required authentication level.", "dmarc_failed" }, /* Outlook.com */
	{ "550 5.7.509 Access denied, sending domain [example.org] does not pass DMARC verification and has a DMARC policy of reject.", "dmarc_failed" }, /* Outlook.com */
	{ "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", "dmarc_failed" }, /* Yahoo */
	{ "421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "throttled" }, /* Yahoo */
	{ "550 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", "spam_or_policy" }, /* iCloud */
	{ "554 5.7.1 [HM08] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137", "spam_or_policy" }, /* iCloud */
	{ "550 5.7.1 Your message was rejected due to example.org DMARC policy.", "dmarc_failed" }, /* iCloud */
	{ "550-5.7.25 The IP address sending this message does not have a PTR record setup, or the\n550 5.7.25 corresponding forward DNS entry does not point to the sending IP.", "reverse_dns_missing" }, /* Gmail */
	{ "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.7]", "reverse_dns_missing" }, /* Postfix */
	{ "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org", "blocklisted" }, /* Postfix */
	{ "550 5.7.1 Service unavailable, Client host [192.0.2.7] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.7 (AS3130). [BN3NAM04FT012.eop-NAM04.prod.protection.outlook.com]", "blocklisted" }, /* Office 365 */
	{ "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.7, because the ip is in Spamhaus's list", "blocklisted" }, /* Yahoo */
	/* TLS and connection problems as mail programs report them */
	{ "error:0A00010B:SSL routines::wrong version number", "tls_mode_mismatch" },
	{ "554 5.7.0 mx.example.test No SMTP service in plaintext here: this port expects TLS from the first byte (RFC 8314)", "tls_mode_mismatch" }, /* Postern */
	{ "Connection to smtp.example.org port 25 timed out", "port_blocked" },
	/* the port-25 trap (smtp/wrong_port.c), as Postern words it */
	{ "502-5.5.1 AUTH is not offered on port 25: it is for mail from other mail servers\n502-5.5.1 Mail programs log in and send on this server's submission port: 465 with SSL/TLS, or 587 with STARTTLS\n502 5.5.1 In your mail program set the outgoing server (SMTP) to that port and security (ref 4.2.1)", "wrong_port" }, /* Postern */
	{ "554-5.7.1 <bob@example.org>: relaying denied: example.org is not a domain of this server, and this server only relays mail for clients that have logged in; you have not logged in\n554-5.7.1 Port 25 is for mail from other mail servers; mail programs send on this server's submission port: 465 with SSL/TLS, or 587 with STARTTLS\n554 5.7.1 In your mail program set the outgoing server (SMTP) to that port (ref 4.2.2)", "wrong_port" }, /* Postern */
	{ "SSL certificate problem: self-signed certificate", "certificate_untrusted" },
	{ "certificate verify failed: certificate has expired", "certificate_expired" },
	{ "hostname mismatch, certificate is not valid for 'mail.example.org'", "certificate_name_mismatch" },
	/* syntax, availability */
	{ "500 5.5.2 Error: command not recognized", "syntax_error" },                                       /* Postfix */
	{ "501 5.1.3 Bad recipient address syntax", "syntax_error" },                                        /* Postfix */
	{ "421 4.3.2 Service not available, closing transmission channel", "server_unavailable" },
	{ "451 4.3.0 Temporary failure: the message could not be stored", "server_unavailable" },          /* Postern */
	/* the server's own storage (issue 9) */
	{ "452 4.3.1 Insufficient system storage", "server_storage_full" },                                /* Postfix */
	{ "452-4.3.1 Insufficient system storage: this server is out of space for new mail and accepts none for now\n452 4.3.1 Nothing was accepted; your mail program will try again later (the server's administrator must free disk space) (ref 1.1)", "server_storage_full" }, /* Postern */
	{ "452-4.3.1 Insufficient system storage: this server ran out of space while storing the message\n452 4.3.1 Nothing was accepted (ref 3.4)", "server_storage_full" }, /* Postern */
	/* message content and harvesting (issue 9) */
	{ "550-5.6.0 Message refused: it contains bare LF line ends (a LF without a CR before it); SMTP requires CR LF (RFC 5321 section 2.3.8)\n550 5.6.0 The sending program must end every line with CR LF; this protects against SMTP smuggling (ref 1.2.3)", "message_format" }, /* Postern */
	{ "553 5.6.7 The address <j\xc3\xbcrgen@example.test> is not ASCII and MAIL FROM had no SMTPUTF8 parameter (ref 1.2.3)", "address_not_ascii" }, /* Postern */
	{ "454 4.7.0 Temporary authentication failure; try again in a few minutes (ref 1.2.3)", "server_unavailable" }, /* Postern */
	{ "550 5.6.0 Message refused: it contains NUL bytes (octet zero), which mail may not carry (RFC 5322 section 4.1, RFC 2045 section 2.8)", "syntax_error" }, /* Postern */
	{ "550 5.6.0 Message refused: line 4 is 100000 octets long, and the limit here is 10000 (the standard allows 998, RFC 5322 section 2.1.1)", "syntax_error" }, /* Postern */
	{ "550 5.6.0 Message refused: it has 2 From: header fields, and a message has exactly one (RFC 5322 section 3.6)", "syntax_error" }, /* Postern */
	{ "421-4.7.0 mx.example.test Too many unknown recipients (50) on one connection; closing it\n421 4.7.0 Check the recipient addresses (ref 1.2.60)", "unknown_recipient" }, /* Postern */
	{ "503 5.5.1 RCPT cannot come between the BDAT chunks of a message: its recipients were fixed by the first BDAT (RFC 3030)", "command_sequence" }, /* Postern */
	{ "452 4.2.2 Message not accepted: it is 50.2 KB, and the mailbox of alice@example.test has 40.0 KB left (60.0 KB of 100.0 KB used)", "mailbox_full" }, /* Postern, end of data */
};

static int setup(void **state)
{
	(void)state;
	char err[512];
	const char *path = POSTERN_SOURCE_DIR "/data/explain.ini";
	if (!explain_kb_load_file(&kb, path, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	explain_kb_free(&kb);
	return 0;
}

static void test_table(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct explain_result r;
		explain_match(kb, rows[i].text, strlen(rows[i].text), &r);
		if (strcmp(r.causes[0]->id, rows[i].cause) != 0) {
			fprintf(stderr, "row %zu: \"%.70s\": got %s, want %s\n", i, rows[i].text, r.causes[0]->id, rows[i].cause);
			bad++;
		}
	}
	assert_true(sizeof(rows) / sizeof(rows[0]) >= 40);
	assert_int_equal(bad, 0);
}

static void test_codes(void **state)
{
	(void)state;
	static const struct { const char *text; int code; const char *enh; } t[] = {
		{ "503 5.5.1 Error: valid RCPT command must precede DATA", 503, "5.5.1" },
		{ "The server responded: 554 5.7.1 <x@y>: Relay access denied", 554, "5.7.1" },
		{ "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'", 550, "5.1.1" },
		{ "535-5.7.8 Username and Password not accepted.\n535 5.7.8 more", 535, "5.7.8" },
		{ "could not connect to port 465 of smtp.example.org", 0, "" },
		{ "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", 553, "5.7.1" },
		{ "version 5.7.1.2 of something", 0, "" },
		{ "", 0, "" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int code;
		char enh[16];
		explain_parse_codes(t[i].text, strlen(t[i].text), &code, enh, sizeof(enh));
		assert_int_equal(code, t[i].code);
		assert_string_equal(enh, t[i].enh);
	}
}

static void test_unknown_is_honest(void **state)
{
	(void)state;
	struct explain_result r;
	const char *text = "the quick brown fox";
	explain_match(kb, text, strlen(text), &r);
	assert_false(r.known);
	assert_int_equal(r.n_causes, 1);
	assert_string_equal(r.causes[0]->id, "unknown");
	/* A bare 550 with no words we know: a meaning for the code, but no guessed cause. */
	text = "550 computer says no";
	explain_match(kb, text, strlen(text), &r);
	assert_false(r.known);
	assert_string_equal(r.causes[0]->id, "unknown");
	assert_non_null(strstr(r.meaning, "not taken"));
}

static void test_every_cause_described(void **state)
{
	(void)state;
	for (int i = 0; explain_cause_ids[i]; i++) {
		const struct explain_cause *c = explain_kb_cause(kb, explain_cause_ids[i]);
		assert_string_equal(c->id, explain_cause_ids[i]);
		assert_true(c->n_fixes >= 1);
		if (strcmp(c->id, "unknown") == 0)
			break;
	}
}

static void expect_load_error(const char *text, const char *want)
{
	struct explain_kb *k = NULL;
	char err[512] = "";
	assert_false(explain_kb_load_string(&k, text, "t.ini", err, sizeof(err)));
	assert_null(k);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_loader_errors(void **state)
{
	(void)state;
	expect_load_error("[rule a]\ncode = 550\ncauses = no_such_cause\n", "no_such_cause");
	expect_load_error("[cause bogus]\nwords = x\n", "t.ini:2");
	expect_load_error("[rule a]\nmeaning = x\n", "needs code");
	expect_load_error("[rule a]\ncode = 5500\nmeaning = x\n", "not like 550");
	expect_load_error("[rule a]\nregex = (\nmeaning = x\n", "bad regex");
	expect_load_error("[cause throttled]\nwords = a\nfix.x = c\nwords = b\n", "twice");
	expect_load_error("[cause throttled]\nwords = a ; b\n", "t.ini:2");
	char longline[400];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	memcpy(longline, "words = ", 8);
	char text[600];
	snprintf(text, sizeof(text), "[cause throttled]\n%s\n", longline);
	expect_load_error(text, "t.ini:2: line longer");
	expect_load_error("[rule a]\ncode = 550\ncauses = throttled\n", "no [cause] section");
}

/* Regexes whose automata grow with stacked quantifiers are refused at load, naming
 * the rule (fuzz_explain once ran out of memory in regcomp on one). */
static void test_regex_bounds(void **state)
{
	(void)state;
	static const char *const refused[] = {
		"((a*)*)*", "((((((a*)*)*)*)*)*)*", "a{1000}{1000}", "a{1000}", "a{50}{30}", "(a{40}){40}", "(a+)+(b*)*?",
		"((((((((((a))))))))))", "(x|(y|(z{50})){50})",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[cause throttled]\nwords = w\n[rule stacked]\nregex = %s\ncauses = throttled\n", refused[i]);
		struct explain_kb *k = NULL;
		char err[512] = "";
		if (explain_kb_load_string(&k, text, "t.ini", err, sizeof(err)) || !strstr(err, "[rule stacked]: regex too complex"))
			fail_msg("%s: loaded or wrong error \"%s\"", refused[i], err);
		assert_null(k);
	}
	char big[1200], text[1400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 100; i < sizeof(big) - 1; i += 100)
		big[i] = '|';
	/* a 1199-octet regex, written on continuation lines under inih's line limit */
	int o = snprintf(text, sizeof(text), "[cause throttled]\nwords = w\n[rule long]\nregex = a|\n");
	for (size_t i = 0; i < 12; i++)
		o += snprintf(text + o, sizeof(text) - (size_t)o, "  %.100s\n", big + i * 100);
	snprintf(text + o, sizeof(text) - (size_t)o, "causes = throttled\n");
	expect_load_error(text, "[rule long]: regex too complex");
	/* what the shipped rules use still loads: one quantifier over another, short
	 * intervals, brackets and escapes that look like quantifiers */
	static const char *const fine[] = {
		"(were )?(given|specified)", "exceed(s|ed)? (the |its )?", "[*+?{]+x", "a\\*\\{1000\\}", "x{2,5}y{3}", "((ab)+c)?",
		"[[:digit:]]{3}", "{", "a{", "a{x}",
	};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		snprintf(text, sizeof(text), "[cause throttled]\nwords = w\n[rule fine]\nregex = %s\ncauses = throttled\n", fine[i]);
		struct explain_kb *k = NULL;
		char err[512] = "";
		if (!explain_kb_load_string(&k, text, "t.ini", err, sizeof(err)) && strstr(err, "too complex"))
			fail_msg("%s refused: %s", fine[i], err);
		explain_kb_free(&k);
	}
}

static void test_continuation(void **state)
{
	(void)state;
	struct explain_kb *k = NULL;
	char err[256];
	const char *text = "[cause throttled]\nwords = one\n  two\nfix.a = first\n  fix\nfix.b = second\n"
		"[rule r]\nregex = abc|\n  def\ncauses = throttled\n";
	assert_true(explain_kb_load_string(&k, text, "t.ini", err, sizeof(err)));
	const struct explain_cause *c = explain_kb_cause(k, "throttled");
	assert_string_equal(c->words, "one two");
	assert_int_equal(c->n_fixes, 2);
	assert_string_equal(c->fixes[0], "first fix");
	struct explain_result r;
	explain_match(k, "xx DEF yy", 9, &r);
	assert_true(r.known);
	explain_kb_free(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_unknown_is_honest),
		cmocka_unit_test(test_every_cause_described),
		cmocka_unit_test(test_loader_errors),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_regex_bounds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
