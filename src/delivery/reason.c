/* reason.c - one recipient's outcome and its recorded text (see reason.h). */
#include "delivery/reason.h"

#include <stdio.h>
#include <string.h>

#include "wire/enh.h"

bool rcpt_result_known(const struct rcpt_result *x)
{
	return x->code != 0 || x->text[0] != '\0';
}

void rcpt_result_set(struct rcpt_result *x, enum rcpt_outcome o, const char *enh, const char *why)
{
	memset(x, 0, sizeof(*x));
	x->outcome = o;
	snprintf(x->enh, sizeof(x->enh), "%s", enh);
	snprintf(x->text, sizeof(x->text), "%.590s", why);
}

void rcpt_result_from_reply(struct rcpt_result *x, const struct wire_reply *r, const char *said)
{
	memset(x, 0, sizeof(*x));
	x->code = r->code;
	x->reply_had_enh = r->enh[0] != '\0';
	snprintf(x->enh, sizeof(x->enh), "%s", r->enh[0] ? r->enh : r->code >= 500 ? ENH_PERM : r->code >= 400 ? ENH_TEMP : ENH_OK);
	snprintf(x->said, sizeof(x->said), "%s", said);
	snprintf(x->text, sizeof(x->text), "%.590s", r->text);
	x->outcome = r->code < 300 ? OUT_DELIVERED : r->code < 500 ? OUT_DEFER : OUT_FAIL;
}

void rcpt_result_reason(const struct rcpt_result *x, char *out, size_t outsz)
{
	char body[RCPT_REASON_MAX + 128];
	if (x->code) {
		char rep[RCPT_REASON_MAX + 32];
		snprintf(rep, sizeof(rep), "%d%s%s %s", x->code, x->reply_had_enh ? " " : "", x->reply_had_enh ? x->enh : "",
			x->text);
		snprintf(body, sizeof(body), "%s: %.520s", x->said, rep);
	} else {
		snprintf(body, sizeof(body), "%.590s", x->text);
	}
	char enh[WIRE_ENH_MAX];
	bool status_first = x->code ? x->reply_had_enh : wire_enh_lead(body, enh, sizeof(enh)) > 0;
	if (x->outcome == OUT_DELIVERED || !x->enh[0] || status_first)
		snprintf(out, outsz, "%s", body);
	else
		snprintf(out, outsz, "%s %.580s", x->enh, body);
}

bool reason_status(const char *reason, char *enh, size_t enhsz)
{
	if (wire_reply_enh(reason, enh, enhsz))
		return true;
	for (const char *p = strstr(reason, ": "); p; p = strstr(p + 1, ": "))
		if (wire_reply_enh(p + 2, enh, enhsz))
			return true;
	return false;
}
