/* cmd_data.c - DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030): message content on its
 * way to the spool, the Received header (RFC 5321 §4.4), the checks of the content
 * itself (line ends, NUL, line length, the From: of logged-in users), the end-of-data
 * decision (policy/: quota, content checks, signing; stages may add header fields,
 * which the adapter hands to the queue) and the durable commit that comes before the
 * 250. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg/header.h"
#include "smtp/command.h"
#include "smtp/data.h"
#include "smtp/reply.h"
#include "smtp/session_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/parse.h"
#include "util/text.h"

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
	quote_for_reply(helo, sizeof(helo), s->helo, strlen(s->helo), SMTP_QUOTE_SHOWN);
	struct buf h;
	buf_init(&h, 2048);
	if (s->local_user)   /* the kernel's word for who sent it (SO_PEERCRED), not a network peer */
		buf_printf(&h, "Received: from local user %s (uid %u)\r\n", s->local_user, s->local_uid);
	else
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
	if (s->authserv_id[0]) {
		tx->ar_drop = malloc(sizeof(*tx->ar_drop));
		if (!tx->ar_drop) {
			s->hooks.spool_abort(s->hooks.ctx);
			tx->spool_open = false;
			return false;
		}
		msg_field_drop_init(tx->ar_drop, "Authentication-Results", s->authserv_id);
	}
	if (!write_received(s)) {
		s->hooks.spool_abort(s->hooks.ctx);
		tx->spool_open = false;
		return false;
	}
	return true;
}

/* The spool failed: 452 4.3.1 when the server is out of storage (RFC 3463 X.3.1), the
 * given 451 4.3.0 otherwise. */
void reply_spool_failure(struct smtp_session *s, enum reply_id id)
{
	if (s->hooks.spool_no_space && s->hooks.spool_no_space(s->hooks.ctx))
		id = R_NO_SPACE_DATA;
	refuse(s, id);
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

/* Bytes that go into the spool file as they are. */
static void spool_out(void *arg, const char *p, size_t n)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	if (n == 0 || tx->spool_failed || !tx->spool_open)
		return;
	if (!s->hooks.spool_write(s->hooks.ctx, p, n)) {
		tx->spool_failed = true;
		s->hooks.spool_abort(s->hooks.ctx);
		tx->spool_open = false;
	}
}

/* The message ended: a header field still held by the Authentication-Results filter
 * goes out (or not) now; the fields removed are logged. */
static void spool_flush_header(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (!tx->ar_drop)
		return;
	msg_field_drop_finish(tx->ar_drop, spool_out, s);
	if (tx->ar_drop->dropped)
		log_event(LOG_INFO, "authres_removed", "conn=%llu fields=%zu id=%s", (unsigned long long)s->info.conn_id,
			tx->ar_drop->dropped, s->authserv_id);
}

/* Message bytes on their way to the spool; enforces the size limit (on the bytes
 * the client sent: removing forged Authentication-Results does not make room). */
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
	if (tx->ar_drop)
		msg_field_drop_feed(tx->ar_drop, p, n, spool_out, s);   /* RFC 8601 §5 */
	else
		spool_out(s, p, n);
}

enum from_check { FROM_PASSES, FROM_REFUSED, FROM_ASKED };

/* A logged-in user's message must say it is from one of the user's addresses
 * (RFC 6409 §6.1 lets a submission server enforce this).  The field itself is
 * checked here; whether the login owns its mailboxes is asked of the decision
 * pipeline, and the answer comes to from_header_decided(). */
static enum from_check check_from_header(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	if (!s->login || !s->info.check_from_header)
		return FROM_PASSES;
	const struct msg_field_scan *sc = tx->from_scan;
	size_t count = sc ? sc->count : 0;
	struct verdict v;
	if (count == 0) {
		log_event(LOG_INFO, "no_from_header", "conn=%llu login=%s", (unsigned long long)s->info.conn_id, s->login);
		return FROM_PASSES;
	}
	if (count > 1) {
		/* RFC 5322 §3.6: exactly one; a second could be shown instead of the first. */
		refuse(s, R_FROM_NOT_ONE, count);
		log_event(LOG_INFO, "from_header_refused", "conn=%llu login=%s from_fields=%zu",
			(unsigned long long)s->info.conn_id, s->login, count);
		return FROM_REFUSED;
	}
	if (sc->value_truncated) {
		refuse(s, R_FROM_TOO_LONG, (size_t)MSG_FIELD_VALUE_MAX);
		return FROM_REFUSED;
	}
	const char *val = "";
	size_t vl = 0;
	struct msg_address_list list;
	enum msg_status st = MSG_SYNTAX;
	if (msg_field_scan_value(sc, &val, &vl))
		st = msg_parse_address_list(val, vl, &list);
	if (st != MSG_OK) {
		char q[100];
		quote_for_reply(q, sizeof(q), val, vl, SMTP_QUOTE_SHOWN);
		char reason[VERDICT_REASON_MAX];
		snprintf(reason, sizeof(reason), "the From: header \"%s\" does not hold a valid address", q);
		reply_verdict(&v, V_FROM_BAD_ADDRESS, CAUSE_BAD_ADDRESS, reason);
		refuse_verdict(s, "Message refused", &v, NULL, 0);
		return FROM_REFUSED;
	}
	if (list.truncated) {
		/* Addresses past the parser's list would go unchecked. */
		refuse(s, R_FROM_TOO_MANY, MSG_MAX_MAILBOXES);
		return FROM_REFUSED;
	}
	const char *addrs[MSG_MAX_MAILBOXES];
	for (size_t i = 0; i < list.n; i++)
		addrs[i] = list.mailboxes[i].addr;
	struct policy_facts *f = decision_facts(s, POLICY_AT_FROM_HEADER);
	if (f && !policy_facts_set_from(f, addrs, list.n))
		policy_facts_free(&f);
	session_decide(s, POLICY_AT_FROM_HEADER, f);
	return FROM_ASKED;
}

static void start_commit(struct smtp_session *s)
{
	wait_for(s, WAIT_COMMIT);
	s->hooks.spool_commit(s->hooks.ctx);
}

/* The facts of the end-of-data decision: the envelope as the session has it (the
 * adapter adds where the spooled message is).  NULL on no memory. */
static struct policy_facts *end_of_data_facts(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct policy_facts *f = decision_facts(s, POLICY_AT_END_OF_DATA);
	if (!f)
		return NULL;
	if (!policy_facts_set_rcpts(f, tx->n_rcpts)) {
		policy_facts_free(&f);
		return NULL;
	}
	smtp_path_format(&tx->sender, f->address, sizeof(f->address));
	snprintf(f->local, sizeof(f->local), "%s", tx->sender.local);
	snprintf(f->domain, sizeof(f->domain), "%s", tx->sender.domain);
	f->null_sender = tx->sender.null;
	f->declared_size = tx->params.size_set ? tx->params.size : 0;
	f->message_size = tx->size;
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		smtp_path_format(&tx->rcpts[i], f->rcpts[i].address, sizeof(f->rcpts[i].address));
		f->rcpts[i].domain_local = tx->rcpt_found[i].local;
		f->rcpts[i].quota = tx->rcpt_found[i].quota;
	}
	return f;
}

/* The whole message is spooled: ask the end-of-data stages (quota, content checks,
 * signing); end_of_data_decided goes on. */
static void ask_end_of_data(struct smtp_session *s)
{
	session_decide(s, POLICY_AT_END_OF_DATA, end_of_data_facts(s));
}

/* A refused message is dropped (tx_free aborts the spool file): nothing was queued. */
/* RFC 2033 §4.2: after the final dot LMTP answers once for each accepted recipient,
 * in order.  The message is one commit for all of them, so the reply written from
 * `at` on is each recipient's answer: it is repeated for the others.  Then the
 * transaction ends. */
static void end_replied(struct smtp_session *s, size_t at)
{
	size_t n = s->tx ? s->tx->n_rcpts : 0;
	if (s->info.lmtp && n > 1 && at < s->out.len) {
		size_t len = s->out.len - at;
		char *one = malloc(len);
		if (one) {
			memcpy(one, s->out.data + at, len);
			for (size_t i = 1; i < n; i++)
				buf_append(&s->out, one, len);
			free(one);
		}
	}
	tx_free(s);
	s->state = ST_CMD;
}

static void message_refused(struct smtp_session *s, const struct verdict *v)
{
	size_t at = s->out.len;
	bool not_accepted = v->kind == VERDICT_TEMP || v->cause == CAUSE_MAILBOX_FULL;
	refuse_verdict(s, not_accepted ? "Message not accepted" : "Message refused", v, NULL, 0);
	end_replied(s, at);
}

void from_header_decided(struct smtp_session *s, const struct verdict *v)
{
	if (!s->tx)
		return;
	if (v->kind != VERDICT_OK) {
		message_refused(s, v);
		return;
	}
	ask_end_of_data(s);
}

void end_of_data_decided(struct smtp_session *s, const struct verdict *v)
{
	if (!s->tx)
		return;
	if (v->kind != VERDICT_OK) {
		message_refused(s, v);
		return;
	}
	start_commit(s);
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
		refuse(s, R_BARE_LINE_ENDING, kind, d->bare_lf ? "LF" : "CR", d->bare_lf ? "a CR before it" : "an LF after it");
		log_event(LOG_WARN, "bare_line_ends", "conn=%llu cmd=%s kind=\"%s\" bare_lf=%llu bare_cr=%llu",
			(unsigned long long)s->info.conn_id, verb, kind, (unsigned long long)d->bare_lf,
			(unsigned long long)d->bare_cr);
		return false;
	}
	if (d->has_nul) {
		/* As NUL in a command is refused (R_SYNTAX_BAD_BYTES): stored, it would
		 * cut the message short for any reader that takes it for a string end. */
		refuse(s, R_NUL_IN_MESSAGE);
		log_event(LOG_WARN, "nul_in_message", "conn=%llu cmd=%s", (unsigned long long)s->info.conn_id, verb);
		return false;
	}
	if (d->longest_line > s->limits.max_message_line) {
		refuse(s, R_MESSAGE_LINE_TOO_LONG, (unsigned long long)d->longest_line_no,
			(unsigned long long)d->longest_line, (unsigned long long)s->limits.max_message_line);
		log_event(LOG_INFO, "line_too_long", "conn=%llu cmd=%s line=%llu octets=%llu limit=%llu",
			(unsigned long long)s->info.conn_id, verb, (unsigned long long)d->longest_line_no,
			(unsigned long long)d->longest_line, (unsigned long long)s->limits.max_message_line);
		return false;
	}
	return true;
}

/* End of DATA or BDAT LAST: refuse what the session itself sees, else ask the
 * decisions (the From: check, then the end-of-data stages) before the commit. */
static void finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	size_t at = s->out.len;   /* where the reply to the end of the message begins (LMTP) */
	metrics_count(METRIC_MESSAGES_RECEIVED, s->info.listener, 1);
	if (tx->too_big) {
		refuse(s, R_MSG_TOO_BIG, (unsigned long long)s->limits.max_message);
		end_replied(s, at);
		return;
	}
	if (tx->used_bdat)
		data_scan_end(&tx->dec);
	if (tx->spool_open && !tx->spool_failed)
		spool_flush_header(s);
	if (!content_acceptable(s)) {
		end_replied(s, at);
		return;
	}
	if (tx->spool_open && !tx->spool_failed && s->hooks.spool_flush && !s->hooks.spool_flush(s->hooks.ctx))
		tx->spool_failed = true;   /* the end-of-data stages read the file: all of it must be there */
	if (tx->spool_failed || !tx->spool_open) {
		reply_spool_failure(s, R_TEMP_SPOOL);
		end_replied(s, at);
		return;
	}
	switch (check_from_header(s)) {
	case FROM_REFUSED:
		end_replied(s, at);
		return;
	case FROM_ASKED:
		return;   /* from_header_decided goes on */
	case FROM_PASSES:
		ask_end_of_data(s);
		return;
	}
}

void smtp_session_commit_done(struct smtp_session *s, bool ok)
{
	if (!waiting_for(s, WAIT_COMMIT) || !s->tx)
		return;
	struct smtp_tx *tx = s->tx;
	size_t at = s->out.len;
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
	end_replied(s, at);
}

void cmd_data(struct smtp_session *s, const struct smtp_command *c)
{
	/* The gate saw to it: a transaction, no argument, no BDAT before. */
	(void)c;
	if (s->tx->n_rcpts == 0) {
		reply_no_recipients(s, "DATA");
		bad_command(s);
		return;
	}
	if (s->tx->params.body == BODY_BINARYMIME) {
		refuse(s, R_BODY_8BIT_NOT_DECLARED);
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

/* "<chunk-size> [LAST]"; false: not that (RFC 3030 §2 ABNF). */
static bool parse_bdat(const struct smtp_command *c, uint64_t *size, bool *last)
{
	const char *sp = memchr(c->arg, ' ', c->arg_len);
	size_t nlen = sp ? (size_t)(sp - c->arg) : c->arg_len;
	*last = false;
	if (!parse_u64(c->arg, nlen, size))
		return false;
	if (!sp)
		return true;
	*last = c->arg_len - nlen - 1 == 4 && ascii_ieq(sp + 1, "LAST", 4);
	return *last;
}

/* Is this chunk refused, and why?  (The gate lets BDAT through in every state.) */
static bool bdat_refused(const struct smtp_session *s, enum bdat_refusal *why)
{
	if (!s->tx)
		*why = BDAT_NEED_MAIL;
	else if (s->tx->n_rcpts == 0)
		*why = BDAT_NO_RCPT;
	else if (s->tx->bdat_failed)
		*why = BDAT_AFTER_FAILURE;
	else
		return false;
	return true;
}

/* BDAT <chunk-size> [LAST]  (RFC 3030 §2).  The chunk is always read, even when the
 * command is refused (then in ST_BDAT_DISCARD), so that its bytes are never taken for
 * commands. */
void cmd_bdat(struct smtp_session *s, const struct smtp_command *c)
{
	uint64_t size;
	bool last;
	if (!parse_bdat(c, &size, &last)) {
		/* Without a size we cannot tell data from commands: end the session. */
		refuse(s, R_BDAT_SYNTAX);
		session_close(s);
		return;
	}
	enum bdat_refusal why;
	if (bdat_refused(s, &why)) {
		s->discard_remaining = size;
		s->discard_why = why;
		s->state = ST_BDAT_DISCARD;
		return;
	}
	struct smtp_tx *tx = s->tx;
	if (!tx->used_bdat) {
		tx->used_bdat = true;
		data_decoder_init(&tx->dec);
		if (!open_spool(s))
			tx->spool_failed = true;
	}
	tx->bdat_remaining = size;
	tx->bdat_chunk = size;
	tx->bdat_last = last;
	s->state = ST_BDAT;
}

/* The whole chunk has been read. */
void bdat_chunk_done(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	s->state = ST_CMD;
	if (tx->too_big || tx->spool_failed) {
		tx->bdat_failed = true;
		if (tx->too_big)
			refuse(s, R_MSG_TOO_BIG, (unsigned long long)s->limits.max_message);
		else
			reply_spool_failure(s, R_TEMP_SPOOL);
		if (tx->bdat_last)
			tx_free(s);
		return;
	}
	if (tx->bdat_last) {
		finish_message(s);
		return;
	}
	say(s, R_BDAT_OK, (unsigned long long)tx->bdat_chunk);
}

/* A refused chunk has been read and dropped: its one reply.  The transaction, if
 * there is one, stays as it was (RFC 3030 §2: the client may RSET). */
void bdat_discard_done(struct smtp_session *s)
{
	s->state = ST_CMD;
	switch (s->discard_why) {
	case BDAT_NEED_MAIL:
	case BDAT_NO_RCPT:
		reply_no_recipients(s, "BDAT");
		break;
	case BDAT_AFTER_FAILURE:
		refuse(s, R_BDAT_AFTER_FAILURE);
		break;
	}
	bad_command(s);
}

size_t feed_bdat_discard(struct smtp_session *s, const char *p, size_t len)
{
	(void)p;
	size_t n = len < s->discard_remaining ? len : (size_t)s->discard_remaining;
	s->discard_remaining -= n;
	if (s->discard_remaining == 0)
		bdat_discard_done(s);
	return n;
}

size_t feed_data(struct smtp_session *s, const char *p, size_t len)
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

size_t feed_bdat(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_tx *tx = s->tx;
	size_t n = len;
	if (n > tx->bdat_remaining)
		n = (size_t)tx->bdat_remaining;
	data_scan_feed(&tx->dec, p, n);
	accept_bytes(s, p, n);
	tx->bdat_remaining -= n;
	if (tx->bdat_remaining == 0)
		bdat_chunk_done(s);
	return n;
}
