/* test_address.c - MAIL FROM / RCPT TO paths and parameters, as one big table,
 * plus smtp_path_format round trips and the length limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"

enum mode { MAIL, RCPT };

/* flags */
#define NUL_ 1u     /* null path */
#define PM 2u       /* bare postmaster */
#define SR 4u       /* source route */
#define U8 8u       /* utf8 */
#define LIT 16u     /* domain literal */

struct row {
	enum mode mode;
	const char *arg;
	enum smtp_addr_status st;
	const char *local;      /* NULL: don't check (failures) */
	const char *domain;
	unsigned flags;
	const char *formatted;  /* smtp_path_format, NULL: don't check */
	/* MAIL parameters */
	bool size_set;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	bool auth_set;
};

#define OK_M(arg, l, d, f, fmt) { MAIL, arg, ADDR_OK, l, d, f, fmt, false, 0, BODY_7BIT, false, false }
#define OK_R(arg, l, d, f, fmt) { RCPT, arg, ADDR_OK, l, d, f, fmt, false, 0, BODY_7BIT, false, false }
#define BAD_M(arg, st) { MAIL, arg, st, NULL, NULL, 0, NULL, false, 0, BODY_7BIT, false, false }
#define BAD_R(arg, st) { RCPT, arg, st, NULL, NULL, 0, NULL, false, 0, BODY_7BIT, false, false }
#define PRM(arg, size_set, size, body, utf8, auth) { MAIL, arg, ADDR_OK, "a", "b.example", 0, "a@b.example", size_set, size, body, utf8, auth }

static const struct row table[] = {
	/* --- valid paths --- */
	OK_M("FROM:<a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_R("TO:<a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_M("from:<a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_R("to:<a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_M("FROM: <a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_R("TO:   <a@b.example>", "a", "b.example", 0, "a@b.example"),
	OK_M("FROM:a@b.example", "a", "b.example", 0, "a@b.example"),
	OK_R("TO:a@b.example", "a", "b.example", 0, "a@b.example"),
	OK_M("FROM:<First.Last+tag@Sub.B.EXAMPLE>", "First.Last+tag", "sub.b.example", 0, "First.Last+tag@sub.b.example"),
	OK_R("TO:<a!#$%&'*+-/=?^_`{|}~@b.example>", "a!#$%&'*+-/=?^_`{|}~", "b.example", 0, "a!#$%&'*+-/=?^_`{|}~@b.example"),
	OK_R("TO:<a@b-c.example>", "a", "b-c.example", 0, "a@b-c.example"),
	OK_R("TO:<a@1.2.3.example>", "a", "1.2.3.example", 0, "a@1.2.3.example"),
	OK_R("TO:<a@localhost>", "a", "localhost", 0, "a@localhost"),
	/* quoted local parts */
	OK_R("TO:<\"a b\"@x.example>", "a b", "x.example", 0, "\"a b\"@x.example"),
	OK_R("TO:<\"a\\\"b\"@x.example>", "a\"b", "x.example", 0, "\"a\\\"b\"@x.example"),
	OK_R("TO:<\"a\\\\b\"@x.example>", "a\\b", "x.example", 0, "\"a\\\\b\"@x.example"),
	OK_R("TO:<\"a\\bc\"@x.example>", "abc", "x.example", 0, "abc@x.example"),
	OK_R("TO:<\"abc\"@x.example>", "abc", "x.example", 0, "abc@x.example"),
	OK_R("TO:<\"a..b\"@x.example>", "a..b", "x.example", 0, "\"a..b\"@x.example"),
	OK_R("TO:<\".a\"@x.example>", ".a", "x.example", 0, "\".a\"@x.example"),
	OK_R("TO:<\"a.\"@x.example>", "a.", "x.example", 0, "\"a.\"@x.example"),
	OK_R("TO:<\"a@b\"@x.example>", "a@b", "x.example", 0, "\"a@b\"@x.example"),
	OK_R("TO:<\"<>\"@x.example>", "<>", "x.example", 0, "\"<>\"@x.example"),
	/* UTF-8 */
	{ MAIL, "FROM:<j\xc3\xb6rg@b\xc3\xbc.example> SMTPUTF8", ADDR_OK, "j\xc3\xb6rg", "b\xc3\xbc.example", U8,
	  "j\xc3\xb6rg@b\xc3\xbc.example", false, 0, BODY_7BIT, true, false },
	OK_R("TO:<j\xc3\xb6rg@x.example>", "j\xc3\xb6rg", "x.example", U8, "j\xc3\xb6rg@x.example"),
	OK_R("TO:<a@\xe4\xbe\x8b.example>", "a", "\xe4\xbe\x8b.example", U8, "a@\xe4\xbe\x8b.example"),
	OK_R("TO:<\"\xc3\xa9 x\"@x.example>", "\xc3\xa9 x", "x.example", U8, "\"\xc3\xa9 x\"@x.example"),
	/* postmaster and null */
	OK_R("TO:<postmaster>", "postmaster", "", PM, "postmaster"),
	OK_R("TO:<PostMaster>", "PostMaster", "", PM, "postmaster"),
	OK_R("TO:postmaster", "postmaster", "", PM, "postmaster"),
	OK_R("TO:<postmaster@b.example>", "postmaster", "b.example", 0, "postmaster@b.example"),
	BAD_M("FROM:<postmaster>", ADDR_SYNTAX),
	BAD_R("TO:<postmaste>", ADDR_SYNTAX),
	BAD_R("TO:<postmasterx>", ADDR_SYNTAX),
	BAD_R("TO:<@a.example:postmaster>", ADDR_SYNTAX),
	OK_M("FROM:<>", "", "", NUL_, ""),
	OK_M("FROM: <>", "", "", NUL_, ""),
	BAD_R("TO:<>", ADDR_NULL_RCPT),
	BAD_R("TO: <>", ADDR_NULL_RCPT),
	/* source routes */
	OK_R("TO:<@a.example,@b.example:u@c.example>", "u", "c.example", SR, "u@c.example"),
	OK_M("FROM:<@a.example:u@c.example>", "u", "c.example", SR, "u@c.example"),
	OK_R("TO:<@[192.0.2.1]:u@c.example>", "u", "c.example", SR, "u@c.example"),
	BAD_R("TO:<@a.example u@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<@a.example,u@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<@:u@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<@a..example:u@c.example>", ADDR_SYNTAX),
	/* domain literals */
	OK_R("TO:<a@[192.0.2.1]>", "a", "[192.0.2.1]", LIT, "a@[192.0.2.1]"),
	OK_R("TO:<a@[IPv6:2001:db8::1]>", "a", "[IPv6:2001:db8::1]", LIT, "a@[IPv6:2001:db8::1]"),
	OK_M("FROM:a@[192.0.2.1]", "a", "[192.0.2.1]", LIT, "a@[192.0.2.1]"),
	BAD_R("TO:<a@[]>", ADDR_SYNTAX),
	BAD_R("TO:<a@[>", ADDR_SYNTAX),
	BAD_R("TO:<a@[192.0.2.1>", ADDR_SYNTAX),
	BAD_R("TO:<a@[192.0.2.1 ]>", ADDR_SYNTAX),
	BAD_R("TO:<a@[192.0.2.1]x>", ADDR_SYNTAX),
	BAD_R("TO:<a@[1\\]>", ADDR_SYNTAX),
	/* --- invalid paths --- */
	BAD_R("TO:<a@b.example.>", ADDR_SYNTAX),
	BAD_M("FROM:<a@b.example.>", ADDR_SYNTAX),
	BAD_R("TO:<a@.b.example>", ADDR_SYNTAX),
	BAD_R("TO:<a@b..example>", ADDR_SYNTAX),
	BAD_R("TO:<a@-b.example>", ADDR_SYNTAX),
	BAD_R("TO:<a@b-.example>", ADDR_SYNTAX),
	BAD_R("TO:<a@b.example->", ADDR_SYNTAX),
	BAD_R("TO:<a@b_c.example>", ADDR_SYNTAX),
	BAD_R("TO:<a@>", ADDR_SYNTAX),
	BAD_R("TO:<a@b.example", ADDR_SYNTAX),
	BAD_R("TO:<a@b", ADDR_SYNTAX),
	BAD_M("FROM:<a@b", ADDR_SYNTAX),
	BAD_R("TO:a@b.example>", ADDR_SYNTAX),
	BAD_R("TO:<.a@b.example>", ADDR_SYNTAX),
	BAD_R("TO:<a.@b.example>", ADDR_SYNTAX),
	BAD_R("TO:<a..b@b.example>", ADDR_SYNTAX),
	BAD_R("TO:<@b.example>", ADDR_SYNTAX),
	BAD_R("TO:<ab.example>", ADDR_SYNTAX),
	BAD_M("FROM:<ab.example>", ADDR_SYNTAX),
	BAD_R("TO:<a@b@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<a b@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<a(comment)@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"\"@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"abc@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"a\tb\"@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"a\\\tb\"@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"a\x7f\"@c.example>", ADDR_SYNTAX),
	BAD_R("TO:<\"a\\", ADDR_SYNTAX),
	BAD_R("TO:<a@b.example><c@d.example>", ADDR_SYNTAX),
	BAD_R("TO:<<a@b.example>>", ADDR_SYNTAX),
	BAD_R("TO:<", ADDR_SYNTAX),
	BAD_R("TO:", ADDR_SYNTAX),
	BAD_M("FROM:", ADDR_SYNTAX),
	BAD_M("FROM:<a@b.example>x", ADDR_SYNTAX),
	BAD_R("TO:<a@b.example>,<c@d.example>", ADDR_SYNTAX),
	/* label length */
	OK_R("TO:<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>", "a",
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", 0, NULL),
	BAD_R("TO:<a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>", ADDR_TOO_LONG),
	/* keywords */
	BAD_M("<a@b.example>", ADDR_NO_KEYWORD),
	BAD_M("FROM <a@b.example>", ADDR_NO_KEYWORD),
	BAD_M("FRM:<a@b.example>", ADDR_NO_KEYWORD),
	BAD_M("TO:<a@b.example>", ADDR_NO_KEYWORD),
	BAD_M("", ADDR_NO_KEYWORD),
	BAD_M("FROM", ADDR_NO_KEYWORD),
	BAD_R("<a@b.example>", ADDR_NO_KEYWORD),
	BAD_R("FROM:<a@b.example>", ADDR_NO_KEYWORD),
	BAD_R("T:<a@b.example>", ADDR_NO_KEYWORD),
	BAD_R("", ADDR_NO_KEYWORD),
	/* --- MAIL parameters --- */
	PRM("FROM:<a@b.example> SIZE=123", true, 123, BODY_7BIT, false, false),
	PRM("FROM:<a@b.example> size=0", true, 0, BODY_7BIT, false, false),
	PRM("FROM:<a@b.example> SIZE=18446744073709551615", true, UINT64_MAX, BODY_7BIT, false, false),
	BAD_M("FROM:<a@b.example> SIZE=18446744073709551616", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE=abc", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE=-1", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE=1k", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE=", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SIZE=1 SIZE=2", ADDR_PARAM_SYNTAX),
	PRM("FROM:<a@b.example> BODY=8BITMIME", false, 0, BODY_8BITMIME, false, false),
	PRM("FROM:<a@b.example> body=8bitmime", false, 0, BODY_8BITMIME, false, false),
	PRM("FROM:<a@b.example> BODY=7BIT", false, 0, BODY_7BIT, false, false),
	PRM("FROM:<a@b.example> BODY=BINARYMIME", false, 0, BODY_BINARYMIME, false, false),
	BAD_M("FROM:<a@b.example> BODY=8BIT", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> BODY=", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> BODY", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> BODY=7BIT BODY=7BIT", ADDR_PARAM_SYNTAX),
	PRM("FROM:<a@b.example> SMTPUTF8", false, 0, BODY_7BIT, true, false),
	PRM("FROM:<a@b.example> smtputf8", false, 0, BODY_7BIT, true, false),
	BAD_M("FROM:<a@b.example> SMTPUTF8=x", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SMTPUTF8=", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> SMTPUTF8 SMTPUTF8", ADDR_PARAM_SYNTAX),
	PRM("FROM:<a@b.example> AUTH=<>", false, 0, BODY_7BIT, false, true),
	PRM("FROM:<a@b.example> AUTH=a+2Bb@b.example", false, 0, BODY_7BIT, false, true),
	BAD_M("FROM:<a@b.example> AUTH=", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> AUTH", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> FOO=BAR", ADDR_PARAM_UNKNOWN),
	BAD_M("FROM:<a@b.example> X-FOO", ADDR_PARAM_UNKNOWN),
	/* DSN (RFC 3461) parameters are known since outbound delivery */
	OK_M("FROM:<a@b.example> RET=HDRS", "a", "b.example", 0, "a@b.example"),
	BAD_M("FROM:<a@b.example> RET=BODY", ADDR_PARAM_SYNTAX),
	OK_M("FROM:<a@b.example> ENVID=abc+2Bdef", "a", "b.example", 0, "a@b.example"),
	BAD_M("FROM:<a@b.example> ENVID=ab+zz", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> =BAR", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> -X=1", ADDR_PARAM_SYNTAX),
	BAD_M("FROM:<a@b.example> F_O=1", ADDR_PARAM_SYNTAX),
	PRM("FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>", true, 10, BODY_8BITMIME, true, true),
	PRM("FROM:<a@b.example>   SIZE=10    BODY=8BITMIME", true, 10, BODY_8BITMIME, false, false),
	{ MAIL, "FROM:<> SIZE=5", ADDR_OK, "", "", NUL_, "", true, 5, BODY_7BIT, false, false },
	{ MAIL, "FROM:a@b.example SIZE=5", ADDR_OK, "a", "b.example", 0, "a@b.example", true, 5, BODY_7BIT, false, false },
	/* --- RCPT parameters: none known yet --- */
	OK_R("TO:<a@b.example> NOTIFY=NEVER", "a", "b.example", 0, "a@b.example"),
	OK_R("TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", "a", "b.example", 0, "a@b.example"),
	BAD_R("TO:<a@b.example> NOTIFY=NEVER,DELAY", ADDR_PARAM_SYNTAX),
	BAD_R("TO:<a@b.example> NOTIFY=FAILURE,", ADDR_PARAM_SYNTAX),
	BAD_R("TO:<a@b.example> NOTIFY=SOMETIMES", ADDR_PARAM_SYNTAX),
	OK_R("TO:<a@b.example> ORCPT=rfc822;a@b.example", "a", "b.example", 0, "a@b.example"),
	BAD_R("TO:<a@b.example> ORCPT=a@b.example", ADDR_PARAM_SYNTAX),
	BAD_R("TO:<a@b.example> FOO=BAR", ADDR_PARAM_UNKNOWN),
	BAD_R("TO:<a@b.example> SIZE=1", ADDR_PARAM_UNKNOWN),
	BAD_R("TO:<a@b.example> =x", ADDR_PARAM_SYNTAX),
	BAD_R("TO:<postmaster> FOO", ADDR_PARAM_UNKNOWN),
};

static unsigned failures;
#define ROW_FAIL(...) do { print_error(__VA_ARGS__); print_error("\n"); failures++; return; } while (0)

static void check_row(size_t i, const struct row *r, const char *arg, size_t len)
{
	struct smtp_path p;
	struct smtp_mail_params prm;
	const char *detail = (const char *)1;
	memset(&p, 0x5a, sizeof(p));
	enum smtp_addr_status st = r->mode == MAIL ? smtp_parse_mail(arg, len, &p, &prm, &detail)
		: smtp_parse_rcpt(arg, len, &p, &detail);
	if (st != r->st)
		ROW_FAIL("row %zu \"%s\": status %d, want %d (%s)", i, r->arg, st, r->st, detail && detail != (const char *)1 ? detail : "-");
	if (st != ADDR_OK) {
		if (!detail || !detail[0])
			ROW_FAIL("row %zu: failure without detail", i);
		return;
	}
	assert_null(detail);
	if (strcmp(p.local, r->local) != 0 || strcmp(p.domain, r->domain) != 0)
		ROW_FAIL("row %zu \"%s\": local \"%s\" domain \"%s\"", i, r->arg, p.local, p.domain);
	unsigned flags = (p.null ? NUL_ : 0) | (p.bare_postmaster ? PM : 0) | (p.source_route ? SR : 0) |
		(p.utf8 ? U8 : 0) | (p.domain_literal ? LIT : 0);
	if (!p.null && flags != r->flags)
		ROW_FAIL("row %zu \"%s\": flags %#x, want %#x", i, r->arg, flags, r->flags);
	if (p.null && r->flags != NUL_)
		ROW_FAIL("row %zu: unexpected null path", i);
	char out[SMTP_ADDR_MAX + 1];
	smtp_path_format(&p, out, sizeof(out));
	if (r->formatted && strcmp(out, r->formatted) != 0)
		ROW_FAIL("row %zu \"%s\": formatted \"%s\", want \"%s\"", i, r->arg, out, r->formatted);
	if (r->mode == MAIL) {
		if (prm.size_set != r->size_set || prm.size != r->size || prm.body != r->body ||
			prm.smtputf8 != r->smtputf8 || prm.auth_set != r->auth_set)
			ROW_FAIL("row %zu \"%s\": params size_set=%d size=%llu body=%d utf8=%d auth=%d", i, r->arg,
				prm.size_set, (unsigned long long)prm.size, prm.body, prm.smtputf8, prm.auth_set);
	}
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		/* an exact-size heap copy, no terminator: ASan catches any read past len */
		size_t len = strlen(table[i].arg);
		char *copy = malloc(len ? len : 1);
		memcpy(copy, table[i].arg, len);
		check_row(i, &table[i], copy, len);
		free(copy);
	}
	if (failures)
		fail_msg("%u of %zu rows failed", failures, sizeof(table) / sizeof(table[0]));
}

/* Bytes after len are never looked at. */
static void test_length_respected(void **state)
{
	(void)state;
	struct smtp_path p;
	struct smtp_mail_params prm;
	const char *detail;
	const char *s = "FROM:<a@b.example> SIZE=10 GARBAGE";
	assert_int_equal(smtp_parse_mail(s, strlen("FROM:<a@b.example> SIZE=10"), &p, &prm, &detail), ADDR_OK);
	assert_int_equal(prm.size, 10);
	s = "TO:<a@b.example>xyz";
	assert_int_equal(smtp_parse_rcpt(s, strlen("TO:<a@b.example>"), &p, &detail), ADDR_OK);
	s = "TO:<a@b.example>";
	assert_int_equal(smtp_parse_rcpt(s, strlen(s) - 1, &p, &detail), ADDR_SYNTAX);
	/* a NUL inside the argument is not the end */
	assert_int_equal(smtp_parse_rcpt("TO:<a\0b@c.example>", 18, &p, &detail), ADDR_SYNTAX);
	assert_int_equal(smtp_parse_rcpt("TO:<a@c.example\0>", 17, &p, &detail), ADDR_SYNTAX);
}

static char *repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* RFC 5321 §4.5.3.1 limits. */
static void test_limits(void **state)
{
	(void)state;
	struct smtp_path p;
	const char *detail;
	char arg[2048];
	char *l128 = repeat('l', SMTP_LOCAL_MAX), *l129 = repeat('l', SMTP_LOCAL_MAX + 1);
	char *lab = repeat('d', 60);

	snprintf(arg, sizeof(arg), "TO:<%s@x.example>", l128);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_OK);
	assert_int_equal(strlen(p.local), SMTP_LOCAL_MAX);
	snprintf(arg, sizeof(arg), "TO:<%s@x.example>", l129);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);
	snprintf(arg, sizeof(arg), "TO:<\"%s\"@x.example>", l129);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);

	/* whole path: local + "@" + domain <= 254 */
	char dom[300];
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s", lab, lab, lab, lab);   /* 243 */
	char *l10 = repeat('a', 10), *l11 = repeat('a', 11);
	snprintf(arg, sizeof(arg), "TO:<%s@%s>", l10, dom);            /* 10+1+243 = 254 */
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_OK);
	snprintf(arg, sizeof(arg), "TO:<%s@%s>", l11, dom);            /* 255 */
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);
	assert_non_null(detail);
	struct smtp_mail_params prm;
	snprintf(arg, sizeof(arg), "FROM:<%s@%s>", l11, dom);
	assert_int_equal(smtp_parse_mail(arg, strlen(arg), &p, &prm, &detail), ADDR_TOO_LONG);

	/* a domain over 255 octets */
	char big[400];
	snprintf(big, sizeof(big), "%s.%s.%s.%s.%s", lab, lab, lab, lab, lab);   /* 304 */
	snprintf(arg, sizeof(arg), "TO:<a@%s>", big);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);
	/* also inside a source route (scratch buffer) */
	snprintf(arg, sizeof(arg), "TO:<@%s:a@b.example>", big);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);
	/* a huge domain literal */
	char lit[400];
	memset(lit, '1', sizeof(lit));
	lit[0] = '[';
	lit[sizeof(lit) - 2] = ']';
	lit[sizeof(lit) - 1] = '\0';
	snprintf(arg, sizeof(arg), "TO:<a@%s>", lit);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &p, &detail), ADDR_TOO_LONG);
	free(l128);
	free(l129);
	free(lab);
	free(l10);
	free(l11);
}

/* Format, wrap in <>, parse again: the same mailbox. */
static void test_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct row *r = &table[i];
		if (r->st != ADDR_OK || (r->flags & (NUL_ | PM)))
			continue;
		struct smtp_path p, q;
		struct smtp_mail_params prm;
		const char *detail;
		if (r->mode == MAIL)
			assert_int_equal(smtp_parse_mail(r->arg, strlen(r->arg), &p, &prm, &detail), ADDR_OK);
		else
			assert_int_equal(smtp_parse_rcpt(r->arg, strlen(r->arg), &p, &detail), ADDR_OK);
		char out[SMTP_ADDR_MAX + 1], arg[SMTP_ADDR_MAX + 16];
		smtp_path_format(&p, out, sizeof(out));
		snprintf(arg, sizeof(arg), "TO:<%s>", out);
		if (smtp_parse_rcpt(arg, strlen(arg), &q, &detail) != ADDR_OK)
			fail_msg("row %zu: \"%s\" does not parse again", i, arg);
		if (strcmp(p.local, q.local) != 0 || strcmp(p.domain, q.domain) != 0 || p.utf8 != q.utf8)
			fail_msg("row %zu: round trip changed \"%s\"@\"%s\" into \"%s\"@\"%s\"", i, p.local, p.domain, q.local, q.domain);
	}
	/* Local parts needing quotes and escapes, built directly. */
	static const char *const locals[] = {
		"a b", "a\"b", "a\\b", "\"", "\\", ".", "..", "a..b", ".a", "a.", " ", "a,b", "a:b", "(x)", "[x]",
		"<x>", "a;b", "a@b", "\"\\\"\\",
	};
	for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++) {
		struct smtp_path p = { 0 }, q;
		snprintf(p.local, sizeof(p.local), "%s", locals[i]);
		snprintf(p.domain, sizeof(p.domain), "x.example");
		char out[SMTP_ADDR_MAX + 1], arg[SMTP_ADDR_MAX + 16];
		const char *detail;
		smtp_path_format(&p, out, sizeof(out));
		snprintf(arg, sizeof(arg), "TO:<%s>", out);
		if (smtp_parse_rcpt(arg, strlen(arg), &q, &detail) != ADDR_OK || strcmp(q.local, p.local) != 0)
			fail_msg("local \"%s\": formatted \"%s\", parsed back \"%s\"", locals[i], out, q.local);
	}
	/* The worst case fits SMTP_ADDR_MAX: 128 quotes escaped. */
	struct smtp_path p = { 0 }, q;
	memset(p.local, '"', SMTP_LOCAL_MAX);
	p.local[SMTP_LOCAL_MAX] = '\0';
	memset(p.domain, 'd', 60);
	memcpy(p.domain + 60, ".example", 9);
	char out[SMTP_ADDR_MAX + 1], arg[SMTP_ADDR_MAX + 16];
	const char *detail;
	smtp_path_format(&p, out, sizeof(out));
	assert_int_equal(strlen(out), 2 + 2 * SMTP_LOCAL_MAX + 1 + 68);
	snprintf(arg, sizeof(arg), "TO:<%s>", out);
	assert_int_equal(smtp_parse_rcpt(arg, strlen(arg), &q, &detail), ADDR_OK);
	assert_string_equal(q.local, p.local);
}

static void test_format_small_buffers(void **state)
{
	(void)state;
	struct smtp_path p = { 0 };
	snprintf(p.local, sizeof(p.local), "a\"b");
	snprintf(p.domain, sizeof(p.domain), "x.example");
	char out[64];
	for (size_t sz = 0; sz < sizeof(out); sz++) {
		memset(out, 'Z', sizeof(out));
		smtp_path_format(&p, out, sz);
		if (sz > 0) {
			assert_non_null(memchr(out, '\0', sz));
		}
		for (size_t k = sz; k < sizeof(out); k++)
			if (out[k] != 'Z')
				fail_msg("size %zu: wrote at offset %zu", sz, k);
	}
	smtp_path_format(&p, out, sizeof(out));
	assert_string_equal(out, "\"a\\\"b\"@x.example");
	p.null = true;
	assert_string_equal(smtp_path_format(&p, out, sizeof(out)), "");
	p.null = false;
	p.bare_postmaster = true;
	assert_string_equal(smtp_path_format(&p, out, sizeof(out)), "postmaster");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_length_respected),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_format_small_buffers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
