/* dmarc.c - DMARC evaluation (RFC 7489): the organisational domain from the public
 * suffix list (libpsl, Debian's publicsuffix data), identifier alignment, policy
 * discovery in the DNS and the result for one author domain.  The record parser is
 * dmarc_record.c. */
#include "mailauth/dmarc.h"

#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"

/* --- the public suffix list ------------------------------------------------------- */

static const psl_ctx_t *psl;
static char psl_error[128];
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

/* psl_latest picks the newer of the list compiled into libpsl and the system's file
 * (/usr/share/publicsuffix, kept current by the publicsuffix package).  Loaded once;
 * read-only afterwards, so every thread may use it. */
static void psl_load(void)
{
	psl = psl_latest(NULL);
	if (!psl)
		psl = psl_builtin();
	if (!psl)
		snprintf(psl_error, sizeof(psl_error), "the public suffix list could not be loaded (install publicsuffix)");
}

const char *dmarc_psl_error(void)
{
	pthread_once(&psl_once, psl_load);
	return psl_error;
}

/* Lower case, no trailing dot; false when empty or too long. */
static bool normalise(const char *in, char *out, size_t outsz)
{
	size_t n = in ? strlen(in) : 0;
	while (n && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= outsz)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return true;
}

bool dmarc_org_domain(const char *domain, char *out, size_t outsz)
{
	char d[DMARC_DOMAIN_MAX];
	if (!normalise(domain, d, sizeof(d)) || outsz == 0)
		return false;
	pthread_once(&psl_once, psl_load);
	if (!psl)
		return false;
	/* RFC 7489 §3.2: the public suffix plus one label; a name that is itself a
	 * public suffix (co.uk) has no registrable part and stands for itself. */
	const char *reg = psl_registrable_domain(psl, d);
	const char *org = reg ? reg : d;
	if (strlen(org) >= outsz)
		return false;
	strcpy(out, org);
	return true;
}

bool dmarc_aligned(const char *from_domain, const char *auth_domain, enum dmarc_align mode)
{
	char a[DMARC_DOMAIN_MAX], b[DMARC_DOMAIN_MAX];
	if (!normalise(from_domain, a, sizeof(a)) || !normalise(auth_domain, b, sizeof(b)))
		return false;
	if (strcmp(a, b) == 0)
		return true;
	if (mode == DMARC_STRICT)
		return false;
	char oa[DMARC_DOMAIN_MAX], ob[DMARC_DOMAIN_MAX];
	return dmarc_org_domain(a, oa, sizeof(oa)) && dmarc_org_domain(b, ob, sizeof(ob)) && strcmp(oa, ob) == 0;
}

const char *dmarc_result_name(enum dmarc_result r)
{
	static const char *const names[] = { "none", "pass", "fail", "temperror", "permerror" };
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "none";
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? "reject" : p == DMARC_P_QUARANTINE ? "quarantine" : "none";
}

/* --- discovery (§6.6.3) ---------------------------------------------------------- */

enum found { FOUND_RECORD, FOUND_NONE, FOUND_TEMP, FOUND_UNUSABLE };

/* The DMARC records at _dmarc.<domain>: exactly one that begins with v=DMARC1 is a
 * policy (steps 1, 2 and 5); several, or one whose tag list is broken, is none that
 * can be applied. */
static enum found lookup_at(const struct dmarc_dns *dns, const char *domain, struct dmarc_record *rec,
	char *why, size_t whysz)
{
	char name[DMARC_DOMAIN_MAX + 8];
	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >= sizeof(name)) {
		snprintf(why, whysz, "the name _dmarc.%s is too long", domain);
		return FOUND_UNUSABLE;
	}
	struct dns_result res;
	memset(&res, 0, sizeof(res));
	dns->txt(dns->ctx, name, &res);
	enum found f = FOUND_NONE;
	if (res.rcode == DNS_NXDOMAIN) {
		f = FOUND_NONE;
	} else if (res.rcode != DNS_NOERROR) {
		snprintf(why, whysz, "the DNS lookup of %s failed (%s)", name, dns_rcode_name(res.rcode));
		f = FOUND_TEMP;
	} else {
		size_t dmarc = 0;
		enum dmarc_parse st = DMARC_PARSE_NOT_DMARC;
		char w[160] = "";
		for (size_t i = 0; i < res.n; i++) {
			struct dmarc_record r;
			char wi[160];
			enum dmarc_parse p = dmarc_record_parse(res.rr[i].u.txt.text, res.rr[i].u.txt.len, &r, wi, sizeof(wi));
			if (p == DMARC_PARSE_NOT_DMARC)
				continue;
			if (dmarc++ == 0) {
				st = p;
				*rec = r;
				snprintf(w, sizeof(w), "%s", wi);
			}
		}
		if (dmarc > 1) {
			snprintf(why, whysz, "%s has %zu DMARC records; one is allowed", name, dmarc);
			f = FOUND_UNUSABLE;
		} else if (dmarc == 1 && st == DMARC_PARSE_BAD) {
			snprintf(why, whysz, "the DMARC record at %s is not valid: %s", name, w);
			f = FOUND_UNUSABLE;
		} else if (dmarc == 1) {
			f = FOUND_RECORD;
		}
	}
	dns_result_free(&res);
	return f;
}

/* Steps 1-6: the record that applies to the author domain, and which policy in it. */
static void discover(const struct dmarc_dns *dns, struct dmarc_outcome *o)
{
	enum found f = lookup_at(dns, o->from_domain, &o->rec, o->words, sizeof(o->words));
	const char *at = o->from_domain;
	if (f == FOUND_NONE && strcmp(o->org_domain, o->from_domain) != 0) {
		f = lookup_at(dns, o->org_domain, &o->rec, o->words, sizeof(o->words));
		at = o->org_domain;
	}
	if (f == FOUND_TEMP) {
		o->result = DMARC_RESULT_TEMPERROR;
		return;
	}
	if (f == FOUND_UNUSABLE) {
		o->result = DMARC_RESULT_PERMERROR;
		return;
	}
	if (f == FOUND_NONE) {
		snprintf(o->words, sizeof(o->words), "%s publishes no DMARC policy", o->from_domain);
		return;
	}
	snprintf(o->record_domain, sizeof(o->record_domain), "%s", at);
	bool subdomain = at != o->from_domain;
	struct dmarc_record *r = &o->rec;
	if (!r->p_valid || (r->sp_set && !r->sp_valid)) {
		/* Step 6: with a valid rua, act as p=none; otherwise no DMARC processing. */
		if (!r->rua_valid) {
			snprintf(o->words, sizeof(o->words), "the DMARC record at _dmarc.%s has no valid %s", at,
				r->p_valid ? "sp=" : "p=");
			o->result = DMARC_RESULT_PERMERROR;
			return;
		}
		r->p = DMARC_P_NONE;
		r->p_valid = true;
		r->sp_set = false;
	}
	o->have_policy = true;
	o->policy_is_sp = subdomain && r->sp_set;
	o->policy = o->policy_is_sp ? r->sp : r->p;
}

/* --- evaluation (§6.6.2, §6.6.4) ------------------------------------------------- */

static void spf_words(const struct dmarc_check *c, struct dmarc_outcome *o)
{
	const char *d = c->spf_domain && c->spf_domain[0] ? c->spf_domain : NULL;
	if (!d)
		snprintf(o->spf_words, sizeof(o->spf_words), "no result");
	else if (c->spf_pass && o->spf_aligned)
		snprintf(o->spf_words, sizeof(o->spf_words), "pass for %s", d);
	else if (c->spf_pass)
		snprintf(o->spf_words, sizeof(o->spf_words), "passed for %s, which is not %s", d, o->from_domain);
	else if (c->spf_words && c->spf_words[0])
		snprintf(o->spf_words, sizeof(o->spf_words), "%s", c->spf_words);
	else
		snprintf(o->spf_words, sizeof(o->spf_words), "%s was not confirmed", d);
}

static void dkim_words(const struct dmarc_check *c, struct dmarc_outcome *o)
{
	if (c->n_dkim == 0) {
		snprintf(o->dkim_words, sizeof(o->dkim_words), "no signature");
		return;
	}
	if (o->dkim_aligned) {
		snprintf(o->dkim_words, sizeof(o->dkim_words), "pass for %s", o->dkim_domain);
		return;
	}
	/* The first signature that failed says most; else one that passed unaligned. */
	const struct dmarc_dkim_sig *unaligned = NULL;
	for (size_t i = 0; i < c->n_dkim; i++) {
		const struct dmarc_dkim_sig *s = &c->dkim[i];
		if (s->pass) {
			if (!unaligned)
				unaligned = s;
			continue;
		}
		snprintf(o->dkim_words, sizeof(o->dkim_words), "the signature of %s did not verify: %s",
			s->d && s->d[0] ? s->d : "an unnamed domain", s->words && s->words[0] ? s->words : "no reason given");
		return;
	}
	snprintf(o->dkim_words, sizeof(o->dkim_words), "signed by %s, which is not %s",
		unaligned && unaligned->d ? unaligned->d : "?", o->from_domain);
}

static void align(const struct dmarc_check *c, struct dmarc_outcome *o, bool *maybe_later)
{
	const struct dmarc_record *r = &o->rec;
	*maybe_later = false;
	if (c->spf_domain && c->spf_domain[0] && dmarc_aligned(o->from_domain, c->spf_domain, r->aspf)) {
		o->spf_aligned = c->spf_pass;
		*maybe_later |= c->spf_temperror;
	}
	for (size_t i = 0; i < c->n_dkim; i++) {
		const struct dmarc_dkim_sig *s = &c->dkim[i];
		if (!s->d || !dmarc_aligned(o->from_domain, s->d, r->adkim))
			continue;
		*maybe_later |= s->temperror;
		if (s->pass && !o->dkim_aligned) {
			o->dkim_aligned = true;
			snprintf(o->dkim_domain, sizeof(o->dkim_domain), "%s", s->d);
		}
	}
}

void dmarc_evaluate(const struct dmarc_dns *dns, const struct dmarc_check *c, struct dmarc_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->result = DMARC_RESULT_NONE;
	if (!normalise(c->from_domain, o->from_domain, sizeof(o->from_domain))) {
		snprintf(o->words, sizeof(o->words), "the message has no usable From: domain");
		o->result = DMARC_RESULT_PERMERROR;
		return;
	}
	if (!dmarc_org_domain(o->from_domain, o->org_domain, sizeof(o->org_domain)))
		snprintf(o->org_domain, sizeof(o->org_domain), "%s", o->from_domain);   /* no list: strict only */
	discover(dns, o);
	bool maybe_later = false;
	if (o->have_policy)
		align(c, o, &maybe_later);
	spf_words(c, o);
	dkim_words(c, o);
	if (!o->have_policy)
		return;
	if (o->spf_aligned || o->dkim_aligned) {
		o->result = DMARC_RESULT_PASS;
		o->disposition = DMARC_P_NONE;
		return;
	}
	/* Neither confirmed the author domain.  A check that could not finish for an
	 * aligned identifier may still pass later: temporary, never a failure. */
	o->result = maybe_later ? DMARC_RESULT_TEMPERROR : DMARC_RESULT_FAIL;
	o->disposition = o->policy;
	if (o->rec.pct < 100 && c->sample >= o->rec.pct && o->policy != DMARC_P_NONE) {
		/* §6.6.4: a message outside the sample gets the next policy down. */
		o->sampled_out = true;
		o->disposition = o->policy == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
	}
	if (maybe_later)
		snprintf(o->words, sizeof(o->words), "a check for %s could not finish (the DNS did not answer)", o->from_domain);
}
