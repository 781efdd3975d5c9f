/* test_mime.c - msg/mime: the MIME tree, ENVELOPE and BODYSTRUCTURE of
 * ordinary and hostile messages (tables), the bounds (depth, part count),
 * LF and CRLF input giving the same answer, and IMAP string quoting.
 * Dovecot's own answers for a corpus are checked by
 * tests/integration/test_mime_oracle.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/mime.h"
#include "util/buf.h"

static char *render(const char *raw, size_t len, int what)
{
	struct mime_tree *t = mime_parse(raw, len);
	assert_non_null(t);
	struct buf b;
	buf_init(&b, 1 << 22);
	bool ok = what == 0 ? mime_envelope(t, &b) : mime_bodystructure(t, what == 1, &b);
	assert_true(ok);
	char *s = strdup(buf_cstr(&b));
	buf_free(&b);
	mime_free(&t);
	assert_null(t);
	return s;
}

static const struct {
	const char *name, *raw, *bodystructure;
} bs_table[] = {
	{ "empty message", "",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" },
	{ "header only, no empty line", "Subject: x",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" },
	{ "LF counted as CRLF", "Subject: x\n\nab\ncd\n",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 2 NIL NIL NIL NIL)" },
	{ "two parts, preamble and epilogue",
	  "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--b\nContent-Type: image/gif\n\nGIF\n--b--\nepi\n",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)"
	  "(\"image\" \"gif\" NIL NIL NIL \"7bit\" 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)" },
	{ "missing close delimiter",
	  "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)"
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) \"mixed\" "
	  "(\"boundary\" \"b\") NIL NIL NIL)" },
	{ "no boundary parameter: one empty part",
	  "Content-Type: multipart/mixed\n\n--b\n\nx\n",
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)" },
	{ "outer boundary closes the inner multipart",
	  "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n"
	  "--i\n\nin\n--o\n\nout\n--o--\n",
	  "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0 NIL NIL NIL NIL) \"alternative\" "
	  "(\"boundary\" \"i\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL "
	  "NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)" },
	{ "message/rfc822 with envelope and lines",
	  "Content-Type: message/rfc822\n\nSubject: in\n\nbody\n",
	  "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 21 (NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	  "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)" },
	{ "digest parts default to message/rfc822",
	  "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: a\n\nx\n--d--\n",
	  "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 (NIL \"a\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	  "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") "
	  "NIL NIL NIL)" },
	{ "extension data",
	  "Content-Type: text/plain; charset=utf-8\nContent-MD5: abc=\nContent-Disposition: attachment; filename=\"a b\"\n"
	  "Content-Language: en (English)\nContent-Location: x.txt\nContent-ID: <i@d>\nContent-Description: d\n"
	  "Content-Transfer-Encoding: 8bit\n\nx",
	  "(\"text\" \"plain\" (\"charset\" \"utf-8\") \"<i@d>\" \"d\" \"8bit\" 1 0 \"abc=\" (\"attachment\" (\"filename\" "
	  "\"a b\")) (\"en\") \"x.txt\")" },
	{ "RFC 2231 continuations joined",
	  "Content-Type: application/x; a*0=\"x \"; a*1=y; b*0*=us-ascii'en'%41; b*1=%; c*=utf-8''z\n\n",
	  "(\"application\" \"x\" (\"a\" \"x y\" \"b*\" \"us-ascii'en'%41%25\" \"c*\" \"utf-8''z\") NIL NIL \"7bit\" 0 NIL "
	  "NIL NIL NIL)" },
	{ "parameter list stops at junk",
	  "Content-Type: text/plain; charset=x; junk; format=flowed\n\n",
	  "(\"text\" \"plain\" (\"charset\" \"x\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" },
	{ "8-bit parameter as a literal",
	  "Content-Type: text/plain; name=\"\xc3\xa9\"\n\n",
	  "(\"text\" \"plain\" (\"name\" {2}\r\n\xc3\xa9 \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" },
	{ "invalid Content-Type is \"\" \"\"", "Content-Type: text/plain junk\n\nx",
	  "(\"\" \"\" NIL NIL NIL \"7bit\" 1 NIL NIL NIL NIL)" },
	{ "not MIME: Content-* ignored", "Content-Transfer-Encoding: base64\nContent-ID: <x>\n\nx",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)" },
	{ "MIME-Version makes it MIME", "MIME-Version: 1.0\nContent-Transfer-Encoding: Base64 (c)\n\nx",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"Base64\" 1 0 NIL NIL NIL NIL)" },
	{ "language list stops at junk; message/rfc822 in lower case",
	  "Content-Type: Message/RFC822\nContent-Language: en, de junk, fr\n\n\n",
	  "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 2 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	  "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 1 NIL NIL (\"en\" \"de\") NIL)" },
	{ "unterminated quote and comment",
	  "Content-Type: text/plain (unterminated; charset=\"x\n\n",
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)" },
};

static void test_bodystructure_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bs_table) / sizeof(bs_table[0]); i++) {
		char *got = render(bs_table[i].raw, strlen(bs_table[i].raw), 1);
		if (strcmp(got, bs_table[i].bodystructure) != 0)
			fail_msg("%s:\n got  %s\n want %s", bs_table[i].name, got, bs_table[i].bodystructure);
		free(got);
	}
}

static const struct {
	const char *name, *raw, *envelope;
} env_table[] = {
	{ "nothing", "\n", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)" },
	{ "defaults from from", "From: A <a@x.test>\nTo: b@y.test\nSubject: hi\nDate: d\nMessage-ID: <m>\n\n",
	  "(\"d\" \"hi\" ((\"A\" NIL \"a\" \"x.test\")) ((\"A\" NIL \"a\" \"x.test\")) ((\"A\" NIL \"a\" \"x.test\")) "
	  "((NIL NIL \"b\" \"y.test\")) NIL NIL NIL \"<m>\")" },
	{ "the last field counts; empty subject", "Subject: one\nSubject:\n\n",
	  "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)" },
	{ "subject folded and 8-bit", "Subject: caf\xc3\xa9\n  au\tlait \n\n",
	  "(NIL {13}\r\ncaf\xc3\xa9 au lait NIL NIL NIL NIL NIL NIL NIL NIL)" },
	{ "group and missing parts", "To: g: a@b, c;, <>\n\n",
	  "(NIL NIL NIL NIL NIL ((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"MISSING_DOMAIN\")(NIL NIL NIL NIL)"
	  "(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)" },
	{ "route and comment name", "Cc: <@r.test:a@b>, c@d (Cee Dee)\n\n",
	  "(NIL NIL NIL NIL NIL NIL ((NIL \"@r.test\" \"a\" \"b\")(\"Cee Dee\" NIL \"c\" \"d\")) NIL NIL NIL)" },
	{ "quoted name with escapes", "Bcc: \"a \\\"b\\\"\" <q@x>\n\n",
	  "(NIL NIL NIL NIL NIL NIL NIL (({5}\r\na \"b\" NIL \"q\" \"x\")) NIL NIL)" },
	{ "encoded words stay encoded", "From: =?utf-8?q?J=C3=BCrgen?= <j@x>\n\n",
	  "(NIL NIL ((\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"j\" \"x\")) ((\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"j\" \"x\")) "
	  "((\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"j\" \"x\")) NIL NIL NIL NIL NIL)" },
	{ "in-reply-to unfolded, message-id with quotes", "In-Reply-To: <a>\n <b>\nMessage-ID: <\"x\"@y>\n\n",
	  "(NIL NIL NIL NIL NIL NIL NIL NIL \"<a> <b>\" \"<\\\"x\\\"@y>\")" },
	{ "every Reply-To joined; a broken angle-addr ends the field", "Reply-To: a@b\nReply-To: c@d\nTo: x <y@.z>, w@v\n\n",
	  "(NIL NIL NIL NIL ((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")) ((\"x\" NIL \"y\" \"SYNTAX_ERROR\")) NIL NIL NIL NIL)" },
	{ "sender without address defaults", "From: a@b\nSender: (nobody)\n\n",
	  "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)" },
};

static void test_envelope_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_table) / sizeof(env_table[0]); i++) {
		char *got = render(env_table[i].raw, strlen(env_table[i].raw), 0);
		if (strcmp(got, env_table[i].envelope) != 0)
			fail_msg("%s:\n got  %s\n want %s", env_table[i].name, got, env_table[i].envelope);
		free(got);
	}
}

/* The same message with LF and with CRLF line ends: the same structure. */
static void test_lf_crlf_same(void **state)
{
	(void)state;
	const char *lf = "From: a@b\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nx\ny\n--q\n"
		"Content-Type: message/rfc822\n\nSubject: s\n\nz\n--q--\n";
	size_t n = strlen(lf);
	char *crlf = malloc(2 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (lf[i] == '\n')
			crlf[o++] = '\r';
		crlf[o++] = lf[i];
	}
	for (int what = 0; what < 3; what++) {
		char *a = render(lf, n, what), *b = render(crlf, o, what);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	free(crlf);
}

/* Every part lies inside the message and inside its parent; children are
 * the parent's, in order; depth and count within the bounds. */
static void check_tree(const struct mime_tree *t, size_t len)
{
	const struct mime_part *root = mime_root(t);
	assert_non_null(root);
	assert_true(mime_part_count(t) >= 1 && mime_part_count(t) <= MIME_MAX_PARTS);
	for (size_t i = 0; i < mime_part_count(t); i++) {
		const struct mime_part *p = root + i;
		assert_true(p->depth < MIME_MAX_DEPTH);
		assert_true(p->hdr_off + p->hdr_len == p->body_off);
		assert_true(p->body_off + p->body_len <= len);
		assert_true(p->body_size >= p->body_len && p->lines <= p->body_len);
		assert_non_null(p->type);
		assert_non_null(p->subtype);
		if (p->parent) {
			assert_true(p->hdr_off >= p->parent->body_off);
			assert_true(p->body_off + p->body_len <= p->parent->body_off + p->parent->body_len);
			assert_int_equal(p->depth, p->parent->depth + 1);
		}
		size_t prev_end = p->body_off;
		for (size_t c = 0; c < p->n_child; c++) {
			assert_ptr_equal(p->child[c].parent, p);
			assert_true(p->child[c].hdr_off >= prev_end);
			prev_end = p->child[c].body_off + p->child[c].body_len;
		}
	}
}

static void parse_and_check(const char *raw, size_t len, bool want_truncated)
{
	struct mime_tree *t = mime_parse(raw, len);
	assert_non_null(t);
	check_tree(t, len);
	assert_int_equal(mime_truncated(t), want_truncated);
	struct buf b;
	buf_init(&b, 1 << 26);
	assert_true(mime_bodystructure(t, true, &b));
	assert_true(mime_envelope(t, &b));
	buf_free(&b);
	mime_free(&t);
}

/* 2,000 nested multiparts, then 2,000 nested message/rfc822: no stack
 * exhaustion, the depth stops at MIME_MAX_DEPTH. */
static void test_deep_nesting(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 26);
	for (int i = 0; i < 2000; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	buf_appends(&b, "\ndeep\n");
	parse_and_check(b.data, b.len, true);
	buf_reset(&b);
	for (int i = 0; i < 2000; i++)
		buf_appends(&b, "Content-Type: message/rfc822\n\n");
	buf_appends(&b, "Subject: deep\n\nx\n");
	parse_and_check(b.data, b.len, true);
	struct mime_tree *t = mime_parse(b.data, b.len);
	size_t depth = 0;
	for (const struct mime_part *p = mime_root(t); p->message; p = p->message)
		depth++;
	assert_int_equal(depth, MIME_MAX_DEPTH - 1);
	mime_free(&t);
	buf_free(&b);
}

/* 20,000 parts: the first MIME_MAX_PARTS are kept, the rest is body. */
static void test_many_parts(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 26);
	buf_appends(&b, "Content-Type: multipart/mixed; boundary=x\n\n");
	for (int i = 0; i < 20000; i++)
		buf_appends(&b, "--x\n\np\n");
	buf_appends(&b, "--x--\n");
	parse_and_check(b.data, b.len, true);
	struct mime_tree *t = mime_parse(b.data, b.len);
	assert_int_equal(mime_part_count(t), MIME_MAX_PARTS);
	assert_int_equal(mime_root(t)->n_child, MIME_MAX_PARTS - 1);
	mime_free(&t);
	buf_free(&b);
}

/* Hostile shapes: boundary lines everywhere, empty boundaries, NUL, bare
 * CR, a header that never ends, lines of dashes. */
static void test_hostile(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\n--\n",
		"Content-Type: multipart/mixed; boundary=-\n\n---\n----\n---\nContent-Type: multipart/mixed; boundary=-\n\n---\n",
		"Content-Type: multipart/mixed; boundary=a\r\r\n\r--a\r\n\r\n\0\0--a--\r",
		"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=a\n\n--a\n--a--\n--a--\n",
		"Content-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: message/rfc822\n",
		"Content-Type: multipart/mixed; boundary=q\n\n--q\nX: never ends\n folded\n--q--",
		"Content-Type: ;;;===\"\\\n\n",
		"Content-Type: text/plain; a*0*=x; a*1*=y; a*0=z; a*99999999999=w; *=v; a**=u\n\n",
		"From: ((((((((((((((((((((((((\nTo: \"\\\nCc: <<<<<<>>>>>@@@@,,,;;;::\nBcc: g: h: i;\n\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i]);
		if (i == 2)
			len = 52;   /* with its NUL bytes */
		parse_and_check(cases[i], len, false);
	}
}

static void test_imap_strings(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "plain", "\"plain\"" },
		{ "", "\"\"" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "\"\"\"\"\"", "{5}\r\n\"\"\"\"\"" },   /* more than four escapes: a literal, as Dovecot */
		{ "caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9" },
		{ "a\r\nb", "{4}\r\na\r\nb" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		mime_imap_nstring(&b, t[i].in, strlen(t[i].in));
		assert_string_equal(buf_cstr(&b), t[i].out);
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 1024);
	mime_imap_nstring(&b, NULL, 0);
	assert_string_equal(buf_cstr(&b), "NIL");
	buf_free(&b);
}

static const char SECTION_MSG[] =
	"From: a@b\nSubject: =?iso-8859-1?q?Gr=FC=DFe?= aus\n =?utf-8?b?S8O2bG4=?=\nX-Long: one\n two\n"
	"Content-Type: multipart/mixed; boundary=q\n\n"
	"--q\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
	"Gr=FC=DF dich, =\nWelt  \n"
	"--q\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: c@d\n\n"
	"Content-Type: text/plain; charset=utf-8\n\nnot a header\n"
	"--q\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC/w==\n"
	"--q\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin\n"
	"--q--\n";

static char *section(const struct mime_tree *t, const uint32_t *part, size_t n, int kind, const char *field,
	bool *ok)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	const char *fields[1] = { field };
	*ok = mime_section(t, part, n, kind, fields, field ? 1 : 0, &b);
	char *s = strdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void test_sections(void **state)
{
	(void)state;
	struct mime_tree *t = mime_parse(SECTION_MSG, strlen(SECTION_MSG));
	static const struct {
		uint32_t part[4];
		size_t n;
		int kind;
		const char *field, *want;   /* want NULL: no such part */
	} cases[] = {
		{ { 0 }, 0, MIME_SEC_HEADER_FIELDS, "x-long", "X-Long: one\r\n two\r\n\r\n" },
		{ { 0 }, 0, MIME_SEC_HEADER_FIELDS, "nothing", "\r\n" },
		{ { 0 }, 0, MIME_SEC_MIME, NULL, NULL },
		{ { 1 }, 1, MIME_SEC_ALL, NULL, "Gr=FC=DF dich, =\r\nWelt  " },
		{ { 1 }, 1, MIME_SEC_MIME, NULL,
		  "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" },
		{ { 1, 1 }, 2, MIME_SEC_ALL, NULL, "Gr=FC=DF dich, =\r\nWelt  " },
		{ { 1, 2 }, 2, MIME_SEC_ALL, NULL, NULL },
		{ { 1 }, 1, MIME_SEC_HEADER, NULL, NULL },   /* not a message/rfc822 */
		{ { 2 }, 1, MIME_SEC_HEADER, NULL, "Subject: inner\r\nFrom: c@d\r\n\r\n" },
		{ { 2 }, 1, MIME_SEC_HEADER_FIELDS_NOT, "subject", "From: c@d\r\n\r\n" },
		{ { 2 }, 1, MIME_SEC_TEXT, NULL, "Content-Type: text/plain; charset=utf-8\r\n\r\nnot a header" },
		{ { 2, 1 }, 2, MIME_SEC_ALL, NULL, "Content-Type: text/plain; charset=utf-8\r\n\r\nnot a header" },
		{ { 2, 2 }, 2, MIME_SEC_ALL, NULL, NULL },
		{ { 5 }, 1, MIME_SEC_ALL, NULL, NULL },
		{ { 0 }, 1, MIME_SEC_ALL, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok;
		char *got = section(t, cases[i].part, cases[i].n, cases[i].kind, cases[i].field, &ok);
		if (ok != (cases[i].want != NULL) || (ok && strcmp(got, cases[i].want) != 0))
			fail_msg("case %zu: ok=%d got [%s] want [%s]", i, ok, got, cases[i].want ? cases[i].want : "(none)");
		free(got);
	}
	/* <offset.length> */
	struct buf b;
	buf_init(&b, 1024);
	buf_appends(&b, "0123456789");
	const char *p;
	size_t n;
	assert_true(mime_partial(&b, 3, 4, &p, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(p, "3456", 4);
	assert_true(mime_partial(&b, 8, 100, &p, &n));
	assert_int_equal(n, 2);
	assert_true(mime_partial(&b, 20, 5, &p, &n));
	assert_int_equal(n, 0);
	buf_free(&b);
	mime_free(&t);
}

static void test_binary(void **state)
{
	(void)state;
	struct mime_tree *t = mime_parse(SECTION_MSG, strlen(SECTION_MSG));
	struct buf b;
	buf_init(&b, 1 << 20);
	uint32_t one = 1, three = 3, four = 4, nine = 9;
	assert_int_equal(mime_binary(t, &one, 1, &b), 0);
	assert_string_equal(buf_cstr(&b), "Gr\xfc\xdf dich, Welt");   /* soft break joined, trailing WSP gone */
	buf_reset(&b);
	assert_int_equal(mime_binary(t, &three, 1, &b), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "\x00\x01\x02\xff", 4);
	buf_reset(&b);
	assert_int_equal(mime_binary(t, &four, 1, &b), -2);   /* UNKNOWN-CTE */
	assert_int_equal(mime_binary(t, &nine, 1, &b), -1);
	buf_free(&b);
	mime_free(&t);
}

static void test_search(void **state)
{
	(void)state;
	struct mime_tree *t = mime_parse(SECTION_MSG, strlen(SECTION_MSG));
	assert_true(mime_header_contains(t, "subject", "gr\xc3\xbc\xc3\x9f" "e aus k\xc3\xb6ln"));   /* two charsets */
	assert_true(mime_header_contains(t, "from", "A@B"));
	assert_true(mime_header_contains(t, "SUBJECT", "GR\xc3\x9c\xc3\x9f"));   /* Ü folds to ü */
	assert_true(mime_header_contains(t, "x-long", "one two"));   /* unfolded (RFC 5322 §2.2.3) */
	assert_true(mime_header_contains(t, "x-long", ""));
	assert_false(mime_header_contains(t, "x-none", ""));
	assert_true(mime_text_contains(t, "gr\xc3\xbc\xc3\x9f dich, welt", false));   /* QP + Latin-1 */
	assert_true(mime_text_contains(t, "NOT A HEADER", false));
	assert_false(mime_text_contains(t, "inner", false));   /* an encapsulated header: TEXT, not BODY */
	assert_true(mime_text_contains(t, "inner", true));
	assert_false(mime_text_contains(t, "a@b", false));
	assert_true(mime_text_contains(t, "a@b", true));
	assert_false(mime_text_contains(t, "\xff", false));   /* the octet-stream part is not text */
	mime_free(&t);
}

static void test_dates(void **state)
{
	(void)state;
	static const struct {
		const char *date;
		long long when;   /* 0: unreadable */
		long zone;
	} cases[] = {
		{ "Tue, 1 Dec 2026 10:00:00 +0100", 1796115600, 3600 },
		{ "1 Dec 2026 10:00 -0500", 1796137200, -18000 },
		{ "Tue, 01 Dec 26 09:00:00 GMT", 1796115600, 0 },
		{ "Tue (day), 1 (one) Dec 2026\n 09:00:00 EST", 1796133600, -18000 },
		{ "1 Jan 99 00:00:00 Z", 915148800, 0 },
		{ "1 Jan 1970 00:00:00 PDT", 25200, -25200 },
		{ "29 Feb 2024 12:00:00 +0000", 1709208000, 0 },
		{ "not a date", 0, 0 },
		{ "32 Dec 2026 10:00:00 +0000", 0, 0 },
		{ "1 Dec 2026 25:00:00 +0000", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[256];
		snprintf(msg, sizeof(msg), "Date: %s\n\n", cases[i].date);
		struct mime_tree *t = mime_parse(msg, strlen(msg));
		long zone = 99;
		time_t when = mime_date_tz(t, &zone);
		if ((long long)when != cases[i].when || zone != cases[i].zone)
			fail_msg("%s: got %lld %ld want %lld %ld", cases[i].date, (long long)when, zone, cases[i].when,
				cases[i].zone);
		mime_free(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bodystructure_table),
		cmocka_unit_test(test_envelope_table),
		cmocka_unit_test(test_lf_crlf_same),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_imap_strings),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
