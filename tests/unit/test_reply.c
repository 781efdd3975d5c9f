/* test_reply.c - reply_write formatting and the reply catalogue's consistency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "policy/policy.h"
#include "smtp/reply.h"
#include "wire/wire.h"
#include "util/buf.h"

/* Every line ends with CRLF, has no other CR or LF, is at most 512 octets, starts with
 * the code and uses '-' on all lines but the last.  Returns the number of lines. */
static size_t check_reply_shape(const struct buf *b, int code, const char *enh)
{
	char want[16];
	snprintf(want, sizeof(want), "%d", code);
	size_t lines = 0, pos = 0;
	assert_true(b->len >= 6);
	while (pos < b->len) {
		const char *start = b->data + pos;
		const char *crlf = NULL;
		for (size_t i = pos; i + 1 < b->len; i++) {
			if (b->data[i] == '\r' && b->data[i + 1] == '\n') {
				crlf = b->data + i;
				break;
			}
		}
		assert_non_null(crlf);
		size_t n = (size_t)(crlf - start);
		assert_true(n + 2 <= 512);
		for (size_t i = 0; i < n; i++)
			assert_true(start[i] != '\r' && start[i] != '\n' && start[i] != '\0');
		assert_true(n >= 4);
		assert_memory_equal(start, want, 3);
		bool last = (size_t)(crlf + 2 - b->data) == b->len;
		assert_int_equal(start[3], last ? ' ' : '-');
		if (enh) {
			assert_true(n >= 4 + strlen(enh) + 1);
			assert_memory_equal(start + 4, enh, strlen(enh));
			assert_int_equal(start[4 + strlen(enh)], ' ');
		}
		pos = (size_t)(crlf + 2 - b->data);
		lines++;
	}
	return lines;
}

static const struct {
	int code;
	const char *enh;
	const char *text;
	const char *want;
} write_table[] = {
	{ 250, "2.0.0", "Ok", "250 2.0.0 Ok\r\n" },
	{ 250, "2.0.0", "a\nb", "250-2.0.0 a\r\n250 2.0.0 b\r\n" },
	{ 250, "2.0.0", "a\nb\nc", "250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n" },
	{ 250, "2.0.0", "a\n", "250 2.0.0 a\r\n" },            /* trailing newline: no empty last line */
	{ 220, NULL, "host ESMTP", "220 host ESMTP\r\n" },
	{ 250, NULL, "host\nPIPELINING\nSIZE 10", "250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n" },
	{ 354, NULL, "go", "354 go\r\n" },
	{ 550, "5.1.1", "no\rsuch", "550 5.1.1 no such\r\n" },   /* a CR never splits a line */
	{ 550, "5.1.1", "x\r\nQUIT", "550-5.1.1 x \r\n550 5.1.1 QUIT\r\n" },
	{ 421, "4.7.0", "", "421 4.7.0 \r\n" },
	{ 599, "5.999.999", "max", "599 5.999.999 max\r\n" },
	{ 200, "2.0.0", "min", "200 2.0.0 min\r\n" },
};

static void test_write_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(write_table) / sizeof(write_table[0]); i++) {
		struct buf b;
		buf_init(&b, 65536);
		reply_write(&b, write_table[i].code, write_table[i].enh, write_table[i].text);
		if (strcmp(buf_cstr(&b), write_table[i].want) != 0)
			fail_msg("row %zu: got \"%s\"", i, buf_cstr(&b));
		check_reply_shape(&b, write_table[i].code, write_table[i].enh);
		buf_free(&b);
	}
}

static void test_long_lines_cut(void **state)
{
	(void)state;
	char text[3000];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	text[1000] = '\n';
	struct buf b;
	buf_init(&b, 65536);
	reply_write(&b, 550, "5.7.1", text);
	assert_int_equal(check_reply_shape(&b, 550, "5.7.1"), 2);
	/* both lines cut at exactly 512 octets, CRLF included */
	assert_int_equal(b.len, 1024);
	buf_reset(&b);
	reply_write(&b, 250, NULL, text + 1001);
	assert_int_equal(b.len, 512);
	check_reply_shape(&b, 250, NULL);
	buf_reset(&b);
	reply_writef(&b, 250, "2.0.0", "%s", text + 1001);
	assert_int_equal(b.len, 512);
	buf_free(&b);
}

static void test_hostile_text(void **state)
{
	(void)state;
	/* Text quoting client bytes: every CR/LF/NUL-ish combination stays in its line. */
	static const char *const texts[] = {
		"\r", "\r\r\r", "\n\n\n", "a\r\n250 2.0.0 forged", "\r\n\r\n", "x\n\ry", "\n",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct buf b;
		buf_init(&b, 4096);
		reply_write(&b, 554, "5.7.1", texts[i]);
		size_t nl = 0;
		for (const char *p = texts[i]; *p; p++)
			nl += *p == '\n';
		size_t lines = check_reply_shape(&b, 554, "5.7.1");
		if (lines > nl + 1)
			fail_msg("text %zu: %zu lines from %zu newlines", i, lines, nl);
		buf_free(&b);
	}
}

static const struct {
	const char *s;
	bool valid;
} enh_table[] = {
	{ "2.0.0", true }, { "4.7.0", true }, { "5.1.1", true }, { "5.999.999", true }, { "5.10.100", true },
	{ "2.1.5", true },
	{ "3.0.0", false }, { "1.0.0", false }, { "6.0.0", false }, { "0.0.0", false },
	{ "5.0", false }, { "5..0", false }, { "5.0.", false }, { ".5.0.0", false }, { "5.0.0.", false },
	{ "5.0.0.0", false }, { "5.1000.0", false }, { "5.0.1000", false }, { "55.0.0", false },
	{ "5.a.0", false }, { "5.0.0 ", false }, { " 5.0.0", false }, { "", false }, { "5", false },
	{ "5-0-0", false }, { "5.-1.0", false }, { "5.0.+1", false },
};

static void test_enh_valid(void **state)
{
	(void)state;
	assert_false(wire_enh_valid(NULL));
	for (size_t i = 0; i < sizeof(enh_table) / sizeof(enh_table[0]); i++)
		if (wire_enh_valid(enh_table[i].s) != enh_table[i].valid)
			fail_msg("row %zu: \"%s\" valid=%d", i, enh_table[i].s, !enh_table[i].valid);
}

/* The catalogue's consistency: every entry is complete and self-consistent. */
static void test_catalogue(void **state)
{
	(void)state;
	for (int id = 0; id < REPLY_ID_COUNT; id++) {
		const struct reply_entry *e = reply_get((enum reply_id)id);
		assert_non_null(e);
		if (e->code < 200 || e->code > 599)
			fail_msg("id %d: code %d", id, e->code);
		if (!e->text || !e->text[0])
			fail_msg("id %d: no text", id);
		if (e->enh) {
			if (!wire_enh_valid(e->enh) || e->enh[0] - '0' != e->code / 100)
				fail_msg("id %d: enh %s does not match code %d", id, e->enh, e->code);
		} else if (e->code != 220 && e->code != 250 && e->code != 354) {
			/* RFC 2034: only the greeting, the EHLO reply and 354 go without. */
			fail_msg("id %d: code %d has no enhanced code", id, e->code);
		}
		if (e->hint && !e->hint[0])
			fail_msg("id %d: empty hint", id);
		if (e->hint && (strchr(e->hint, '%') || strchr(e->hint, '\n')))
			fail_msg("id %d: hint has %% or newline", id);
		/* Refusals say how to go on: hint or not, the class is 4 or 5. */
		if (e->code >= 400)
			assert_true(e->enh == NULL || e->enh[0] == '4' || e->enh[0] == '5');
		/* DESIGN invariant 3: every refusal has a reason and a hint. */
		if (e->code >= 400 && !e->hint)
			fail_msg("id %d: refusal %d without a hint", id, e->code);
	}
}

static void test_reply_id(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 65536);
	reply_id(&b, R_BYE);
	assert_string_equal(buf_cstr(&b), "221 2.0.0 Bye\r\n");
	buf_reset(&b);
	reply_id(&b, R_GREETING, "mx.example");
	assert_string_equal(buf_cstr(&b), "220 mx.example ESMTP Postern ready\r\n");
	buf_reset(&b);
	reply_id(&b, R_QUEUED, "0123456789ABCDEF");
	assert_string_equal(buf_cstr(&b), "250 2.0.0 Ok: queued as 0123456789ABCDEF\r\n");
	buf_reset(&b);
	reply_id(&b, R_SYNTAX_LINE_TOO_LONG, (size_t)1000);
	assert_string_equal(buf_cstr(&b),
		"500-5.5.6 Line too long: a command line may be at most 1000 octets\r\n"
		"500 5.5.6 The mail program sent a command longer than SMTP allows; it is ignored\r\n");
	buf_reset(&b);
	reply_id(&b, R_MSG_TOO_BIG, 1024ULL);
	assert_true(strncmp(buf_cstr(&b), "552-5.3.4 Message too big: the limit here is 1024 octets", 56) == 0);
	assert_int_equal(check_reply_shape(&b, 552, "5.3.4"), 2);
	buf_reset(&b);
	reply_id(&b, R_TOO_MANY_ERRORS, "mx.example");
	assert_string_equal(buf_cstr(&b), "421-4.7.0 mx.example Too many bad commands; closing the connection\r\n"
		"421 4.7.0 The mail program sent commands this server does not accept; check its outgoing server settings\r\n");
	buf_reset(&b);
	reply_id(&b, R_HELP);
	assert_int_equal(check_reply_shape(&b, 214, "2.0.0"), 2);
	buf_reset(&b);
	/* A huge argument: the hint is dropped, lines are still bounded. */
	char big[5000];
	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	reply_id(&b, R_UNKNOWN_COMMAND, big);
	check_reply_shape(&b, 500, "5.5.2");
	buf_free(&b);
}

/* The verdicts made in the session: a valid enhanced code of the code's class, a
 * refusal's class, a hint that is one sentence or none. */
static void test_verdict_catalogue(void **state)
{
	(void)state;
	for (int id = 0; id < VERDICT_ID_COUNT; id++) {
		struct verdict v;
		reply_verdict(&v, (enum verdict_id)id, CAUSE_BAD_ADDRESS, "the reason");
		if (v.code < 400 || v.code > 599)
			fail_msg("verdict %d: code %d is not a refusal", id, v.code);
		if (!v.enh || !wire_enh_valid(v.enh) || v.enh[0] - '0' != v.code / 100)
			fail_msg("verdict %d: enh %s does not match code %d", id, v.enh ? v.enh : "(null)", v.code);
		assert_int_equal(v.kind, v.code >= 500 ? VERDICT_PERM : VERDICT_TEMP);
		if (strchr(v.hint, '%') || strchr(v.hint, '\n'))
			fail_msg("verdict %d: hint has %% or newline", id);
		if (!v.reason[0])
			fail_msg("verdict %d: no reason", id);
	}
}

/* Does a string literal's body hold an enhanced status code ("5.7.1", RFC 3463)?  A
 * section number ("RFC 5321 section 2.3.8") is not one. */
static bool holds_enhanced_code(const char *p, size_t n)
{
	static const char section[] = "section ";
	const size_t sl = sizeof(section) - 1;
	for (size_t i = 0; i + 4 < n; i++) {
		if (p[i] != '2' && p[i] != '4' && p[i] != '5')
			continue;
		if (i > 0 && (p[i - 1] == '.' || (p[i - 1] >= '0' && p[i - 1] <= '9')))
			continue;
		if (i >= sl && strncasecmp(p + i - sl, section, sl) == 0)
			continue;
		size_t j = i + 1, dots = 0, digits = 0;
		while (j < n && (p[j] == '.' || (p[j] >= '0' && p[j] <= '9'))) {
			if (p[j] == '.') {
				if (digits == 0 && j != i + 1)
					break;
				dots++;
				digits = 0;
			} else {
				digits++;
			}
			j++;
		}
		if (dots == 2 && digits > 0 && p[i + 1] == '.')
			return true;
	}
	return false;
}

/* Count the string literals (comments skipped) that hold an enhanced code. */
static unsigned enhanced_code_literals(const char *src, size_t n, char *first, size_t firstsz)
{
	unsigned found = 0;
	for (size_t i = 0; i < n; i++) {
		if (src[i] == '/' && i + 1 < n && src[i + 1] == '*') {
			const char *end = strstr(src + i + 2, "*/");
			i = end ? (size_t)(end - src) + 1 : n;
		} else if (src[i] == '/' && i + 1 < n && src[i + 1] == '/') {
			while (i < n && src[i] != '\n')
				i++;
		} else if (src[i] == '\'') {
			i++;
			while (i < n && src[i] != '\'')
				i += src[i] == '\\' ? 2 : 1;
		} else if (src[i] == '"') {
			size_t start = ++i;
			while (i < n && src[i] != '"')
				i += src[i] == '\\' ? 2 : 1;
			if (i <= n && holds_enhanced_code(src + start, i - start)) {
				if (!found++)
					snprintf(first, firstsz, "\"%.*s\"", (int)(i - start < 80 ? i - start : 80), src + start);
			}
		}
	}
	return found;
}

/* The catalogue files: the only ones that may spell an enhanced code (wire/enh.h). */
static bool is_catalogue_file(const char *rel)
{
	return strcmp(rel, "src/wire/enh.h") == 0 || strcmp(rel, "src/wire/enh.c") == 0;
}

static unsigned scanned_files, catalogue_files_seen;

/* Scan one directory of src/ and those below it (rel: "src/smtp"). */
static void scan_tree(const char *rel)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", POSTERN_SOURCE_DIR, rel);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char sub[2048];
		snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", POSTERN_SOURCE_DIR, sub);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			scan_tree(sub);
			continue;
		}
		size_t len = strlen(de->d_name);
		if (len < 3 || (strcmp(de->d_name + len - 2, ".c") != 0 && strcmp(de->d_name + len - 2, ".h") != 0))
			continue;
		if (is_catalogue_file(sub)) {
			catalogue_files_seen++;
			continue;
		}
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		static char src[1 << 20];
		size_t n = fread(src, 1, sizeof(src) - 1, f);
		fclose(f);
		src[n] = '\0';
		char first[100] = "";
		unsigned k = enhanced_code_literals(src, n, first, sizeof(first));
		if (k)
			fail_msg("%s: %u string literal(s) with an enhanced code, e.g. %s: name it by its id in the "
				"catalogue (src/wire/enh.h; add a row there if it is new)", sub, k, first);
		scanned_files++;
	}
	closedir(d);
}

/* STYLE 3: reply words and codes come from the catalogue.  No file of src/ but the
 * enhanced-code catalogue (wire/enh.h, enh.c) may spell an enhanced code: reply.c,
 * policy's verdicts, delivery and the rest name it by id (the scanner reads the
 * sources). */
static void test_no_enhanced_codes_outside_catalogue(void **state)
{
	(void)state;
	scanned_files = catalogue_files_seen = 0;
	scan_tree("src");
	assert_int_equal(catalogue_files_seen, 2);
	assert_true(scanned_files >= 100);
}

/* The scanner itself. */
static void test_enhanced_code_scanner(void **state)
{
	(void)state;
	char first[100];
	const char *yes[] = { "x(\"5.7.1\");", "f(\"code=503 enh=5.5.1\");", "\"4.3.0 temporary\"" };
	const char *no[] = { "/* 5.7.1 */ x();", "// \"5.7.1\"\n", "\"TLSv1.3\"", "\"RFC 5321 4.1\"", "\"10.5.7.1.2\"", "\"1.5.7\"",
		"\"RFC 5321 section 2.3.8\"", "\"(RFC 5321 4.5.3.1.6)\"" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (enhanced_code_literals(yes[i], strlen(yes[i]), first, sizeof(first)) != 1)
			fail_msg("not found in %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (enhanced_code_literals(no[i], strlen(no[i]), first, sizeof(first)) != 0)
			fail_msg("found in %s", no[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_table),
		cmocka_unit_test(test_long_lines_cut),
		cmocka_unit_test(test_hostile_text),
		cmocka_unit_test(test_enh_valid),
		cmocka_unit_test(test_catalogue),
		cmocka_unit_test(test_reply_id),
		cmocka_unit_test(test_verdict_catalogue),
		cmocka_unit_test(test_enhanced_code_scanner),
		cmocka_unit_test(test_no_enhanced_codes_outside_catalogue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
