/* spf.c - check_host() (RFC 7208 §4): fetch and select the record (§4.4, §4.5),
 * evaluate its mechanisms in order (§4.6.2, §5), follow include (§5.2) and redirect
 * (§6.1), count what §4.6.4 limits, and fetch the explanation of a fail (§6.2).
 * The identities and the words of the outcome are in spf_check.c. */
#include "mailauth/spf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- DNS ------------------------------------------------------------------------- */

/* §4.3 / §4.6.4 (pyspf does the same): a name with an empty label or a label over
 * 63 octets is not asked for; it has no records. */
static bool name_ok(const char *name)
{
	size_t lab = 0, n = strlen(name);
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (name[i] == '.' || name[i] == '\0') {
			if (lab == 0 || lab > 63)
				return false;
			lab = 0;
		} else
			lab++;
	}
	return true;
}

enum lookup_outcome spf_lookup(struct spf_eval *e, enum dns_type type, const char *name, struct dns_result *res)
{
	memset(res, 0, sizeof(*res));
	res->type = type;
	if (!name_ok(name))
		return LOOKUP_VOID;
	uint64_t now = now_ms();
	if (now >= e->deadline) {
		snprintf(e->why, sizeof(e->why), "no time was left to look up %s %s (the check may take %u seconds)",
			dns_type_name(type), name, e->timeout_ms / 1000);
		return LOOKUP_ERROR;
	}
	/* Macros can put any octet into a name (§7.3, "%_" is a space): presentation
	 * form escapes what is not a letter, digit, '-', '_' or '.' (RFC 1035 §5.1). */
	char wire_name[4 * 256];
	size_t o = 0;
	for (const char *p = name; *p && o + 5 < sizeof(wire_name); p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.", ch))
			wire_name[o++] = (char)ch;
		else
			o += (size_t)snprintf(wire_name + o, sizeof(wire_name) - o, "\\%03u", ch);
	}
	wire_name[o] = '\0';
	e->dns->lookup(e->dns->ctx, type, wire_name, (unsigned)(e->deadline - now), res);
	switch (res->rcode) {
	case DNS_NOERROR:
		return res->n > 0 ? LOOKUP_OK : LOOKUP_VOID;
	case DNS_NXDOMAIN:
		return LOOKUP_VOID;
	case DNS_TIMEOUT:
		snprintf(e->why, sizeof(e->why), "the DNS lookup of %s %s timed out", dns_type_name(type), name);
		break;
	default:
		snprintf(e->why, sizeof(e->why), "the DNS lookup of %s %s failed (%s)", dns_type_name(type), name,
			dns_rcode_name(res->rcode));
		break;
	}
	dns_result_free(res);
	return LOOKUP_ERROR;
}

/* §4.6.4: "SPF implementations SHOULD limit void lookups to two.  An implementation
 * MAY choose to make such a limit configurable.  In this case, a default of two is
 * RECOMMENDED.  Exceeding the limit produces a permerror result." */
static bool count_void(struct spf_eval *e, const char *name)
{
	if (++e->voids <= SPF_VOID_MAX)
		return true;
	snprintf(e->why, sizeof(e->why), "more than %d DNS lookups found nothing (the last: %s; RFC 7208 section 4.6.4)",
		SPF_VOID_MAX, name);
	return false;
}

/* §4.6.4: include, a, mx, ptr, exists and redirect count; at most 10. */
static bool count_term(struct spf_eval *e)
{
	if (++e->terms <= SPF_DNS_TERMS_MAX)
		return true;
	snprintf(e->why, sizeof(e->why), "more than %d DNS-querying terms (RFC 7208 section 4.6.4)", SPF_DNS_TERMS_MAX);
	return false;
}

/* --- matching -------------------------------------------------------------------- */

static bool prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static bool addr_matches(const struct spf_eval *e, const struct dns_addr *a, int cidr4, int cidr6)
{
	if (a->family != e->family)
		return false;
	return prefix_match(e->ip, a->bytes, e->family == AF_INET6 ? cidr6 : cidr4);
}

/* The A or AAAA records of name (after the client's family) against the client. */
static enum match_outcome match_addresses(struct spf_eval *e, const char *name, int cidr4, int cidr6,
	bool void_counts)
{
	struct dns_result res;
	enum lookup_outcome lo = spf_lookup(e, e->family == AF_INET6 ? DNS_AAAA : DNS_A, name, &res);
	if (lo == LOOKUP_ERROR)
		return MATCH_TEMPERROR;
	if (lo == LOOKUP_VOID) {
		dns_result_free(&res);
		return void_counts && !count_void(e, name) ? MATCH_PERMERROR : MATCH_NO;
	}
	bool hit = false;
	for (size_t i = 0; i < res.n && !hit; i++)
		hit = addr_matches(e, &res.rr[i].u.addr, cidr4, cidr6);
	dns_result_free(&res);
	return hit ? MATCH_YES : MATCH_NO;
}

/* §5.4 mx: the exchanges' addresses; more than 10 exchanges is a permerror. */
static enum match_outcome match_mx(struct spf_eval *e, const char *name, int cidr4, int cidr6)
{
	struct dns_result res;
	enum lookup_outcome lo = spf_lookup(e, DNS_MX, name, &res);
	if (lo == LOOKUP_ERROR)
		return MATCH_TEMPERROR;
	if (lo == LOOKUP_VOID) {
		dns_result_free(&res);
		return count_void(e, name) ? MATCH_NO : MATCH_PERMERROR;
	}
	if (res.n > SPF_MX_MAX) {
		snprintf(e->why, sizeof(e->why), "%s has %zu MX records; at most %d may be looked up (RFC 7208 section 4.6.4)",
			name, res.n, SPF_MX_MAX);
		dns_result_free(&res);
		return MATCH_PERMERROR;
	}
	enum match_outcome m = MATCH_NO;
	for (size_t i = 0; i < res.n && m == MATCH_NO; i++) {
		const char *ex = res.rr[i].u.mx.exchange;
		if (strcmp(ex, ".") == 0)
			continue;   /* RFC 7505 null MX: no host */
		m = match_addresses(e, ex, cidr4, cidr6, true);
	}
	dns_result_free(&res);
	return m;
}

/* The reverse name of the client (RFC 1035 §3.5, RFC 3596 §2.5). */
static void reverse_name(const struct spf_eval *e, char *out, size_t outsz)
{
	size_t o = 0;
	if (e->family == AF_INET) {
		snprintf(out, outsz, "%u.%u.%u.%u.in-addr.arpa", e->ip[3], e->ip[2], e->ip[1], e->ip[0]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0 && o + 4 < outsz; i--) {
		out[o++] = hex[e->ip[i] & 15], out[o++] = '.';
		out[o++] = hex[e->ip[i] >> 4], out[o++] = '.';
	}
	snprintf(out + o, outsz - o, "ip6.arpa");
}

/* §5.5: the PTR names of the client whose own addresses include the client, at
 * most 10 names looked up (errors on a name: that name is skipped).  Once per check. */
static void validate_names(struct spf_eval *e)
{
	if (e->ptr_done)
		return;
	e->ptr_done = true;
	char rev[80];
	reverse_name(e, rev, sizeof(rev));
	struct dns_result res;
	enum lookup_outcome lo = spf_lookup(e, DNS_PTR, rev, &res);
	if (lo != LOOKUP_OK) {
		if (lo == LOOKUP_VOID) {
			dns_result_free(&res);
			e->ptr_void = true;
		}
		return;
	}
	for (size_t i = 0; i < res.n && i < SPF_PTR_MAX && e->n_validated < SPF_PTR_MAX; i++) {
		const char *name = res.rr[i].u.name;
		struct dns_result ar;
		if (spf_lookup(e, e->family == AF_INET6 ? DNS_AAAA : DNS_A, name, &ar) != LOOKUP_OK) {
			dns_result_free(&ar);
			continue;
		}
		for (size_t k = 0; k < ar.n; k++)
			if (addr_matches(e, &ar.rr[k].u.addr, e->family == AF_INET ? 32 : 0, 128)) {
				snprintf(e->validated[e->n_validated++], SPF_DOMAIN_MAX, "%s", name);
				break;
			}
		dns_result_free(&ar);
	}
	dns_result_free(&res);
}

/* name equals domain or is a subdomain of it (case-insensitive). */
static bool within(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);
	if (n < d || strcasecmp(name + n - d, domain) != 0)
		return false;
	return n == d || name[n - d - 1] == '.';
}

static enum match_outcome match_ptr(struct spf_eval *e, const char *target)
{
	validate_names(e);
	if (e->ptr_void && !e->ptr_void_counted) {
		e->ptr_void_counted = true;
		if (!count_void(e, "the client's PTR name"))
			return MATCH_PERMERROR;
	}
	for (size_t i = 0; i < e->n_validated; i++)
		if (within(e->validated[i], target))
			return MATCH_YES;
	return MATCH_NO;
}

/* §7.3 %{p}: a validated name equal to the domain, else one within it, else any. */
const char *spf_validated_name(void *ctx, const char *domain)
{
	struct spf_eval *e = ctx;
	validate_names(e);
	for (size_t i = 0; i < e->n_validated; i++)
		if (strcasecmp(e->validated[i], domain) == 0)
			return e->validated[i];
	for (size_t i = 0; i < e->n_validated; i++)
		if (within(e->validated[i], domain))
			return e->validated[i];
	return e->n_validated ? e->validated[0] : "unknown";
}

static enum match_outcome match_exists(struct spf_eval *e, const char *name)
{
	/* §5.7: an A query whatever the client's family. */
	struct dns_result res;
	enum lookup_outcome lo = spf_lookup(e, DNS_A, name, &res);
	dns_result_free(&res);
	if (lo == LOOKUP_ERROR)
		return MATCH_TEMPERROR;
	if (lo == LOOKUP_VOID)
		return count_void(e, name) ? MATCH_NO : MATCH_PERMERROR;
	return MATCH_YES;
}

/* --- terms ------------------------------------------------------------------------ */

/* The target of a term: its domain-spec expanded, or the current domain. */
static bool target_of(struct spf_eval *e, const char *spec, size_t len, const char *domain, char *out, size_t outsz)
{
	if (!spec) {
		snprintf(out, outsz, "%s", domain);
		return true;
	}
	struct spf_macro_vars v = e->vars;
	v.domain = domain;
	char err[200];
	if (spf_macro_expand(&v, spec, len, false, out, outsz, err, sizeof(err)))
		return true;
	snprintf(e->why, sizeof(e->why), "the domain \"%.*s\" cannot be expanded: %s", (int)(len > 60 ? 60 : len), spec, err);
	return false;
}

static enum match_outcome match_include(struct spf_eval *e, const char *target, unsigned depth)
{
	struct host_result inner;
	spf_check_host(e, target, depth + 1, &inner);
	/* §5.2: pass matches; fail, softfail and neutral do not; temperror and
	 * permerror are returned; none is a permerror. */
	switch (inner.result) {
	case SPF_PASS: return MATCH_YES;
	case SPF_FAIL: case SPF_SOFTFAIL: case SPF_NEUTRAL: return MATCH_NO;
	case SPF_TEMPERROR: return MATCH_TEMPERROR;
	case SPF_PERMERROR: return MATCH_PERMERROR;
	case SPF_NONE:
		snprintf(e->why, sizeof(e->why), "include:%s names a domain without an SPF record (RFC 7208 section 5.2)",
			target);
		return MATCH_PERMERROR;
	}
	return MATCH_PERMERROR;
}

static enum match_outcome match_term(struct spf_eval *e, const struct spf_term *t, const char *domain, unsigned depth)
{
	if (t->mech == SPF_M_ALL)
		return MATCH_YES;
	if (t->mech == SPF_M_IP4 || t->mech == SPF_M_IP6) {
		/* §5.6: ip4 never matches an IPv6 client and the other way round. */
		if ((t->mech == SPF_M_IP6) != (e->family == AF_INET6))
			return MATCH_NO;
		return prefix_match(e->ip, t->net, t->mech == SPF_M_IP6 ? t->cidr6 : t->cidr4) ? MATCH_YES : MATCH_NO;
	}
	if (!count_term(e))
		return MATCH_PERMERROR;
	char target[SPF_DOMAIN_MAX + 8];
	if (!target_of(e, t->spec, t->spec_len, domain, target, sizeof(target)))
		return MATCH_PERMERROR;
	switch (t->mech) {
	case SPF_M_INCLUDE: return match_include(e, target, depth);
	case SPF_M_A: return match_addresses(e, target, t->cidr4, t->cidr6, true);
	case SPF_M_MX: return match_mx(e, target, t->cidr4, t->cidr6);
	case SPF_M_PTR: return match_ptr(e, target);
	case SPF_M_EXISTS: return match_exists(e, target);
	default: return MATCH_NO;
	}
}

static enum spf_result qualifier_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	}
	return SPF_PASS;
}

static void copy_text(char *out, size_t outsz, const char *s, size_t n)
{
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* §4.4, §4.5: the one SPF record of domain.  Returns SPF_PASS when rec is filled,
 * otherwise the result (none, temperror, permerror) with e->why. */
/* A parsed record with the text its terms point into (the DNS result is freed). */
struct held_record {
	struct spf_record rec;
	char text[SPF_RECORD_MAX + 1];
};

static enum spf_result fetch_record(struct spf_eval *e, const char *domain, struct held_record *held)
{
	struct dns_result res;
	enum lookup_outcome lo = spf_lookup(e, DNS_TXT, domain, &res);
	if (lo == LOOKUP_ERROR)
		return SPF_TEMPERROR;
	const struct dns_txt *found = NULL;
	size_t count = 0;
	for (size_t i = 0; i < res.n; i++)
		if (spf_is_record(res.rr[i].u.txt.text, res.rr[i].u.txt.len)) {
			found = &res.rr[i].u.txt;
			count++;
		}
	enum spf_result r = SPF_PASS;
	if (count == 0) {
		snprintf(e->why, sizeof(e->why), "%s publishes no SPF record", domain);
		r = SPF_NONE;
	} else if (count > 1) {
		snprintf(e->why, sizeof(e->why), "%s publishes %zu SPF records; there must be one (RFC 7208 section 4.5)",
			domain, count);
		r = SPF_PERMERROR;
	} else {
		char err[300];
		if (found->len > SPF_RECORD_MAX) {
			snprintf(e->why, sizeof(e->why), "%s's SPF record is longer than %d octets", domain, SPF_RECORD_MAX);
			r = SPF_PERMERROR;
		} else if (memchr(found->text, '\0', found->len)) {
			snprintf(e->why, sizeof(e->why), "%s's SPF record holds a NUL octet", domain);
			r = SPF_PERMERROR;
		} else if (memcpy(held->text, found->text, found->len),
			!spf_record_parse(held->text, found->len, &held->rec, err, sizeof(err))) {
			snprintf(e->why, sizeof(e->why), "%s's SPF record is broken: %s", domain, err);
			r = SPF_PERMERROR;
		}
	}
	dns_result_free(&res);
	return r;
}

static void decided(struct host_result *out, enum spf_result r, const char *domain, const struct spf_record *rec,
	const char *term, size_t term_len)
{
	out->result = r;
	snprintf(out->domain, sizeof(out->domain), "%s", domain);
	copy_text(out->mechanism, sizeof(out->mechanism), term ? term : "", term ? term_len : 0);
	out->record_has_fail_all = rec && rec->has_fail_all;
	out->exp[0] = '\0';
	if (rec && rec->exp)
		copy_text(out->exp, sizeof(out->exp), rec->exp, rec->exp_len);
}

static bool redirect_target(struct spf_eval *e, const struct spf_record *rec, const char *domain, char *target,
	size_t targetsz)
{
	return count_term(e) && target_of(e, rec->redirect, rec->redirect_len, domain, target, targetsz);
}

void spf_check_host(struct spf_eval *e, const char *domain, unsigned depth, struct host_result *out)
{
	struct held_record *held = calloc(1, sizeof(*held));
	memset(out, 0, sizeof(*out));
	snprintf(out->domain, sizeof(out->domain), "%s", domain);
	if (!held) {
		snprintf(e->why, sizeof(e->why), "out of memory");
		out->result = SPF_TEMPERROR;
		return;
	}
	enum spf_result r = fetch_record(e, domain, held);
	const struct spf_record *rec = &held->rec;
	if (r != SPF_PASS) {
		out->result = r;
		free(held);
		return;
	}
	for (size_t i = 0; i < rec->n; i++) {
		const struct spf_term *t = &rec->terms[i];
		enum match_outcome m = match_term(e, t, domain, depth);
		if (m == MATCH_NO)
			continue;
		r = m == MATCH_YES ? qualifier_result(t->qualifier) : m == MATCH_TEMPERROR ? SPF_TEMPERROR : SPF_PERMERROR;
		decided(out, r, domain, m == MATCH_YES ? rec : NULL, t->text, t->text_len);
		free(held);
		return;
	}
	/* §6.1: redirect only when no mechanism matched (an "all" always does). */
	char target[SPF_DOMAIN_MAX + 8];
	if (!rec->redirect)
		decided(out, SPF_NEUTRAL, domain, rec, NULL, 0);   /* §4.7 default */
	else if (!redirect_target(e, rec, domain, target, sizeof(target)))
		decided(out, SPF_PERMERROR, domain, NULL, rec->redirect_text, rec->redirect_text_len);
	else {
		spf_check_host(e, target, depth + 1, out);
		/* §6.1: a redirect to a domain without a record is a permerror. */
		if (out->result == SPF_NONE) {
			snprintf(e->why, sizeof(e->why), "redirect=%s names a domain without an SPF record (RFC 7208 section 6.1)",
				target);
			out->result = SPF_PERMERROR;
		}
		if (!out->mechanism[0])
			copy_text(out->mechanism, sizeof(out->mechanism), rec->redirect_text, rec->redirect_text_len);
	}
	free(held);
}

/* §6.2: the explanation of a fail, from the TXT record named by exp= in the record
 * that decided.  Any problem (no record, several, bad macros) means no explanation.
 * Not counted against the limits (§4.6.4 lists the terms that count). */
void spf_explain(struct spf_eval *e, const struct host_result *hr, char *out, size_t outsz)
{
	out[0] = '\0';
	if (!hr->exp[0])
		return;
	char name[SPF_DOMAIN_MAX + 8];
	char why_before[sizeof(e->why)];
	memcpy(why_before, e->why, sizeof(why_before));
	if (target_of(e, hr->exp, strlen(hr->exp), hr->domain, name, sizeof(name))) {
		struct dns_result res;
		if (spf_lookup(e, DNS_TXT, name, &res) == LOOKUP_OK && res.n == 1) {
			struct spf_macro_vars v = e->vars;
			v.domain = hr->domain;
			char err[200];
			const struct dns_txt *t = &res.rr[0].u.txt;
			if (!spf_macro_expand(&v, t->text, t->len, true, out, outsz, err, sizeof(err)))
				out[0] = '\0';
		}
		dns_result_free(&res);
	}
	memcpy(e->why, why_before, sizeof(why_before));   /* the exp lookup is no reason */
}
