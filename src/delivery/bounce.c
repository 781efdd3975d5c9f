/* bounce.c - delivery status notifications (see bounce.h). */
#include "delivery/bounce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "delivery/reason.h"
#include "queue/queue.h"
#include "util/buf.h"
#include "util/id.h"
#include "wire/enh.h"

#define RETURN_FULL_MAX (1u << 20)   /* larger messages come back as headers only */
#define DSN_TEXT_MAX (256u << 10)

bool bounce_wanted(const struct queue_message *m, size_t i, enum bounce_kind kind)
{
	if (!m->env.sender[0])
		return false;   /* never bounce a bounce */
	unsigned f = m->env.notify ? m->env.notify[i] : 0;
	if (f == 0)
		return true;    /* RFC 3461 §4.1: by default failures and delays */
	if (f & QUEUE_NOTIFY_NEVER)
		return false;
	return kind == BOUNCE_FAILED ? (f & QUEUE_NOTIFY_FAILURE) != 0 : (f & QUEUE_NOTIFY_DELAY) != 0;
}

/* Is the enhanced code's subject.detail part `sub` (".1.1")?  Bounded by enh's length. */
static bool enh_sub(const char *enh, const char *sub)
{
	size_t n = strlen(sub);
	return strlen(enh) > n && strncmp(enh + 1, sub, n) == 0;
}

const char *bounce_meaning(const char *enh, const char *reply)
{
	const char *r = reply ? reply : "";
	if (strstr(r, "[relay]"))
		return "Postern could not send through the relay server it is set up to use. This is a setting on "
			"this mail server, not a problem with the recipient: tell your mail administrator.";
	if (!enh || !enh[0])
		enh = "";
	if (strcasestr(r, "relay") && enh[0] == '5')
		return "The receiving server refused to pass the message on (relaying denied). If it is a relay this "
			"server is set up to use, the relay expects this server to log in: tell your mail administrator.";
	if (enh_sub(enh, ".1.1") || enh_sub(enh, ".1.0"))
		return "The address does not exist at the recipient's domain. Check it for typing mistakes, or ask the "
			"recipient for the right one.";
	if (enh_sub(enh, ".1.2") || strstr(r, "NXDOMAIN") || strstr(r, "null MX"))
		return "The recipient's domain does not exist or accepts no mail. Check the part after the @.";
	if (enh_sub(enh, ".2.2"))
		return "The recipient's mailbox is full. The recipient must delete mail before more can arrive; try "
			"again later or reach them another way.";
	if (enh_sub(enh, ".3.4") || enh_sub(enh, ".2.3"))
		return "The message is too big for the receiving server. Send a smaller one, for example share large "
			"files by link instead of attaching them.";
	if (enh_sub(enh, ".6."))
		return "The receiving server cannot take this kind of message (8-bit content or an international "
			"address) and it could not be converted.";
	if (enh_sub(enh, ".7."))
		return "The receiving server refused the message as a matter of policy: a spam filter, a block list, "
			"or a check of the sender's domain (SPF, DKIM, DMARC). Its words above say which.";
	if (enh_sub(enh, ".4."))
		return "The receiving server could not be reached (no answer, or the connection failed).";
	if (enh[0] == '4')
		return "A temporary problem; Postern kept trying.";
	return "The receiving server refused the message. Its words above say why.";
}

void bounce_duration(unsigned long long s, char *out, size_t outsz)
{
	if (s >= 2 * 86400 && s % 86400 == 0)
		snprintf(out, outsz, "%llu days", s / 86400);
	else if (s >= 2 * 3600)
		snprintf(out, outsz, "%llu hours", s / 3600);
	else if (s >= 120)
		snprintf(out, outsz, "%llu minutes", s / 60);
	else
		snprintf(out, outsz, "%llu seconds", s);
}

static void header_date(char *out, size_t outsz, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Text in lines of at most about 76 columns, each indented by four spaces (a report
 * line must stay far below the 998-octet limit, RFC 5322 §2.1.1). */
static void put_wrapped(struct buf *b, const char *text)
{
	const char *p = text;
	while (*p) {
		size_t len = strlen(p), cut = len;
		if (len > 72) {
			cut = 72;
			while (cut > 20 && p[cut] != ' ')
				cut--;
		}
		buf_printf(b, "    %.*s\r\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

/* The human-readable first part. */
static void human_part(struct buf *b, const struct conf *c, const struct queue_message *m, enum bounce_kind kind,
	const size_t *idx, size_t n, const struct queue_rcpt_state *st)
{
	buf_printf(b, "This is the mail system at %s.\r\n\r\n", c->hostname);
	if (kind == BOUNCE_FAILED)
		buf_appends(b, "Your message could not be delivered to the recipients below. It is attached.\r\n\r\n");
	else
	{
		char span[32];
		bounce_duration(c->max_lifetime, span, sizeof(span));
		buf_printf(b, "Your message has not been delivered yet to the recipients below. Postern keeps trying "
			"until %s after it was sent; you do not need to send it again.\r\n\r\n", span);
	}
	for (size_t k = 0; k < n; k++) {
		const struct queue_rcpt_state *r = &st[idx[k]];
		char enh[WIRE_ENH_MAX] = "";
		reason_status(r->last_reply, enh, sizeof(enh));   /* "host said: 550 5.1.1 ..." */
		const char *at = strrchr(m->env.sender, '@');
		char words[2048];
		buf_printf(b, "<%s>\r\n    %s\r\n", m->env.rcpts[idx[k]], r->last_reply[0] ? r->last_reply : "(no reply)");
		if (bounce_auth_advice(enh, r->last_reply, at ? at + 1 : "", c->hostname, words, sizeof(words)))
			put_wrapped(b, words);
		else
			buf_printf(b, "    %s\r\n", bounce_meaning(enh, r->last_reply));
		buf_appends(b, "\r\n");
	}
}

static void status_part(struct buf *b, const struct conf *c, const struct queue_message *m, enum bounce_kind kind,
	const size_t *idx, size_t n, const struct queue_rcpt_state *st)
{
	char date[64];
	header_date(date, sizeof(date), m->env.arrival);
	buf_printf(b, "Reporting-MTA: dns; %s\r\nX-Postern-Queue-ID: %s\r\n", c->hostname, m->env.qid);
	if (m->env.envid[0])
		buf_printf(b, "Original-Envelope-Id: %s\r\n", m->env.envid);
	buf_printf(b, "Arrival-Date: %s\r\n", date);
	for (size_t k = 0; k < n; k++) {
		size_t i = idx[k];
		const struct queue_rcpt_state *r = &st[i];
		char status[WIRE_ENH_MAX] = "";
		if (!reason_status(r->last_reply, status, sizeof(status)) || status[0] == '2')
			snprintf(status, sizeof(status), "%s", kind == BOUNCE_FAILED ? ENH_PERM : ENH_TEMP);
		/* A failed recipient's status class is 5 even after a run of 4xx replies. */
		if (kind == BOUNCE_FAILED)
			status[0] = '5';
		buf_printf(b, "\r\nFinal-Recipient: rfc822; %s\r\n", m->env.rcpts[i]);
		if (m->env.orcpt && m->env.orcpt[i][0])
			buf_printf(b, "Original-Recipient: %s\r\n", m->env.orcpt[i]);
		buf_printf(b, "Action: %s\r\nStatus: %s\r\n", kind == BOUNCE_FAILED ? "failed" : "delayed", status);
		if (r->last_reply[0])
			buf_printf(b, "Diagnostic-Code: smtp; %s\r\n", r->last_reply);
		if (r->next_try && kind == BOUNCE_DELAYED) {
			header_date(date, sizeof(date), (time_t)r->next_try);
			buf_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

/* The returned message or its headers, read from the queue file. */
static bool returned_part(struct buf *b, const struct queue_message *m, bool full)
{
	uint64_t want = queue_message_size(m);   /* with the fields added at the end of data (queue.h) */
	if (!full && want > 64 * 1024)
		want = 64 * 1024;
	char *p = malloc(want + 1);
	if (!p)
		return false;
	ssize_t r = queue_message_pread(m, p, (size_t)want, 0);
	if (r < 0) {
		free(p);
		return false;
	}
	size_t len = (size_t)r;
	if (!full) {
		/* up to the blank line that ends the header */
		char *end = memmem(p, len, "\r\n\r\n", 4);
		if (end)
			len = (size_t)(end - p) + 2;
	}
	buf_append(b, p, len);
	if (len && p[len - 1] != '\n')
		buf_appends(b, "\r\n");
	free(p);
	return true;
}

/* Queue a report Postern wrote itself (a bounce, a delay notice, the postmaster's
 * notice of failed files) from the null sender to one recipient, so that it is never
 * bounced in turn (RFC 5321 §4.5.5).  Takes and frees the body. */
bool bounce_queue_report(struct queue *q, const struct conf *c, const char *protocol, const char *to,
	bool eightbit, struct buf *body, char *qid, char *err, size_t errlen)
{
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	id_new_queue_id(env.qid);
	env.arrival = time(NULL);
	snprintf(env.client_addr, sizeof(env.client_addr), "127.0.0.1");
	snprintf(env.helo, sizeof(env.helo), "%s", c->hostname);
	snprintf(env.protocol, sizeof(env.protocol), "%s", protocol);
	env.eightbit = eightbit;
	char rcpt[1][QUEUE_ADDR_MAX];
	snprintf(rcpt[0], sizeof(rcpt[0]), "%s", to);
	env.rcpts = rcpt;
	env.n_rcpts = 1;
	bool ok = !body->truncated;
	struct queue_writer *w = ok ? queue_writer_open(q, &env, err, errlen) : NULL;
	ok = w && queue_writer_write(w, body->data, body->len) && queue_writer_commit(w, err, errlen);
	queue_writer_free(&w);
	buf_free(body);
	if (ok)
		snprintf(qid, QUEUE_ID_LEN + 1, "%s", env.qid);
	else if (!err[0])
		snprintf(err, errlen, "cannot queue the report");
	return ok;
}

bool bounce_send(struct queue *q, const struct conf *c, const struct queue_message *m, enum bounce_kind kind,
	const size_t *idx, size_t n, const struct queue_rcpt_state *states, char *qid, char *err, size_t errlen)
{
	bool full = kind == BOUNCE_FAILED && m->env.ret != QUEUE_RET_HDRS && queue_message_size(m) <= RETURN_FULL_MAX;
	struct buf b;
	buf_init(&b, DSN_TEXT_MAX + RETURN_FULL_MAX + 4096);
	unsigned rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned)time(NULL);
	char boundary[400], date[64];
	snprintf(boundary, sizeof(boundary), "%s/%08x/%s", m->env.qid, rnd, c->hostname);
	header_date(date, sizeof(date), time(NULL));
	buf_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nDate: %s\r\n", c->hostname,
		m->env.sender, date);
	buf_printf(&b, "Subject: %s\r\n", kind == BOUNCE_FAILED ? "Undelivered Mail Returned to Sender"
		: "Delayed Mail (still being retried)");
	buf_printf(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n"
		"This is a MIME-encapsulated message.\r\n\r\n", boundary);
	buf_printf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Description: Notification\r\n\r\n", boundary);
	human_part(&b, c, m, kind, idx, n, states);
	buf_printf(&b, "--%s\r\nContent-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n", boundary);
	status_part(&b, c, m, kind, idx, n, states);
	buf_printf(&b, "\r\n--%s\r\nContent-Type: %s\r\nContent-Description: %s\r\n\r\n", boundary,
		full ? "message/rfc822" : "text/rfc822-headers", full ? "Undelivered message" : "Message headers");
	if (!returned_part(&b, m, full)) {
		snprintf(err, errlen, "cannot read the original message");
		buf_free(&b);
		return false;
	}
	buf_printf(&b, "\r\n--%s--\r\n", boundary);
	return bounce_queue_report(q, c, "local", m->env.sender, m->env.eightbit, &b, qid, err, errlen);
}
