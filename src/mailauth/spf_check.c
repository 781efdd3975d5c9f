/* spf_check.c - the identities of an SMTP transaction (RFC 7208 §2.3 HELO, §2.4
 * MAIL FROM, postmaster@HELO for the null sender), the inputs of check_host()
 * (§4.1, §4.3), and the plain words of each result (§2.6, §8). */
#include "mailauth/spf_internal.h"
#include "util/text.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *spf_result_name(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "none";
}

bool spf_result_from_name(const char *name, enum spf_result *r)
{
	for (int i = SPF_NONE; i <= SPF_PERMERROR; i++)
		if (strcasecmp(name, spf_result_name((enum spf_result)i)) == 0) {
			*r = (enum spf_result)i;
			return true;
		}
	return false;
}

void spf_dns_resolver_lookup(void *resolver, enum dns_type type, const char *name, unsigned timeout_ms,
	struct dns_result *res)
{
	dns_lookup_within(resolver, type, name, timeout_ms, res);
}

/* §4.3: "a multi-label domain name" with no empty label and no label over 63. */
static bool checkable_domain(const char *d)
{
	size_t n = strlen(d), lab = 0, labels = 0;
	if (n == 0 || n > 253 || d[0] == '[')
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (d[i] == '.' || d[i] == '\0') {
			if (lab == 0 || lab > 63)
				return i == n && d[i - 1] == '.' && labels >= 2;   /* one trailing dot */
			labels++;
			lab = 0;
		} else
			lab++;
	}
	return labels >= 2;
}

static void lower_copy(char *out, size_t outsz, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < outsz; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
	out[i] = '\0';
	if (i > 0 && out[i - 1] == '.')
		out[i - 1] = '\0';
}

/* Client address text to family and octets; an IPv4-mapped IPv6 address is the
 * IPv4 address (§5: "ip4" and "a" then apply to it). */
static bool parse_client(const char *text, int *family, unsigned char ip[16], char *shown, size_t shownsz)
{
	memset(ip, 0, 16);
	if (inet_pton(AF_INET, text, ip) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, text, ip) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		*family = AF_INET6;
		if (memcmp(ip, mapped, 12) == 0) {
			memmove(ip, ip + 12, 4);
			memset(ip + 4, 0, 12);
			*family = AF_INET;
		}
	} else
		return false;
	return inet_ntop(*family, ip, shown, (socklen_t)shownsz) != NULL;
}

/* §7.3 %{i}: dotted quad, or 32 dot-separated nibbles for IPv6. */
static void dotted_ip(int family, const unsigned char ip[16], char *out, size_t outsz)
{
	if (family == AF_INET) {
		snprintf(out, outsz, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16 && o + 4 < outsz; i++) {
		out[o++] = hex[ip[i] >> 4], out[o++] = '.';
		out[o++] = hex[ip[i] & 15], out[o++] = i < 15 ? '.' : '\0';
	}
	out[o ? o - 1 : 0] = '\0';
}

/* The explanation came from the domain's DNS: printable ASCII only in the words. */
static void clean_text(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"')
			*s = *s == '"' ? '\'' : '?';
}

static bool is_term(const char *mech, const char *want)
{
	return strcasecmp(mech, want) == 0;
}

/* The words of a result: what happened and, for the errors, why. */
static void words_for(const char *ip, const char *domain, const struct host_result *hr, const char *why,
	const char *explanation, char *out, size_t outsz)
{
	char via[SPF_DOMAIN_MAX + 40] = "";
	if (strcasecmp(hr->domain, domain) != 0)
		text_format_cut(via, sizeof(via), " (redirected to %s)", hr->domain);
	switch (hr->result) {
	case SPF_PASS:
		text_format_cut(out, outsz, "%s is allowed to send for %s (%s)", ip, domain, hr->mechanism);
		break;
	case SPF_FAIL: {
		char how[SPF_MECHANISM_MAX + 80];
		if (is_term(hr->mechanism, "-all"))
			text_format_cut(how, sizeof(how), "its SPF record%s ends in -all", via);
		else
			text_format_cut(how, sizeof(how), "its SPF record%s refuses it with %s", via, hr->mechanism);
		if (explanation[0])
			text_format_cut(out, outsz, "%s is not allowed to send for %s: %s; %s explains: \"%s\"", ip, domain, how,
				domain, explanation);
		else
			text_format_cut(out, outsz, "%s is not allowed to send for %s: %s", ip, domain, how);
		break;
	}
	case SPF_SOFTFAIL:
		text_format_cut(out, outsz, "%s is probably not allowed to send for %s: its SPF record%s %s %s (softfail)", ip, domain,
			via, is_term(hr->mechanism, "~all") ? "ends in" : "marks it with", hr->mechanism);
		break;
	case SPF_NEUTRAL:
		if (hr->mechanism[0])
			text_format_cut(out, outsz, "the SPF record of %s%s says neither yes nor no for %s (%s)", domain, via, ip,
				hr->mechanism);
		else
			text_format_cut(out, outsz, "the SPF record of %s%s has no rule that matches %s (neutral)", domain, via, ip);
		break;
	case SPF_NONE:
		text_format_cut(out, outsz, "%s", why[0] ? why : "no SPF record");
		break;
	case SPF_TEMPERROR:
		text_format_cut(out, outsz, "the SPF check of %s could not finish: %s; it will work when the DNS answers again",
			domain, why[0] ? why : "a DNS lookup failed");
		break;
	case SPF_PERMERROR:
		text_format_cut(out, outsz, "the SPF record of %s cannot be used: %s", domain,
			why[0] ? why : "it is broken");
		break;
	}
}

struct identity {
	char sender[SPF_SENDER_MAX];
	const char *local;
	char domain[SPF_DOMAIN_MAX];
	char local_buf[SPF_SENDER_MAX];
};

/* Evaluate one identity: check_host(ip, domain, sender) and the words. */
static enum spf_result check_identity(const struct spf_request *rq, const struct spf_dns *dns, uint64_t deadline,
	unsigned timeout_ms, const struct identity *id, struct spf_outcome *o)
{
	struct host_result hr = { .result = SPF_NONE };
	struct spf_eval *e = calloc(1, sizeof(*e));
	snprintf(hr.domain, sizeof(hr.domain), "%s", id->domain);
	char why[SPF_WHY_MAX] = "";
	if (!e) {
		hr.result = SPF_TEMPERROR;
		snprintf(why, sizeof(why), "out of memory");
	} else if (!checkable_domain(id->domain)) {
		snprintf(why, sizeof(why), "\"%s\" is not a domain name that SPF can check (RFC 7208 section 4.3)",
			id->domain);
	} else {
		*e = (struct spf_eval){ .dns = dns, .deadline = deadline, .timeout_ms = timeout_ms };
		char ip_dotted[80], ip_text[48];
		parse_client(rq->client_ip, &e->family, e->ip, ip_text, sizeof(ip_text));
		dotted_ip(e->family, e->ip, ip_dotted, sizeof(ip_dotted));
		e->vars = (struct spf_macro_vars){ .sender = id->sender, .local = id->local, .sender_domain = id->domain,
			.ip_dotted = ip_dotted, .ip_text = ip_text, .ipv6 = e->family == AF_INET6,
			.helo = rq->helo ? rq->helo : "", .receiver = rq->receiver, .now = (long long)time(NULL),
			.validated_name = spf_validated_name, .ctx = e };
		spf_check_host(e, id->domain, 0, &hr);
		if (hr.result == SPF_FAIL)
			spf_explain(e, &hr, o->explanation, sizeof(o->explanation));
		clean_text(o->explanation);
		memcpy(why, e->why, sizeof(why));
	}
	free(e);
	snprintf(o->domain, sizeof(o->domain), "%s", id->domain);
	snprintf(o->sender, sizeof(o->sender), "%s", id->sender);
	snprintf(o->mechanism, sizeof(o->mechanism), "%s", hr.mechanism);
	o->record_has_fail_all = hr.result == SPF_FAIL || hr.result == SPF_SOFTFAIL ? hr.record_has_fail_all : false;
	o->result = hr.result;
	words_for(o->client_ip, id->domain, &hr, why, o->explanation, o->words, sizeof(o->words));
	return hr.result;
}

/* §2.4: the MAIL FROM identity; an empty local-part is "postmaster" (§4.3).  The
 * null sender, or one without a domain, is checked as postmaster@HELO (§2.4). */
static enum spf_identity identity_of(const struct spf_request *rq, struct identity *id)
{
	const char *s = rq->sender ? rq->sender : "";
	const char *at = strrchr(s, '@');
	memset(id, 0, sizeof(*id));
	if (at && at[1]) {
		size_t ln = (size_t)(at - s);
		if (ln == 0 || ln >= sizeof(id->local_buf))
			snprintf(id->local_buf, sizeof(id->local_buf), "postmaster");
		else
			snprintf(id->local_buf, sizeof(id->local_buf), "%.*s", (int)ln, s);
		lower_copy(id->domain, sizeof(id->domain), at + 1);
		id->local = id->local_buf;
		text_format_cut(id->sender, sizeof(id->sender), "%s@%s", id->local, id->domain);
		return SPF_ID_MAILFROM;
	}
	lower_copy(id->domain, sizeof(id->domain), rq->helo ? rq->helo : "");
	id->local = "postmaster";
	text_format_cut(id->sender, sizeof(id->sender), "postmaster@%s", id->domain);
	return SPF_ID_HELO;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void spf_check(const struct spf_request *rq, const struct spf_dns *dns, struct spf_outcome *out)
{
	memset(out, 0, sizeof(*out));
	unsigned timeout_ms = rq->timeout_ms ? rq->timeout_ms : SPF_DEFAULT_TIMEOUT_MS;
	uint64_t deadline = monotonic_ms() + timeout_ms;
	struct identity id;
	out->identity = identity_of(rq, &id);
	int family;
	unsigned char ip[16];
	if (!rq->client_ip || !parse_client(rq->client_ip, &family, ip, out->client_ip, sizeof(out->client_ip))) {
		snprintf(out->client_ip, sizeof(out->client_ip), "?");
		snprintf(out->domain, sizeof(out->domain), "%s", id.domain);
		snprintf(out->sender, sizeof(out->sender), "%s", id.sender);
		out->result = SPF_NONE;
		snprintf(out->words, sizeof(out->words), "the client address is not an IP address SPF can check");
		return;
	}
	check_identity(rq, dns, deadline, timeout_ms, &id, out);
	if (!rq->check_helo)
		return;
	struct spf_helo_outcome *h = &out->helo;
	if (out->identity == SPF_ID_HELO) {
		/* MAIL FROM:<> already was the HELO identity (§2.4). */
		h->checked = checkable_domain(out->domain);
		h->result = out->result;
		snprintf(h->domain, sizeof(h->domain), "%s", out->domain);
		snprintf(h->words, sizeof(h->words), "%s", out->words);
		return;
	}
	struct identity hid;
	struct spf_request hrq = *rq;
	hrq.sender = "";
	identity_of(&hrq, &hid);
	snprintf(h->domain, sizeof(h->domain), "%s", hid.domain);
	h->checked = checkable_domain(hid.domain);
	if (!h->checked) {
		h->result = SPF_NONE;
		snprintf(h->words, sizeof(h->words), "the HELO name \"%s\" is not a domain name SPF can check", hid.domain);
		return;
	}
	struct spf_outcome *ho = malloc(sizeof(*ho));
	if (!ho) {
		h->result = SPF_TEMPERROR;
		snprintf(h->words, sizeof(h->words), "out of memory");
		return;
	}
	*ho = (struct spf_outcome){ .identity = SPF_ID_HELO };
	snprintf(ho->client_ip, sizeof(ho->client_ip), "%s", out->client_ip);
	h->result = check_identity(rq, dns, deadline, timeout_ms, &hid, ho);
	snprintf(h->words, sizeof(h->words), "%s", ho->words);
	free(ho);
}
