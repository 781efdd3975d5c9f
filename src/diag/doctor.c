/* doctor.c - `postern doctor`: what a mail client's "Test account settings" does, one
 * step at a time, naming the cause of the first failure with its fix.
 *
 *   1 name resolves   2 ports 25/26/465/587 answer   3 TLS mode and certificate
 *   4 EHLO (AUTH offered?)   5 login   6 MAIL FROM   7 RCPT to an outside address
 *   8 with --send, one short test message (never more than one)
 *   9 with --pop3, POP3 login (995 implicit TLS or 110 with STLS), UIDL, mailbox size
 * Every connect and every reply has a short bounded time limit (net/client.c); SMTP
 * replies are read by the one SMTP client's reader (delivery/smtp_client.h).
 * Exit status: 0 all passed, 10 + step of the first failure, 1 error, 2 usage. */
#include "diag/doctor.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag/common.h"
#include "diag/diag.h"
#include "diag/json.h"
#include "delivery/smtp_client.h"
#include "net/client.h"
#include "wire/wire.h"

#define SLOTS 4
#define PSLOTS 2
#define ADDR_MAX 320
#define OUTSIDE_DEFAULT "postern-doctor@example.com"

static const unsigned slot_names[SLOTS] = { 587, 465, 26, 25 };   /* order of preference */
static const char *const step_names[STEP_COUNT] = {
	"", "name resolves", "ports answer", "TLS and certificate", "EHLO capabilities",
	"login", "sender (MAIL FROM)", "relaying and recipient (RCPT)", "test message",
	"POP3 (login, UIDL, mailbox size)",
};
static const unsigned pslot_names[PSLOTS] = { 995, 110 };   /* order of preference */

enum mode { MODE_UNKNOWN, MODE_PLAIN, MODE_STARTTLS, MODE_IMPLICIT };
static const char *const mode_names[] = { "unknown", "none", "STARTTLS", "SSL/TLS" };

struct slot {
	unsigned name, port;
	bool enabled, open;
	enum net_status st;
	char err[160];
	enum mode mode;
	struct net_cert cert;
	bool have_cert;
	char auth[160];          /* AUTH mechanisms offered (after TLS when there is TLS) */
	bool auth_before_tls;
};

/* A POP3 port: 995 (implicit TLS) or 110 (STLS). */
struct pslot {
	unsigned name, port;
	bool enabled, open;
	enum net_status st;
	enum mode mode;
};

struct pop3_result {
	bool tested, logged_in, capa, uidl, uidl_known, have_stat;
	const char *cause;       /* the POP3 step's own cause (the verdict may name an earlier one) */
	struct pslot *chosen;
	unsigned port;
	enum mode mode;
	unsigned long messages;
	unsigned long long octets;
};

struct step_result {
	enum { S_SKIP, S_OK, S_WARN, S_FAIL } status;
	char detail[512];
};

struct doctor {
	/* options */
	const char *server, *user, *from, *to, *outside, *source, *tls_name, *ca_file, *data;
	const char *security;    /* none, starttls, tls, or NULL: what the port speaks */
	char password[512];
	bool have_password, send, no_login, json, transcript, insecure, pop3;
	long client_port;        /* --port: a slot name or a port number, 0 none */
	const char *pop3_security;   /* --pop3-security, or NULL: what the port speaks */
	long pop3_port;          /* --pop3-port: 110, 995 or a port number, 0 none */
	bool smtp;               /* some SMTP port is to be tested */
	struct net_client_opts popts;
	FILE *transcript_to;     /* --transcript: stdout, or stderr with --json */
	/* state */
	struct slot slots[SLOTS];
	struct pslot pslots[PSLOTS];
	struct pop3_result pop;
	struct step_result steps[STEP_COUNT];
	struct slot *chosen;
	unsigned chosen_port;
	enum mode chosen_mode;
	char local_addr[64];
	bool logged_in;
	enum doctor_step failed;
	const char *cause_id;
	char verdict[1024];
	struct explain_kb *kb;
	struct wire_reply last;
};

/* --- options ---------------------------------------------------------------------- */

static int doctor_usage(void)
{
	fprintf(stderr,
		"usage: postern doctor --server HOST [--user ADDRESS --password-stdin] [--from ADDRESS]\n"
		"         [--to ADDRESS] [--send] [--outside ADDRESS] [--port N] [--security none|starttls|tls]\n"
		"         [--no-login] [--ports 587=N,465=N,25=N,26=N,110=N,995=N] [--port-25 N] [--port-26 N]\n"
		"         [--port-465 N] [--port-587 N] [--pop3 [--pop3-port N] [--pop3-security none|starttls|tls]]\n"
		"         [--port-110 N] [--port-995 N] [--source ADDRESS] [--tls-name NAME] [--ca-file FILE]\n"
		"         [--tls-verify | --insecure] [--connect-timeout S] [--timeout S]\n"
		"         [--transcript] [--json] [--data FILE]\n");
	return 2;
}

static struct slot *slot_by_name(struct doctor *d, unsigned name)
{
	for (int i = 0; i < SLOTS; i++)
		if (d->slots[i].name == name)
			return &d->slots[i];
	return NULL;
}

static struct pslot *pslot_by_name(struct doctor *d, unsigned name)
{
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].name == name)
			return &d->pslots[i];
	return NULL;
}

static bool parse_port(const char *s, unsigned *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
		return false;
	*out = (unsigned)v;
	return true;
}

/* "587=2587,465=2465" or "587,465": only the listed ports are tested.  POP3 ports
 * (110, 995) in the list limit the POP3 ports the same way; a list of POP3 ports only
 * leaves the SMTP steps out. */
static bool parse_ports(struct doctor *d, const char *list)
{
	for (int i = 0; i < SLOTS; i++)
		d->slots[i].enabled = false;
	bool pop_listed = false;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(t, '=');
		unsigned name, port = 0;
		if (eq)
			*eq = '\0';
		if (!parse_port(t, &name) || (eq && !parse_port(eq + 1, &port)))
			return false;
		struct pslot *ps = pslot_by_name(d, name);
		if (ps) {
			if (!pop_listed)
				for (int i = 0; i < PSLOTS; i++)
					d->pslots[i].enabled = false;
			pop_listed = true;
			ps->enabled = true;
			ps->port = eq ? port : name;
			continue;
		}
		if (!slot_by_name(d, name))
			return false;
		struct slot *s = slot_by_name(d, name);
		s->enabled = true;
		s->port = eq ? port : name;
	}
	return true;
}

static bool read_password(struct doctor *d)
{
	if (!fgets(d->password, sizeof(d->password), stdin))
		return false;
	d->password[strcspn(d->password, "\r\n")] = '\0';
	d->have_password = true;
	return true;
}

static bool opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
	if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
		return false;
	*out = argv[++*i];
	return true;
}

static bool parse_seconds(const char *s, unsigned *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || v <= 0 || v > 120)
		return false;
	*ms = (unsigned)(v * 1000);
	return true;
}

static bool parse_flag(struct doctor *d, const char *a, bool *pw_stdin)
{
	if (strcmp(a, "--password-stdin") == 0) *pw_stdin = true;
	else if (strcmp(a, "--send") == 0) d->send = true;
	else if (strcmp(a, "--no-login") == 0) d->no_login = true;
	else if (strcmp(a, "--json") == 0) d->json = true;
	else if (strcmp(a, "--transcript") == 0) d->transcript = true;
	else if (strcmp(a, "--insecure") == 0) d->insecure = true;
	else if (strcmp(a, "--tls-verify") == 0) d->insecure = false;
	else if (strcmp(a, "--pop3") == 0) d->pop3 = true;
	else return false;
	return true;
}

static bool parse_args(struct doctor *d, int argc, char **argv)
{
	bool pw_stdin = false;
	const char *v;
	for (int i = 1; i < argc; i++) {
		if (parse_flag(d, argv[i], &pw_stdin)) continue;
		if (opt_value(argc, argv, &i, "--server", &d->server)) continue;
		if (opt_value(argc, argv, &i, "--user", &d->user)) continue;
		if (opt_value(argc, argv, &i, "--from", &d->from)) continue;
		if (opt_value(argc, argv, &i, "--to", &d->to)) continue;
		if (opt_value(argc, argv, &i, "--outside", &d->outside)) continue;
		if (opt_value(argc, argv, &i, "--source", &d->source)) continue;
		if (opt_value(argc, argv, &i, "--tls-name", &d->tls_name)) continue;
		if (opt_value(argc, argv, &i, "--ca-file", &d->ca_file)) continue;
		if (opt_value(argc, argv, &i, "--data", &d->data)) continue;
		if (opt_value(argc, argv, &i, "--security", &d->security)) {
			if (strcmp(v = d->security, "none") && strcmp(v, "starttls") && strcmp(v, "tls") && strcmp(v, "ssl"))
				return false;
			continue;
		}
		if (opt_value(argc, argv, &i, "--pop3-security", &d->pop3_security)) {
			if (strcmp(v = d->pop3_security, "none") && strcmp(v, "starttls") && strcmp(v, "tls") && strcmp(v, "ssl"))
				return false;
			continue;
		}
		if (opt_value(argc, argv, &i, "--pop3-port", &v)) {
			unsigned p;
			if (!parse_port(v, &p))
				return false;
			d->pop3_port = p;
			continue;
		}
		if (opt_value(argc, argv, &i, "--ports", &v)) {
			if (!parse_ports(d, v))
				return false;
			continue;
		}
		if (opt_value(argc, argv, &i, "--port", &v)) {
			unsigned p;
			if (!parse_port(v, &p))
				return false;
			d->client_port = p;
			continue;
		}
		if (opt_value(argc, argv, &i, "--connect-timeout", &v)) {
			if (!parse_seconds(v, &d->popts.connect_ms))
				return false;
			continue;
		}
		if (opt_value(argc, argv, &i, "--timeout", &v)) {
			if (!parse_seconds(v, &d->popts.io_ms))
				return false;
			continue;
		}
		if (strncmp(argv[i], "--port-", 7) == 0 && i + 1 < argc) {
			unsigned name, port;
			if (!parse_port(argv[i] + 7, &name) || !parse_port(argv[i + 1], &port))
				return false;
			if (pslot_by_name(d, name)) {
				pslot_by_name(d, name)->port = port;
				pslot_by_name(d, name)->enabled = true;
				i++;
				continue;
			}
			if (!slot_by_name(d, name))
				return false;
			slot_by_name(d, name)->port = port;
			slot_by_name(d, name)->enabled = true;
			i++;
			continue;
		}
		return false;
	}
	if (!d->server || (d->user && !pw_stdin) || (pw_stdin && !d->user))
		return false;
	if ((d->pop3_port || d->pop3_security) && !d->pop3)
		return false;
	for (int i = 0; i < SLOTS; i++)
		d->smtp |= d->slots[i].enabled;
	d->smtp |= d->client_port != 0;
	if (!d->smtp && !d->pop3)
		return false;
	return !pw_stdin || read_password(d);
}

/* --- steps ------------------------------------------------------------------------- */

static void step_set(struct doctor *d, enum doctor_step s, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void step_set(struct doctor *d, enum doctor_step s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	d->steps[s].status = status;
	vsnprintf(d->steps[s].detail, sizeof(d->steps[s].detail), fmt, ap);
	va_end(ap);
}

/* The first failure decides the verdict. */
static bool fail(struct doctor *d, enum doctor_step s, const char *cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool fail(struct doctor *d, enum doctor_step s, const char *cause, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(d->verdict)];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->steps[s].status != S_FAIL)
		step_set(d, s, S_FAIL, "%s", msg);
	if (s == STEP_POP3)
		d->pop.cause = cause;
	if (d->failed)
		return false;      /* a later failure (POP3 after SMTP) does not change the verdict */
	memcpy(d->verdict, msg, sizeof(d->verdict));
	d->failed = s;
	d->cause_id = cause;
	return false;
}

/* The cause a reply names, by the knowledge base; `fallback` when it has none. */
static const char *reply_cause(struct doctor *d, const struct wire_reply *r, const char *fallback)
{
	struct explain_result res;
	explain_match(d->kb, r->lines, strlen(r->lines), &res);
	return res.known ? res.causes[0]->id : fallback;
}

/* The transcript (net_client_opts): "C: ", "S: ", "-- " lines. */
static void write_transcript(void *arg, const char *who, const char *text)
{
	fprintf(arg, "%s%s%s\n", who, strcmp(who, "--") == 0 ? " " : ": ", text);
}

/* One command line; `shown` is what the transcript shows instead (a masked password). */
static bool send_line(struct net_client *p, const char *line, const char *shown)
{
	char err[160];
	return net_client_write_line(p, line, shown, err, sizeof(err));
}

/* Connect to the server's port, in the doctor's words when it fails. */
static struct net_client *doctor_connect(struct doctor *d, unsigned port, enum net_status *st, char *err, size_t errsz)
{
	char why[256];
	struct net_client *p = net_client_open(d->server, port, &d->popts, st, why, sizeof(why));
	if (!p)
		snprintf(err, errsz, "%s", *st == NET_TIMEOUT ? "no answer (connection timed out)"
			: strncmp(why, "connect: ", 9) == 0 ? why + 9 : why);
	return p;
}

static void first_line(const char *text, char *out, size_t outsz)
{
	snprintf(out, outsz, "%.*s", (int)strcspn(text, "\n"), text);
}

static bool step_resolve(struct doctor *d)
{
	char addrs[512];
	if (net_resolve(d->server, addrs, sizeof(addrs)) == 0)
		return fail(d, STEP_RESOLVE, "server_unavailable", "The name %s does not resolve (%s): check the "
			"server name for typing mistakes.", d->server, addrs);
	step_set(d, STEP_RESOLVE, S_OK, "%s -> %s", d->server, addrs);
	return true;
}

/* EHLO; records STARTTLS and AUTH offers. */
static bool ehlo(struct doctor *d, struct net_client *p, struct wire_reply *r, bool *starttls, char *auth, size_t authsz)
{
	char err[160];
	if (!send_line(p, "EHLO doctor.postern.invalid", NULL) || !smtp_read_reply(p, r, err, sizeof(err))
		|| r->code != 250)
		return false;
	(void)d;
	*starttls = false;
	if (auth)
		auth[0] = '\0';
	struct wire_caps caps;
	memset(&caps, 0, sizeof(caps));
	/* The keywords follow the first line (RFC 5321 §4.1.1.1); text keeps "250-". */
	const char *l = strchr(r->lines, '\n');
	while (l) {
		l++;
		char kw[WIRE_REPLY_TEXT_MAX];
		size_t n = strcspn(l, "\n");
		snprintf(kw, sizeof(kw), "%.*s", n > 4 ? (int)(n - 4) : 0, n > 4 ? l + 4 : "");
		wire_caps_line(&caps, kw);
		l = strchr(l, '\n');
	}
	*starttls = caps.starttls;
	if (auth)
		snprintf(auth, authsz, "%s", caps.auth);
	return true;
}

static const char *tls_name(const struct doctor *d)
{
	return d->tls_name ? d->tls_name : d->server;
}

/* Implicit TLS on a fresh connection: handshake, greeting, EHLO. */
static bool survey_implicit(struct doctor *d, struct slot *s)
{
	enum net_status st;
	char err[160];
	struct net_client *p = doctor_connect(d, s->port, &st, err, sizeof(err));
	if (!p)
		return false;
	bool wrong, ok = net_client_tls_report(p, tls_name(d), d->ca_file, &s->cert, &wrong, err, sizeof(err));
	struct wire_reply r;
	bool starttls;
	if (ok && smtp_read_reply(p, &r, err, sizeof(err)) && r.code == 220) {
		s->mode = MODE_IMPLICIT;
		s->have_cert = true;
		ehlo(d, p, &r, &starttls, s->auth, sizeof(s->auth));
	}
	send_line(p, "QUIT", NULL);
	net_client_close(&p);
	return s->mode == MODE_IMPLICIT;
}

/* Plaintext greeting, EHLO, and STARTTLS when offered. */
static bool survey_plain(struct doctor *d, struct slot *s, struct net_client *p)
{
	struct wire_reply r;
	char err[160];
	bool starttls;
	if (!smtp_read_reply(p, &r, err, sizeof(err)) || r.code != 220
		|| !ehlo(d, p, &r, &starttls, s->auth, sizeof(s->auth)))
		return false;
	s->auth_before_tls = s->auth[0] != '\0';
	s->mode = MODE_PLAIN;
	if (starttls && send_line(p, "STARTTLS", NULL) && smtp_read_reply(p, &r, err, sizeof(err))
		&& r.code == 220) {
		bool wrong;
		if (net_client_tls_report(p, tls_name(d), d->ca_file, &s->cert, &wrong, err, sizeof(err))) {
			s->mode = MODE_STARTTLS;
			s->have_cert = true;
			ehlo(d, p, &r, &starttls, s->auth, sizeof(s->auth));
		}
	}
	send_line(p, "QUIT", NULL);
	return true;
}

static void survey_slot(struct doctor *d, struct slot *s)
{
	if (s->name == 465 && (s->open = survey_implicit(d, s)))
		return;
	struct net_client *p = doctor_connect(d, s->port, &s->st, s->err, sizeof(s->err));
	if (!p)
		return;
	s->open = true;
	bool plain = survey_plain(d, s, p);
	net_client_close(&p);
	if (!plain && s->name != 465)
		survey_implicit(d, s);
}

static void describe_slot(const struct slot *s, char *out, size_t outsz)
{
	if (!s->open)
		snprintf(out, outsz, "%u%s: %s", s->name, "", s->st == NET_TIMEOUT ? "no answer (timed out)"
			: s->st == NET_REFUSED ? "closed (connection refused)" : "unreachable");
	else
		snprintf(out, outsz, "%u: open, %s%s%s", s->name, s->mode == MODE_UNKNOWN ? "not SMTP"
			: mode_names[s->mode], s->auth[0] ? ", AUTH " : "", s->auth);
	if (s->port != s->name) {
		size_t n = strlen(out);
		snprintf(out + n, outsz - n, " (port %u)", s->port);
	}
}

static struct slot *best_slot(struct doctor *d)
{
	for (int i = 0; i < SLOTS; i++)
		if (d->slots[i].enabled && d->slots[i].open && d->slots[i].mode != MODE_UNKNOWN)
			return &d->slots[i];
	return NULL;
}

static bool step_ports(struct doctor *d)
{
	char detail[512] = "";
	for (int i = 0; i < SLOTS; i++) {
		struct slot *s = &d->slots[i];
		if (!s->enabled)
			continue;
		survey_slot(d, s);
		char one[200];
		describe_slot(s, one, sizeof(one));
		size_t n = strlen(detail);
		snprintf(detail + n, sizeof(detail) - n, "%s%s", n ? "; " : "", one);
	}
	struct slot *best = best_slot(d);
	d->chosen = d->client_port ? slot_by_name(d, (unsigned)d->client_port) : best;
	d->chosen_port = d->chosen ? d->chosen->port : (unsigned)d->client_port;
	if (!best)
		return fail(d, STEP_PORTS, "server_unavailable", "No mail port of %s answers (%s): the server is down, "
			"or a firewall blocks it.", d->server, detail);
	if (!d->chosen || !d->chosen->enabled) {
		step_set(d, STEP_PORTS, S_OK, "%s", detail);
		return true;     /* a port outside the four: tested in the session */
	}
	if (!d->chosen->open)
		return fail(d, STEP_PORTS, "port_blocked", "Port %u does not answer (%s) but port %u does: %s. Use port "
			"%u with %s.", d->chosen->name, d->chosen->st == NET_TIMEOUT ? "timed out" : "refused", best->name,
			d->chosen->name == 25 ? "the network (or the provider) blocks port 25" : "this port is closed",
			best->name, mode_names[best->mode]);
	step_set(d, STEP_PORTS, S_OK, "%s", detail);
	return true;
}

/* --- the client's session ------------------------------------------------------------ */

static enum mode wanted_mode(const struct doctor *d)
{
	if (!d->security)
		return d->chosen ? d->chosen->mode : MODE_STARTTLS;
	if (strcmp(d->security, "none") == 0)
		return MODE_PLAIN;
	return strcmp(d->security, "starttls") == 0 ? MODE_STARTTLS : MODE_IMPLICIT;
}

/* The certificate seen on `port` (spoken in `mode`): false after fail() at `step`; else
 * `note` describes it and *warn says a problem was let through by --insecure. */
static bool check_cert_at(struct doctor *d, enum doctor_step step, enum mode mode, unsigned port,
	const struct net_cert *c, char *note, size_t notesz, bool *warn)
{
	char what[700];
	snprintf(what, sizeof(what), "certificate %s, issued by %s, valid until %s", c->subject,
		c->self_signed ? "itself (self-signed)" : c->issuer, c->not_after);
	int st = d->insecure ? S_WARN : S_FAIL;
	const char *cause = NULL, *why = NULL;
	if (c->expired || c->not_yet_valid) {
		cause = "certificate_expired";
		why = c->expired ? "has expired" : "is not valid yet";
	} else if (!c->chain_ok) {
		cause = "certificate_untrusted";
		why = c->self_signed ? "is self-signed, so no mail program trusts it" : "is not trusted";
	} else if (!c->name_ok) {
		cause = "certificate_name_mismatch";
		why = "is not for the name";
	}
	*warn = false;
	if (!cause) {
		snprintf(note, notesz, "%s on port %u, %s %s: %.300s", mode_names[mode], port, c->protocol, c->cipher, what);
		return true;
	}
	if (st == S_WARN) {
		*warn = true;
		snprintf(note, notesz, "the certificate %s (%s), ignored because of --insecure: %.300s", why, cause, what);
		return true;
	}
	return fail(d, step, cause, "The server's certificate %s%s%s (%s; %s).", why,
		strcmp(cause, "certificate_name_mismatch") == 0 ? " " : "",
		strcmp(cause, "certificate_name_mismatch") == 0 ? tls_name(d) : "", what, c->verify_error);
}

static bool check_cert(struct doctor *d, const struct net_cert *c)
{
	char note[sizeof(d->steps[0].detail)];
	bool warn;
	if (!check_cert_at(d, STEP_TLS, d->chosen_mode, d->chosen_port, c, note, sizeof(note), &warn))
		return false;
	step_set(d, STEP_TLS, warn ? S_WARN : S_OK, "%s", note);
	return true;
}

static bool mode_mismatch(struct doctor *d, enum mode want, const char *err)
{
	enum mode real = d->chosen ? d->chosen->mode : MODE_UNKNOWN;
	char real_s[64] = "";
	if (real != MODE_UNKNOWN && real != want)
		snprintf(real_s, sizeof(real_s), ": the port speaks %s", mode_names[real]);
	return fail(d, STEP_TLS, "tls_mode_mismatch", "Port %u does not speak %s (%s)%s. Use port 465 with SSL/TLS, or "
		"587 with STARTTLS.", d->chosen_port, mode_names[want], err, real_s);
}

/* Connect as the client is set up: implicit TLS, or greeting + EHLO + STARTTLS. */
static struct net_client *open_session(struct doctor *d, char *auth, size_t authsz)
{
	enum net_status st;
	char err[256];
	struct wire_reply r;
	bool starttls, wrong;
	struct net_cert cert;
	enum mode want = d->chosen_mode = wanted_mode(d);
	struct net_client *p = doctor_connect(d, d->chosen_port, &st, err, sizeof(err));
	if (!p) {
		struct slot *best = best_slot(d);
		fail(d, STEP_PORTS, best ? "port_blocked" : "server_unavailable", "Port %u does not answer (%s)%s%s.",
			d->chosen_port, err, best ? ": use port " : "", best ? (best->name == 465 ? "465 with SSL/TLS" : "587 with STARTTLS") : "");
		return NULL;
	}
	snprintf(d->local_addr, sizeof(d->local_addr), "%s", net_client_local(p));
	if (want == MODE_IMPLICIT && !net_client_tls_report(p, tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
		mode_mismatch(d, want, err);
		net_client_close(&p);
		return NULL;
	}
	if (!smtp_read_reply(p, &r, err, sizeof(err)) || r.code != 220) {
		if (r.code == 554 || want != MODE_IMPLICIT)
			mode_mismatch(d, want, r.code ? r.lines : err);
		else
			fail(d, STEP_PORTS, "server_unavailable", "The server did not greet: %s", r.code ? r.lines : err);
		net_client_close(&p);
		return NULL;
	}
	if (!ehlo(d, p, &r, &starttls, auth, authsz)) {
		fail(d, STEP_EHLO, reply_cause(d, &r, "server_unavailable"), "EHLO failed: %s", r.lines);
		net_client_close(&p);
		return NULL;
	}
	if (want == MODE_STARTTLS) {
		if (!starttls) {
			mode_mismatch(d, want, "STARTTLS is not offered");
			net_client_close(&p);
			return NULL;
		}
		if (!send_line(p, "STARTTLS", NULL) || !smtp_read_reply(p, &r, err, sizeof(err))
			|| r.code != 220 || !net_client_tls_report(p, tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))
			|| !ehlo(d, p, &r, &starttls, auth, authsz)) {
			fail(d, STEP_TLS, "tls_mode_mismatch", "STARTTLS failed on port %u: %s", d->chosen_port, err);
			net_client_close(&p);
			return NULL;
		}
	}
	if (want == MODE_PLAIN)
		step_set(d, STEP_TLS, S_WARN, "no encryption on port %u (security \"none\"): passwords and mail travel in "
			"clear text", d->chosen_port);
	else if (!check_cert(d, &cert)) {
		net_client_close(&p);
		return NULL;
	}
	return p;
}

static bool command(struct doctor *d, struct net_client *p, const char *line, const char *shown)
{
	char err[160];
	if (!send_line(p, line, shown) || !smtp_read_reply(p, &d->last, err, sizeof(err))) {
		snprintf(d->last.lines, sizeof(d->last.lines), "%s", err);
		d->last.code = 0;
		return false;
	}
	return d->last.code >= 200 && d->last.code < 400;
}

static void base64(const char *in, size_t n, char *out, size_t outsz)
{
	if (4 * ((n + 2) / 3) + 1 > outsz) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static bool step_login(struct doctor *d, struct net_client *p, const char *auth)
{
	if (!d->user) {
		step_set(d, STEP_LOGIN, S_SKIP, d->no_login ? "not logging in (--no-login: the client relies on its network)"
			: "no --user given: the client does not log in");
		return true;
	}
	char token[1200], line[1720], b64[1700];
	size_t ul = strlen(d->user), pl = strlen(d->password);
	if (ul + pl + 2 > sizeof(token))
		return fail(d, STEP_LOGIN, "syntax_error", "user name or password too long");
	token[0] = '\0';
	memcpy(token + 1, d->user, ul + 1);
	memcpy(token + 2 + ul, d->password, pl);
	base64(token, ul + pl + 2, b64, sizeof(b64));
	snprintf(line, sizeof(line), "AUTH PLAIN %s", b64);
	if (command(d, p, line, "AUTH PLAIN ******** (user name and password, masked)") && d->last.code == 235) {
		d->logged_in = true;
		step_set(d, STEP_LOGIN, S_OK, "logged in as %s%s%s", d->user, auth[0] ? " (server offers AUTH " : "",
			auth[0] ? auth : "");
		if (auth[0])
			strcat(d->steps[STEP_LOGIN].detail, ")");
		return true;
	}
	char l1[300];
	first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = reply_cause(d, &d->last, d->last.code == 535 ? "wrong_credentials" : "unknown");
	if (!auth[0] && d->chosen_mode == MODE_PLAIN && strcmp(cause, "unknown") == 0)
		cause = "tls_required";
	return fail(d, STEP_LOGIN, cause, "Login as %s refused: %s", d->user, l1);
}

static const char *sender(const struct doctor *d)
{
	return d->from ? d->from : d->user ? d->user : "postern-doctor@example.net";
}

static bool step_sender(struct doctor *d, struct net_client *p)
{
	char line[ADDR_MAX + 20], l1[300];
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", sender(d));
	if (command(d, p, line, NULL)) {
		step_set(d, STEP_SENDER, S_OK, "sender <%s> accepted", sender(d));
		return true;
	}
	first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = reply_cause(d, &d->last, "unknown");
	if (!d->logged_in && (strcmp(cause, "not_authenticated") == 0 || d->last.code == 530))
		cause = d->no_login ? "untrusted_network" : "not_authenticated";
	return fail(d, STEP_SENDER, cause, "Sender <%s> refused: %s", sender(d), l1);
}

/* RCPT to --to as well (a mailbox on this server, typically): a full mailbox
 * (452 4.2.2 / 552 5.2.2) or an unknown user is named here, before any message. */
static bool step_recipient(struct doctor *d, struct net_client *p, const char *outside)
{
	if (!d->to || strcasecmp(d->to, outside) == 0)
		return true;
	char line[ADDR_MAX + 20], l1[300];
	snprintf(line, sizeof(line), "RCPT TO:<%s>", d->to);
	if (command(d, p, line, NULL)) {
		size_t n = strlen(d->steps[STEP_RELAY].detail);
		snprintf(d->steps[STEP_RELAY].detail + n, sizeof(d->steps[STEP_RELAY].detail) - n,
			"; the recipient <%.*s> is accepted", ADDR_MAX, d->to);
		return true;
	}
	first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = reply_cause(d, &d->last, "unknown");
	if (strcmp(cause, "mailbox_full") == 0)
		return fail(d, STEP_RELAY, cause, "The mailbox of <%s> is full: %s. Mail to it is refused until its "
			"owner deletes mail (or the quota is raised).", d->to, l1);
	return fail(d, STEP_RELAY, cause, "Recipient <%s> refused: %s", d->to, l1);
}

static bool step_relay(struct doctor *d, struct net_client *p)
{
	char line[ADDR_MAX + 20], l1[300];
	const char *outside = d->outside ? d->outside : OUTSIDE_DEFAULT;
	snprintf(line, sizeof(line), "RCPT TO:<%s>", outside);
	if (command(d, p, line, NULL)) {
		step_set(d, STEP_RELAY, S_OK, "mail to another domain (<%s>) is accepted%s", outside,
			d->logged_in ? " after login" : " without login");
		return step_recipient(d, p, outside);
	}
	first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = reply_cause(d, &d->last, "unknown");
	bool relay = strcmp(cause, "not_authenticated") == 0 || strcmp(cause, "untrusted_network") == 0;
	if (!d->logged_in && relay)
		cause = d->no_login ? "untrusted_network" : "not_authenticated";
	if (!d->logged_in && relay)
		return fail(d, STEP_RELAY, cause, "Relaying refused for %s (not logged in): %s. Without this fix a mail "
			"program gets \"503 valid RCPT command must precede DATA\" when it sends.", d->local_addr, l1);
	if (strcmp(cause, "sender_not_owned") == 0)    /* Postfix checks the sender at RCPT (smtpd_delay_reject) */
		return fail(d, STEP_RELAY, cause, "The sender <%s> is refused (this server checks it at RCPT): %s",
			sender(d), l1);
	return fail(d, STEP_RELAY, cause, "Recipient <%s> refused: %s", outside, l1);
}

static bool step_send(struct doctor *d, struct net_client *p)
{
	if (!d->send) {
		step_set(d, STEP_SEND, S_SKIP, "no --send: no message sent");
		return true;
	}
	const char *to = d->to ? d->to : sender(d);
	char line[ADDR_MAX + 20], l1[300], msg[1024], date[64], err[160];
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	bool ok = command(d, p, "RSET", NULL);
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", sender(d));
	ok = ok && command(d, p, line, NULL);
	snprintf(line, sizeof(line), "RCPT TO:<%s>", to);
	ok = ok && command(d, p, line, NULL);
	ok = ok && command(d, p, "DATA", NULL) ;
	if (!ok && d->last.code != 354) {
		first_line(d->last.lines, l1, sizeof(l1));
		return fail(d, STEP_SEND, reply_cause(d, &d->last, "unknown"), "The test message was refused: %s", l1);
	}
	snprintf(msg, sizeof(msg), "From: <%s>\r\nTo: <%s>\r\nSubject: Postern doctor test message\r\nDate: %s\r\n"
		"Message-ID: <%lld.doctor@postern.invalid>\r\n\r\nThis is a test message sent by `postern doctor`.\r\n"
		"If you can read it, sending mail with these settings works.\r\n", sender(d), to, date, (long long)now);
	if (d->transcript_to)
		fprintf(d->transcript_to, "C: (%zu bytes of message)\nC: .\n", strlen(msg));
	if (!net_client_write(p, msg, strlen(msg), err, sizeof(err)) || !command(d, p, ".", "") || d->last.code != 250) {
		first_line(d->last.lines, l1, sizeof(l1));
		return fail(d, STEP_SEND, reply_cause(d, &d->last, "unknown"), "The test message was refused: %s", l1);
	}
	first_line(d->last.lines, l1, sizeof(l1));
	step_set(d, STEP_SEND, S_OK, "one test message sent to <%s>: %s", to, l1);
	return true;
}

static void run_session(struct doctor *d)
{
	char auth[160] = "";
	struct net_client *p = open_session(d, auth, sizeof(auth));
	if (!p)
		return;
	if (d->user && auth[0])
		step_set(d, STEP_EHLO, S_OK, "AUTH %s offered%s", auth, d->chosen_mode == MODE_PLAIN ? " without TLS" : "");
	else if (d->user)
		step_set(d, STEP_EHLO, S_WARN, "no AUTH offered on port %u%s", d->chosen_port,
			d->chosen_mode == MODE_PLAIN ? " before TLS" : "");
	else
		step_set(d, STEP_EHLO, S_OK, "EHLO accepted%s%s", auth[0] ? ", AUTH " : "", auth);
	if (step_login(d, p, auth) && step_sender(d, p) && step_relay(d, p) && step_send(d, p))
		command(d, p, "QUIT", NULL);
	net_client_close(&p);
}


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

static bool pop_command(struct net_client *p, const char *cmd, const char *shown, char *line, size_t linesz)
{
	if (!send_line(p, cmd, shown)) {
		snprintf(line, linesz, "(the connection was lost)");
		return false;
	}
	return pop_status(p, line, linesz);
}

/* CAPA (RFC 2449): false when the server does not answer it.  Notes STLS, UIDL, USER. */
static bool pop_capa(struct net_client *p, bool *stls, bool *uidl)
{
	char line[POP_LINE_MAX], err[160];
	*stls = *uidl = false;
	if (!pop_command(p, "CAPA", NULL, line, sizeof(line)))
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
			if (net_client_tls_report(p, tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))
				&& pop_status(p, line, sizeof(line)))
				s->mode = MODE_IMPLICIT;
		} else if (pop_status(p, line, sizeof(line)))
			s->mode = pop_capa(p, &stls, &uidl) && stls ? MODE_STARTTLS : MODE_PLAIN;
		if (s->mode != MODE_UNKNOWN)
			pop_command(p, "QUIT", NULL, line, sizeof(line));
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

static struct pslot *pop_best(struct doctor *d)
{
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].enabled && d->pslots[i].mode != MODE_UNKNOWN)
			return &d->pslots[i];
	return NULL;
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
	struct pslot *best = pop_best(d);
	char real_s[96] = "";
	if (d->pop.chosen && d->pop.chosen->mode != MODE_UNKNOWN && d->pop.chosen->mode != want)
		snprintf(real_s, sizeof(real_s), ": the port speaks %s", mode_names[d->pop.chosen->mode]);
	else if (best && best->mode != want)
		snprintf(real_s, sizeof(real_s), ": port %u speaks %s", best->port, mode_names[best->mode]);
	return fail(d, STEP_POP3, "tls_mode_mismatch", "POP3 port %u does not speak %s (%s)%s. Use port 995 with "
		"SSL/TLS, or 110 with STARTTLS (STLS).", d->pop.port, mode_names[want], err, real_s);
}

/* Connect as the mail program is set up; NULL after fail(). */
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
		struct pslot *best = pop_best(d);
		fail(d, STEP_POP3, best ? "port_blocked" : "server_unavailable", "POP3 port %u does not answer (%s)%s%s.",
			d->pop.port, err, best ? ": use port " : "", best ? (best->name == 995 ? "995 with SSL/TLS"
			: "110 with STARTTLS") : "");
		return NULL;
	}
	if (want == MODE_IMPLICIT && !net_client_tls_report(p, tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
		pop_fail_mode(d, want, err);
		net_client_close(&p);
		return NULL;
	}
	if (!pop_status(p, line, sizeof(line))) {
		if (want == MODE_IMPLICIT && strncmp(line, "-ERR", 4) == 0)
			fail(d, STEP_POP3, "server_unavailable", "The POP3 server refused the connection: %s", line);
		else
			pop_fail_mode(d, want, line);
		net_client_close(&p);
		return NULL;
	}
	d->pop.capa = pop_capa(p, &stls, &uidl);
	if (want == MODE_STARTTLS) {
		if (!stls) {
			pop_fail_mode(d, want, "STLS is not offered");
			net_client_close(&p);
			return NULL;
		}
		if (!pop_command(p, "STLS", NULL, line, sizeof(line))
			|| !net_client_tls_report(p, tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
			fail(d, STEP_POP3, "tls_mode_mismatch", "STLS failed on POP3 port %u: %s", d->pop.port,
				strncmp(line, "+OK", 3) == 0 ? err : line);
			net_client_close(&p);
			return NULL;
		}
		d->pop.capa = pop_capa(p, &stls, &uidl);
	}
	d->pop.uidl = uidl;
	d->pop.uidl_known = d->pop.capa;
	if (want == MODE_PLAIN) {
		*warn = true;
		snprintf(note, notesz, "no encryption on POP3 port %u: the password travels in clear text", d->pop.port);
	} else if (!check_cert_at(d, STEP_POP3, want, d->pop.port, &cert, note, notesz, warn)) {
		net_client_close(&p);
		return NULL;
	}
	return p;
}

static bool pop_login(struct doctor *d, struct net_client *p)
{
	char cmd[700], line[POP_LINE_MAX];
	if (strlen(d->user) > 320 || strlen(d->password) > 320)
		return fail(d, STEP_POP3, "syntax_error", "user name or password too long");
	snprintf(cmd, sizeof(cmd), "USER %s", d->user);
	bool ok = pop_command(p, cmd, NULL, line, sizeof(line));
	if (ok) {
		snprintf(cmd, sizeof(cmd), "PASS %s", d->password);
		ok = pop_command(p, cmd, "PASS ******** (password, masked)", line, sizeof(line));
		OPENSSL_cleanse(cmd, sizeof(cmd));
	}
	if (!ok)
		return fail(d, STEP_POP3, pop_login_cause(d, line), "POP3 login as %s refused on port %u: %s", d->user,
			d->pop.port, line);
	d->pop.logged_in = true;
	return true;
}

/* STAT: "+OK count octets". */
static bool pop_stat(struct doctor *d, struct net_client *p)
{
	char line[POP_LINE_MAX];
	if (!pop_command(p, "STAT", NULL, line, sizeof(line)))
		return fail(d, STEP_POP3, "server_unavailable", "POP3 STAT failed: %s", line);
	if (sscanf(line + 3, "%lu %llu", &d->pop.messages, &d->pop.octets) != 2)
		return fail(d, STEP_POP3, "unknown", "POP3 STAT answer not understood: %s", line);
	d->pop.have_stat = true;
	/* No CAPA: ask for one UIDL to learn whether it is there. */
	if (!d->pop.uidl_known && d->pop.messages > 0) {
		d->pop.uidl = pop_command(p, "UIDL 1", NULL, line, sizeof(line));
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

static void step_pop3(struct doctor *d)
{
	if (!d->pop3) {
		step_set(d, STEP_POP3, S_SKIP, "no --pop3: receiving mail is not tested");
		return;
	}
	d->pop.tested = true;
	for (int i = 0; i < PSLOTS; i++)
		if (d->pslots[i].enabled)
			pop_survey(d, &d->pslots[i]);
	struct pslot *best = pop_best(d);
	if (d->pop3_port) {
		d->pop.chosen = pslot_by_name(d, (unsigned)d->pop3_port);
		for (int i = 0; !d->pop.chosen && i < PSLOTS; i++)
			if (d->pslots[i].port == d->pop3_port)
				d->pop.chosen = &d->pslots[i];
		d->pop.port = d->pop.chosen ? d->pop.chosen->port : (unsigned)d->pop3_port;
	} else {
		d->pop.chosen = best;
		d->pop.port = best ? best->port : 0;
	}
	if (!d->pop.port) {
		fail(d, STEP_POP3, "server_unavailable", "No POP3 port of %s answers (995 and 110): the server does not "
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
		step_set(d, STEP_POP3, S_WARN, "POP3 on port %u (%s) answers; no --user: login and mailbox size not "
			"checked", d->pop.port, mode_names[d->pop.mode]);
	} else if (pop_login(d, p) && pop_stat(d, p)) {
		char size[64], uidl[160];
		pop_human(d->pop.octets, size, sizeof(size));
		snprintf(uidl, sizeof(uidl), "%s", d->pop.uidl ? "UIDL supported (a copy can be left on the server)"
			: d->pop.uidl_known ? "no UIDL: the mail program cannot leave a copy on the server (it would "
			"download every message again)" : "UIDL support unknown (no CAPA, empty mailbox)");
		bool bad = warn || (!d->pop.uidl && d->pop.uidl_known);
		step_set(d, STEP_POP3, bad ? S_WARN : S_OK, "logged in as %s on port %u (%s); %s; mailbox: %lu message%s, "
			"%s%s%.200s", d->user, d->pop.port, mode_names[d->pop.mode], uidl, d->pop.messages,
			d->pop.messages == 1 ? "" : "s", size, warn ? "; " : "", warn ? note : "");
	}
	pop_command(p, "QUIT", NULL, line, sizeof(line));
	net_client_close(&p);
}

/* --- output ----------------------------------------------------------------------------- */

static const char *const marks[] = { "[skip]", "[ok]", "[warn]", "[FAIL]" };
static const char *const status_names[] = { "skipped", "ok", "warning", "failed" };

/* What worked: the recommended client settings. */
static const struct slot *settings_slot(const struct doctor *d)
{
	if (!d->failed || (d->failed > STEP_TLS && d->chosen))
		return d->chosen;
	return best_slot((struct doctor *)d);
}

static void settings(const struct doctor *d, unsigned *port, const char **sec, const char **auth)
{
	const struct slot *s = settings_slot(d);
	*port = s ? s->name : d->chosen_port;
	if (s && s->port != s->name)
		*port = s->port;
	*sec = s ? (s->mode == MODE_IMPLICIT ? "SSL/TLS" : s->mode == MODE_STARTTLS ? "STARTTLS" : "none") : "STARTTLS";
	*auth = s && !s->auth[0] ? "none offered" : "normal password (PLAIN or LOGIN)";
}

/* The recommended incoming (POP3) settings: what worked, else the best port seen. */
static void pop_settings(const struct doctor *d, unsigned *port, const char **sec)
{
	const struct pslot *best = pop_best((struct doctor *)d);
	bool worked = d->pop.logged_in || (!d->user && d->steps[STEP_POP3].status != S_FAIL);
	if (worked || !best) {
		*port = d->pop.port ? d->pop.port : 995;
		*sec = d->pop.port ? mode_names[d->pop.mode] : "SSL/TLS";
	} else {
		*port = best->port;
		*sec = mode_names[best->mode];
	}
}

static void print_text(const struct doctor *d, const struct explain_cause *c)
{
	printf("Postern doctor: %s%s%s\n\n", d->server, d->local_addr[0] ? " from " : "", d->local_addr);
	for (int s = 1; s < STEP_COUNT; s++) {
		const struct step_result *r = &d->steps[s];
		char head[64];
		snprintf(head, sizeof(head), "%-6s %d. %s:", marks[r->status], s, step_names[s]);
		diag_wrap(stdout, 10, head, r->detail[0] ? r->detail : "not reached");
	}
	printf("\n");
	if (!d->failed)
		diag_wrap(stdout, 9, "Verdict:", !d->smtp ? "Everything works: a mail program with the settings below can "
			"receive mail." : d->pop.tested ? "Everything works: a mail program with the settings below can send "
			"and receive mail." : "Everything works: a mail program with the settings below can send mail.");
	else {
		diag_wrap(stdout, 9, "Verdict:", d->verdict);
		printf("\nCause: ");
		diag_cause_text(stdout, 0, c);
	}
	unsigned port;
	const char *sec, *auth;
	if (d->smtp) {
		settings(d, &port, &sec, &auth);
		printf("\nRecommended settings (outgoing server):\n");
		printf("  Server:          %s\n  Port:            %u\n  Security:        %s\n", d->server, port, sec);
		printf("  Authentication:  %s\n  User name:       %s\n", auth, d->user ? d->user : "your full email address");
	}
	if (d->pop.tested) {
		pop_settings(d, &port, &sec);
		printf("\nRecommended settings (incoming server, POP3):\n");
		printf("  Server:          %s\n  Port:            %u\n  Security:        %s\n", d->server, port, sec);
		printf("  Authentication:  normal password\n  User name:       %s\n",
			d->user ? d->user : "your full email address");
		printf("  Leave a copy of messages on the server: %s\n", d->pop.uidl ? "possible (UIDL)"
			: d->pop.uidl_known ? "not possible (no UIDL)" : "unknown");
	}
}

static void print_json(const struct doctor *d, const struct explain_cause *c)
{
	printf("{\"server\": ");
	json_str(stdout, d->server);
	printf(", \"source\": ");
	json_str(stdout, d->local_addr[0] ? d->local_addr : NULL);
	printf(", \"steps\": [");
	for (int s = 1; s < STEP_COUNT; s++) {
		printf("%s{\"step\": %d, \"name\": ", s > 1 ? ", " : "", s);
		json_str(stdout, step_names[s]);
		printf(", \"status\": \"%s\", \"detail\": ", status_names[d->steps[s].status]);
		json_str(stdout, d->steps[s].detail);
		printf("}");
	}
	printf("], \"ports\": [");
	bool first = true;
	for (int i = 0; i < SLOTS; i++) {
		const struct slot *s = &d->slots[i];
		if (!s->enabled)
			continue;
		printf("%s{\"name\": %u, \"port\": %u, \"open\": %s, \"security\": \"%s\", \"auth\": ", first ? "" : ", ",
			s->name, s->port, s->open ? "true" : "false", mode_names[s->mode]);
		json_str(stdout, s->auth);
		printf(", \"certificate\": ");
		if (s->have_cert) {
			printf("{\"subject\": ");
			json_str(stdout, s->cert.subject);
			printf(", \"issuer\": ");
			json_str(stdout, s->cert.issuer);
			printf(", \"not_after\": ");
			json_str(stdout, s->cert.not_after);
			printf(", \"days_left\": %d, \"trusted\": %s, \"self_signed\": %s, \"expired\": %s, \"name_ok\": %s}",
				s->cert.days_left, s->cert.chain_ok ? "true" : "false", s->cert.self_signed ? "true" : "false",
				s->cert.expired ? "true" : "false", s->cert.name_ok ? "true" : "false");
		} else
			printf("null");
		printf("}");
		first = false;
	}
	printf("], \"verdict\": {\"ok\": %s, \"step\": ", d->failed ? "false" : "true");
	if (d->failed)
		printf("%d, \"id\": \"%s\", \"message\": ", (int)d->failed, c->id);
	else
		printf("null, \"id\": null, \"message\": ");
	json_str(stdout, d->failed ? d->verdict : "Everything works.");
	printf(", \"cause\": ");
	if (d->failed)
		diag_cause_json(stdout, c);
	else
		printf("null");
	unsigned port;
	const char *sec, *auth;
	settings(d, &port, &sec, &auth);
	printf("}, \"settings\": {\"server\": ");
	json_str(stdout, d->server);
	printf(", \"port\": %u, \"security\": \"%s\", \"authentication\": ", port, sec);
	json_str(stdout, auth);
	printf(", \"user\": ");
	json_str(stdout, d->user);
	printf("}, \"pop3\": ");
	if (!d->pop.tested) {
		printf("null}\n");
		return;
	}
	printf("{\"ports\": [");
	first = true;
	for (int i = 0; i < PSLOTS; i++) {
		const struct pslot *s = &d->pslots[i];
		if (!s->enabled)
			continue;
		printf("%s{\"name\": %u, \"port\": %u, \"open\": %s, \"security\": \"%s\"}", first ? "" : ", ",
			s->name, s->port, s->open ? "true" : "false", mode_names[s->mode]);
		first = false;
	}
	printf("], \"port\": %u, \"security\": \"%s\", \"logged_in\": %s, \"uidl\": %s, ", d->pop.port,
		mode_names[d->pop.mode], d->pop.logged_in ? "true" : "false",
		!d->pop.uidl_known && !d->pop.uidl ? "null" : d->pop.uidl ? "true" : "false");
	if (d->pop.have_stat)
		printf("\"messages\": %lu, \"octets\": %llu, ", d->pop.messages, d->pop.octets);
	else
		printf("\"messages\": null, \"octets\": null, ");
	printf("\"status\": \"%s\", \"id\": ", status_names[d->steps[STEP_POP3].status]);
	json_str(stdout, d->pop.cause);
	pop_settings(d, &port, &sec);
	printf(", \"settings\": {\"server\": ");
	json_str(stdout, d->server);
	printf(", \"port\": %u, \"security\": \"%s\", \"user\": ", port, sec);
	json_str(stdout, d->user);
	printf("}}}\n");
}

int diag_doctor_main(int argc, char **argv)
{
	struct doctor *d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	d->popts.connect_ms = 5000;
	d->popts.io_ms = 10000;
	for (int i = 0; i < SLOTS; i++)
		d->slots[i] = (struct slot){ .name = slot_names[i], .port = slot_names[i], .enabled = true };
	for (int i = 0; i < PSLOTS; i++)
		d->pslots[i] = (struct pslot){ .name = pslot_names[i], .port = pslot_names[i], .enabled = true };
	int rc = 2;
	if (!parse_args(d, argc, argv))
		rc = doctor_usage();
	else if (!diag_load_kb(&d->kb, d->data))
		rc = 1;
	else {
		d->popts.source = d->source;
		d->transcript_to = d->transcript ? (d->json ? stderr : stdout) : NULL;
		d->popts.transcript = d->transcript_to ? write_transcript : NULL;
		d->popts.transcript_arg = d->transcript_to;
		if (d->transcript && !d->json)
			printf("Transcript (passwords masked):\n");
		if (step_resolve(d)) {
			if (!d->smtp)
				for (int s = STEP_PORTS; s <= STEP_SEND; s++)
					step_set(d, s, S_SKIP, "not tested: --ports lists POP3 ports only");
			else if (step_ports(d))
				run_session(d);
			step_pop3(d);
		}
		if (d->transcript && !d->json)
			printf("\n");
		const struct explain_cause *c = explain_kb_cause(d->kb, d->cause_id ? d->cause_id : "unknown");
		if (d->json)
			print_json(d, c);
		else
			print_text(d, c);
		rc = d->failed ? DOCTOR_EXIT_BASE + (int)d->failed : 0;
	}
	explain_kb_free(&d->kb);
	OPENSSL_cleanse(d->password, sizeof(d->password));
	free(d);
	return rc;
}
