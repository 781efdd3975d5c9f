/* dns_zone.c - `postern dns DOMAIN`: the records a domain served by this Postern needs,
 * built from the configuration (hostname, listeners, relay) and the DKIM keys, and
 * printed as a zone-file fragment with the reason for each record as a comment.
 * Ports and services come from the [listener] sections, never from a fixed list. */
#include "cli/dns_zone.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "mailauth/dkim.h"
#include "wire/enh.h"
#include "util/text.h"

static struct zone_record *add(struct zone *z, enum zone_kind kind, const char *label, const char *name,
	enum dns_type type, bool required)
{
	if (z->n >= ZONE_MAX_RECORDS)
		return NULL;
	struct zone_record *r = &z->rec[z->n++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->required = required;
	r->type = type;
	snprintf(r->label, sizeof(r->label), "%s", label);
	snprintf(r->name, sizeof(r->name), "%s", name);
	return r;
}

static bool wildcard(const char *a)
{
	return !a[0] || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 || strcmp(a, "*") == 0;
}

/* Addresses the Internet never sees (RFC 1918, RFC 6598, loopback, link-local, RFC 4193):
 * a listener bound to one is behind NAT or a proxy, and its address is no record to
 * publish. */
static bool private_address(const char *a)
{
	static const char *const blocks[] = { "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
		"127.0.0.0/8", "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10" };
	unsigned char b[16];
	int fam = strchr(a, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(fam, a, b) != 1)
		return true;
	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
		struct conf_network n;
		if (conf_parse_network(blocks[i], &n) && conf_network_contains(&n, fam, b))
			return true;
	}
	return false;
}

/* This server's address: --address, else the first listener bound to one public
 * address (the mx listener first: that is the address receivers see when we deliver). */
static void choose_address(const struct conf *c, const char *given, struct zone *z)
{
	if (given && given[0]) {
		text_format_cut(z->address, sizeof(z->address), "%s", given);
		text_format_cut(z->address_from, sizeof(z->address_from), "--address");
		return;
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < c->n_listeners; i++) {
			const struct conf_listener *l = &c->listeners[i];
			if ((pass == 0) != (l->role == ROLE_MX) || wildcard(l->address))
				continue;
			if (private_address(l->address)) {
				if (!z->address_from[0])
					text_format_cut(z->address_from, sizeof(z->address_from), "listener %s is on the private address %s, "
						"which receivers never see", l->name, l->address);
				continue;
			}
			text_format_cut(z->address, sizeof(z->address), "%s", l->address);
			text_format_cut(z->address_from, sizeof(z->address_from), "listener %s in %s", l->name, c->path);
			return;
		}
}

static const struct conf_listener *find_listener(const struct conf *c, enum listener_role role, enum tls_mode tls)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].role == role && c->listeners[i].tls == tls)
			return &c->listeners[i];
	return NULL;
}

static void add_mx_and_address(const struct conf *c, struct zone *z)
{
	const struct conf_listener *mx = find_listener(c, ROLE_MX, TLS_STARTTLS);
	if (!mx)
		mx = find_listener(c, ROLE_MX, TLS_NONE);
	struct zone_record *r = add(z, ZONE_MX, "MX", z->domain, DNS_MX, true);
	text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
	text_format_cut(r->value, sizeof(r->value), "10 %s.", z->hostname);
	if (!mx)
		text_format_cut(r->comment, sizeof(r->comment), "MX (RFC 5321 §5.1): %s has no mx listener, so it takes no mail from "
			"the Internet: point the MX at the server that does (this record assumes it is %s).", c->path, z->hostname);
	else if (mx->port != 25)
		text_format_cut(r->comment, sizeof(r->comment), "MX (RFC 5321 §5.1): mail for %s comes to %s. Other servers connect to "
			"port 25 only, and listener %s is on port %u: forward port 25 to it.", z->domain, z->hostname, mx->name, mx->port);
	else
		text_format_cut(r->comment, sizeof(r->comment), "MX (RFC 5321 §5.1): mail for %s comes to %s, listener %s on port 25.",
			z->domain, z->hostname, mx->name);
	bool v6 = strchr(z->address, ':') != NULL;
	r = add(z, ZONE_HOST_ADDR, v6 ? "AAAA" : "A", z->hostname, v6 ? DNS_AAAA : DNS_A, true);
	if (z->address[0]) {
		text_format_cut(r->value, sizeof(r->value), "%s", z->address);
		text_format_cut(r->comment, sizeof(r->comment), "The server's own name and address (from %s), in the zone that holds "
			"%s. The MX names it, and its PTR must name it back.", z->address_from, z->hostname);
	} else {
		r->comment_only = true;
		text_format_cut(r->value, sizeof(r->value), "ADDRESS");
		text_format_cut(r->comment, sizeof(r->comment), "%s needs an A (or AAAA) record with this server's public address: %s, "
			"so give it with --address ADDRESS.", z->hostname, z->address_from[0] ? z->address_from :
			"the listeners listen on every address");
	}
}

static void add_spf(const struct conf *c, struct zone *z)
{
	struct zone_record *r = add(z, ZONE_SPF, "SPF", z->domain, DNS_TXT, true);
	if (c->relay_host[0]) {
		text_format_cut(r->value, sizeof(r->value), "v=spf1 mx a:%s -all", c->relay_host);
		text_format_cut(r->comment, sizeof(r->comment), "SPF (RFC 7208): mail from %s leaves through the relay %s ([relay] host), "
			"so the record names it (a:%s); if the relay's provider publishes an SPF include, use include:THAT "
			"instead. mx: the MX hosts may send too. -all: nobody else (RFC 7208 §5.1).", z->domain, c->relay_host,
			c->relay_host);
	} else {
		text_format_cut(r->value, sizeof(r->value), "v=spf1 mx -all");
		text_format_cut(r->comment, sizeof(r->comment), "SPF (RFC 7208): this server delivers its own mail, and it is the MX "
			"of %s, so \"mx\" names it (the address of %s); -all: no other server sends for %s. Gmail and "
			"Microsoft refuse unauthenticated mail (Gmail: " ENH_PERM_AUTH_CHECKS_FAILED "); exactly one v=spf1 "
			"record (§4.5).",
			z->domain, z->hostname, z->domain);
	}
}

/* One DKIM key record per selector (RFC 6376 §3.6.2.1), from the keys `postern dkim`
 * keeps (mailauth/dkim.h); a retired key's record stays published, not required. */
static void take_dkim_key(void *arg, const struct dkim_key_info *k)
{
	struct zone *z = arg;
	char name[DNS_NAME_MAX], made[32];
	struct tm tm;
	time_t t = k->created;
	text_format_cut(name, sizeof(name), "%s._domainkey.%s", k->selector, z->domain);
	struct zone_record *r = add(z, ZONE_DKIM, "DKIM", name, DNS_TXT, k->active);
	if (!r)
		return;
	r->active = k->active;
	text_format_cut(r->selector, sizeof(r->selector), "%s", k->selector);
	text_format_cut(r->value, sizeof(r->value), "%s", k->record);
	strftime(made, sizeof(made), "%Y-%m-%d", gmtime_r(&t, &tm));
	if (k->active)
		text_format_cut(r->comment, sizeof(r->comment), "DKIM (RFC 6376): selector %s, an %s key (%u bits) made %s, signs "
			"mail from %s: receivers fetch this record to verify the signatures. Microsoft and Yahoo require "
			"DKIM of senders of volume.", k->selector, k->type, k->bits, made, z->domain);
	else
		text_format_cut(r->comment, sizeof(r->comment), "DKIM (RFC 6376): selector %s, an %s key made %s, retired: it no "
			"longer signs. Keep this record a few days more, for mail signed with it still on its way, then "
			"remove it and the key (postern dkim list).", k->selector, k->type, made);
}

static void add_dkim(const struct conf *c, struct zone *z)
{
	char err[256];
	size_t before = z->n;
	if (!cli_dkim_keys_each(c, z->domain, take_dkim_key, z, err, sizeof(err)))
		fprintf(stderr, "postern: the DKIM keys of %s: %s\n", z->domain, err);
	bool active = false;
	for (size_t i = before; i < z->n; i++)
		active = active || z->rec[i].active;
	bool any = z->n > before;
	if (active)
		return;
	struct zone_record *r = add(z, ZONE_DKIM_NONE, "DKIM", z->domain, DNS_TXT, true);
	if (!r)
		return;
	r->comment_only = true;
	text_format_cut(r->comment, sizeof(r->comment), "DKIM (RFC 6376): no %sDKIM key: run postern dkim keygen %s, then "
		"postern dns %s again for the record to publish. Microsoft and Yahoo require DKIM of every "
		"sender of volume, Gmail of bulk senders.", any ? "active " : "", z->domain, z->domain);
}

static void add_dmarc(struct zone *z)
{
	char name[DNS_NAME_MAX];
	text_format_cut(name, sizeof(name), "_dmarc.%s", z->domain);
	struct zone_record *r = add(z, ZONE_DMARC, "DMARC", name, DNS_TXT, true);
	text_format_cut(r->value, sizeof(r->value), "v=DMARC1; p=none; rua=mailto:postmaster@%s", z->domain);
	text_format_cut(r->comment, sizeof(r->comment), "DMARC (RFC 7489): start with p=none: receivers send daily reports to "
		"postmaster@%s (rua, a mailbox here; reports to another domain need its consent, §7.1). When the "
		"reports show only your own servers, move to p=quarantine, then p=reject.", z->domain);
}

/* RFC 8461: the _mta-sts TXT record with the id of the policy the web listener serves
 * (conf_mta_sts_policy: one function makes both), the mta-sts.DOMAIN host it is fetched
 * from, and TLS-RPT. */
static void add_mta_sts(const struct conf *c, struct zone *z)
{
	const struct conf_listener *mx = find_listener(c, ROLE_MX, TLS_STARTTLS);
	char name[DNS_NAME_MAX], id[CONF_MTA_STS_ID_MAX];
	text_format_cut(name, sizeof(name), "_mta-sts.%s", z->domain);
	struct zone_record *r = add(z, ZONE_MTA_STS, "MTA-STS", name, DNS_TXT, false);
	if (c->mta_sts_mode == CONF_MTA_STS_OFF) {
		r->comment_only = true;
		text_format_cut(r->value, sizeof(r->value), "v=STSv1; id=1");
		text_format_cut(r->comment, sizeof(r->comment), "MTA-STS (RFC 8461): not published ([mta-sts] mode = off in %s).",
			c->path);
		return;
	}
	if (!mx || !conf_mta_sts_policy(c, z->mta_sts_policy, sizeof(z->mta_sts_policy), id, sizeof(id))) {
		r->comment_only = true;
		text_format_cut(r->value, sizeof(r->value), "v=STSv1; id=1");
		text_format_cut(r->comment, sizeof(r->comment), "MTA-STS (RFC 8461) needs STARTTLS on the mx listener, and no mx listener "
			"of %s offers it (tls = starttls): not published.", c->path);
		return;
	}
	text_format_cut(z->mta_sts_id, sizeof(z->mta_sts_id), "%s", id);
	text_format_cut(r->value, sizeof(r->value), "v=STSv1; id=%s", id);
	text_format_cut(r->comment, sizeof(r->comment), "MTA-STS (RFC 8461): senders that know it deliver to %s only over "
		"verified TLS (listener %s offers STARTTLS; its certificate must be valid for the mx names). [mta-sts] "
		"mode = %s: %s. id is a digest of the policy: a new policy, a new id (publish it with the policy).",
		z->domain, mx->name, c->mta_sts_mode == CONF_MTA_STS_ENFORCE ? "enforce" : c->mta_sts_mode == CONF_MTA_STS_NONE
		? "none" : "testing", c->mta_sts_mode == CONF_MTA_STS_ENFORCE ? "senders refuse to deliver without verified TLS"
		: c->mta_sts_mode == CONF_MTA_STS_NONE ? "the policy is withdrawn (keep it published until max_age has passed)"
		: "problems are reported (TLS-RPT below), nothing is refused; set enforce when the reports are clean");
	text_format_cut(name, sizeof(name), "mta-sts.%s", z->domain);
	r = add(z, ZONE_MTA_STS_HOST, "MTA-STS host", name, DNS_CNAME, false);
	text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
	text_format_cut(r->value, sizeof(r->value), "%s.", z->hostname);
	text_format_cut(r->comment, sizeof(r->comment), "The policy is fetched from https://mta-sts.%s/.well-known/mta-sts.txt "
		"(RFC 8461 §3.3): a listener of role http with tls = implicit on port 443 serves it (its certificate must "
		"be valid for mta-sts.%s). The file:", z->domain, z->domain);
	text_format_cut(name, sizeof(name), "_smtp._tls.%s", z->domain);
	r = add(z, ZONE_TLSRPT, "TLS-RPT", name, DNS_TXT, false);
	text_format_cut(r->value, sizeof(r->value), "v=TLSRPTv1; rua=mailto:postmaster@%s", z->domain);
	text_format_cut(r->comment, sizeof(r->comment), "TLS-RPT (RFC 8460): senders report TLS failures delivering to %s "
		"to postmaster@%s.", z->domain, z->domain);
}

struct service {
	const char *name;           /* RFC 6186 §3.1, RFC 8314 §5.1 */
	enum listener_role role;
	enum tls_mode tls;
	bool exists;                /* Postern has the protocol at all (no IMAP yet) */
};

static const struct service services[] = {
	{ "_submissions._tcp", ROLE_SUBMISSION, TLS_IMPLICIT, true },
	{ "_submission._tcp", ROLE_SUBMISSION, TLS_STARTTLS, true },
	{ "_imaps._tcp", ROLE_SUBMISSION, TLS_IMPLICIT, false },
	{ "_imap._tcp", ROLE_SUBMISSION, TLS_STARTTLS, false },
	{ "_pop3s._tcp", ROLE_POP3, TLS_IMPLICIT, true },
	{ "_pop3._tcp", ROLE_POP3, TLS_STARTTLS, true },
};

static void add_srv(const struct conf *c, struct zone *z)
{
	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
		const struct service *sv = &services[s];
		const struct conf_listener *l = sv->exists ? find_listener(c, sv->role, sv->tls) : NULL;
		char name[DNS_NAME_MAX];
		text_format_cut(name, sizeof(name), "%s.%s", sv->name, z->domain);
		struct zone_record *r = add(z, ZONE_SRV, "SRV", name, DNS_SRV, false);
		if (!r)
			return;
		if (l) {
			r->port = l->port;
			text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
			text_format_cut(r->value, sizeof(r->value), "0 1 %u %s.", l->port, z->hostname);
			text_format_cut(r->comment, sizeof(r->comment), "%s: listener %s, port %u (%s). Mail programs find the server "
				"from the address alone (RFC 6186, RFC 8314 §5.1).", sv->name, l->name, l->port,
				sv->tls == TLS_IMPLICIT ? "TLS from the first byte" : "STARTTLS");
		} else {
			text_format_cut(r->target, sizeof(r->target), ".");
			text_format_cut(r->value, sizeof(r->value), "0 0 0 .");
			text_format_cut(r->comment, sizeof(r->comment), "%s: not offered (%s), said so with a null record "
				"(RFC 6186 §3.4) so mail programs do not guess.", sv->name,
				sv->exists ? "no listener with this role and TLS mode" : "Postern has no IMAP yet");
		}
	}
}

static void add_aliases(const struct conf *c, struct zone *z)
{
	static const char *const names[] = { "autoconfig", "autodiscover" };
	for (size_t i = 0; i < 2; i++) {
		char name[DNS_NAME_MAX];
		text_format_cut(name, sizeof(name), "%s.%s", names[i], z->domain);
		struct zone_record *r = add(z, ZONE_ALIAS, names[i], name, DNS_CNAME, false);
		text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
		text_format_cut(r->value, sizeof(r->value), "%s.", z->hostname);
		text_format_cut(r->comment, sizeof(r->comment), "%s.%s: %s the settings there (%s); a listener of role "
			"http whose services list autoconfig answers (%s).", names[i], z->domain,
			i == 0 ? "Thunderbird and other mail programs fetch" : "Outlook fetches", i == 0 ? "autoconfig" : "Autodiscover",
			i == 0 ? "http or https" : "https on port 443, with a certificate valid for this name");
	}
	/* Outlook asks this SRV record when autodiscover.DOMAIN does not answer, then the
	 * host it names on https (the Autodiscover protocol's "SRV lookup" step). */
	char name[DNS_NAME_MAX];
	text_format_cut(name, sizeof(name), "_autodiscover._tcp.%s", z->domain);
	struct zone_record *r = add(z, ZONE_SRV, "SRV", name, DNS_SRV, false);
	if (!r)
		return;
	const struct conf_listener *https = find_listener(c, ROLE_HTTP, TLS_IMPLICIT);
	r->port = https && https->port ? https->port : 443;
	text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
	text_format_cut(r->value, sizeof(r->value), "0 0 %u %s.", r->port, z->hostname);
	text_format_cut(r->comment, sizeof(r->comment), "_autodiscover._tcp: where Outlook finds Autodiscover when "
		"autodiscover.%s does not answer: https on %s port %u (%s%s).", z->domain, z->hostname, r->port,
		https ? "listener " : "no listener of role http with tls = implicit here: a proxy in front", https ? https->name : "");
}

bool zone_reverse_name(const char *address, char *out, size_t outsz)
{
	unsigned char b[16];
	if (inet_pton(AF_INET, address, b) == 1) {
		text_format_cut(out, outsz, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		return true;
	}
	if (inet_pton(AF_INET6, address, b) != 1 || outsz < 74)
		return false;
	size_t o = 0;
	for (int i = 15; i >= 0; i--)
		o += (size_t)snprintf(out + o, outsz - o, "%x.%x.", b[i] & 15, b[i] >> 4);
	text_format_cut(out + o, outsz - o, "ip6.arpa");
	return true;
}

static void add_ptr(struct zone *z)
{
	char rev[DNS_NAME_MAX];
	if (!z->address[0] || !zone_reverse_name(z->address, rev, sizeof(rev)))
		return;
	struct zone_record *r = add(z, ZONE_PTR, "PTR", rev, DNS_PTR, true);
	r->comment_only = true;
	text_format_cut(r->target, sizeof(r->target), "%s", z->hostname);
	text_format_cut(r->value, sizeof(r->value), "%s.", z->hostname);
	text_format_cut(r->comment, sizeof(r->comment), "Reverse DNS: %s must name %s (and %s resolve back to it), or Gmail "
		"refuses with " ENH_PERM_REVERSE_DNS ". It lives in the provider's zone for the address, not in %s: ask whoever gave "
		"you %s to set it.", z->address, z->hostname, z->hostname, z->domain, z->address);
}

bool zone_build(const struct conf *c, const char *domain, const char *address, struct zone *z,
	char *err, size_t errlen)
{
	memset(z, 0, sizeof(*z));
	unsigned char b[16];
	if (address && address[0] && inet_pton(AF_INET, address, b) != 1 && inet_pton(AF_INET6, address, b) != 1) {
		text_format_cut(err, errlen, "--address %s is not a numeric IPv4 or IPv6 address", address);
		return false;
	}
	text_format_cut(z->domain, sizeof(z->domain), "%s", domain);
	text_format_cut(z->hostname, sizeof(z->hostname), "%s", c->hostname);
	choose_address(c, address, z);
	add_mx_and_address(c, z);
	add_spf(c, z);
	add_dkim(c, z);
	add_dmarc(z);
	add_mta_sts(c, z);
	add_srv(c, z);
	add_aliases(c, z);
	add_ptr(z);
	return true;
}

/* TXT rdata: quoted strings of at most 255 octets, '"' and '\' escaped (RFC 1035 §5.1). */
static void txt_rdata(const char *text, char *out, size_t outsz)
{
	size_t o = 0, in_string = 0;
	if (outsz < 3)
		return;
	out[o++] = '"';
	for (const char *p = text; *p && o + 5 < outsz; p++) {
		if (in_string == 255) {
			o += (size_t)snprintf(out + o, outsz - o, "\" \"");
			in_string = 0;
		}
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
		in_string++;
	}
	out[o++] = '"';
	out[o] = '\0';
}

void zone_record_line(const struct zone_record *r, char *out, size_t outsz)
{
	char rdata[ZONE_VALUE_MAX + 64];
	if (r->type == DNS_TXT)
		txt_rdata(r->value, rdata, sizeof(rdata));
	else
		text_format_cut(rdata, sizeof(rdata), "%s", r->value);
	text_format_cut(out, outsz, "%s.\t%d\tIN\t%s\t%s", r->name, ZONE_TTL, dns_type_name(r->type), rdata);
}

/* A comment wrapped at about 90 columns, each line starting with "; ". */
static void print_comment(FILE *out, const char *text)
{
	const char *p = text;
	while (*p) {
		size_t len = strlen(p), cut = len;
		if (len > 88) {
			cut = 88;
			while (cut > 20 && p[cut] != ' ')
				cut--;
		}
		fprintf(out, "; %.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

void zone_print(const struct zone *z, FILE *out)
{
	fprintf(out, "; DNS records for %s, served by %s (postern dns %s).\n", z->domain, z->hostname, z->domain);
	fprintf(out, "; Zone-file form, absolute names. After publishing: postern dns check %s\n", z->domain);
	char line[ZONE_VALUE_MAX + DNS_NAME_MAX + 128];
	for (size_t i = 0; i < z->n; i++) {
		const struct zone_record *r = &z->rec[i];
		fprintf(out, "\n");
		print_comment(out, r->comment);
		if (r->kind == ZONE_DKIM_NONE)
			continue;
		zone_record_line(r, line, sizeof(line));
		fprintf(out, "%s%s\n", r->comment_only ? "; " : "", line);
		if (r->kind == ZONE_MTA_STS_HOST)
			for (const char *p = z->mta_sts_policy; *p;) {   /* CR LF lines */
				size_t len = strcspn(p, "\r\n");
				fprintf(out, ";     %.*s\n", (int)len, p);
				p += len;
				p += strspn(p, "\r\n");
			}
	}
}
