/* check.c - what is wrong with a configuration: the error message, naming
 * file:line (the first error is kept), and the checks of the configuration as a
 * whole once every line is read: listeners with ports, settings that go together,
 * and no open relay through trusted_networks (invariant 2). */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/internal.h"

void conf_fail(struct parse_state *ps, unsigned line, const char *fmt, ...)
{
	if (ps->failed && !ps->every_error)
		return;   /* keep the first error: it is usually the cause of the rest */
	/* every_error (check-config): the first error first, each further one after a
	 * newline, as long as the buffer holds whole lines */
	size_t used = ps->failed ? strlen(ps->err) : 0;
	if (used + 2 >= ps->errlen)
		return;
	char *at = ps->err + used;
	size_t room = ps->errlen - used;
	int n = snprintf(at, room, "%s%s:%u: ", ps->failed ? "\n" : "", ps->name, line);
	ps->failed = true;
	if (n < 0 || (size_t)n >= room) {
		*at = '\0';
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(at + n, room - (size_t)n, fmt, ap);
	va_end(ap);
	if (used && (m < 0 || (size_t)m >= room - (size_t)n))
		*at = '\0';   /* a later error cut short: leave it out rather than half of it */
}

/* Blocks no Internet client comes from (RFC 1918, RFC 6598 shared space, loopback and
 * link-local; RFC 4193 unique-local, RFC 4291 link-local and loopback): trusting them
 * opens nothing to the world, however wide. */
static const char *const private_blocks[] = {
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"fc00::/7", "fe80::/10", "::1/128",
};

static double pow2(unsigned n)
{
	double v = 1;
	while (n--)
		v *= 2;
	return v;
}

static bool network_within(const struct conf_network *inner, const struct conf_network *outer)
{
	return inner->family == outer->family && inner->prefix >= outer->prefix &&
		conf_network_contains(outer, inner->family, inner->addr);
}

/* Public addresses of one block: its size less the private blocks inside it (CIDR
 * blocks nest or are disjoint, so subtracting each contained one is exact). */
static double public_span(const struct conf_network *n)
{
	unsigned bits = n->family == AF_INET ? 32 : 128;
	double span = pow2(bits - n->prefix);
	for (size_t i = 0; i < sizeof(private_blocks) / sizeof(private_blocks[0]); i++) {
		struct conf_network p;
		if (!conf_parse_network(private_blocks[i], &p) || p.family != n->family)
			continue;
		if (network_within(n, &p))
			return 0;
		if (network_within(&p, n))
			span -= pow2(bits - p.prefix);
	}
	return span;
}

double conf_trusted_public_span(const struct conf *c, int family)
{
	double total = 0;
	for (size_t i = 0; i < c->n_trusted_networks; i++) {
		const struct conf_network *n = &c->trusted_networks[i];
		if (n->family != family)
			continue;
		bool inside_another = false;   /* count a block listed inside another once */
		for (size_t j = 0; j < c->n_trusted_networks && !inside_another; j++)
			inside_another = j != i && network_within(n, &c->trusted_networks[j]) &&
				(n->prefix != c->trusted_networks[j].prefix || j < i);
		if (!inside_another)
			total += public_span(n);
	}
	return total;
}

/* Invariant 2, never an open relay: trusted_networks that together hold more public
 * addresses than one /8 (IPv4) or one /32 (IPv6, a whole provider allocation) let
 * the world relay.  Only an explicit allow_open_relay = yes accepts that. */
static void check_trusted_networks(struct parse_state *ps)
{
	const struct conf *c = ps->c;
	if (c->allow_open_relay)
		return;
	double v4 = conf_trusted_public_span(c, AF_INET), v6 = conf_trusted_public_span(c, AF_INET6);
	bool wide4 = v4 > pow2(24), wide6 = v6 > pow2(96);
	if (!wide4 && !wide6)
		return;
	unsigned line = 0;
	for (size_t i = 0; i < conf_n_settings; i++)
		if (strcmp(conf_settings[i].key, "trusted_networks") == 0)
			line = c->setting_line[i];
	char amount[64];
	if (wide4) {
		snprintf(amount, sizeof(amount), "%.0f public IPv4 addresses (more than a /8)", v4);
	} else {
		unsigned log2 = 0;
		while (log2 < 128 && pow2(log2 + 1) <= v6)
			log2++;
		snprintf(amount, sizeof(amount), "over 2^%u public IPv6 addresses (more than a /32)", log2);
	}
	conf_fail(ps, line, "[server] trusted_networks: covers %s: every client there could relay mail through this "
		"server without logging in, an open relay that spammers find within hours; list only your own networks "
		"(e.g. 192.0.2.0/24), let users log in on a submission listener instead, or set allow_open_relay = yes "
		"in [server] if you really mean it", amount);
}

/* [delivery] files the delivery threads read later, after dropping root: name a
 * missing one now, at its line, rather than in a log line per delivery thread. */
static void check_delivery_files(struct parse_state *ps)
{
	const struct conf *c = ps->c;
	static const char *const keys[] = { "dnssec_trust_anchor", "tls_ca_file" };
	const char *const vals[] = { c->dnssec_trust_anchor, c->tls_ca_file };
	for (size_t k = 0; k < 2; k++) {
		unsigned line = 0;
		for (size_t i = 0; i < conf_n_settings; i++)
			if (strcmp(conf_settings[i].section, "delivery") == 0 && strcmp(conf_settings[i].key, keys[k]) == 0)
				line = c->setting_line[i];
		/* The default trust anchor is used only when installed (see remote.c). */
		if (!line || !vals[k][0] || strcmp(vals[k], "none") == 0 || access(vals[k], R_OK) == 0)
			continue;
		conf_fail(ps, line, "[delivery] %s: cannot read %s%s", keys[k], vals[k],
			k == 0 ? " (a file of DS or DNSKEY records; none: no DNSSEC validation)" : " (a PEM file of CA certificates)");
	}
}

/* The line a [section] key was set on (0: default). */
static unsigned line_of(const struct conf *c, const char *section, const char *key)
{
	for (size_t i = 0; i < conf_n_settings; i++)
		if (strcmp(conf_settings[i].section, section) == 0 && strcmp(conf_settings[i].key, key) == 0)
			return c->setting_line[i];
	return 0;
}

/* [mailauth] dmarc_quarantine_header must be a field name mail can carry. */
static void check_mailauth(struct parse_state *ps)
{
	const struct conf *c = ps->c;
	for (const char *p = c->dmarc_quarantine_header; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == ':') {
			/* RFC 5322 §3.6.8: ftext is printable US-ASCII except ":" */
			conf_fail(ps, line_of(c, "mailauth", "dmarc_quarantine_header"), "[mailauth] dmarc_quarantine_header: "
				"a header field name is printable ASCII without ':' or spaces (e.g. X-Postern-Quarantine)");
			break;
		}
}

/* Role http: TLS is implicit (https, port 443 style) or none (port 80 style); HTTP
 * has no STARTTLS (RFC 2817's Upgrade is not what browsers or mail programs use).
 * `services` belongs to role http only; without it, the default services. */
static void check_http_listener(struct parse_state *ps, struct conf_listener *l)
{
	if (l->role != ROLE_HTTP) {
		if (l->services_set)
			conf_fail(ps, l->line, "[listener %s] services: only a listener with role = http serves web services; "
				"remove the line, or add a [listener NAME] with role = http", l->name);
		return;
	}
	if (l->tls == TLS_STARTTLS)
		conf_fail(ps, l->line, "[listener %s] tls: starttls means nothing to HTTP clients (they never upgrade a "
			"connection): use tls = implicit for https (port 443 style) or tls = none for plain http (port 80 style)", l->name);
	if (l->allow_plaintext_auth)
		conf_fail(ps, l->line, "[listener %s] allow_plaintext_auth: meaningless with role = http (no login there)", l->name);
	if (!l->services_set)
		l->services = CONF_SERVICES_DEFAULT;
	else if (!l->services)
		conf_fail(ps, l->line, "[listener %s] services: empty; list at least one of autoconfig, mta-sts, health, metrics", l->name);
}

/* [cluster]: a node shares its users and its registry row through PostgreSQL, and
 * proves itself to its peers with the shared secret; without both it is no node. */
static void check_cluster(struct parse_state *ps)
{
	const struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		if (l->role != ROLE_LMTP)
			continue;
		if (l->tls != TLS_IMPLICIT)
			conf_fail(ps, l->line, "[listener %s] role lmtp needs tls = implicit: mail between nodes goes over TLS "
				"from the first byte", l->name);
		if (!c->cluster_node[0])
			conf_fail(ps, l->line, "[listener %s] role lmtp takes mail from the other nodes of a cluster: set "
				"[cluster] node (and secret_file), or remove the listener", l->name);
	}
	if (!c->cluster_node[0])
		return;
	size_t n = strlen(c->cluster_node);
	bool name_ok = n <= 32;
	for (size_t i = 0; i < n; i++) {
		char ch = c->cluster_node[i];
		name_ok = name_ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-');
	}
	if (!name_ok)
		conf_fail(ps, ps->line, "[cluster] node: \"%s\" is not a node name: lower-case letters, digits and '-', "
			"at most 32 (e.g. node = node1)", c->cluster_node);
	if (c->directory_backend != CONF_DIRECTORY_POSTGRESQL)
		conf_fail(ps, ps->line, "[cluster] node is set but [directory] backend is not postgresql: the nodes of a "
			"cluster share their users and their registry through one PostgreSQL directory; set [directory] backend = "
			"postgresql and connection, or remove node for a single server");
	if (!c->cluster_secret_file[0])
		conf_fail(ps, ps->line, "[cluster] node is set without secret_file: the nodes prove themselves to each other "
			"with a shared secret; write at least 32 random bytes into a file (head -c 48 /dev/urandom | base64 > "
			"/etc/postern/cluster.secret; chmod 0640), copy it to every node and name it in secret_file");
}

/* Role control: the cluster's tools ask a node over the network (serve/control.h);
 * only the node token proves the asker, so it needs the cluster's secret, and TLS from
 * the first byte so the token is never seen on the wire. */
static void check_control_listener(struct parse_state *ps, const struct conf_listener *l)
{
	if (l->role != ROLE_CONTROL)
		return;
	if (!ps->c->cluster_node[0] || !ps->c->cluster_secret_file[0])
		conf_fail(ps, l->line, "[listener %s] role = control needs [cluster] node and secret_file: a control "
			"connection proves itself with a token signed with the cluster's shared secret", l->name);
	if (l->tls != TLS_IMPLICIT)
		conf_fail(ps, l->line, "[listener %s] role = control needs tls = implicit: the token must never cross the "
			"network in the clear", l->name);
	if (l->allow_plaintext_auth)
		conf_fail(ps, l->line, "[listener %s] allow_plaintext_auth: meaningless with role = control", l->name);
}

/* [mta-sts] mx: host names (RFC 8461 §3.2 "mx" lines: a name, or "*." and a name). */
static void check_mta_sts(struct parse_state *ps)
{
	const struct conf *c = ps->c;
	char names[sizeof(c->mta_sts_mx)];
	snprintf(names, sizeof(names), "%s", c->mta_sts_mx);
	for (char *save = NULL, *n = strtok_r(names, ", \t", &save); n; n = strtok_r(NULL, ", \t", &save)) {
		const char *p = strncmp(n, "*.", 2) == 0 ? n + 2 : n;
		bool ok = *p && *p != '.' && p[strlen(p) - 1] != '.' && strchr(p, '.') && strlen(p) < 254;
		for (; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.';
		if (!ok) {
			conf_fail(ps, line_of(c, "mta-sts", "mx"), "[mta-sts] mx: \"%s\" is not a host name (e.g. mail.example.org, "
				"or *.example.org for every host below it)", n);
			return;
		}
	}
}

bool conf_check_whole(struct parse_state *ps)
{
	struct conf *c = ps->c;
	if (ps->failed && !ps->every_error)
		return false;
	if (c->n_listeners == 0) {
		conf_fail(ps, ps->line, "no [listener NAME] section: add one, e.g. [listener smtp] with port = 25");
		return false;
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		if (!c->listeners[i].port_set) {
			conf_fail(ps, c->listeners[i].line, "[listener %s] port: missing (e.g. port = 25)", c->listeners[i].name);
			return false;
		}
	}
	if (!c->hostname[0])
		conf_fail(ps, ps->line, "[server] hostname: must not be empty");
	if (!c->data_dir[0])
		conf_fail(ps, ps->line, "[server] data_dir: must not be empty");
	if (!c->tls_certificate[0] != !c->tls_key[0])
		conf_fail(ps, ps->line, "[tls] certificate and key go together: set both, or neither for a self-signed certificate");
	for (size_t i = 0; i < c->n_certificates; i++) {
		const struct conf_certificate *cert = &c->certificates[i];
		if (!cert->certificate[0] || !cert->key[0] || cert->n_names == 0)
			conf_fail(ps, cert->line, "[certificate %s]: needs certificate, key and names", cert->name);
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		if (l->allow_plaintext_auth && l->tls == TLS_IMPLICIT)
			conf_fail(ps, l->line, "[listener %s] allow_plaintext_auth: meaningless with tls = implicit", l->name);
		check_http_listener(ps, &c->listeners[i]);
		check_control_listener(ps, &c->listeners[i]);
	}
	if (c->retry_min > c->retry_max)
		conf_fail(ps, ps->line, "[queue] retry_min is longer than retry_max");
	if (c->directory_backend == CONF_DIRECTORY_POSTGRESQL && !c->directory_connection[0])
		conf_fail(ps, ps->line, "[directory] backend = postgresql needs connection, a libpq connection string "
			"(e.g. \"host=127.0.0.1 dbname=postern user=postern\")");
	check_cluster(ps);
	check_trusted_networks(ps);
	check_delivery_files(ps);
	check_mailauth(ps);
	check_mta_sts(ps);
	conf_check_milters(ps);
	return !ps->failed;
}
