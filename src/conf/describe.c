/* describe.c - the configuration told back from the settings table (see conf.h):
 * `postern config show` (the settings of a loaded file that differ from the defaults,
 * as INI), `postern config show --all`, and the manual page postern.conf(5), written
 * from the same rows that parse the file, so the page cannot drift from the code.
 * The [listener NAME], [certificate NAME] and [milter NAME] sections have their keys
 * in the reader and milter.c; their rows for the page are kept here beside them. */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "conf/internal.h"

/* 300 -> "5m", 86400 -> "1d": the largest unit that divides the value exactly. */
static void format_duration(uint64_t s, char *out, size_t outsz)
{
	if (s && s % 86400 == 0)
		snprintf(out, outsz, "%llud", (unsigned long long)(s / 86400));
	else if (s && s % 3600 == 0)
		snprintf(out, outsz, "%lluh", (unsigned long long)(s / 3600));
	else if (s && s % 60 == 0)
		snprintf(out, outsz, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(out, outsz, "%llu%s", (unsigned long long)s, s ? "s" : "");
}

/* 26214400 -> "25M": the largest power of 1024 that divides the value exactly. */
static void format_bytes(uint64_t n, char *out, size_t outsz)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (n && n % 1024 == 0 && u < 3) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, outsz, "%llu", (unsigned long long)n);
	else
		snprintf(out, outsz, "%llu%c", (unsigned long long)n, units[u]);
}

static void append(char *out, size_t outsz, size_t *o, const char *s)
{
	int n = snprintf(out + *o, outsz - *o, "%s%s", *o ? ", " : "", s);
	if (n > 0 && (size_t)n < outsz - *o)
		*o += (size_t)n;
}

static void format_networks(const struct conf_network *nets, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char a[INET6_ADDRSTRLEN + 8], text[INET6_ADDRSTRLEN] = "?";
		inet_ntop(nets[i].family, nets[i].addr, text, sizeof(text));
		snprintf(a, sizeof(a), "%s/%u", text, nets[i].prefix);
		append(out, outsz, &o, a);
	}
}

/* The word of a T_CHOICE row's index. */
static void format_choice(const struct setting *s, uint64_t index, char *out, size_t outsz)
{
	const char *w = conf_choices(s);
	for (uint64_t i = 0; *w && i < index; i++)
		w += strcspn(w, "|") + (w[strcspn(w, "|")] == '|');
	snprintf(out, outsz, "%.*s", (int)strcspn(w, "|"), w);
}

/* Row s's value in c, as the file would say it. */
static void format_value(const struct conf *c, const struct setting *s, char *out, size_t outsz)
{
	const char *base = (const char *)c;
	uint64_t n = 0;
	if (s->type == T_SIZE || s->type == T_DURATION || s->type == T_MILLIS || s->type == T_COUNT || s->type == T_CHOICE)
		memcpy(&n, base + s->offset, sizeof(n));
	switch (s->type) {
	case T_STRING:
		snprintf(out, outsz, "%s", base + s->offset);
		break;
	case T_BOOL:
		snprintf(out, outsz, "%s", *(const bool *)(const void *)(base + s->offset) ? "yes" : "no");
		break;
	case T_TLS:
		snprintf(out, outsz, "%s", conf_tls_name(*(const enum tls_mode *)(const void *)(base + s->offset)));
		break;
	case T_CHOICE:
		format_choice(s, n, out, outsz);
		break;
	case T_SIZE:
		format_bytes(n, out, outsz);
		break;
	case T_DURATION:
		format_duration(n, out, outsz);
		break;
	case T_MILLIS:
		snprintf(out, outsz, "%llums", (unsigned long long)n);
		break;
	case T_COUNT:
		snprintf(out, outsz, "%llu", (unsigned long long)n);
		break;
	case T_DOMAINS: {
		size_t o = 0;
		out[0] = '\0';
		for (size_t i = 0; i < c->n_local_domains; i++)
			append(out, outsz, &o, c->local_domains[i]);
		break;
	}
	case T_NETWORKS:
		if (strcmp(s->key, "skip_networks") == 0)
			format_networks(c->skip_networks, c->n_skip_networks, out, outsz);
		else
			format_networks(c->trusted_networks, c->n_trusted_networks, out, outsz);
		break;
	}
}

/* Settings whose value is a secret are never printed (none holds one today: passwords
 * live in files such as [relay] credentials, whose path is shown). */
static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

static bool is_secret(const struct setting *s)
{
	return ends_with(s->key, "password") || ends_with(s->key, "secret");
}

#define VALUE_MAX 4608

/* A password written into a value anyway (a libpq connection string's password=...,
 * or a URI's user:password@) is replaced by ******** in what is printed. */
static void mask_passwords(char *v)
{
	for (char *p = strstr(v, "password="); p; p = strstr(p, "password=")) {
		p += 9;
		size_t n = strcspn(p, " \t");
		if (n) {
			memmove(p + 8, p + n, strlen(p + n) + 1);
			memcpy(p, "********", 8);
			p += 8;
		}
	}
	char *scheme = strstr(v, "://"), *at = scheme ? strchr(scheme + 3, '@') : NULL;
	char *colon = scheme && at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
	if (colon && at - colon > 1) {
		memmove(colon + 9, at, strlen(at) + 1);
		memcpy(colon + 1, "********", 8);
	}
}

/* The sections of the table in the order of their first row. */
#define SECTIONS_MAX 32
static size_t table_sections(const char **names)
{
	size_t n = 0;
	for (size_t i = 0; i < conf_n_settings; i++) {
		bool seen = false;
		for (size_t j = 0; j < n && !seen; j++)
			seen = strcmp(names[j], conf_settings[i].section) == 0;
		if (!seen && n < SECTIONS_MAX)
			names[n++] = conf_settings[i].section;
	}
	return n;
}

/* The rows of the table, grouped by section: only those that differ from the
 * defaults unless all.  Returns whether anything was written. */
static bool write_table_rows(const struct conf *c, const struct conf *def, bool all, FILE *out)
{
	static char v[VALUE_MAX], d[VALUE_MAX];
	const char *sections[SECTIONS_MAX];
	size_t n = table_sections(sections);
	bool any = false;
	for (size_t k = 0; k < n; k++) {
		bool header = false;
		for (size_t i = 0; i < conf_n_settings; i++) {
			const struct setting *s = &conf_settings[i];
			if (strcmp(s->section, sections[k]) != 0)
				continue;
			format_value(c, s, v, sizeof(v));
			format_value(def, s, d, sizeof(d));
			if (!all && strcmp(v, d) == 0)
				continue;
			if (!header)
				fprintf(out, "%s[%s]\n", any ? "\n" : "", sections[k]);
			header = any = true;
			if (s->type == T_STRING && strlen(v) + 16 < sizeof(v))
				mask_passwords(v);
			fprintf(out, "%s = %s\n", s->key, is_secret(s) ? "(set; not shown)" : v);
		}
	}
	return any;
}

static const char *milter_action_name(enum conf_milter_action a)
{
	return a == CONF_MILTER_ACCEPT ? "accept" : a == CONF_MILTER_REJECT ? "reject" : "tempfail";
}

static void write_listener(const struct conf_listener *l, FILE *out)
{
	fprintf(out, "\n[listener %s]\naddress = %s\nport = %u\nrole = %s\ntls = %s\n", l->name, l->address, l->port,
		conf_role_name(l->role), conf_tls_name(l->tls));
	if (l->allow_plaintext_auth)
		fprintf(out, "allow_plaintext_auth = yes\n");
	if (l->role == ROLE_HTTP) {
		char services[128];
		fprintf(out, "services = %s\n", conf_service_names(l->services, services, sizeof(services)));
	}
	for (size_t i = 0; i < l->n_milters; i++)
		fprintf(out, "%s%s%s", i ? ", " : "milters = ", l->milter_names[i], i + 1 == l->n_milters ? "\n" : "");
}

/* The sections the table does not hold, whole (they have no defaults to differ from). */
static void write_named_sections(const struct conf *c, FILE *out)
{
	for (size_t i = 0; i < c->n_certificates; i++) {
		const struct conf_certificate *cert = &c->certificates[i];
		fprintf(out, "\n[certificate %s]\ncertificate = %s\nkey = %s\nnames =", cert->name, cert->certificate, cert->key);
		for (size_t j = 0; j < cert->n_names; j++)
			fprintf(out, "%s %s", j ? "," : "", cert->names[j]);
		fprintf(out, "\n");
	}
	for (size_t i = 0; i < c->n_milters; i++) {
		const struct conf_milter *m = &c->milters[i];
		fprintf(out, "\n[milter %s]\nsocket = %s\nconnect_timeout = %us\ncommand_timeout = %us\ncontent_timeout = %us\n"
			"default_action = %s\n", m->name, m->socket, m->connect_timeout_ms / 1000, m->command_timeout_ms / 1000,
			m->content_timeout_ms / 1000, milter_action_name(m->default_action));
		if (m->display_name[0])
			fprintf(out, "display_name = %s\n", m->display_name);
	}
	for (size_t i = 0; i < c->n_listeners; i++)
		write_listener(&c->listeners[i], out);
}

void conf_write(const struct conf *c, bool all, FILE *out)
{
	static struct conf def;   /* large: not on the stack */
	conf_defaults(&def);
	fprintf(out, "; %s: %s\n", c->path, all ? "every setting" : "the settings that differ from the defaults");
	write_table_rows(c, &def, all, out);
	write_named_sections(c, out);
}

/* --- postern.conf(5) ------------------------------------------------------------ */

/* Text for roff: backslashes doubled as \e, a '.' or '\'' that would start a request
 * at the beginning of a line guarded with \&, '-' as \- (so that copied keys and
 * values keep an ASCII hyphen-minus). */
static void roff(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static const char *type_name(const struct setting *s)
{
	switch (s->type) {
	case T_STRING: return "text";
	case T_SIZE: return "size (bytes, or a number with K, M or G)";
	case T_DURATION: return "duration (seconds, or a number with s, m, h or d)";
	case T_MILLIS: return "duration in milliseconds (e.g. 2ms, or 1s)";
	case T_COUNT: return "number";
	case T_DOMAINS: return "list of domain names";
	case T_NETWORKS: return "list of networks (address/prefix)";
	case T_BOOL: return "yes or no";
	case T_TLS: return "none, starttls or implicit";
	case T_CHOICE: return "one of";
	}
	return "text";
}

static void man_row(const struct conf *def, const struct setting *s, FILE *out)
{
	char v[VALUE_MAX], lo[32], hi[32];
	format_value(def, s, v, sizeof(v));
	fputs(".TP\n.B ", out);
	roff(out, s->key);
	fputs("\n", out);
	roff(out, s->help);
	fputs(".\n.br\nType: ", out);
	roff(out, type_name(s));
	if (s->type == T_CHOICE) {
		fputs(" ", out);
		roff(out, conf_choices(s));
	}
	fputs("; default: ", out);
	roff(out, v[0] ? v : "(empty)");
	if (s->type == T_SIZE || s->type == T_DURATION || s->type == T_MILLIS || s->type == T_COUNT) {
		if (s->type == T_MILLIS) {
			snprintf(lo, sizeof(lo), "%llums", (unsigned long long)s->min);
			snprintf(hi, sizeof(hi), "%llums", (unsigned long long)s->max);
		} else if (s->type == T_SIZE) {
			format_bytes(s->min, lo, sizeof(lo));
			format_bytes(s->max, hi, sizeof(hi));
		} else if (s->type == T_DURATION) {
			format_duration(s->min, lo, sizeof(lo));
			format_duration(s->max, hi, sizeof(hi));
		} else {
			snprintf(lo, sizeof(lo), "%llu", (unsigned long long)s->min);
			snprintf(hi, sizeof(hi), "%llu", (unsigned long long)s->max);
		}
		fprintf(out, "; range: %s to %s", lo, hi);
	}
	fputs(".\n", out);
}

/* The keys of the named sections (reader.c, milter.c): section, key, type, default, help. */
static const struct { const char *section, *key, *type, *def, *help; } named_rows[] = {
	{ "listener NAME", "address", "IPv4 or IPv6 address", "127.0.0.1", "the address to listen on (0.0.0.0 or :: for every interface)" },
	{ "listener NAME", "port", "number, 0 to 65535", "(required)", "the port; 0 lets the kernel choose (tests). With socket activation the socket named NAME in LISTEN_FDNAMES is used instead of binding" },
	{ "listener NAME", "role", "mx, submission, pop3, imap, http, lmtp or control", "mx", "the protocol and its rules: mx receives mail for the local domains, submission accepts mail from logged-in users" },
	{ "listener NAME", "tls", "none, starttls or implicit", "none", "TLS on this port: upgraded by STARTTLS/STLS, or from the first byte (465, 995, 993, 443)" },
	{ "listener NAME", "allow_plaintext_auth", "yes or no", "no", "allow logins before TLS (logged as a warning)" },
	{ "listener NAME", "services", "list of autoconfig, mta-sts, health, metrics, account", "autoconfig, mta-sts, health, account", "role http only: the web services this listener answers" },
	{ "listener NAME", "milters", "list of [milter NAME] names", "(none)", "content filters of this listener, in order" },
	{ "certificate NAME", "certificate", "path", "(required)", "PEM certificate chain chosen by SNI for the names below" },
	{ "certificate NAME", "key", "path", "(required)", "its PEM private key" },
	{ "certificate NAME", "names", "list of host names (*.example.org allowed)", "(required)", "the names a client asks for (SNI) that get this certificate" },
	{ "milter NAME", "socket", "unix:/path, inet:host:port or inet6:[addr]:port", "(required)", "where the content filter listens" },
	{ "milter NAME", "connect_timeout", "duration, 1s to 1h", "5s", "time to connect to the filter" },
	{ "milter NAME", "command_timeout", "duration, 1s to 1h", "10s", "time for the filter's answer to one step" },
	{ "milter NAME", "content_timeout", "duration, 1s to 1h", "60s", "time for the filter's answer to the message's content" },
	{ "milter NAME", "default_action", "tempfail, accept or reject", "tempfail", "what happens to mail when the filter is down, slow or answers garbage" },
	{ "milter NAME", "display_name", "text", "NAME", "the filter's name in refusals and logs" },
};

static void man_named_sections(FILE *out)
{
	const char *section = NULL;
	for (size_t i = 0; i < sizeof(named_rows) / sizeof(named_rows[0]); i++) {
		if (!section || strcmp(section, named_rows[i].section) != 0) {
			section = named_rows[i].section;
			fprintf(out, ".SS [%s]\n", section);
		}
		fputs(".TP\n.B ", out);
		roff(out, named_rows[i].key);
		fputs("\n", out);
		roff(out, named_rows[i].help);
		fputs(".\n.br\nType: ", out);
		roff(out, named_rows[i].type);
		fputs("; default: ", out);
		roff(out, named_rows[i].def);
		fputs(".\n", out);
	}
}

void conf_write_man(const char *version, FILE *out)
{
	static struct conf def;
	conf_defaults(&def);
	fprintf(out, ".\\\" postern.conf(5), written by `postern config man 5` from the settings table (src/conf/table.c)\n"
		".TH POSTERN.CONF 5 \"\" \"postern %s\" \"File Formats\"\n.SH NAME\npostern.conf \\- configuration of the "
		"Postern mail server\n.SH SYNOPSIS\n.I /etc/postern/postern.conf\n.SH DESCRIPTION\n"
		"One INI file: \\fB[section]\\fR headers, \\fBkey = value\\fR lines, comments after \\fB;\\fR or \\fB#\\fR. "
		"A key or section given twice, an unknown key and a value out of range are refused with the file and line. "
		"\\fBpostern check\\-config\\fR checks a file as \\fBpostern serve\\fR would; \\fBpostern config show\\fR prints "
		"what differs from the defaults below.\n.PP\nOn SIGHUP (\\fBsystemctl reload postern\\fR) the running server reads "
		"the file again: the TLS certificates and keys ([tls], [certificate NAME]) and \\fBlog_level\\fR take effect "
		"at once; any other change is logged as event=reload_needs_restart with its names and waits for a restart. "
		"A file with errors is refused and the running configuration kept.\n", version);
	const char *sections[SECTIONS_MAX];
	size_t n = table_sections(sections);
	fputs(".SH SETTINGS\n", out);
	for (size_t k = 0; k < n; k++) {
		fprintf(out, ".SS [%s]\n", sections[k]);
		for (size_t i = 0; i < conf_n_settings; i++)
			if (strcmp(conf_settings[i].section, sections[k]) == 0)
				man_row(&def, &conf_settings[i], out);
	}
	man_named_sections(out);
	fputs(".SH FILES\n.TP\n.I /etc/postern/postern.conf\nthe configuration (a conffile of the Debian package)\n"
		".TP\n.I /var/lib/postern\nthe data directory of the package's configuration (directory.db, queue/, mail/)\n"
		".SH SEE ALSO\n.BR postern (8)\n", out);
}

/* --- what a reload changes ------------------------------------------------------- */

static void add_name(char *out, size_t outsz, const char *fmt, const char *a, const char *b)
{
	size_t o = strlen(out);
	int n = snprintf(out + o, outsz - o, o ? ", " : "");
	if (n > 0 && (size_t)n < outsz - o)
		o += (size_t)n;
	snprintf(out + o, outsz - o, fmt, a, b);
}

static bool listener_same(const struct conf_listener *a, const struct conf_listener *b)
{
	if (strcmp(a->address, b->address) || a->port != b->port || a->role != b->role || a->tls != b->tls ||
		a->allow_plaintext_auth != b->allow_plaintext_auth || a->services != b->services || a->n_milters != b->n_milters)
		return false;
	for (size_t i = 0; i < a->n_milters; i++)
		if (strcmp(a->milter_names[i], b->milter_names[i]))
			return false;
	return true;
}

static const struct conf_listener *listener_named(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	return NULL;
}

static bool certificates_same(const struct conf *a, const struct conf *b)
{
	if (a->n_certificates != b->n_certificates)
		return false;
	for (size_t i = 0; i < a->n_certificates; i++) {
		const struct conf_certificate *x = &a->certificates[i], *y = &b->certificates[i];
		if (strcmp(x->name, y->name) || strcmp(x->certificate, y->certificate) || strcmp(x->key, y->key) ||
			x->n_names != y->n_names || memcmp(x->names, y->names, x->n_names * sizeof(x->names[0])))
			return false;
	}
	return true;
}

static bool milters_same(const struct conf *a, const struct conf *b)
{
	if (a->n_milters != b->n_milters)
		return false;
	for (size_t i = 0; i < a->n_milters; i++) {
		const struct conf_milter *x = &a->milters[i], *y = &b->milters[i];
		if (strcmp(x->name, y->name) || strcmp(x->socket, y->socket) || strcmp(x->display_name, y->display_name) ||
			x->connect_timeout_ms != y->connect_timeout_ms || x->command_timeout_ms != y->command_timeout_ms ||
			x->content_timeout_ms != y->content_timeout_ms || x->default_action != y->default_action)
			return false;
	}
	return true;
}

/* The settings a reload applies at once (serve/reload.c): the log level and the TLS
 * contexts, which are built anew from the files on every reload. */
static bool live_setting(const struct setting *s)
{
	return (strcmp(s->section, "server") == 0 && strcmp(s->key, "log_level") == 0) || strcmp(s->section, "tls") == 0;
}

void conf_differences(const struct conf *old, const struct conf *new, char *live, size_t livesz, char *restart,
	size_t restartsz)
{
	static char a[VALUE_MAX], b[VALUE_MAX];
	live[0] = restart[0] = '\0';
	for (size_t i = 0; i < conf_n_settings; i++) {
		const struct setting *s = &conf_settings[i];
		format_value(old, s, a, sizeof(a));
		format_value(new, s, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		if (live_setting(s))
			add_name(live, livesz, "[%s] %s", s->section, s->key);
		else
			add_name(restart, restartsz, "[%s] %s", s->section, s->key);
	}
	if (!certificates_same(old, new))
		add_name(live, livesz, "[certificate %s]%s", "NAME", "");
	for (size_t i = 0; i < new->n_listeners; i++) {
		const struct conf_listener *o = listener_named(old, new->listeners[i].name);
		if (!o || !listener_same(o, &new->listeners[i]))
			add_name(restart, restartsz, "[listener %s]%s", new->listeners[i].name, "");
	}
	for (size_t i = 0; i < old->n_listeners; i++)
		if (!listener_named(new, old->listeners[i].name))
			add_name(restart, restartsz, "[listener %s]%s", old->listeners[i].name, " (removed)");
	if (!milters_same(old, new))
		add_name(restart, restartsz, "[milter %s]%s", "NAME", "");
}
