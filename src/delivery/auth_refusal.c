/* auth_refusal.c - the words of a failure report or delay notice when a big receiver
 * (Gmail, Microsoft, Yahoo, iCloud) refused the message because it could not confirm
 * that this server may send for the sender's domain: SPF, DKIM, DMARC, reverse DNS.
 * Written for the user, who cannot fix it in a mail program, to forward to the
 * administrator, who runs `postern dns check DOMAIN` (the same advice as the
 * knowledge base's rules in data/explain.ini; see docs/diagnostics.md). */
#include "delivery/bounce.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wire/enh.h"

enum auth_kind { AUTH_NONE, AUTH_UNAUTHENTICATED, AUTH_SPF, AUTH_DMARC, AUTH_PTR, AUTH_RATE, AUTH_LOCAL_POLICY };

/* The first row that matches decides: an enhanced code's subject.detail (".7.26") or
 * words of the reply (case-insensitive).  DMARC first: Gmail says 5.7.26 for it too.
 * Registry codes by their catalogue id (wire/enh.h, the class digit skipped); the
 * others are the receivers' own codes (Microsoft's 5.7.515 and 5.7.509, Gmail's 5.7.27
 * for SPF, whose registry meaning is a null MX, and 4.7.28), read, never sent. */
static const struct {
	const char *detail;      /* after the class digit, or NULL */
	const char *words;       /* in the reply, or NULL */
	enum auth_kind kind;
} rows[] = {
	{ NULL, "dmarc", AUTH_DMARC },                               /* Gmail, iCloud, Postern's own */
	{ ".7.509", NULL, AUTH_DMARC },                              /* Microsoft */
	{ ".7.515", NULL, AUTH_UNAUTHENTICATED },                    /* Microsoft: authentication level */
	{ &ENH_PERM_AUTH_CHECKS_FAILED[1], NULL, AUTH_UNAUTHENTICATED },   /* Gmail */
	{ NULL, "unauthenticated", AUTH_UNAUTHENTICATED },
	{ ".7.27", NULL, AUTH_SPF },                                 /* Gmail */
	{ &ENH_PERM_SPF_FAILED[1], NULL, AUTH_SPF },                 /* Microsoft, RFC 7372 */
	{ NULL, "sender policy framework", AUTH_SPF },
	{ &ENH_PERM_REVERSE_DNS[1], NULL, AUTH_PTR },                /* RFC 7372: reverse DNS validation failed */
	{ NULL, "ptr record", AUTH_PTR },
	{ ".7.28", NULL, AUTH_RATE },                                /* Gmail: unusual rate, unauthenticated */
	{ NULL, "[tss0", AUTH_RATE },                                /* Yahoo */
	{ NULL, "not accepted for policy reasons", AUTH_UNAUTHENTICATED },   /* Yahoo's 554 */
	{ NULL, "[cs0", AUTH_LOCAL_POLICY },                         /* iCloud */
	{ NULL, "[hm0", AUTH_LOCAL_POLICY },
};

static enum auth_kind classify(const char *enh, const char *reply)
{
	size_t elen = strlen(enh);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].detail && elen > 1 && strcmp(enh + 1, rows[i].detail) == 0)
			return rows[i].kind;
		if (rows[i].words && strcasestr(reply, rows[i].words))
			return rows[i].kind;
	}
	return AUTH_NONE;
}

/* Who refused, from the reply (which names the remote host) or the code. */
static const char *receiver(const char *enh, const char *reply)
{
	if (strcasestr(reply, "google") || strcasestr(reply, "gsmtp") || strcasestr(reply, "gmail"))
		return "Gmail";
	if (strstr(enh, ".7.515") || strstr(enh, ".7.509") || strcasestr(reply, "outlook") || strcasestr(reply, "hotmail"))
		return "Microsoft (Outlook.com, Hotmail)";
	if (strcasestr(reply, "yahoo") || strcasestr(reply, "[tss0") || strcasestr(reply, "aol."))
		return "Yahoo";
	if (strcasestr(reply, "icloud") || strcasestr(reply, "apple") || strcasestr(reply, "[cs0") ||
		strcasestr(reply, "[hm0"))
		return "iCloud";
	return "The receiving server";
}

static void what_happened(enum auth_kind k, const char *who, const char *dom, const char *host, char *out, size_t outsz)
{
	switch (k) {
	case AUTH_DMARC:
		snprintf(out, outsz, "%s refused the message because of the DMARC policy of the sender's domain %s: mail "
			"from %s must be confirmed by its SPF record or by a DKIM signature of %s, and this message was "
			"confirmed by neither. (If you sent it from an address of another provider through this server, send "
			"it through that provider instead.)", who, dom, dom, dom);
		break;
	case AUTH_SPF:
		snprintf(out, outsz, "%s refused the message because the SPF record of %s (the DNS record that lists the "
			"servers allowed to send mail for the domain) is missing or does not list this mail server, %s.",
			who, dom, host);
		break;
	case AUTH_PTR:
		snprintf(out, outsz, "%s refused the message because this mail server's address has no reverse DNS name "
			"(PTR record) matching its name %s. The administrator asks whoever provides the server's address to "
			"set it.", who, host);
		break;
	case AUTH_RATE:
		snprintf(out, outsz, "%s is slowing down mail from this server for now (it saw more mail than usual from "
			"it, or complaints). Postern keeps trying by itself. Mail that SPF, DKIM and DMARC confirm is "
			"slowed down less.", who);
		break;
	case AUTH_LOCAL_POLICY:
		snprintf(out, outsz, "%s refused the message under its local policy, which weighs the sending server's "
			"reputation, the content, and whether SPF, DKIM and DMARC confirm the sender's domain %s.", who, dom);
		break;
	default:
		snprintf(out, outsz, "%s refused the message because it could not confirm that it really comes from %s: "
			"neither SPF (the DNS record listing the servers that may send for the domain) nor DKIM (a signature "
			"whose key is published in DNS) confirmed it. Since 2024 Gmail, Microsoft and Yahoo refuse such "
			"mail.", who, dom);
		break;
	}
}

bool bounce_auth_advice(const char *enh, const char *reply, const char *sender_domain, const char *hostname,
	char *out, size_t outsz)
{
	enh = enh ? enh : "";
	reply = reply ? reply : "";
	bool policy_class = strlen(enh) > 2 && strncmp(enh + 1, ".7.", 3) == 0;
	enum auth_kind k = classify(enh, reply);
	if (!policy_class || k == AUTH_NONE)   /* X.7.X: security or policy status (RFC 3463 §3.8) */
		return false;
	const char *dom = sender_domain && sender_domain[0] ? sender_domain : "your domain";
	char first[900];
	what_happened(k, receiver(enh, reply), dom, hostname, first, sizeof(first));
	snprintf(out, outsz, "%s Nothing in your mail program changes this: forward this report to your mail "
		"administrator. For the administrator: run `postern dns check %s` on %s; it lists each DNS record the "
		"big receivers require (MX, SPF, DKIM, DMARC, reverse DNS), says which is missing or wrong, and prints "
		"the exact record to publish.", first, dom, hostname);
	return true;
}
