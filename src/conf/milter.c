/* milter.c - the content filters of the configuration: [milter NAME] sections (where
 * the filter listens, its time-outs and what to do when it does not answer) and a
 * listener's `milters = NAME, NAME` (its filters, in order), with the check that each
 * name listed has a section.  The conversation itself is src/milter/ and the stage
 * policy/milter_stage.c; here only what the file says, checked at its line. */
#include "conf/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"
#include "util/parse.h"

/* Postfix's milter_*_timeout are 30 s, 30 s and 300 s; a mail client waits for the
 * answer to each command, so Postern's defaults are shorter: a filter that needs
 * longer than this is broken, and its default action answers instead. */
#define MILTER_CONNECT_DEFAULT_MS 5000u
#define MILTER_COMMAND_DEFAULT_MS 10000u
#define MILTER_CONTENT_DEFAULT_MS 60000u

const char *conf_milter_display(const struct conf_milter *m)
{
	return m->display_name[0] ? m->display_name : m->name;
}

static struct conf_milter *milter_for(struct parse_state *ps, const char *name)
{
	struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_milters; i++)
		if (strcmp(c->milters[i].name, name) == 0)
			return &c->milters[i];
	if (c->n_milters >= CONF_MAX_MILTERS) {
		conf_fail(ps, ps->line, "[milter %s]: too many content filters (at most %d)", name, CONF_MAX_MILTERS);
		return NULL;
	}
	struct conf_milter *m = &c->milters[c->n_milters++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->connect_timeout_ms = MILTER_CONNECT_DEFAULT_MS;
	m->command_timeout_ms = MILTER_COMMAND_DEFAULT_MS;
	m->content_timeout_ms = MILTER_CONTENT_DEFAULT_MS;
	m->default_action = CONF_MILTER_TEMPFAIL;
	m->line = ps->cur_section < ps->n_sections ? ps->sections[ps->cur_section].line : ps->line;
	return m;
}

/* A port 1-65535 at the end of a socket spec. */
static bool port_ok(const char *p)
{
	uint64_t n;
	return *p && parse_u64(p, strlen(p), &n) && n >= 1 && n <= 65535;
}

/* The three forms Postfix's smtpd_milters take (the milter room parses them again
 * when it connects; here the file's line is named). */
static const char *socket_problem(const char *v)
{
	if (strncmp(v, "unix:", 5) == 0)
		return v[5] == '/' && v[6] ? NULL : "unix: needs an absolute path (unix:/run/rspamd/milter.sock)";
	if (strncmp(v, "inet6:", 6) == 0) {
		const char *close = v[6] == '[' ? strchr(v + 7, ']') : NULL;
		return close && close > v + 7 && close[1] == ':' && port_ok(close + 2) ? NULL
			: "inet6: needs an address in brackets and a port (inet6:[::1]:11332)";
	}
	if (strncmp(v, "inet:", 5) == 0) {
		const char *colon = strrchr(v + 5, ':'), *at = strchr(v + 5, '@');
		if (at && !colon && at > v + 5 && at[1]) {   /* Sendmail's and OpenDKIM's inet:port@host */
			char port[8];
			size_t n = (size_t)(at - v - 5);
			return n < sizeof(port) && (memcpy(port, v + 5, n), port[n] = '\0', port_ok(port)) ? NULL
				: "inet: needs a host and a port (inet:127.0.0.1:11332 or inet:11332@127.0.0.1)";
		}
		return colon && colon > v + 5 && port_ok(colon + 1) && !strchr(v + 5, '[') ? NULL
			: "inet: needs a host and a port (inet:127.0.0.1:11332 or inet:11332@127.0.0.1)";
	}
	return "is not unix:/path, inet:host:port or inet6:[address]:port";
}

static void set_timeout(struct parse_state *ps, const char *mname, const char *key, const char *v, unsigned *ms)
{
	uint64_t s;
	if (!parse_duration(v, &s) || s < 1 || s > 3600)
		conf_fail(ps, ps->line, "[milter %s] %s: \"%s\" is not a duration from 1s to 1h (e.g. 10s)", mname, key, v);
	else
		*ms = (unsigned)s * 1000u;
}

void conf_milter_key(struct parse_state *ps, const char *mname, const char *key, const char *v)
{
	struct conf_milter *m = milter_for(ps, mname);
	if (!m || !key)
		return;
	const char *problem;
	if (strcmp(key, "socket") == 0) {
		if ((problem = socket_problem(v)) != NULL)
			conf_fail(ps, ps->line, "[milter %s] socket: \"%s\" %s", mname, v, problem);
		else if (!conf_set_string(m->socket, sizeof(m->socket), v))
			conf_fail(ps, ps->line, "[milter %s] socket: too long", mname);
	} else if (strcmp(key, "connect_timeout") == 0) {
		set_timeout(ps, mname, key, v, &m->connect_timeout_ms);
	} else if (strcmp(key, "command_timeout") == 0) {
		set_timeout(ps, mname, key, v, &m->command_timeout_ms);
	} else if (strcmp(key, "content_timeout") == 0) {
		set_timeout(ps, mname, key, v, &m->content_timeout_ms);
	} else if (strcmp(key, "default_action") == 0) {
		if (strcmp(v, "tempfail") == 0)
			m->default_action = CONF_MILTER_TEMPFAIL;
		else if (strcmp(v, "accept") == 0)
			m->default_action = CONF_MILTER_ACCEPT;
		else if (strcmp(v, "reject") == 0)
			m->default_action = CONF_MILTER_REJECT;
		else
			conf_fail(ps, ps->line, "[milter %s] default_action: \"%s\" is not tempfail, accept or reject", mname, v);
	} else if (strcmp(key, "display_name") == 0) {
		bool printable = *v != '\0';
		for (const char *p = v; *p; p++)
			printable = printable && *p >= 32 && *p < 127 && *p != '(' && *p != ')';
		if (!printable || !conf_set_string(m->display_name, sizeof(m->display_name), v))
			conf_fail(ps, ps->line, "[milter %s] display_name: printable ASCII without parentheses, at most 63 octets",
				mname);
	} else {
		conf_fail(ps, ps->line, "[milter %s] %s: unknown setting (known: socket, connect_timeout, command_timeout, "
			"content_timeout, default_action, display_name)", mname, key);
	}
}

void conf_listener_milters(struct parse_state *ps, struct conf_listener *l, const char *v)
{
	char tmp[2048];
	l->n_milters = 0;
	l->milters_line = ps->line;
	if (!conf_set_string(tmp, sizeof(tmp), v)) {
		conf_fail(ps, ps->line, "[listener %s] milters: the list is too long", l->name);
		return;
	}
	for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (l->n_milters >= CONF_MAX_MILTERS || strlen(tok) >= sizeof(l->milter_names[0])) {
			conf_fail(ps, ps->line, "[listener %s] milters: at most %d names of at most 63 octets", l->name,
				CONF_MAX_MILTERS);
			return;
		}
		for (size_t i = 0; i < l->n_milters; i++)
			if (strcmp(l->milter_names[i], tok) == 0) {
				conf_fail(ps, ps->line, "[listener %s] milters: %s is listed twice", l->name, tok);
				return;
			}
		memcpy(l->milter_names[l->n_milters++], tok, strlen(tok) + 1);
	}
}

/* Each listed name must have its section (a typo would otherwise leave mail
 * unfiltered), and each section a socket. */
void conf_check_milters(struct parse_state *ps)
{
	struct conf *c = ps->c;
	for (size_t i = 0; i < c->n_milters; i++)
		if (!c->milters[i].socket[0])
			conf_fail(ps, c->milters[i].line, "[milter %s] socket: missing (e.g. socket = inet:127.0.0.1:11332)",
				c->milters[i].name);
	for (size_t i = 0; i < c->n_listeners; i++) {
		struct conf_listener *l = &c->listeners[i];
		if (l->n_milters && l->role != ROLE_MX && l->role != ROLE_SUBMISSION)
			conf_fail(ps, l->milters_line, "[listener %s] milters: only an SMTP listener (mx or submission) filters mail",
				l->name);
		for (size_t k = 0; k < l->n_milters; k++) {
			size_t j = 0;
			while (j < c->n_milters && strcmp(c->milters[j].name, l->milter_names[k]) != 0)
				j++;
			if (j == c->n_milters) {
				conf_fail(ps, l->milters_line, "[listener %s] milters: no [milter %s] section; add one with its socket "
					"(e.g. socket = inet:127.0.0.1:11332), or remove the name from the list", l->name, l->milter_names[k]);
				return;
			}
			l->milters[k] = (unsigned)j;
		}
	}
}
