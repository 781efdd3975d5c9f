/* smtp_client.c - SMTP client dialogue (see smtp_client.h). */
#include "delivery/smtp_client.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "delivery/smtp_wire.h"
#include "net/client.h"
#include "queue/queue.h"
#include "util/buf.h"
#include "wire/enh.h"

#define LINE_MAX_CLIENT 2048
#define COPY_CHUNK (64u << 10)
#define NODE_LINE_MAX 256   /* "XNODE " and a node token */

struct smtp_client {
	struct net_client *conn;
	struct wire_caps caps;
	const struct smtp_client_opts *o;   /* during smtp_client_open only */
	bool broken;
	bool answered;   /* the current transaction got at least one reply */
	bool clean;      /* the last transaction left the session as after EHLO */
	bool lmtp;       /* RFC 2033: LHLO, and a reply per recipient after the final dot */
};

/* --- I/O helpers ---------------------------------------------------------- */

bool smtp_read_reply(struct net_client *conn, struct wire_reply *r, char *err, size_t errlen)
{
	wire_reply_reset(r);
	char line[LINE_MAX_CLIENT];
	for (int lines = 0; lines < 200; lines++) {
		if (net_client_read_line(conn, line, sizeof(line), err, errlen) < 0)
			return false;
		int f = wire_reply_feed(r, line);
		if (f < 0) {
			snprintf(err, errlen, "the server sent a line that is not an SMTP reply: \"%.80s\"", line);
			return false;
		}
		if (f == 1)
			return true;
	}
	snprintf(err, errlen, "reply too long");
	return false;
}

static bool read_reply(struct smtp_client *c, struct wire_reply *r, char *err, size_t errlen)
{
	if (!smtp_read_reply(c->conn, r, err, errlen)) {
		c->broken = true;
		return false;
	}
	c->answered = true;
	if (r->code == 421)
		c->broken = true;   /* RFC 5321 §3.8: the server is closing the channel */
	return true;
}

static bool send_line(struct smtp_client *c, const char *line, char *err, size_t errlen)
{
	char buf[LINE_MAX_CLIENT + 2];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		snprintf(err, errlen, "command too long");
		return false;
	}
	if (!net_client_write(c->conn, buf, (size_t)n, err, errlen)) {
		c->broken = true;
		return false;
	}
	return true;
}

static bool command(struct smtp_client *c, const char *line, struct wire_reply *r, char *err, size_t errlen)
{
	return send_line(c, line, err, errlen) && read_reply(c, r, err, errlen);
}

static void describe(char *out, size_t outsz, const char *step, const struct wire_reply *r)
{
	char rep[WIRE_REPLY_TEXT_MAX + 32];
	wire_reply_format(r, rep, sizeof(rep));
	snprintf(out, outsz, "%s: %s", step, rep);
}

/* --- opening --------------------------------------------------------------- */

static bool ehlo(struct smtp_client *c, char *err, size_t errlen)
{
	char line[300];
	snprintf(line, sizeof(line), "%s %s", c->lmtp ? "LHLO" : "EHLO", c->o->helo);
	if (!send_line(c, line, err, errlen))
		return false;
	memset(&c->caps, 0, sizeof(c->caps));
	/* Read the reply line by line to see each capability. */
	struct wire_reply r;
	wire_reply_reset(&r);
	char l[LINE_MAX_CLIENT];
	for (int i = 0; i < 200; i++) {
		if (net_client_read_line(c->conn, l, sizeof(l), err, errlen) < 0) {
			c->broken = true;
			return false;
		}
		int f = wire_reply_feed(&r, l);
		if (f < 0) {
			snprintf(err, errlen, "bad EHLO reply line \"%.80s\"", l);
			c->broken = true;
			return false;
		}
		if (r.code == 250 && i > 0)
			wire_caps_line(&c->caps, l + 4);
		if (f == 1)
			break;
	}
	if (r.code == 250) {
		c->caps.esmtp = true;
		return true;
	}
	if (c->lmtp) {   /* RFC 2033 §4.1: LHLO or nothing */
		describe(err, errlen, "LHLO", &r);
		return false;
	}
	/* RFC 5321 §3.2: fall back to HELO. */
	snprintf(line, sizeof(line), "HELO %s", c->o->helo);
	if (!command(c, line, &r, err, errlen))
		return false;
	if (r.code != 250) {
		describe(err, errlen, "HELO", &r);
		return false;
	}
	return true;
}

static bool authenticate(struct smtp_client *c, char *err, size_t errlen)
{
	struct wire_reply r;
	if (!c->caps.auth_plain && !c->caps.auth_login) {
		snprintf(err, errlen, "the relay offers no AUTH PLAIN or LOGIN%s; Postern cannot log in to it",
			net_client_is_tls(c->conn) ? "" : " before TLS (set the relay's tls to starttls or implicit)");
		return false;
	}
	const char *u = c->o->auth_user, *p = c->o->auth_pass;
	size_t ul = strlen(u), pl = strlen(p);
	if (c->caps.auth_plain) {
		unsigned char raw[1024];
		if (ul + pl + 2 > sizeof(raw)) {
			snprintf(err, errlen, "relay credentials too long");
			return false;
		}
		raw[0] = '\0';
		memcpy(raw + 1, u, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, p, pl);
		char line[1500] = "AUTH PLAIN ";
		EVP_EncodeBlock((unsigned char *)line + 11, raw, (int)(ul + pl + 2));
		OPENSSL_cleanse(raw, sizeof(raw));
		bool ok = command(c, line, &r, err, errlen);
		OPENSSL_cleanse(line, sizeof(line));
		if (!ok)
			return false;
	} else {
		char b[800];
		if (!command(c, "AUTH LOGIN", &r, err, errlen))
			return false;
		if (r.code == 334) {
			EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)u, (int)ul);
			if (!command(c, b, &r, err, errlen))
				return false;
		}
		if (r.code == 334) {
			EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)p, (int)pl);
			bool ok = command(c, b, &r, err, errlen);
			OPENSSL_cleanse(b, sizeof(b));
			if (!ok)
				return false;
		}
	}
	if (r.code != 235) {
		char rep[WIRE_REPLY_TEXT_MAX + 32];
		wire_reply_format(&r, rep, sizeof(rep));
		snprintf(err, errlen, "the relay refused Postern's login (%s): check the relay user name and password in [relay] credentials", rep);
		return false;
	}
	return true;
}

/* "XNODE <token>": this node proves itself to the home node (node_token.h). */
static bool node_prove(struct smtp_client *c, const char *token, char *err, size_t errlen)
{
	char line[NODE_LINE_MAX];
	snprintf(line, sizeof(line), "XNODE %s", token);
	struct wire_reply r;
	if (!command(c, line, &r, err, errlen))
		return false;
	if (r.code == 250)
		return true;
	char rep[WIRE_REPLY_TEXT_MAX + 32];
	wire_reply_format(&r, rep, sizeof(rep));
	snprintf(err, errlen, "it refused this node's token (%s): the nodes' [cluster] secret_file must hold the same "
		"secret and their clocks must agree within 2 minutes", rep);
	return false;
}

struct smtp_client *smtp_client_open(struct net_client *conn, const struct smtp_client_opts *o,
	char *err, size_t errlen, bool *permanent)
{
	*permanent = false;
	struct smtp_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->conn = conn;
	c->o = o;
	c->lmtp = o->lmtp;
	enum smtp_open_step step_local, *step = o->failed_step ? o->failed_step : &step_local;
	*step = SMTP_STEP_GREETING;
	struct wire_reply r;
	if (!read_reply(c, &r, err, errlen))
		goto fail;
	if (r.code != 220) {
		describe(err, errlen, "greeting", &r);
		goto fail;
	}
	*step = SMTP_STEP_EHLO;
	if (!ehlo(c, err, errlen))
		goto fail;
	bool want_tls = o->tls == SMTP_TLS_REQUIRE || (o->tls == SMTP_TLS_OPPORTUNISTIC && c->caps.starttls);
	if (want_tls && !net_client_is_tls(conn)) {
		*step = SMTP_STEP_NO_STARTTLS;
		if (!c->caps.starttls) {
			snprintf(err, errlen, "the server does not offer STARTTLS, and TLS is required for it");
			goto fail;
		}
		*step = SMTP_STEP_STARTTLS;
		if (!command(c, "STARTTLS", &r, err, errlen))
			goto fail;
		if (r.code != 220) {
			describe(err, errlen, "STARTTLS", &r);
			goto fail;
		}
		bool tls_ok = o->tls_params ? net_client_tls_with(conn, o->tls_params, err, errlen)
			: net_client_tls(conn, o->peer_name, o->tls_verify, err, errlen);
		if (!tls_ok && o->tls_params && o->tls_params->auth_failed)
			*step = SMTP_STEP_TLS_AUTH;
		if (!tls_ok)
			goto fail;
		*step = SMTP_STEP_EHLO;
		if (!ehlo(c, err, errlen))
			goto fail;
	}
	*step = SMTP_STEP_AUTH;
	if (o->auth_user && !authenticate(c, err, errlen))
		goto fail;
	if (o->node_token && !node_prove(c, o->node_token, err, errlen))
		goto fail;
	*step = SMTP_STEP_NONE;
	c->o = NULL;   /* the caller's options need not outlive the opening */
	c->clean = true;
	return c;
fail:
	c->conn = NULL;   /* the caller still owns it */
	free(c);
	return NULL;
}

struct net_client *smtp_client_conn(struct smtp_client *c)
{
	return c->conn;
}

const struct wire_caps *smtp_client_caps(const struct smtp_client *c)
{
	return &c->caps;
}

bool smtp_client_reusable(const struct smtp_client *c)
{
	return !c->broken && c->clean && net_client_drained(c->conn);
}

bool smtp_client_broke_unanswered(const struct smtp_client *c)
{
	return c->broken && !c->answered;
}

void smtp_client_drop(struct smtp_client **cp)
{
	if (*cp)
		(*cp)->broken = true;
	smtp_client_close(cp);
}

void smtp_client_close(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (!c)
		return;
	if (!c->broken) {
		char err[128];
		struct wire_reply r;
		command(c, "QUIT", &r, err, sizeof(err));
	}
	net_client_close(&c->conn);
	free(c);
	*cp = NULL;
}

/* --- one transaction -------------------------------------------------------- */

/* RSET after a transaction that did not reach its end (RFC 5321 §4.1.1.5): the
 * session is clean for the next one only when the server says 250. */
static void rset(struct smtp_client *c, struct wire_reply *r, char *err, size_t errlen)
{
	c->clean = command(c, "RSET", r, err, errlen) && r->code == 250;
}

static void set_all(struct rcpt_result *res, size_t n, enum rcpt_outcome o, const char *enh, const char *why)
{
	for (size_t i = 0; i < n; i++)
		rcpt_result_set(&res[i], o, enh, why);
}

static void from_reply(struct rcpt_result *res, const struct wire_reply *r, const char *peer)
{
	char said[96];
	snprintf(said, sizeof(said), "%.60s said", peer);
	rcpt_result_from_reply(res, r, said);
}

/* xtext (RFC 3461 §4): "+" and "=" and non-printables as +XX. */
static void xtext(char *out, size_t outsz, const char *in)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outsz; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			o += (size_t)snprintf(out + o, outsz - o, "+%02X", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
}

static void mail_command(const struct smtp_client *c, const struct smtp_client_msg *m, char *out, size_t outsz)
{
	const struct queue_envelope *e = m->env;
	int n = snprintf(out, outsz, "MAIL FROM:<%s>", e->sender);
	if (c->caps.size && n > 0)
		n += snprintf(out + n, outsz - (size_t)n, " SIZE=%llu", (unsigned long long)m->size);
	if (e->eightbit && c->caps.eightbitmime && n > 0)
		n += snprintf(out + n, outsz - (size_t)n, " BODY=8BITMIME");
	if (e->smtputf8 && n > 0)
		n += snprintf(out + n, outsz - (size_t)n, " SMTPUTF8");
	if (c->caps.dsn && n > 0) {
		if (e->ret)
			n += snprintf(out + n, outsz - (size_t)n, " RET=%s", e->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
		if (e->envid[0]) {
			char x[320];
			xtext(x, sizeof(x), e->envid);
			snprintf(out + n, outsz - (size_t)n, " ENVID=%s", x);
		}
	}
}

static void rcpt_command(const struct smtp_client *c, const struct smtp_client_msg *m, size_t idx, char *out, size_t outsz)
{
	const struct queue_envelope *e = m->env;
	int n = snprintf(out, outsz, "RCPT TO:<%s>", e->rcpts[idx]);
	if (!c->caps.dsn || n < 0)
		return;
	if (e->notify && e->notify[idx]) {
		unsigned f = e->notify[idx];
		if (f & QUEUE_NOTIFY_NEVER)
			n += snprintf(out + n, outsz - (size_t)n, " NOTIFY=NEVER");
		else
			n += snprintf(out + n, outsz - (size_t)n, " NOTIFY=%s%s%s%s%s", f & QUEUE_NOTIFY_SUCCESS ? "SUCCESS" : "",
				(f & QUEUE_NOTIFY_SUCCESS) && (f & (QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY)) ? "," : "",
				f & QUEUE_NOTIFY_FAILURE ? "FAILURE" : "",
				(f & QUEUE_NOTIFY_FAILURE) && (f & QUEUE_NOTIFY_DELAY) ? "," : "",
				f & QUEUE_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (e->orcpt && e->orcpt[idx][0] && n > 0) {
		char x[QUEUE_ADDR_MAX * 3];
		const char *semi = strchr(e->orcpt[idx], ';');
		xtext(x, sizeof(x), semi ? semi + 1 : e->orcpt[idx]);
		snprintf(out + n, outsz - (size_t)n, " ORCPT=rfc822;%s", x);
	}
}

/* One piece of the message through the encoder, sent when conn is there: 1, 0 (the
 * content cannot be sent) or -1 (an I/O error). */
static int wire_piece(struct smtp_client *c, struct smtp_wire *w, const char *in, size_t n, char *out, char *err,
	size_t errlen)
{
	size_t o = smtp_wire_feed(w, in, n, out);
	if (w->failed)
		return 0;
	return c && o && !net_client_write(c->conn, out, o, err, errlen) ? -1 : 1;
}

/* The message as it goes on the wire (smtp_wire.h): CR LF line ends only, dot-stuffed
 * for DATA, no line over 1000 octets.  With conn NULL nothing is sent: the pass that
 * runs before MAIL to learn the size for BDAT and whether the message can go at all.
 * Returns 1 sent (or could be), 0 the content cannot be sent (why says), -1 an I/O
 * error (err says). */
static int pass_body(struct smtp_client *c, const struct smtp_client_msg *m, bool stuff, struct smtp_wire *w,
	char *err, size_t errlen)
{
	char *in = malloc(COPY_CHUNK), *out = malloc(SMTP_WIRE_OUT_MAX(COPY_CHUNK));
	int rc = in && out ? 1 : -1;
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	smtp_wire_init(w, stuff);
	/* The header fields added at the end of data first, framed like the rest. */
	for (size_t at = 0; rc > 0 && at < m->prefix_len; at += COPY_CHUNK)
		rc = wire_piece(c, w, m->prefix + at, m->prefix_len - at < COPY_CHUNK ? m->prefix_len - at : COPY_CHUNK,
			out, err, errlen);
	uint64_t left = m->size - m->prefix_len;
	off_t off = m->off;
	while (rc > 0 && left > 0) {
		size_t want = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;
		ssize_t r = pread(m->fd, in, want, off);
		if (r <= 0) {
			snprintf(err, errlen, "cannot read the queued message");
			rc = -1;
			break;
		}
		off += r;
		left -= (uint64_t)r;
		rc = wire_piece(c, w, in, (size_t)r, out, err, errlen);
	}
	if (rc > 0) {
		size_t o = smtp_wire_finish(w, out);
		if (w->failed)
			rc = 0;
		else if (c && o && !net_client_write(c->conn, out, o, err, errlen))
			rc = -1;
	}
	if (rc == 0)
		smtp_wire_describe(w, err, errlen);
	free(in);
	free(out);
	return rc;
}

/* Send the message body: dot-stuffed and ended with "." for DATA, as one chunk for BDAT. */
static bool send_body(struct smtp_client *c, const struct smtp_client_msg *m, bool stuff, char *err, size_t errlen)
{
	struct smtp_wire w;
	bool ok = pass_body(c, m, stuff, &w, err, errlen) > 0;
	if (ok && stuff)
		ok = net_client_write(c->conn, ".\r\n", 3, err, errlen);
	if (!ok)
		c->broken = true;
	return ok;
}

/* What the receiving server cannot take is refused before MAIL: true when that
 * decided every recipient; else *wire_size is the message's size on the wire. */
static bool refused_before_mail(struct smtp_client *c, const struct smtp_client_msg *m, struct rcpt_result *res,
	uint64_t *wire_size)
{
	const char *peer = net_client_peer(c->conn);
	char why[300];
	if (c->caps.size && m->size > c->caps.size) {
		snprintf(why, sizeof(why), "%s accepts messages up to %llu octets; this one is %llu", peer,
			(unsigned long long)c->caps.size, (unsigned long long)m->size);
		set_all(res, m->n, OUT_FAIL, ENH_PERM_TOO_BIG, why);
		return true;
	}
	if (m->env->eightbit && !c->caps.eightbitmime) {
		/* RFC 6152 §3: refuse rather than send 8-bit data to a 7-bit server. */
		snprintf(why, sizeof(why), "%s does not accept 8-bit messages (no 8BITMIME), and Postern does not convert them", peer);
		set_all(res, m->n, OUT_FAIL, ENH_PERM_CONVERSION, why);
		return true;
	}
	if (m->env->smtputf8 && !c->caps.smtputf8) {
		snprintf(why, sizeof(why), "%s does not support internationalised addresses (no SMTPUTF8)", peer);
		set_all(res, m->n, OUT_FAIL, ENH_PERM_NON_ASCII, why);
		return true;
	}
	/* Lines over 998 octets: a header line is folded (smtp_wire.h); a body line is
	 * not rewritten but returned to the sender, with the line and what to change.
	 * Re-encoding the body as quoted-printable (what Postfix and Sendmail do when
	 * they downgrade 8BITMIME) changes the content the sender signed (DKIM) and
	 * needs a MIME rewrite of every part; folding a body line changes the text
	 * itself.  The receive side already refuses lines over message_line_length, so
	 * this only concerns the few messages between 998 and that limit, and a report
	 * that says which line is better than a silently changed message. */
	struct smtp_wire wire;
	char content[700];
	int scan = pass_body(NULL, m, !c->caps.chunking, &wire, content, sizeof(content));
	if (scan < 0) {
		set_all(res, m->n, OUT_DEFER, ENH_TEMP_SYSTEM, content);
		return true;
	}
	if (scan == 0) {
		/* The status goes first (rcpt_result_reason): the text cites "RFC 5321
		 * 4.5.3.1.6", which a reader of the report would otherwise take for it. */
		set_all(res, m->n, OUT_FAIL, ENH_PERM_CONVERSION, content);
		return true;
	}
	*wire_size = wire.out_size;
	return false;
}

/* MAIL, then RCPT for each recipient; RFC 2920: with PIPELINING, MAIL, every RCPT
 * and (for DATA) DATA go in one write.  False when the connection broke. */
static bool send_envelope(struct smtp_client *c, const struct smtp_client_msg *m, char *err, size_t errlen)
{
	char line[LINE_MAX_CLIENT];
	struct buf batch;
	buf_init(&batch, (m->n + 3) * (LINE_MAX_CLIENT + 2));
	mail_command(c, m, line, sizeof(line));
	buf_printf(&batch, "%s\r\n", line);
	if (c->caps.pipelining) {
		for (size_t i = 0; i < m->n; i++) {
			rcpt_command(c, m, m->rcpts[i], line, sizeof(line));
			buf_printf(&batch, "%s\r\n", line);
		}
		if (!c->caps.chunking)
			buf_appends(&batch, "DATA\r\n");
	}
	bool ok = net_client_write(c->conn, batch.data, batch.len, err, errlen);
	buf_free(&batch);
	return ok;
}

/* The replies to MAIL and each RCPT (sending each RCPT in turn without PIPELINING).
 * Accepted recipients wait for the end of data (nothing recorded yet).  False when
 * the connection broke. */
static bool envelope_replies(struct smtp_client *c, const struct smtp_client_msg *m, struct rcpt_result *res,
	struct wire_reply *mail_reply, size_t *accepted, char *err, size_t errlen)
{
	const char *peer = net_client_peer(c->conn);
	char line[LINE_MAX_CLIENT];
	struct wire_reply r;
	if (!read_reply(c, mail_reply, err, errlen))
		return false;
	bool mail_ok = mail_reply->code / 100 == 2;
	*accepted = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (!c->caps.pipelining) {
			if (!mail_ok)
				break;
			rcpt_command(c, m, m->rcpts[i], line, sizeof(line));
			if (!command(c, line, &r, err, errlen))
				return false;
		} else if (!read_reply(c, &r, err, errlen)) {
			return false;
		}
		if (!mail_ok)
			continue;   /* pipelined RCPT replies after a refused MAIL mean nothing */
		from_reply(&res[i], &r, peer);
		if (res[i].outcome == OUT_DELIVERED) {
			res[i] = (struct rcpt_result){ .outcome = OUT_DELIVERED };   /* decided by the end of data */
			(*accepted)++;
		}
	}
	return true;
}

/* DATA (dot-stuffed) or one BDAT ... LAST chunk, for the accepted recipients; the
 * final reply is in *r.  Returns 1 sent, 0 decided without sending, -1 broken. */
static int send_content(struct smtp_client *c, const struct smtp_client_msg *m, struct rcpt_result *res,
	size_t accepted, uint64_t wire_size, struct wire_reply *r, char *err, size_t errlen)
{
	bool pipe = c->caps.pipelining;
	if (!c->caps.chunking) {
		if (pipe ? !read_reply(c, r, err, errlen) : accepted && !command(c, "DATA", r, err, errlen))
			return -1;
		if (accepted == 0) {
			/* Every RCPT refused: a pipelined DATA got 503/554; the RCPT replies
			 * are the reasons, already recorded. */
			rset(c, r, err, errlen);
			return 0;
		}
		if (r->code != 354) {
			for (size_t i = 0; i < m->n; i++)
				if (res[i].outcome == OUT_DELIVERED)
					from_reply(&res[i], r, net_client_peer(c->conn));
			struct wire_reply rr;
			rset(c, &rr, err, errlen);   /* MAIL and RCPT still stand */
			return 0;
		}
		return send_body(c, m, true, err, errlen) && read_reply(c, r, err, errlen) ? 1 : -1;
	}
	if (accepted == 0) {
		rset(c, r, err, errlen);
		return 0;
	}
	char line[64];
	snprintf(line, sizeof(line), "BDAT %llu LAST", (unsigned long long)wire_size);
	return send_line(c, line, err, errlen) && send_body(c, m, false, err, errlen) && read_reply(c, r, err, errlen)
		? 1 : -1;
}

/* The connection broke: every recipient not yet decided is tried again later. */
static bool transaction_broke(struct smtp_client *c, const struct smtp_client_msg *m, struct rcpt_result *res,
	const char *err)
{
	c->broken = true;
	char why[700];
	snprintf(why, sizeof(why), "connection to %s failed during the transaction: %s", net_client_peer(c->conn), err);
	for (size_t i = 0; i < m->n; i++)
		if (res[i].outcome == OUT_DELIVERED || !rcpt_result_known(&res[i]))
			rcpt_result_set(&res[i], OUT_DEFER, ENH_TEMP_BAD_CONNECTION, why);
	return false;
}

bool smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m, struct rcpt_result *res)
{
	const char *peer = net_client_peer(c->conn);
	char err[512];
	memset(res, 0, m->n * sizeof(*res));
	c->answered = false;
	uint64_t wire_size = 0;
	if (refused_before_mail(c, m, res, &wire_size))
		return true;   /* nothing was sent: the session is as it was */
	c->clean = false;
	struct wire_reply mail_reply, r;
	size_t accepted = 0;
	if (!send_envelope(c, m, err, sizeof(err)) || !envelope_replies(c, m, res, &mail_reply, &accepted, err, sizeof(err)))
		return transaction_broke(c, m, res, err);
	if (mail_reply.code / 100 != 2) {
		char said[96];
		snprintf(said, sizeof(said), "%.70s said to MAIL FROM", peer);
		for (size_t i = 0; i < m->n; i++)
			rcpt_result_from_reply(&res[i], &mail_reply, said);
		if (c->caps.pipelining && !c->caps.chunking && !read_reply(c, &r, err, sizeof(err)))
			return transaction_broke(c, m, res, err);   /* the pipelined DATA's 503 */
		rset(c, &r, err, sizeof(err));
		return true;
	}
	int sent = send_content(c, m, res, accepted, wire_size, &r, err, sizeof(err));
	if (sent < 0)
		return transaction_broke(c, m, res, err);
	if (sent == 0)
		return true;
	/* RFC 5321 §4.1.1.4: the reply to the end of data completes the transaction and
	 * clears its buffers, whatever it says; no RSET is needed before the next MAIL.
	 * RFC 2033 §4.2: LMTP answers each accepted recipient in turn, the first reply
	 * already read. */
	bool first = true;
	for (size_t i = 0; i < m->n; i++) {
		if (res[i].outcome != OUT_DELIVERED || rcpt_result_known(&res[i]))
			continue;
		if (c->lmtp && !first && !read_reply(c, &r, err, sizeof(err)))
			return transaction_broke(c, m, res, err);
		first = false;
		from_reply(&res[i], &r, peer);
	}
	c->clean = true;
	return true;
}
