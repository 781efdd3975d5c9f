/* test_imap_messages.c - the message commands (src/imap/cmd_*.c) on a real Maildir in
 * a temporary directory, driven by commands parsed with the real parser: FETCH
 * rendering (FLAGS, sizes, BODY[section]<partial>, \Seen without PEEK, UID FETCH,
 * CHANGEDSINCE, a bounded FETCH 1:* that yields), SEARCH evaluation (flags, sizes,
 * sets, decoded headers and bodies, OR/NOT, BADCHARSET, ESEARCH, MODSEQ), STORE
 * (+FLAGS, -FLAGS.SILENT, keywords, UNCHANGEDSINCE with MODIFIED), COPY and MOVE
 * (TRYCREATE, COPYUID), EXPUNGE and UID EXPUNGE, and the sync of another view's
 * changes (EXISTS, FETCH FLAGS, EXPUNGE / VANISHED). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/parse.h"
#include "store/folder.h"
#include "store/maildir.h"

static char tmpdir[64];
static char root[128];
static struct imap_exec x;
static struct buf out;

static const char *msg_plain =
	"From: Alice Example <alice@example.test>\n"
	"To: bob@example.test\n"
	"Subject: Hello world\n"
	"Date: Mon, 02 Mar 2026 10:00:00 +0000\n"
	"Message-ID: <1@example.test>\n"
	"\n"
	"First line of the body.\n"
	"Second line.\n";

static const char *msg_multi =
	"From: carol@example.test\n"
	"To: alice@example.test\n"
	"Cc: dave@example.test\n"
	"Subject: Report\n"
	"Date: Tue, 10 Mar 2026 12:00:00 +0100\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\n"
	"\n"
	"--XX\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Un caf=C3=A9 au lait.\n"
	"--XX\n"
	"Content-Type: application/octet-stream; name=\"a.bin\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"AAECAwQ=\n"
	"--XX--\n";

static const char *msg_encoded =
	"From: =?UTF-8?B?w4lsb2RpZQ==?= <elodie@example.test>\n"
	"To: alice@example.test\n"
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin\n"
	"Date: Wed, 11 Mar 2026 08:00:00 +0000\n"
	"X-Tracking: 42\n"
	"\n"
	"Short.\n";

static void put(const char *dir, const char *name, const char *content)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s/%s", root, dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static struct imap_cmd *parse(const char *text)
{
	struct imap_parser *p = imap_parser_new();
	assert_non_null(p);
	enum imap_event ev = imap_parse_command(p, text, strlen(text));
	if (ev != IMAP_EV_COMMAND)
		fail_msg("parse of \"%s\": event %d (%s)", text, ev, imap_parser_error(p)->text);
	struct imap_cmd *c = imap_parser_take(p);
	imap_parser_free(&p);
	return c;
}

typedef enum imap_exec_status (*exec_fn)(struct imap_exec *, const struct imap_cmd *, struct buf *);

static exec_fn fn_for(const struct imap_cmd *c)
{
	switch (c->name) {
	case IMAP_CMD_FETCH: return imap_exec_fetch;
	case IMAP_CMD_SEARCH: return imap_exec_search;
	case IMAP_CMD_STORE: return imap_exec_store;
	case IMAP_CMD_COPY: return imap_exec_copy;
	case IMAP_CMD_MOVE: return imap_exec_move;
	case IMAP_CMD_EXPUNGE: return imap_exec_expunge;
	default: fail_msg("no exec function for %d", c->name); return NULL;
	}
}

/* Run a command to its end (resuming after IMAP_EXEC_MORE); returns the steps taken. */
static int run(const char *text)
{
	struct imap_cmd *c = parse(text);
	buf_reset(&out);
	x.cursor = 0;
	x.cursor_state = NULL;
	int steps = 1;
	while (fn_for(c)(&x, c, &out) == IMAP_EXEC_MORE) {
		steps++;
		assert_true(steps < 10000);
	}
	assert_false(out.truncated);
	imap_cmd_free(&c);
	return steps;
}

static void expect(const char *needle)
{
	if (!strstr(buf_cstr(&out), needle))
		fail_msg("expected \"%s\" in:\n%s", needle, buf_cstr(&out));
}

static void expect_not(const char *needle)
{
	if (strstr(buf_cstr(&out), needle))
		fail_msg("did not expect \"%s\" in:\n%s", needle, buf_cstr(&out));
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/postern-imapmsg-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(root, sizeof root, "%s/alice", tmpdir);
	char err[256];
	if (!maildir_create(root, err, sizeof err))
		return -1;
	put("new", "1700000001.M1P1.test", msg_plain);
	put("new", "1700000002.M2P1.test", msg_multi);
	put("new", "1700000003.M3P1.test", msg_encoded);
	memset(&x, 0, sizeof x);
	x.user = "alice@example.test";
	x.maildir_root = root;
	x.sel = folder_open(root, "INBOX", false, err, sizeof err);
	if (!x.sel)
		return -1;
	buf_init(&out, 64u << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	folder_close(&x.sel);
	buf_free(&out);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_fetch_simple_items(void **state)
{
	(void)state;
	run("a1 FETCH 1 (UID RFC822.SIZE INTERNALDATE)");
	char want[96];
	snprintf(want, sizeof want, "* 1 FETCH (UID 1 RFC822.SIZE %zu INTERNALDATE \"", strlen(msg_plain) + 8);
	expect(want);
	expect("a1 OK");
	run("a2 UID FETCH 2 FLAGS");
	expect("* 2 FETCH (UID 2 FLAGS (");
	expect("a2 OK");
	run("a3 FETCH 9 FLAGS");
	expect("a3 BAD");
}

static void test_fetch_sections(void **state)
{
	(void)state;
	run("b1 FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
	expect("BODY[HEADER.FIELDS (SUBJECT)] {24}\r\nSubject: Hello world\r\n\r\n)");
	expect_not("\\Seen");
	run("b2 FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME])");
	expect("BODY[1] {21}\r\nUn caf=C3=A9 au lait. BODY[2.MIME] {");
	expect("BODY[2.MIME] {");
	run("b3 FETCH 1 BODY[]<0.5>");
	expect("BODY[]<0> {5}\r\nFrom:");
	expect("FLAGS (\\Seen");            /* no PEEK: \Seen set and reported */
	run("b4 FETCH 1 (RFC822.HEADER RFC822.TEXT)");
	expect("RFC822.HEADER {");
	expect("RFC822.TEXT {39}\r\nFirst line of the body.\r\nSecond line.\r\n");
	run("b5 FETCH 2 BODY.PEEK[]<100000.10>");
	expect("BODY[]<100000> {0}\r\n");
	run("b6 FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])");
	expect("BINARY[1] {17}\r\nUn caf\xc3\xa9 au lait.");
	expect("BINARY.SIZE[2] 5");
	expect("BINARY[2] ~{5}\r\n");   /* 00 01 02 03 04: a literal8 (RFC 3516) */
}

static void test_fetch_structure(void **state)
{
	(void)state;
	run("c1 FETCH 1:3 (ENVELOPE BODYSTRUCTURE BODY)");
	expect("* 1 FETCH (ENVELOPE (\"Mon, 02 Mar 2026 10:00:00 +0000\" \"Hello world\"");
	expect("BODYSTRUCTURE ((\"text\" \"plain\"");
	expect("\"mixed\"");
	expect("* 3 FETCH (");
	expect("c1 OK");
}

static void test_search_keys(void **state)
{
	(void)state;
	run("d1 SEARCH SUBJECT hello");
	expect("* SEARCH 1\r\n");
	run("d2 SEARCH CHARSET UTF-8 SUBJECT \"gr\xc3\xbc\xc3\x9f\"");
	expect("* SEARCH 3\r\n");
	run("d3 SEARCH BODY \"caf\xc3\xa9\"");
	expect("* SEARCH 2\r\n");
	run("d4 SEARCH OR 1 3");
	expect("* SEARCH 1 3\r\n");
	run("d5 SEARCH NOT FROM carol");
	expect("* SEARCH 1 3\r\n");
	run("d6 UID SEARCH LARGER 300");
	expect("* SEARCH 2\r\n");
	run("d7 SEARCH HEADER X-Tracking 42");
	expect("* SEARCH 3\r\n");
	run("d8 SEARCH SENTSINCE 10-Mar-2026 SENTBEFORE 11-Mar-2026");
	expect("* SEARCH 2\r\n");
	run("d9 SEARCH CHARSET ISO-8859-1 ALL");
	expect("d9 NO [BADCHARSET");
	run("d10 SEARCH RETURN (MIN MAX COUNT) ALL");
	expect("* ESEARCH (TAG \"d10\") MIN 1 MAX 3 COUNT 3\r\n");
	run("d11 SEARCH TEXT elodie");
	expect("* SEARCH 3\r\n");
	run("d12 SEARCH UID 2:* CC dave");
	expect("* SEARCH 2\r\n");
	run("d13 SEARCH SINCE 1-Jan-2020 BEFORE 1-Jan-2100 SMALLER 100000");
	expect("* SEARCH 1 2 3\r\n");
}

static void test_store_forms(void **state)
{
	(void)state;
	run("e1 STORE 1:2 +FLAGS (\\Flagged $Work)");
	expect("* 1 FETCH (FLAGS (");
	expect("$Work");
	run("e2 SEARCH KEYWORD $work");
	expect("* SEARCH 1 2\r\n");
	run("e3 STORE 2 -FLAGS.SILENT ($Work)");
	expect_not("FETCH");
	expect("e3 OK");
	run("e4 UID STORE 3 FLAGS (\\Answered)");
	expect("* 3 FETCH (UID 3 FLAGS (\\Answered");
	run("e5 SEARCH ANSWERED");
	expect("* SEARCH 3\r\n");
	run("e6 STORE 1 +FLAGS (\\Bogus)");
	expect("e6 BAD");
	/* CONDSTORE: a message changed since MODSEQ 1 is not stored and named in MODIFIED */
	run("e7 STORE 1,3 (UNCHANGEDSINCE 1) +FLAGS (\\Draft)");
	expect("[MODIFIED 1,3]");
	expect("MODSEQ");
	run("e8 SEARCH MODSEQ 1");
	expect(" (MODSEQ ");
}

static void test_copy_move(void **state)
{
	(void)state;
	run("f1 COPY 1 Nowhere");
	expect("f1 NO [TRYCREATE]");
	char err[256];
	assert_int_equal(folder_create(root, "Archive", err, sizeof err), STORE_OK);
	run("f2 COPY 1:2 Archive");
	expect("f2 OK [COPYUID ");
	expect(" 1:2 1:2]");
	run("f3 UID MOVE 3 Archive");
	expect("* OK [COPYUID ");
	expect(" 3 3]");
	expect("* 3 EXPUNGE\r\n");
	expect("f3 OK");
	assert_int_equal(folder_count(x.sel), 2);
}

static void test_expunge_and_sync(void **state)
{
	(void)state;
	char err[256];
	struct folder *other = folder_open(root, "INBOX", false, err, sizeof err);
	assert_non_null(other);
	/* another session sets a flag and a new message arrives */
	const struct folder_msg *m = folder_msg(other, 0);
	uint64_t ms;
	assert_true(folder_store_flags(other, 0, (m->flags & FOLDER_STORABLE) | FOLDER_DELETED, m->keywords, &ms,
		err, sizeof err));
	put("new", "1700000004.M4P1.test", msg_plain);
	buf_reset(&out);
	imap_exec_sync(&x, &out, false);
	assert_int_equal(out.len, 0);        /* RFC 3501 §7.4.1: nothing during FETCH/STORE/SEARCH */
	imap_exec_sync(&x, &out, true);
	expect("* 3 EXISTS\r\n");
	expect("* 1 FETCH (FLAGS (\\Flagged \\Deleted");
	run("g1 EXPUNGE");
	expect("* 1 EXPUNGE\r\n");
	expect("g1 OK");
	/* QRESYNC: VANISHED instead of EXPUNGE; UID EXPUNGE only within its set */
	x.qresync = x.condstore = true;
	run("g2 STORE 1:2 +FLAGS.SILENT (\\Deleted)");
	run("g3 UID EXPUNGE 4");
	expect("* VANISHED 4\r\n");
	assert_int_equal(folder_count(x.sel), 1);
	folder_close(&other);
}

/* FETCH 1:* of a folder larger than one step yields and resumes, losing nothing. */
static void test_fetch_bounded(void **state)
{
	(void)state;
	char *big = malloc(4096 + 200);
	assert_non_null(big);
	int n = snprintf(big, 200, "Subject: filler\n\n");
	memset(big + n, 'x', 4096);
	big[n + 4095] = '\n';
	big[n + 4096] = '\0';
	for (int k = 0; k < 150; k++) {
		char name[64];
		snprintf(name, sizeof name, "1700001%03d.M%dP2.test", k, k);
		put("new", name, big);
	}
	free(big);
	buf_reset(&out);
	imap_exec_sync(&x, &out, true);
	size_t count = folder_count(x.sel);
	assert_true(count >= 150);
	struct imap_cmd *c = parse("h1 FETCH 1:* BODY.PEEK[]");
	buf_reset(&out);
	x.cursor = 0;
	int steps = 1;
	size_t fetches = 0, max_len = 0;
	for (;;) {
		enum imap_exec_status st = imap_exec_fetch(&x, c, &out);
		if (out.len > max_len)
			max_len = out.len;
		for (const char *p = buf_cstr(&out); (p = strstr(p, " FETCH (")); p++)
			fetches++;
		if (st == IMAP_EXEC_DONE)
			break;
		buf_reset(&out);     /* the output went to the client */
		steps++;
	}
	assert_true(steps >= 2);
	assert_true(max_len < IMAP_EXEC_OUTPUT_STEP + 16384);
	assert_int_equal(fetches, count);
	expect("h1 OK");
	imap_cmd_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch_simple_items),
		cmocka_unit_test(test_fetch_sections),
		cmocka_unit_test(test_fetch_structure),
		cmocka_unit_test(test_search_keys),
		cmocka_unit_test(test_store_forms),
		cmocka_unit_test(test_copy_move),
		cmocka_unit_test(test_expunge_and_sync),
		cmocka_unit_test(test_fetch_bounded),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
