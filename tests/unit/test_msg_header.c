/* test_msg_header.c - msg/header: From values as real clients write them, field
 * lookup in header blocks, and the limits (length, count, input bounds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/header.h"

#define WANT_MAX 4

/* Table: a field body, the status, and the addresses expected (in order). */
static const struct {
	const char *origin;
	const char *value;
	enum msg_status status;
	const char *want[WANT_MAX];
} from_table[] = {
	/* Outlook / Exchange */
	{ "outlook: last, first", "\"Doe, John\" <John.Doe@Example.COM>", MSG_OK, { "John.Doe@example.com" } },
	{ "outlook: plain name", "John Doe <jdoe@contoso.example>", MSG_OK, { "jdoe@contoso.example" } },
	{ "outlook: quoted apostrophes", "\"'Jane Roe'\" <jane.roe@contoso.example>", MSG_OK,
	  { "jane.roe@contoso.example" } },
	{ "outlook: bare apostrophes", "'Jane Roe' <jane.roe@contoso.example>", MSG_OK, { "jane.roe@contoso.example" } },
	{ "outlook: possessive", "Mark's email <m@example.test>", MSG_OK, { "m@example.test" } },
	{ "outlook: parens in quotes", "\"Smith, Anne (IT)\" <anne.smith@corp.example>", MSG_OK,
	  { "anne.smith@corp.example" } },
	{ "outlook: latin-1 Q word", "=?iso-8859-1?Q?Ren=E9_M=FCller?= <rene@firma.example>", MSG_OK,
	  { "rene@firma.example" } },
	{ "outlook: folded CRLF", "\"Doe, John\"\r\n <john@example.test>", MSG_OK, { "john@example.test" } },
	{ "outlook: raw UTF-8 name", "\"M\xc3\xbcller, J\xc3\xbcrgen\" <j.mueller@firma.example>", MSG_OK,
	  { "j.mueller@firma.example" } },
	{ "outlook: teams notice", "\"John Doe (via Teams)\" <noreply@email.teams.example>", MSG_OK,
	  { "noreply@email.teams.example" } },
	{ "outlook: email as name", "\"jdoe@contoso.example\" <jdoe@contoso.example>", MSG_OK,
	  { "jdoe@contoso.example" } },
	/* Thunderbird */
	{ "thunderbird: plain", "Jane Doe <jane@example.org>", MSG_OK, { "jane@example.org" } },
	{ "thunderbird: B word", "=?UTF-8?B?w4lsb2RpZQ==?= <e@example.test>", MSG_OK, { "e@example.test" } },
	{ "thunderbird: Q word", "=?UTF-8?Q?J=c3=a9r=c3=b4me_Dupont?= <jerome@example.fr>", MSG_OK,
	  { "jerome@example.fr" } },
	{ "thunderbird: escaped quotes", "\"Jane \\\"JD\\\" Doe\" <jd@example.org>", MSG_OK, { "jd@example.org" } },
	{ "thunderbird: mixed case", "Jane Doe <Jane.Doe@EXAMPLE.ORG>", MSG_OK, { "Jane.Doe@example.org" } },
	{ "thunderbird: two encoded words", "=?UTF-8?Q?Fran=c3=a7ois?= =?UTF-8?Q?_Pr=c3=a9vost?= <fp@example.fr>",
	  MSG_OK, { "fp@example.fr" } },
	/* Apple Mail */
	{ "apple: quoted", "\"John Appleseed\" <john@icloud.example>", MSG_OK, { "john@icloud.example" } },
	{ "apple: plain", "John Appleseed <john.appleseed@me.example>", MSG_OK, { "john.appleseed@me.example" } },
	{ "apple: raw UTF-8 atoms", "\xc3\x89lodie Br\xc3\xbbl\xc3\xa9 <elodie@example.fr>", MSG_OK,
	  { "elodie@example.fr" } },
	{ "apple: UTF-8 address", "\xe7\x94\xa8\xe6\x88\xb7 <\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.EXAMPLE>",
	  MSG_OK, { "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example" } },
	{ "apple: quoted B word", "\"=?utf-8?B?w4lsb2RpZQ==?=\" <e@example.test>", MSG_OK, { "e@example.test" } },
	/* Gmail / Google Groups */
	{ "gmail: plain", "Some Person <some.person@gmail.example>", MSG_OK, { "some.person@gmail.example" } },
	{ "gmail: at sign in name", "\"a@b\" <c@example.test>", MSG_OK, { "c@example.test" } },
	{ "gmail: plus tag", "John Doe <john+tag@gmail.example>", MSG_OK, { "john+tag@gmail.example" } },
	{ "groups: via list", "\"'John Doe' via Dev List\" <dev-list@googlegroups.example>", MSG_OK,
	  { "dev-list@googlegroups.example" } },
	{ "gmail: no space before angle", "\"Jane\"<jane@gmail.example>", MSG_OK, { "jane@gmail.example" } },
	/* Mailing lists */
	{ "mailman: DMARC rewrite", "John Doe via Mailman-Users <mailman-users@python.example>", MSG_OK,
	  { "mailman-users@python.example" } },
	{ "list: comment name", "jdoe@example.com (John Doe)", MSG_OK, { "jdoe@example.com" } },
	{ "list: nested comment", "jdoe@example.com (John Doe (the elder))", MSG_OK, { "jdoe@example.com" } },
	{ "sympa: by way of", "\"Jane Doe\" <jane@example.org> (by way of List <list@lists.example>)", MSG_OK,
	  { "jane@example.org" } },
	{ "list: obs-phrase", "John Q. Public <JQP@Public.Example>", MSG_OK, { "JQP@public.example" } },
	{ "rfc5322 A.1.2", "\"Joe Q. Public\" <john.q.public@example.com>", MSG_OK, { "john.q.public@example.com" } },
	{ "rfc5322 A.5 comments", "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", MSG_OK,
	  { "pete@silly.test" } },
	{ "rfc5322 A.1.3 group", "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", MSG_OK,
	  { "c@a.test", "joe@where.test", "jdoe@one.test" } },
	{ "rfc5322 A.6.1 obs", "Mary Smith <@node.test:mary@example.net>, , jdoe@test   . example", MSG_OK,
	  { "mary@example.net", "jdoe@test.example" } },
	{ "obs-route two hops", "<@a.example,@b.example:u@d.example>", MSG_OK, { "u@d.example" } },
	{ "obs-local-part", "a.\"b\".c@example.test", MSG_OK, { "a.b.c@example.test" } },
	{ "list: group", "Team: a@x.example, b@y.example;", MSG_OK, { "a@x.example", "b@y.example" } },
	{ "list: empty group", "undisclosed-recipients:;", MSG_EMPTY, { NULL } },
	{ "list: empty group then one", "undisclosed-recipients:;, a@example.test", MSG_OK, { "a@example.test" } },
	{ "list: angle then bare", "<a@example.test>, b@example.test", MSG_OK, { "a@example.test", "b@example.test" } },
	{ "list: two quoted commas", "\"Doe, John\" <john@example.test>, \"Roe, Jane\" <jane@example.test>", MSG_OK,
	  { "john@example.test", "jane@example.test" } },
	/* Scripts, daemons */
	{ "cron", "root@localhost (Cron Daemon)", MSG_OK, { "root@localhost" } },
	{ "bounce", "MAILER-DAEMON@mx.example (Mail Delivery System)", MSG_OK, { "MAILER-DAEMON@mx.example" } },
	{ "www-data", "www-data <www-data@web01.example>", MSG_OK, { "www-data@web01.example" } },
	{ "quoted user", "\"root\" <root@host.example>", MSG_OK, { "root@host.example" } },
	{ "angle only", "<noreply@github.example>", MSG_OK, { "noreply@github.example" } },
	{ "bare", "nobody@host.example", MSG_OK, { "nobody@host.example" } },
	{ "php B word", "=?UTF-8?B?8J+agCBSb2NrZXQ=?= <rocket@app.example>", MSG_OK, { "rocket@app.example" } },
	{ "jenkins tab fold", "\"Jenkins\"\r\n\t<jenkins@ci.example>", MSG_OK, { "jenkins@ci.example" } },
	{ "LF fold", "\"Build Bot\"\n <bot@ci.example>", MSG_OK, { "bot@ci.example" } },
	{ "fold inside quotes", "\"Build\r\n Bot\" <bot@ci.example>", MSG_OK, { "bot@ci.example" } },
	{ "domain literal", "postmaster@[192.0.2.1]", MSG_OK, { "postmaster@[192.0.2.1]" } },
	{ "IPv6 literal kept", "root@[IPv6:2001:DB8::1]", MSG_OK, { "root@[IPv6:2001:DB8::1]" } },
	{ "quoted local part", "\"john doe\"@example.test", MSG_OK, { "john doe@example.test" } },
	{ "tab in quoted local part", "\"a\tb\"@example.test", MSG_OK, { "a\tb@example.test" } },
	{ "quoted local with @", "\"a@b\"@Example.Test", MSG_OK, { "a@b@example.test" } },
	{ "trailing comment after angle", "John Doe <john@example.test> (Work)", MSG_OK, { "john@example.test" } },
	{ "specials in quoted name", "\"Weird; name: <x@y>\" <real@example.test>", MSG_OK, { "real@example.test" } },
	{ "group without ;", "Team:a@x.example,b@y.example", MSG_OK, { "a@x.example", "b@y.example" } },
	{ "dotted Q word", "=?utf-8?q?J._Doe?= <j@example.test>", MSG_OK, { "j@example.test" } },
	{ "escaped paren in comment", "a@example.test (a \\( b)", MSG_OK, { "a@example.test" } },
	{ "empty elements", ", , a@example.test,", MSG_OK, { "a@example.test" } },
	{ "comments between", "a@example.test (first), (second) b@example.test", MSG_OK,
	  { "a@example.test", "b@example.test" } },
	{ "CFWS around @ and dots", "john . doe (x) @ (y) example . test", MSG_OK, { "john.doe@example.test" } },
	{ "trailing line end", "a@example.test\r\n", MSG_OK, { "a@example.test" } },
	/* Empty */
	{ "empty", "", MSG_EMPTY, { NULL } },
	{ "blank", "   \t ", MSG_EMPTY, { NULL } },
	{ "comment only", "(none)", MSG_EMPTY, { NULL } },
	{ "commas only", " , ,", MSG_EMPTY, { NULL } },
	/* Syntax errors */
	{ "no @", "root (Cron Daemon)", MSG_SYNTAX, { NULL } },
	{ "name only", "John Doe", MSG_SYNTAX, { NULL } },
	{ "unquoted comma", "Doe, John <john@example.test>", MSG_SYNTAX, { NULL } },
	{ "unclosed angle", "John Doe <john@example.test", MSG_SYNTAX, { NULL } },
	{ "unclosed quote", "\"unterminated <a@example.test>", MSG_SYNTAX, { NULL } },
	{ "unclosed comment", "a@example.test (unterminated", MSG_SYNTAX, { NULL } },
	{ "unclosed nested comment", "a@example.test (a (b) c", MSG_SYNTAX, { NULL } },
	{ "empty angle", "<>", MSG_SYNTAX, { NULL } },
	{ "two @", "a@b@example.test", MSG_SYNTAX, { NULL } },
	{ "trailing dot", "a@example.test.", MSG_SYNTAX, { NULL } },
	{ "double dot", "a..b@example.test", MSG_SYNTAX, { NULL } },
	{ "empty domain", "a@", MSG_SYNTAX, { NULL } },
	{ "unfolded line end", "a@example.test\r\nBcc: x@example.test", MSG_SYNTAX, { NULL } },
	{ "lone CR", "a@example.test\r b@example.test", MSG_SYNTAX, { NULL } },
	{ "unquoted @ in name", "john@example.test <john@example.test>", MSG_SYNTAX, { NULL } },
	{ "empty local part", "\"\"@example.test", MSG_SYNTAX, { NULL } },
	{ "nested group", "A: B: c@d.test;;", MSG_SYNTAX, { NULL } },
	{ "control in quotes", "\"a\x01" "b\"@x.test", MSG_SYNTAX, { NULL } },
	{ "text after angle", "John <john@example.test> Doe", MSG_SYNTAX, { NULL } },
	{ "bracket local part", "[john]@example.test", MSG_SYNTAX, { NULL } },
	{ "missing comma", "a@example.test b@example.test", MSG_SYNTAX, { NULL } },
	{ "route without colon", "<@a.example u@d.example>", MSG_SYNTAX, { NULL } },
	{ "backslash at end", "a@example.test (x \\", MSG_SYNTAX, { NULL } },
	{ "stray close paren", "a@example.test )", MSG_SYNTAX, { NULL } },
	{ "@ in domain literal", "a@[x@y]", MSG_SYNTAX, { NULL } },
	{ "valid then broken", "a@example.test, \"b", MSG_SYNTAX, { NULL } },
};

static void test_from_table(void **state)
{
	(void)state;
	size_t rows = sizeof(from_table) / sizeof(from_table[0]);
	assert_true(rows >= 40);
	for (size_t i = 0; i < rows; i++) {
		struct msg_address_list l;
		const char *v = from_table[i].value;
		enum msg_status st = msg_parse_address_list(v, strlen(v), &l);
		if (st != from_table[i].status)
			fail_msg("row %zu (%s): status %d, want %d", i, from_table[i].origin, st, from_table[i].status);
		size_t want_n = 0;
		while (want_n < WANT_MAX && from_table[i].want[want_n])
			want_n++;
		if (l.n != want_n)
			fail_msg("row %zu (%s): %zu mailboxes, want %zu", i, from_table[i].origin, l.n, want_n);
		for (size_t k = 0; k < want_n; k++)
			if (strcmp(l.mailboxes[k].addr, from_table[i].want[k]) != 0)
				fail_msg("row %zu (%s): [%zu] \"%s\", want \"%s\"", i, from_table[i].origin, k,
					l.mailboxes[k].addr, from_table[i].want[k]);
		assert_false(l.truncated);
	}
}

/* Table: a header block, a name; found or not, the body, the count. */
static const struct {
	const char *headers;
	const char *name;
	bool found;
	const char *value;
	size_t count;
} find_table[] = {
	{ "From: a@x.example\r\nTo: b@y.example\r\n\r\n", "From", true, "a@x.example", 1 },
	{ "From: a@x.example\nTo: b@y.example\n\n", "To", true, "b@y.example", 1 },
	{ "from: a@x.example\r\n", "FROM", true, "a@x.example", 1 },
	{ "FROM:a@x.example", "From", true, "a@x.example", 1 },
	{ "From-X: a\r\nX-From: b\r\n", "From", false, NULL, 0 },
	{ "Fro: a\r\nFromage: b\r\n", "From", false, NULL, 0 },
	{ "Subject: hi\r\n From: no@x.example\r\n", "From", false, NULL, 0 },
	{ "Subject: hi\n\tFrom: no@x.example\nFrom: yes@x.example\n", "From", true, "yes@x.example", 1 },
	{ "From: a\r\n b\r\n\tc\r\nTo: d\r\n", "From", true, "a\r\n b\r\n\tc", 1 },
	{ "From: a\n b\nTo: d\n", "From", true, "a\n b", 1 },
	{ "From:\r\n a@x.example\r\n", "From", true, "a@x.example", 1 },
	{ "From : a@x.example\r\n", "From", true, "a@x.example", 1 },
	{ "From\t: a@x.example\r\n", "From", true, "a@x.example", 1 },
	{ "To: a\r\n\r\nFrom: b\r\n", "From", false, NULL, 0 },
	{ "To: a\n\nFrom: b\n", "From", false, NULL, 0 },
	{ "From: a\r\nFrom: b\r\n", "From", true, "a", 2 },
	{ "From: a\nTo: c\nfrom: b\nFROM: d\n", "From", true, "a", 3 },
	{ "  From: a\r\n", "From", false, NULL, 0 },
	{ "From: \r\nTo: x\r\n", "From", true, "", 1 },
	{ "From:", "From", true, "", 1 },
	{ "From", "From", false, NULL, 0 },
	{ "From: a\r", "From", true, "a", 1 },
	{ "X: y\nFrom:   spaced  \n", "From", true, "spaced  ", 1 },
	{ "", "From", false, NULL, 0 },
	{ "\r\nFrom: a", "From", false, NULL, 0 },
	{ "Received: from x\r\n\tby y; From: z\r\nFrom: real\r\n", "From", true, "real", 1 },
	{ "Subject: From: no\r\nFrom: yes\r\n", "From", true, "yes", 1 },
	{ "From: a\r\n", "", false, NULL, 0 },
	{ "From a@x Mon Jan  1 00:00:00 2024\nFrom: b\n", "From", true, "b", 1 },
};

static void test_find_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(find_table) / sizeof(find_table[0]); i++) {
		const char *h = find_table[i].headers;
		const char *v = NULL;
		size_t vl = 0;
		bool found = msg_header_find(h, strlen(h), find_table[i].name, &v, &vl);
		if (found != find_table[i].found)
			fail_msg("row %zu: found=%d", i, found);
		if (found) {
			assert_true(v >= h && v + vl <= h + strlen(h));
			if (vl != strlen(find_table[i].value) || memcmp(v, find_table[i].value, vl) != 0)
				fail_msg("row %zu: value \"%.*s\"", i, (int)vl, v);
		}
		size_t n = msg_header_count(h, strlen(h), find_table[i].name);
		if (n != find_table[i].count)
			fail_msg("row %zu: count %zu, want %zu", i, n, find_table[i].count);
	}
}

/* The streaming scanner agrees with find and count on every row of the table, fed
 * whole, byte by byte and in odd pieces (names of rows with an empty name excepted). */
static void test_field_scan_table(void **state)
{
	(void)state;
	static const size_t pieces[] = { 0, 1, 2, 3, 7 };
	for (size_t i = 0; i < sizeof(find_table) / sizeof(find_table[0]); i++) {
		if (!find_table[i].name[0])
			continue;
		const char *h = find_table[i].headers;
		size_t len = strlen(h);
		for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
			static struct msg_field_scan sc;
			msg_field_scan_init(&sc, find_table[i].name);
			for (size_t p = 0; p < len;) {
				size_t n = pieces[k] && len - p > pieces[k] ? pieces[k] : len - p;
				msg_field_scan_feed(&sc, h + p, n);
				p += n;
			}
			if (sc.count != find_table[i].count)
				fail_msg("row %zu, pieces of %zu: count %zu", i, pieces[k], sc.count);
			const char *v;
			size_t vl;
			bool found = msg_field_scan_value(&sc, &v, &vl);
			if (found != find_table[i].found)
				fail_msg("row %zu, pieces of %zu: found=%d", i, pieces[k], found);
			if (found && (vl != strlen(find_table[i].value) || memcmp(v, find_table[i].value, vl) != 0))
				fail_msg("row %zu, pieces of %zu: value \"%.*s\"", i, pieces[k], (int)vl, v);
		}
	}
}

static void scan_str(struct msg_field_scan *sc, const char *t)
{
	msg_field_scan_feed(sc, t, strlen(t));
}

/* However long the header, every From: is seen: a second one after 100 KB of other
 * fields is counted, and a first one that long is kept only up to the bound. */
static void test_field_scan_long_header(void **state)
{
	(void)state;
	static struct msg_field_scan sc;
	msg_field_scan_init(&sc, "From");
	scan_str(&sc, "From: <alice@example.test>\r\n");
	for (int i = 0; i < 2000; i++)
		scan_str(&sc, "X-Filler: 0123456789012345678901234567890123456789\r\n");
	scan_str(&sc, "FROM : <bob@example.test>\r\n\r\nFrom: body\r\n");
	assert_int_equal(sc.count, 2);
	assert_true(sc.done);
	const char *v;
	size_t vl;
	assert_true(msg_field_scan_value(&sc, &v, &vl));
	assert_int_equal(vl, strlen("<alice@example.test>"));
	assert_memory_equal(v, "<alice@example.test>", vl);

	msg_field_scan_init(&sc, "From");
	scan_str(&sc, "From: a@example.test");
	for (int i = 0; i < 2000; i++)
		scan_str(&sc, ",\r\n b@example.test");
	scan_str(&sc, "\r\n\r\n");
	assert_int_equal(sc.count, 1);
	assert_true(sc.value_truncated);
	assert_int_equal(sc.value_len, MSG_FIELD_VALUE_MAX);
}

/* A whole header block from a client, found then parsed. */
static void test_find_then_parse(void **state)
{
	(void)state;
	static const char block[] =
		"Received: from mail.contoso.example (mail.contoso.example [192.0.2.7])\r\n"
		"\tby mx.example.test with ESMTPS id 4Xyz; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
		"From: \"Doe, John\"\r\n"
		"\t<John.Doe@Contoso.Example>\r\n"
		"To: Team: a@x.example, b@y.example;\r\n"
		"Subject: =?utf-8?Q?R=C3=A9union?=\r\n"
		"\r\n"
		"From: body@evil.example\r\n";
	const char *v;
	size_t vl;
	assert_true(msg_header_find(block, sizeof(block) - 1, "from", &v, &vl));
	assert_int_equal(msg_header_count(block, sizeof(block) - 1, "From"), 1);
	struct msg_address_list l;
	assert_int_equal(msg_parse_address_list(v, vl, &l), MSG_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.mailboxes[0].addr, "John.Doe@contoso.example");
	assert_true(msg_header_find(block, sizeof(block) - 1, "To", &v, &vl));
	assert_int_equal(msg_parse_address_list(v, vl, &l), MSG_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.mailboxes[1].addr, "b@y.example");
	/* every From: field in turn (DMARC, RFC 7489 §6.6.1); none in the body */
	static const char two[] = "From: a@one.example\r\nTo: t@x.example\r\nfrom:\r\n b@two.example\r\n\r\nFrom: c@body.example\r\n";
	assert_true(msg_header_find_nth(two, sizeof(two) - 1, "From", 0, &v, &vl));
	assert_memory_equal(v, "a@one.example", vl);
	assert_true(msg_header_find_nth(two, sizeof(two) - 1, "From", 1, &v, &vl));
	assert_memory_equal(v, "b@two.example", vl);
	assert_false(msg_header_find_nth(two, sizeof(two) - 1, "From", 2, &v, &vl));
}

/* Inputs are not NUL-terminated: bytes past len must not be looked at. */
static void test_length_bounds(void **state)
{
	(void)state;
	static const char v[] = "a@example.test, b@example.test";
	struct msg_address_list l;
	assert_int_equal(msg_parse_address_list(v, 14, &l), MSG_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.mailboxes[0].addr, "a@example.test");
	assert_int_equal(msg_parse_address_list(v, 13, &l), MSG_OK);   /* "a@example.tes" */
	assert_string_equal(l.mailboxes[0].addr, "a@example.tes");
	assert_int_equal(msg_parse_address_list(v, 2, &l), MSG_SYNTAX); /* "a@" */
	assert_int_equal(msg_parse_address_list(NULL, 0, &l), MSG_EMPTY);
	/* Exact-size heap copies: ASan would flag any read past len. */
	static const char *cuts[] = { "\"abc", "(abc", "a@[1.2", "a@b (\\", "x\r", "<@a", "A:" };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t n = strlen(cuts[i]);
		char *p = malloc(n);
		assert_non_null(p);
		memcpy(p, cuts[i], n);
		msg_parse_address_list(p, n, &l);
		const char *fv;
		size_t fl;
		msg_header_find(p, n, "A", &fv, &fl);
		free(p);
	}
	static const char h[] = "From: a\r\nTo: b";
	const char *fv;
	size_t fl;
	assert_false(msg_header_find(h, 8, "To", &fv, &fl));
	assert_true(msg_header_find(h, 8, "From", &fv, &fl));
	assert_int_equal(fl, 1);
}

static void make_addr(char *buf, size_t local_len, const char *domain)
{
	memset(buf, 'x', local_len);
	buf[local_len] = '@';
	strcpy(buf + local_len + 1, domain);
}

static void test_too_long(void **state)
{
	(void)state;
	char buf[600];
	struct msg_address_list l;
	/* "@example.test" is 13 bytes: a local part of 307 makes exactly 320. */
	make_addr(buf, MSG_ADDR_MAX - 13, "example.test");
	assert_int_equal(strlen(buf), MSG_ADDR_MAX);
	assert_int_equal(msg_parse_address_list(buf, strlen(buf), &l), MSG_OK);
	assert_int_equal(strlen(l.mailboxes[0].addr), MSG_ADDR_MAX);
	make_addr(buf, MSG_ADDR_MAX - 12, "example.test");
	assert_int_equal(msg_parse_address_list(buf, strlen(buf), &l), MSG_TOO_LONG);
	assert_int_equal(l.n, 0);
	/* Quotes do not count: the unquoted form is what must fit. */
	char q[600];
	snprintf(q, sizeof(q), "Name <\"%.*s\"@example.test>", MSG_ADDR_MAX - 13, buf);
	assert_int_equal(msg_parse_address_list(q, strlen(q), &l), MSG_OK);
	/* A long display name is no problem. */
	char name[2000];
	memset(name, 'n', 1500);
	strcpy(name + 1500, " <a@example.test>");
	assert_int_equal(msg_parse_address_list(name, strlen(name), &l), MSG_OK);
	/* Too long but malformed: the grammar error is reported. */
	make_addr(buf, 500, "");
	assert_int_equal(msg_parse_address_list(buf, strlen(buf), &l), MSG_SYNTAX);
}

static void test_truncated(void **state)
{
	(void)state;
	char v[4096];
	size_t o = 0;
	for (int i = 0; i < MSG_MAX_MAILBOXES + 8; i++)
		o += (size_t)snprintf(v + o, sizeof(v) - o, "%su%d@example.test", i ? ", " : "", i);
	struct msg_address_list l;
	assert_int_equal(msg_parse_address_list(v, o, &l), MSG_OK);
	assert_int_equal(l.n, MSG_MAX_MAILBOXES);
	assert_true(l.truncated);
	assert_string_equal(l.mailboxes[0].addr, "u0@example.test");
	assert_string_equal(l.mailboxes[MSG_MAX_MAILBOXES - 1].addr, "u31@example.test");
	/* Exactly the maximum is not truncated. */
	o = 0;
	for (int i = 0; i < MSG_MAX_MAILBOXES; i++)
		o += (size_t)snprintf(v + o, sizeof(v) - o, "%su%d@example.test", i ? ", " : "", i);
	assert_int_equal(msg_parse_address_list(v, o, &l), MSG_OK);
	assert_int_equal(l.n, MSG_MAX_MAILBOXES);
	assert_false(l.truncated);
	/* A syntax error after the limit still fails the whole value. */
	o = 0;
	for (int i = 0; i < MSG_MAX_MAILBOXES + 2; i++)
		o += (size_t)snprintf(v + o, sizeof(v) - o, "u%d@example.test, ", i);
	o += (size_t)snprintf(v + o, sizeof(v) - o, "broken");
	assert_int_equal(msg_parse_address_list(v, o, &l), MSG_SYNTAX);
	assert_int_equal(l.n, 0);
	assert_false(l.truncated);
}

/* Deep comment nesting is counted, not recursed; long inputs stay linear. */
static void test_deep_and_long(void **state)
{
	(void)state;
	enum { DEPTH = 100000 };
	char *v = malloc(2 * DEPTH + 32);
	assert_non_null(v);
	size_t o = 0;
	memcpy(v, "a@example.test ", 15);
	o = 15;
	memset(v + o, '(', DEPTH);
	o += DEPTH;
	memset(v + o, ')', DEPTH);
	o += DEPTH;
	struct msg_address_list l;
	assert_int_equal(msg_parse_address_list(v, o, &l), MSG_OK);
	assert_int_equal(msg_parse_address_list(v, o - 1, &l), MSG_SYNTAX);
	/* Many words of a display name. */
	o = 0;
	while (o + 2 < 2 * DEPTH) {
		v[o++] = 'w';
		v[o++] = ' ';
	}
	memcpy(v + o, "<a@b.example>", 13);
	o += 13;
	assert_int_equal(msg_parse_address_list(v, o, &l), MSG_OK);
	assert_string_equal(l.mailboxes[0].addr, "a@b.example");
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_table),
		cmocka_unit_test(test_find_table),
		cmocka_unit_test(test_find_then_parse),
		cmocka_unit_test(test_field_scan_table),
		cmocka_unit_test(test_field_scan_long_header),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_deep_and_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
