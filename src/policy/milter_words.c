/* milter_words.c - the words of the content-filter stage (docs/diagnostics.md "The
 * content filter"): a filter's refusal passed on with its own words and Postern's
 * reference, and the default action of a filter that did not answer, which is the
 * server's fault and says so.  Enhanced codes come from wire/enh.h only: a filter's
 * own enhanced code is kept when Postern's catalogue knows it, else X.7.1 (RFC 3463
 * §3.8, "delivery not authorized, message refused"). */
#include "policy/milter_stage.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "util/parse.h"
#include "util/text.h"
#include "wire/enh.h"

static const char *point_name(enum policy_point point)
{
	return point == POLICY_AT_MAIL ? "mail" : point == POLICY_AT_RCPT ? "rcpt" : point == POLICY_AT_END_OF_DATA
		? "end_of_data" : "other";
}

/* The catalogue's id for a filter's enhanced code of class `cls`, or the class's X.7.1. */
static const char *enh_id(const char *code, size_t len, char cls)
{
	size_t n;
	const struct wire_enh_entry *cat = wire_enh_catalogue(&n);
	for (size_t i = 0; code && i < n; i++)
		if (strlen(cat[i].code) == len && memcmp(cat[i].code, code, len) == 0 && cat[i].code[0] == cls)
			return cat[i].code;
	return cls == '4' ? ENH_TEMP_NOT_AUTHORIZED : ENH_PERM_NOT_AUTHORIZED;
}

/* Length of an enhanced code "d.d{1,3}.d{1,3}" at p, or 0. */
static size_t enh_len(const char *p)
{
	size_t i = 0;
	if (!(p[0] == '2' || p[0] == '4' || p[0] == '5') || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (ascii_is_digit((unsigned char)p[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (p[i] != '.')
				return 0;
			i++;
		}
	}
	return p[i] == ' ' || p[i] == '\0' || p[i] == '\r' || p[i] == '\n' ? i : 0;
}

/* The filter's words as one printable line: its line ends and the repeated "550-5.7.1"
 * of each continuation line become "; ", control octets spaces. */
static void plain_words(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	for (const char *p = in; *p && o + 3 < outsz; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n') {
			const char *q = p + 1;
			if (ascii_is_digit((unsigned char)q[0]) && ascii_is_digit((unsigned char)q[1])
				&& ascii_is_digit((unsigned char)q[2]) && (q[3] == '-' || q[3] == ' ')) {
				q += 4;
				size_t e = enh_len(q);
				q += e && q[e] == ' ' ? e + 1 : e;
				p = q - 1;
			}
			if (q[0] && o > 0) {
				out[o++] = ';';
				out[o++] = ' ';
			}
			continue;
		}
		unsigned char c = (unsigned char)*p;
		/* A reply line is ASCII (RFC 5321 §4.2): anything else is shown as '?'. */
		out[o++] = c < 32 ? ' ' : c >= 127 ? '?' : (char)c;
	}
	out[o] = '\0';
}

void milter_refusal_verdict(const struct milter_peer *p, enum policy_point point, enum milter_verdict mv,
	const char *reply, struct verdict *v)
{
	const char *what = point == POLICY_AT_RCPT ? "this recipient" : "this message";
	char reason[VERDICT_REASON_MAX], words[VERDICT_REASON_MAX];
	int code = mv == MILTER_TEMPFAIL ? 451 : 550;
	const char *enh = mv == MILTER_TEMPFAIL ? ENH_TEMP_NOT_AUTHORIZED : ENH_PERM_NOT_AUTHORIZED;
	words[0] = '\0';
	if (mv == MILTER_REPLYCODE && reply && (reply[0] == '4' || reply[0] == '5') && ascii_is_digit((unsigned char)reply[1])
		&& ascii_is_digit((unsigned char)reply[2])) {
		/* Validated by the codec: 4xx or 5xx, an enhanced code of the same class. */
		code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
		const char *rest = reply + 3;
		rest += *rest == ' ' || *rest == '-';
		size_t e = enh_len(rest);
		enh = enh_id(e ? rest : NULL, e, reply[0]);
		rest += e;
		rest += *rest == ' ';
		plain_words(rest, words, sizeof(words));
	}
	bool temp = code < 500;
	if (words[0])
		text_format_cut(reason, sizeof(reason), "The content filter (%s) refused %s%s: %s", p->display, what,
			temp ? " for now" : "", words);
	else
		text_format_cut(reason, sizeof(reason), "The content filter (%s) refused %s%s", p->display, what,
			temp ? " for now" : "");
	verdict_set(v, temp ? VERDICT_TEMP : VERDICT_PERM, code, enh, CAUSE_CONTENT_FILTER, reason,
		temp ? "Your mail program will try again later" : point == POLICY_AT_RCPT
		? "Mail to this recipient is not accepted; if you think that is a mistake, ask the postmaster of this server, quoting the reference"
		: "If you think the filter is wrong, ask the postmaster of this server, quoting the reference; changing the message may help");
}

void milter_failure_verdict(const struct milter_peer *p, const struct policy_facts *f, const char *what,
	struct verdict *v)
{
	const char *action = p->fc.default_action == MILTER_DEFAULT_ACCEPT ? "accept"
		: p->fc.default_action == MILTER_DEFAULT_REJECT ? "reject" : "tempfail";
	char q[300];
	log_event(LOG_ERR, "milter_failed", "conn=%llu filter=%s socket=%s stage=%s action=%s what=%s", f->conn_id,
		p->fc.name, p->fc.socket, point_name(f->point), action, log_quote(q, sizeof(q), what, strlen(what), 256));
	char reason[VERDICT_REASON_MAX];
	switch (p->fc.default_action) {
	case MILTER_DEFAULT_ACCEPT:
		return;   /* as if the filter had passed it: the verdict stays OK */
	case MILTER_DEFAULT_REJECT:
		text_format_cut(reason, sizeof(reason), "content filter (%s) not answering, and this server refuses mail "
			"the filter cannot check", p->display);
		verdict_set(v, VERDICT_PERM, 550, ENH_PERM_NOT_AUTHORIZED, CAUSE_FILTER_UNAVAILABLE, reason,
			"This is the server's fault, not your message's: send it again later; if it lasts, tell the postmaster "
			"of this server, quoting the reference");
		return;
	case MILTER_DEFAULT_TEMPFAIL:
		break;
	}
	text_format_cut(reason, sizeof(reason), "temporary failure: content filter (%s) not answering; this is the "
		"server's fault, not your message's; try again later", p->display);
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_NOT_AUTHORIZED, CAUSE_FILTER_UNAVAILABLE, reason,
		"Nothing is lost: your mail program will try again later");
}
