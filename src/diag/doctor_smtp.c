/* doctor_smtp.c - `postern doctor` steps 2-8 over SMTP: the survey of the ports
 * (what each speaks, its certificate), then the client's session: TLS, EHLO, login,
 * MAIL FROM, RCPT to an outside address, the one test message (see doctor.c). */
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

/* EHLO; records STARTTLS and AUTH offers. */
static bool ehlo(struct doctor *d, struct net_client *p, struct wire_reply *r, bool *starttls, char *auth, size_t authsz)
{
	char err[160];
	if (!doctor_send_line(d, p, "EHLO doctor.postern.invalid", NULL) || !smtp_read_reply(p, r, err, sizeof(err))
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

/* Implicit TLS on a fresh connection: handshake, greeting, EHLO. */
static bool survey_implicit(struct doctor *d, struct slot *s)
{
	enum net_status st;
	char err[160];
	struct net_client *p = doctor_connect(d, s->port, &st, err, sizeof(err));
	if (!p)
		return false;
	bool wrong, ok = net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &s->cert, &wrong, err, sizeof(err));
	struct wire_reply r;
	bool starttls;
	if (ok && smtp_read_reply(p, &r, err, sizeof(err)) && r.code == 220) {
		s->mode = MODE_IMPLICIT;
		s->have_cert = true;
		ehlo(d, p, &r, &starttls, s->auth, sizeof(s->auth));
	}
	doctor_send_line(d, p, "QUIT", NULL);
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
	if (starttls && doctor_send_line(d, p, "STARTTLS", NULL) && smtp_read_reply(p, &r, err, sizeof(err))
		&& r.code == 220) {
		bool wrong;
		if (net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &s->cert, &wrong, err, sizeof(err))) {
			s->mode = MODE_STARTTLS;
			s->have_cert = true;
			ehlo(d, p, &r, &starttls, s->auth, sizeof(s->auth));
		}
	}
	doctor_send_line(d, p, "QUIT", NULL);
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
			: doctor_mode_names[s->mode], s->auth[0] ? ", AUTH " : "", s->auth);
	if (s->port != s->name) {
		size_t n = strlen(out);
		snprintf(out + n, outsz - n, " (port %u)", s->port);
	}
}

bool doctor_step_ports(struct doctor *d)
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
	struct slot *best = doctor_best_slot(d);
	d->chosen = d->client_port ? doctor_slot_by_name(d, (unsigned)d->client_port) : best;
	d->chosen_port = d->chosen ? d->chosen->port : (unsigned)d->client_port;
	if (!best)
		return doctor_fail(d, STEP_PORTS, "server_unavailable", "No mail port of %s answers (%s): the server is down, "
			"or a firewall blocks it.", d->server, detail);
	if (!d->chosen || !d->chosen->enabled) {
		doctor_step_set(d, STEP_PORTS, S_OK, "%s", detail);
		return true;     /* a port outside the four: tested in the session */
	}
	if (!d->chosen->open)
		return doctor_fail(d, STEP_PORTS, "port_blocked", "Port %u does not answer (%s) but port %u does: %s. Use port "
			"%u with %s.", d->chosen->name, d->chosen->st == NET_TIMEOUT ? "timed out" : "refused", best->name,
			d->chosen->name == 25 ? "the network (or the provider) blocks port 25" : "this port is closed",
			best->name, doctor_mode_names[best->mode]);
	doctor_step_set(d, STEP_PORTS, S_OK, "%s", detail);
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

static bool check_cert(struct doctor *d, const struct net_cert *c)
{
	char note[sizeof(d->steps[0].detail)];
	bool warn;
	if (!doctor_check_cert_at(d, STEP_TLS, d->chosen_mode, d->chosen_port, c, note, sizeof(note), &warn))
		return false;
	doctor_step_set(d, STEP_TLS, warn ? S_WARN : S_OK, "%s", note);
	return true;
}

static bool mode_mismatch(struct doctor *d, enum mode want, const char *err)
{
	enum mode real = d->chosen ? d->chosen->mode : MODE_UNKNOWN;
	char real_s[64] = "";
	if (real != MODE_UNKNOWN && real != want)
		snprintf(real_s, sizeof(real_s), ": the port speaks %s", doctor_mode_names[real]);
	return doctor_fail(d, STEP_TLS, "tls_mode_mismatch", "Port %u does not speak %s (%s)%s. Use port 465 with SSL/TLS, or "
		"587 with STARTTLS.", d->chosen_port, doctor_mode_names[want], err, real_s);
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
		struct slot *best = doctor_best_slot(d);
		doctor_fail(d, STEP_PORTS, best ? "port_blocked" : "server_unavailable", "Port %u does not answer (%s)%s%s.",
			d->chosen_port, err, best ? ": use port " : "", best ? (best->name == 465 ? "465 with SSL/TLS" : "587 with STARTTLS") : "");
		return NULL;
	}
	snprintf(d->local_addr, sizeof(d->local_addr), "%s", net_client_local(p));
	if (want == MODE_IMPLICIT && !net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))) {
		mode_mismatch(d, want, err);
		net_client_close(&p);
		return NULL;
	}
	if (!smtp_read_reply(p, &r, err, sizeof(err)) || r.code != 220) {
		if (r.code == 554 || want != MODE_IMPLICIT)
			mode_mismatch(d, want, r.code ? r.lines : err);
		else
			doctor_fail(d, STEP_PORTS, "server_unavailable", "The server did not greet: %s", r.code ? r.lines : err);
		net_client_close(&p);
		return NULL;
	}
	if (!ehlo(d, p, &r, &starttls, auth, authsz)) {
		doctor_fail(d, STEP_EHLO, doctor_reply_cause(d, &r, "server_unavailable"), "EHLO failed: %s", r.lines);
		net_client_close(&p);
		return NULL;
	}
	if (want == MODE_STARTTLS) {
		if (!starttls) {
			mode_mismatch(d, want, "STARTTLS is not offered");
			net_client_close(&p);
			return NULL;
		}
		if (!doctor_send_line(d, p, "STARTTLS", NULL) || !smtp_read_reply(p, &r, err, sizeof(err))
			|| r.code != 220 || !net_client_tls_report(p, doctor_tls_name(d), d->ca_file, &cert, &wrong, err, sizeof(err))
			|| !ehlo(d, p, &r, &starttls, auth, authsz)) {
			doctor_fail(d, STEP_TLS, "tls_mode_mismatch", "STARTTLS failed on port %u: %s", d->chosen_port, err);
			net_client_close(&p);
			return NULL;
		}
	}
	if (want == MODE_PLAIN)
		doctor_step_set(d, STEP_TLS, S_WARN, "no encryption on port %u (security \"none\"): passwords and mail travel in "
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
	if (!doctor_send_line(d, p, line, shown) || !smtp_read_reply(p, &d->last, err, sizeof(err))) {
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
		doctor_step_set(d, STEP_LOGIN, S_SKIP, d->no_login ? "not logging in (--no-login: the client relies on its network)"
			: "no --user given: the client does not log in");
		return true;
	}
	char token[1200], line[1720], b64[1700];
	size_t ul = strlen(d->user), pl = strlen(d->password);
	if (ul + pl + 2 > sizeof(token))
		return doctor_fail(d, STEP_LOGIN, "syntax_error", "user name or password too long");
	token[0] = '\0';
	memcpy(token + 1, d->user, ul + 1);
	memcpy(token + 2 + ul, d->password, pl);
	base64(token, ul + pl + 2, b64, sizeof(b64));
	snprintf(line, sizeof(line), "AUTH PLAIN %s", b64);
	if (command(d, p, line, "AUTH PLAIN ******** (user name and password, masked)") && d->last.code == 235) {
		d->logged_in = true;
		doctor_step_set(d, STEP_LOGIN, S_OK, "logged in as %s%s%s", d->user, auth[0] ? " (server offers AUTH " : "",
			auth[0] ? auth : "");
		if (auth[0])
			strcat(d->steps[STEP_LOGIN].detail, ")");
		return true;
	}
	char l1[300];
	doctor_first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = doctor_reply_cause(d, &d->last, d->last.code == 535 ? "wrong_credentials" : "unknown");
	if (!auth[0] && d->chosen_mode == MODE_PLAIN && strcmp(cause, "unknown") == 0)
		cause = "tls_required";
	return doctor_fail(d, STEP_LOGIN, cause, "Login as %s refused: %s", d->user, l1);
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
		doctor_step_set(d, STEP_SENDER, S_OK, "sender <%s> accepted", sender(d));
		return true;
	}
	doctor_first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = doctor_reply_cause(d, &d->last, "unknown");
	if (!d->logged_in && (strcmp(cause, "not_authenticated") == 0 || d->last.code == 530))
		cause = d->no_login ? "untrusted_network" : "not_authenticated";
	return doctor_fail(d, STEP_SENDER, cause, "Sender <%s> refused: %s", sender(d), l1);
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
	doctor_first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = doctor_reply_cause(d, &d->last, "unknown");
	if (strcmp(cause, "mailbox_full") == 0)
		return doctor_fail(d, STEP_RELAY, cause, "The mailbox of <%s> is full: %s. Mail to it is refused until its "
			"owner deletes mail (or the quota is raised).", d->to, l1);
	return doctor_fail(d, STEP_RELAY, cause, "Recipient <%s> refused: %s", d->to, l1);
}

static bool step_relay(struct doctor *d, struct net_client *p)
{
	char line[ADDR_MAX + 20], l1[300];
	const char *outside = d->outside ? d->outside : OUTSIDE_DEFAULT;
	snprintf(line, sizeof(line), "RCPT TO:<%s>", outside);
	if (command(d, p, line, NULL)) {
		doctor_step_set(d, STEP_RELAY, S_OK, "mail to another domain (<%s>) is accepted%s", outside,
			d->logged_in ? " after login" : " without login");
		return step_recipient(d, p, outside);
	}
	doctor_first_line(d->last.lines, l1, sizeof(l1));
	const char *cause = doctor_reply_cause(d, &d->last, "unknown");
	/* wrong_port: Postern's port-25 trap said which port to use; that is the fix for a
	 * mail program (with --no-login the client is a server: its network is the fix). */
	bool wrong_port = strcmp(cause, "wrong_port") == 0;
	bool relay = strcmp(cause, "not_authenticated") == 0 || strcmp(cause, "untrusted_network") == 0 || wrong_port;
	if (!d->logged_in && relay && (!wrong_port || d->no_login))
		cause = d->no_login ? "untrusted_network" : "not_authenticated";
	if (!d->logged_in && relay)
		return doctor_fail(d, STEP_RELAY, cause, "Relaying refused for %s (not logged in): %s. Without this fix a mail "
			"program gets \"503 valid RCPT command must precede DATA\" when it sends.", d->local_addr, l1);
	if (strcmp(cause, "sender_not_owned") == 0)    /* Postfix checks the sender at RCPT (smtpd_delay_reject) */
		return doctor_fail(d, STEP_RELAY, cause, "The sender <%s> is refused (this server checks it at RCPT): %s",
			sender(d), l1);
	return doctor_fail(d, STEP_RELAY, cause, "Recipient <%s> refused: %s", outside, l1);
}

static bool step_send(struct doctor *d, struct net_client *p)
{
	if (!d->send) {
		doctor_step_set(d, STEP_SEND, S_SKIP, "no --send: no message sent");
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
		doctor_first_line(d->last.lines, l1, sizeof(l1));
		return doctor_fail(d, STEP_SEND, doctor_reply_cause(d, &d->last, "unknown"), "The test message was refused: %s", l1);
	}
	snprintf(msg, sizeof(msg), "From: <%s>\r\nTo: <%s>\r\nSubject: Postern doctor test message\r\nDate: %s\r\n"
		"Message-ID: <%lld.doctor@postern.invalid>\r\n\r\nThis is a test message sent by `postern doctor`.\r\n"
		"If you can read it, sending mail with these settings works.\r\n", sender(d), to, date, (long long)now);
	if (d->transcript_to)
		fprintf(d->transcript_to, "C: (%zu bytes of message)\nC: .\n", strlen(msg));
	if (!net_client_write(p, msg, strlen(msg), err, sizeof(err)) || !command(d, p, ".", "") || d->last.code != 250) {
		doctor_first_line(d->last.lines, l1, sizeof(l1));
		return doctor_fail(d, STEP_SEND, doctor_reply_cause(d, &d->last, "unknown"), "The test message was refused: %s", l1);
	}
	doctor_first_line(d->last.lines, l1, sizeof(l1));
	doctor_step_set(d, STEP_SEND, S_OK, "one test message sent to <%s>: %s", to, l1);
	return true;
}

void doctor_run_session(struct doctor *d)
{
	char auth[160] = "";
	struct net_client *p = open_session(d, auth, sizeof(auth));
	if (!p)
		return;
	if (d->user && auth[0])
		doctor_step_set(d, STEP_EHLO, S_OK, "AUTH %s offered%s", auth, d->chosen_mode == MODE_PLAIN ? " without TLS" : "");
	else if (d->user)
		doctor_step_set(d, STEP_EHLO, S_WARN, "no AUTH offered on port %u%s", d->chosen_port,
			d->chosen_mode == MODE_PLAIN ? " before TLS" : "");
	else
		doctor_step_set(d, STEP_EHLO, S_OK, "EHLO accepted%s%s", auth[0] ? ", AUTH " : "", auth);
	if (step_login(d, p, auth) && step_sender(d, p) && step_relay(d, p) && step_send(d, p))
		command(d, p, "QUIT", NULL);
	net_client_close(&p);
}
