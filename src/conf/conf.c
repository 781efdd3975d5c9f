/* conf.c - the settings table and the INI reader (see conf.h).
 *
 * Each [server], [limits] and [queue] key is one row of `settings`: its type, where it
 * lives in struct conf, its default, its bounds and a line of help.  The same table
 * fills defaults, parses and checks the file.  [listener NAME] sections have their own
 * small table.  Errors are "file:line: [section] key: what is wrong". */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

const char conf_embedded_default[] =
	"[server]\n"
	"hostname = localhost\n"
	"data_dir = ./var\n"
	"local_domains = example.test\n"
	"\n"
	"[listener smtp]\n"
	"address = 127.0.0.1\n"
	"port = 2525\n"
	"role = mx\n"
	"tls = starttls\n"
	"\n"
	"[listener submission]\n"
	"address = 127.0.0.1\n"
	"port = 2587\n"
	"role = submission\n"
	"tls = starttls\n"
	"\n"
	"[listener submissions]\n"
	"address = 127.0.0.1\n"
	"port = 2465\n"
	"role = submission\n"
	"tls = implicit\n"
	"\n"
	"[listener pop3]\n"
	"address = 127.0.0.1\n"
	"port = 2110\n"
	"role = pop3\n"
	"tls = starttls\n"
	"\n"
	"[listener pop3s]\n"
	"address = 127.0.0.1\n"
	"port = 2995\n"
	"role = pop3\n"
	"tls = implicit\n";

enum setting_type { T_STRING, T_SIZE, T_DURATION, T_COUNT, T_DOMAINS, T_NETWORKS, T_BOOL, T_TLS };

struct setting {
	const char *section;
	const char *key;
	enum setting_type type;
	size_t offset;        /* into struct conf */
	size_t size;          /* for T_STRING: the array size */
	const char *def;
	uint64_t min, max;
	const char *help;
};

#define STR(sec, k, def, help) { sec, #k, T_STRING, offsetof(struct conf, k), sizeof(((struct conf *)0)->k), def, 0, 0, help }
#define NUM(sec, k, t, def, lo, hi, help) { sec, #k, t, offsetof(struct conf, k), 0, def, lo, hi, help }

static const struct setting settings[] = {
	STR("server", hostname, "localhost", "name in the greeting, EHLO reply and Received headers"),
	STR("server", data_dir, "./var", "directory for directory.db, queue/ and mail/"),
	STR("server", user, "", "user to run as after binding, when started as root"),
	{ "server", "run_as_root", T_BOOL, offsetof(struct conf, run_as_root), 0, "no", 0, 0,
		"started as root without user =, keep serving as root (refused otherwise)" },
	{ "server", "local_domains", T_DOMAINS, 0, 0, "", 0, 0, "domains delivered locally" },
	STR("server", postmaster, "", "mailbox for postmaster@ of local domains without one"),
	NUM("server", pop_before_smtp, T_DURATION, "0", 0, 86400, "relay for an address that logged in to POP3 this recently (0: off)"),
	{ "server", "trusted_networks", T_NETWORKS, 0, 0, "", 0, 0, "client networks allowed to relay without logging in" },
	{ "server", "allow_open_relay", T_BOOL, offsetof(struct conf, allow_open_relay), 0, "no", 0, 0,
		"accept trusted_networks wider than " "a public /8 (IPv4) or /32 (IPv6): anyone there may relay" },
	NUM("server", shutdown_timeout, T_DURATION, "10s", 1, 600, "longest stop on SIGTERM: clients and outbound deliveries still running then are cut off"),
	{ "tls", "certificate", T_STRING, offsetof(struct conf, tls_certificate), sizeof(((struct conf *)0)->tls_certificate), "", 0, 0, "PEM certificate chain; empty: generate a self-signed one" },
	{ "tls", "key", T_STRING, offsetof(struct conf, tls_key), sizeof(((struct conf *)0)->tls_key), "", 0, 0, "PEM private key" },
	{ "tls", "ciphers", T_STRING, offsetof(struct conf, tls_ciphers), sizeof(((struct conf *)0)->tls_ciphers),
		"ECDHE+AESGCM:ECDHE+CHACHA20", 0, 0, "TLS 1.2 cipher list (TLS 1.3 suites are OpenSSL's defaults)" },
	{ "auth", "account_ip_failures", T_COUNT, offsetof(struct conf, auth_account_ip_failures), 0, "5", 1, 100000, "failed logins to one account from one address before that pair (only) is blocked" },
	{ "auth", "ip_accounts", T_COUNT, offsetof(struct conf, auth_ip_accounts), 0, "5", 2, 32, "distinct accounts failing to log in from one address before the address is blocked (password spraying)" },
	{ "auth", "ip_failures", T_COUNT, offsetof(struct conf, auth_ip_failures), 0, "50", 1, 100000, "failed logins from one address, over all accounts, before the address is blocked" },
	{ "auth", "known_for", T_DURATION, offsetof(struct conf, auth_known_for), 0, "7d", 0, 7776000, "an account that logged in from an address is not blocked by the address's block for this long (0: never)" },
	{ "auth", "window", T_DURATION, offsetof(struct conf, auth_window), 0, "15m", 10, 86400, "how long a failed login is remembered" },
	{ "auth", "block", T_DURATION, offsetof(struct conf, auth_block), 0, "15m", 10, 86400, "how long a block lasts" },
	{ "auth", "cache_ttl", T_DURATION, offsetof(struct conf, auth_cache_ttl), 0, "1h", 0, 86400, "how long a successful password check is remembered (0: never)" },
	{ "auth", "legacy_app_passwords", T_BOOL, offsetof(struct conf, auth_legacy_app_passwords), 0, "yes", 0, 0, "accept app passwords made before they had selectors (each costs one hash check more for passwords of their form); no once all are reissued" },
	{ "auth", "check_from_header", T_BOOL, offsetof(struct conf, check_from_header), 0, "yes", 0, 0, "the From: of submitted mail must be an address the user owns" },
	NUM("limits", message_size, T_SIZE, "25M", 1024, 2ull << 30, "largest message accepted (SIZE)"),
	NUM("limits", recipients, T_COUNT, "100", 1, 10000, "recipients per message"),
	NUM("limits", line_length, T_COUNT, "1000", 512, 65536, "longest command line, CRLF included"),
	NUM("limits", message_line_length, T_COUNT, "10000", 998, 1000000, "longest line in a message (CRLF not counted); longer: 550 5.6.0"),
	NUM("limits", idle_timeout, T_DURATION, "5m", 10, 3600, "silence before a client is dropped"),
	NUM("limits", connections, T_COUNT, "1000", 1, 100000, "concurrent connections in total"),
	NUM("limits", connections_per_ip, T_COUNT, "20", 1, 100000, "concurrent connections per client address"),
	NUM("limits", connections_reserved, T_COUNT, "10", 0, 50, "percent of connections kept for addresses that have none open"),
	NUM("limits", bad_commands, T_COUNT, "10", 1, 1000, "bad commands before the session is closed"),
	NUM("limits", line_timeout, T_DURATION, "1m", 1, 3600, "time to send one command line, first byte to line end"),
	NUM("limits", data_min_rate, T_SIZE, "1K", 0, 1ull << 30, "slowest message transfer, octets per second (0: no minimum)"),
	NUM("limits", data_rate_grace, T_DURATION, "30s", 1, 3600, "time into DATA/BDAT before data_min_rate applies"),
	NUM("limits", tls_handshake_timeout, T_DURATION, "30s", 1, 600, "time to complete a TLS handshake"),
	NUM("limits", login_timeout, T_DURATION, "2m", 1, 3600, "submission and POP3: time from connecting to logging in"),
	NUM("limits", session_timeout, T_DURATION, "1h", 1, 86400, "longest session"),
	NUM("limits", refused_recipients, T_COUNT, "50", 1, 100000, "recipients refused as unknown (or relaying denied) in one session before it is closed with 421 4.7.0"),
	NUM("limits", refused_recipients_delay_after, T_COUNT, "10", 0, 100000, "refused recipients answered at once; each one after waits longer"),
	NUM("limits", refused_recipient_delay_ms, T_COUNT, "250", 0, 5000, "added wait per refused recipient past the allowance, in milliseconds (at most 5 s each; 0: never wait)"),
	STR("delivery", resolver, "", "DNS server to ask (ADDR or ADDR@PORT); empty: /etc/resolv.conf"),
	NUM("delivery", remote_port, T_COUNT, "25", 1, 65535, "port of remote mail servers"),
	NUM("delivery", max_lifetime, T_DURATION, "5d", 1, 30 * 86400, "how long a message is retried before it is returned"),
	NUM("delivery", delay_notice, T_DURATION, "4h", 0, 30 * 86400, "when the sender is told a message is delayed (0: never)"),
	NUM("delivery", domain_concurrency, T_COUNT, "10", 1, 1000, "deliveries at once to one domain"),
	NUM("delivery", connect_timeout, T_DURATION, "30s", 1, 600, "time to connect to a remote server"),
	NUM("delivery", command_timeout, T_DURATION, "5m", 1, 3600, "time to wait for each remote reply"),
	NUM("delivery", messages_per_connection, T_COUNT, "50", 1, 10000, "messages sent over one remote connection"),
	{ "relay", "host", T_STRING, offsetof(struct conf, relay_host), sizeof(((struct conf *)0)->relay_host), "", 0, 0, "smarthost: send all non-local mail through this server" },
	{ "relay", "port", T_COUNT, offsetof(struct conf, relay_port), 0, "587", 1, 65535, "smarthost port" },
	{ "relay", "tls", T_TLS, offsetof(struct conf, relay_tls), 0, "starttls", 0, 0, "smarthost TLS: starttls, implicit or none" },
	{ "relay", "tls_verify", T_BOOL, offsetof(struct conf, relay_tls_verify), 0, "yes", 0, 0, "refuse a smarthost certificate that does not verify" },
	{ "relay", "credentials", T_STRING, offsetof(struct conf, relay_credentials), sizeof(((struct conf *)0)->relay_credentials), "", 0, 0, "file with \"user password\" for the smarthost (mode 600)" },
	{ "quota", "full_is_permanent", T_BOOL, offsetof(struct conf, quota_full_permanent), 0, "no", 0, 0, "a full mailbox gets 552 5.2.2 (permanent) instead of 452 4.2.2" },
	{ "quota", "warning_percent", T_COUNT, offsetof(struct conf, quota_warning_percent), 0, "90", 1, 100, "usage at which the owner is warned, once" },
	NUM("queue", commit_threads, T_COUNT, "4", 1, 64, "threads that fsync accepted messages"),
	NUM("queue", delivery_threads, T_COUNT, "4", 1, 256, "threads that deliver (local and remote)"),
	NUM("queue", retry_min, T_DURATION, "5m", 1, 86400, "first wait after a temporary failure"),
	NUM("queue", retry_max, T_DURATION, "1h", 1, 7 * 86400, "longest wait between attempts"),
	NUM("queue", min_free, T_SIZE, "64M", 0, 1ull << 40, "free space kept on the queue's filesystem: below it MAIL gets 452 4.3.1"),
	NUM("queue", cleanup_interval, T_DURATION, "1h", 1, 7 * 86400, "how often leftovers (old Maildir tmp/ files, stale queue files) are removed"),
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))
_Static_assert(N_SETTINGS <= CONF_MAX_SETTINGS, "raise CONF_MAX_SETTINGS");

/* Bounds of the repeat check: far above what the settings table and the listener and
 * certificate limits allow, so a real file never reaches them. */
#define CONF_MAX_SECTIONS 64
#define CONF_MAX_KEYS 512

struct parse_state {
	struct conf *c;
	const char *name;
	unsigned line;          /* current line, counted by the reader */
	char *err;
	size_t errlen;
	bool failed;
	/* stream reading */
	const char *text;       /* for strings */
	size_t pos, len;
	FILE *fp;               /* for files */
	char section[128];      /* current section, tracked by the reader */
	bool continuation;      /* the current line starts with a blank (inih: continues the last key) */
	/* Every section header and key seen, so that a repeat is refused instead of
	 * silently merged (two [listener mx] sections once lost a listener). */
	struct seen_section { char name[128]; unsigned line; } sections[CONF_MAX_SECTIONS];
	size_t n_sections;
	size_t cur_section;     /* index into sections; n_sections when before any */
	struct seen_key { size_t section; char key[64]; unsigned line; } keys[CONF_MAX_KEYS];
	size_t n_keys;
};

static void fail(struct parse_state *ps, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct parse_state *ps, unsigned line, const char *fmt, ...)
{
	if (ps->failed)
		return;   /* keep the first error: it is usually the cause of the rest */
	ps->failed = true;
	int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool set_string(char *dst, size_t dstsz, const char *v)
{
	size_t n = strlen(v);
	if (n >= dstsz)
		return false;
	memcpy(dst, v, n + 1);
	return true;
}

/* A domain list: commas and/or spaces between names; names lower-cased. */
static const char *set_domains(struct conf *c, const char *v)
{
	c->n_local_domains = 0;
	char tmp[4096];
	if (!set_string(tmp, sizeof(tmp), v))
		return "the list is too long";
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (c->n_local_domains >= CONF_MAX_DOMAINS)
			return "too many domains (at most 64 here; add more with `postern domain add`)";
		size_t n = strlen(tok);
		if (n == 0 || n >= CONF_NAME_MAX || tok[n - 1] == '.' || tok[0] == '.')
			return "a domain name is empty, too long, or starts or ends with a dot";
		for (size_t i = 0; i < n; i++) {
			char ch = tok[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
				return "a domain name may hold only letters, digits, '-' and '.'";
		}
		ascii_lower(tok);
		memcpy(c->local_domains[c->n_local_domains++], tok, n + 1);
	}
	return NULL;
}

bool conf_parse_network(const char *s, struct conf_network *out)
{
	char tmp[80];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return false;
	memset(out, 0, sizeof(*out));
	char *slash = strchr(tmp, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		return false;
	}
	if (slash) {
		uint64_t p;
		if (!parse_u64(slash + 1, strlen(slash + 1), &p) || p > out->prefix)
			return false;
		out->prefix = (unsigned)p;
	}
	return true;
}

bool conf_network_contains(const struct conf_network *n, int family, const unsigned char *addr)
{
	if (n->family != family)
		return false;
	unsigned full = n->prefix / 8, rest = n->prefix % 8;
	if (memcmp(n->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (n->addr[full] & mask) == (addr[full] & mask);
}

bool conf_is_trusted(const struct conf *c, const char *addr)
{
	unsigned char a[16];
	int family = AF_INET;
	if (inet_pton(AF_INET, addr, a) != 1) {
		if (inet_pton(AF_INET6, addr, a) != 1)
			return false;
		family = AF_INET6;
	}
	for (size_t i = 0; i < c->n_trusted_networks; i++)
		if (conf_network_contains(&c->trusted_networks[i], family, a))
			return true;
	return false;
}

bool conf_wants_tls(const struct conf *c)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].tls != TLS_NONE)
			return true;
	return false;
}

static const char *set_networks(struct conf *c, const char *v)
{
	c->n_trusted_networks = 0;
	char tmp[4096];
	if (!set_string(tmp, sizeof(tmp), v))
		return "the list is too long";
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (c->n_trusted_networks >= CONF_MAX_NETWORKS)
			return "too many networks (at most 64)";
		if (!conf_parse_network(tok, &c->trusted_networks[c->n_trusted_networks]))
			return "a network is not an address or address/prefix (e.g. 192.0.2.0/24, 2001:db8::/32)";
		c->n_trusted_networks++;
	}
	return NULL;
}

static int conf_ini_handler(void *user, const char *section, const char *key, const char *value);

static const char *set_value(struct conf *c, const struct setting *s, const char *v)
{
	char *base = (char *)c;
	uint64_t n;
	switch (s->type) {
	case T_STRING:
		return set_string(base + s->offset, s->size, v) ? NULL : "the value is too long";
	case T_DOMAINS:
		return set_domains(c, v);
	case T_NETWORKS:
		return set_networks(c, v);
	case T_BOOL:
		return parse_bool(v, (bool *)(void *)(base + s->offset)) ? NULL : "is not yes or no";
	case T_TLS: {
		enum tls_mode *m = (enum tls_mode *)(void *)(base + s->offset);
		if (strcmp(v, "none") == 0)
			*m = TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			*m = TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			*m = TLS_IMPLICIT;
		else
			return "is not none, starttls or implicit";
		return NULL;
	}
	case T_SIZE:
		if (!parse_size(v, &n))
			return "is not a size (use a byte count or a number with K, M or G, e.g. 10M)";
		break;
	case T_DURATION:
		if (!parse_duration(v, &n))
			return "is not a duration (use seconds or a number with s, m, h or d, e.g. 5m)";
		break;
	case T_COUNT:
		if (!parse_u64(v, strlen(v), &n))
			return "is not a whole number";
		break;
	}
	if (n < s->min || n > s->max)
		return "is out of range";
	*(uint64_t *)(void *)(base + s->offset) = n;
	return NULL;
}

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *e = set_value(c, &settings[i], settings[i].def);
		(void)e;   /* defaults are valid by construction; the unit test checks */
	}
}

/* The line of the current section's header (inih reports sections only with keys). */
static unsigned section_line(const struct parse_state *ps)
{
	return ps->cur_section < ps->n_sections ? ps->sections[ps->cur_section].line : ps->line;
}

static struct conf_listener *listener_for(struct parse_state *ps, const char *name)
{
	struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_listeners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	if (c->n_listeners >= CONF_MAX_LISTENERS) {
		fail(ps, ps->line, "[listener %s]: too many listeners (at most %d)", name, CONF_MAX_LISTENERS);
		return NULL;
	}
	struct conf_listener *l = &c->listeners[c->n_listeners++];
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->address, sizeof(l->address), "127.0.0.1");
	l->role = ROLE_MX;
	l->tls = TLS_NONE;
	l->line = section_line(ps);
	return l;
}

static void listener_key(struct parse_state *ps, const char *lname, const char *key, const char *v)
{
	struct conf_listener *l = listener_for(ps, lname);
	if (!l)
		return;
	if (strcmp(key, "address") == 0) {
		unsigned char tmp[16];
		if (inet_pton(AF_INET, v, tmp) != 1 && inet_pton(AF_INET6, v, tmp) != 1)
			fail(ps, ps->line, "[listener %s] address: \"%s\" is not an IPv4 or IPv6 address", lname, v);
		else
			snprintf(l->address, sizeof(l->address), "%s", v);
	} else if (strcmp(key, "port") == 0) {
		uint64_t n;
		if (!parse_u64(v, strlen(v), &n) || n > 65535)
			fail(ps, ps->line, "[listener %s] port: \"%s\" is not a port number (0-65535)", lname, v);
		else {
			l->port = (unsigned)n;
			l->port_set = true;
		}
	} else if (strcmp(key, "role") == 0) {
		if (strcmp(v, "mx") == 0)
			l->role = ROLE_MX;
		else if (strcmp(v, "submission") == 0)
			l->role = ROLE_SUBMISSION;
		else if (strcmp(v, "pop3") == 0)
			l->role = ROLE_POP3;
		else
			fail(ps, ps->line, "[listener %s] role: \"%s\" is not mx, submission or pop3", lname, v);
	} else if (strcmp(key, "tls") == 0) {
		if (strcmp(v, "none") == 0)
			l->tls = TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			l->tls = TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			l->tls = TLS_IMPLICIT;
		else
			fail(ps, ps->line, "[listener %s] tls: \"%s\" is not none, starttls or implicit", lname, v);
	} else if (strcmp(key, "allow_plaintext_auth") == 0) {
		if (!parse_bool(v, &l->allow_plaintext_auth))
			fail(ps, ps->line, "[listener %s] allow_plaintext_auth: \"%s\" is not yes or no", lname, v);
	} else {
		fail(ps, ps->line, "[listener %s] %s: unknown setting (known: address, port, role, tls, allow_plaintext_auth)", lname, key);
	}
}

static struct conf_certificate *certificate_for(struct parse_state *ps, const char *name)
{
	struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_certificates; i++)
		if (strcmp(c->certificates[i].name, name) == 0)
			return &c->certificates[i];
	if (c->n_certificates >= CONF_MAX_CERTS) {
		fail(ps, ps->line, "[certificate %s]: too many certificates (at most %d)", name, CONF_MAX_CERTS);
		return NULL;
	}
	struct conf_certificate *cert = &c->certificates[c->n_certificates++];
	memset(cert, 0, sizeof(*cert));
	snprintf(cert->name, sizeof(cert->name), "%s", name);
	cert->line = section_line(ps);
	return cert;
}

static void certificate_key(struct parse_state *ps, const char *cname, const char *key, const char *v)
{
	struct conf_certificate *cert = certificate_for(ps, cname);
	if (!cert)
		return;
	if (strcmp(key, "certificate") == 0 || strcmp(key, "key") == 0) {
		char *dst = key[0] == 'c' ? cert->certificate : cert->key;
		if (!set_string(dst, CONF_PATH_MAX, v))
			fail(ps, ps->line, "[certificate %s] %s: the path is too long", cname, key);
	} else if (strcmp(key, "names") == 0) {
		char tmp[4096];
		cert->n_names = 0;
		if (!set_string(tmp, sizeof(tmp), v)) {
			fail(ps, ps->line, "[certificate %s] names: the list is too long", cname);
			return;
		}
		for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			if (cert->n_names >= CONF_MAX_DOMAINS || strlen(tok) >= CONF_NAME_MAX) {
				fail(ps, ps->line, "[certificate %s] names: too many or too long", cname);
				return;
			}
			ascii_lower(tok);
			memcpy(cert->names[cert->n_names++], tok, strlen(tok) + 1);
		}
	} else {
		fail(ps, ps->line, "[certificate %s] %s: unknown setting (known: certificate, key, names)", cname, key);
	}
}

/* A key set twice in one section: the first value would silently lose.  A line that
 * starts with a blank is, to inih, a continuation of the previous key: say so. */
static bool note_key(struct parse_state *ps, const char *section, const char *key)
{
	if (ps->cur_section >= ps->n_sections)
		return true;   /* before any section: the unknown-section error follows */
	if (strlen(key) >= sizeof(ps->keys[0].key))
		return true;   /* no such setting: the unknown-setting error follows */
	for (size_t i = 0; i < ps->n_keys; i++) {
		const struct seen_key *k = &ps->keys[i];
		if (k->section != ps->cur_section || strcmp(k->key, key) != 0)
			continue;
		if (ps->continuation)
			fail(ps, ps->line, "[%s] %s: a line that starts with a space or tab continues the line before it (%s:%u); "
				"remove the indentation and put each setting on its own line", section, key, ps->name, k->line);
		else
			fail(ps, ps->line, "[%s] %s: set twice, first at %s:%u; only one value can hold: delete one of the two lines",
				section, key, ps->name, k->line);
		return false;
	}
	if (ps->n_keys >= CONF_MAX_KEYS) {
		fail(ps, ps->line, "too many settings (at most %d in one file)", CONF_MAX_KEYS);
		return false;
	}
	struct seen_key *k = &ps->keys[ps->n_keys++];
	k->section = ps->cur_section;
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->line = ps->line;
	return true;
}

static int conf_ini_handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *ps = user;
	if (key && !note_key(ps, section, key))
		return 1;
	if (strncmp(section, "certificate ", 12) == 0) {
		const char *cname = section + 12;
		while (*cname == ' ')
			cname++;
		if (!*cname || strlen(cname) >= 64) {
			fail(ps, ps->line, "[%s]: a certificate section needs a short name", section);
			return 1;
		}
		if (key)
			certificate_key(ps, cname, key, value);
		return 1;
	}
	if (strncmp(section, "listener", 8) == 0 && (section[8] == ' ' || section[8] == '\0')) {
		const char *lname = section[8] ? section + 9 : "";
		while (*lname == ' ')
			lname++;
		if (!*lname || strlen(lname) >= 64) {
			fail(ps, ps->line, "[%s]: a listener section needs a short name, e.g. [listener smtp]", section);
			return 1;
		}
		if (!key)   /* new section */
			return listener_for(ps, lname) != NULL;
		listener_key(ps, lname, key, value);
		return 1;
	}
	bool known_section = false;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcmp(settings[i].section, section) != 0)
			continue;
		known_section = true;
		if (!key || strcmp(settings[i].key, key) != 0)
			continue;
		const char *e = set_value(ps->c, &settings[i], value);
		ps->c->setting_line[i] = ps->line;
		if (e) {
			if (settings[i].type == T_SIZE || settings[i].type == T_DURATION || settings[i].type == T_COUNT)
				fail(ps, ps->line, "[%s] %s: \"%s\" %s (allowed %llu to %llu)", section, key, value, e,
					(unsigned long long)settings[i].min, (unsigned long long)settings[i].max);
			else
				fail(ps, ps->line, "[%s] %s: %s", section, key, e);
		}
		return 1;
	}
	if (!known_section)
		fail(ps, ps->line, "[%s]: unknown section (known: server, limits, quota, queue, delivery, relay, tls, auth, listener NAME, certificate NAME)", section);
	else if (key)
		fail(ps, ps->line, "[%s] %s: unknown setting", section, key);
	return 1;
}

/* inih reads through our reader, which counts lines for error messages.  Debian's
 * inih is built with a 200-octet line buffer, too small for a long local_domains
 * list or path; a longer line is parsed here (section tracked, "key = value"
 * split, inline "; comment" dropped) and inih is handed an empty comment instead. */
#define PHYS_LINE_MAX 8192

static bool next_physical_line(struct parse_state *ps, char *line, size_t *len, bool *too_long)
{
	*len = 0;
	*too_long = false;
	if (ps->fp) {
		int ch;
		bool any = false;
		while ((ch = fgetc(ps->fp)) != EOF) {
			any = true;
			if (*len < PHYS_LINE_MAX - 1)
				line[(*len)++] = (char)ch;
			else
				*too_long = true;
			if (ch == '\n')
				break;
		}
		line[*len] = '\0';
		return any;
	}
	if (ps->pos >= ps->len)
		return false;
	while (ps->pos < ps->len) {
		char ch = ps->text[ps->pos++];
		if (*len < PHYS_LINE_MAX - 1)
			line[(*len)++] = ch;
		else
			*too_long = true;
		if (ch == '\n')
			break;
	}
	line[*len] = '\0';
	return true;
}

static char *trim(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		p[--n] = '\0';
	return p;
}

/* "listener   smtp" and "listener smtp" name one listener: compare sections with
 * runs of blanks folded into one and none at the ends. */
static void fold_blanks(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	bool blank = false;
	for (; *in && o + 1 < outsz; in++) {
		if (*in == ' ' || *in == '\t') {
			blank = o > 0;
			continue;
		}
		if (blank && o + 2 < outsz)
			out[o++] = ' ';
		blank = false;
		out[o++] = *in;
	}
	out[o] = '\0';
}

/* A section named twice would merge into one (a listener's port and address from
 * two places): refuse it, naming both lines. */
static void note_section(struct parse_state *ps)
{
	char name[128];
	fold_blanks(ps->section, name, sizeof(name));
	for (size_t i = 0; i < ps->n_sections; i++) {
		if (strcmp(ps->sections[i].name, name) != 0)
			continue;
		fail(ps, ps->line, "[%s] appears twice, first at %s:%u; two sections with one name would merge into one "
			"(a listener or certificate would be lost): give each its own name, or put all its settings in one section",
			name, ps->name, ps->sections[i].line);
		ps->cur_section = i;
		return;
	}
	if (ps->n_sections >= CONF_MAX_SECTIONS) {
		fail(ps, ps->line, "too many sections (at most %d)", CONF_MAX_SECTIONS);
		ps->cur_section = ps->n_sections;
		return;
	}
	struct seen_section *sec = &ps->sections[ps->n_sections];
	snprintf(sec->name, sizeof(sec->name), "%s", name);
	sec->line = ps->line;
	ps->cur_section = ps->n_sections++;
}

/* Remember the section of each "[name]" line, as inih will see it, and whether a
 * line is one inih would read as the continuation of the previous key. */
static void track_section(struct parse_state *ps, const char *line)
{
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	ps->continuation = p > line && *p && *p != '\r' && *p != '\n' && *p != ';' && *p != '#' && *p != '[';
	if (*p != '[')
		return;
	const char *e = strchr(p, ']');
	if (!e)
		return;
	snprintf(ps->section, sizeof(ps->section), "%.*s", (int)(e - p - 1), p + 1);
	note_section(ps);
}

/* A line too long for inih: handle "key = value" ourselves. */
static void long_line(struct parse_state *ps, char *line)
{
	char *p = trim(line);
	if (*p == ';' || *p == '#' || *p == '\0')
		return;
	char *eq = strpbrk(p, "=:");
	if (*p == '[' || !eq) {
		fail(ps, ps->line, "a line this long must be \"key = value\"");
		return;
	}
	*eq = '\0';
	char *key = trim(p);
	char *value = eq + 1;
	/* inline comment: " ;" as inih treats it */
	for (char *q = value; *q; q++)
		if (*q == ';' && q > value && (q[-1] == ' ' || q[-1] == '\t')) {
			*q = '\0';
			break;
		}
	conf_ini_handler(ps, ps->section, key, trim(value));
}

static char *conf_reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	static _Thread_local char line[PHYS_LINE_MAX];
	size_t len;
	bool too_long;
	if (num < 4 || !next_physical_line(ps, line, &len, &too_long))
		return NULL;
	ps->line++;
	if (too_long) {
		fail(ps, ps->line, "line too long (at most %d octets)", PHYS_LINE_MAX - 1);
		snprintf(str, (size_t)num, ";\n");
		return str;
	}
	const char *first = line + strspn(line, " \t");
	if (*first == '[' && !strchr(first, ']')) {
		fail(ps, ps->line, "syntax error: a section header needs a closing ] (e.g. [server])");
		snprintf(str, (size_t)num, ";\n");
		return str;
	}
	if (len < (size_t)num - 1) {
		track_section(ps, line);
		memcpy(str, line, len + 1);
		return str;
	}
	ps->continuation = false;   /* read here, not by inih: no continuation */
	long_line(ps, line);
	snprintf(str, (size_t)num, ";\n");
	return str;
}

const char *conf_where(const struct conf *c, const char *section, const char *key, char *out, size_t outsz)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcmp(settings[i].section, section) != 0 || strcmp(settings[i].key, key) != 0)
			continue;
		if (c->setting_line[i])
			snprintf(out, outsz, "%s:%u: [%s] %s", c->path, c->setting_line[i], section, key);
		else
			snprintf(out, outsz, "%s: [%s] %s (default)", c->path, section, key);
		return out;
	}
	snprintf(out, outsz, "%s: [%s] %s", c->path, section, key);
	return out;
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
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].key, "trusted_networks") == 0)
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
	fail(ps, line, "[server] trusted_networks: covers %s: every client there could relay mail through this "
		"server without logging in, an open relay that spammers find within hours; list only your own networks "
		"(e.g. 192.0.2.0/24), let users log in on a submission listener instead, or set allow_open_relay = yes "
		"in [server] if you really mean it", amount);
}

static bool check_whole(struct parse_state *ps)
{
	struct conf *c = ps->c;
	if (ps->failed)
		return false;
	if (c->n_listeners == 0) {
		fail(ps, ps->line, "no [listener NAME] section: add one, e.g. [listener smtp] with port = 25");
		return false;
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		if (!c->listeners[i].port_set) {
			fail(ps, c->listeners[i].line, "[listener %s] port: missing (e.g. port = 25)", c->listeners[i].name);
			return false;
		}
	}
	if (!c->hostname[0])
		fail(ps, ps->line, "[server] hostname: must not be empty");
	if (!c->data_dir[0])
		fail(ps, ps->line, "[server] data_dir: must not be empty");
	if (!c->tls_certificate[0] != !c->tls_key[0])
		fail(ps, ps->line, "[tls] certificate and key go together: set both, or neither for a self-signed certificate");
	for (size_t i = 0; i < c->n_certificates; i++) {
		const struct conf_certificate *cert = &c->certificates[i];
		if (!cert->certificate[0] || !cert->key[0] || cert->n_names == 0)
			fail(ps, cert->line, "[certificate %s]: needs certificate, key and names", cert->name);
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		if (l->allow_plaintext_auth && l->tls == TLS_IMPLICIT)
			fail(ps, l->line, "[listener %s] allow_plaintext_auth: meaningless with tls = implicit", l->name);
	}
	if (c->retry_min > c->retry_max)
		fail(ps, ps->line, "[queue] retry_min is longer than retry_max");
	check_trusted_networks(ps);
	return !ps->failed;
}

bool conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen)
{
	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", name);
	struct parse_state ps = { .c = c, .name = name, .err = err, .errlen = errlen,
		.text = text, .len = strlen(text) };
	int r = ini_parse_stream(conf_reader, &ps, conf_ini_handler, &ps);
	if (r != 0 && !ps.failed)
		fail(&ps, (unsigned)r, "syntax error (expected [section] or key = value)");
	return check_whole(&ps);
}

bool conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", path);
	struct parse_state ps = { .c = c, .name = path, .err = err, .errlen = errlen };
	ps.fp = fopen(path, "r");
	if (!ps.fp) {
		snprintf(err, errlen, "%s: cannot open: %m", path);
		return false;
	}
	int r = ini_parse_stream(conf_reader, &ps, conf_ini_handler, &ps);
	fclose(ps.fp);
	if (r != 0 && !ps.failed)
		fail(&ps, r > 0 ? (unsigned)r : 0, "syntax error (expected [section] or key = value)");
	return check_whole(&ps);
}

bool conf_is_local_domain(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->n_local_domains; i++)
		if (strcasecmp(c->local_domains[i], domain) == 0)
			return true;
	return false;
}

const char *conf_role_name(enum listener_role r)
{
	return r == ROLE_SUBMISSION ? "submission" : r == ROLE_POP3 ? "pop3" : "mx";
}

const char *conf_tls_name(enum tls_mode t)
{
	return t == TLS_STARTTLS ? "starttls" : t == TLS_IMPLICIT ? "implicit" : "none";
}
