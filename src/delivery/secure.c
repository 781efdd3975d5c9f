/* secure.c - the security regime of each MX connection and its words (see secure.h). */
#include "delivery/secure.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "delivery/mx.h"
#include "util/log.h"
#include "wire/enh.h"

void secure_sts_lookup(const struct sts_context *cx, const char *qid, const char *domain, struct sts_found *out)
{
	sts_policy_for(cx, domain, time(NULL), out);
	char note[420];
	log_quote(note, sizeof(note), out->note, strlen(out->note), 400);
	if (out->have)
		log_event(LOG_INFO, "mta_sts", "qid=%s domain=%s mode=%s id=%s source=%s mx_patterns=%zu note=%s", qid, domain,
			sts_mode_name(out->policy.mode), out->id, out->source, out->policy.n_mx, note);
	else if (out->note[0] && strcmp(out->note, "no MTA-STS record") != 0)
		log_event(LOG_WARN, "mta_sts", "qid=%s domain=%s mode=none result=no_policy note=%s", qid, domain, note);
}

static void plan_sts(struct host_plan *p, const struct conf *c)
{
	const struct sts_found *s = p->sts;
	if (!s || !s->have || s->policy.mode == STS_MODE_NONE)
		return;
	p->sts_mx_ok = sts_mx_matches(&s->policy, p->host);
	/* RFC 8461 §4.2: the certificate must be valid for the MX host name, chained to
	 * a trusted root (the system's, plus tls_ca_file). */
	p->tp.require_verified = s->policy.mode == STS_MODE_ENFORCE;
	p->tp.ca_file = c->tls_ca_file[0] ? c->tls_ca_file : NULL;
	if (s->policy.mode == STS_MODE_TESTING) {
		p->sec = HOST_SEC_STS_TESTING;   /* §5: deliver as before, report failures */
		return;
	}
	p->sec = HOST_SEC_STS_ENFORCE;
	p->tls = SMTP_TLS_REQUIRE;
	if (!p->sts_mx_ok) {
		char pats[300] = "";
		for (size_t i = 0; i < s->policy.n_mx && strlen(pats) < 200; i++)
			snprintf(pats + strlen(pats), sizeof(pats) - strlen(pats), "%s%s", i ? ", " : "", s->policy.mx[i]);
		int n = snprintf(p->skip, sizeof(p->skip), "%.200s publishes an MTA-STS policy in enforce mode that names its "
			"mail servers as %s; %.200s is not one of them, so Postern does not deliver to it (RFC 8461 §4.1)",
			p->domain, pats, p->host);
		if (n < 0 || (size_t)n >= sizeof(p->skip))   /* cut short: the start says what matters */
			p->skip[sizeof(p->skip) - 1] = '\0';
		snprintf(p->skip_enh, sizeof(p->skip_enh), "%s", ENH_TEMP_CRYPTO_FAILURE);
	}
}

bool secure_plan(const struct conf *c, struct dns_resolver *r, const char *qid, const char *domain,
	const struct mx_host *h, bool mx_secure, const struct sts_found *sts, struct dane_host *dane,
	struct host_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->sec = HOST_SEC_OPPORTUNISTIC;
	p->tls = SMTP_TLS_OPPORTUNISTIC;
	p->host = h->name;
	p->domain = domain;
	p->qid = qid;
	p->sts = sts;
	p->names[0] = domain;
	p->tp.name = h->name;
	p->tp.more_names = p->names;
	p->tp.n_more_names = strcmp(domain, h->name) != 0;
	/* RFC 7672 §2.2: TLSA records count only below a secure MX and secure addresses. */
	if (c->dane && r && mx_secure && h->addrs_secure) {
		enum dane_state st = dane_lookup(r, h->name, (unsigned)c->remote_port, dane);
		p->dane = dane;
		if (st == DANE_UNUSABLE) {
			log_event(LOG_WARN, "dane", "qid=%s host=%s result=unusable reason=\"%s\"", qid, h->name, dane->why);
			snprintf(p->skip, sizeof(p->skip), "%s", dane->why);
			snprintf(p->skip_enh, sizeof(p->skip_enh), "%s", ENH_TEMP_CRYPTO_FAILURE);
			return false;
		}
		if (st == DANE_AUTH || st == DANE_TLS_ONLY) {
			p->sec = st == DANE_AUTH ? HOST_SEC_DANE : HOST_SEC_DANE_TLS_ONLY;
			p->tls = SMTP_TLS_REQUIRE;
			p->tp.tlsa = st == DANE_AUTH ? dane->tlsa : NULL;
			p->tp.n_tlsa = st == DANE_AUTH ? dane->n : 0;
			p->tp.require_verified = st == DANE_AUTH;
			return true;   /* RFC 8461 §2: DANE first, MTA-STS is not consulted */
		}
	}
	plan_sts(p, c);
	return p->skip[0] == '\0';
}

/* "mx.example.com offered no STARTTLS", "TLS with mx.example.com failed: ..." */
static void what_failed(const struct host_plan *p, enum smtp_open_step step, const char *err, char *out, size_t outsz)
{
	if (step == SMTP_STEP_NO_STARTTLS)
		snprintf(out, outsz, "%.255s offered no STARTTLS", p->host);
	else if (step == SMTP_STEP_TLS_AUTH)
		snprintf(out, outsz, "%.200s's certificate is not valid for that name (%.150s)", p->host, p->tp.auth_error);
	else
		snprintf(out, outsz, "TLS with %.255s failed: %.250s", p->host, err);
}

bool secure_failure(const struct host_plan *p, enum smtp_open_step step, const char *err, char *words, size_t wsz,
	char *enh, size_t enhsz)
{
	bool tls_step = step == SMTP_STEP_NO_STARTTLS || step == SMTP_STEP_STARTTLS || step == SMTP_STEP_TLS_AUTH;
	if (!tls_step || p->sec == HOST_SEC_OPPORTUNISTIC || p->sec == HOST_SEC_STS_TESTING)
		return false;
	char what[600];
	what_failed(p, step, err, what, sizeof(what));
	/* RFC 3463: X.7.10 encryption needed; X.7.5 cryptographic failure. */
	snprintf(enh, enhsz, "%s", step == SMTP_STEP_NO_STARTTLS ? ENH_TEMP_ENCRYPTION_NEEDED : ENH_TEMP_CRYPTO_FAILURE);
	if (p->sec == HOST_SEC_DANE && step == SMTP_STEP_TLS_AUTH)
		dane_mismatch_words(p->host, p->dane, words, wsz);
	else if (p->sec == HOST_SEC_DANE || p->sec == HOST_SEC_DANE_TLS_ONLY)
		snprintf(words, wsz, "%.255s publishes DANE TLSA records, so TLS is required; %.400s", p->host, what);
	else
		snprintf(words, wsz, "%.200s publishes an MTA-STS policy in enforce mode; %.450s", p->domain, what);
	log_event(LOG_WARN, p->sec == HOST_SEC_STS_ENFORCE ? "mta_sts" : "dane", "qid=%s domain=%s host=%s result=failed reason=\"%s\"",
		p->qid, p->domain, p->host, words);
	return true;
}

void secure_opened(const struct host_plan *p, struct net_client *conn)
{
	if (p->sec == HOST_SEC_DANE) {
		char rec[80] = "";
		if (p->tp.dane_matched >= 0)
			dane_describe(&p->dane->tlsa[p->tp.dane_matched], rec, sizeof(rec));
		log_event(LOG_INFO, "dane", "qid=%s host=%s result=authenticated record=\"%s\"", p->qid, p->host, rec);
	} else if (p->sec == HOST_SEC_DANE_TLS_ONLY) {
		log_event(LOG_INFO, "dane", "qid=%s host=%s result=encrypted_only reason=\"%s\"", p->qid, p->host, p->dane->why);
	} else if (p->sec == HOST_SEC_STS_ENFORCE) {
		log_event(LOG_INFO, "mta_sts", "qid=%s domain=%s host=%s mode=enforce result=verified", p->qid, p->domain, p->host);
	} else if (p->sec == HOST_SEC_STS_TESTING) {
		char why[600] = "";
		if (!p->sts_mx_ok)
			snprintf(why, sizeof(why), "%.255s is not named by the policy's mx lines", p->host);
		else if (!net_client_is_tls(conn))
			snprintf(why, sizeof(why), "%.255s offered no STARTTLS", p->host);
		else if (!net_client_tls_verified(conn))
			snprintf(why, sizeof(why), "%.200s's certificate is not valid for that name (%.150s)", p->host,
				p->tp.auth_error);
		/* RFC 8461 §5: testing mode delivers anyway; the failure is reported. */
		log_event(why[0] ? LOG_WARN : LOG_INFO, "mta_sts", "qid=%s domain=%s host=%s mode=testing result=%s reason=\"%s\"",
			p->qid, p->domain, p->host, why[0] ? "would_fail" : "verified", why);
	}
}
