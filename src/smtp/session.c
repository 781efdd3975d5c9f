/* session.c - the SMTP server state machine (see session.h).
 *
 * One command table and one gate: each verb has a handler and flags, and
 * session_dispatch() enforces the flags before any handler runs.  A handler checks
 * syntax and state, asks hooks for decisions, and replies through reply.c.  The
 * transaction (struct smtp_tx) is created at MAIL and destroyed at RSET, EHLO/HELO,
 * the end of data, or the end of the session: one place to free, one to roll back. */
#include "smtp/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/sasl.h"
#include "msg/header.h"
#include "smtp/command.h"
#include "smtp/data.h"
#include "smtp/reply.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/linebuf.h"
#include "util/log.h"
#include "util/parse.h"

#define OUTPUT_MAX (1u << 20)          /* hard bound on queued replies */
#define OUTPUT_PAUSE (64u << 10)       /* stop reading commands while this much waits */
#define FEED_CHUNK (16u << 10)         /* data bytes decoded per step */
#define REFUSALS_LISTED 8              /* refusals named in the 503 at DATA */
#define ORPHANS_NAMED 4                /* recipients named after a refused MAIL */
#define ORPHAN_ADDR_MAX 72             /* an escaped address, cut at 64 octets + "..." */
#define HELO_MAX 255

enum state { ST_CMD, ST_DATA, ST_BDAT, ST_WAIT_COMMIT, ST_AUTH, ST_WAIT_AUTH, ST_TLS_PENDING, ST_HOLD, ST_CLOSED };

struct refusal {
	char addr[SMTP_ADDR_MAX + 1];
	char reason[VERDICT_REASON_MAX];
	char ref[32];
};

struct smtp_tx {
	struct smtp_path sender;
	struct smtp_mail_params params;
	struct smtp_path *rcpts;
	struct smtp_rcpt_params *rcpt_params;
	size_t n_rcpts;
	size_t cap_rcpts;
	unsigned rcpt_commands;            /* RCPT commands seen, accepted or not */
	struct refusal refused[REFUSALS_LISTED];
	unsigned n_refused;                /* all refusals, listed or not */
	unsigned cause_counts[CAUSE_COUNT];
	bool spool_open;
	struct msg_field_scan *from_scan;  /* the From: fields, for the check (logged-in users) */
	char qid[QUEUE_ID_LEN + 1];
	uint64_t size;                     /* message octets accepted so far */
	bool too_big;
	bool spool_failed;
	struct data_decoder dec;
	/* BDAT (RFC 3030) */
	bool used_bdat;
	bool bdat_failed;                  /* an earlier chunk failed: refuse the rest */
	uint64_t bdat_remaining;
	uint64_t bdat_chunk;
	bool bdat_last;
	bool bdat_discard;                 /* consume this chunk, then send pending error */
	enum { BDAT_ERR_NONE, BDAT_ERR_NEED_MAIL, BDAT_ERR_NO_RCPT, BDAT_ERR_FAILED } bdat_err;
};

struct smtp_session {
	struct smtp_conn_info info;        /* strings below are owned copies */
	char *hostname, *client_addr, *client_name, *listener;
	struct smtp_limits limits;
	struct smtp_hooks hooks;
	enum state state;
	struct buf out;
	struct linebuf line;
	bool helo_seen;
	bool esmtp;
	char helo[HELO_MAX + 1];
	unsigned bad_commands;
	unsigned refused_rcpts;            /* unknown / not ours, whole session (harvesting) */
	struct buf held;                   /* a reply held back during ST_HOLD */
	unsigned refs;
	bool close_after_output;
	struct smtp_tx *tx;
	struct buf scratch;                /* decoded DATA bytes on their way to the spool */
	/* TLS and login */
	bool secure;
	bool wants_tls;
	char tls_desc[200];
	char *login;                       /* canonical user name once logged in */
	struct sasl_exchange sasl;
	/* Refusals outside a transaction, so a later 503 can name them. */
	unsigned causes[CAUSE_COUNT];
	bool have_mail_refusal;
	struct refusal mail_refusal;
	enum refusal_cause mail_cause;
	/* Recipients given after that refusal (no transaction to take them), so the 503
	 * at DATA can say whose message was not sent: the first few, escaped, and a count. */
	char orphans[ORPHANS_NAMED][ORPHAN_ADDR_MAX];
	unsigned n_orphans;                /* all of them, named or not */
};

/* --- small helpers --------------------------------------------------------- */

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void next_ref(struct smtp_session *s, char *out, size_t outsz)
{
	/* Unique across restarts: the run id comes first (util/id.h). */
	if (s->info.run_id && s->info.run_id[0])
		snprintf(out, outsz, "%s.%llu.%u", s->info.run_id, (unsigned long long)s->info.conn_id, ++s->refs);
	else
		snprintf(out, outsz, "%llu.%u", (unsigned long long)s->info.conn_id, ++s->refs);
}

static void tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (!tx)
		return;
	if (tx->spool_open)
		s->hooks.spool_abort(s->hooks.ctx);
	free(tx->from_scan);
	free(tx->rcpts);
	free(tx->rcpt_params);
	free(tx);
	s->tx = NULL;
}

static void session_close(struct smtp_session *s)
{
	if (s->state == ST_WAIT_COMMIT && s->tx)
		s->tx->spool_open = false;   /* the running commit owns the spool file */
	tx_free(s);
	s->state = ST_CLOSED;
	s->close_after_output = true;
}

/* Every catalogue reply from the session goes through here: a refusal (4xx/5xx)
 * gets a reference on its last line and an event=refused log line with the same
 * reference, so an administrator can find it from a user's screenshot. */
static void say(struct smtp_session *s, enum reply_id id, ...)
{
	const struct reply_entry *e = reply_get(id);
	char ref[32], summary[256];
	bool refusal = e->code >= 400;
	if (refusal)
		next_ref(s, ref, sizeof(ref));
	va_list ap;
	va_start(ap, id);
	reply_vid(&s->out, refusal ? ref : NULL, summary, sizeof(summary), id, ap);
	va_end(ap);
	if (refusal) {
		char q[300];
		log_event(e->code >= 500 ? LOG_INFO : LOG_WARN, "refused", "conn=%llu ref=%s code=%d enh=%s reason=%s",
			(unsigned long long)s->info.conn_id, ref, e->code, e->enh ? e->enh : "-",
			log_quote(q, sizeof(q), summary, strlen(summary), 200));
	}
}

/* Count a protocol error; past the limit the session ends (STYLE 5: bound input). */
static void bad_command(struct smtp_session *s)
{
	if (++s->bad_commands >= s->limits.max_bad_commands) {
		say(s, R_TOO_MANY_ERRORS, s->hostname);
		log_event(LOG_WARN, "too_many_errors", "conn=%llu count=%u",
			(unsigned long long)s->info.conn_id, s->bad_commands);
		session_close(s);
	}
}

/* Directory harvesting (a client guessing which addresses exist): count the refusals
 * that say "no such address here" over the whole session.  Past a first allowance the
 * reply just written (from reply_start on) is held back for a growing delay; the
 * transport keeps the time (hooks->hold), so the event loop never waits.  At the limit
 * the session ends.  Postfix's smtpd_soft/hard_error_limit work the same way. */
static void count_guess(struct smtp_session *s, size_t reply_start)
{
	unsigned n = ++s->refused_rcpts;
	const struct smtp_limits *l = &s->limits;
	if (l->max_refused_rcpts && n >= l->max_refused_rcpts) {
		say(s, R_TOO_MANY_REFUSED_RCPTS, s->hostname, n);
		log_event(LOG_WARN, "harvest_limit", "conn=%llu client=%s refused=%u action=close",
			(unsigned long long)s->info.conn_id, s->client_addr, n);
		session_close(s);
		return;
	}
	if (!s->hooks.hold || !l->refused_rcpt_delay_ms || n <= l->refused_rcpt_delay_after)
		return;
	uint64_t ms = (uint64_t)l->refused_rcpt_delay_ms * (n - l->refused_rcpt_delay_after);
	if (ms > SMTP_REFUSED_DELAY_MAX_MS)
		ms = SMTP_REFUSED_DELAY_MAX_MS;
	if (n == l->refused_rcpt_delay_after + 1)
		log_event(LOG_WARN, "harvest_limit", "conn=%llu client=%s refused=%u action=delay delay_ms=%llu",
			(unsigned long long)s->info.conn_id, s->client_addr, n, (unsigned long long)ms);
	buf_reset(&s->held);
	buf_append(&s->held, s->out.data + reply_start, s->out.len - reply_start);
	s->out.len = reply_start;
	s->state = ST_HOLD;
	s->hooks.hold(s->hooks.ctx, (unsigned)ms);   /* may end the hold at once */
}

/* A refusal: reply with reason, hint and reference, and log it. */
static void refuse(struct smtp_session *s, const char *verb, const char *what, const struct verdict *v,
	char *ref_out, size_t ref_outsz)
{
	char ref[32];
	next_ref(s, ref, sizeof(ref));
	char text[1200];
	if (v->hint[0])
		snprintf(text, sizeof(text), "%s: %s\n%s (ref %s)", what, v->reason, v->hint, ref);
	else
		snprintf(text, sizeof(text), "%s: %s (ref %s)", what, v->reason, ref);
	reply_write(&s->out, v->code, v->enh, text);
	char q[300];
	log_event(LOG_INFO, "refused", "conn=%llu ref=%s cmd=%s code=%d enh=%s cause=\"%s\" arg=%s",
		(unsigned long long)s->info.conn_id, ref, verb, v->code, v->enh, policy_cause_name(v->cause),
		log_quote(q, sizeof(q), what, strlen(what), 256));
	if (ref_out)
		snprintf(ref_out, ref_outsz, "%s", ref);
}

/* "TO:<a@b>" or "TO: a@b" -> "a@b", for naming a refused recipient (in place). */
static char *bare_path(char *arg)
{
	char *p = arg;
	if (ascii_ieq(p, "TO:", 3))
		p += 3;
	while (*p == ' ')
		p++;
	size_t n = strlen(p);
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p[n - 1] = '\0';
		p++;
	}
	return p;
}

/* Remember a refused recipient for the 503 at DATA. */
static void remember_refusal(struct smtp_tx *tx, const char *addr, const struct verdict *v, const char *ref)
{
	if (v->cause < CAUSE_COUNT)
		tx->cause_counts[v->cause]++;
	if (tx->n_refused < REFUSALS_LISTED) {
		struct refusal *r = &tx->refused[tx->n_refused];
		snprintf(r->addr, sizeof(r->addr), "%s", addr);
		snprintf(r->reason, sizeof(r->reason), "%s", v->reason);
		snprintf(r->ref, sizeof(r->ref), "%s", ref);
	}
	tx->n_refused++;
}

/* Refuse MAIL and remember why, for a 503 at DATA. */
static void remember_mail_refusal(struct smtp_session *s, const char *what, const struct verdict *v)
{
	char ref[32];
	refuse(s, "MAIL", what, v, ref, sizeof(ref));
	s->have_mail_refusal = true;
	s->mail_cause = v->cause < CAUSE_COUNT ? v->cause : CAUSE_NONE;
	snprintf(s->mail_refusal.addr, sizeof(s->mail_refusal.addr), "%s", what);
	snprintf(s->mail_refusal.reason, sizeof(s->mail_refusal.reason), "%s", v->reason);
	snprintf(s->mail_refusal.ref, sizeof(s->mail_refusal.ref), "%s", ref);
}

/* A new MAIL, a login or TLS: earlier refusals explain nothing any more. */
static void forget_mail_refusal(struct smtp_session *s)
{
	s->have_mail_refusal = false;
	s->n_orphans = 0;
}

/* Quote client text for a reply: printable ASCII only, bounded. */
static void quote_for_reply(char *out, size_t outsz, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		if (i == 63 && n > 64) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o] = '\0';
}

/* --- the 503 that explains itself (DESIGN invariant 3) ---------------------- */

/* RCPT after a refused MAIL: remember the address (escaped) for the 503 at DATA. */
static void remember_orphan(struct smtp_session *s, const struct smtp_command *c)
{
	if (s->n_orphans++ >= ORPHANS_NAMED)
		return;
	char *out = s->orphans[s->n_orphans - 1];
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	const char *detail;
	char addr[SMTP_ADDR_MAX + 1];
	if (smtp_parse_rcpt_dsn(c->arg, c->arg_len, &path, &rp, &detail) == ADDR_OK) {
		smtp_path_format(&path, addr, sizeof(addr));
		quote_for_reply(out, ORPHAN_ADDR_MAX, addr, strlen(addr));
	} else {
		char q[ORPHAN_ADDR_MAX];
		quote_for_reply(q, sizeof(q), c->arg, c->arg_len);
		snprintf(out, ORPHAN_ADDR_MAX, "%s", bare_path(q));
	}
}

/* "a", "a and b", "a, b and c", "a, b, c, d and 6 more" */
static void name_orphans(const struct smtp_session *s, struct buf *text)
{
	unsigned named = s->n_orphans < ORPHANS_NAMED ? s->n_orphans : ORPHANS_NAMED;
	for (unsigned i = 0; i < named; i++) {
		bool last_named = i + 1 == named;
		const char *sep = i == 0 ? "" : (last_named && s->n_orphans == named) ? " and " : ", ";
		buf_printf(text, "%s%s", sep, s->orphans[i]);
	}
	if (s->n_orphans > named)
		buf_printf(text, " and %u more", s->n_orphans - named);
}

/* The 503 at DATA/BDAT when nothing can be sent: name every refusal that led here
 * and end with the single most useful fix. */
static void reply_no_recipients(struct smtp_session *s, const char *verb)
{
	struct smtp_tx *tx = s->tx;
	unsigned counts[CAUSE_COUNT];
	for (int i = 0; i < CAUSE_COUNT; i++)
		counts[i] = s->causes[i] + (tx ? tx->cause_counts[i] : 0);
	struct buf text;
	buf_init(&text, 8192);
	unsigned named = 0;
	if (!tx && s->have_mail_refusal) {
		counts[s->mail_cause]++;
		if (s->n_orphans) {
			buf_appends(&text, "Your message to ");
			name_orphans(s, &text);
			buf_printf(&text, " was not sent: the sender was refused, so %s has nothing to go with\n", verb);
		} else {
			buf_printf(&text, "No message to send: the sender was refused, so %s has nothing to go with\n", verb);
		}
		buf_printf(&text, "%s: %s (ref %s)\n", s->mail_refusal.addr, s->mail_refusal.reason, s->mail_refusal.ref);
		named = 1;
	} else if (tx && tx->rcpt_commands > 0 && tx->n_refused > 0) {
		buf_printf(&text, "No valid recipients, so there is no message to send: the server refused %s\n",
			tx->n_refused == 1 ? "the only recipient" : "every recipient");
		unsigned listed = tx->n_refused < REFUSALS_LISTED ? tx->n_refused : REFUSALS_LISTED;
		for (unsigned i = 0; i < listed; i++)
			buf_printf(&text, "<%s>: %s (ref %s)\n", tx->refused[i].addr, tx->refused[i].reason, tx->refused[i].ref);
		if (tx->n_refused > listed)
			buf_printf(&text, "... and %u more refused recipients\n", tx->n_refused - listed);
		named = tx->n_refused;
	}
	if (!named) {
		buf_free(&text);
		if (!tx)
			say(s, R_NEED_MAIL);
		else
			say(s, R_NO_RCPT_YET, verb);
		return;
	}
	/* Earlier login trouble explains these refusals: say so. */
	if (s->causes[CAUSE_TLS_REQUIRED])
		buf_appends(&text, "Earlier, AUTH was refused because the connection was not encrypted\n");
	else if (s->causes[CAUSE_THROTTLED])
		buf_appends(&text, "Earlier, AUTH was refused: too many failed logins from your address\n");
	else if (s->causes[CAUSE_AUTH_FAILED])
		buf_appends(&text, "Earlier, the login failed: wrong user name or password\n");
	char ref[32];
	next_ref(s, ref, sizeof(ref));
	buf_printf(&text, "%s (ref %s)", policy_best_fix(counts), ref);
	reply_write(&s->out, 503, "5.5.1", buf_cstr(&text));
	log_event(LOG_INFO, "refused", "conn=%llu ref=%s cmd=%s code=503 enh=5.5.1 cause=\"nothing to send\" refused=%u",
		(unsigned long long)s->info.conn_id, ref, verb, named);
	buf_free(&text);
}

/* --- Received header (RFC 5321 §4.4) --------------------------------------- */

/* RFC 3848 (ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP...). */
static const char *protocol_name(const struct smtp_session *s)
{
	static const char *const names[2][4] = {
		{ "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" },
		{ "UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA" },
	};
	if (!s->esmtp)
		return "SMTP";
	int utf8 = s->tx && s->tx->params.smtputf8;
	return names[utf8][(s->secure ? 1 : 0) + (s->login ? 2 : 0)];
}

static bool write_received(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	char helo[HELO_MAX + 1];
	quote_for_reply(helo, sizeof(helo), s->helo, strlen(s->helo));
	struct buf h;
	buf_init(&h, 2048);
	buf_printf(&h, "Received: from %s (%s [%s])\r\n", helo, s->client_name[0] ? s->client_name : "unknown",
		s->client_addr);
	if (s->secure)
		buf_printf(&h, "\t(using %s)\r\n", s->tls_desc);
	buf_printf(&h, "\tby %s (Postern) with %s id %s", s->hostname, protocol_name(s), tx->qid);
	if (tx->n_rcpts == 1) {
		char a[SMTP_ADDR_MAX + 1];
		buf_printf(&h, "\r\n\tfor <%s>", smtp_path_format(&tx->rcpts[0], a, sizeof(a)));
	}
	buf_printf(&h, "; %s\r\n", date);
	bool ok = !h.truncated && s->hooks.spool_write(s->hooks.ctx, h.data, h.len);
	buf_free(&h);
	return ok;
}

static bool open_spool(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_envelope env = {
		.sender = &tx->sender, .params = &tx->params, .rcpts = tx->rcpts,
		.rcpt_params = tx->rcpt_params, .n_rcpts = tx->n_rcpts, .helo = s->helo, .protocol = protocol_name(s),
	};
	if (!s->hooks.spool_open(s->hooks.ctx, &env, tx->qid))
		return false;
	tx->spool_open = true;
	if (!write_received(s)) {
		s->hooks.spool_abort(s->hooks.ctx);
		tx->spool_open = false;
		return false;
	}
	return true;
}

/* The spool failed: 452 4.3.1 when the server is out of storage (RFC 3463 X.3.1), the
 * given 451 4.3.0 otherwise. */
static void reply_spool_failure(struct smtp_session *s, enum reply_id id)
{
	if (s->hooks.spool_no_space && s->hooks.spool_no_space(s->hooks.ctx))
		id = R_NO_SPACE_DATA;
	say(s, id);
}

/* Watch the whole header for From: fields as it streams to the spool, however long
 * it is (the message size bounds it): a field the check never saw would let a forged
 * From: through.  The scanner is fixed size, allocated at the first byte. */
static void scan_from_fields(struct smtp_tx *tx, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (!tx->from_scan) {
		tx->from_scan = malloc(sizeof(*tx->from_scan));
		if (!tx->from_scan) {
			tx->spool_failed = true;   /* answered 451: nothing is accepted unchecked */
			return;
		}
		msg_field_scan_init(tx->from_scan, "From");
	}
	msg_field_scan_feed(tx->from_scan, p, n);
}

/* Message bytes on their way to the spool; enforces the size limit. */
static void accept_bytes(struct smtp_session *s, const char *p, size_t n)
{
	struct smtp_tx *tx = s->tx;
	if (s->login && s->info.check_from_header)
		scan_from_fields(tx, p, n);
	if (n == 0 || tx->too_big || tx->spool_failed || !tx->spool_open)
		return;
	if (tx->size + n > s->limits.max_message) {
		/* Stop writing at once; the rest is read and dropped (RFC 1870 §6.3). */
		tx->too_big = true;
		s->hooks.spool_abort(s->hooks.ctx);
		tx->spool_open = false;
		return;
	}
	tx->size += n;
	if (!s->hooks.spool_write(s->hooks.ctx, p, n)) {
		tx->spool_failed = true;
		s->hooks.spool_abort(s->hooks.ctx);
		tx->spool_open = false;
	}
}

/* A logged-in user's message must say it is from one of the user's addresses
 * (RFC 6409 §6.1 lets a submission server enforce this).  False: refused. */
static bool check_from_header(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (!s->login || !s->info.check_from_header || !s->hooks.sender_owned)
		return true;
	const struct msg_field_scan *sc = tx->from_scan;
	size_t count = sc ? sc->count : 0;
	struct verdict v;
	if (count == 0) {
		log_event(LOG_INFO, "no_from_header", "conn=%llu login=%s", (unsigned long long)s->info.conn_id, s->login);
		return true;
	}
	if (count > 1) {
		/* RFC 5322 §3.6: exactly one; a second could be shown instead of the first. */
		say(s, R_FROM_NOT_ONE, count);
		log_event(LOG_INFO, "from_header_refused", "conn=%llu login=%s from_fields=%zu",
			(unsigned long long)s->info.conn_id, s->login, count);
		return false;
	}
	if (sc->value_truncated) {
		say(s, R_FROM_TOO_LONG, (size_t)MSG_FIELD_VALUE_MAX);
		return false;
	}
	const char *val = "";
	size_t vl = 0;
	struct msg_address_list list;
	enum msg_status st = MSG_SYNTAX;
	if (msg_field_scan_value(sc, &val, &vl))
		st = msg_parse_address_list(val, vl, &list);
	if (st != MSG_OK) {
		char q[100];
		quote_for_reply(q, sizeof(q), val, vl);
		char reason[VERDICT_REASON_MAX];
		snprintf(reason, sizeof(reason), "the From: header \"%s\" does not hold a valid address", q);
		verdict_set(&v, VERDICT_PERM, 550, "5.6.0", CAUSE_BAD_ADDRESS, reason,
			"Set your name and email address in the account settings of your mail program");
		refuse(s, "DATA", "Message refused", &v, NULL, 0);
		return false;
	}
	if (list.truncated) {
		/* Addresses past the parser's list would go unchecked. */
		say(s, R_FROM_TOO_MANY, MSG_MAX_MAILBOXES);
		return false;
	}
	for (size_t i = 0; i < list.n; i++) {
		bool temp = false;
		bool owned = s->hooks.sender_owned(s->hooks.ctx, s->login, list.mailboxes[i].addr, &temp);
		if (temp) {
			verdict_set(&v, VERDICT_TEMP, 451, "4.3.0", CAUSE_LOOKUP_FAILED,
				"temporary failure: the user directory could not be read", "Your mail program will try again later");
			refuse(s, "DATA", "Message not accepted", &v, NULL, 0);
			return false;
		}
		if (!owned) {
			policy_check_sender(s->login, list.mailboxes[i].addr, false, "From: header", &v);
			v.code = 550;   /* after DATA: 550, not 553 (RFC 5321 §4.3.2) */
			refuse(s, "DATA", "Message refused", &v, NULL, 0);
			return false;
		}
	}
	return true;
}

/* What DATA and BDAT both refuse in the content itself, whichever way it came
 * (the decoder or the BDAT scanner gathered the facts).  False: refused. */
static bool content_acceptable(struct smtp_session *s)
{
	const struct data_decoder *d = &s->tx->dec;
	const char *verb = s->tx->used_bdat ? "BDAT" : "DATA";
	if (d->bare_lf || d->bare_cr) {
		/* RFC 5321 §2.3.8; a bare line end is how SMTP smuggling starts. */
		const char *kind = d->bare_lf ? "bare LF" : "bare CR";
		say(s, R_BARE_LINE_ENDING, kind, d->bare_lf ? "LF" : "CR", d->bare_lf ? "a CR before it" : "an LF after it");
		log_event(LOG_WARN, "bare_line_ends", "conn=%llu cmd=%s kind=\"%s\" bare_lf=%llu bare_cr=%llu",
			(unsigned long long)s->info.conn_id, verb, kind, (unsigned long long)d->bare_lf,
			(unsigned long long)d->bare_cr);
		return false;
	}
	if (d->has_nul) {
		/* As NUL in a command is refused (R_SYNTAX_BAD_BYTES): stored, it would
		 * cut the message short for any reader that takes it for a string end. */
		say(s, R_NUL_IN_MESSAGE);
		log_event(LOG_WARN, "nul_in_message", "conn=%llu cmd=%s", (unsigned long long)s->info.conn_id, verb);
		return false;
	}
	if (d->longest_line > s->limits.max_message_line) {
		say(s, R_MESSAGE_LINE_TOO_LONG, (unsigned long long)d->longest_line_no,
			(unsigned long long)d->longest_line, (unsigned long long)s->limits.max_message_line);
		log_event(LOG_INFO, "line_too_long", "conn=%llu cmd=%s line=%llu octets=%llu limit=%llu",
			(unsigned long long)s->info.conn_id, verb, (unsigned long long)d->longest_line_no,
			(unsigned long long)d->longest_line, (unsigned long long)s->limits.max_message_line);
		return false;
	}
	return true;
}

/* End of DATA or BDAT LAST: refuse, or start the durable commit. */
static void finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (tx->too_big) {
		say(s, R_MSG_TOO_BIG, (unsigned long long)s->limits.max_message);
		tx_free(s);
		s->state = ST_CMD;
		return;
	}
	if (tx->used_bdat)
		data_scan_end(&tx->dec);
	if (!content_acceptable(s)) {
		tx_free(s);
		s->state = ST_CMD;
		return;
	}
	if (tx->spool_failed || !tx->spool_open) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		tx_free(s);
		s->state = ST_CMD;
		return;
	}
	if (!check_from_header(s)) {
		tx_free(s);
		s->state = ST_CMD;
		return;
	}
	s->state = ST_WAIT_COMMIT;
	s->hooks.spool_commit(s->hooks.ctx);
}

void smtp_session_commit_done(struct smtp_session *s, bool ok)
{
	if (s->state != ST_WAIT_COMMIT || !s->tx)
		return;
	struct smtp_tx *tx = s->tx;
	tx->spool_open = false;   /* the hook owns the spool file now */
	if (ok) {
		say(s, R_QUEUED, tx->qid);
		char from[SMTP_ADDR_MAX + 1], q[600];
		smtp_path_format(&tx->sender, from, sizeof(from));
		log_event(LOG_INFO, "queued", "conn=%llu qid=%s from=%s nrcpt=%zu size=%llu proto=%s",
			(unsigned long long)s->info.conn_id, tx->qid, log_quote(q, sizeof(q), from, strlen(from), 300),
			tx->n_rcpts, (unsigned long long)tx->size, protocol_name(s));
	} else {
		reply_spool_failure(s, R_TEMP_COMMIT);
	}
	tx_free(s);
	s->state = ST_CMD;
}

void smtp_session_commit_refused(struct smtp_session *s, enum message_quota why, uint64_t size, const char *detail)
{
	if (s->state != ST_WAIT_COMMIT || !s->tx)
		return;
	s->tx->spool_open = false;   /* the hook dropped the spool file */
	char sz[32];
	format_size(size, sz, sizeof(sz));
	enum reply_id id = why == MQ_LARGER ? R_DATA_LARGER_THAN_MAILBOX
		: why == MQ_FULL_PERMANENT ? R_DATA_MAILBOX_FULL_PERM : R_DATA_MAILBOX_FULL;
	say(s, id, sz, detail);
	tx_free(s);
	s->state = ST_CMD;
}

/* --- command handlers ------------------------------------------------------ */

static void cmd_helo_common(struct smtp_session *s, const struct smtp_command *c, bool esmtp)
{
	if (c->arg_len == 0) {
		say(s, R_HELO_NEEDS_DOMAIN, esmtp ? "EHLO" : "HELO");
		bad_command(s);
		return;
	}
	size_t n = c->arg_len < HELO_MAX ? c->arg_len : HELO_MAX;
	/* Keep only the first word; the rest is commentary some clients add. */
	const char *sp = memchr(c->arg, ' ', n);
	if (sp)
		n = (size_t)(sp - c->arg);
	memcpy(s->helo, c->arg, n);
	s->helo[n] = '\0';
	tx_free(s);   /* RFC 5321 §4.1.4: EHLO/HELO reset the transaction */
	s->helo_seen = true;
	s->esmtp = esmtp;
	if (!esmtp) {
		reply_writef(&s->out, 250, NULL, "%s", s->hostname);
		return;
	}
	bool tls = s->info.tls_offered && !s->secure;
	bool auth = s->hooks.auth_verify && !s->login && (s->secure || s->info.allow_plaintext_auth);
	reply_writef(&s->out, 250, NULL,
		"%s Hello [%s]\nPIPELINING\nSIZE %llu\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nCHUNKING\nDSN%s%s\nHELP",
		s->hostname, s->client_addr, (unsigned long long)s->limits.max_message,
		tls ? "\nSTARTTLS" : "", auth ? "\nAUTH PLAIN LOGIN" : "");
}

static void cmd_ehlo(struct smtp_session *s, const struct smtp_command *c) { cmd_helo_common(s, c, true); }
static void cmd_helo(struct smtp_session *s, const struct smtp_command *c) { cmd_helo_common(s, c, false); }

static void cmd_mail(struct smtp_session *s, const struct smtp_command *c)
{
	if (s->tx) {
		if (s->tx->used_bdat)
			say(s, R_CMD_AFTER_BDAT, "MAIL");
		else
			say(s, R_NESTED_MAIL);
		bad_command(s);
		return;
	}
	forget_mail_refusal(s);
	struct smtp_tx *tx = calloc(1, sizeof(*tx));
	if (!tx) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		return;
	}
	const char *detail;
	enum smtp_addr_status st = smtp_parse_mail(c->arg, c->arg_len, &tx->sender, &tx->params, &detail);
	if (st != ADDR_OK) {
		char q[80], what[96];
		quote_for_reply(q, sizeof(q), c->arg, c->arg_len);
		snprintf(what, sizeof(what), "MAIL %s", q);
		struct verdict v;
		if (st == ADDR_PARAM_UNKNOWN)
			verdict_set(&v, VERDICT_PERM, 555, "5.5.4", CAUSE_BAD_ADDRESS, detail,
				"Remove the parameter, or send EHLO to see the extensions this server offers");
		else if (st == ADDR_SYNTAX || st == ADDR_TOO_LONG)
			verdict_set(&v, VERDICT_PERM, 501, "5.1.7", CAUSE_BAD_ADDRESS, detail, "Use MAIL FROM:<you@example.org>");
		else
			verdict_set(&v, VERDICT_PERM, 501, "5.5.4", CAUSE_BAD_ADDRESS, detail, "Use MAIL FROM:<you@example.org>");
		remember_mail_refusal(s, what, &v);
		free(tx);
		bad_command(s);
		return;
	}
	if (tx->params.size_set && tx->params.size > s->limits.max_message) {
		say(s, R_MSG_TOO_BIG_DECLARED, (unsigned long long)tx->params.size,
			(unsigned long long)s->limits.max_message);
		free(tx);
		return;
	}
	char addr[SMTP_ADDR_MAX + 1];
	smtp_path_format(&tx->sender, addr, sizeof(addr));
	if (tx->sender.utf8 && !tx->params.smtputf8) {
		say(s, R_EIGHTBIT_NO_SMTPUTF8, addr);
		free(tx);
		return;
	}
	char what[SMTP_ADDR_MAX + 16];
	snprintf(what, sizeof(what), "MAIL FROM:<%s>", addr);
	struct verdict v;
	struct policy_client pc = { .submission_port = s->info.submission, .authenticated = s->login != NULL,
		.trusted_network = s->info.trusted_network };
	policy_check_mail(&pc, &v);
	if (v.kind == VERDICT_OK && s->login && s->hooks.sender_owned && !tx->sender.null) {
		bool temp = false;
		bool owned = s->hooks.sender_owned(s->hooks.ctx, s->login, addr, &temp);
		if (temp)
			verdict_set(&v, VERDICT_TEMP, 451, "4.3.0", CAUSE_LOOKUP_FAILED,
				"temporary failure: the user directory could not be read", "Your mail program will try again later");
		else
			policy_check_sender(s->login, addr, owned, "MAIL FROM", &v);
	}
	if (v.kind != VERDICT_OK) {
		remember_mail_refusal(s, what, &v);
		free(tx);
		return;
	}
	/* RFC 1870 §6.1: a declared size that the queue cannot hold now is refused here;
	 * without SIZE, only a queue already out of space is. */
	if (s->hooks.spool_room && !s->hooks.spool_room(s->hooks.ctx, tx->params.size_set ? tx->params.size : 0)) {
		char sz[32];
		if (tx->params.size_set && tx->params.size > 0)
			say(s, R_NO_SPACE_SIZE, format_size(tx->params.size, sz, sizeof(sz)));
		else
			say(s, R_NO_SPACE_MAIL);
		free(tx);
		return;
	}
	s->tx = tx;
	say(s, R_SENDER_OK, addr);
}

static bool same_path(const struct smtp_path *a, const struct smtp_path *b)
{
	if (a->bare_postmaster || b->bare_postmaster)
		return a->bare_postmaster == b->bare_postmaster;
	return strcasecmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0;
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_command *c)
{
	struct smtp_tx *tx = s->tx;
	if (!tx) {
		if (s->have_mail_refusal) {
			/* A pipelining client (RFC 2920) sent these with the MAIL that was
			 * refused: they follow from that refusal, and the 503 at DATA must get
			 * to name them, so up to a message's worth are not bad commands. */
			remember_orphan(s, c);
			say(s, R_RCPT_AFTER_REFUSED_MAIL, s->mail_refusal.ref);
			if (s->n_orphans > s->limits.max_recipients)
				bad_command(s);
			return;
		}
		say(s, R_NEED_MAIL);
		bad_command(s);
		return;
	}
	if (tx->used_bdat) {
		say(s, R_CMD_AFTER_BDAT, "RCPT");
		bad_command(s);
		return;
	}
	tx->rcpt_commands++;
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	const char *detail;
	enum smtp_addr_status st = smtp_parse_rcpt_dsn(c->arg, c->arg_len, &path, &rp, &detail);
	struct verdict v;
	char ref[32];
	if (st != ADDR_OK) {
		char q[80];
		quote_for_reply(q, sizeof(q), c->arg, c->arg_len);
		if (st == ADDR_PARAM_UNKNOWN)
			verdict_set(&v, VERDICT_PERM, 555, "5.5.4", CAUSE_BAD_ADDRESS, detail, "");
		else if (st == ADDR_NO_KEYWORD || st == ADDR_PARAM_SYNTAX)
			verdict_set(&v, VERDICT_PERM, 501, "5.5.4", CAUSE_BAD_ADDRESS, detail, "Use RCPT TO:<someone@example.org>");
		else
			verdict_set(&v, VERDICT_PERM, 501, "5.1.3", CAUSE_BAD_ADDRESS, detail, "Use RCPT TO:<someone@example.org>");
		char what[100];
		snprintf(what, sizeof(what), "RCPT %s", q);
		refuse(s, "RCPT", what, &v, ref, sizeof(ref));
		remember_refusal(tx, bare_path(q), &v, ref);
		bad_command(s);
		return;
	}
	char addr[SMTP_ADDR_MAX + 1], what[SMTP_ADDR_MAX + 3];
	smtp_path_format(&path, addr, sizeof(addr));
	snprintf(what, sizeof(what), "<%s>", addr);
	if (path.utf8 && !tx->params.smtputf8) {
		verdict_set(&v, VERDICT_PERM, 553, "5.6.7", CAUSE_NON_ASCII_ADDRESS,
			"the address is not ASCII and MAIL FROM had no SMTPUTF8 parameter",
			"The sending program must declare SMTPUTF8 to use such addresses");
		refuse(s, "RCPT", what, &v, ref, sizeof(ref));
		remember_refusal(tx, addr, &v, ref);
		return;
	}
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		if (same_path(&tx->rcpts[i], &path)) {
			/* A duplicate: accepted again, delivered once. */
			say(s, R_RCPT_OK, addr);
			return;
		}
	}
	if (tx->n_rcpts >= s->limits.max_recipients) {
		say(s, R_TOO_MANY_RCPTS, s->limits.max_recipients);
		verdict_set(&v, VERDICT_TEMP, 452, "4.5.3", CAUSE_TOO_MANY_RECIPIENTS, "too many recipients", "");
		remember_refusal(tx, addr, &v, "-");
		return;
	}
	s->hooks.check_rcpt(s->hooks.ctx, &path, &v);
	if (v.kind != VERDICT_OK) {
		size_t reply_start = s->out.len;
		refuse(s, "RCPT", what, &v, ref, sizeof(ref));
		remember_refusal(tx, addr, &v, ref);
		if (v.kind == VERDICT_PERM && policy_cause_is_guess(v.cause))
			count_guess(s, reply_start);
		return;
	}
	if (tx->n_rcpts == tx->cap_rcpts) {
		size_t cap = tx->cap_rcpts ? tx->cap_rcpts * 2 : 4;
		struct smtp_path *p = realloc(tx->rcpts, cap * sizeof(*p));
		if (p)
			tx->rcpts = p;
		struct smtp_rcpt_params *q = p ? realloc(tx->rcpt_params, cap * sizeof(*q)) : NULL;
		if (!p || !q) {
			reply_spool_failure(s, R_TEMP_SPOOL);
			return;
		}
		tx->rcpt_params = q;
		tx->cap_rcpts = cap;
	}
	tx->rcpt_params[tx->n_rcpts] = rp;
	tx->rcpts[tx->n_rcpts++] = path;
	say(s, R_RCPT_OK, addr);
}

static void cmd_data(struct smtp_session *s, const struct smtp_command *c)
{
	if (!s->tx) {
		reply_no_recipients(s, "DATA");
		bad_command(s);
		return;
	}
	if (c->arg_len) {
		say(s, R_NO_DATA_ARG);
		bad_command(s);
		return;
	}
	if (s->tx->used_bdat) {
		say(s, R_DATA_AFTER_BDAT);
		bad_command(s);
		return;
	}
	if (s->tx->n_rcpts == 0) {
		reply_no_recipients(s, "DATA");
		bad_command(s);
		return;
	}
	if (s->tx->params.body == BODY_BINARYMIME) {
		say(s, R_BODY_8BIT_NOT_DECLARED);
		return;
	}
	if (!open_spool(s)) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		tx_free(s);
		return;
	}
	data_decoder_init(&s->tx->dec);
	say(s, R_START_DATA);
	s->state = ST_DATA;
}

/* BDAT <chunk-size> [LAST]  (RFC 3030 §2).  The chunk is always read, even when the
 * command is refused, so that its bytes are never taken for commands. */
static void cmd_bdat(struct smtp_session *s, const struct smtp_command *c)
{
	const char *sp = memchr(c->arg, ' ', c->arg_len);
	size_t nlen = sp ? (size_t)(sp - c->arg) : c->arg_len;
	uint64_t size;
	bool last = false;
	bool ok = parse_u64(c->arg, nlen, &size);
	if (ok && sp) {
		const char *rest = sp + 1;
		size_t rlen = c->arg_len - nlen - 1;
		ok = rlen == 4 && ascii_ieq(rest, "LAST", 4);
		last = ok;
	}
	if (!ok) {
		/* Without a size we cannot tell data from commands: end the session. */
		say(s, R_BDAT_SYNTAX);
		session_close(s);
		return;
	}
	if (!s->tx) {
		/* No transaction: still swallow the chunk. */
		s->tx = calloc(1, sizeof(*s->tx));
		if (!s->tx) {
			session_close(s);
			return;
		}
		s->tx->bdat_err = BDAT_ERR_NEED_MAIL;
		s->tx->bdat_discard = true;
	} else {
		struct smtp_tx *tx = s->tx;
		tx->bdat_discard = false;
		tx->bdat_err = BDAT_ERR_NONE;
		if (tx->n_rcpts == 0) {
			tx->bdat_err = BDAT_ERR_NO_RCPT;
			tx->bdat_discard = true;
		} else if (tx->bdat_failed) {
			tx->bdat_err = BDAT_ERR_FAILED;
			tx->bdat_discard = true;
		} else if (!tx->used_bdat) {
			tx->used_bdat = true;
			data_decoder_init(&tx->dec);
			if (!open_spool(s))
				tx->spool_failed = true;
		}
	}
	s->tx->bdat_remaining = size;
	s->tx->bdat_chunk = size;
	s->tx->bdat_last = last;
	s->state = ST_BDAT;
}

/* The whole chunk has been read. */
static void bdat_chunk_done(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	s->state = ST_CMD;
	if (tx->bdat_discard) {
		switch (tx->bdat_err) {
		case BDAT_ERR_NEED_MAIL:
			tx_free(s);
			reply_no_recipients(s, "BDAT");
			break;
		case BDAT_ERR_NO_RCPT:
			reply_no_recipients(s, "BDAT");
			break;
		default:
			say(s, R_BDAT_AFTER_FAILURE);
			break;
		}
		bad_command(s);
		return;
	}
	if (tx->too_big || tx->spool_failed) {
		tx->bdat_failed = true;
		if (tx->too_big)
			say(s, R_MSG_TOO_BIG, (unsigned long long)s->limits.max_message);
		else
			reply_spool_failure(s, R_TEMP_SPOOL);
		if (tx->bdat_last) {
			tx_free(s);
		}
		return;
	}
	if (tx->bdat_last) {
		finish_message(s);
		return;
	}
	say(s, R_BDAT_OK, (unsigned long long)tx->bdat_chunk);
}

static void cmd_rset(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	tx_free(s);
	say(s, R_RSET);
}

static void cmd_noop(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_NOOP);
}

static void cmd_quit(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_BYE);
	session_close(s);
}

static void cmd_help(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_HELP);
}

static void cmd_vrfy(struct smtp_session *s, const struct smtp_command *c)
{
	/* RFC 5321 §3.5.3: 252 when we will not say; never reveal which users exist. */
	(void)c;
	say(s, R_VRFY);
}

static void cmd_expn(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	say(s, R_NOT_IMPLEMENTED, "EXPN");
}

/* STARTTLS (RFC 3207). */
static void cmd_starttls(struct smtp_session *s, const struct smtp_command *c)
{
	if (!s->info.tls_offered) {
		say(s, R_STARTTLS_UNAVAILABLE);
		return;
	}
	if (s->secure) {
		say(s, R_ALREADY_TLS);
		bad_command(s);
		return;
	}
	if (c->arg_len) {
		say(s, R_STARTTLS_ARG);
		bad_command(s);
		return;
	}
	reply_write(&s->out, 220, "2.0.0", "Ready to start TLS");
	tx_free(s);
	s->wants_tls = true;
	s->state = ST_TLS_PENDING;
}

static void auth_refuse(struct smtp_session *s, enum refusal_cause cause, enum reply_id id, ...)
{
	s->causes[cause]++;
	const struct reply_entry *e = reply_get(id);
	char ref[32], summary[256];
	next_ref(s, ref, sizeof(ref));
	va_list ap;
	va_start(ap, id);
	reply_vid(&s->out, ref, summary, sizeof(summary), id, ap);
	va_end(ap);
	char q[300];
	log_event(LOG_INFO, "refused", "conn=%llu ref=%s cmd=AUTH code=%d enh=%s cause=\"%s\" reason=%s",
		(unsigned long long)s->info.conn_id, ref, e->code, e->enh, policy_cause_name(cause),
		log_quote(q, sizeof(q), summary, strlen(summary), 200));
}

static void format_until(time_t until, char *out, size_t outsz)
{
	struct tm tm;
	gmtime_r(&until, &tm);
	strftime(out, outsz, "%H:%M UTC", &tm);
}

/* Refuse the login when the throttle blocks it (auth/throttle.h), in words that say
 * whose failures caused the block. */
static bool refused_by_throttle(struct smtp_session *s, const char *user)
{
	struct throttle_verdict v = { THROTTLE_OPEN, 0 };
	if (s->hooks.auth_blocked)
		v = s->hooks.auth_blocked(s->hooks.ctx, user);
	if (v.block == THROTTLE_OPEN)
		return false;
	char when[32], q[80];
	format_until(v.until, when, sizeof(when));
	if (v.block == THROTTLE_ACCOUNT && user) {
		quote_for_reply(q, sizeof(q), user, strlen(user));
		auth_refuse(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ACCOUNT, q, when);
	} else {
		auth_refuse(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ADDRESS, when);
	}
	return true;
}

/* The SASL exchange moved on: ask for more, or hand the credentials over. */
static void auth_progress(struct smtp_session *s, enum sasl_status st)
{
	switch (st) {
	case SASL_CONTINUE:
		reply_writef(&s->out, 334, NULL, "%s", sasl_challenge(&s->sasl));
		s->state = ST_AUTH;
		return;
	case SASL_DONE:
		break;
	case SASL_CANCELLED:
		say(s, R_AUTH_CANCELLED);
		s->state = ST_CMD;
		sasl_clear(&s->sasl);
		return;
	case SASL_BAD_BASE64:
		say(s, R_AUTH_BAD_BASE64);
		s->state = ST_CMD;
		sasl_clear(&s->sasl);
		bad_command(s);
		return;
	case SASL_MALFORMED:
	case SASL_AUTHZID:
		say(s, st == SASL_AUTHZID ? R_AUTH_AUTHZID : R_AUTH_MALFORMED);
		s->state = ST_CMD;
		sasl_clear(&s->sasl);
		bad_command(s);
		return;
	}
	if (refused_by_throttle(s, s->sasl.user)) {
		s->state = ST_CMD;
		sasl_clear(&s->sasl);
		return;
	}
	s->state = ST_WAIT_AUTH;
	s->hooks.auth_verify(s->hooks.ctx, sasl_mech_name(s->sasl.mech), s->sasl.user, s->sasl.pass);
	explicit_bzero(s->sasl.pass, sizeof(s->sasl.pass));   /* the hook took a copy */
}

/* AUTH mechanism [initial-response] (RFC 4954 §4). */
static void cmd_auth(struct smtp_session *s, const struct smtp_command *c)
{
	if (!s->hooks.auth_verify) {
		say(s, R_AUTH_UNAVAILABLE);
		return;
	}
	if (s->login) {
		say(s, R_AUTH_TWICE);
		bad_command(s);
		return;
	}
	if (s->tx) {
		say(s, R_AUTH_IN_TX);
		bad_command(s);
		return;
	}
	if (!s->secure && !s->info.allow_plaintext_auth) {
		if (s->info.tls_offered)
			auth_refuse(s, CAUSE_TLS_REQUIRED, R_AUTH_NEEDS_STARTTLS);
		else
			auth_refuse(s, CAUSE_TLS_REQUIRED, R_AUTH_NEEDS_TLS_PORT);
		return;
	}
	if (refused_by_throttle(s, NULL))
		return;
	const char *sp = memchr(c->arg, ' ', c->arg_len);
	size_t mlen = sp ? (size_t)(sp - c->arg) : c->arg_len;
	enum sasl_mech mech;
	if (mlen == 0) {
		say(s, R_AUTH_NO_MECH);
		bad_command(s);
		return;
	}
	if (!sasl_mech_from_name(c->arg, mlen, &mech)) {
		say(s, R_AUTH_UNKNOWN_MECH);
		bad_command(s);
		return;
	}
	const char *init = sp ? sp + 1 : NULL;
	size_t ilen = sp ? c->arg_len - mlen - 1 : 0;
	auth_progress(s, sasl_start(&s->sasl, mech, init != NULL, init, ilen));
}

/* A line of the SASL exchange. */
static void auth_line(struct smtp_session *s, const char *line, size_t len)
{
	auth_progress(s, sasl_step(&s->sasl, line, len));
}

/* --- the command table and the gate --------------------------------------- */

enum cmd_flags {
	F_NEED_HELO = 1 << 0,   /* only after EHLO/HELO (RFC 5321 §4.1.4) */
};

struct cmd_def {
	void (*handler)(struct smtp_session *, const struct smtp_command *);
	unsigned flags;
};

static const struct cmd_def commands[SMTP_VERB_COUNT] = {
	[SMTP_HELO] = { cmd_helo, 0 },
	[SMTP_EHLO] = { cmd_ehlo, 0 },
	[SMTP_MAIL] = { cmd_mail, F_NEED_HELO },
	[SMTP_RCPT] = { cmd_rcpt, F_NEED_HELO },
	[SMTP_DATA] = { cmd_data, F_NEED_HELO },
	[SMTP_BDAT] = { cmd_bdat, 0 },   /* must swallow its chunk whatever the state */
	[SMTP_RSET] = { cmd_rset, 0 },
	[SMTP_NOOP] = { cmd_noop, 0 },
	[SMTP_QUIT] = { cmd_quit, 0 },
	[SMTP_HELP] = { cmd_help, 0 },
	[SMTP_VRFY] = { cmd_vrfy, 0 },
	[SMTP_EXPN] = { cmd_expn, 0 },
	[SMTP_STARTTLS] = { cmd_starttls, 0 },
	[SMTP_AUTH] = { cmd_auth, F_NEED_HELO },
};

static void session_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command c;
	switch (smtp_command_parse(line, len, &c)) {
	case SMTP_CMD_EMPTY:
		say(s, R_UNKNOWN_COMMAND, "");
		bad_command(s);
		return;
	case SMTP_CMD_BAD_BYTES:
		say(s, R_SYNTAX_BAD_BYTES);
		bad_command(s);
		return;
	case SMTP_CMD_OK:
		break;
	}
	const struct cmd_def *def = c.verb != SMTP_UNKNOWN ? &commands[c.verb] : NULL;
	if (!def || !def->handler) {
		char q[80];
		quote_for_reply(q, sizeof(q), c.verb_text, c.verb_len);
		say(s, R_UNKNOWN_COMMAND, q);
		bad_command(s);
		return;
	}
	if ((def->flags & F_NEED_HELO) && !s->helo_seen) {
		say(s, R_NEED_HELO);
		bad_command(s);
		return;
	}
	def->handler(s, &c);
}

/* --- input ---------------------------------------------------------------- */

static void line_too_long(struct smtp_session *s)
{
	if (s->state == ST_AUTH) {
		say(s, R_AUTH_LINE_TOO_LONG);   /* RFC 4954 §4 */
		sasl_clear(&s->sasl);
		s->state = ST_CMD;
	} else {
		say(s, R_SYNTAX_LINE_TOO_LONG, s->limits.max_line);
	}
	bad_command(s);
}

/* Command mode: assemble a line (bounded), dispatch it.  Returns bytes consumed. */
static size_t feed_command(struct smtp_session *s, const char *p, size_t len)
{
	size_t max = s->state == ST_AUTH ? SASL_LINE_MAX + 2 : s->limits.max_line;
	size_t used, n;
	const char *line;
	switch (linebuf_feed(&s->line, p, len, max, &used, &line, &n)) {
	case LINEBUF_MORE:
		break;
	case LINEBUF_TOO_LONG:
		line_too_long(s);
		break;
	case LINEBUF_LINE:
		if (s->state == ST_AUTH)
			auth_line(s, line, n);
		else
			session_dispatch(s, line, n);
		break;
	}
	return used;
}

static size_t feed_data(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_tx *tx = s->tx;
	size_t n = len < FEED_CHUNK ? len : FEED_CHUNK;
	buf_reset(&s->scratch);
	size_t used = data_decoder_feed(&tx->dec, p, n, &s->scratch);
	accept_bytes(s, s->scratch.data, s->scratch.len);
	if (tx->dec.done)
		finish_message(s);
	return used;
}

static size_t feed_bdat(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_tx *tx = s->tx;
	size_t n = len;
	if (n > tx->bdat_remaining)
		n = (size_t)tx->bdat_remaining;
	if (!tx->bdat_discard) {
		data_scan_feed(&tx->dec, p, n);
		accept_bytes(s, p, n);
	}
	tx->bdat_remaining -= n;
	if (tx->bdat_remaining == 0)
		bdat_chunk_done(s);
	return n;
}

size_t smtp_session_feed(struct smtp_session *s, const void *data, size_t len)
{
	const char *p = data;
	size_t used = 0;
	for (;;) {
		if (s->state == ST_CLOSED || s->state == ST_WAIT_COMMIT || s->state == ST_WAIT_AUTH ||
			s->state == ST_TLS_PENDING || s->state == ST_HOLD)
			break;
		/* A zero-length BDAT chunk completes without input. */
		if (s->state == ST_BDAT && s->tx->bdat_remaining == 0) {
			bdat_chunk_done(s);
			continue;
		}
		if (used >= len)
			break;
		/* Back-pressure: a client that pipelines without reading replies waits. */
		if ((s->state == ST_CMD || s->state == ST_AUTH) && s->out.len >= OUTPUT_PAUSE)
			break;
		size_t n;
		switch (s->state) {
		case ST_CMD:
		case ST_AUTH: n = feed_command(s, p + used, len - used); break;
		case ST_DATA: n = feed_data(s, p + used, len - used); break;
		case ST_BDAT: n = feed_bdat(s, p + used, len - used); break;
		default: n = 0; break;
		}
		used += n;
	}
	return used;
}

/* --- life cycle ----------------------------------------------------------- */

struct smtp_session *smtp_session_new(const struct smtp_conn_info *info,
	const struct smtp_limits *limits, const struct smtp_hooks *hooks)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->info = *info;
	s->hostname = dup_or_empty(info->hostname);
	s->client_addr = dup_or_empty(info->client_addr);
	s->client_name = dup_or_empty(info->client_name);
	s->listener = dup_or_empty(info->listener);
	if (!s->hostname || !s->client_addr || !s->client_name || !s->listener) {
		smtp_session_free(&s);
		return NULL;
	}
	s->info.hostname = s->hostname;
	s->info.client_addr = s->client_addr;
	s->info.client_name = s->client_name;
	s->info.listener = s->listener;
	s->limits = *limits;
	if (s->limits.max_line < 512)
		s->limits.max_line = 512;
	if (s->limits.max_bad_commands == 0)
		s->limits.max_bad_commands = 1;
	if (s->limits.max_message_line == 0)
		s->limits.max_message_line = SMTP_MESSAGE_LINE_DEFAULT;
	s->hooks = *hooks;
	buf_init(&s->out, OUTPUT_MAX);
	linebuf_init(&s->line, s->limits.max_line > SASL_LINE_MAX + 2 ? s->limits.max_line : SASL_LINE_MAX + 2);
	buf_init(&s->scratch, FEED_CHUNK + 16);
	buf_init(&s->held, 4096);
	s->state = ST_CMD;
	if (info->tls_active) {
		s->secure = true;
		snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", info->tls_description ? info->tls_description : "TLS");
	}
	s->info.tls_description = NULL;   /* not owned; kept in tls_desc */
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;
	if (!s)
		return;
	if (s->state != ST_WAIT_COMMIT)
		tx_free(s);
	else if (s->tx) {
		/* The commit owns the spool file; just drop our record. */
		s->tx->spool_open = false;
		tx_free(s);
	}
	buf_free(&s->out);
	linebuf_free(&s->line);
	buf_free(&s->scratch);
	buf_free(&s->held);
	sasl_clear(&s->sasl);
	free(s->login);
	free(s->hostname);
	free(s->client_addr);
	free(s->client_name);
	free(s->listener);
	free(s);
	*sp = NULL;
}

void smtp_session_start(struct smtp_session *s)
{
	say(s, R_GREETING, s->hostname);
}

void smtp_session_timeout(struct smtp_session *s)
{
	if (s->state == ST_CLOSED)
		return;
	say(s, R_IDLE_TIMEOUT, s->hostname, (unsigned long long)s->limits.idle_timeout);
	session_close(s);
}

void smtp_session_deadline(struct smtp_session *s, enum smtp_deadline which, unsigned long long limit)
{
	static const enum reply_id ids[] = {
		[SMTP_DEADLINE_LINE] = R_DEADLINE_LINE, [SMTP_DEADLINE_DATA_RATE] = R_DEADLINE_DATA_RATE,
		[SMTP_DEADLINE_LOGIN] = R_DEADLINE_LOGIN, [SMTP_DEADLINE_SESSION] = R_DEADLINE_SESSION,
	};
	if (s->state == ST_CLOSED || s->state == ST_WAIT_COMMIT)
		return;   /* a commit in progress finishes and gets its reply */
	say(s, ids[which], s->hostname, limit);
	session_close(s);
}

bool smtp_session_line_pending(const struct smtp_session *s)
{
	return (s->state == ST_CMD || s->state == ST_AUTH) && (s->line.line.len > 0 || s->line.overflow);
}

bool smtp_session_in_data(const struct smtp_session *s)
{
	return s->state == ST_DATA || s->state == ST_BDAT;
}

void smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == ST_CLOSED || s->state == ST_WAIT_COMMIT)
		return;
	say(s, R_SHUTDOWN, s->hostname);
	session_close(s);
}

void smtp_session_disconnected(struct smtp_session *s)
{
	if (s->state == ST_WAIT_COMMIT && s->tx)
		s->tx->spool_open = false;   /* the running commit owns the spool file */
	tx_free(s);
	s->state = ST_CLOSED;
}

struct buf *smtp_session_output(struct smtp_session *s)
{
	return &s->out;
}

bool smtp_session_wants_close(const struct smtp_session *s)
{
	return s->close_after_output;
}

bool smtp_session_waiting(const struct smtp_session *s)
{
	return s->state == ST_WAIT_COMMIT || s->state == ST_HOLD;
}

void smtp_session_hold_done(struct smtp_session *s)
{
	if (s->state != ST_HOLD)
		return;
	buf_append(&s->out, s->held.data ? s->held.data : "", s->held.len);
	buf_reset(&s->held);
	s->state = ST_CMD;
}

/* --- TLS and login -------------------------------------------------------- */

bool smtp_session_wants_tls(const struct smtp_session *s)
{
	return s->wants_tls;
}

void smtp_session_tls_started(struct smtp_session *s, const char *description)
{
	/* RFC 3207 §4.2: forget everything learnt from the client before TLS; whatever
	 * it sent in plaintext after STARTTLS was discarded by the caller. */
	s->wants_tls = false;
	s->secure = true;
	free(s->login);              /* a login made in plaintext does not carry over */
	s->login = NULL;
	sasl_clear(&s->sasl);
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s", description ? description : "TLS");
	tx_free(s);
	s->helo_seen = false;
	s->esmtp = false;
	s->helo[0] = '\0';
	linebuf_reset(&s->line);
	forget_mail_refusal(s);
	memset(s->causes, 0, sizeof(s->causes));
	if (s->state == ST_TLS_PENDING)
		s->state = ST_CMD;
}

void smtp_session_auth_done(struct smtp_session *s, enum smtp_auth_result r, const char *login, time_t blocked_until)
{
	if (s->state != ST_WAIT_AUTH)
		return;
	s->state = ST_CMD;
	char when[32];
	switch (r) {
	case SMTP_AUTH_OK:
		free(s->login);
		s->login = strdup(login ? login : s->sasl.user);
		if (!s->login) {
			say(s, R_AUTH_TEMPFAIL);
			break;
		}
		memset(s->causes, 0, sizeof(s->causes));   /* earlier failures no longer explain anything */
		forget_mail_refusal(s);
		say(s, R_AUTH_OK);
		break;
	case SMTP_AUTH_FAILED:
		auth_refuse(s, CAUSE_AUTH_FAILED, R_AUTH_FAILED);
		break;
	case SMTP_AUTH_BLOCKED: {
		char q[80];
		format_until(blocked_until, when, sizeof(when));
		quote_for_reply(q, sizeof(q), s->sasl.user, strlen(s->sasl.user));
		auth_refuse(s, CAUSE_THROTTLED, R_AUTH_THROTTLED_ACCOUNT, q, when);
		break;
	}
	case SMTP_AUTH_TEMPFAIL:
		say(s, R_AUTH_TEMPFAIL);
		break;
	}
	sasl_clear(&s->sasl);
}

uint64_t smtp_session_declared_size(const struct smtp_session *s)
{
	return s->tx && s->tx->params.size_set ? s->tx->params.size : 0;
}

const char *smtp_session_login(const struct smtp_session *s)
{
	return s->login;
}
