/* fuzz_session.c - a whole SMTP session with fake hooks fed the input.  The first
 * byte chooses the feed piece size, the commit outcome, the listener role, and whether
 * the client hangs up during the first commit (else the session times out at the end).  Every
 * other decision is answered after the hook returned, as the decision threads do.  The
 * fake spool aborts on any hook-protocol violation; every reply line is checked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "smtp/session.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/log.h"

struct fake {
	bool open, committing, holding, deciding;
	unsigned qid, decisions;
	struct verdict verdict;   /* deciding: the answer the driver gives */
	uint64_t written;
};

static void die(const char *why)
{
	fprintf(stderr, "hook protocol violation: %s\n", why);
	abort();
}

/* The pipeline's rules on a fake directory; every other decision is answered later
 * by the driver (smtp_session_decided), as the decision threads do. */
static bool decide(void *ctx, struct policy_facts *pf, struct verdict *v)
{
	struct fake *f = ctx;
	if (f->deciding || f->holding || f->committing)
		die("decision at a wrong moment");
	if (pf->point == POLICY_AT_MAIL) {
		policy_check_mail(&pf->client, v);
	} else if (pf->point == POLICY_AT_RCPT) {
		bool local = pf->bare_postmaster || strcmp(pf->domain, "example.test") == 0;
		struct policy_client pc = { 0 };
		struct rcpt_facts rf = {
			.local = pf->local, .domain = pf->domain, .domain_local = local,
			.is_postmaster = pf->bare_postmaster || (local && strcasecmp(pf->local, "postmaster") == 0),
			.user = pf->local[0] == 'a' ? USER_FOUND : pf->local[0] == 't' ? USER_LOOKUP_FAILED : USER_MISSING,
		};
		policy_check_rcpt(&pc, &rf, v);
	} else if (pf->point == POLICY_AT_END_OF_DATA) {
		/* The whole message is spooled and not yet committed; now and then the quota
		 * stage finds no room (the session must then drop the spool file). */
		if (!f->open || pf->n_rcpts == 0)
			die("end-of-data decision without a spooled message");
		policy_message_quota_verdict(f->decisions % 3 ? MQ_ACCEPT : MQ_FULL, pf->message_size,
			"the mailbox of a@example.test is full", v);
	} else {
		die("a decision the session cannot ask without a login");
	}
	policy_facts_free(&pf);
	if (++f->decisions % 2)
		return true;
	f->verdict = *v;
	f->deciding = true;
	return false;
}

static bool spool_open(void *ctx, const struct smtp_envelope *env, char *qid)
{
	struct fake *f = ctx;
	if (f->open || f->committing)
		die("open while open");
	if (env->n_rcpts == 0)
		die("open without recipients");
	for (size_t i = 0; i < env->n_rcpts; i++) {
		char a[SMTP_ADDR_MAX + 1];
		smtp_path_format(&env->rcpts[i], a, sizeof(a));
	}
	f->open = true;
	f->written = 0;
	snprintf(qid, QUEUE_ID_LEN + 1, "%016X", ++f->qid);
	return f->qid % 13 != 0;   /* sometimes fail */
}

static bool spool_write(void *ctx, const void *p, size_t n)
{
	struct fake *f = ctx;
	(void)p;
	if (!f->open)
		die("write without open");
	f->written += n;
	return f->written < 200000;
}

static void spool_abort(void *ctx)
{
	struct fake *f = ctx;
	if (!f->open)
		die("abort without open");
	f->open = false;
}

static void spool_commit(void *ctx)
{
	struct fake *f = ctx;
	if (!f->open)
		die("commit without open");
	f->open = false;
	f->committing = true;
}

/* A refused recipient's reply held back (harvesting): the driver ends the hold. */
static void hold(void *ctx, unsigned ms)
{
	struct fake *f = ctx;
	if (f->holding || f->committing || f->open || ms == 0 || ms > SMTP_REFUSED_DELAY_MAX_MS)
		die("hold at a wrong moment or for a wrong time");
	f->holding = true;
}

static void check_output(struct buf *o)
{
	size_t pos = 0;
	while (pos < o->len) {
		const char *line = o->data + pos;
		const char *end = memmem(line, o->len - pos, "\r\n", 2);
		if (!end)
			die("reply without CRLF");
		size_t n = (size_t)(end - line);
		if (n + 2 > 512 || n < 3)
			die("reply line length");
		if (line[0] < '2' || line[0] > '5' || (n > 3 && line[3] != ' ' && line[3] != '-'))
			die("reply line shape");
		for (size_t i = 0; i < n; i++)
			if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
				die("control byte in reply");
		pos += n + 2;
	}
	buf_consume(o, o->len);
}

/* XNODE: the token "good" is valid (the MAC itself is auth/node_token.c's, unit-tested). */
static bool node_check(void *ctx, const char *token, char *peer, size_t peersz, char *why, size_t whysz)
{
	(void)ctx;
	snprintf(peer, peersz, "node1");
	snprintf(why, whysz, "not valid");
	return strcmp(token, "good") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		log_set_level(LOG_ERR + 1);
		init = true;
	}
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	size_t piece = (ctl & 7) == 0 ? len : (size_t)(1u << ((ctl & 7) - 1));   /* 1..64 or all */
	bool commit_ok = !(ctl & 8);

	struct fake f = { 0 };
	struct smtp_limits lim = { .max_message = 3000, .max_recipients = 4, .max_line = 512,
		.max_bad_commands = (ctl & 16) ? 3 : 50, .idle_timeout = 60,
		.max_refused_rcpts = (ctl & 16) ? 4 : 0, .refused_rcpt_delay_after = 1, .refused_rcpt_delay_ms = 100 };
	struct smtp_conn_info ci = { .conn_id = 1, .hostname = "mx.example.test", .client_addr = "192.0.2.1",
		.listener = "fuzz", .submission = (ctl & 32) != 0, .trusted_network = (ctl & 64) != 0,
		.lmtp = (ctl & 128) != 0 };   /* LMTP between nodes: LHLO, XNODE, a reply per recipient */
	struct smtp_hooks h = { .ctx = &f, .decide = decide, .spool_open = spool_open,
		.spool_write = spool_write, .spool_abort = spool_abort, .spool_commit = spool_commit, .hold = hold,
		.node_check = node_check };
	struct smtp_session *s = smtp_session_new(&ci, &lim, &h);
	if (!s)
		return 0;
	smtp_session_start(s);
	check_output(smtp_session_output(s));
	size_t pos = 0;
	unsigned stalls = 0;
	while (pos < len && stalls < 4) {
		size_t n = len - pos < piece ? len - pos : piece;
		size_t used = smtp_session_feed(s, in + pos, n);
		if (used > n)
			die("feed consumed more than given");
		pos += used;
		check_output(smtp_session_output(s));
		if (smtp_session_waiting(s) && f.holding) {
			f.holding = false;
			smtp_session_hold_done(s);
			if (smtp_session_waiting(s))
				die("still waiting after the hold");
			check_output(smtp_session_output(s));
			continue;
		}
		if (smtp_session_waiting(s) && f.deciding) {
			f.deciding = false;
			smtp_session_decided(s, &f.verdict);
			check_output(smtp_session_output(s));
			continue;
		}
		if (smtp_session_waiting(s)) {
			if (!f.committing)
				die("waiting without a commit");
			if (ctl & 128)
				break;                    /* the client hangs up while the commit runs */
			f.committing = false;
			smtp_session_commit_done(s, commit_ok);
			check_output(smtp_session_output(s));
			continue;
		}
		if (used < n) {
			if (smtp_session_wants_close(s))
				break;
			stalls++;
		} else {
			stalls = 0;
		}
	}
	if (stalls)
		die("session stalled with input left");
	bool hung_up = smtp_session_waiting(s) && f.committing;
	bool undecided = smtp_session_waiting(s) && f.deciding;   /* the client left before the answer */
	if (!hung_up && (ctl & 128))
		smtp_session_timeout(s);
	check_output(smtp_session_output(s));
	smtp_session_disconnected(s);
	if (hung_up)
		smtp_session_commit_done(s, commit_ok);   /* the commit still reports back */
	if (undecided)
		smtp_session_decided(s, &f.verdict);      /* so does a decision: ignored */
	smtp_session_free(&s);
	if (f.open)
		die("spool left open");
	return 0;
}
