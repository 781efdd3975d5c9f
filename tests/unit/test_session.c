/* test_session.c - the SMTP session driven by hostile scripts through fake hooks.
 *
 * Each script is fed whole, byte by byte, and in odd-sized chunks; the replies (and
 * the committed messages) must be identical every way.  The fake spool checks the
 * hook protocol: no write/abort/commit without an open spool, no second open, and
 * every open ends in exactly one abort or commit. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "smtp/session.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/log.h"

/* --- the fake server side ------------------------------------------------ */

struct fake {
	bool open;               /* a spool file is open (ours to write/abort/commit) */
	bool commit_running;
	unsigned opens, writes, aborts, commits, violations;
	unsigned qid_counter;
	struct buf spool;        /* the current spool file */
	struct buf committed;    /* every committed message, concatenated */
	bool fail_open, fail_write, fail_flush;
	unsigned flushes;
	bool no_space;           /* the failures above were for lack of space */
	bool limit_room;         /* spool_room: only `room` octets fit */
	uint64_t room;
	bool authenticated;
	char last_env_sender[SMTP_ADDR_MAX + 1];
	size_t last_env_rcpts;
	char violation[200];
	struct smtp_session *session;   /* for smtp_session_findings */
	/* The end-of-data decision: what it was asked on, and whether the quota refuses. */
	bool eod_full;
	unsigned eod_asked;
	char eod_sender[SMTP_ADDR_MAX + 1];
	size_t eod_rcpts;
	bool eod_local[8];
	bool eod_txn;                   /* MAIL's finding reached the end of data */
	char eod_helo[64];
};

static void violation(struct fake *f, const char *what)
{
	f->violations++;
	if (!f->violation[0])
		snprintf(f->violation, sizeof(f->violation), "%s", what);
}

/* The decision pipeline's rules on a fake directory (alice and bob exist at
 * example.test, "tempfail" cannot be looked up), answered at once. */
static void fake_end_of_data(struct fake *f, const struct policy_facts *pf, struct verdict *v)
{
	f->eod_asked++;
	snprintf(f->eod_sender, sizeof(f->eod_sender), "%.300s", pf->address);
	snprintf(f->eod_helo, sizeof(f->eod_helo), "%.60s", pf->helo);
	f->eod_rcpts = pf->n_rcpts;
	for (size_t i = 0; i < pf->n_rcpts && i < 8; i++)
		f->eod_local[i] = pf->rcpts[i].domain_local;
	f->eod_txn = pf->txn.spf_done;
	if (f->eod_full)
		policy_message_quota_verdict(MQ_FULL, 51200, "the mailbox of alice@example.test has 40.0 KB left", v);
	else
		verdict_set(v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
}

static bool fake_decide(void *ctx, struct policy_facts *pf, struct verdict *v)
{
	struct fake *f = ctx;
	if (pf->point == POLICY_AT_MAIL) {
		policy_check_mail(&pf->client, v);
		pf->txn.spf_done = true;   /* a MAIL stage's finding, kept for the transaction */
		if (f->session)
			smtp_session_findings(f->session, pf);
		policy_facts_free(&pf);
		return true;
	}
	if (pf->point == POLICY_AT_END_OF_DATA) {
		fake_end_of_data(f, pf, v);
		policy_facts_free(&pf);
		return true;
	}
	struct policy_client pc = { .submission_port = false, .authenticated = f->authenticated };
	bool local = pf->bare_postmaster || strcmp(pf->domain, "example.test") == 0;
	struct rcpt_facts facts = {
		.local = pf->local,
		.domain = pf->domain,
		.domain_local = local,
		.is_postmaster = pf->bare_postmaster || (local && strcasecmp(pf->local, "postmaster") == 0),
		.user = strcmp(pf->local, "alice") == 0 || strcmp(pf->local, "bob") == 0 ? USER_FOUND
			: strcmp(pf->local, "tempfail") == 0 ? USER_LOOKUP_FAILED : USER_MISSING,
	};
	policy_check_rcpt(&pc, &facts, v);
	pf->rcpt = facts;
	if (f->session)
		smtp_session_findings(f->session, pf);
	policy_facts_free(&pf);
	return true;
}

static bool fake_spool_open(void *ctx, const struct smtp_envelope *env, char *qid)
{
	struct fake *f = ctx;
	if (f->open || f->commit_running)
		violation(f, "spool_open while a spool is open");
	if (f->fail_open)
		return false;
	if (env->n_rcpts == 0 || !env->sender || !env->rcpts || !env->helo || !env->protocol)
		violation(f, "spool_open with an incomplete envelope");
	smtp_path_format(env->sender, f->last_env_sender, sizeof(f->last_env_sender));
	f->last_env_rcpts = env->n_rcpts;
	f->opens++;
	f->open = true;
	buf_reset(&f->spool);
	snprintf(qid, QUEUE_ID_LEN + 1, "%016X", ++f->qid_counter);
	return true;
}

static bool fake_spool_write(void *ctx, const void *p, size_t n)
{
	struct fake *f = ctx;
	if (!f->open)
		violation(f, "spool_write without an open spool");
	f->writes++;
	if (f->fail_write)
		return false;
	buf_append(&f->spool, p, n);
	return true;
}

static void fake_spool_abort(void *ctx)
{
	struct fake *f = ctx;
	if (!f->open)
		violation(f, "spool_abort without an open spool");
	f->open = false;
	f->aborts++;
}

static void fake_spool_commit(void *ctx)
{
	struct fake *f = ctx;
	if (!f->open)
		violation(f, "spool_commit without an open spool");
	f->open = false;
	f->commit_running = true;
	f->commits++;
	buf_append(&f->committed, f->spool.data ? f->spool.data : "", f->spool.len);
	buf_appends(&f->committed, "<<END>>");
}

static bool fake_spool_flush(void *ctx)
{
	struct fake *f = ctx;
	if (!f->open)
		violation(f, "spool_flush without an open spool");
	f->flushes++;
	return !f->fail_flush;
}

static bool fake_spool_room(void *ctx, uint64_t size)
{
	struct fake *f = ctx;
	return !f->limit_room || (f->room > 0 && size <= f->room);
}

static bool fake_spool_no_space(void *ctx)
{
	struct fake *f = ctx;
	return f->no_space;
}

static const struct smtp_limits default_limits = {
	.max_message = 10000, .max_recipients = 5, .max_line = 512, .max_bad_commands = 5, .idle_timeout = 300,
};

static const struct smtp_conn_info conn_info = {
	.conn_id = 7, .hostname = "mx.example.test", .client_addr = "192.0.2.1", .client_name = NULL,
	.listener = "smtp", .submission = false, .trusted_network = false,
};

static struct smtp_session *new_session_info(struct fake *f, const struct smtp_limits *lim,
	const struct smtp_conn_info *info);

static struct smtp_session *new_session(struct fake *f, const struct smtp_limits *lim)
{
	return new_session_info(f, lim, &conn_info);
}

static struct smtp_session *new_session_info(struct fake *f, const struct smtp_limits *lim,
	const struct smtp_conn_info *info)
{
	memset(f, 0, sizeof(*f));
	buf_init(&f->spool, 1 << 20);
	buf_init(&f->committed, 1 << 22);
	struct smtp_hooks h = {
		.ctx = f, .decide = fake_decide, .spool_open = fake_spool_open,
		.spool_write = fake_spool_write, .spool_abort = fake_spool_abort, .spool_commit = fake_spool_commit,
		.spool_room = fake_spool_room, .spool_no_space = fake_spool_no_space, .spool_flush = fake_spool_flush,
	};
	struct smtp_session *s = smtp_session_new(info, lim ? lim : &default_limits, &h);
	assert_non_null(s);
	f->session = s;
	smtp_session_start(s);
	return s;
}

static void fake_free(struct fake *f)
{
	buf_free(&f->spool);
	buf_free(&f->committed);
}

/* Move the session's output into `out`. */
static void take_output(struct smtp_session *s, struct buf *out)
{
	struct buf *o = smtp_session_output(s);
	buf_append(out, o->data ? o->data : "", o->len);
	buf_consume(o, o->len);
}

/* Feed data in pieces of `chunk` bytes (0: all at once), committing with `commit_ok`
 * whenever the session waits; collects the replies.  Returns bytes consumed. */
static size_t drive(struct smtp_session *s, struct fake *f, const char *data, size_t len, size_t chunk,
	bool commit_ok, struct buf *out)
{
	size_t pos = 0;
	while (pos < len) {
		size_t n = chunk && len - pos > chunk ? chunk : len - pos;
		char *copy = malloc(n);
		memcpy(copy, data + pos, n);
		size_t used = smtp_session_feed(s, copy, n);
		free(copy);
		assert_true(used <= n);
		pos += used;
		take_output(s, out);
		if (smtp_session_waiting(s)) {
			f->commit_running = false;
			smtp_session_commit_done(s, commit_ok);
			take_output(s, out);
			continue;
		}
		if (used < n) {
			if (smtp_session_wants_close(s))
				break;
			if (used == 0)
				fail_msg("session stalled at offset %zu", pos);
		}
	}
	return pos;
}

/* Check the reply stream's shape and summarise the final line of each reply as
 * "CODE" or "CODE ENH", separated by '|'. */
static void summarise(const struct buf *out, char *sum, size_t sumsz)
{
	size_t o = 0, pos = 0;
	sum[0] = '\0';
	while (pos < out->len) {
		const char *line = out->data + pos;
		const char *end = memmem(line, out->len - pos, "\r\n", 2);
		if (!end)
			fail_msg("reply without CRLF at offset %zu: \"%.*s\"", pos, (int)(out->len - pos), line);
		size_t n = (size_t)(end - line);
		if (n + 2 > 512)
			fail_msg("reply line of %zu octets", n + 2);
		for (size_t i = 0; i < n; i++)
			if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
				fail_msg("control byte in reply line \"%.*s\"", (int)n, line);
		if (n < 3 || line[0] < '2' || line[0] > '5')
			fail_msg("not a reply line: \"%.*s\"", (int)n, line);
		if (n == 3 || line[3] == ' ') {
			size_t k = 3;
			if (n > 5 && line[3] == ' ' && line[5] == '.' && line[4] >= '2' && line[4] <= '5') {
				k = 4;
				while (k < n && line[k] != ' ')
					k++;
			}
			o += (size_t)snprintf(sum + o, sumsz - o, "%s%.*s", o ? "|" : "", (int)k, line);
			if (o >= sumsz)
				fail_msg("summary too long");
		} else if (line[3] != '-') {
			fail_msg("bad separator in \"%.*s\"", (int)n, line);
		}
		pos += n + 2;
	}
}

/* The message as committed, without the Received header (its date changes). */
static void strip_received(const struct buf *in, struct buf *out)
{
	size_t pos = 0;
	while (pos < in->len) {
		const char *p = in->data + pos;
		size_t rest = in->len - pos;
		const char *end = memmem(p, rest, "<<END>>", 7);
		size_t mlen = end ? (size_t)(end - p) : rest;
		size_t skip = 0;
		if (mlen > 10 && memcmp(p, "Received: ", 10) == 0) {
			for (size_t i = 0; i + 1 < mlen; i++)
				if (p[i] == '\r' && p[i + 1] == '\n' && (i + 2 == mlen || p[i + 2] != '\t')) {
					skip = i + 2;
					break;
				}
		}
		buf_append(out, p + skip, mlen - skip);
		buf_appends(out, "<<END>>");
		pos += mlen + (end ? 7 : 0);
	}
}

/* --- the script table ---------------------------------------------------- */

#define S(s) s, sizeof(s) - 1
#define EHLO "EHLO client.example\r\n"
#define MAIL "MAIL FROM:<sender@x.example>\r\n"
#define RCPT "RCPT TO:<alice@example.test>\r\n"
#define TX EHLO MAIL RCPT

struct script {
	const char *name;
	const char *in;
	size_t len;
	const char *replies;
	unsigned commits, aborts;
	bool closes;
	const char *body;           /* committed messages without Received, or NULL */
	uint64_t max_message;       /* 0: default */
	size_t body_len;            /* 0: strlen(body) */
};

static const struct script scripts[] = {
	{ "simple transaction", S(TX "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0|221 2.0.0", 1, 0, true, "Subject: hi\r\n\r\nhello\r\n<<END>>", 0 },
	{ "HELO then transaction", S("HELO c\r\n" MAIL RCPT "DATA\r\n.\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0", 1, 0, false, "<<END>>", 0 },
	{ "two messages pipelined", S(TX "DATA\r\na\r\n.\r\n" MAIL RCPT "DATA\r\n..b\r\n.\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0|250 2.1.0|250 2.1.5|354|250 2.0.0", 2, 0, false,
	  "a\r\n<<END>>.b\r\n<<END>>", 0 },
	{ "lower-case verbs, LF-only commands", S("ehlo c\nmail from:<s@x.example>\nrcpt to:<alice@example.test>\ndata\r\nx\r\n.\r\nquit\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0|221 2.0.0", 1, 0, true, "x\r\n<<END>>", 0 },
	/* order */
	{ "MAIL before EHLO", S(MAIL), "220|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "RCPT before MAIL", S(EHLO RCPT), "220|250|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "DATA before MAIL", S(EHLO "DATA\r\n"), "220|250|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "nested MAIL", S(EHLO MAIL MAIL), "220|250|250 2.1.0|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "DATA without RCPT", S(EHLO MAIL "DATA\r\n"), "220|250|250 2.1.0|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "RSET forgets the transaction", S(TX "RSET\r\n" RCPT), "220|250|250 2.1.0|250 2.1.5|250 2.0.0|503 5.5.1", 0, 0, false, NULL, 0 },
	{ "EHLO resets the transaction", S(TX EHLO "DATA\r\n"), "220|250|250 2.1.0|250 2.1.5|250|503 5.5.1", 0, 0, false, NULL, 0 },
	/* refusals */
	{ "relay refused then 503", S(EHLO MAIL "RCPT TO:<carol@remote.example>\r\nDATA\r\n.\r\n"),
	  "220|250|250 2.1.0|554 5.7.1|503 5.5.1|500 5.5.2", 0, 0, false, NULL, 0 },
	{ "unknown local user", S(EHLO MAIL "RCPT TO:<nobody@example.test>\r\n"), "220|250|250 2.1.0|550 5.1.1", 0, 0, false, NULL, 0 },
	{ "lookup failure", S(EHLO MAIL "RCPT TO:<tempfail@example.test>\r\n"), "220|250|250 2.1.0|451 4.3.0", 0, 0, false, NULL, 0 },
	{ "postmaster always", S(EHLO MAIL "RCPT TO:<postmaster>\r\nRCPT TO:<PostMaster@example.test>\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.1.5", 0, 0, false, NULL, 0 },
	{ "trailing-dot domain", S(EHLO MAIL "RCPT TO:<alice@example.test.>\r\n"), "220|250|250 2.1.0|501 5.1.3", 0, 0, false, NULL, 0 },
	{ "RCPT TO:<>", S(EHLO MAIL "RCPT TO:<>\r\n"), "220|250|250 2.1.0|501 5.1.3", 0, 0, false, NULL, 0 },
	{ "RCPT DSN parameter", S(EHLO MAIL "RCPT TO:<alice@example.test> NOTIFY=NEVER\r\n"), "220|250|250 2.1.0|250 2.1.5", 0, 0, false, NULL, 0 },
	{ "RCPT unknown parameter", S(EHLO MAIL "RCPT TO:<alice@example.test> FOO=1\r\n"), "220|250|250 2.1.0|555 5.5.4", 0, 0, false, NULL, 0 },
	{ "MAIL bad address", S(EHLO "MAIL FROM:<a@b.example.>\r\n"), "220|250|501 5.1.7", 0, 0, false, NULL, 0 },
	{ "MAIL no keyword", S(EHLO "MAIL <a@b.example>\r\n"), "220|250|501 5.5.4", 0, 0, false, NULL, 0 },
	{ "MAIL unknown parameter", S(EHLO "MAIL FROM:<a@b.example> FOO=1\r\n"), "220|250|555 5.5.4", 0, 0, false, NULL, 0 },
	{ "declared size too big", S(EHLO "MAIL FROM:<a@b.example> SIZE=10001\r\n"), "220|250|552 5.3.4", 0, 0, false, NULL, 0 },
	{ "declared size at the limit", S(EHLO "MAIL FROM:<a@b.example> SIZE=10000\r\n"), "220|250|250 2.1.0", 0, 0, false, NULL, 0 },
	{ "UTF-8 sender without SMTPUTF8", S(EHLO "MAIL FROM:<j\xc3\xb6rg@x.example>\r\n"), "220|250|553 5.6.7", 0, 0, false, NULL, 0 },
	{ "UTF-8 sender with SMTPUTF8", S(EHLO "MAIL FROM:<j\xc3\xb6rg@x.example> SMTPUTF8\r\n"), "220|250|250 2.1.0", 0, 0, false, NULL, 0 },
	{ "UTF-8 recipient without SMTPUTF8", S(EHLO MAIL "RCPT TO:<\xc3\xa9@example.test>\r\n"), "220|250|250 2.1.0|553 5.6.7", 0, 0, false, NULL, 0 },
	{ "too many recipients", S(EHLO MAIL "RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
		"RCPT TO:<postmaster>\r\nRCPT TO:<postmaster@example.test>\r\nRCPT TO:<alice@EXAMPLE.test>\r\n"
		"RCPT TO:<ALICE@example.test>\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5|250 2.1.5", 0, 0, false, NULL, 0 },
	{ "HELO without a name", S("HELO\r\nEHLO \r\n"), "220|501 5.5.4|501 5.5.4", 0, 0, false, NULL, 0 },
	{ "DATA with an argument", S(TX "DATA now\r\n"), "220|250|250 2.1.0|250 2.1.5|501 5.5.4", 0, 0, false, NULL, 0 },
	{ "BINARYMIME needs BDAT", S(EHLO "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n" RCPT "DATA\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|554 5.6.0", 0, 0, false, NULL, 0 },
	{ "misc commands", S("NOOP\r\nHELP\r\nVRFY alice\r\nEXPN list\r\nSTARTTLS\r\n" EHLO "AUTH PLAIN\r\nRSET\r\n"),
	  "220|250 2.0.0|214 2.0.0|252 2.5.0|502 5.5.1|502 5.5.1|250|502 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	/* syntax and hostility */
	{ "unknown command", S("FOO bar\r\nNOOP\r\n"), "220|500 5.5.2|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "empty line", S("\r\nNOOP\r\n"), "220|500 5.5.2|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "NUL in a command", S("NO\0OP\r\nNOOP\r\n"), "220|500 5.5.2|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "bare CR in a command", S("NOOP\rQUIT\r\nNOOP\r\n"), "220|500 5.5.2|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "too many bad commands", S("A\r\nB\r\nC\r\nD\r\nE\r\nNOOP\r\n"),
	  "220|500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|421 4.7.0", 0, 0, true, NULL, 0 },
	{ "bad commands close an open transaction", S(TX "X\r\nX\r\nX\r\nX\r\nX\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|421 4.7.0", 0, 0, true, NULL, 0 },
	{ "QUIT stops input", S("QUIT\r\nNOOP\r\n"), "220|221 2.0.0", 0, 0, true, NULL, 0 },
	/* smuggling: one DATA is one message, bare line ends are refused */
	{ "smuggling LF.LF", S(TX "DATA\r\nhi\n.\n" MAIL RCPT "DATA\nsmuggled\n.\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "smuggling CRLF LF.CRLF", S(TX "DATA\r\nhi\r\n\n.\r\n" MAIL RCPT "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "smuggling CRLF.LF", S(TX "DATA\r\nhi\r\n.\n" MAIL RCPT "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "smuggling CR.CRLF", S(TX "DATA\r\nhi\r.\r\n" MAIL RCPT "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "smuggling CRLF.CR", S(TX "DATA\r\nhi\r\n.\r" MAIL RCPT "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "dot-stuffed lines stay content", S(TX "DATA\r\n..\r\n.QUIT\r\n.\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0", 1, 0, false, ".\r\nQUIT\r\n<<END>>", 0 },
	{ "8-bit in DATA", S(TX "DATA\r\nab\xff\r\n.\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0", 1, 0, false, "ab\xff\r\n<<END>>", 0 },
	{ "NUL in DATA refused", S(TX "DATA\r\na\0b\r\n.\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "NUL in a header (DATA) refused", S(TX "DATA\r\nSubject: a\0b\r\n\r\nx\r\n.\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0", 0, 1, false, NULL, 0 },
	/* size */
	{ "message too big (DATA)", S(TX "DATA\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
		".\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|552 5.3.4|250 2.0.0", 0, 1, false, NULL, 150 },
	{ "message at the limit (DATA)", S(TX "DATA\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
		".\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0", 1, 0, false, NULL, 102 },
	{ "message too big (BDAT)", S(TX "BDAT 100\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
		"BDAT 100 LAST\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
		"NOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|552 5.3.4|250 2.0.0", 0, 1, false, NULL, 150 },
	{ "BDAT after a failed chunk", S(TX "BDAT 200\r\n"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
		"BDAT 3\r\nabcBDAT 0 LAST\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|552 5.3.4|503 5.5.1|503 5.5.1|250 2.0.0", 0, 1, false, NULL, 150 },
	/* BDAT */
	{ "BDAT chunks", S(TX "BDAT 5\r\nhelloBDAT 8 LAST\r\n world\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|250 2.0.0|250 2.0.0", 1, 0, false, "hello world\r\n<<END>>", 0 },
	{ "BDAT CR LF split across chunks", S(TX "BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|250 2.0.0", 1, 0, false, "ab\r\ncd<<END>>", 0 },
	{ "BDAT bare LF refused", S(TX "BDAT 9 LAST\r\nhi\n.\nxx\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|550 5.6.0|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "BDAT bare CR refused", S(TX "BDAT 4\r\nhi\r.BDAT 2 LAST\r\n\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|550 5.6.0", 0, 1, false, NULL, 0 },
	{ "BDAT CR at the very end refused", S(TX "BDAT 3 LAST\r\nhi\r"),
	  "220|250|250 2.1.0|250 2.1.5|550 5.6.0", 0, 1, false, NULL, 0 },
	{ "BDAT NUL refused", S(TX "BDAT 5 LAST\r\na\0b\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|550 5.6.0", 0, 1, false, NULL, 0 },
	{ "RCPT between BDAT chunks refused", S(TX "BDAT 2\r\nab" "RCPT TO:<bob@example.test>\r\nBDAT 2 LAST\r\n\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|503 5.5.1|250 2.0.0", 1, 0, false, "ab\r\n<<END>>", 0 },
	{ "MAIL between BDAT chunks refused", S(TX "BDAT 2\r\nab" MAIL "BDAT 2 LAST\r\n\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|503 5.5.1|250 2.0.0", 1, 0, false, "ab\r\n<<END>>", 0 },
	{ "BDAT 0 LAST", S(TX "BDAT 4\r\nabcdBDAT 0 LAST\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|250 2.0.0", 1, 0, false, "abcd<<END>>", 0 },
	{ "BDAT 0 LAST alone", S(TX "BDAT 0 LAST\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0", 1, 0, false, "<<END>>", 0 },
	{ "BDAT keeps bytes raw", S(TX "BDAT 11 LAST\r\n.\r\n..\r\n.x\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0", 1, 0, false, ".\r\n..\r\n.x\r\n<<END>>", 0 },
	{ "BDAT without MAIL swallows its bytes", S("BDAT 6\r\nQUIT\r\nNOOP\r\n"), "220|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "BDAT LAST without MAIL", S(EHLO "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), "220|250|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "BDAT without recipients swallows its bytes", S(EHLO MAIL "BDAT 6\r\nQUIT\r\nNOOP\r\n"),
	  "220|250|250 2.1.0|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	/* A refused chunk is read and dropped (RFC 3030 §2), answered once, and leaves
	 * no transaction behind. */
	{ "refused BDAT: commands in the chunk never run", S(EHLO "BDAT 25\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\n"),
	  "220|250|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "refused BDAT chunks answered once each", S(EHLO "BDAT 3\r\nabcBDAT 2 LAST\r\nxyNOOP\r\n"),
	  "220|250|503 5.5.1|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "refused BDAT 0 without MAIL", S(EHLO "BDAT 0\r\nNOOP\r\n"), "220|250|503 5.5.1|250 2.0.0", 0, 0, false, NULL, 0 },
	{ "refused BDAT leaves no transaction", S(EHLO "BDAT 4\r\nRSET" MAIL RCPT "BDAT 4 LAST\r\nhi\r\n"),
	  "220|250|503 5.5.1|250 2.1.0|250 2.1.5|250 2.0.0", 1, 0, false, "hi\r\n<<END>>", 0 },
	{ "BDAT without recipients keeps the transaction", S(EHLO MAIL "BDAT 2\r\nab" RCPT "BDAT 2 LAST\r\n\r\n"),
	  "220|250|250 2.1.0|503 5.5.1|250 2.1.5|250 2.0.0", 1, 0, false, "\r\n<<END>>", 0 },
	/* The gate keeps the order the checks had: the argument before the BDAT rule. */
	{ "DATA with an argument after BDAT", S(TX "BDAT 3\r\nabcDATA x\r\nRSET\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|501 5.5.4|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "DATA after BDAT", S(TX "BDAT 3\r\nabcDATA\r\nRSET\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|503 5.5.1|250 2.0.0", 0, 1, false, NULL, 0 },
	{ "BDAT syntax closes", S(TX "BDAT abc\r\nNOOP\r\n"), "220|250|250 2.1.0|250 2.1.5|501 5.5.4", 0, 0, true, NULL, 0 },
	{ "BDAT bad LAST closes", S(TX "BDAT 3 LATER\r\nabc"), "220|250|250 2.1.0|250 2.1.5|501 5.5.4", 0, 0, true, NULL, 0 },
	{ "BDAT after BDAT-open spool: RSET aborts", S(TX "BDAT 2\r\nabRSET\r\n"),
	  "220|250|250 2.1.0|250 2.1.5|250 2.0.0|250 2.0.0", 0, 1, false, NULL, 0 },
	/* lines */
	{ "over-long line, session continues", S(
		"NOOP XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
		"\r\nNOOP\r\n"),
	  "220|500 5.5.6|250 2.0.0", 0, 0, false, NULL, 0 },
};

#define NSCRIPTS (sizeof(scripts) / sizeof(scripts[0]))

struct result {
	struct buf out;
	struct buf body;
	char summary[1024];
	unsigned commits, aborts, violations;
	bool closes;
	char violation[200];
};

static void run_script(const struct script *sc, size_t chunk, struct result *r)
{
	struct fake f;
	struct smtp_limits lim = default_limits;
	if (sc->max_message)
		lim.max_message = sc->max_message;
	struct smtp_session *s = new_session(&f, &lim);
	buf_init(&r->out, 1 << 20);
	buf_init(&r->body, 1 << 20);
	take_output(s, &r->out);
	drive(s, &f, sc->in, sc->len, chunk, true, &r->out);
	r->closes = smtp_session_wants_close(s);
	smtp_session_free(&s);
	assert_null(s);
	if (f.open)
		violation(&f, "spool still open after free");
	summarise(&r->out, r->summary, sizeof(r->summary));
	strip_received(&f.committed, &r->body);
	r->commits = f.commits;
	r->aborts = f.aborts;
	r->violations = f.violations;
	snprintf(r->violation, sizeof(r->violation), "%s", f.violation);
	fake_free(&f);
}

static void test_scripts(void **state)
{
	(void)state;
	unsigned failures = 0;
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 64 };
	for (size_t i = 0; i < NSCRIPTS; i++) {
		const struct script *sc = &scripts[i];
		struct result ref;
		run_script(sc, 0, &ref);
		bool bad = strcmp(ref.summary, sc->replies) != 0 || ref.commits != sc->commits || ref.aborts != sc->aborts ||
			ref.closes != sc->closes || ref.violations != 0;
		size_t blen = sc->body ? (sc->body_len ? sc->body_len : strlen(sc->body)) : 0;
		if (!bad && sc->body && (ref.body.len != blen || memcmp(ref.body.data, sc->body, blen) != 0))
			bad = true;
		if (bad) {
			failures++;
			print_error("script \"%s\":\n  replies %s\n  want    %s\n  commits=%u aborts=%u closes=%d violations=%u %s\n  body \"%.*s\"\n",
				sc->name, ref.summary, sc->replies, ref.commits, ref.aborts, ref.closes, ref.violations,
				ref.violation, (int)ref.body.len, ref.body.data ? ref.body.data : "");
		}
		for (size_t k = 1; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			struct result r;
			run_script(sc, chunks[k], &r);
			if (r.out.len != ref.out.len || memcmp(r.out.data, ref.out.data, r.out.len) != 0 ||
				r.body.len != ref.body.len || (r.body.len && memcmp(r.body.data, ref.body.data, r.body.len) != 0) ||
				r.commits != ref.commits || r.aborts != ref.aborts || r.closes != ref.closes || r.violations) {
				failures++;
				print_error("script \"%s\" fed in %zu-byte pieces differs: %s\n", sc->name, chunks[k], r.summary);
			}
			buf_free(&r.out);
			buf_free(&r.body);
		}
		buf_free(&ref.out);
		buf_free(&ref.body);
	}
	if (failures)
		fail_msg("%u script runs failed", failures);
}

/* --- focused scenarios ----------------------------------------------------- */

static void feed_str(struct smtp_session *s, struct fake *f, const char *str, struct buf *out)
{
	drive(s, f, str, strlen(str), 0, true, out);
}

static void test_greeting_and_ehlo(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	take_output(s, &out);
	assert_string_equal(buf_cstr(&out), "220 mx.example.test ESMTP Postern ready\r\n");
	buf_reset(&out);
	feed_str(s, &f, "EHLO client.example\r\n", &out);
	const char *o = buf_cstr(&out);
	assert_true(strncmp(o, "250-mx.example.test Hello [192.0.2.1]\r\n", 39) == 0);
	assert_non_null(strstr(o, "250-PIPELINING\r\n"));
	assert_non_null(strstr(o, "250-SIZE 10000\r\n"));
	assert_non_null(strstr(o, "250-8BITMIME\r\n"));
	assert_non_null(strstr(o, "250-SMTPUTF8\r\n"));
	assert_non_null(strstr(o, "250-ENHANCEDSTATUSCODES\r\n"));
	assert_non_null(strstr(o, "250-CHUNKING\r\n"));
	assert_null(strstr(o, "STARTTLS"));
	assert_null(strstr(o, "AUTH"));
	buf_free(&out);
	smtp_session_free(&s);
	fake_free(&f);
}

static void test_received_first(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO client.example\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nbody\r\n.\r\n", &out);
	assert_int_equal(f.commits, 1);
	const char *c = buf_cstr(&f.committed);
	const char *want = "Received: from client.example (unknown [192.0.2.1])\r\n\tby mx.example.test (Postern) with ESMTP id 0000000000000001\r\n\tfor <alice@example.test>; ";
	if (strncmp(c, want, strlen(want)) != 0)
		fail_msg("spool starts with \"%.200s\"", c);
	const char *end = strstr(c, "\r\nbody\r\n<<END>>");
	assert_non_null(end);
	/* the header's last line is the date, ended by CRLF */
	assert_null(memchr(c, '\n', 0));
	assert_string_equal(f.last_env_sender, "s@x.example");
	assert_int_equal(f.last_env_rcpts, 1);
	assert_non_null(strstr(buf_cstr(&out), "250 2.0.0 Ok: queued as 0000000000000001\r\n"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);
}

static void test_received_hostile_helo(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "HELO a\tb\xc3\xa9\"x\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<alice@example.test>\r\n"
		"RCPT TO:<bob@example.test>\r\nDATA\r\n.\r\n", &out);
	assert_int_equal(f.commits, 1);
	const char *c = buf_cstr(&f.committed);
	/* The HELO name is reduced to printable ASCII; no "for" with two recipients. */
	const char *hdr_end = strstr(c, "<<END>>");
	assert_non_null(hdr_end);
	for (const char *p = c; p < hdr_end; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch >= 0x80 || (ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t'))
			fail_msg("Received header has byte %#x: \"%.200s\"", ch, c);
	}
	assert_null(strstr(c, "\tfor <"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);
}

/* The 503 at DATA names every refusal and the best fix. */
static void test_explaining_503(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<me@x.example>\r\nRCPT TO:<friend@remote.example>\r\n"
		"RCPT TO:<nobody@example.test>\r\n", &out);
	buf_reset(&out);
	feed_str(s, &f, "DATA\r\n", &out);
	const char *o = buf_cstr(&out);
	if (strncmp(o, "503-5.5.1 No valid recipients", 29) != 0)
		fail_msg("503 reads:\n%s", o);
	assert_non_null(strstr(o, "503-5.5.1 <friend@remote.example>: relaying denied"));
	assert_non_null(strstr(o, "503-5.5.1 <nobody@example.test>: no mailbox named \"nobody\""));
	assert_non_null(strstr(o, "(ref 7."));
	/* the last line is the one fix, and it is about logging in */
	const char *fix = strstr(o, "503 5.5.1 Fix: ");
	assert_non_null(fix);
	assert_non_null(strstr(fix, "requires authentication"));
	assert_non_null(strstr(fix, "\r\n"));
	assert_true(strstr(fix, "\r\n")[2] == '\0');
	assert_null(strstr(o, "\r\n\r\n"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);

	/* Many refusals: the first 8 listed, then a count. */
	s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<me@x.example>\r\n", &out);
	for (int i = 0; i < 11; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "RCPT TO:<u%d@remote%d.example>\r\n", i, i);
		feed_str(s, &f, cmd, &out);
	}
	buf_reset(&out);
	feed_str(s, &f, "DATA\r\n", &out);
	o = buf_cstr(&out);
	assert_non_null(strstr(o, "<u0@remote0.example>"));
	assert_non_null(strstr(o, "<u7@remote7.example>"));
	assert_null(strstr(o, "<u8@remote8.example>"));
	assert_non_null(strstr(o, "... and 3 more refused recipients"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);

	/* A syntax refusal is listed with the client's text, made printable. */
	s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<me@x.example>\r\nRCPT TO:<bad@@x>\r\n", &out);
	buf_reset(&out);
	feed_str(s, &f, "DATA\r\n", &out);
	o = buf_cstr(&out);
	assert_non_null(strstr(o, "503-5.5.1 <bad@@x>: "));   /* named as an address, not "<TO:<...>>" */
	assert_null(strstr(o, "TO:"));
	assert_non_null(strstr(o, "Fix: correct the recipient addresses"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);
}

/* feed() stops at the end of data and waits for the commit. */
/* The seed scenario on a submission port: no login, MAIL refused (530), RCPTs answered
 * 503 "No sender", then DATA: the 503 names whose message was not sent (the first few
 * recipients, escaped, and a count of the rest) and the MAIL refusal behind it. */
static void test_503_names_recipients_after_refused_mail(void **state)
{
	(void)state;
	struct smtp_conn_info sub = conn_info;
	sub.submission = true;
	struct fake f;
	struct smtp_session *s = new_session_info(&f, NULL, &sub);
	struct buf out;
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<me@example.test>\r\nRCPT TO:<friend@elsewhere.example>\r\n", &out);
	buf_reset(&out);
	feed_str(s, &f, "DATA\r\n", &out);
	const char *o = buf_cstr(&out);
	if (strncmp(o, "503-5.5.1 Your message to friend@elsewhere.example was not sent: ", 65) != 0)
		fail_msg("503 reads:\n%s", o);
	assert_non_null(strstr(o, "503-5.5.1 MAIL FROM:<me@example.test>: authentication required"));
	assert_non_null(strstr(o, "503 5.5.1 Fix: log in before sending"));
	/* a new MAIL forgets them */
	buf_reset(&out);
	feed_str(s, &f, "MAIL FROM:<me@example.test>\r\nDATA\r\n", &out);
	assert_null(strstr(buf_cstr(&out), "friend@"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);

	/* many, some hostile: four named (escaped), then "and K more"; more recipients
	 * than max_bad_commands (5) do not end the session before the 503 */
	s = new_session_info(&f, NULL, &sub);
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<me@example.test>\r\nRCPT TO:<a@x.example>\r\n"
		"RCPT TO:<b\xc3\xa9@x.example> NOTIFY=NEVER\r\nRCPT TO:c@x.example\r\nRCPT TO:<d@x.example>\r\n"
		"RCPT TO:<e@x.example>\r\nRCPT TO:<f@x.example>\r\n", &out);
	buf_reset(&out);
	feed_str(s, &f, "DATA\r\n", &out);
	o = buf_cstr(&out);
	const char *first = "503-5.5.1 Your message to a@x.example, b??@x.example, c@x.example, d@x.example and 2 more was not sent";
	assert_false(smtp_session_wants_close(s));
	if (strncmp(o, first, strlen(first)) != 0)
		fail_msg("503 reads:\n%s", o);
	assert_null(strstr(o, "e@x.example"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);
}

/* Directory harvesting: unknown recipients past the allowance are answered after a
 * growing hold (asked of the transport, never slept), and at the limit the session
 * ends with 421 4.7.0.  Known recipients and temporary refusals do not count. */
static unsigned hold_calls, hold_ms[64];
static void fake_hold(void *ctx, unsigned ms)
{
	(void)ctx;
	if (hold_calls < 64)
		hold_ms[hold_calls] = ms;
	hold_calls++;
}

static void test_harvesting_slowed_then_closed(void **state)
{
	(void)state;
	struct fake f;
	memset(&f, 0, sizeof(f));
	buf_init(&f.spool, 1 << 16);
	buf_init(&f.committed, 1 << 16);
	struct smtp_hooks h = {
		.ctx = &f, .decide = fake_decide, .spool_open = fake_spool_open,
		.spool_write = fake_spool_write, .spool_abort = fake_spool_abort, .spool_commit = fake_spool_commit,
		.hold = fake_hold,
	};
	struct smtp_limits lim = default_limits;
	lim.max_refused_rcpts = 6;
	lim.refused_rcpt_delay_after = 2;
	lim.refused_rcpt_delay_ms = 2000;
	hold_calls = 0;
	struct smtp_session *s = smtp_session_new(&conn_info, &lim, &h);
	assert_non_null(s);
	smtp_session_start(s);
	struct buf out;
	buf_init(&out, 1 << 16);
	take_output(s, &out);
	/* all pipelined at once, as a harvester would */
	struct buf in;
	buf_init(&in, 1 << 16);
	buf_appends(&in, "EHLO c\r\nMAIL FROM:<s@x.example>\r\n");
	buf_appends(&in, "RCPT TO:<alice@example.test>\r\nRCPT TO:<tempfail@example.test>\r\n");
	for (int i = 0; i < 8; i++)
		buf_printf(&in, "RCPT TO:<guess%d@example.test>\r\n", i);
	size_t pos = 0;
	unsigned seen_holds = 0;
	for (int guard = 0; guard < 100 && pos < in.len && !smtp_session_wants_close(s); guard++) {
		pos += smtp_session_feed(s, in.data + pos, in.len - pos);
		size_t before = out.len;
		take_output(s, &out);
		if (smtp_session_waiting(s)) {
			/* the held reply is not out yet */
			assert_int_equal(hold_calls, seen_holds + 1);
			char held[32];
			snprintf(held, sizeof(held), "guess%u@", 2 + seen_holds);
			seen_holds = hold_calls;
			buf_appendc(&out, '\0');
			out.len--;
			assert_null(strstr(out.data, held));
			smtp_session_hold_done(s);
			take_output(s, &out);
			buf_appendc(&out, '\0');
			out.len--;
			assert_non_null(strstr(out.data + before, held));
			continue;
			take_output(s, &out);
		}
	}
	char sum[512];
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|451 4.3.0|550 5.1.1|550 5.1.1|550 5.1.1|550 5.1.1"
		"|550 5.1.1|550 5.1.1|421 4.7.0");
	assert_true(smtp_session_wants_close(s));
	/* 3rd, 4th, 5th guesses held 2, 4, 5 (capped) seconds; the 6th ends the session */
	assert_int_equal(hold_calls, 3);
	assert_int_equal(hold_ms[0], 2000);
	assert_int_equal(hold_ms[1], 4000);
	assert_int_equal(hold_ms[2], 5000);
	buf_appendc(&out, '\0');
	assert_non_null(strstr(out.data, "421-4.7.0 mx.example.test Too many unknown recipients (6)"));
	buf_free(&in);
	buf_free(&out);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	fake_free(&f);
}

/* A refused BDAT chunk: while its octets arrive the session is in data (the data
 * deadlines apply), nothing is answered and no spool is opened; the one 503 comes
 * when the last octet is read, and then commands are read again. */
static void test_bdat_discard(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	const char *head = "EHLO c\r\nBDAT 12\r\nQUIT\r\n";
	assert_int_equal(smtp_session_feed(s, head, strlen(head)), strlen(head));
	take_output(s, &out);
	buf_reset(&out);
	assert_true(smtp_session_in_data(s));
	assert_int_equal(smtp_session_declared_size(s), 0);
	assert_false(smtp_session_wants_close(s));
	const char *rest = "RSET\r\nNOOP\r\n";
	assert_int_equal(smtp_session_feed(s, rest, 3), 3);
	take_output(s, &out);
	assert_int_equal(out.len, 0);
	assert_int_equal(smtp_session_feed(s, rest + 3, strlen(rest) - 3), strlen(rest) - 3);
	take_output(s, &out);
	assert_non_null(strstr(buf_cstr(&out), "503 5.5.1"));
	assert_non_null(strstr(buf_cstr(&out), "250 2.0.0 Ok\r\n"));
	assert_null(strstr(buf_cstr(&out), "221"));
	assert_false(smtp_session_in_data(s));
	assert_int_equal(f.opens, 0);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

static void test_commit_wait(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	take_output(s, &out);
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n";
	size_t len = strlen(in), tail = strlen("NOOP\r\nQUIT\r\n");
	size_t used = smtp_session_feed(s, in, len);
	assert_int_equal(used, len - tail);
	assert_true(smtp_session_waiting(s));
	assert_int_equal(f.commits, 1);
	take_output(s, &out);
	assert_null(strstr(buf_cstr(&out), "queued"));
	/* while waiting nothing is consumed */
	assert_int_equal(smtp_session_feed(s, in + used, len - used), 0);
	take_output(s, &out);
	assert_null(strstr(buf_cstr(&out), "queued"));
	f.commit_running = false;
	smtp_session_commit_done(s, true);
	assert_false(smtp_session_waiting(s));
	take_output(s, &out);
	assert_non_null(strstr(buf_cstr(&out), "250 2.0.0 Ok: queued as"));
	/* a second commit_done is ignored */
	smtp_session_commit_done(s, true);
	buf_reset(&out);
	take_output(s, &out);
	assert_int_equal(out.len, 0);
	assert_int_equal(smtp_session_feed(s, in + used, len - used), tail);
	take_output(s, &out);
	assert_string_equal(buf_cstr(&out), "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
	assert_true(smtp_session_wants_close(s));
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

static void test_commit_failure(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	struct buf out;
	buf_init(&out, 1 << 16);
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";
	drive(s, &f, in, strlen(in), 0, false, &out);
	char sum[256];
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|354|451 4.3.0|250 2.0.0");
	assert_non_null(strstr(buf_cstr(&out), "(ref 7."));
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

/* The end-of-data decision refused the message (the quota stage): no commit, the
 * spool file is dropped, and the reply is the verdict in the quota's words. */
static void test_end_of_data_refused_no_room(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	f.eod_full = true;
	struct buf out;
	buf_init(&out, 1 << 16);
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";
	size_t len = strlen(in);
	assert_int_equal(smtp_session_feed(s, in, len), len);
	assert_false(smtp_session_waiting(s));
	take_output(s, &out);
	const char *o = buf_cstr(&out);
	assert_non_null(strstr(o, "452-4.2.2 Message not accepted: it is 50.0 KB, and the mailbox of alice@example.test has 40.0 KB left\r\n"));
	assert_non_null(strstr(o, "452 4.2.2 The owner of the mailbox must delete mail"));
	assert_non_null(strstr(o, "(ref "));
	assert_null(strstr(o, "queued"));
	assert_non_null(strstr(o, "250 2.0.0 Ok\r\n"));
	assert_int_equal(f.eod_asked, 1);
	assert_int_equal(f.commits, 0);
	assert_int_equal(f.aborts, 1);
	/* a late commit_done is ignored */
	smtp_session_commit_done(s, true);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

/* The spool is flushed before the end-of-data decision (its stages read the file); a
 * flush that fails is a spool failure: 452 4.3.1 for lack of space, else 451 4.3.0,
 * and nothing is asked or committed. */
static void test_end_of_data_after_flush(void **state)
{
	(void)state;
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n";
	for (int no_space = 0; no_space < 3; no_space++) {
		struct fake f;
		struct smtp_session *s = new_session(&f, NULL);
		f.fail_flush = no_space > 0;
		f.no_space = no_space == 2;
		struct buf out;
		buf_init(&out, 1 << 16);
		drive(s, &f, in, strlen(in), 0, true, &out);
		char sum[256];
		summarise(&out, sum, sizeof(sum));
		assert_int_equal(f.flushes, 1);
		if (no_space == 0) {
			assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0");
			assert_int_equal(f.eod_asked, 1);
		} else {
			assert_string_equal(sum, no_space == 2 ? "220|250|250 2.1.0|250 2.1.5|354|452 4.3.1"
				: "220|250|250 2.1.0|250 2.1.5|354|451 4.3.0");
			assert_int_equal(f.eod_asked, 0);
			assert_int_equal(f.commits, 0);
			assert_int_equal(f.aborts, 1);
		}
		smtp_session_free(&s);
		assert_int_equal(f.violations, 0);
		buf_free(&out);
		fake_free(&f);
	}
}

/* The end-of-data decision gets the envelope: sender, HELO, every recipient and
 * whether its domain is local (RCPT's finding), and MAIL's findings (f->txn). */
static void test_end_of_data_facts(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	f.authenticated = true;   /* may relay: one local, one remote recipient */
	struct buf out;
	buf_init(&out, 1 << 16);
	const char *in = "EHLO client.example\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\n"
		"RCPT TO:<r@elsewhere.example>\r\nDATA\r\nx\r\n.\r\n";
	drive(s, &f, in, strlen(in), 0, true, &out);
	char sum[256];
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|250 2.1.5|354|250 2.0.0");
	assert_int_equal(f.eod_asked, 1);
	assert_string_equal(f.eod_sender, "s@x.example");
	assert_string_equal(f.eod_helo, "client.example");
	assert_int_equal(f.eod_rcpts, 2);
	assert_true(f.eod_local[0]);
	assert_false(f.eod_local[1]);
	assert_true(f.eod_txn);
	assert_int_equal(f.commits, 1);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

/* RFC 3463 X.3.1: the server's own storage, at MAIL and at the end of data. */
static void test_storage_refusals(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	char sum[256];
	struct smtp_session *s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	f.limit_room = true;
	f.room = 0;
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\n";
	drive(s, &f, in, strlen(in), 0, true, &out);
	assert_non_null(strstr(buf_cstr(&out), "452-4.3.1 Insufficient system storage: this server is out of space"));
	f.room = 1000;
	buf_reset(&out);
	in = "MAIL FROM:<s@x.example> SIZE=2000\r\nMAIL FROM:<s@x.example> SIZE=500\r\n";
	drive(s, &f, in, strlen(in), 0, true, &out);
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "452 4.3.1|250 2.1.0");
	assert_non_null(strstr(buf_cstr(&out), "the message (2.0 KB, declared with SIZE) does not fit"));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);

	/* a write fails for lack of space: 452 4.3.1, not 451 4.3.0 */
	s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n";
	drive(s, &f, in, strlen(in), 0, true, &out);
	f.fail_write = true;
	f.no_space = true;
	buf_reset(&out);
	in = "x\r\n.\r\n";
	drive(s, &f, in, strlen(in), 0, true, &out);
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "452 4.3.1");
	assert_non_null(strstr(buf_cstr(&out), "ran out of space while storing the message"));
	assert_int_equal(f.commits, 0);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

static void test_spool_failures(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	char sum[256];
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";

	struct smtp_session *s = new_session(&f, NULL);
	f.fail_open = true;
	buf_init(&out, 1 << 16);
	drive(s, &f, in, strlen(in), 0, true, &out);
	summarise(&out, sum, sizeof(sum));
	/* DATA refused; then "x" and "." are commands */
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|451 4.3.0|500 5.5.2|500 5.5.2|250 2.0.0");
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);

	s = new_session(&f, NULL);
	f.fail_write = true;
	buf_init(&out, 1 << 16);
	drive(s, &f, in, strlen(in), 0, true, &out);
	summarise(&out, sum, sizeof(sum));
	/* the Received header cannot be written: DATA refused, spool aborted */
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|451 4.3.0|500 5.5.2|500 5.5.2|250 2.0.0");
	assert_int_equal(f.aborts, 1);
	assert_int_equal(f.commits, 0);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

static void test_timeout_and_shutdown(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	char sum[256];
	struct smtp_session *s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\npartial", &out);
	smtp_session_timeout(s);
	take_output(s, &out);
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "220|250|250 2.1.0|250 2.1.5|354|421 4.4.2");
	assert_true(smtp_session_wants_close(s));
	assert_int_equal(f.aborts, 1);
	assert_false(f.open);
	assert_int_equal(smtp_session_feed(s, "NOOP\r\n", 6), 0);
	smtp_session_timeout(s);   /* twice: nothing more */
	smtp_session_shutdown(s);
	buf_reset(&out);
	take_output(s, &out);
	assert_int_equal(out.len, 0);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);

	s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	smtp_session_shutdown(s);
	take_output(s, &out);
	summarise(&out, sum, sizeof(sum));
	assert_string_equal(sum, "220|421 4.3.2");
	assert_true(smtp_session_wants_close(s));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);
}

/* What the transport's deadlines ask (net/deadline.c): is a line partly in, is
 * message content being received; and the 421 4.4.2 that names the deadline. */
static void test_deadlines(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	struct smtp_session *s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	assert_false(smtp_session_line_pending(s));
	feed_str(s, &f, "EHLO c\r\nNO", &out);
	assert_true(smtp_session_line_pending(s));
	assert_false(smtp_session_in_data(s));
	feed_str(s, &f, "OP\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &out);
	assert_false(smtp_session_line_pending(s));
	assert_true(smtp_session_in_data(s));
	feed_str(s, &f, "Subject: slow\r\n", &out);
	assert_false(smtp_session_line_pending(s));   /* content lines are not command lines */
	smtp_session_deadline(s, SMTP_DEADLINE_DATA_RATE, 1024);
	take_output(s, &out);
	assert_non_null(strstr(buf_cstr(&out), "421-4.4.2 mx.example.test Timeout: the message arrives slower than 1024 octets per second"));
	assert_true(smtp_session_wants_close(s));
	assert_int_equal(f.aborts, 1);   /* nothing accepted */
	assert_false(smtp_session_in_data(s));
	smtp_session_free(&s);
	buf_free(&out);
	fake_free(&f);

	static const struct { enum smtp_deadline d; const char *words; } cases[] = {
		{ SMTP_DEADLINE_LINE, "Timeout: a command line took more than 7 seconds to arrive" },
		{ SMTP_DEADLINE_LOGIN, "Timeout: no login within 7 seconds of connecting" },
		{ SMTP_DEADLINE_SESSION, "Session longer than 7 seconds" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = new_session(&f, NULL);
		buf_init(&out, 1 << 16);
		feed_str(s, &f, "EHLO c\r\nNOO", &out);
		smtp_session_deadline(s, cases[i].d, 7);
		take_output(s, &out);
		assert_non_null(strstr(buf_cstr(&out), "421-4.4.2 "));
		assert_non_null(strstr(buf_cstr(&out), cases[i].words));
		assert_true(smtp_session_wants_close(s));
		assert_false(smtp_session_line_pending(s));
		smtp_session_free(&s);
		buf_free(&out);
		fake_free(&f);
	}
}

/* The connection drops in the middle of DATA: the spool is aborted once. */
static void test_disconnect_in_data(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	struct smtp_session *s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\npartial", &out);
	smtp_session_disconnected(s);
	assert_int_equal(f.aborts, 1);
	smtp_session_free(&s);
	assert_int_equal(f.aborts, 1);
	assert_int_equal(f.violations, 0);
	buf_free(&out);
	fake_free(&f);
}

/* The connection drops while the commit runs: the commit owns the spool, so
 * neither disconnected() nor free() may abort it (session.h). */
static void test_disconnect_during_commit(void **state)
{
	(void)state;
	struct fake f;
	struct buf out;
	struct smtp_session *s = new_session(&f, NULL);
	buf_init(&out, 1 << 16);
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n";
	assert_int_equal(smtp_session_feed(s, in, strlen(in)), strlen(in));
	assert_true(smtp_session_waiting(s));
	smtp_session_disconnected(s);
	assert_int_equal(f.aborts, 0);
	smtp_session_commit_done(s, true);   /* the network layer may still report it */
	smtp_session_free(&s);
	unsigned aborts = f.aborts, violations = f.violations;
	char what[200];
	snprintf(what, sizeof(what), "%s", f.violation);
	buf_free(&out);
	fake_free(&f);
	if (aborts != 0 || violations != 0)
		fail_msg("spool_abort called %u time(s) after the commit took the spool (%s)", aborts, what);
}

static void test_free_during_commit(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_session(&f, NULL);
	const char *in = "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n";
	assert_int_equal(smtp_session_feed(s, in, strlen(in)), strlen(in));
	assert_true(smtp_session_waiting(s));
	smtp_session_free(&s);
	assert_int_equal(f.aborts, 0);
	assert_int_equal(f.violations, 0);
	fake_free(&f);
}

/* A client that pipelines without reading replies is paused, not buffered without end. */
static void test_output_backpressure(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_limits lim = default_limits;
	lim.max_bad_commands = 1000000;
	struct smtp_session *s = new_session(&f, &lim);
	size_t n = 20000;
	char *in = malloc(n * 6);
	for (size_t i = 0; i < n; i++)
		memcpy(in + i * 6, "HELP\r\n", 6);
	size_t used = smtp_session_feed(s, in, n * 6);
	assert_true(used < n * 6);
	struct buf *o = smtp_session_output(s);
	assert_true(o->len < (256u << 10));
	assert_false(o->truncated);
	/* after the output is read, the rest goes through */
	size_t total = used;
	while (total < n * 6) {
		buf_consume(o, o->len);
		size_t u = smtp_session_feed(s, in + total, n * 6 - total);
		assert_true(u > 0);
		total += u;
	}
	free(in);
	smtp_session_free(&s);
	fake_free(&f);
}

/* A long DATA body goes to the spool in pieces; the spool gets every byte. */
/* Command lines up to max_line octets (CRLF included) pass; longer ones get 500 5.5.6,
 * whatever the split, and the session goes on. */
static void test_line_limits(void **state)
{
	(void)state;
	static const struct { size_t len; const char *want; } rows[] = {
		{ 511, "220|250 2.0.0|250 2.0.0" },
		{ 512, "220|250 2.0.0|250 2.0.0" },
		{ 513, "220|500 5.5.6|250 2.0.0" },
		{ 1000, "220|500 5.5.6|250 2.0.0" },
		{ 70000, "220|500 5.5.6|250 2.0.0" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		static const size_t chunks[] = { 0, 1, 100, 511, 512, 513 };
		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			size_t n = rows[i].len;
			char *in = malloc(n + 6);
			memset(in, 'X', n);
			memcpy(in, "NOOP ", 5);
			memcpy(in + n - 2, "\r\nNOOP\r\n", 8);
			struct fake f;
			struct smtp_session *s = new_session(&f, NULL);
			struct buf out;
			buf_init(&out, 1 << 16);
			take_output(s, &out);
			drive(s, &f, in, n + 6, chunks[k], true, &out);
			char sum[256];
			summarise(&out, sum, sizeof(sum));
			if (strcmp(sum, rows[i].want) != 0)
				fail_msg("line of %zu octets in %zu-byte pieces: %s", n, chunks[k], sum);
			buf_free(&out);
			smtp_session_free(&s);
			fake_free(&f);
			free(in);
		}
	}
}

/* --- AUTH through the shared login exchange (auth/login.h), in SMTP's words --- */

static struct {
	struct throttle_verdict verdict;   /* what auth_blocked answers for a known user */
	int verify_calls;
	char mech[16], user[400], pass[600];
} auth_fake;

static struct throttle_verdict auth_fake_blocked(void *ctx, const char *user)
{
	(void)ctx;
	struct throttle_verdict open = { THROTTLE_OPEN, 0 };
	return user ? auth_fake.verdict : open;
}

static void auth_fake_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	(void)ctx;
	auth_fake.verify_calls++;
	snprintf(auth_fake.mech, sizeof(auth_fake.mech), "%s", mech);
	snprintf(auth_fake.user, sizeof(auth_fake.user), "%s", user);
	snprintf(auth_fake.pass, sizeof(auth_fake.pass), "%s", pass);
}

static struct smtp_session *new_submission(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	memset(&auth_fake, 0, sizeof(auth_fake));
	buf_init(&f->spool, 1 << 20);
	buf_init(&f->committed, 1 << 22);
	struct smtp_conn_info info = conn_info;
	info.submission = true;
	info.tls_active = true;
	info.tls_description = "TLSv1.3";
	struct smtp_hooks h = {
		.ctx = f, .decide = fake_decide, .spool_open = fake_spool_open,
		.spool_write = fake_spool_write, .spool_abort = fake_spool_abort, .spool_commit = fake_spool_commit,
		.spool_room = fake_spool_room, .spool_no_space = fake_spool_no_space,
		.auth_blocked = auth_fake_blocked, .auth_verify = auth_fake_verify,
	};
	struct smtp_session *s = smtp_session_new(&info, &default_limits, &h);
	assert_non_null(s);
	smtp_session_start(s);
	return s;
}

/* Feed a line, return what the session said (a reply with a hint is two lines:
 * "CODE-ENH reason", "CODE ENH hint (ref R)"). */
static const char *say_line(struct smtp_session *s, const char *line, struct buf *out)
{
	buf_reset(out);
	size_t n = strlen(line);
	assert_int_equal(smtp_session_feed(s, line, n), n);
	take_output(s, out);
	return buf_cstr(out);
}

static void test_auth_exchanges(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_submission(&f);
	struct buf out;
	buf_init(&out, 1 << 16);
	take_output(s, &out);
	assert_non_null(strstr(say_line(s, "EHLO client.example\r\n", &out), "250-AUTH PLAIN LOGIN\r\n"));
	/* PLAIN with an initial response: handed over, then the answer. */
	assert_string_equal(say_line(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n", &out), "");
	assert_int_equal(auth_fake.verify_calls, 1);
	assert_string_equal(auth_fake.mech, "PLAIN");
	assert_string_equal(auth_fake.user, "alice@example.test");
	assert_string_equal(auth_fake.pass, "secret");
	smtp_session_auth_done(s, LOGIN_FAILED, NULL, 0);
	take_output(s, &out);
	assert_true(strncmp(buf_cstr(&out), "535-5.7.8 ", 10) == 0);
	/* LOGIN: two challenges, then success. */
	assert_string_equal(say_line(s, "AUTH LOGIN\r\n", &out), "334 VXNlcm5hbWU6\r\n");
	assert_string_equal(say_line(s, "YWxpY2VAZXhhbXBsZS50ZXN0\r\n", &out), "334 UGFzc3dvcmQ6\r\n");
	assert_string_equal(say_line(s, "c2VjcmV0\r\n", &out), "");
	assert_int_equal(auth_fake.verify_calls, 2);
	assert_string_equal(auth_fake.mech, "LOGIN");
	smtp_session_auth_done(s, LOGIN_OK, "alice@example.test", 0);
	buf_reset(&out);
	take_output(s, &out);
	assert_true(strncmp(buf_cstr(&out), "235 2.7.0 ", 10) == 0);
	assert_string_equal(smtp_session_login(s), "alice@example.test");
	buf_free(&out);
	smtp_session_free(&s);
	fake_free(&f);
}

static void test_auth_client_errors_and_throttle(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_session *s = new_submission(&f);
	struct buf out;
	buf_init(&out, 1 << 16);
	take_output(s, &out);
	say_line(s, "EHLO client.example\r\n", &out);
	/* Cancel: 501 5.7.0, not a bad command. */
	assert_string_equal(say_line(s, "AUTH LOGIN\r\n", &out), "334 VXNlcm5hbWU6\r\n");
	assert_true(strncmp(say_line(s, "*\r\n", &out), "501-5.7.0 ", 10) == 0);
	/* Bad base64, as the initial response and as an answer. */
	assert_true(strncmp(say_line(s, "AUTH PLAIN not-base64!\r\n", &out), "501-5.5.2 ", 10) == 0);
	assert_string_equal(say_line(s, "AUTH PLAIN\r\n", &out), "334 \r\n");
	assert_true(strncmp(say_line(s, "A=GF\r\n", &out), "501-5.5.2 ", 10) == 0);
	assert_int_equal(auth_fake.verify_calls, 0);
	/* The throttle's verdicts, passed through: the account block names the account
	 * and when it ends; the address block says it is not the password. */
	auth_fake.verdict = (struct throttle_verdict){ THROTTLE_ACCOUNT, 1700000000 };
	const char *o = say_line(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n", &out);
	assert_true(strncmp(o, "454-4.7.0 ", 10) == 0);
	assert_non_null(strstr(o, "as alice@example.test from your address"));
	assert_non_null(strstr(o, "until 22:13 UTC"));
	auth_fake.verdict = (struct throttle_verdict){ THROTTLE_ADDRESS, 1700000000 };
	o = say_line(s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n", &out);
	assert_true(strncmp(o, "454-4.7.0 Logging in from your address is blocked until 22:13 UTC", 65) == 0);
	assert_int_equal(auth_fake.verify_calls, 0);
	assert_null(smtp_session_login(s));
	buf_free(&out);
	smtp_session_free(&s);
	fake_free(&f);
}

static void test_big_message(void **state)
{
	(void)state;
	struct fake f;
	struct smtp_limits lim = default_limits;
	lim.max_message = 1 << 20;
	struct smtp_session *s = new_session(&f, &lim);
	struct buf out;
	buf_init(&out, 1 << 16);
	feed_str(s, &f, "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n", &out);
	size_t lines = 5000;
	struct buf msg;
	buf_init(&msg, 1 << 22);
	for (size_t i = 0; i < lines; i++)
		buf_printf(&msg, "%s%05zu abcdefghijklmnopqrstuvwxyz\r\n", i % 7 == 0 ? "." : "", i);
	buf_appends(&msg, ".\r\nQUIT\r\n");
	drive(s, &f, msg.data, msg.len, 0, true, &out);
	assert_int_equal(f.commits, 1);
	assert_true(smtp_session_wants_close(s));
	struct buf body;
	buf_init(&body, 1 << 22);
	strip_received(&f.committed, &body);
	/* every dot-stuffed line lost its first dot */
	assert_int_equal(body.len, lines * 34 + 7);
	assert_null(memmem(body.data, body.len, "\n.", 2));
	buf_free(&body);
	buf_free(&msg);
	buf_free(&out);
	smtp_session_free(&s);
	assert_int_equal(f.violations, 0);
	fake_free(&f);
}

/* Message lines up to max_message_line octets (CR LF not counted) pass, longer ones get
 * 550 5.6.0 naming the line, by DATA and by BDAT alike, whatever the split. */
static void test_message_line_limit(void **state)
{
	(void)state;
	static const struct { size_t len; bool ok; } rows[] = { { 1200, true }, { 1201, false }, { 5000, false } };
	static const size_t chunks[] = { 0, 1, 7, 1201 };
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int bdat = 0; bdat < 2; bdat++) {
			for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
				struct fake f;
				struct smtp_limits lim = default_limits;
				lim.max_message_line = 1200;
				struct smtp_session *s = new_session(&f, &lim);
				struct buf msg, in, out;
				buf_init(&msg, 1 << 16);
				buf_init(&in, 1 << 16);
				buf_init(&out, 1 << 16);
				buf_appends(&msg, "Subject: x\r\n\r\nshort\r\n");
				for (size_t n = 0; n < rows[i].len; n++)
					buf_appendc(&msg, 'a');
				buf_appends(&msg, "\r\nend\r\n");
				buf_appends(&in, "EHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.test>\r\n");
				if (bdat) {
					buf_printf(&in, "BDAT %zu LAST\r\n", msg.len);
					buf_append(&in, msg.data, msg.len);
				} else {
					buf_appends(&in, "DATA\r\n");
					buf_append(&in, msg.data, msg.len);
					buf_appends(&in, ".\r\n");
				}
				take_output(s, &out);
				drive(s, &f, in.data, in.len, chunks[k], true, &out);
				char sum[256];
				summarise(&out, sum, sizeof(sum));
				const char *want = rows[i].ok ? (bdat ? "220|250|250 2.1.0|250 2.1.5|250 2.0.0" : "220|250|250 2.1.0|250 2.1.5|354|250 2.0.0")
					: (bdat ? "220|250|250 2.1.0|250 2.1.5|550 5.6.0" : "220|250|250 2.1.0|250 2.1.5|354|550 5.6.0");
				if (strcmp(sum, want) != 0)
					fail_msg("%s line of %zu in %zu-byte pieces: %s", bdat ? "BDAT" : "DATA", rows[i].len, chunks[k], sum);
				if (!rows[i].ok) {
					char words[64];
					snprintf(words, sizeof(words), "line 4 is %zu octets long", rows[i].len);
					buf_appendc(&out, '\0');
					if (!strstr(out.data, words))
						fail_msg("no \"%s\" in %s", words, out.data);
				}
				assert_int_equal(f.violations, 0);
				buf_free(&msg);
				buf_free(&in);
				buf_free(&out);
				smtp_session_free(&s);
				fake_free(&f);
			}
		}
	}
}

int main(void)
{
	log_set_level(LOG_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_greeting_and_ehlo),
		cmocka_unit_test(test_received_first),
		cmocka_unit_test(test_received_hostile_helo),
		cmocka_unit_test(test_explaining_503),
		cmocka_unit_test(test_503_names_recipients_after_refused_mail),
		cmocka_unit_test(test_harvesting_slowed_then_closed),
		cmocka_unit_test(test_bdat_discard),
		cmocka_unit_test(test_commit_wait),
		cmocka_unit_test(test_commit_failure),
		cmocka_unit_test(test_end_of_data_refused_no_room),
		cmocka_unit_test(test_end_of_data_facts),
		cmocka_unit_test(test_end_of_data_after_flush),
		cmocka_unit_test(test_storage_refusals),
		cmocka_unit_test(test_spool_failures),
		cmocka_unit_test(test_timeout_and_shutdown),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_disconnect_in_data),
		cmocka_unit_test(test_disconnect_during_commit),
		cmocka_unit_test(test_free_during_commit),
		cmocka_unit_test(test_output_backpressure),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_big_message),
		cmocka_unit_test(test_auth_exchanges),
		cmocka_unit_test(test_auth_client_errors_and_throttle),
		cmocka_unit_test(test_message_line_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
