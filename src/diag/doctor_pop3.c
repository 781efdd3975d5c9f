/* doctor_pop3.c - `postern doctor` step 9: POP3 login (995 implicit TLS or 110 with
 * STLS), CAPA/UIDL and the mailbox size (RFC 1939, RFC 2449, RFC 2595). */
#include "diag/doctor.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "diag/common.h"
#include "diag/diag.h"
#include "diag/doctor_internal.h"
#include "diag/json.h"

/* --- step 9: POP3 ------------------------------------------------------------------------- */

#define POP_LINE_MAX 1024
#define CAPA_LINES_MAX 64

/* One status line: true for "+OK". `line` keeps the text (or the error). */
static bool pop_status(struct net_client *p, char *line, size_t linesz)
{
	char err[160];
	if (net_client_read_line(p, line, linesz, err, sizeof(err)) < 0) {
		snprintf(line, linesz, "(%s)", err);
		return false;
	}
	return strncmp(line, "+OK", 3) == 0;
}

static bool pop_command(struct doctor *d, struct net_client *p, const char *cmd, const char *shown, char *line, size_t linesz)
{
	if (!doctor_send_line(d, p, cmd, shown)) {
		snprintf(line, linesz, "(the connection was lost)");
		return false;
	}
	return pop_status(p, line, linesz);
}

/* CAPA (RFC 2449): false when the server does not answer it.  Notes STLS, UIDL, USER. */
static bool pop_capa(struct doctor *d, struct net_client *p, bool *stls, bool *uidl)
{
	char line[POP_LINE_MAX], err[160];
	*stls = *uidl = false;
	if (!pop_command(d, p, "CAPA", NULL, line, sizeof(line)))
		return false;
	for (int i = 0; i < CAPA_LINES_MAX * 4; i++) {
		if (net_client_read_line(p, line, sizeof(line), err, sizeof(err)) < 0)
			return false;
		if (strcmp(line, ".") == 0)
			return true;
		if (strcasecmp(line, "STLS") == 0)
			*stls = true;
		if (strncasecmp(line, "UIDL", 4) == 0 && (line[4] == '\0' || line[4] == ' '))
			*uidl = true;
	}
	return false;
}

/* Implicit TLS then "+OK", or a plaintext "+OK" and CAPA (is STLS offered?). */
static void pop_survey(struct doctor *d, struct pslot *s)
{
	char err[160], line[POP_LINE_MAX];
	struct net_cert cert;
	bool wrong, stls, uidl;
	for (int pass = 0; pass < 2 && s->mode == MODE_UNKNOWN; pass++) {
		bool implicit = (s->name == 995) == (pass == 0);
		struct net_client *p = doctor_connect(d, s->port, &s->st, err, sizeof(err));
		if (!p)
			return;
		s->open = true;
		if (implicit) {
			if (net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))
				&& pop_status(p, line, sizeof(line)))
				s->mode = MODE_IMPLICIT;
		} else if (pop_status(p, line, sizeof(line)))
			s->mode = pop_capa(d, p, &stls, &uidl) && stls ? MODE_STARTTLS : MODE_PLAIN;
		if (s->mode != MODE_UNKNOWN)
			pop_command(d, p, "QUIT", NULL, line, sizeof(line));
		net_client_close(&p);
	}
}

static enum mode pop_wanted_mode(const struct doctor *d)
{
	const char *sec = d->pop3_security;
	if (!sec)
		return d->pop.chosen && d->pop.chosen->mode != MODE_UNKNOWN ? d->pop.chosen->mode
			: d->pop.port == 995 ? MODE_IMPLICIT : MODE_STARTTLS;
	if (strcmp(sec, "none") == 0)
		return MODE_PLAIN;
	return strcmp(sec, "starttls") == 0 ? MODE_STARTTLS : MODE_IMPLICIT;
}

/* The cause a POP3 "-ERR" at login names (RFC 3206 response codes, and the words). */
static const char *pop_login_cause(struct doctor *d, const char *line)
{
	char low[POP_LINE_MAX];
	size_t i;
	for (i = 0; line[i] && i < sizeof(low) - 1; i++)
		low[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]);
	low[i] = '\0';
	if (strstr(low, "[login-delay]") || strstr(low, "too many") || strstr(low, "is blocked until"))
		return "throttled";
	if (strstr(low, "[in-use]") || strstr(low, "[sys/temp]") || strstr(low, "[sys/perm]") || line[0] == '(')
		return "server_unavailable";
	if (strstr(low, "unencrypted") || strstr(low, "plaintext") || strstr(low, "stls") || strstr(low, "ssl/tls")
		|| strstr(low, "non-secure") || strstr(low, "encrypt"))
		return "tls_required";
	struct explain_result res;
	explain_match(d->kb, line, strlen(line), &res);
	if (res.known && strcmp(res.causes[0]->id, "app_password_required") == 0)
		return "app_password_required";
	return "wrong_credentials";
}

static bool pop_fail_mode(struct doctor *d, enum mode want, const char *err)
{
	struct pslot *best = doctor_pop_best(d);
	char real_s[96] = "";
	if (d->pop.chosen && d->pop.chosen->mode != MODE_UNKNOWN && d->pop.chosen->mode != want)
		snprintf(real_s, sizeof(real_s), ": the port speaks %s", doctor_mode_names[d->pop.chosen->mode]);
	else if (best && best->mode != want)
		snprintf(real_s, sizeof(real_s), ": port %u speaks %s", best->port, doctor_mode_names[best->mode]);
	return doctor_fail(d, STEP_POP3, "tls_mode_mismatch", "POP3 port %u does not speak %s (%s)%s. Use port 995 with "
		"SSL/TLS, or 110 with STARTTLS (STLS).", d->pop.port, doctor_mode_names[want], err, real_s);
}

/* Connect as the mail program is set up; NULL after doctor_fail(). */
static struct net_client *pop_open(struct doctor *d, char *note, size_t notesz, bool *warn)
{
	enum net_status st;
	char err[256], line[POP_LINE_MAX];
	struct net_cert cert;
	bool wrong, stls, uidl;
	enum mode want = d->pop.mode = pop_wanted_mode(d);
	struct net_client *p = doctor_connect(d, d->pop.port, &st, err, sizeof(err));
	*warn = false;
	note[0] = '\0';
	if (!p) {
		struct pslot *best = doctor_pop_best(d);
		doctor_fail(d, STEP_POP3, best ? "port_blocked" : "server_unavailable", "POP3 port %u does not answer (%s)%s%s.",
			d->pop.port, err, best ? ": use port " : "", best ? (best->name == 995 ? "995 with SSL/TLS"
			: "110 with STARTTLS") : "");
		return NULL;
	}
	if (want == MODE_IMPLICIT && !net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
		pop_fail_mode(d, want, err);
		net_client_close(&p);
		return NULL;
	}
	if (!pop_status(p, line, sizeof(line))) {
		if (want == MODE_IMPLICIT && strncmp(line, "-ERR", 4) == 0)
			doctor_fail(d, STEP_POP3, "server_unavailable", "The POP3 server refused the connection: %s", line);
		else
			pop_fail_mode(d, want, line);
		net_client_close(&p);
		return NULL;
	}
	d->pop.capa = pop_capa(d, p, &stls, &uidl);
	if (want == MODE_STARTTLS) {
		if (!stls) {
			pop_fail_mode(d, want, "STLS is not offered");
			net_client_close(&p);
			return NULL;
		}
		if (!pop_command(d, p, "STLS", NULL, line, sizeof(line))
			|| !net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
			doctor_fail(d, STEP_POP3, "tls_mode_mismatch", "STLS failed on POP3 port %u: %s", d->pop.port,
				strncmp(line, "+OK", 3) == 0 ? err : line);
			net_client_close(&p);
			return NULL;
		}
		d->pop.capa = pop_capa(d, p, &stls, &uidl);
	}
	d->pop.uidl = uidl;
	d->pop.uidl_known = d->pop.capa;
	if (want == MODE_PLAIN) {
		*warn = true;
		snprintf(note, notesz, "no encryption on POP3 port %u: the password travels in clear text", d->pop.port);
	} else if (!doctor_check_cert_at(d, STEP_POP3, want, d->pop.port, &cert, note, notesz, warn)) {
		net_client_close(&p);
		return NULL;
	}
	return p;
}

static bool pop_login(struct doctor *d, struct net_client *p)
{
	char cmd[700], line[POP_LINE_MAX];
	if (strlen(d->user) > 320 || strlen(d->password) > 320)
		return doctor_fail(d, STEP_POP3, "syntax_error", "user name or password too long");
	snprintf(cmd, sizeof(cmd), "USER %s", d->user);
	bool ok = pop_command(d, p, cmd, NULL, line, sizeof(line));
	if (ok) {
		snprintf(cmd, sizeof(cmd), "PASS %s", d->password);
		ok = pop_command(d, p, cmd, "PASS ******** (password, masked)", line, sizeof(line));
		OPENSSL_cleanse(cmd, sizeof(cmd));
	}
	if (!ok)
		return doctor_fail(d, STEP_POP3, pop_login_cause(d, line), "POP3 login as %s refused on port %u: %s", d->user,
			d->pop.port, line);
	d->pop.logged_in = true;
	return true;
}

/* STAT: "+OK count octets". */
static bool pop_stat(struct doctor *d, struct net_client *p)
{
	char line[POP_LINE_MAX];
	if (!pop_command(d, p, "STAT", NULL, line, sizeof(line)))
		return doctor_fail(d, STEP_POP3, "server_unavailable", "POP3 STAT failed: %s", line);
	if (sscanf(line + 3, "%lu %llu", &d->pop.messages, &d->pop.octets) != 2)
		return doctor_fail(d, STEP_POP3, "unknown", "POP3 STAT answer not understood: %s", line);
	d->pop.have_stat = true;
	/* No CAPA: ask for one UIDL to learn whether it is there. */
	if (!d->pop.uidl_known && d->pop.messages > 0) {
		d->pop.uidl = pop_command(d, p, "UIDL 1", NULL, line, sizeof(line));
		d->pop.uidl_known = d->pop.uidl || strncmp(line, "-ERR", 4) == 0;
	}
	return true;
}

static void pop_human(unsigned long long n, char *out, size_t outsz)
{
	if (n >= 10ULL * 1024 * 1024)
		snprintf(out, outsz, "%llu bytes, %.1f MB", n, (double)n / (1024.0 * 1024.0));
	else if (n >= 10ULL * 1024)
		snprintf(out, outsz, "%llu bytes, %.1f KB", n, (double)n / 1024.0);
	else
		snprintf(out, outsz, "%llu bytes", n);
}

void doctor_step_pop3(struct doctor *d)
{
	if (!d->pop3) {
		doctor_step_set(d, STEP_POP3, S_SKIP, "no --pop3: receiving mail is not tested");
		return;
	}
	d->pop.tested = true;
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].enabled)
			pop_survey(d, &d->pslots[i]);
	struct pslot *best = doctor_pop_best(d);
	if (d->pop3_port) {
		d->pop.chosen = doctor_pslot_by_name(d, (unsigned)d->pop3_port);
		for (int i = 0; !d->pop.chosen && i < PSLOTS; i++)
			if (d->pslots[i].port == d->pop3_port)
				d->pop.chosen = &d->pslots[i];
		d->pop.port = d->pop.chosen ? d->pop.chosen->port : (unsigned)d->pop3_port;
	} else {
		d->pop.chosen = best;
		d->pop.port = best ? best->port : 0;
	}
	if (!d->pop.port) {
		doctor_fail(d, STEP_POP3, "server_unavailable", "No POP3 port of %s answers (995 and 110): the server does not "
			"offer POP3, it is down, or a firewall blocks it.", d->server);
		return;
	}
	char note[sizeof(d->steps[0].detail)];
	bool warn;
	struct net_client *p = pop_open(d, note, sizeof(note), &warn);
	if (!p)
		return;
	char line[POP_LINE_MAX];
	if (!d->user) {
		doctor_step_set(d, STEP_POP3, S_WARN, "POP3 on port %u (%s) answers; no --user: login and mailbox size not "
			"checked", d->pop.port, doctor_mode_names[d->pop.mode]);
	} else if (pop_login(d, p) && pop_stat(d, p)) {
		char size[64], uidl[160];
		pop_human(d->pop.octets, size, sizeof(size));
		snprintf(uidl, sizeof(uidl), "%s", d->pop.uidl ? "UIDL supported (a copy can be left on the server)"
			: d->pop.uidl_known ? "no UIDL: the mail program cannot leave a copy on the server (it would "
			"download every message again)" : "UIDL support unknown (no CAPA, empty mailbox)");
		bool bad = warn || (!d->pop.uidl && d->pop.uidl_known);
		doctor_step_set(d, STEP_POP3, bad ? S_WARN : S_OK, "logged in as %s on port %u (%s); %s; mailbox: %lu message%s, "
			"%s%s%.200s", d->user, d->pop.port, doctor_mode_names[d->pop.mode], uidl, d->pop.messages,
			d->pop.messages == 1 ? "" : "s", size, warn ? "; " : "", warn ? note : "");
	}
	pop_command(d, p, "QUIT", NULL, line, sizeof(line));
	net_client_close(&p);
}
