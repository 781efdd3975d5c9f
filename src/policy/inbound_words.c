/* inbound_words.c - what the inbound checks found, said three ways: the
 * Authentication-Results field (RFC 8601 §2.7: spf with smtp.mailfrom or smtp.helo,
 * dkim with header.d/s/a/b, dmarc with header.from and the policy in a comment), the
 * quarantine field a mailbox filters on, and the verdict with its plain words
 * ("the message claims to be from example.com, but example.com's DMARC policy says to
 * reject mail that neither SPF nor DKIM confirms; SPF: ...; DKIM: ..."). */
#include "policy/inbound.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "mailauth/authres.h"
#include "mailauth/spf.h"
#include "util/log.h"
#include "wire/enh.h"
#include "util/text.h"

/* --- Authentication-Results ------------------------------------------------------- */

static bool spf_says_why(enum spf_result r)
{
	return r == SPF_FAIL || r == SPF_SOFTFAIL || r == SPF_TEMPERROR || r == SPF_PERMERROR;
}

static void authres_spf(const struct policy_facts *f, struct authres *a)
{
	if (!f->txn.spf_done)
		return;   /* [mailauth] spf = off */
	const struct spf_outcome *s = &f->txn.spf;
	authres_result(a, "spf", spf_result_name(s->result), spf_says_why(s->result) ? s->words : NULL, NULL);
	if (s->identity == SPF_ID_MAILFROM)
		authres_prop(a, "smtp", "mailfrom", s->sender[0] ? s->sender : s->domain);
	else
		authres_prop(a, "smtp", "helo", s->domain);
	if (s->identity == SPF_ID_MAILFROM && s->helo.checked) {
		authres_result(a, "spf", spf_result_name(s->helo.result), NULL, NULL);
		authres_prop(a, "smtp", "helo", s->helo.domain);
	}
}

static void authres_dkim(const struct inbound_check *ck, struct authres *a)
{
	if (ck->n_dkim == 0) {
		authres_result(a, "dkim", "none", NULL, NULL);
		return;
	}
	for (size_t i = 0; i < ck->n_dkim; i++) {
		const struct dkim_outcome *d = &ck->dkim[i];
		authres_result(a, "dkim", dkim_result_name(d->result), d->result == DKIM_PASS ? NULL : d->words, NULL);
		authres_prop(a, "header", "d", d->domain);
		authres_prop(a, "header", "s", d->selector);
		authres_prop(a, "header", "a", d->algorithm);
		authres_prop(a, "header", "b", d->header_b);
	}
}

static void authres_dmarc(const struct inbound_check *ck, struct authres *a)
{
	if (ck->from_fields == 0) {
		authres_result(a, "dmarc", "none", "the message has no From: field", NULL);
		return;
	}
	if (ck->n_from == 0) {
		authres_result(a, "dmarc", "permerror", "no From: field holds a valid address", NULL);
		return;
	}
	for (size_t i = 0; i < ck->n_from; i++) {
		const struct dmarc_outcome *o = &ck->dmarc[i];
		char comment[96] = "";
		if (o->have_policy)
			text_format_cut(comment, sizeof(comment), "%s=%s dis=%s%s", o->policy_is_sp ? "sp" : "p", dmarc_policy_name(o->policy),
				o->result == DMARC_RESULT_PASS ? "none" : dmarc_policy_name(o->disposition),
				o->rec.pct < 100 ? (o->sampled_out ? " pct: sampled out" : " pct: sampled") : "");
		bool why = o->result != DMARC_RESULT_PASS && o->result != DMARC_RESULT_FAIL;
		authres_result(a, "dmarc", dmarc_result_name(o->result), why ? o->words : NULL, comment);
		authres_prop(a, "header", "from", o->from_domain);
	}
	if (ck->from_too_many)
		authres_result(a, "dmarc", "permerror", "more From: domains than are checked", NULL);
}

void inbound_authres(const char *authserv_id, const struct policy_facts *f, const struct inbound_check *ck,
	struct authres *a)
{
	authres_begin(a, authserv_id);
	authres_spf(f, a);
	authres_dkim(ck, a);
	authres_dmarc(ck, a);
}

/* --- the verdict -------------------------------------------------------------------- */

enum action { ACT_DELIVER, ACT_QUARANTINE, ACT_TEMPORARY, ACT_REJECT };

static enum action action_for(const struct conf *c, const struct dmarc_outcome *o)
{
	if (o->result == DMARC_RESULT_TEMPERROR)
		/* A policy that asks for nothing cannot be broken by waiting; otherwise (or
		 * when the record itself did not come) ask the sender to try again. */
		return o->have_policy && o->policy == DMARC_P_NONE ? ACT_DELIVER : ACT_TEMPORARY;
	if (o->result != DMARC_RESULT_FAIL)
		return ACT_DELIVER;
	if (o->disposition == DMARC_P_REJECT)
		return c->dmarc_reject ? ACT_REJECT : ACT_QUARANTINE;
	return o->disposition == DMARC_P_QUARANTINE ? ACT_QUARANTINE : ACT_DELIVER;
}

/* "example.com's DMARC policy", or for a subdomain under the organisational domain's
 * sp=: "the DMARC policy of example.com for its subdomains". */
static void whose_policy(const struct dmarc_outcome *o, char *out, size_t outsz)
{
	if (o->policy_is_sp)
		text_format_cut(out, outsz, "the DMARC policy of %s for its subdomains", o->record_domain);
	else
		text_format_cut(out, outsz, "%s's DMARC policy", o->record_domain);
}

static void reject_verdict(const struct dmarc_outcome *o, struct verdict *v)
{
	char whose[DMARC_DOMAIN_MAX + 48], reason[VERDICT_REASON_MAX], hint[VERDICT_HINT_MAX];
	whose_policy(o, whose, sizeof(whose));
	text_format_cut(reason, sizeof(reason), "the message claims to be from %s, but %s says to reject mail that neither SPF "
		"nor DKIM confirms; SPF: %s; DKIM: %s", o->from_domain, whose, o->spf_words, o->dkim_words);
	text_format_cut(hint, sizeof(hint), "If the message is genuine, the administrator of %s must list the sending server in "
		"the domain's SPF record or have it sign with DKIM as %s (a forwarder must keep the signature intact)",
		o->org_domain, o->from_domain);
	verdict_set(v, VERDICT_PERM, 550, ENH_PERM_NOT_AUTHORIZED, CAUSE_SENDER_UNAUTHENTICATED, reason, hint);
}

/* RFC 3463 X.4.3 (directory server failure: the DNS is the directory here), as for
 * every DNS time-out in Postern; RFC 7372's X.7.2x codes name authentication results,
 * and a check that did not finish has none. */
static void temporary_verdict(const struct dmarc_outcome *o, struct verdict *v)
{
	char reason[VERDICT_REASON_MAX];
	text_format_cut(reason, sizeof(reason), "temporary failure: the DMARC check of %s could not finish: %s", o->from_domain,
		o->words);
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_DIRECTORY_SERVER, CAUSE_AUTH_CHECK_TEMPFAIL, reason,
		"Your mail server will try again later; if this lasts, the DNS servers of the sender's domain are not answering");
}

/* Text from mail in a field value: printable, bounded. */
static void field_safe(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void add_quarantine_field(const struct conf *c, struct policy_facts *f, const struct dmarc_outcome *o)
{
	if (!c->dmarc_quarantine_header[0])
		return;
	char whose[DMARC_DOMAIN_MAX + 48], field[1000];
	whose_policy(o, whose, sizeof(whose));
	text_format_cut(field, sizeof(field), "%s: dmarc; %s asks %s mail that neither SPF nor DKIM confirms (SPF: %s; DKIM: %s)",
		c->dmarc_quarantine_header, whose,
		o->disposition == DMARC_P_REJECT ? "to reject (delivered as quarantined by this server's setting)" : "to quarantine",
		o->spf_words, o->dkim_words);
	field_safe(field);
	if (!policy_facts_add_header(f, field))
		log_event(LOG_WARN, "header_not_added", "conn=%llu field=%s", f->conn_id, c->dmarc_quarantine_header);
}

void inbound_unavailable(struct verdict *v)
{
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_SYSTEM, CAUSE_AUTH_CHECK_TEMPFAIL,
		"temporary failure: the message could not be checked (DKIM and DMARC): the spool file or the DNS resolver "
		"could not be opened", "Your mail server will try again later");
}

void inbound_decide(const struct conf *c, struct policy_facts *f, const struct inbound_check *ck, struct verdict *v)
{
	struct authres a;
	inbound_authres(conf_authserv_id(c), f, ck, &a);
	if (!policy_facts_add_header(f, authres_field(&a)))
		log_event(LOG_WARN, "header_not_added", "conn=%llu field=Authentication-Results", f->conn_id);
	enum action worst = ACT_DELIVER;
	const struct dmarc_outcome *why = NULL;
	for (size_t i = 0; i < ck->n_from; i++) {
		const struct dmarc_outcome *o = &ck->dmarc[i];
		enum action act = action_for(c, o);
		if (!why || act > worst) {
			worst = act;
			why = o;
		}
		char q[300];
		log_event(LOG_INFO, "dmarc", "conn=%llu from_domain=%s result=%s policy=%s disposition=%s spf_aligned=%d "
			"dkim_aligned=%d", f->conn_id, log_quote(q, sizeof(q), o->from_domain, strlen(o->from_domain), 256),
			dmarc_result_name(o->result), o->have_policy ? dmarc_policy_name(o->policy) : "-",
			dmarc_policy_name(o->disposition), o->spf_aligned, o->dkim_aligned);
	}
	if (worst == ACT_REJECT)
		reject_verdict(why, v);
	else if (worst == ACT_TEMPORARY)
		temporary_verdict(why, v);
	else if (worst == ACT_QUARANTINE)
		add_quarantine_field(c, f, why);
}
