/* reader.c - reading a configuration file: the INI reader (inih) and the entry
 * points conf_load_file/conf_load_string (see conf.h).
 *
 * The settings table is table.c; [listener NAME] and [certificate NAME] sections have
 * their own small tables here.  A section or key given twice is refused.  The checks
 * of the whole file and the error messages ("file:line: [section] key: what is
 * wrong") are check.c. */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"
#include "util/parse.h"

static int conf_ini_handler(void *user, const char *section, const char *key, const char *value);

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
		conf_fail(ps, ps->line, "[listener %s]: too many listeners (at most %d)", name, CONF_MAX_LISTENERS);
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

/* services = autoconfig, mta-sts, health, metrics (role http; checked in check.c). */
static void listener_services(struct parse_state *ps, struct conf_listener *l, const char *v)
{
	char tmp[512];
	l->services = 0;
	l->services_set = true;
	if (!conf_set_string(tmp, sizeof(tmp), v)) {
		conf_fail(ps, ps->line, "[listener %s] services: the list is too long", l->name);
		return;
	}
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		unsigned bit = conf_service_bit(tok);
		if (!bit) {
			conf_fail(ps, ps->line, "[listener %s] services: \"%s\" is not a service (known: autoconfig, mta-sts, health, metrics)",
				l->name, tok);
			return;
		}
		l->services |= bit;
	}
}

static void listener_key(struct parse_state *ps, const char *lname, const char *key, const char *v)
{
	struct conf_listener *l = listener_for(ps, lname);
	if (!l)
		return;
	if (strcmp(key, "address") == 0) {
		unsigned char tmp[16];
		if (inet_pton(AF_INET, v, tmp) != 1 && inet_pton(AF_INET6, v, tmp) != 1)
			conf_fail(ps, ps->line, "[listener %s] address: \"%s\" is not an IPv4 or IPv6 address", lname, v);
		else
			snprintf(l->address, sizeof(l->address), "%s", v);
	} else if (strcmp(key, "port") == 0) {
		uint64_t n;
		if (!parse_u64(v, strlen(v), &n) || n > 65535)
			conf_fail(ps, ps->line, "[listener %s] port: \"%s\" is not a port number (0-65535)", lname, v);
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
		else if (strcmp(v, "http") == 0)
			l->role = ROLE_HTTP;
		else if (strcmp(v, "imap") == 0)
			l->role = ROLE_IMAP;
		else if (strcmp(v, "lmtp") == 0)
			l->role = ROLE_LMTP;
		else if (strcmp(v, "control") == 0)
			l->role = ROLE_CONTROL;
		else
			conf_fail(ps, ps->line, "[listener %s] role: \"%s\" is not mx, submission, pop3, imap, http, lmtp or control", lname, v);
	} else if (strcmp(key, "tls") == 0) {
		if (strcmp(v, "none") == 0)
			l->tls = TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			l->tls = TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			l->tls = TLS_IMPLICIT;
		else
			conf_fail(ps, ps->line, "[listener %s] tls: \"%s\" is not none, starttls or implicit", lname, v);
	} else if (strcmp(key, "allow_plaintext_auth") == 0) {
		if (!parse_bool(v, &l->allow_plaintext_auth))
			conf_fail(ps, ps->line, "[listener %s] allow_plaintext_auth: \"%s\" is not yes or no", lname, v);
	} else if (strcmp(key, "services") == 0) {
		listener_services(ps, l, v);
	} else if (strcmp(key, "milters") == 0) {
		conf_listener_milters(ps, l, v);
	} else {
		conf_fail(ps, ps->line, "[listener %s] %s: unknown setting (known: address, port, role, tls, allow_plaintext_auth, services, milters)", lname, key);
	}
}

static struct conf_certificate *certificate_for(struct parse_state *ps, const char *name)
{
	struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_certificates; i++)
		if (strcmp(c->certificates[i].name, name) == 0)
			return &c->certificates[i];
	if (c->n_certificates >= CONF_MAX_CERTS) {
		conf_fail(ps, ps->line, "[certificate %s]: too many certificates (at most %d)", name, CONF_MAX_CERTS);
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
		if (!conf_set_string(dst, CONF_PATH_MAX, v))
			conf_fail(ps, ps->line, "[certificate %s] %s: the path is too long", cname, key);
	} else if (strcmp(key, "names") == 0) {
		char tmp[4096];
		cert->n_names = 0;
		if (!conf_set_string(tmp, sizeof(tmp), v)) {
			conf_fail(ps, ps->line, "[certificate %s] names: the list is too long", cname);
			return;
		}
		for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			if (cert->n_names >= CONF_MAX_DOMAINS || strlen(tok) >= CONF_NAME_MAX) {
				conf_fail(ps, ps->line, "[certificate %s] names: too many or too long", cname);
				return;
			}
			ascii_lower(tok);
			memcpy(cert->names[cert->n_names++], tok, strlen(tok) + 1);
		}
	} else {
		conf_fail(ps, ps->line, "[certificate %s] %s: unknown setting (known: certificate, key, names)", cname, key);
	}
}


/* The sections of the settings table, in its order, each once: the list an unknown
 * section's message offers, taken from the table so that it cannot go stale. */
static void known_sections(char *out, size_t outsz)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < conf_n_settings; i++) {
		const char *sec = conf_settings[i].section;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(conf_settings[j].section, sec) == 0;
		if (seen)
			continue;
		int n = snprintf(out + len, outsz - len, "%s%s", len ? ", " : "", sec);
		if (n < 0 || (size_t)n >= outsz - len)
			break;
		len += (size_t)n;
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
			conf_fail(ps, ps->line, "[%s] %s: a line that starts with a space or tab continues the line before it (%s:%u); "
				"remove the indentation and put each setting on its own line", section, key, ps->name, k->line);
		else
			conf_fail(ps, ps->line, "[%s] %s: set twice, first at %s:%u; only one value can hold: delete one of the two lines",
				section, key, ps->name, k->line);
		return false;
	}
	if (ps->n_keys >= CONF_MAX_KEYS) {
		conf_fail(ps, ps->line, "too many settings (at most %d in one file)", CONF_MAX_KEYS);
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
			conf_fail(ps, ps->line, "[%s]: a certificate section needs a short name", section);
			return 1;
		}
		if (key)
			certificate_key(ps, cname, key, value);
		return 1;
	}
	if (strncmp(section, "milter ", 7) == 0) {
		const char *mname = section + 7;
		while (*mname == ' ')
			mname++;
		if (!*mname || strlen(mname) >= 64 || strpbrk(mname, ", \t")) {
			conf_fail(ps, ps->line, "[%s]: a milter section needs a short name without commas, e.g. [milter rspamd]", section);
			return 1;
		}
		conf_milter_key(ps, mname, key, value);
		return 1;
	}
	if (strncmp(section, "listener", 8) == 0 && (section[8] == ' ' || section[8] == '\0')) {
		const char *lname = section[8] ? section + 9 : "";
		while (*lname == ' ')
			lname++;
		if (!*lname || strlen(lname) >= 64) {
			conf_fail(ps, ps->line, "[%s]: a listener section needs a short name, e.g. [listener smtp]", section);
			return 1;
		}
		if (!key)   /* new section */
			return listener_for(ps, lname) != NULL;
		listener_key(ps, lname, key, value);
		return 1;
	}
	bool known_section = false;
	for (size_t i = 0; i < conf_n_settings; i++) {
		if (strcmp(conf_settings[i].section, section) != 0)
			continue;
		known_section = true;
		if (!key || strcmp(conf_settings[i].key, key) != 0)
			continue;
		const char *e = conf_set_value(ps->c, &conf_settings[i], value);
		ps->c->setting_line[i] = ps->line;
		if (e) {
			if (conf_settings[i].type == T_SIZE || conf_settings[i].type == T_DURATION || conf_settings[i].type == T_COUNT || conf_settings[i].type == T_MILLIS)
				conf_fail(ps, ps->line, "[%s] %s: \"%s\" %s (allowed %llu to %llu)", section, key, value, e,
					(unsigned long long)conf_settings[i].min, (unsigned long long)conf_settings[i].max);
			else
				conf_fail(ps, ps->line, "[%s] %s: %s", section, key, e);
		}
		return 1;
	}
	if (!known_section) {
		char known[512];
		known_sections(known, sizeof known);
		conf_fail(ps, ps->line, "[%s]: unknown section (known: %s, listener NAME, certificate NAME, milter NAME)",
			section, known);
	}
	else if (key)
		conf_fail(ps, ps->line, "[%s] %s: unknown setting", section, key);
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
		conf_fail(ps, ps->line, "[%s] appears twice, first at %s:%u; two sections with one name would merge into one "
			"(a listener or certificate would be lost): give each its own name, or put all its settings in one section",
			name, ps->name, ps->sections[i].line);
		ps->cur_section = i;
		return;
	}
	if (ps->n_sections >= CONF_MAX_SECTIONS) {
		conf_fail(ps, ps->line, "too many sections (at most %d)", CONF_MAX_SECTIONS);
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
		conf_fail(ps, ps->line, "a line this long must be \"key = value\"");
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
		conf_fail(ps, ps->line, "line too long (at most %d octets)", PHYS_LINE_MAX - 1);
		snprintf(str, (size_t)num, ";\n");
		return str;
	}
	const char *first = line + strspn(line, " \t");
	if (*first == '[' && !strchr(first, ']')) {
		conf_fail(ps, ps->line, "syntax error: a section header needs a closing ] (e.g. [server])");
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

bool conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen)
{
	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", name);
	struct parse_state ps = { .c = c, .name = name, .err = err, .errlen = errlen,
		.text = text, .len = strlen(text) };
	int r = ini_parse_stream(conf_reader, &ps, conf_ini_handler, &ps);
	if (r != 0 && !ps.failed)
		conf_fail(&ps, (unsigned)r, "syntax error (expected [section] or key = value)");
	return conf_check_whole(&ps);
}

static bool load_file(struct conf *c, const char *path, bool every_error, char *err, size_t errlen)
{
	conf_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", path);
	struct parse_state ps = { .c = c, .name = path, .err = err, .errlen = errlen, .every_error = every_error };
	ps.fp = fopen(path, "r");
	if (!ps.fp) {
		snprintf(err, errlen, "%s: cannot open: %m", path);
		return false;
	}
	int r = ini_parse_stream(conf_reader, &ps, conf_ini_handler, &ps);
	fclose(ps.fp);
	if (r != 0 && !ps.failed)
		conf_fail(&ps, r > 0 ? (unsigned)r : 0, "syntax error (expected [section] or key = value)");
	return conf_check_whole(&ps);
}

bool conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	return load_file(c, path, false, err, errlen);
}

bool conf_load_file_every_error(struct conf *c, const char *path, char *err, size_t errlen)
{
	return load_file(c, path, true, err, errlen);
}
