/* test_pop3_session.c - the POP3 session driven by hostile scripts through fake hooks
 * and a fake maildrop (plus one real Maildir).
 *
 * Every script is fed whole, byte by byte, and in odd-sized pieces; the output must
 * be identical every way.  The fake maildrop checks the hook protocol: at most one
 * open message, no use after close, exactly one close, expunge only at QUIT. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pop3/session.h"
#include "store/mailbox.h"
#include "store/maildir.h"
#include "util/buf.h"
#include "util/log.h"

/* --- the fake maildrop --------------------------------------------------------- */

#define MAX_MSGS 8

struct fake_msg {
	const char *uid;
	const char *text;     /* LF line ends, as stored */
	size_t len;           /* 0: strlen(text) */
};

struct fake_box {
	struct fake_msg msgs[MAX_MSGS];
	size_t n;
	bool open;            /* the maildrop is open */
	unsigned closes, expunges, msg_opens;
	bool deleted_at_expunge[MAX_MSGS];
	bool msg_is_open;
	bool fail_read_at;    /* msg_read fails after the first chunk */
	bool fail_open_msg;
	bool fail_expunge;
	unsigned violations;
};

struct fake_reader {
	struct fake_box *box;
	const char *p;
	size_t left;
	unsigned reads;
};

static size_t msg_len(const struct fake_msg *m)
{
	return m->len ? m->len : strlen(m->text);
}

static uint64_t crlf_size(const struct fake_msg *m)
{
	uint64_t n = 0;
	size_t len = msg_len(m);
	for (size_t i = 0; i < len; i++)
		n += (m->text[i] == '\n' && (i == 0 || m->text[i - 1] != '\r')) ? 2 : 1;
	return n;
}

static size_t fb_count(void *mb)
{
	struct fake_box *b = mb;
	if (!b->open)
		b->violations++;
	return b->n;
}

static uint64_t fb_size(void *mb, size_t i)
{
	struct fake_box *b = mb;
	if (!b->open || i >= b->n)
		b->violations++;
	return crlf_size(&b->msgs[i]);
}

static const char *fb_uid(void *mb, size_t i)
{
	struct fake_box *b = mb;
	if (!b->open || i >= b->n)
		b->violations++;
	return b->msgs[i].uid;
}

static void *fb_open(void *mb, size_t i)
{
	struct fake_box *b = mb;
	if (!b->open || i >= b->n || b->msg_is_open)
		b->violations++;
	if (b->fail_open_msg)
		return NULL;
	struct fake_reader *r = calloc(1, sizeof(*r));
	r->box = b;
	r->p = b->msgs[i].text;
	r->left = msg_len(&b->msgs[i]);
	b->msg_is_open = true;
	b->msg_opens++;
	return r;
}

static ssize_t fb_read(void *msg, void *p, size_t n)
{
	struct fake_reader *r = msg;
	if (r->box->fail_read_at && r->reads++ > 0)
		return -1;
	/* Odd chunk sizes so that LF/CR/"." land on chunk edges. */
	size_t k = n < 7 ? n : 7;
	if (k > r->left)
		k = r->left;
	memcpy(p, r->p, k);
	r->p += k;
	r->left -= k;
	return (ssize_t)k;
}

static void fb_close_msg(void *msg)
{
	struct fake_reader *r = msg;
	if (!r->box->msg_is_open)
		r->box->violations++;
	r->box->msg_is_open = false;
	free(r);
}

static bool fb_expunge(void *mb, const bool *deleted, size_t *removed, char *err, size_t errlen)
{
	struct fake_box *b = mb;
	if (!b->open || b->msg_is_open)
		b->violations++;
	b->expunges++;
	*removed = 0;
	for (size_t i = 0; i < b->n; i++) {
		b->deleted_at_expunge[i] = deleted[i];
		*removed += deleted[i];
	}
	if (b->fail_expunge) {
		snprintf(err, errlen, "fake failure");
		*removed = 0;
		return false;
	}
	return true;
}

static void fb_close(void *mb)
{
	struct fake_box *b = mb;
	if (!b->open || b->msg_is_open)
		b->violations++;
	b->open = false;
	b->closes++;
}

static const struct pop3_maildrop_ops fake_ops = {
	.count = fb_count, .size = fb_size, .uid = fb_uid, .msg_open = fb_open, .msg_read = fb_read,
	.msg_close = fb_close_msg, .expunge = fb_expunge, .close = fb_close,
};

/* --- the fake server side ------------------------------------------------------ */

struct fake {
	struct fake_box box;
	enum pop3_mailbox_result open_result;
	bool real_maildir;
	char maildir[128];
	bool pending_auth;
	char user[400], pass[600], mech[16];
	time_t blocked_until;     /* auth_blocked answer */
	enum throttle_block block;
	unsigned verifies, mailbox_opens;
	char opened_for[400];
	size_t max_out;           /* the most output queued at once */
};

static struct throttle_verdict hook_blocked(void *ctx, const char *user)
{
	struct fake *f = ctx;
	(void)user;
	return (struct throttle_verdict){ f->block, f->blocked_until };
}

static void hook_verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct fake *f = ctx;
	f->pending_auth = true;
	f->verifies++;
	snprintf(f->mech, sizeof(f->mech), "%s", mech);
	snprintf(f->user, sizeof(f->user), "%s", user);
	snprintf(f->pass, sizeof(f->pass), "%s", pass);
}

static struct pop3_session *current;

static void hook_mailbox_open(void *ctx, const char *user)
{
	struct fake *f = ctx;
	f->mailbox_opens++;
	snprintf(f->opened_for, sizeof(f->opened_for), "%s", user);
	/* Answer from inside the hook, as a synchronous caller would. */
	if (f->real_maildir) {
		struct mailbox *mb;
		char err[256];
		enum mailbox_status st = mailbox_open(f->maildir, &mb, err, sizeof(err));
		pop3_session_mailbox_done(current, st == MAILBOX_OK ? POP3_MAILBOX_OK
			: st == MAILBOX_IN_USE ? POP3_MAILBOX_IN_USE : POP3_MAILBOX_TEMP, &pop3_maildir_ops, st == MAILBOX_OK ? mb : NULL);
		return;
	}
	if (f->open_result == POP3_MAILBOX_OK) {
		f->box.open = true;
		pop3_session_mailbox_done(current, POP3_MAILBOX_OK, &fake_ops, &f->box);
	} else {
		pop3_session_mailbox_done(current, f->open_result, NULL, NULL);
	}
}

static const struct pop3_limits limits = { .max_line = 255, .max_bad_commands = 5, .idle_timeout = 600 };

static struct pop3_conn_info info_plain(void)
{
	return (struct pop3_conn_info){ .conn_id = 9, .hostname = "pop.example.test", .client_addr = "192.0.2.7",
		.listener = "pop3", .tls_offered = true };
}

static struct pop3_conn_info info_tls(void)
{
	struct pop3_conn_info i = info_plain();
	i.tls_offered = false;
	i.tls_active = true;
	i.tls_description = "TLSv1.3";
	return i;
}

static void sample_box(struct fake_box *b)
{
	memset(b, 0, sizeof(*b));
	b->msgs[0] = (struct fake_msg){ "uid-one", "Subject: one\n\nHello\n.\n..two dots\nend\n" };
	b->msgs[1] = (struct fake_msg){ "uid-two", "Subject: two\nX: y\n\nline1\nline2\nline3\n" };
	b->msgs[2] = (struct fake_msg){ "uid-three", "Subject: three\n\n.starts with dot\nno final newline" };
	b->n = 3;
}

/* Run a script: feed in pieces of `piece` bytes (0: all at once), answer hooks,
 * pump streams, and return everything the session said. */
static char *run(struct fake *f, const struct pop3_conn_info *ci, const char *script, size_t piece,
	bool disconnect_at_end)
{
	struct pop3_hooks h = { .ctx = f, .auth_blocked = hook_blocked, .auth_verify = hook_verify,
		.mailbox_open = hook_mailbox_open };
	struct pop3_session *s = pop3_session_new(ci, &limits, &h);
	assert_non_null(s);
	current = s;
	pop3_session_start(s);
	struct buf all;
	buf_init(&all, 4u << 20);
	size_t len = strlen(script), pos = 0;
	unsigned spins = 0;
	for (;;) {
		struct buf *o = pop3_session_output(s);
		if (o->len > f->max_out)
			f->max_out = o->len;
		buf_append(&all, o->data, o->len);
		buf_consume(o, o->len);
		if (pop3_session_wants_close(s))
			break;
		if (pop3_session_streaming(s)) {
			pop3_session_pump(s);
			continue;
		}
		if (pop3_session_waiting(s)) {
			assert_true(f->pending_auth);
			f->pending_auth = false;
			bool ok = strcmp(f->user, "alice") == 0 && strcmp(f->pass, "secret") == 0;
			if (strcmp(f->user, "tempfail") == 0)
				pop3_session_auth_done(s, LOGIN_TEMPFAIL, NULL, 0);
			else
				pop3_session_auth_done(s, ok ? LOGIN_OK : LOGIN_FAILED, ok ? "alice@example.test" : NULL, 0);
			continue;
		}
		if (pop3_session_wants_tls(s))
			pop3_session_tls_started(s, "TLSv1.3 test");
		if (pos >= len)
			break;
		size_t n = piece && len - pos > piece ? piece : len - pos;
		size_t used = pop3_session_feed(s, script + pos, n);
		assert_true(used <= n);
		pos += used;
		if (used == 0 && !pop3_session_streaming(s) && !pop3_session_waiting(s) && !pop3_session_wants_tls(s) &&
			!pop3_session_wants_close(s))
			assert_true(++spins < 3);
	}
	if (disconnect_at_end)
		pop3_session_disconnected(s);
	pop3_session_free(&s);
	current = NULL;
	assert_null(s);
	char *r = strdup(buf_cstr(&all));
	buf_free(&all);
	return r;
}

/* Run the script whole, byte by byte and in pieces of 5 and 64: identical output. */
static char *run_all_ways(const struct pop3_conn_info *ci, void (*prep)(struct fake *), const char *script,
	struct fake *last)
{
	static const size_t pieces[] = { 0, 1, 5, 64 };
	char *first = NULL;
	for (size_t k = 0; k < 4; k++) {
		struct fake f = { 0 };
		sample_box(&f.box);
		if (prep)
			prep(&f);
		char *out = run(&f, ci, script, pieces[k], true);
		assert_int_equal(f.box.violations, 0);
		assert_false(f.box.open);   /* always closed in the end */
		if (!first) {
			first = out;
		} else {
			if (strcmp(first, out) != 0)
				fail_msg("piece %zu differs:\n--- whole\n%s\n--- pieces\n%s", pieces[k], first, out);
			free(out);
		}
		*last = f;
	}
	return first;
}

static void assert_has(const char *out, const char *needle)
{
	if (!strstr(out, needle))
		fail_msg("missing \"%s\" in:\n%s", needle, out);
}

static void assert_lacks(const char *out, const char *needle)
{
	if (strstr(out, needle))
		fail_msg("unexpected \"%s\" in:\n%s", needle, out);
}

/* Every line ends in CRLF, status lines within 512 octets. */
static void assert_well_formed(const char *out)
{
	const char *p = out;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		assert_true(e - p + 2 <= 1000);
		for (const char *q = p; q < e; q++)
			assert_true(*q != '\n' && *q != '\r');
		p = e + 2;
	}
}

/* The body of the multi-line response that follows `status` (e.g. "+OK 35 octets"),
 * un-stuffed. */
static char *multiline_after(const char *out, const char *status)
{
	const char *p = strstr(out, status);
	assert_non_null(p);
	p = strstr(p, "\r\n") + 2;
	if (strncmp(p, ".\r\n", 3) == 0)
		return strdup("");
	const char *end = strstr(p, "\r\n.\r\n");
	assert_non_null(end);
	end += 2;
	char *r = malloc((size_t)(end - p) + 1);
	size_t o = 0;
	bool bol = true;
	for (const char *q = p; q < end; q++) {
		if (bol && *q == '.') {
			bol = false;
			continue;   /* the stuffed dot (a line starting with "." always had one added) */
		}
		r[o++] = *q;
		bol = *q == '\n';
	}
	r[o] = '\0';
	return r;
}

/* --- tests -------------------------------------------------------------------- */

static void test_capa_before_tls(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_plain();
	struct fake f;
	char *out = run_all_ways(&ci, NULL, "CAPA\r\nQUIT\r\n", &f);
	assert_well_formed(out);
	assert_has(out, "+OK pop.example.test Postern POP3 server ready\r\n");
	/* RFC 2595 §6: logins are refused before TLS here, so only STLS is offered. */
	assert_has(out, "\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
		"IMPLEMENTATION Postern\r\nSTLS\r\n.\r\n");
	assert_lacks(out, "USER\r\n");
	assert_lacks(out, "SASL");
	assert_has(out, "+OK pop.example.test Postern POP3 server signing off\r\n");
	free(out);
	/* After STLS: USER and SASL, no STLS. */
	out = run_all_ways(&ci, NULL, "STLS\r\nCAPA\r\nQUIT\r\n", &f);
	const char *after = strstr(out, "Begin TLS");
	assert_non_null(after);
	assert_has(after, "\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n"
		"IMPLEMENTATION Postern\r\nSASL PLAIN LOGIN\r\n.\r\n");
	free(out);
	/* A listener that allows plaintext logins advertises them. */
	ci.allow_plaintext_auth = true;
	out = run_all_ways(&ci, NULL, "CAPA\r\nQUIT\r\n", &f);
	assert_has(out, "\r\nUSER\r\n");
	assert_has(out, "\r\nSASL PLAIN LOGIN\r\n");
	free(out);
}

static void test_plaintext_refused(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_plain();
	struct fake f;
	char *out = run_all_ways(&ci, NULL, "USER alice\r\nPASS secret\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nQUIT\r\n", &f);
	assert_well_formed(out);
	assert_has(out, "-ERR [AUTH] Login refused on an unencrypted connection: set the mail program's connection "
		"security to STARTTLS (STLS) on port 110, or to SSL/TLS on port 995 (ref 9.1)\r\n");
	assert_has(out, "(ref 9.3)\r\n");
	assert_int_equal(f.verifies, 0);
	free(out);
	/* Without STLS on this port the words point at port 995. */
	ci.tls_offered = false;
	out = run_all_ways(&ci, NULL, "USER alice\r\nCAPA\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [AUTH] Login refused on an unencrypted connection, and this port offers no STLS");
	assert_lacks(out, "STLS\r\n");
	free(out);
	/* Allowed by the listener: it logs in. */
	ci.allow_plaintext_auth = true;
	out = run_all_ways(&ci, NULL, "USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", &f);
	assert_has(out, "+OK Logged in: 3 messages");
	free(out);
}

static void test_stls(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_plain();
	struct fake f;
	char *out = run_all_ways(&ci, NULL, "USER alice\r\nSTLS\r\nCAPA\r\nPASS secret\r\nUSER alice\r\nPASS secret\r\nSTLS\r\nQUIT\r\n", &f);
	assert_well_formed(out);
	assert_has(out, "+OK Begin TLS negotiation\r\n");
	/* After TLS: no STLS offered, the USER before TLS is forgotten. */
	const char *after = strstr(out, "Begin TLS");
	assert_lacks(after, "\r\nSTLS\r\n");
	assert_has(after, "-ERR Send USER first, then PASS");
	assert_has(after, "+OK Logged in: 3 messages");
	assert_has(after, "-ERR STLS is not allowed after logging in");
	assert_string_equal(f.opened_for, "alice@example.test");
	free(out);
}

static void test_transaction(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char *out = run_all_ways(&ci, NULL,
		"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\nRETR 1\r\nTOP 2 1\r\nTOP 2 0\r\n"
		"RETR 3\r\nNOOP\r\nQUIT\r\n", &f);
	assert_well_formed(out);
	struct fake_box b;
	sample_box(&b);
	uint64_t s1 = crlf_size(&b.msgs[0]), s2 = crlf_size(&b.msgs[1]), s3 = crlf_size(&b.msgs[2]);
	char want[200];
	snprintf(want, sizeof(want), "+OK Logged in: 3 messages (%llu octets)\r\n", (unsigned long long)(s1 + s2 + s3));
	assert_has(out, want);
	snprintf(want, sizeof(want), "+OK 3 %llu\r\n", (unsigned long long)(s1 + s2 + s3));
	assert_has(out, want);
	snprintf(want, sizeof(want), "\r\n1 %llu\r\n2 %llu\r\n3 %llu\r\n.\r\n", (unsigned long long)s1,
		(unsigned long long)s2, (unsigned long long)s3);
	assert_has(out, want);
	snprintf(want, sizeof(want), "+OK 2 %llu\r\n", (unsigned long long)s2);
	assert_has(out, want);
	assert_has(out, "+OK Unique-ID listing follows\r\n1 uid-one\r\n2 uid-two\r\n3 uid-three\r\n.\r\n");
	assert_has(out, "+OK 3 uid-three\r\n");
	/* RETR 1: byte-stuffed, CRLF, exact octets. */
	snprintf(want, sizeof(want), "+OK %llu octets\r\n", (unsigned long long)s1);
	assert_has(out, want);
	assert_has(out, "Subject: one\r\n\r\nHello\r\n..\r\n...two dots\r\nend\r\n.\r\n");
	char *body = multiline_after(out, want);
	assert_int_equal(strlen(body), s1);
	free(body);
	/* TOP: header, empty line, n lines. */
	assert_has(out, "+OK Top of message 2 follows\r\nSubject: two\r\nX: y\r\n\r\nline1\r\n.\r\n");
	assert_has(out, "+OK Top of message 2 follows\r\nSubject: two\r\nX: y\r\n\r\n.\r\n");
	/* RETR 3: the missing final line end is added before the dot. */
	assert_has(out, "Subject: three\r\n\r\n..starts with dot\r\nno final newline\r\n.\r\n");
	assert_has(out, "+OK Still here\r\n");
	assert_has(out, "signing off (0 messages deleted, 3 left)");
	assert_int_equal(f.box.expunges, 0);
	assert_int_equal(f.box.closes, 1);
	free(out);
}

static void test_dele_rset_quit(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char *out = run_all_ways(&ci, NULL,
		"USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\nLIST\r\nUIDL\r\nRSET\r\n"
		"STAT\r\nDELE 2\r\nDELE 4\r\nDELE 0\r\nDELE x\r\nQUIT\r\n", &f);
	assert_well_formed(out);
	assert_has(out, "+OK Message 1 marked for deletion (removed when you QUIT)\r\n");
	assert_has(out, "-ERR Message 1 is marked for deletion (RSET removes the marks)");
	struct fake_box b;
	sample_box(&b);
	uint64_t s1 = crlf_size(&b.msgs[0]), s2 = crlf_size(&b.msgs[1]), s3 = crlf_size(&b.msgs[2]);
	char want[200];
	snprintf(want, sizeof(want), "+OK 2 %llu\r\n", (unsigned long long)(s2 + s3));
	assert_has(out, want);
	snprintf(want, sizeof(want), "\r\n2 %llu\r\n3 %llu\r\n.\r\n", (unsigned long long)s2, (unsigned long long)s3);
	assert_has(out, want);
	assert_has(out, "+OK Unique-ID listing follows\r\n2 uid-two\r\n3 uid-three\r\n.\r\n");
	snprintf(want, sizeof(want), "+OK Deletion marks removed: 3 messages (%llu octets)\r\n",
		(unsigned long long)(s1 + s2 + s3));
	assert_has(out, want);
	assert_has(out, "-ERR There is no message 4");
	assert_has(out, "-ERR There is no message 0");
	assert_has(out, "-ERR There is no message x");
	assert_has(out, "signing off (1 messages deleted, 2 left)");
	assert_int_equal(f.box.expunges, 1);
	assert_false(f.box.deleted_at_expunge[0]);
	assert_true(f.box.deleted_at_expunge[1]);
	assert_false(f.box.deleted_at_expunge[2]);
	free(out);
}

static void test_drop_deletes_nothing(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	/* No QUIT: the connection drops. */
	char *out = run_all_ways(&ci, NULL, "USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 2\r\n", &f);
	assert_int_equal(f.box.expunges, 0);
	assert_int_equal(f.box.closes, 1);
	free(out);
}

static void prep_fail_expunge(struct fake *f)
{
	f->box.fail_expunge = true;
}

static void test_expunge_failure(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char *out = run_all_ways(&ci, prep_fail_expunge, "USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [SYS/TEMP] Some deleted messages could not be removed");
	free(out);
}

static void test_wrong_state(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char *out = run_all_ways(&ci, NULL,
		"STAT\r\nRETR 1\r\nPASS secret\r\nUSER alice\r\nPASS secret\r\nUSER bob\r\nAUTH PLAIN\r\nSTLS\r\nAPOP a b\r\n"
		"QUIT\r\n", &f);
	assert_well_formed(out);
	assert_has(out, "-ERR STAT needs a login first (USER and PASS, or AUTH) (ref 9.1)");
	assert_has(out, "-ERR RETR needs a login first");
	assert_has(out, "-ERR Send USER first, then PASS");
	assert_has(out, "-ERR USER is not allowed after logging in");
	assert_has(out, "-ERR AUTH is not allowed after logging in");
	/* The fifth error ends the session. */
	assert_has(out, "-ERR Too many errors; closing the connection");
	assert_lacks(out, "signing off");
	assert_int_equal(f.box.expunges, 0);
	free(out);
}

static void test_unknown_and_bad_lines(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char longline[400];
	memset(longline, 'A', sizeof(longline));
	longline[0] = 'N';
	snprintf(longline, sizeof(longline), "NOOP %0300d\r\n", 1);
	char script[3000];
	snprintf(script, sizeof(script), "XYZZY\r\n%sNO\x01OP\r\nNOOP\r\n\r\nQUIT\r\n", longline);
	char *out = run_all_ways(&ci, NULL, script, &f);
	assert_well_formed(out);
	assert_has(out, "-ERR Unknown command: XYZZY");
	assert_has(out, "-ERR Command line too long (at most 255 octets)");
	assert_has(out, "-ERR Command refused: it holds control characters");
	assert_has(out, "+OK Still here");
	assert_has(out, "-ERR Empty command line");
	assert_has(out, "signing off");
	free(out);
	/* A line longer than the line buffer: one error at its end, then on as normal. */
	size_t big = 10000;
	char *huge = malloc(big + 100);
	memset(huge, 'x', big);
	strcpy(huge + big, "\r\nNOOP\r\nQUIT\r\n");
	out = run_all_ways(&ci, NULL, huge, &f);
	assert_has(out, "-ERR Command line too long");
	assert_has(out, "+OK Still here");
	free(huge);
	free(out);
}

static void test_pipelining_equals_lockstep(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	const char *cmds[] = { "USER alice\r\n", "PASS secret\r\n", "LIST\r\n", "RETR 1\r\n", "RETR 2\r\n", "DELE 3\r\n",
		"UIDL\r\n", "TOP 1 2\r\n", "QUIT\r\n" };
	char script[1000] = "";
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		strcat(script, cmds[i]);
	struct fake f1 = { 0 }, f2 = { 0 };
	sample_box(&f1.box);
	sample_box(&f2.box);
	char *piped = run(&f1, &ci, script, 0, false);
	/* Lock-step: one command per run() call is not possible with one session, so
	 * compare with single-byte feeding, which never has two commands in one feed. */
	char *step = run(&f2, &ci, script, 1, false);
	assert_string_equal(piped, step);
	assert_true(f1.box.deleted_at_expunge[2]);
	free(piped);
	free(step);
}

static void test_auth_sasl(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	/* AUTH PLAIN with initial response (RFC 5034 §4), "\0alice\0secret". */
	char *out = run_all_ways(&ci, NULL, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTAT\r\nQUIT\r\n", &f);
	assert_has(out, "+OK Logged in: 3 messages");
	assert_string_equal(f.mech, "PLAIN");
	free(out);
	/* AUTH PLAIN without: an empty challenge "+ ". */
	out = run_all_ways(&ci, NULL, "AUTH plain\r\nAGFsaWNlAHNlY3JldA==\r\nQUIT\r\n", &f);
	assert_has(out, "\r\n+ \r\n+OK Logged in");
	free(out);
	/* AUTH LOGIN: Username:, Password:. */
	out = run_all_ways(&ci, NULL, "AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n", &f);
	assert_has(out, "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in");
	assert_string_equal(f.mech, "LOGIN");
	free(out);
	/* Cancel, bad base64, unknown mechanism, bare AUTH, wrong password. */
	out = run_all_ways(&ci, NULL, "AUTH LOGIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\nAUTH\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR Authentication cancelled");
	assert_has(out, "-ERR Authentication failed: the answer is not valid base64");
	assert_has(out, "-ERR Unknown SASL mechanism CRAM-MD5: use PLAIN or LOGIN");
	assert_has(out, "+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n");
	assert_has(out, "-ERR [AUTH] Login failed: wrong user name or password");
	assert_has(out, "signing off");
	free(out);
	/* An over-long SASL answer. */
	char *big = malloc(6000);
	strcpy(big, "AUTH LOGIN\r\n");
	size_t o = strlen(big);
	memset(big + o, 'A', 4000);
	strcpy(big + o + 4000, "\r\nNOOP\r\nQUIT\r\n");
	out = run_all_ways(&ci, NULL, big, &f);
	assert_has(out, "-ERR Authentication failed: the answer is too long");
	assert_has(out, "+OK Still here");
	free(big);
	free(out);
}

static void prep_blocked(struct fake *f)
{
	f->blocked_until = 1700000000;   /* 22:13 UTC */
	f->block = THROTTLE_ACCOUNT;
}

static void prep_blocked_address(struct fake *f)
{
	f->blocked_until = 1700000000;
	f->block = THROTTLE_ADDRESS;
}

static void prep_in_use(struct fake *f)
{
	f->open_result = POP3_MAILBOX_IN_USE;
}

static void prep_mailbox_temp(struct fake *f)
{
	f->open_result = POP3_MAILBOX_TEMP;
}

static void test_response_codes(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	char *out = run_all_ways(&ci, prep_blocked, "USER alice\r\nPASS secret\r\nAUTH PLAIN\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [AUTH] Too many failed logins as alice from your address: logging in to this account "
		"from here is blocked until 22:13 UTC - correct the password saved in every device");
	assert_int_equal(f.verifies, 0);
	free(out);
	/* Blocked for other accounts' failures: not told to check a password. */
	out = run_all_ways(&ci, prep_blocked_address, "USER dora\r\nPASS secret\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [SYS/TEMP] Logging in from your address is blocked until 22:13 UTC: there were failed "
		"logins to several different accounts from it - your own password is not the problem");
	assert_int_equal(f.verifies, 0);
	free(out);
	out = run_all_ways(&ci, prep_in_use, "USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [IN-USE] The mailbox is open in another POP3 session");
	assert_has(out, "-ERR STAT needs a login first");
	free(out);
	out = run_all_ways(&ci, prep_mailbox_temp, "USER alice\r\nPASS secret\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [SYS/TEMP] The mailbox cannot be opened just now");
	free(out);
	out = run_all_ways(&ci, NULL, "USER tempfail\r\nPASS x\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [SYS/TEMP] Login cannot be checked just now");
	free(out);
}

static void prep_read_fails(struct fake *f)
{
	f->box.fail_read_at = true;
}

static void prep_open_fails(struct fake *f)
{
	f->box.fail_open_msg = true;
}

static void test_read_failures(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f;
	/* Mid-message: the connection closes without the final dot; nothing deleted. */
	char *out = run_all_ways(&ci, prep_read_fails, "USER alice\r\nPASS secret\r\nDELE 2\r\nRETR 1\r\nQUIT\r\n", &f);
	assert_has(out, "octets\r\nSubject");
	assert_lacks(out, "\r\n.\r\n");
	assert_lacks(out, "signing off");
	assert_int_equal(f.box.expunges, 0);
	free(out);
	out = run_all_ways(&ci, prep_open_fails, "USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n", &f);
	assert_has(out, "-ERR [SYS/TEMP] Message 1 cannot be read just now");
	assert_has(out, "signing off");
	free(out);
}

/* The transport's deadlines: a partly received line, and -ERR naming the deadline;
 * nothing marked is deleted.  Connection refusals before a session: one line each,
 * with a response code (RFC 2449 §8, RFC 3206) and no reference. */
static void test_deadlines_and_refusals(void **state)
{
	(void)state;
	struct fake f = { 0 };
	sample_box(&f.box);
	struct pop3_conn_info ci = info_tls();
	struct pop3_hooks h = { .ctx = &f, .auth_verify = hook_verify, .mailbox_open = hook_mailbox_open };
	struct pop3_session *s = pop3_session_new(&ci, &limits, &h);
	current = s;
	assert_false(pop3_session_line_pending(s));
	assert_int_equal(pop3_session_feed(s, "US", 2), 2);
	assert_true(pop3_session_line_pending(s));
	const char *in = "ER alice\r\nPASS secret\r\n";
	assert_int_equal(pop3_session_feed(s, in, strlen(in)), strlen(in));
	assert_false(pop3_session_line_pending(s));
	pop3_session_auth_done(s, LOGIN_OK, "alice@example.test", 0);
	assert_int_equal(pop3_session_feed(s, "DELE 1\r\nST", 10), 10);
	assert_true(pop3_session_line_pending(s));
	pop3_session_deadline(s, POP3_DEADLINE_LINE, 60);
	assert_true(pop3_session_wants_close(s));
	assert_has(buf_cstr(pop3_session_output(s)),
		"-ERR Disconnected: a command line took more than 60 seconds to arrive; nothing was deleted");
	assert_int_equal(f.box.expunges, 0);
	assert_false(pop3_session_line_pending(s));
	pop3_session_free(&s);

	memset(&f, 0, sizeof(f));
	sample_box(&f.box);
	s = pop3_session_new(&ci, &limits, &h);
	current = s;
	pop3_session_deadline(s, POP3_DEADLINE_LOGIN, 120);
	assert_has(buf_cstr(pop3_session_output(s)), "-ERR Disconnected: no login within 120 seconds of connecting");
	pop3_session_deadline(s, POP3_DEADLINE_SESSION, 5);   /* closed already: nothing more */
	assert_lacks(buf_cstr(pop3_session_output(s)), "session longer");
	pop3_session_free(&s);
	current = NULL;

	struct buf out;
	buf_init(&out, 4096);
	pop3_refusal_line(&out, POP3_REFUSE_ADDRESS_BUSY, "pop.example.test", 20);
	assert_string_equal(buf_cstr(&out), "-ERR [SYS/TEMP] pop.example.test Too many connections from your address "
		"(limit 20): close other mail programs or devices on your network that check mail here, or try again later\r\n");
	buf_reset(&out);
	pop3_refusal_line(&out, POP3_REFUSE_BUSY, "pop.example.test", 0);
	assert_has(buf_cstr(&out), "-ERR [SYS/TEMP] pop.example.test Too many connections just now");
	buf_reset(&out);
	pop3_refusal_line(&out, POP3_REFUSE_RESERVED, "pop.example.test", 0);
	assert_has(buf_cstr(&out), "-ERR [SYS/TEMP] pop.example.test Server nearly full");
	buf_reset(&out);
	pop3_refusal_line(&out, POP3_REFUSE_TLS_EXPECTED, "pop.example.test", 0);
	assert_has(buf_cstr(&out), "-ERR [SYS/PERM] pop.example.test No POP3 in plaintext here");
	assert_lacks(buf_cstr(&out), "(ref");
	buf_free(&out);
}

static void test_timeout_and_shutdown(void **state)
{
	(void)state;
	struct fake f = { 0 };
	sample_box(&f.box);
	struct pop3_conn_info ci = info_tls();
	struct pop3_hooks h = { .ctx = &f, .auth_verify = hook_verify, .mailbox_open = hook_mailbox_open };
	struct pop3_session *s = pop3_session_new(&ci, &limits, &h);
	current = s;
	const char *in = "USER alice\r\nPASS secret\r\n";
	assert_int_equal(pop3_session_feed(s, in, strlen(in)), strlen(in));
	assert_true(pop3_session_waiting(s));
	pop3_session_auth_done(s, LOGIN_OK, "alice@example.test", 0);
	assert_string_equal(pop3_session_login(s), "alice@example.test");
	assert_int_equal(pop3_session_feed(s, "DELE 1\r\n", 8), 8);
	pop3_session_timeout(s);
	assert_true(pop3_session_wants_close(s));
	assert_has(buf_cstr(pop3_session_output(s)), "-ERR Disconnected for inactivity (600 seconds); nothing was deleted");
	assert_int_equal(f.box.expunges, 0);
	assert_int_equal(f.box.closes, 1);
	assert_int_equal(pop3_session_feed(s, "QUIT\r\n", 6), 0);
	pop3_session_free(&s);
	assert_int_equal(f.box.closes, 1);

	/* A maildrop that arrives after the client hung up is closed at once. */
	memset(&f, 0, sizeof(f));
	sample_box(&f.box);
	h.mailbox_open = NULL;
	struct pop3_hooks h2 = { .ctx = &f, .auth_verify = hook_verify };
	s = pop3_session_new(&ci, &limits, &h2);
	pop3_session_feed(s, in, strlen(in));
	pop3_session_auth_done(s, LOGIN_OK, "alice@example.test", 0);
	assert_has(buf_cstr(pop3_session_output(s)), "-ERR [SYS/TEMP] The mailbox cannot be opened");
	pop3_session_shutdown(s);
	assert_has(buf_cstr(pop3_session_output(s)), "-ERR [SYS/TEMP] Server shutting down");
	f.box.open = true;
	pop3_session_mailbox_done(s, POP3_MAILBOX_OK, &fake_ops, &f.box);
	assert_false(f.box.open);
	pop3_session_free(&s);
	current = NULL;
}

/* A big message streams: the session never queues much more than a pump's worth. */
static void prep_big(struct fake *f)
{
	static char *big;
	if (!big) {
		size_t n = 300000;
		big = malloc(n + 1);
		size_t o = 0;
		o += (size_t)sprintf(big + o, "Subject: big\n\n");
		while (o < n - 100)
			o += (size_t)sprintf(big + o, ".%zu line with a dot first\n", o);
		big[o] = '\0';
	}
	f->box.msgs[0].text = big;
}

static void test_streaming_bounded(void **state)
{
	(void)state;
	struct pop3_conn_info ci = info_tls();
	struct fake f = { 0 };
	sample_box(&f.box);
	prep_big(&f);
	char *out = run(&f, &ci, "USER alice\r\nPASS secret\r\nRETR 1\r\nLIST\r\nQUIT\r\n", 0, false);
	uint64_t s1 = crlf_size(&f.box.msgs[0]);
	char want[100];
	snprintf(want, sizeof(want), "+OK %llu octets\r\n", (unsigned long long)s1);
	char *body = multiline_after(out, want);
	assert_int_equal(strlen(body), s1);
	free(body);
	assert_true(f.max_out < POP3_PUMP_TARGET + 40000);
	assert_has(out, "signing off");
	free(out);
}

/* --- a real Maildir --------------------------------------------------------------- */

static char tmpdir[64];

static void deliver(const char *maildir, const char *msg)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/src-XXXXXX", tmpdir);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	char name[600], err[300];
	assert_int_equal(maildir_deliver(maildir, "Return-Path: <a@b.test>\n", fd, 0, strlen(msg), name, sizeof(name), err,
		sizeof(err)), STORE_OK);
	close(fd);
}

static void test_real_maildir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-pop3-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	struct fake f = { 0 };
	f.real_maildir = true;
	snprintf(f.maildir, sizeof(f.maildir), "%s/alice", tmpdir);
	deliver(f.maildir, "Subject: a\r\n\r\n.hidden\r\nbody\r\n");
	deliver(f.maildir, "Subject: b\r\n\r\nsecond\r\n..\r\n");
	struct pop3_conn_info ci = info_tls();
	char *out = run(&f, &ci, "USER alice\r\nPASS secret\r\nLIST\r\nUIDL\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n", 3, false);
	assert_well_formed(out);
	struct mailbox *mb;
	char err[256];
	/* Octet counts equal the W= sizes and the bytes sent. */
	const char *p = strstr(out, "+OK 2 messages (");
	assert_non_null(p);
	unsigned long long total, s1, s2;
	assert_int_equal(sscanf(p, "+OK 2 messages (%llu octets)\r\n1 %llu\r\n2 %llu\r\n", &total, &s1, &s2), 3);
	assert_int_equal(total, s1 + s2);
	char want[100];
	snprintf(want, sizeof(want), "+OK %llu octets\r\n", s1);
	char *b1 = multiline_after(out, want);
	assert_int_equal(strlen(b1), s1);
	assert_string_equal(b1, "Return-Path: <a@b.test>\r\nSubject: a\r\n\r\n.hidden\r\nbody\r\n");
	free(b1);
	assert_has(out, "\r\n..hidden\r\n");
	assert_has(out, "\r\n...\r\n.\r\n");
	assert_has(out, "signing off (1 messages deleted, 1 left)");
	/* Next session: one message left, the same UIDL as before for it. */
	const char *u = strstr(out, "Unique-ID listing follows\r\n");
	char uid2[100];
	assert_int_equal(sscanf(strstr(u, "\r\n2 ") + 4, "%99[^\r]", uid2), 1);
	assert_int_equal(mailbox_open(f.maildir, &mb, err, sizeof(err)), MAILBOX_OK);
	assert_int_equal(mailbox_count(mb), 1);
	assert_string_equal(mailbox_msg(mb, 0)->uid, uid2);
	mailbox_close(&mb);
	free(out);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
}

/* XCLIENT (a node of the cluster handing over a login it checked): only a token the
 * hook accepts opens the maildrop, as the login it names and with the address it
 * names; without the hook, with a bad token, in plaintext or with bad syntax it is
 * refused and opens nothing.  CAPA never mentions it. */
static bool xclient_ok;
static char xclient_seen[200];

static bool hook_xclient(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz)
{
	(void)ctx;
	snprintf(xclient_seen, sizeof(xclient_seen), "%s %s %s", token, addr, login);
	if (!xclient_ok)
		snprintf(why, whysz, "the node token is not valid for this address and login");
	return xclient_ok;
}

static char *xclient_run(struct fake *f, const struct pop3_conn_info *ci, bool with_hook, const char *in)
{
	struct pop3_hooks h = { .ctx = f, .auth_verify = hook_verify, .mailbox_open = hook_mailbox_open,
		.xclient = with_hook ? hook_xclient : NULL };
	struct pop3_session *s = pop3_session_new(ci, &limits, &h);
	current = s;
	pop3_session_start(s);
	pop3_session_feed(s, in, strlen(in));
	char *out = strdup(buf_cstr(pop3_session_output(s)));
	pop3_session_disconnected(s);
	pop3_session_free(&s);
	current = NULL;
	return out;
}

static void test_xclient(void **state)
{
	(void)state;
	struct pop3_conn_info tls = info_tls(), plain = info_plain();
	struct fake f = { 0 };
	sample_box(&f.box);
	char *out = xclient_run(&f, &tls, false, "XCLIENT node1.1.abc 192.0.2.9 bob@example.test\r\nCAPA\r\n");
	assert_has(out, "-ERR [AUTH] XCLIENT is only for the nodes of a cluster");
	assert_lacks(out, "XCLIENT\r\n");
	assert_int_equal(f.mailbox_opens, 0);
	free(out);

	xclient_ok = false;
	out = xclient_run(&f, &tls, true, "XCLIENT node1.1.abc 192.0.2.9 bob@example.test\r\nSTAT\r\n");
	assert_has(out, "-ERR [AUTH] XCLIENT refused: the node token is not valid for this address and login");
	assert_has(out, "-ERR STAT needs a login first");
	assert_string_equal(xclient_seen, "node1.1.abc 192.0.2.9 bob@example.test");
	assert_int_equal(f.mailbox_opens, 0);
	free(out);

	xclient_ok = true;
	out = xclient_run(&f, &tls, true, "XCLIENT node1.1.abc 192.0.2.9\r\nXCLIENT a b c d\r\n");
	assert_has(out, "-ERR Syntax: XCLIENT node-token client-address login");
	assert_int_equal(f.mailbox_opens, 0);
	free(out);
	out = xclient_run(&f, &plain, true, "XCLIENT node1.1.abc 192.0.2.9 bob@example.test\r\n");
	assert_has(out, "-ERR [AUTH] Login refused on an unencrypted connection");
	assert_int_equal(f.mailbox_opens, 0);
	free(out);

	out = xclient_run(&f, &tls, true, "XCLIENT node1.1.abc 192.0.2.9 bob@example.test\r\nSTAT\r\n");
	assert_has(out, "+OK Logged in: 3 messages");
	assert_has(out, "+OK 3 ");
	assert_int_equal(f.mailbox_opens, 1);
	assert_string_equal(f.opened_for, "bob@example.test");
	assert_int_equal(f.verifies, 0);   /* no password was asked for */
	free(out);
}

/* A login proxied to the home node: its +OK is passed on and the session takes no
 * more input (the transport carries it); a refusal is passed on and the client may
 * try again; an unreachable node is -ERR [SYS/TEMP] naming it. */
static void test_proxy_done(void **state)
{
	(void)state;
	struct fake f = { 0 };
	sample_box(&f.box);
	struct pop3_conn_info ci = info_tls();
	struct pop3_hooks h = { .ctx = &f, .auth_verify = hook_verify, .mailbox_open = hook_mailbox_open };
	struct pop3_session *s = pop3_session_new(&ci, &limits, &h);
	current = s;
	const char *in = "USER alice\r\nPASS secret\r\nSTAT\r\n";
	size_t used = pop3_session_feed(s, in, strlen(in));
	assert_int_equal(used, strlen("USER alice\r\nPASS secret\r\n"));   /* STAT waits in the caller's buffer */
	pop3_session_proxy_done(s, POP3_PROXY_UNAVAILABLE, "node2", "connection refused");
	assert_has(buf_cstr(pop3_session_output(s)),
		"-ERR [SYS/TEMP] Your mailbox is kept on node node2, which cannot be reached just now (connection refused)");
	assert_false(pop3_session_waiting(s));
	used = pop3_session_feed(s, "USER alice\r\nPASS secret\r\n", 25);
	pop3_session_proxy_done(s, POP3_PROXY_REFUSED, "node2", "-ERR [IN-USE] The mailbox is open\x01 elsewhere");
	assert_has(buf_cstr(pop3_session_output(s)), "-ERR [IN-USE] The mailbox is open? elsewhere\r\n");
	used = pop3_session_feed(s, "USER alice\r\nPASS secret\r\n", 25);
	pop3_session_proxy_done(s, POP3_PROXY_OK, "node2", "+OK Logged in: 1 messages (20 octets)");
	assert_has(buf_cstr(pop3_session_output(s)), "+OK Logged in: 1 messages (20 octets)\r\n");
	assert_true(pop3_session_proxied(s));
	assert_true(pop3_session_waiting(s));
	assert_int_equal(pop3_session_feed(s, "STAT\r\n", 6), 0);
	buf_reset(pop3_session_output(s));
	pop3_session_timeout(s);   /* the transport's bridge times out, not this session */
	pop3_session_shutdown(s);
	assert_int_equal(pop3_session_output(s)->len, 0);
	assert_int_equal(f.mailbox_opens, 0);
	pop3_session_free(&s);
	current = NULL;
}

int main(void)
{
	log_set_level(LOG_ERR + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capa_before_tls),
		cmocka_unit_test(test_plaintext_refused),
		cmocka_unit_test(test_stls),
		cmocka_unit_test(test_transaction),
		cmocka_unit_test(test_dele_rset_quit),
		cmocka_unit_test(test_drop_deletes_nothing),
		cmocka_unit_test(test_expunge_failure),
		cmocka_unit_test(test_wrong_state),
		cmocka_unit_test(test_unknown_and_bad_lines),
		cmocka_unit_test(test_pipelining_equals_lockstep),
		cmocka_unit_test(test_auth_sasl),
		cmocka_unit_test(test_response_codes),
		cmocka_unit_test(test_read_failures),
		cmocka_unit_test(test_deadlines_and_refusals),
		cmocka_unit_test(test_timeout_and_shutdown),
		cmocka_unit_test(test_streaming_bounded),
		cmocka_unit_test(test_real_maildir),
		cmocka_unit_test(test_xclient),
		cmocka_unit_test(test_proxy_done),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
