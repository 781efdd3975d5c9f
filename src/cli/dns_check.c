/* dns_check.c - `postern dns check DOMAIN`: each record `postern dns DOMAIN` prints is
 * looked up (dns/, the [delivery] resolver or --resolver) and compared with what it
 * should be; the checklist says ok, or what is missing or wrong and the exact record
 * to publish.  The exit status is 1 when a record the big receivers require (MX here,
 * the server's address and PTR, SPF allowing it, DKIM per active key, DMARC) is not
 * right, so a script or a monitor can rely on it. */
#include "cli/dns_zone.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "diag/json.h"
#include "mailauth/spf.h"
#include "wire/enh.h"
#include "util/text.h"

/* UNSURE: the record may be right but cannot be confirmed here (SPF without this
 * server's address): a warning, not a failure. */
enum check_status { CHECK_OK, CHECK_MISSING, CHECK_WRONG, CHECK_FAILED, CHECK_SKIPPED, CHECK_UNSURE };

static const char *const status_words[] = { "ok", "missing", "wrong", "lookup failed", "skipped", "cannot tell" };

struct check {
	enum check_status status;
	char found[1024];           /* what the DNS said, for the report */
	char words[1024];           /* why it is not right */
};

struct checker {
	struct dns_resolver *r;
	const struct zone *z;
};

/* A lookup; false (and the check FAILED) when the DNS gave no usable answer.
 * NXDOMAIN and NODATA are answers: the record is not there. */
static bool lookup(struct checker *k, enum dns_type type, const char *name, struct dns_result *res, struct check *out)
{
	dns_lookup(k->r, type, name, res);
	if (res->rcode == DNS_NOERROR || res->rcode == DNS_NXDOMAIN)
		return true;
	out->status = CHECK_FAILED;
	text_format_cut(out->words, sizeof(out->words), "the lookup of %s %s failed: %s%s%s (try again; if it stays, the "
		"domain's name servers do not answer)", name, dns_type_name(type), dns_rcode_name(res->rcode),
		res->error[0] ? ": " : "", res->error);
	return false;
}

static bool same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.') la--;
	if (lb && b[lb - 1] == '.') lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool same_address(const char *a, const char *b)
{
	unsigned char x[16], y[16];
	int fx = strchr(a, ':') ? AF_INET6 : AF_INET, fy = strchr(b, ':') ? AF_INET6 : AF_INET;
	return fx == fy && inet_pton(fx, a, x) == 1 && inet_pton(fy, b, y) == 1 &&
		memcmp(x, y, fx == AF_INET ? 4 : 16) == 0;
}

/* Does name have address among its A/AAAA records?  (-1: the lookup failed) */
static int name_has_address(struct checker *k, const char *name, const char *address, char *found, size_t foundsz)
{
	struct check scratch = { 0 };
	struct dns_result res;
	int hit = 0;
	enum dns_type types[2] = { DNS_A, DNS_AAAA };
	size_t o = 0;
	if (found && foundsz)
		found[0] = '\0';
	for (int t = 0; t < 2; t++) {
		if (!lookup(k, types[t], name, &res, &scratch)) {
			dns_result_free(&res);
			return -1;
		}
		for (size_t i = 0; i < res.n; i++) {
			if (address && address[0] && same_address(res.rr[i].u.addr.text, address))
				hit = 1;
			if (found && o + 2 < foundsz)
				o += (size_t)snprintf(found + o, foundsz - o, "%s%s", o ? " " : "", res.rr[i].u.addr.text);
		}
		dns_result_free(&res);
	}
	return hit;
}

static void check_mx(struct checker *k, const struct zone_record *r, struct check *out)
{
	struct dns_result res;
	if (!lookup(k, DNS_MX, r->name, &res, out))
		goto done;
	size_t o = 0;
	bool here = false;
	for (size_t i = 0; i < res.n; i++) {
		if (same_name(res.rr[i].u.mx.exchange, r->target))
			here = true;
		if (o + 2 < sizeof(out->found))
			o += (size_t)snprintf(out->found + o, sizeof(out->found) - o, "%s%u %s", o ? ", " : "",
				res.rr[i].u.mx.preference, res.rr[i].u.mx.exchange);
	}
	if (here)
		out->status = CHECK_OK;
	else if (res.n == 0) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "%s has no MX record: other servers cannot find where to deliver its mail",
			r->name);
	} else {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "the MX of %s points to %s, not to this server %s", r->name, out->found,
			r->target);
	}
done:
	dns_result_free(&res);
}

static void check_host_address(struct checker *k, const struct zone_record *r, struct check *out)
{
	const char *address = k->z->address;
	int hit = name_has_address(k, r->name, address, out->found, sizeof(out->found));
	if (hit < 0) {
		out->status = CHECK_FAILED;
		text_format_cut(out->words, sizeof(out->words), "the lookup of %s's address failed", r->name);
	} else if (!out->found[0]) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "%s has no A or AAAA record: the MX names a host nobody can reach", r->name);
	} else if (address[0] && !hit) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "%s resolves to %s, not to this server's address %s (%s)", r->name,
			out->found, address, k->z->address_from);
	} else {
		out->status = CHECK_OK;
	}
}

/* The TXT records at name whose text starts with prefix (a tag, RFC 7208 §4.5,
 * RFC 7489 §6.6.3: "v=spf1" then a space or the end).  Returns how many; the first
 * is copied to first. -1: lookup failed. */
static int txt_with_prefix(struct checker *k, const char *name, const char *prefix, char *first, size_t firstsz,
	struct check *out)
{
	struct dns_result res;
	int count = 0;
	first[0] = '\0';
	if (!lookup(k, DNS_TXT, name, &res, out)) {
		dns_result_free(&res);
		return -1;
	}
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < res.n; i++) {
		const char *t = res.rr[i].u.txt.text;
		if (strncasecmp(t, prefix, plen) != 0 || (t[plen] && t[plen] != ' ' && t[plen] != ';'))
			continue;
		if (count++ == 0)
			text_format_cut(first, firstsz, "%s", t);
	}
	dns_result_free(&res);
	return count;
}

/* The value of tag `name` in a tag list (RFC 6376 §3.2: "a=b; c=d"), whitespace
 * removed (p= of a key record may be folded). */
static bool tag_value(const char *list, const char *name, char *out, size_t outsz)
{
	size_t nlen = strlen(name);
	for (const char *p = list; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
		p += strspn(p, " \t\r\n");
		if (strncasecmp(p, name, nlen) != 0)
			continue;
		const char *q = p + nlen;
		q += strspn(q, " \t\r\n");
		if (*q != '=')
			continue;
		size_t o = 0;
		for (q++; *q && *q != ';' && o + 1 < outsz; q++)
			if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
				out[o++] = *q;
		out[o] = '\0';
		return true;
	}
	return false;
}

/* Does the record say "+all" (or a bare "all"): every server on the Internet may send? */
static bool spf_allows_everyone(const char *text)
{
	struct spf_record *rec = malloc(sizeof(*rec));
	char err[256];
	bool everyone = false;
	if (rec && spf_record_parse(text, strlen(text), rec, err, sizeof(err)))
		for (size_t i = 0; i < rec->n; i++)
			if (rec->terms[i].mech == SPF_M_ALL && rec->terms[i].qualifier == '+')
				everyone = true;
	free(rec);
	return everyone;
}

/* The record's verdict for this server's address, by the SPF check Postern runs on
 * inbound mail (mailauth/spf.h: includes, redirects, macros and the limits followed),
 * for the sender postmaster@DOMAIN. */
static void spf_verdict(struct checker *k, const char *record, struct check *out)
{
	const struct zone *z = k->z;
	if (spf_allows_everyone(record)) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "+all lets every server on the Internet send as %s: end the record "
			"with -all", z->domain);
		return;
	}
	if (!z->address[0]) {
		out->status = CHECK_UNSURE;
		text_format_cut(out->words, sizeof(out->words), "this server's address is not known: give --address ADDRESS to check "
			"that the record allows it");
		return;
	}
	char sender[DNS_NAME_MAX + 16];
	text_format_cut(sender, sizeof(sender), "postmaster@%s", z->domain);
	struct spf_request rq = { .client_ip = z->address, .sender = sender, .helo = z->hostname,
		.receiver = z->hostname };
	struct spf_dns dns = { spf_dns_resolver_lookup, k->r };
	struct spf_outcome *o = malloc(sizeof(*o));
	if (!o) {
		out->status = CHECK_FAILED;
		return;
	}
	spf_check(&rq, &dns, o);
	out->status = o->result == SPF_PASS ? CHECK_OK : o->result == SPF_TEMPERROR ? CHECK_FAILED : CHECK_WRONG;
	if (o->result != SPF_PASS)
		text_format_cut(out->words, sizeof(out->words), "SPF %s for %s: %s", spf_result_name(o->result), z->address, o->words);
	free(o);
}

static void check_spf(struct checker *k, const struct zone_record *r, struct check *out)
{
	int n = txt_with_prefix(k, r->name, "v=spf1", out->found, sizeof(out->found), out);
	if (n < 0)
		return;
	if (n == 0) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "%s has no SPF record (TXT \"v=spf1 ...\"): Gmail refuses its mail with "
			ENH_PERM_AUTH_CHECKS_FAILED " unless DKIM passes, and Microsoft refuses it too", r->name);
		return;
	}
	if (n > 1) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "%s has %d SPF records: receivers treat that as a permanent error "
			"(RFC 7208 §4.5): keep one", r->name, n);
		return;
	}
	spf_verdict(k, out->found, out);
}

static void check_dkim(struct checker *k, const struct zone_record *r, struct check *out)
{
	char want[ZONE_VALUE_MAX], got[ZONE_VALUE_MAX];
	if (r->kind == ZONE_DKIM_NONE) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "no DKIM key: run postern dkim keygen %s, then postern dns %s for "
			"the record to publish", k->z->domain, k->z->domain);
		return;
	}
	int n = txt_with_prefix(k, r->name, "v=DKIM1", out->found, sizeof(out->found), out);
	if (n < 0)
		return;
	tag_value(r->value, "p", want, sizeof(want));
	if (n == 0) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), r->active ? "no DKIM key record at %s: receivers cannot verify the "
			"signatures of selector %s" : "no DKIM key record at %s: selector %s is retired, but mail it signed "
			"may still be on its way: keep the record a few days after retiring", r->name, r->selector);
	} else if (!tag_value(out->found, "p", got, sizeof(got)) || strcmp(got, want) != 0) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "the key published at %s is not the key of selector %s (p= differs): "
			"signatures fail to verify", r->name, r->selector);
	} else {
		out->status = CHECK_OK;
	}
}

static void check_tagged_txt(struct checker *k, const struct zone_record *r, struct check *out)
{
	const char *prefix = r->kind == ZONE_DMARC ? "v=DMARC1" : r->kind == ZONE_MTA_STS ? "v=STSv1" : "v=TLSRPTv1";
	const char *must = r->kind == ZONE_DMARC ? "p" : r->kind == ZONE_MTA_STS ? "id" : "rua";
	char v[512];
	int n = txt_with_prefix(k, r->name, prefix, out->found, sizeof(out->found), out);
	if (n < 0)
		return;
	if (n == 0) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "no %s record at %s%s", r->label, r->name, r->kind == ZONE_DMARC ?
			": Gmail, Yahoo and Microsoft require one of senders of volume (p=none is enough)" : "");
	} else if (n > 1) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "%d %s records at %s: receivers then use none of them", n, r->label, r->name);
	} else if (!tag_value(out->found, must, v, sizeof(v)) || !v[0]) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "the %s record at %s has no %s= tag", r->label, r->name, must);
	} else {
		out->status = CHECK_OK;
		if (r->kind == ZONE_DMARC && strcasecmp(v, "none") == 0)
			text_format_cut(out->words, sizeof(out->words), "p=none: receivers report but do not refuse forgeries; move to "
				"quarantine once the reports show only your servers");
		else if (r->kind == ZONE_MTA_STS && k->z->mta_sts_id[0] && strcmp(v, k->z->mta_sts_id) != 0) {
			/* RFC 8461 §3.1: senders fetch the policy again only when the id changes. */
			out->status = CHECK_WRONG;
			text_format_cut(out->words, sizeof(out->words), "%s says id=%s, but the policy this server serves now has "
				"id=%s: senders keep using the policy they cached; publish the record postern dns %s prints",
				r->name, v, k->z->mta_sts_id, k->z->domain);
		}
	}
}

static void check_srv(struct checker *k, const struct zone_record *r, struct check *out)
{
	struct dns_result res;
	if (!lookup(k, DNS_SRV, r->name, &res, out))
		goto done;
	bool match = false;
	size_t o = 0;
	for (size_t i = 0; i < res.n; i++) {
		const struct dns_srv *s = &res.rr[i].u.srv;
		if (same_name(s->target, r->target) && (s->port == r->port || strcmp(r->target, ".") == 0))
			match = true;
		if (o + 2 < sizeof(out->found))
			o += (size_t)snprintf(out->found + o, sizeof(out->found) - o, "%s%u %u %u %s", o ? ", " : "",
				s->priority, s->weight, s->port, s->target);
	}
	out->status = match ? CHECK_OK : res.n ? CHECK_WRONG : CHECK_MISSING;
	if (!match && res.n)
		text_format_cut(out->words, sizeof(out->words), "%s says %s; this server offers %s", r->name, out->found,
			strcmp(r->target, ".") == 0 ? "no such service (a null record says so)" : r->value);
	else if (!match)
		text_format_cut(out->words, sizeof(out->words), "no SRV record at %s: mail programs guess the settings", r->name);
done:
	dns_result_free(&res);
}

/* autoconfig, autodiscover, mta-sts: a CNAME to the server, or addresses the same. */
static void check_alias(struct checker *k, const struct zone_record *r, struct check *out)
{
	struct dns_result res;
	if (!lookup(k, DNS_CNAME, r->name, &res, out))
		goto done;
	if (res.n) {
		text_format_cut(out->found, sizeof(out->found), "CNAME %s", res.rr[0].u.name);
		out->status = same_name(res.rr[0].u.name, r->target) ? CHECK_OK : CHECK_WRONG;
		if (out->status == CHECK_WRONG)
			text_format_cut(out->words, sizeof(out->words), "%s is an alias of %s, not of this server %s", r->name,
				res.rr[0].u.name, r->target);
		goto done;
	}
	char mine[256];
	int has = name_has_address(k, r->name, NULL, out->found, sizeof(out->found));
	name_has_address(k, r->target, NULL, mine, sizeof(mine));
	if (has < 0) {
		out->status = CHECK_FAILED;
		text_format_cut(out->words, sizeof(out->words), "the lookup of %s failed", r->name);
	} else if (!out->found[0]) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "%s does not exist", r->name);
	} else {
		out->status = mine[0] && strstr(out->found, mine) ? CHECK_OK : CHECK_WRONG;
		if (out->status == CHECK_WRONG)
			text_format_cut(out->words, sizeof(out->words), "%s has address %s, not this server's (%s)", r->name, out->found,
				mine[0] ? mine : "unknown");
	}
done:
	dns_result_free(&res);
}

/* Forward-confirmed reverse DNS (Gmail 5.7.25): PTR names the host, the host has the address. */
static void check_ptr(struct checker *k, const struct zone_record *r, struct check *out)
{
	struct dns_result res;
	if (!lookup(k, DNS_PTR, r->name, &res, out))
		goto done;
	bool named = false;
	for (size_t i = 0; i < res.n; i++)
		if (same_name(res.rr[i].u.name, r->target))
			named = true;
	if (res.n)
		text_format_cut(out->found, sizeof(out->found), "%s", res.rr[0].u.name);
	if (!res.n) {
		out->status = CHECK_MISSING;
		text_format_cut(out->words, sizeof(out->words), "%s has no reverse DNS name (PTR): Gmail refuses with "
			ENH_PERM_REVERSE_DNS, k->z->address);
	} else if (!named) {
		out->status = CHECK_WRONG;
		text_format_cut(out->words, sizeof(out->words), "the PTR of %s names %s, not %s", k->z->address, out->found, r->target);
	} else {
		out->status = CHECK_OK;
	}
done:
	dns_result_free(&res);
}

static void check_one(struct checker *k, const struct zone_record *r, struct check *out)
{
	memset(out, 0, sizeof(*out));
	if (r->comment_only && r->kind != ZONE_PTR && r->kind != ZONE_HOST_ADDR && r->kind != ZONE_DKIM_NONE) {
		out->status = CHECK_SKIPPED;
		text_format_cut(out->words, sizeof(out->words), "not offered by this configuration");
		return;
	}
	switch (r->kind) {
	case ZONE_MX: check_mx(k, r, out); break;
	case ZONE_HOST_ADDR: check_host_address(k, r, out); break;
	case ZONE_SPF: check_spf(k, r, out); break;
	case ZONE_DKIM: case ZONE_DKIM_NONE: check_dkim(k, r, out); break;
	case ZONE_DMARC: case ZONE_MTA_STS: case ZONE_TLSRPT: check_tagged_txt(k, r, out); break;
	case ZONE_SRV: check_srv(k, r, out); break;
	case ZONE_MTA_STS_HOST: case ZONE_ALIAS: check_alias(k, r, out); break;
	case ZONE_PTR: check_ptr(k, r, out); break;
	}
}

static void print_text_line(const struct zone *z, const struct zone_record *r, const struct check *c)
{
	const char *mark = c->status == CHECK_OK ? "ok" : c->status == CHECK_SKIPPED ? "skip" :
		r->required && c->status != CHECK_UNSURE ? "FAIL" : "warn";
	printf("%-5s %-13s %s", mark, r->label, r->name);
	if (c->status == CHECK_OK && c->found[0])
		printf(": %s", c->found);
	if (c->status != CHECK_OK && c->status != CHECK_SKIPPED)
		printf(": %s", status_words[c->status]);
	printf("\n");
	if (c->words[0])
		printf("      %s\n", c->words);
	if (c->status == CHECK_MISSING || c->status == CHECK_WRONG) {
		char line[ZONE_VALUE_MAX + DNS_NAME_MAX + 128];
		zone_record_line(r, line, sizeof(line));
		if (r->kind == ZONE_DKIM_NONE)
			return;
		if (r->kind == ZONE_PTR)
			printf("      ask the provider of %s to set: %s\n", z->address, line);
		else if (r->kind == ZONE_HOST_ADDR && !z->address[0])
			printf("      publish: %s (ADDRESS: this server's public address)\n", line);
		else
			printf("      publish: %s\n", line);
	}
}

static void print_json_item(const struct zone_record *r, const struct check *c, bool first)
{
	char line[ZONE_VALUE_MAX + DNS_NAME_MAX + 128] = "";
	if (r->kind != ZONE_DKIM_NONE && (c->status == CHECK_MISSING || c->status == CHECK_WRONG))
		zone_record_line(r, line, sizeof(line));
	printf("%s\n    {\"record\": ", first ? "" : ",");
	json_str(stdout, r->label);
	printf(", \"name\": ");
	json_str(stdout, r->name);
	printf(", \"type\": ");
	json_str(stdout, dns_type_name(r->type));
	printf(", \"required\": %s, \"status\": ", r->required ? "true" : "false");
	json_str(stdout, status_words[c->status]);
	printf(", \"found\": ");
	json_str(stdout, c->found[0] ? c->found : NULL);
	printf(", \"words\": ");
	json_str(stdout, c->words[0] ? c->words : NULL);
	printf(", \"publish\": ");
	json_str(stdout, line[0] ? line : NULL);
	printf("}");
}

int zone_check(const struct zone *z, const char *resolver, unsigned timeout_ms, bool json)
{
	char err[DNS_ERR_MAX];
	struct dns_options o = { .forwarder = resolver, .timeout_ms = timeout_ms };
	struct checker k = { .z = z, .r = dns_resolver_new(&o, err, sizeof(err)) };
	if (!k.r) {
		fprintf(stderr, "postern: cannot start the DNS resolver: %s\n", err);
		return 1;
	}
	unsigned failed = 0, warned = 0;
	if (json) {
		printf("{\"domain\": ");
		json_str(stdout, z->domain);
		printf(", \"hostname\": ");
		json_str(stdout, z->hostname);
		printf(", \"address\": ");
		json_str(stdout, z->address[0] ? z->address : NULL);
		printf(", \"checks\": [");
	} else {
		printf("postern dns check %s: server %s, address %s%s%s%s\n", z->domain, z->hostname,
			z->address[0] ? z->address : "unknown (give --address ADDRESS to check SPF and PTR for it)",
			z->address[0] ? " (" : "", z->address_from, z->address[0] ? ")" : "");
	}
	for (size_t i = 0; i < z->n; i++) {
		struct check c;
		check_one(&k, &z->rec[i], &c);
		if (c.status == CHECK_UNSURE || (!z->rec[i].required && c.status != CHECK_OK && c.status != CHECK_SKIPPED))
			warned++;
		else if (c.status != CHECK_OK && c.status != CHECK_SKIPPED)
			failed++;
		if (json)
			print_json_item(&z->rec[i], &c, i == 0);
		else
			print_text_line(z, &z->rec[i], &c);
	}
	dns_resolver_free(&k.r);
	if (json)
		printf("\n  ], \"required_failed\": %u, \"recommended_missing\": %u, \"ok\": %s}\n", failed, warned,
			failed ? "false" : "true");
	else if (failed)
		printf("\n%u record%s the big receivers (Gmail, Microsoft, Yahoo) require %s not right: publish what is "
			"shown above, then run postern dns check %s again.%s\n", failed, failed == 1 ? "" : "s",
			failed == 1 ? "is" : "are", z->domain, warned ? " Recommended records missing or wrong: see warn." : "");
	else
		printf("\nAll records the big receivers require are right%s.\n", warned ?
			"; some recommended ones are missing or wrong (warn)" : ", and the recommended ones too");
	return failed ? 1 : 0;
}
