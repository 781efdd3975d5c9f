/* test_uidlist.c - Dovecot's dovecot-uidlist and dovecot-keywords read as Dovecot
 * writes them (version 3 and 1, stale N, unknown extensions kept, bad lines
 * skipped), written back in version 3; modified UTF-7 folder names (RFC 3501
 * §5.1.3) both ways and folder paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/folder.h"
#include "store/uidlist.h"

static void parse_text(const char *text, struct uidlist *ul, size_t *bad)
{
	assert_true(uidlist_parse(text, strlen(text), ul, bad));
}

static void test_v3_as_dovecot_writes(void **state)
{
	(void)state;
	struct uidlist ul;
	size_t bad;
	/* Dovecot 2.3 leaves N stale while it appends records. */
	parse_text("3 V1796148316 N1 G44e211085c0c0f6b2534000083ecc375\n"
		   "1 :1700000000.M1P1.host,S=20\n"
		   "2 W22 S20 :1700000001.M1P1.host,S=20\n"
		   "5 G0123456789abcdef0123456789abcdef :1700000005.M1P1.host\n", &ul, &bad);
	assert_int_equal(bad, 0);
	assert_int_equal(ul.version, 3);
	assert_int_equal(ul.uidvalidity, 1796148316u);
	assert_int_equal(ul.nextuid, 6);
	assert_string_equal(ul.guid, "44e211085c0c0f6b2534000083ecc375");
	assert_int_equal(ul.n, 3);
	assert_string_equal(ul.recs[0].name, "1700000000.M1P1.host,S=20");
	assert_null(ul.recs[0].ext);
	assert_int_equal(ul.recs[1].vsize, 22);
	assert_int_equal(ul.recs[1].psize, 20);
	assert_string_equal(ul.recs[1].ext, "W22 S20");
	assert_int_equal(ul.recs[2].uid, 5);
	/* Written back: the same records, N now right, extensions kept. */
	size_t len;
	char *text = uidlist_format(&ul, &len);
	assert_non_null(text);
	assert_string_equal(text, "3 V1796148316 N6 G44e211085c0c0f6b2534000083ecc375\n"
				  "1 :1700000000.M1P1.host,S=20\n"
				  "2 W22 S20 :1700000001.M1P1.host,S=20\n"
				  "5 G0123456789abcdef0123456789abcdef :1700000005.M1P1.host\n");
	free(text);
	uidlist_free(&ul);
}

static void test_tolerant(void **state)
{
	(void)state;
	struct uidlist ul;
	size_t bad;
	parse_text("3 V7 N10 Gabc X1 Yzz\n"
		   "garbage\n"
		   "0 :zero-uid\n"
		   "3 :three\n"
		   "2 :descending-dropped\n"
		   "4 :\n"
		   "4 no-colon\n"
		   "6 :a/slash\n"
		   "\n"
		   "8 :eight", &ul, &bad);
	assert_int_equal(bad, 6);
	assert_int_equal(ul.n, 2);
	assert_int_equal(ul.recs[0].uid, 3);
	assert_int_equal(ul.recs[1].uid, 8);
	assert_string_equal(ul.recs[1].name, "eight");
	assert_int_equal(ul.nextuid, 10);
	assert_string_equal(ul.guid, "");            /* not 32 hex: dropped, made anew on write */
	assert_string_equal(ul.hdr_ext, "X1 Yzz");
	uidlist_free(&ul);
	assert_false(uidlist_parse("", 0, &ul, NULL));
	assert_false(uidlist_parse("2 V1 N1\n", 8, &ul, NULL));
	assert_false(uidlist_parse("3 N5\n", 5, &ul, NULL));   /* no UIDVALIDITY */
}

static void test_v1(void **state)
{
	(void)state;
	struct uidlist ul;
	parse_text("1 1234 3\n1 first:2,S\n2 second\n", &ul, NULL);
	assert_int_equal(ul.version, 1);
	assert_int_equal(ul.uidvalidity, 1234);
	assert_int_equal(ul.nextuid, 3);
	assert_int_equal(ul.n, 2);
	assert_string_equal(ul.recs[0].name, "first:2,S");
	uidlist_free(&ul);
}

static void test_keywords(void **state)
{
	(void)state;
	struct keywords kw;
	const char *t = "0 kwone\n1 $Label1\n30 toobig\n1 dup-index\n2 KWONE\n3 bad(name\nx y\n25 last";
	keywords_parse(t, strlen(t), &kw);
	assert_string_equal(kw.names[0], "kwone");
	assert_string_equal(kw.names[1], "$Label1");
	assert_null(kw.names[2]);                    /* the same name twice (any case) */
	assert_null(kw.names[3]);
	assert_string_equal(kw.names[25], "last");
	size_t len;
	char *out = keywords_format(&kw, &len);
	assert_string_equal(out, "0 kwone\n1 $Label1\n25 last\n");
	free(out);
	keywords_free(&kw);
	assert_true(keywords_valid_name("$Forwarded"));
	assert_false(keywords_valid_name("\\Seen"));
	assert_false(keywords_valid_name("a b"));
	assert_false(keywords_valid_name(""));
}

static void test_mutf7(void **state)
{
	(void)state;
	static const struct { const char *utf8, *mutf7; } cases[] = {
		{ "INBOX", "INBOX" },
		{ "Entw\xc3\xbc" "rfe", "Entw&APw-rfe" },
		{ "&", "&-" },
		{ "A&B", "A&-B" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },          /* RFC 3501's example */
		{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
		{ "\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail" },                      /* a surrogate pair */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		assert_true(folder_mutf7_encode(cases[i].utf8, out, sizeof(out)));
		assert_string_equal(out, cases[i].mutf7);
		assert_true(folder_mutf7_decode(cases[i].mutf7, out, sizeof(out)));
		assert_string_equal(out, cases[i].utf8);
	}
	char out[64];
	assert_false(folder_mutf7_decode("&AGE-", out, sizeof(out)));   /* encoded ASCII "a" */
	assert_false(folder_mutf7_decode("&APw", out, sizeof(out)));    /* unterminated */
	assert_false(folder_mutf7_decode("&2D3-", out, sizeof(out)));   /* lone surrogate */
	assert_false(folder_mutf7_decode("\xc3\xbc", out, sizeof(out)));
	assert_false(folder_mutf7_encode("\xc3", out, sizeof(out)));    /* cut UTF-8 */
	assert_false(folder_mutf7_encode("\xed\xa0\x80", out, sizeof(out)));
}

static void test_paths(void **state)
{
	(void)state;
	char p[256];
	assert_true(folder_path("/m", "INBOX", p, sizeof(p)));
	assert_string_equal(p, "/m");
	assert_true(folder_path("/m", "inbox", p, sizeof(p)));
	assert_string_equal(p, "/m");
	assert_true(folder_path("/m", "Sent", p, sizeof(p)));
	assert_string_equal(p, "/m/.Sent");
	assert_true(folder_path("/m", "A/B", p, sizeof(p)));
	assert_string_equal(p, "/m/.A.B");
	assert_true(folder_path("/m", "Entw\xc3\xbc" "rfe/x", p, sizeof(p)));
	assert_string_equal(p, "/m/.Entw&APw-rfe.x");
	const char *bad[] = { "", "/a", "a/", "a//b", "a.b", "..", "a*", "a%", "a\nb" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(folder_path("/m", bad[i], p, sizeof(p)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v3_as_dovecot_writes),
		cmocka_unit_test(test_tolerant),
		cmocka_unit_test(test_v1),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
