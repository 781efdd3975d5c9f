/* fuzz_pop3.c - a whole POP3 session with fake hooks and an in-memory maildrop fed
 * the input.  The first byte chooses the feed piece size, TLS on/offered, whether
 * plaintext login is allowed, the login and maildrop outcomes, and whether the
 * client hangs up at the end (else it times out).  The fake maildrop aborts on any
 * protocol violation; every output line must end in CRLF, status lines must start
 * "+OK", "-ERR" or "+ " and stay within 512 octets, and a RETR must send exactly
 * the octets it announced. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/session.h"
#include "util/buf.h"
#include "util/log.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

static const char *const texts[] = {
	"Subject: a\n\nbody\n.\n..\n",
	"Subject: b\nX: y\n\nl1\nl2\r\nl3\n",
	".starts\n\nno newline",
	"",
	"\n\n\n.\n",
};
#define N_MSGS (sizeof(texts) / sizeof(texts[0]))

struct box {
	bool open, msg_open;
	int mode;
};

struct reader {
	struct box *b;
	const char *p;
	size_t left;
};

static uint64_t crlf_size(const char *t)
{
	uint64_t n = 0;
	for (size_t i = 0; t[i]; i++)
		n += (t[i] == '\n' && (i == 0 || t[i - 1] != '\r')) ? 2 : 1;
	return n;
}

static size_t b_count(void *mb)
{
	if (!((struct box *)mb)->open)
		die("count on a closed maildrop");
	return N_MSGS;
}

static uint64_t b_size(void *mb, size_t i)
{
	if (!((struct box *)mb)->open || i >= N_MSGS)
		die("size");
	return crlf_size(texts[i]);
}

static const char *b_uid(void *mb, size_t i)
{
	static const char *const uids[] = { "u1", "u2", "u3", "u4", "u5" };
	if (!((struct box *)mb)->open || i >= N_MSGS)
		die("uid");
	return uids[i];
}

static void *b_open(void *mb, size_t i)
{
	struct box *b = mb;
	if (!b->open || b->msg_open || i >= N_MSGS)
		die("msg_open");
	if (b->mode == 1 && i == 1)
		return NULL;
	struct reader *r = malloc(sizeof(*r));
	r->b = b;
	r->p = texts[i];
	r->left = strlen(texts[i]);
	b->msg_open = true;
	return r;
}

static ssize_t b_read(void *m, void *p, size_t n)
{
	struct reader *r = m;
	if (r->b->mode == 2 && r->left < 5 && r->left > 0)
		return -1;
	size_t k = n < 3 ? n : 3;
	if (k > r->left)
		k = r->left;
	memcpy(p, r->p, k);
	r->p += k;
	r->left -= k;
	return (ssize_t)k;
}

static void b_close_msg(void *m)
{
	struct reader *r = m;
	if (!r->b->msg_open)
		die("msg_close");
	r->b->msg_open = false;
	free(r);
}

static bool b_expunge(void *mb, const bool *del, size_t *removed, char *err, size_t errlen)
{
	struct box *b = mb;
	if (!b->open || b->msg_open)
		die("expunge");
	*removed = 0;
	for (size_t i = 0; i < N_MSGS; i++)
		*removed += del[i];
	if (b->mode == 3) {
		snprintf(err, errlen, "x");
		return false;
	}
	return true;
}

static void b_close(void *mb)
{
	struct box *b = mb;
	if (!b->open || b->msg_open)
		die("close");
	b->open = false;
}

static const struct pop3_maildrop_ops ops = {
	.count = b_count, .size = b_size, .uid = b_uid, .msg_open = b_open, .msg_read = b_read,
	.msg_close = b_close_msg, .expunge = b_expunge, .close = b_close,
};

struct fake {
	struct box box;
	struct pop3_session *s;
	bool pending;
	int auth_mode, mailbox_mode;
	char user[400];
};

static struct throttle_verdict blocked(void *ctx, const char *user)
{
	(void)ctx;
	if (user && strcmp(user, "blocked") == 0)
		return (struct throttle_verdict){ THROTTLE_ACCOUNT, 1700000000 };
	if (user && strcmp(user, "sprayed") == 0)
		return (struct throttle_verdict){ THROTTLE_ADDRESS, 1700000000 };
	return (struct throttle_verdict){ THROTTLE_OPEN, 0 };
}

static void verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	struct fake *f = ctx;
	(void)mech;
	(void)pass;
	if (f->pending)
		die("second verify");
	f->pending = true;
	snprintf(f->user, sizeof(f->user), "%s", user);
}

/* XCLIENT's token check: "good" is valid (a node's hand-over), anything else not. */
static bool xclient(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz)
{
	(void)ctx;
	(void)addr;
	(void)login;
	snprintf(why, whysz, "not valid");
	return strcmp(token, "good") == 0;
}

static void mailbox_open(void *ctx, const char *user)
{
	struct fake *f = ctx;
	(void)user;
	if (f->box.open)
		die("second maildrop");
	if (f->mailbox_mode == 1) {
		pop3_session_mailbox_done(f->s, POP3_MAILBOX_IN_USE, NULL, NULL);
		return;
	}
	f->box.open = true;
	pop3_session_mailbox_done(f->s, POP3_MAILBOX_OK, &ops, &f->box);
}

/* Collect the output; lines are checked on the whole transcript (a streamed
 * response is cut into pieces anywhere). */
static void check_output(struct buf *o, struct buf *all)
{
	if (all->len + o->len > all->max)
		die("transcript too large");
	buf_append(all, o->data, o->len);
	buf_consume(o, o->len);
}

static void check_transcript(const struct buf *all, bool closed)
{
	/* Walk status lines; after "+OK N octets" count up to the terminator. */
	const char *p = all->data ? all->data : "";
	const char *end = p + all->len;
	while (p < end) {
		const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!e)
			die("status line without CRLF");
		size_t n = (size_t)(e - p);
		for (size_t i = 0; i < n; i++)
			if (p[i] == '\n' || p[i] == '\0' || p[i] == '\r')
				die("control byte in a status line");
		bool ok = n >= 3 && memcmp(p, "+OK", 3) == 0;
		bool err = n >= 4 && memcmp(p, "-ERR", 4) == 0;
		bool cont = n >= 2 && memcmp(p, "+ ", 2) == 0;
		if (!ok && !err && !cont)
			die("status line shape");
		if (n + 2 > 512)
			die("status line too long");
		unsigned long long octets;
		char tail[8];
		bool retr = ok && sscanf(p, "+OK %llu octet%7s", &octets, tail) == 2;
		bool multi = ok && (retr || (n >= 20 && memcmp(p, "+OK Capability list", 19) == 0) ||
			memmem(p, n, "messages (", 10) != NULL || memmem(p, n, "listing follows", 15) != NULL ||
			memmem(p, n, "Top of message", 14) != NULL || memmem(p, n, "mechanisms follow", 17) != NULL);
		/* "+OK Logged in: N messages (..)" is single-line. */
		if (ok && memmem(p, n, "Logged in", 9))
			multi = false;
		if (ok && memmem(p, n, "Deletion marks removed", 22))
			multi = false;
		p = e + 2;
		if (!multi)
			continue;
		unsigned long long body = 0;
		for (;;) {
			const char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
			if (!le) {
				if (!closed)
					die("multi-line response cut without a close");
				return;   /* a read error closed the connection mid-response */
			}
			size_t ln = (size_t)(le - p);
			if (ln == 1 && p[0] == '.') {
				p = le + 2;
				break;
			}
			body += ln + 2 - (p[0] == '.' ? 1 : 0);
			p = le + 2;
		}
		/* A message without a final line end gets CRLF added: up to 2 more. */
		if (retr && body != octets && body != octets + 2)
			die("RETR octets differ from the announced size");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		log_set_level(LOG_ERR + 1);
		init = true;
	}
	if (size < 2)
		return 0;
	uint8_t ctl = data[0], ctl2 = data[1];
	const char *in = (const char *)data + 2;
	size_t len = size - 2;
	size_t piece = (ctl & 7) == 0 ? len : (size_t)(1u << ((ctl & 7) - 1));
	struct fake f = { 0 };
	f.box.mode = ctl2 & 3;
	f.auth_mode = (ctl2 >> 2) & 3;
	f.mailbox_mode = (ctl2 >> 4) & 1;
	struct pop3_conn_info ci = { .conn_id = 1, .hostname = "pop.example.test", .client_addr = "192.0.2.1",
		.listener = "fuzz", .tls_offered = (ctl & 8) != 0, .tls_active = (ctl & 16) != 0,
		.allow_plaintext_auth = (ctl & 32) != 0 };
	struct pop3_limits lim = { .max_line = 255, .max_bad_commands = (ctl2 & 64) ? 3 : 50, .idle_timeout = 600 };
	struct pop3_hooks h = { .ctx = &f, .auth_blocked = blocked, .auth_verify = verify, .mailbox_open = mailbox_open,
		.xclient = (ctl2 & 128) ? xclient : NULL };
	struct pop3_session *s = pop3_session_new(&ci, &lim, &h);
	if (!s)
		return 0;
	f.s = s;
	struct buf all;
	buf_init(&all, 8u << 20);
	pop3_session_start(s);
	check_output(pop3_session_output(s), &all);
	size_t pos = 0;
	unsigned stalls = 0;
	while (stalls < 4) {
		check_output(pop3_session_output(s), &all);
		if (pop3_session_wants_close(s))
			break;
		if (pop3_session_streaming(s)) {
			pop3_session_pump(s);
			continue;
		}
		if (pop3_session_waiting(s)) {
			if (!f.pending)
				die("waiting without a verify");
			f.pending = false;
			enum login_result r = f.auth_mode == 0 ? LOGIN_OK : f.auth_mode == 1 ? LOGIN_FAILED
				: f.auth_mode == 2 ? LOGIN_TEMPFAIL : LOGIN_BLOCKED;
			if (r == LOGIN_OK && (ctl & 128)) {   /* the mailbox is on another node, which refuses or is down */
				pop3_session_proxy_done(s, (ctl2 & 32) ? POP3_PROXY_REFUSED : POP3_PROXY_UNAVAILABLE, "node2",
					(ctl2 & 32) ? "-ERR [IN-USE] elsewhere" : "connection refused");
				continue;
			}
			pop3_session_auth_done(s, r, f.user, 1700000000);
			continue;
		}
		if (pop3_session_wants_tls(s)) {
			if (ctl & 64)
				break;   /* the handshake fails: the connection drops */
			pop3_session_tls_started(s, "TLS");
		}
		if (pos >= len)
			break;
		size_t n = len - pos < piece ? len - pos : piece;
		size_t used = pop3_session_feed(s, in + pos, n);
		if (used > n)
			die("feed consumed more than given");
		pos += used;
		stalls = used ? 0 : stalls + 1;
	}
	if (stalls)
		die("session stalled with input left");
	bool closed = pop3_session_wants_close(s);
	if (!(ctl & 128))
		pop3_session_timeout(s);
	check_output(pop3_session_output(s), &all);
	pop3_session_disconnected(s);
	pop3_session_free(&s);
	if (f.box.open || f.box.msg_open)
		die("maildrop left open");
	check_transcript(&all, closed);
	buf_free(&all);
	return 0;
}
