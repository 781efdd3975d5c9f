/* probe.c - can the resolver path deliver validatable DNSSEC? (see dns.h)
 *
 * A trust anchor makes libunbound validate every answer (RFC 4035 §5).  Behind a
 * resolver that strips the DNSSEC records (many home routers, some ISP and container
 * resolvers) or that cannot answer for the anchor's zone at all, every answer is then
 * bogus: nothing resolves and all outbound mail waits, for a reason no administrator
 * would guess.  The probe tells that case apart from a path that validates, and from a
 * path that gives no answer at all (no network yet), by asking the one question whose
 * answer the anchor must validate: the DNSKEY records of the anchor's own zone
 * (RFC 4035 §5: validation starts from them). */
#include "dns/dns.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool dns_anchor_zone(const char *path, char *out, size_t outsz)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	for (unsigned lines = 0; !found && lines < 10000 && fgets(line, sizeof(line), f); lines++) {
		/* A record line starts with its owner name; comments, directives ($ORIGIN,
		 * $TTL) and continuation lines (leading blank) do not. */
		if (!line[0] || line[0] == ';' || line[0] == '$' || isspace((unsigned char)line[0]))
			continue;
		size_t n = strcspn(line, " \t\r\n");
		if (n == 0 || n >= outsz)
			continue;
		memcpy(out, line, n);
		out[n] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

static void say_plain(const struct dns_result *plain, const char *zone, char *out, size_t outsz)
{
	if (plain->rcode == DNS_NOERROR && plain->n > 0)
		snprintf(out, outsz, "the resolver gives the DNSKEY records of %s without signatures that validate", zone);
	else if (plain->rcode == DNS_NOERROR)
		snprintf(out, outsz, "the resolver says %s has no DNSKEY records", zone);
	else if (plain->rcode == DNS_SERVFAIL)
		snprintf(out, outsz, "the resolver fails or refuses (SERVFAIL) to give the DNSKEY records of %s", zone);
	else
		snprintf(out, outsz, "the resolver answers %s for the DNSKEY records of %s", dns_rcode_name(plain->rcode), zone);
}

static void ask_plain(const struct dns_options *o, unsigned timeout_ms, const struct dns_result *checked,
	struct dns_dnssec_probe *out)
{
	struct dns_options po = *o;
	po.trust_anchor_file = NULL;
	char err[DNS_ERR_MAX];
	struct dns_resolver *r = dns_resolver_new(&po, err, sizeof(err));
	if (!r) {
		out->path = DNS_DNSSEC_UNDECIDED;
		snprintf(out->reason, sizeof(out->reason), "%s", err);
		return;
	}
	struct dns_result plain;
	dns_lookup_within(r, DNS_DNSKEY, out->zone, timeout_ms, &plain);
	dns_resolver_free(&r);
	/* No answer: nothing says this path cannot do DNSSEC.  SERVFAIL does count as
	 * an answer: the validating question got one in time (a server that is down
	 * gives a timeout there), and libunbound reports a forwarder's REFUSED so. */
	if (plain.rcode == DNS_TIMEOUT || plain.rcode == DNS_RESOLVER_ERROR) {
		out->path = DNS_DNSSEC_UNDECIDED;
		snprintf(out->reason, sizeof(out->reason), "no usable answer for the DNSKEY records of %s (%s%s%s)", out->zone,
			dns_rcode_name(plain.rcode), plain.error[0] ? ": " : "", plain.error);
	} else {
		out->path = DNS_DNSSEC_UNAVAILABLE;
		char said[600];
		say_plain(&plain, out->zone, said, sizeof(said));
		snprintf(out->reason, sizeof(out->reason), "%s%s%s", said, checked->why_bogus[0] ? "; the validator: " : "",
			checked->why_bogus);
	}
	dns_result_free(&plain);
}

void dns_dnssec_probe(const struct dns_options *o, unsigned timeout_ms, struct dns_dnssec_probe *out)
{
	memset(out, 0, sizeof(*out));
	out->path = DNS_DNSSEC_UNDECIDED;
	if (!o->trust_anchor_file || !o->trust_anchor_file[0] ||
			!dns_anchor_zone(o->trust_anchor_file, out->zone, sizeof(out->zone))) {
		snprintf(out->reason, sizeof(out->reason), "no record in the trust anchor file %s",
			o->trust_anchor_file ? o->trust_anchor_file : "(none)");
		return;
	}
	char err[DNS_ERR_MAX];
	struct dns_resolver *r = dns_resolver_new(o, err, sizeof(err));
	if (!r) {
		snprintf(out->reason, sizeof(out->reason), "%s", err);
		return;
	}
	struct dns_result checked;
	dns_lookup_within(r, DNS_DNSKEY, out->zone, timeout_ms, &checked);
	dns_resolver_free(&r);
	if (checked.security == DNS_SECURE && checked.rcode == DNS_NOERROR) {
		out->path = DNS_DNSSEC_VALIDATES;
		snprintf(out->reason, sizeof(out->reason), "the DNSKEY records of %s validate", out->zone);
	} else if (checked.rcode == DNS_TIMEOUT || checked.rcode == DNS_RESOLVER_ERROR) {
		snprintf(out->reason, sizeof(out->reason), "no answer for the DNSKEY records of %s (%s%s%s)", out->zone,
			dns_rcode_name(checked.rcode), checked.error[0] ? ": " : "", checked.error);
	} else {
		/* Bogus (or, oddly, insecure under its own anchor): ask without validation
		 * whether the resolver answers at all, to tell "cannot do DNSSEC" from
		 * "no network". */
		ask_plain(o, timeout_ms, &checked, out);
	}
	dns_result_free(&checked);
}
