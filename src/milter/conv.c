/* conv.c - the blocking milter conversation (see milter.h): the codec's packets over
 * a net/client.h connection, with the filter's time-outs, the negotiation obeyed and
 * the modifications collected at the end of the body.  Postfix's milter8.c is the
 * model for what is sent when and what a reply means at each step. */
#include "milter/milter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "milter/codec.h"
#include "net/client.h"
#include "util/metrics.h"

#define OUT_CAP (MILTER_PACKET_MAX + 16)
#define READ_CHUNK 16384
#define PROGRESS_FACTOR 10         /* PROGRESS extends a wait, at most to 10 times its limit */
#define MODS_MAX 1024              /* modifications per message */
#define MODS_BYTES_MAX (4u << 20)  /* their names and values together */

struct milter_conn {
	struct milter_filter_conf fc;
	struct net_client *c;
	struct milter_reader rd;
	struct milter_nego nego;
	struct milter_out out;
	unsigned char *rbuf;
	size_t rlen, rpos;
	bool failed;               /* the connection is gone: every step is MILTER_FAILED */
	char failure[256];
	bool accepted_session;     /* ACCEPT at connect/HELO */
	bool accepted_tx;          /* ACCEPT (or a final verdict) inside the transaction */
	bool skipping_body;        /* SKIP after a body chunk */
	size_t mods_bytes;
};

static unsigned long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long)ts.tv_sec * 1000ul + (unsigned long)ts.tv_nsec / 1000000ul;
}

static void free_mods(struct milter_outcome *out)
{
	for (size_t i = 0; i < out->n_mods; i++) {
		free(out->mods[i].name);
		free(out->mods[i].value);
	}
	free(out->mods);
	out->mods = NULL;
	out->n_mods = 0;
}

void milter_outcome_clear(struct milter_outcome *out)
{
	free_mods(out);
	memset(out, 0, sizeof(*out));
}

/* "10 seconds", "1500 ms" */
static void say_ms(char *out, size_t outsz, unsigned ms)
{
	if (ms % 1000 == 0)
		snprintf(out, outsz, "%u second%s", ms / 1000, ms == 1000 ? "" : "s");
	else
		snprintf(out, outsz, "%u ms", ms);
}

/* The connection breaks for good: the words stay for every later step. */
static enum milter_verdict fail(struct milter_conn *m, struct milter_outcome *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum milter_verdict fail(struct milter_conn *m, struct milter_outcome *out, const char *fmt, ...)
{
	if (!m->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->failure, sizeof(m->failure), fmt, ap);
		va_end(ap);
		m->failed = true;
		net_client_close(&m->c);
	}
	snprintf(out->failure, sizeof(out->failure), "%s", m->failure);
	out->verdict = MILTER_FAILED;
	return MILTER_FAILED;
}

static const char *cmd_name(char cmd)
{
	switch (cmd) {
	case MILTER_CMD_OPTNEG: return "option negotiation";
	case MILTER_CMD_CONNECT: return "CONNECT";
	case MILTER_CMD_HELO: return "HELO";
	case MILTER_CMD_MAIL: return "MAIL";
	case MILTER_CMD_RCPT: return "RCPT";
	case MILTER_CMD_DATA: return "DATA";
	case MILTER_CMD_HEADER: return "a header";
	case MILTER_CMD_EOH: return "the end of the headers";
	case MILTER_CMD_BODY: return "a body chunk";
	case MILTER_CMD_BODYEOB: return "the end of the message";
	default: return "a command";
	}
}

/* --- sending ----------------------------------------------------------------------- */

static bool flush(struct milter_conn *m, struct milter_outcome *out)
{
	char err[200];
	net_client_set_io_ms(m->c, m->fc.command_ms);
	bool ok = net_client_write(m->c, m->out.p, m->out.len, err, sizeof(err));
	m->out.len = 0;
	if (!ok) {
		if (strstr(err, "timed out"))
			fail(m, out, "did not take what was sent within %u ms (%s)", m->fc.command_ms, err);
		else
			fail(m, out, "closed the connection (%s)", err);
	}
	return ok;
}

/* SMFIC_MACRO for the stage of cmd: the macros the filter wants, none when it wants none. */
static bool put_macros(struct milter_conn *m, char cmd, const struct milter_macro *mac, size_t n)
{
	const char *names[64], *values[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k < 64; i++) {
		if (!mac[i].name || !mac[i].name[0] || !mac[i].value)
			continue;
		if (milter_nego_wants_macro(&m->nego, cmd, mac[i].name)) {
			names[k] = mac[i].name;
			values[k++] = mac[i].value;
		}
	}
	if (k == 0)
		return true;
	/* A set too large for one packet is cut to what fits, never sent broken. */
	while (k > 0 && !milter_enc_macro(&m->out, cmd, names, values, k))
		k--;
	return true;
}

/* --- waiting ----------------------------------------------------------------------- */

struct wait {
	char cmd;                  /* the command answered */
	unsigned limit_ms;         /* each wait, renewed by PROGRESS */
	unsigned long deadline, hard_deadline;
};

static void wait_begin(struct wait *w, char cmd, unsigned limit_ms)
{
	w->cmd = cmd;
	w->limit_ms = limit_ms ? limit_ms : 1;
	unsigned long t = now_ms();
	w->deadline = t + w->limit_ms;
	w->hard_deadline = t + (unsigned long)w->limit_ms * PROGRESS_FACTOR;
}

static enum milter_verdict read_failed(struct milter_conn *m, struct wait *w, struct milter_outcome *out,
	long r, const char *err)
{
	char lim[32];
	say_ms(lim, sizeof(lim), w->limit_ms);
	if (r == 0)
		return fail(m, out, "closed the connection (waiting for its reply to %s)", cmd_name(w->cmd));
	if (net_client_status(m->c) == NET_TIMEOUT)
		return fail(m, out, "did not answer within %s (reply to %s)", lim, cmd_name(w->cmd));
	if (strstr(err, "stopped"))
		return fail(m, out, "was not waited for: the server is shutting down");
	return fail(m, out, "closed the connection (%s, waiting for its reply to %s)", err, cmd_name(w->cmd));
}

/* The next event from the filter within the wait; PROGRESS renews the wait and is
 * not returned.  False when the connection failed (out says why). */
static bool next_event(struct milter_conn *m, struct wait *w, struct milter_event *ev, struct milter_outcome *out)
{
	char err[256];
	for (;;) {
		if (m->rpos < m->rlen) {
			size_t used = 0;
			enum milter_rd rd = milter_reader_feed(&m->rd, m->rbuf + m->rpos, m->rlen - m->rpos, &used, ev,
				err, sizeof(err));
			m->rpos += used;
			if (rd == MILTER_RD_ERROR) {
				fail(m, out, "answered garbage (%s)", err);
				return false;
			}
			if (rd == MILTER_RD_MORE)
				continue;
			if (ev->kind != MILTER_EV_PROGRESS)
				return true;
			/* SMFIR_PROGRESS: the filter is working; wait again, up to the hard bound. */
			unsigned long t = now_ms();
			w->deadline = t + w->limit_ms < w->hard_deadline ? t + w->limit_ms : w->hard_deadline;
			continue;
		}
		unsigned long t = now_ms();
		if (t >= w->deadline) {
			char lim[32];
			say_ms(lim, sizeof(lim), t >= w->hard_deadline ? w->limit_ms * PROGRESS_FACTOR : w->limit_ms);
			fail(m, out, "did not answer within %s (reply to %s%s)", lim, cmd_name(w->cmd),
				t >= w->hard_deadline ? ", progress reports included" : "");
			return false;
		}
		net_client_set_io_ms(m->c, (unsigned)(w->deadline - t));
		long r = net_client_read(m->c, m->rbuf, READ_CHUNK, err, sizeof(err));
		if (r <= 0) {
			if (r < 0 && net_client_status(m->c) == NET_TIMEOUT)
				continue;   /* the deadline (or the hard bound) says what happened, above */
			read_failed(m, w, out, r, err);
			return false;
		}
		m->rlen = (size_t)r;
		m->rpos = 0;
	}
}

/* A final reply as a verdict; MILTER_FAILED (with words) for anything else. */
static enum milter_verdict final_reply(struct milter_conn *m, struct wait *w, const struct milter_event *ev,
	struct milter_outcome *out)
{
	switch (ev->kind) {
	case MILTER_EV_CONTINUE: return out->verdict = MILTER_CONTINUE;
	case MILTER_EV_ACCEPT: return out->verdict = MILTER_ACCEPT;
	case MILTER_EV_REJECT: return out->verdict = MILTER_REJECT;
	case MILTER_EV_TEMPFAIL:
	case MILTER_EV_SHUTDOWN:
	case MILTER_EV_CONN_FAIL:
		return out->verdict = MILTER_TEMPFAIL;
	case MILTER_EV_DISCARD: return out->verdict = MILTER_DISCARD;
	case MILTER_EV_REPLYCODE:
		snprintf(out->reply, sizeof(out->reply), "%s", ev->reply);
		snprintf(out->reply_enh, sizeof(out->reply_enh), "%s", ev->enh);
		out->reply_code = ev->code;
		return out->verdict = MILTER_REPLYCODE;
	case MILTER_EV_SKIP:
		if (w->cmd == MILTER_CMD_BODY && (m->nego.protocol & MILTER_P_SKIP))
			return out->verdict = MILTER_SKIP;
		return fail(m, out, "answered garbage (skip in reply to %s)", cmd_name(w->cmd));
	default:
		return fail(m, out, "answered garbage (%s in reply to %s)", milter_ev_name(ev->kind), cmd_name(w->cmd));
	}
}

/* Send what is buffered; wait for the reply unless the filter said it sends none. */
static enum milter_verdict exchange(struct milter_conn *m, char cmd, unsigned limit_ms, struct milter_outcome *out)
{
	if (!flush(m, out))
		return MILTER_FAILED;
	if (!milter_nego_awaits(&m->nego, cmd))
		return out->verdict = MILTER_CONTINUE;
	struct wait w;
	wait_begin(&w, cmd, limit_ms);
	struct milter_event ev;
	if (!next_event(m, &w, &ev, out))
		return MILTER_FAILED;
	return final_reply(m, &w, &ev, out);
}

/* --- opening ----------------------------------------------------------------------- */

static struct net_client *dial(const struct milter_filter_conf *fc, const struct net_cancel *cancel,
	struct milter_outcome *out)
{
	struct milter_socket sock;
	char err[200];
	if (!milter_socket_parse(fc->socket, &sock, err, sizeof(err))) {
		snprintf(out->failure, sizeof(out->failure), "cannot be reached: %s", err);
		return NULL;
	}
	struct net_client_opts o = { .connect_ms = fc->connect_ms ? fc->connect_ms : 1,
		.io_ms = fc->command_ms ? fc->command_ms : 1, .cancel = cancel };
	enum net_status st = NET_ERROR;
	struct net_client *c = sock.is_unix ? net_client_open_unix(sock.path, &o, &st, err, sizeof(err))
		: net_client_open(sock.host, sock.port, &o, &st, err, sizeof(err));
	if (c)
		return c;
	char lim[32];
	say_ms(lim, sizeof(lim), o.connect_ms);
	if (st == NET_REFUSED)
		snprintf(out->failure, sizeof(out->failure), "connect refused (%.120s: %.100s)", fc->socket, err);
	else if (st == NET_TIMEOUT)
		snprintf(out->failure, sizeof(out->failure), "did not accept the connection within %s (%.120s)", lim,
			fc->socket);
	else
		snprintf(out->failure, sizeof(out->failure), "cannot be reached (%.120s: %.100s)", fc->socket, err);
	return NULL;
}

static bool negotiate(struct milter_conn *m, struct milter_outcome *out)
{
	if (!milter_enc_optneg(&m->out, MILTER_VERSION, MILTER_F_ALL, MILTER_P_OFFERED) || !flush(m, out))
		return false;
	struct wait w;
	wait_begin(&w, MILTER_CMD_OPTNEG, m->fc.command_ms);
	struct milter_event ev;
	if (!next_event(m, &w, &ev, out))
		return false;
	char err[200];
	if (ev.kind != MILTER_EV_OPTNEG) {
		fail(m, out, "answered garbage (%s in reply to option negotiation)", milter_ev_name(ev.kind));
		return false;
	}
	if (!milter_negotiate(&ev, MILTER_F_ALL, MILTER_P_OFFERED, &m->nego, err, sizeof(err))) {
		fail(m, out, "answered garbage (%s)", err);
		return false;
	}
	return true;
}

struct milter_conn *milter_open(const struct milter_filter_conf *fc, const struct net_cancel *cancel,
	struct milter_outcome *out)
{
	milter_outcome_clear(out);
	unsigned long t0 = now_ms();
	out->verdict = MILTER_FAILED;
	struct milter_conn *m = calloc(1, sizeof(*m));
	if (!m || !(m->out.p = malloc(OUT_CAP)) || !(m->rbuf = malloc(READ_CHUNK)) || !milter_reader_init(&m->rd)) {
		snprintf(out->failure, sizeof(out->failure), "could not be talked to: out of memory");
		if (m) {
			free(m->out.p);
			free(m->rbuf);
			free(m);
		}
		return NULL;
	}
	m->fc = *fc;
	if (!m->fc.command_ms)
		m->fc.command_ms = 1;
	if (!m->fc.content_ms)
		m->fc.content_ms = 1;
	m->out.cap = OUT_CAP;
	m->c = dial(fc, cancel, out);
	if (!m->c || !negotiate(m, out)) {
		milter_close(&m);
		out->elapsed_ms = now_ms() - t0;
		return NULL;
	}
	out->verdict = MILTER_CONTINUE;
	out->elapsed_ms = now_ms() - t0;
	return m;
}

void milter_negotiated(const struct milter_conn *m, unsigned *version, unsigned *actions, unsigned *protocol)
{
	*version = m->nego.version;
	*actions = m->nego.actions;
	*protocol = m->nego.protocol;
}

/* --- the steps --------------------------------------------------------------------- */

/* Common to every step: the outcome reset, and whether anything is to be sent. */
static bool step_begin(struct milter_conn *m, char cmd, struct milter_outcome *out, enum milter_verdict *v)
{
	milter_outcome_clear(out);
	if (m->failed) {
		*v = fail(m, out, "%s", m->failure);
		return false;
	}
	if (m->accepted_session || m->accepted_tx) {
		*v = out->verdict = MILTER_ACCEPT;
		return false;
	}
	if (!milter_nego_sends(&m->nego, cmd)) {
		*v = out->verdict = MILTER_CONTINUE;
		return false;
	}
	m->out.len = 0;
	return true;
}

/* After a step's reply: an ACCEPT ends the filter's part in the session (connect,
 * HELO) or the transaction; a refusal of MAIL, DATA or the content ends the
 * transaction for the filter too (libmilter expects the next MAIL or ABORT). */
static enum milter_verdict step_end(struct milter_conn *m, char cmd, enum milter_verdict v, unsigned long t0,
	struct milter_outcome *out)
{
	if (v == MILTER_ACCEPT && (cmd == MILTER_CMD_CONNECT || cmd == MILTER_CMD_HELO))
		m->accepted_session = true;
	else if (v == MILTER_ACCEPT)
		m->accepted_tx = true;
	out->elapsed_ms = now_ms() - t0;
	metrics_observe(METRIC_MILTER_DURATION, m->fc.name, (double)out->elapsed_ms / 1000.0);
	return v;
}

enum milter_verdict milter_connect(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *hostname, char family, unsigned port, const char *addr, struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_CONNECT, out, &v))
		return v;
	put_macros(m, MILTER_CMD_CONNECT, mac, n);
	if (!milter_enc_connect(&m->out, hostname ? hostname : "", family, port, addr ? addr : ""))
		return fail(m, out, "could not be sent the client's address (family '%c')", family);
	return step_end(m, MILTER_CMD_CONNECT, exchange(m, MILTER_CMD_CONNECT, m->fc.command_ms, out), t0, out);
}

enum milter_verdict milter_helo(struct milter_conn *m, const struct milter_macro *mac, size_t n, const char *helo,
	struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_HELO, out, &v))
		return v;
	put_macros(m, MILTER_CMD_HELO, mac, n);
	if (!milter_enc_helo(&m->out, helo ? helo : ""))
		return fail(m, out, "could not be sent the HELO name (too long)");
	return step_end(m, MILTER_CMD_HELO, exchange(m, MILTER_CMD_HELO, m->fc.command_ms, out), t0, out);
}

static enum milter_verdict envelope(struct milter_conn *m, char cmd, const struct milter_macro *mac, size_t n,
	const char *const *argv, size_t argc, struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (cmd == MILTER_CMD_MAIL) {
		/* A new transaction: what the last one settled is gone. */
		m->accepted_tx = false;
		m->skipping_body = false;
	}
	if (!step_begin(m, cmd, out, &v))
		return v;
	put_macros(m, cmd, mac, n);
	bool ok = cmd == MILTER_CMD_MAIL ? milter_enc_mail(&m->out, argv, argc) : milter_enc_rcpt(&m->out, argv, argc);
	if (!ok)
		return fail(m, out, "could not be sent %s (no address, or over 64 KiB)", cmd_name(cmd));
	return step_end(m, cmd, exchange(m, cmd, m->fc.command_ms, out), t0, out);
}

enum milter_verdict milter_mail(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *const *argv, size_t argc, struct milter_outcome *out)
{
	return envelope(m, MILTER_CMD_MAIL, mac, n, argv, argc, out);
}

enum milter_verdict milter_rcpt(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *const *argv, size_t argc, struct milter_outcome *out)
{
	return envelope(m, MILTER_CMD_RCPT, mac, n, argv, argc, out);
}

enum milter_verdict milter_data(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_DATA, out, &v))
		return v;
	put_macros(m, MILTER_CMD_DATA, mac, n);
	milter_enc_bare(&m->out, MILTER_CMD_DATA);
	return step_end(m, MILTER_CMD_DATA, exchange(m, MILTER_CMD_DATA, m->fc.command_ms, out), t0, out);
}

/* The header value as sent: leading blanks dropped unless SMFIP_HDR_LEADSPC, CR LF
 * as LF, the final line end dropped.  NULL when it does not fit. */
static char *header_value(const struct milter_conn *m, const char *value, char *buf, size_t bufsz)
{
	const char *p = value ? value : "";
	if (!(m->nego.protocol & MILTER_P_HDR_LEADSPC))
		while (*p == ' ' || *p == '\t')
			p++;
	size_t k = 0;
	for (; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n')
			continue;
		if (k + 1 >= bufsz)
			return NULL;
		buf[k++] = *p;
	}
	while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r'))
		k--;
	buf[k] = '\0';
	return buf;
}

enum milter_verdict milter_header(struct milter_conn *m, const char *name, const char *value,
	struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_HEADER, out, &v))
		return v;
	char *buf = malloc(MILTER_PACKET_MAX);
	const char *sent = buf ? header_value(m, value, buf, MILTER_PACKET_MAX) : NULL;
	bool ok = sent && milter_enc_header(&m->out, name, sent);
	free(buf);
	if (!ok)
		return fail(m, out, "could not be sent the header %.60s (empty name, or over 64 KiB)", name ? name : "");
	return step_end(m, MILTER_CMD_HEADER, exchange(m, MILTER_CMD_HEADER, m->fc.content_ms, out), t0, out);
}

enum milter_verdict milter_eoh(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_EOH, out, &v))
		return v;
	put_macros(m, MILTER_CMD_EOH, mac, n);
	milter_enc_bare(&m->out, MILTER_CMD_EOH);
	return step_end(m, MILTER_CMD_EOH, exchange(m, MILTER_CMD_EOH, m->fc.content_ms, out), t0, out);
}

enum milter_verdict milter_body(struct milter_conn *m, const void *p, size_t n, struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	if (!step_begin(m, MILTER_CMD_BODY, out, &v))
		return v;
	if (m->skipping_body)
		return out->verdict = MILTER_SKIP;
	if (!milter_enc_body(&m->out, p, n))
		return fail(m, out, "could not be sent a body chunk of %zu octets (at most 65535)", n);
	v = exchange(m, MILTER_CMD_BODY, m->fc.content_ms, out);
	if (v == MILTER_SKIP)
		m->skipping_body = true;
	return step_end(m, MILTER_CMD_BODY, v, t0, out);
}

/* --- the end of the body ----------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool add_mod(struct milter_conn *m, struct milter_outcome *out, enum milter_mod_kind kind, unsigned index,
	const char *name, const char *value)
{
	size_t bytes = strlen(name) + (value ? strlen(value) : 0);
	if (out->n_mods >= MODS_MAX || m->mods_bytes + bytes > MODS_BYTES_MAX) {
		fail(m, out, "asked for more than %d changes or %u MiB of them", MODS_MAX, MODS_BYTES_MAX >> 20);
		return false;
	}
	struct milter_mod *mods = realloc(out->mods, (out->n_mods + 1) * sizeof(*mods));
	if (!mods) {
		fail(m, out, "could not be followed: out of memory");
		return false;
	}
	out->mods = mods;
	struct milter_mod *d = &mods[out->n_mods];
	d->kind = kind;
	d->index = index;
	d->name = strdup(name);
	d->value = dup_or_null(value);
	out->n_mods++;
	m->mods_bytes += bytes;
	if (!d->name || (value && !d->value)) {
		fail(m, out, "could not be followed: out of memory");
		return false;
	}
	return true;
}

/* A change the filter asks for: allowed only when it negotiated the action. */
static bool take_change(struct milter_conn *m, const struct milter_event *ev, milter_body_sink *sink, void *arg,
	struct milter_outcome *out)
{
	static const struct {
		enum milter_ev_kind ev;
		unsigned action;
		enum milter_mod_kind mod;
	} changes[] = {
		{ MILTER_EV_ADDHEADER, MILTER_F_ADDHDRS, MILTER_MOD_ADD_HEADER },
		{ MILTER_EV_INSHEADER, MILTER_F_ADDHDRS, MILTER_MOD_INSERT_HEADER },
		{ MILTER_EV_CHGHEADER, MILTER_F_CHGHDRS, MILTER_MOD_CHANGE_HEADER },
		{ MILTER_EV_ADDRCPT, MILTER_F_ADDRCPT, MILTER_MOD_ADD_RCPT },
		{ MILTER_EV_ADDRCPT_PAR, MILTER_F_ADDRCPT_PAR, MILTER_MOD_ADD_RCPT },
		{ MILTER_EV_DELRCPT, MILTER_F_DELRCPT, MILTER_MOD_DEL_RCPT },
		{ MILTER_EV_CHGFROM, MILTER_F_CHGFROM, MILTER_MOD_CHANGE_FROM },
		{ MILTER_EV_REPLBODY, MILTER_F_CHGBODY, 0 },
		{ MILTER_EV_QUARANTINE, MILTER_F_QUARANTINE, 0 },
	};
	size_t i = 0;
	while (i < sizeof(changes) / sizeof(changes[0]) && changes[i].ev != ev->kind)
		i++;
	if (!(m->nego.actions & changes[i].action)) {
		fail(m, out, "answered garbage (%s without having negotiated it)", milter_ev_name(ev->kind));
		return false;
	}
	if (ev->kind == MILTER_EV_REPLBODY) {
		if (!sink || !sink(arg, ev->data, ev->len)) {
			fail(m, out, "sent a replacement body that could not be kept");
			return false;
		}
		out->body_replaced = true;
		return true;
	}
	if (ev->kind == MILTER_EV_QUARANTINE) {
		snprintf(out->reason, sizeof(out->reason), "%s", ev->name);
		return true;
	}
	/* CHGHEADER index 0 means the first occurrence, as 1 does (Sendmail). */
	unsigned index = ev->kind == MILTER_EV_CHGHEADER && ev->index == 0 ? 1 : ev->index;
	return add_mod(m, out, changes[i].mod, index, ev->name, ev->value);
}

static bool is_change(enum milter_ev_kind k)
{
	return k == MILTER_EV_ADDHEADER || k == MILTER_EV_INSHEADER || k == MILTER_EV_CHGHEADER ||
		k == MILTER_EV_ADDRCPT || k == MILTER_EV_ADDRCPT_PAR || k == MILTER_EV_DELRCPT ||
		k == MILTER_EV_CHGFROM || k == MILTER_EV_REPLBODY || k == MILTER_EV_QUARANTINE;
}

enum milter_verdict milter_eom(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	milter_body_sink *sink, void *sink_arg, struct milter_outcome *out)
{
	enum milter_verdict v;
	unsigned long t0 = now_ms();
	bool go = step_begin(m, MILTER_CMD_BODYEOB, out, &v);
	m->accepted_tx = m->skipping_body = false;   /* the transaction ends here */
	m->mods_bytes = 0;
	if (!go)
		return v;
	put_macros(m, MILTER_CMD_BODYEOB, mac, n);
	milter_enc_bare(&m->out, MILTER_CMD_BODYEOB);
	if (!flush(m, out))
		return MILTER_FAILED;
	struct wait w;
	wait_begin(&w, MILTER_CMD_BODYEOB, m->fc.content_ms);
	struct milter_event ev;
	for (;;) {
		if (!next_event(m, &w, &ev, out))
			break;
		if (!is_change(ev.kind)) {
			final_reply(m, &w, &ev, out);
			break;
		}
		if (!take_change(m, &ev, sink, sink_arg, out))
			break;
	}
	if (out->reason[0] && (out->verdict == MILTER_CONTINUE || out->verdict == MILTER_ACCEPT))
		out->verdict = MILTER_QUARANTINE;
	if (out->verdict != MILTER_CONTINUE && out->verdict != MILTER_ACCEPT && out->verdict != MILTER_QUARANTINE)
		free_mods(out);
	out->elapsed_ms = now_ms() - t0;
	metrics_observe(METRIC_MILTER_DURATION, m->fc.name, (double)out->elapsed_ms / 1000.0);
	return out->verdict;
}

void milter_abort(struct milter_conn *m)
{
	m->accepted_tx = m->skipping_body = false;
	if (m->failed || m->accepted_session)
		return;
	struct milter_outcome scratch = { 0 };
	m->out.len = 0;
	milter_enc_bare(&m->out, MILTER_CMD_ABORT);
	flush(m, &scratch);
}

void milter_close(struct milter_conn **mp)
{
	struct milter_conn *m = *mp;
	if (!m)
		return;
	if (m->c && !m->failed) {
		struct milter_outcome scratch = { 0 };
		m->out.len = 0;
		milter_enc_bare(&m->out, MILTER_CMD_QUIT);
		flush(m, &scratch);
	}
	net_client_close(&m->c);
	milter_reader_free(&m->rd);
	free(m->out.p);
	free(m->rbuf);
	free(m);
	*mp = NULL;
}
