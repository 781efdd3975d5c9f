/* dane.c - TLSA lookup and classification for SMTP DANE (see dane.h). */
#include "delivery/dane.h"

#include <stdio.h>
#include <string.h>

#include "dns/dns.h"

bool dane_usable(unsigned usage, unsigned selector, unsigned matching)
{
	/* RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP (no common set of
	 * trusted CAs between MTAs); RFC 6698 §2.1.2-2.1.3 selectors and matching types. */
	return (usage == 2 || usage == 3) && selector <= 1 && matching <= 2;
}

size_t dane_take_usable(const struct net_tlsa *in, size_t n, struct dane_host *out)
{
	out->n = 0;
	for (size_t i = 0; i < n && out->n < DANE_MAX_TLSA; i++) {
		const struct net_tlsa *t = &in[i];
		if (!dane_usable(t->usage, t->selector, t->matching) || t->len == 0 || t->len > DANE_DATA_MAX)
			continue;
		if ((t->matching == 1 && t->len != 32) || (t->matching == 2 && t->len != 64))
			continue;   /* RFC 6698 §2.1.3: a digest of the wrong length matches nothing */
		memcpy(out->data[out->n], t->data, t->len);
		out->tlsa[out->n] = (struct net_tlsa){ .usage = t->usage, .selector = t->selector, .matching = t->matching,
			.data = out->data[out->n], .len = t->len };
		out->n++;
	}
	return out->n;
}

void dane_describe(const struct net_tlsa *t, char *out, size_t outsz)
{
	static const char *const matching[] = { "", "SHA-256 of ", "SHA-512 of " };
	const char *what = t->selector == 1 ? "the public key" : "the certificate";
	if (t->matching == 0)
		snprintf(out, outsz, "usage %u, %s itself", t->usage, what);
	else
		snprintf(out, outsz, "usage %u, %s%s", t->usage, t->matching <= 2 ? matching[t->matching] : "", what);
}

void dane_mismatch_words(const char *host, const struct dane_host *d, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%.255s's certificate does not match its DANE TLSA record%s (", host, d->n > 1 ? "s" : "");
	for (size_t i = 0; i < d->n && n > 0 && (size_t)n < outsz; i++) {
		char one[80];
		dane_describe(&d->tlsa[i], one, sizeof(one));
		n += snprintf(out + n, outsz - (size_t)n, "%s%s", i ? "; " : "", one);
	}
	if (n > 0 && (size_t)n < outsz)
		snprintf(out + n, outsz - (size_t)n, ")");
}

/* The answer from a secure zone: records usable, unusable, or none. */
static enum dane_state classify(const struct dns_result *res, const char *qname, struct dane_host *out)
{
	struct net_tlsa in[DANE_MAX_TLSA];
	size_t k = 0;
	for (size_t i = 0; i < res->n && k < DANE_MAX_TLSA; i++) {
		const struct dns_tlsa *t = &res->rr[i].u.tlsa;
		in[k++] = (struct net_tlsa){ .usage = t->usage, .selector = t->selector, .matching = t->matching,
			.data = t->data, .len = t->len };
	}
	if (res->n + res->malformed == 0)
		return out->state = DANE_NONE;
	if (dane_take_usable(in, k, out) > 0)
		return out->state = DANE_AUTH;
	snprintf(out->why, sizeof(out->why), "the DANE TLSA records at %.280s hold none that Postern can use "
		"(RFC 7672 allows usages 2 and 3): TLS is required, without authentication", qname);
	return out->state = DANE_TLS_ONLY;
}

enum dane_state dane_lookup(struct dns_resolver *r, const char *host, unsigned port, struct dane_host *out)
{
	memset(out, 0, sizeof(*out));
	char qname[DNS_NAME_MAX + 16];
	snprintf(qname, sizeof(qname), "_%u._tcp.%.255s", port, host);
	struct dns_result res;
	dns_lookup(r, DNS_TLSA, qname, &res);
	enum dane_state st;
	if (res.security == DNS_BOGUS) {
		snprintf(out->why, sizeof(out->why), "the DANE TLSA records at %.200s failed DNSSEC validation (%.120s): "
			"Postern does not deliver to %.200s until they validate", qname, res.why_bogus, host);
		st = out->state = DANE_UNUSABLE;
	} else if (res.rcode == DNS_NXDOMAIN) {
		st = out->state = DANE_NONE;   /* no such records */
	} else if (res.rcode != DNS_NOERROR) {
		/* Asked only for a host whose MX and addresses validated: the zone is
		 * signed, and a failed lookup may be an attacker hiding the records. */
		snprintf(out->why, sizeof(out->why), "the DANE TLSA lookup of %.280s failed (%s): the zone is signed, so "
			"Postern waits rather than deliver without DANE", qname, dns_rcode_name(res.rcode));
		st = out->state = DANE_UNUSABLE;
	} else if (res.security != DNS_SECURE) {
		st = out->state = DANE_NONE;   /* RFC 7672 §2.2: insecure TLSA, no DANE */
	} else {
		st = classify(&res, qname, out);
	}
	dns_result_free(&res);
	return st;
}
