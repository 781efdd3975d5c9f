/* fuzz_imap_session.c - a whole IMAP session with fake hooks fed the input: the first
 * byte chooses the feed piece size, TLS on/offered, plaintext login allowed, and the
 * login outcome; jobs run at once (no worker threads) on a scratch Maildir.  Every
 * output must end in CRLF, every line must start with "* ", "+ " or a tag the client
 * sent (or be literal octets announced by {N}), and the output stays bounded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imap/session.h"
#include "util/buf.h"
#include "util/log.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

struct fake {
	struct imap_session *s;
	int outcome;
	char root[256];
};

static struct throttle_verdict blocked(void *ctx, const char *user)
{
	(void)user;
	struct fake *f = ctx;
	struct throttle_verdict v = { 0 };
	v.block = f->outcome == 3 ? THROTTLE_ACCOUNT : THROTTLE_OPEN;
	v.until = 1800000000;
	return v;
}

static void verify(void *ctx, const char *mech, const char *user, const char *pass)
{
	(void)mech;
	(void)pass;
	struct fake *f = ctx;
	enum login_result r = f->outcome == 0 ? LOGIN_OK : f->outcome == 1 ? LOGIN_FAILED : LOGIN_TEMPFAIL;
	if (r == LOGIN_OK && strncmp(user, "proxy-", 6) == 0) {   /* the mailbox is on another node */
		enum imap_proxy_result pr = user[6] == 'o' ? IMAP_PROXY_OK : user[6] == 'n' ? IMAP_PROXY_REFUSED
			: IMAP_PROXY_UNAVAILABLE;
		imap_session_proxy_done(f->s, pr, "node2", "* OK [ALERT] from\x01 node2\r\n", pr == IMAP_PROXY_OK
			? "OK [CAPABILITY IMAP4rev1 IDLE] Logged in" : pr == IMAP_PROXY_REFUSED ? "NO [IN-USE] busy\r\n" : "refused");
		return;
	}
	imap_session_auth_done(f->s, r, user, 0);
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

static bool maildir_root(void *ctx, const char *user, char *path, size_t pathsz, char *err, size_t errsz)
{
	(void)user;
	struct fake *f = ctx;
	if (!f->root[0]) {
		snprintf(err, errsz, "no mailbox");
		return false;
	}
	snprintf(path, pathsz, "%s", f->root);
	return true;
}

static void check_output(struct buf *out)
{
	if (out->len && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0))
		die("output does not end in CRLF");
	if (out->truncated)
		die("output cut");
	const char *p = out->data ? out->data : "", *end = p + out->len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol || eol == p || eol[-1] != '\r')
			die("bare LF or unterminated line");
		p = eol + 1;
	}
	buf_reset(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char scratch[64];
	if (!scratch[0]) {
		log_set_level(LOG_ERR);
		snprintf(scratch, sizeof(scratch), "/tmp/fuzz-imap-XXXXXX");
		if (!mkdtemp(scratch))
			scratch[0] = '\0';
	}
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	data++;
	size--;
	struct fake f = { .outcome = (ctl >> 5) & 3 };
	if (ctl & 0x80)
		snprintf(f.root, sizeof(f.root), "%s", scratch);
	struct imap_conn_info info = { .conn_id = 1, .hostname = "mx.example.test", .client_addr = "192.0.2.1",
		.listener = "imap", .tls_offered = ctl & 1, .tls_active = ctl & 2, .allow_plaintext_auth = ctl & 4 };
	struct imap_limits lim = { .max_bad_commands = 20, .settings = { .autologout = 1800, .idle_poll_ms = 1000 } };
	struct imap_hooks hooks = { .ctx = &f, .auth_blocked = blocked, .auth_verify = verify,
		.maildir_root = maildir_root, .xclient = xclient };
	f.s = imap_session_new(&info, &lim, &hooks);
	if (!f.s)
		return 0;
	imap_session_start(f.s);
	check_output(imap_session_output(f.s));
	size_t piece = (size_t)((ctl >> 3) & 3) * 5 + 1, off = 0;
	for (unsigned rounds = 0; off < size && rounds < 100000; rounds++) {
		size_t n = size - off < piece ? size - off : piece;
		size_t used = imap_session_feed(f.s, data + off, n);
		off += used;
		check_output(imap_session_output(f.s));
		if (imap_session_wants_tls(f.s))
			imap_session_tls_started(f.s, "TLSv1.3");
		if (imap_session_wants_compress(f.s)) {   /* COMPRESS: the transport switched, or could not */
			imap_session_compress_started(f.s, off % 7 != 0);
			check_output(imap_session_output(f.s));
			if (off % 5 == 0)
				imap_session_input_broken(f.s, "invalid block type");
			check_output(imap_session_output(f.s));
		}
		if (imap_session_streaming(f.s))
			imap_session_pump(f.s);
		if (imap_session_wants_close(f.s))
			break;
		if (used == 0 && !imap_session_streaming(f.s) && !imap_session_wants_tls(f.s))
			break;
	}
	imap_session_timeout(f.s);
	check_output(imap_session_output(f.s));
	imap_session_free(&f.s);
	return 0;
}
