/* doctor.c - `postern doctor`: what a mail client's "Test account settings" does, one
 * step at a time, naming the cause of the first failure with its fix.
 *
 *   1 name resolves   2 ports 25/26/465/587 answer   3 TLS mode and certificate
 *   4 EHLO (AUTH offered?)   5 login   6 MAIL FROM   7 RCPT to an outside address
 *   8 with --send, one short test message (never more than one)
 *   9 with --pop3, POP3 login (995 implicit TLS or 110 with STLS), UIDL, mailbox size
 * Every connect and every reply has a short bounded time limit (net/client.c); SMTP
 * replies are read by the one SMTP client's reader (delivery/smtp_client.h).
 * Exit status: 0 all passed, 10 + step of the first failure, 1 error, 2 usage.
 * This file: the options and the entry point; the steps are in doctor_smtp.c and
 * doctor_pop3.c (their helpers in doctor_common.c), the report in doctor_report.c. */
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
		struct pslot *ps = doctor_pslot_by_name(d, name);
		if (ps) {
			if (!pop_listed)
				for (int i = 0; i < PSLOTS; i++)
					d->pslots[i].enabled = false;
			pop_listed = true;
			ps->enabled = true;
			ps->port = eq ? port : name;
			continue;
		}
		if (!doctor_slot_by_name(d, name))
			return false;
		struct slot *s = doctor_slot_by_name(d, name);
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

/* The options that take a checked value: 1 taken, 0 not one of them, -1 bad value. */
static int parse_valued(struct doctor *d, int argc, char **argv, int *i)
{
	const char *v;
	if (opt_value(argc, argv, i, "--security", &d->security)) {
		if (strcmp(v = d->security, "none") && strcmp(v, "starttls") && strcmp(v, "tls") && strcmp(v, "ssl"))
			return -1;
		return 1;
	}
	if (opt_value(argc, argv, i, "--pop3-security", &d->pop3_security)) {
		if (strcmp(v = d->pop3_security, "none") && strcmp(v, "starttls") && strcmp(v, "tls") && strcmp(v, "ssl"))
			return -1;
		return 1;
	}
	if (opt_value(argc, argv, i, "--pop3-port", &v)) {
		unsigned p;
		if (!parse_port(v, &p))
			return -1;
		d->pop3_port = p;
		return 1;
	}
	if (opt_value(argc, argv, i, "--ports", &v)) {
		if (!parse_ports(d, v))
			return -1;
		return 1;
	}
	if (opt_value(argc, argv, i, "--port", &v)) {
		unsigned p;
		if (!parse_port(v, &p))
			return -1;
		d->client_port = p;
		return 1;
	}
	if (opt_value(argc, argv, i, "--connect-timeout", &v)) {
		if (!parse_seconds(v, &d->popts.connect_ms))
			return -1;
		return 1;
	}
	if (opt_value(argc, argv, i, "--timeout", &v)) {
		if (!parse_seconds(v, &d->popts.io_ms))
			return -1;
		return 1;
	}
	if (strncmp(argv[*i], "--port-", 7) == 0 && *i + 1 < argc) {
		unsigned name, port;
		if (!parse_port(argv[*i] + 7, &name) || !parse_port(argv[*i + 1], &port))
			return -1;
		if (doctor_pslot_by_name(d, name)) {
			doctor_pslot_by_name(d, name)->port = port;
			doctor_pslot_by_name(d, name)->enabled = true;
			++*i;
			return 1;
		}
		if (!doctor_slot_by_name(d, name))
			return -1;
		doctor_slot_by_name(d, name)->port = port;
		doctor_slot_by_name(d, name)->enabled = true;
		++*i;
		return 1;
	}
	return 0;
}

static bool parse_args(struct doctor *d, int argc, char **argv)
{
	bool pw_stdin = false;
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
		if (parse_valued(d, argc, argv, &i) > 0)
			continue;
		return false;   /* an unknown option, or a bad value */
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

/* The transcript (net_client_opts): "C: ", "S: ", "-- " lines. */
static void write_transcript(void *arg, const char *who, const char *text)
{
	fprintf(arg, "%s%s%s\n", who, strcmp(who, "--") == 0 ? " " : ": ", text);
}

static bool step_resolve(struct doctor *d)
{
	char addrs[512];
	if (net_resolve(d->server, addrs, sizeof(addrs)) == 0)
		return doctor_fail(d, STEP_RESOLVE, "server_unavailable", "The name %s does not resolve (%s): check the "
			"server name for typing mistakes.", d->server, addrs);
	doctor_step_set(d, STEP_RESOLVE, S_OK, "%s -> %s", d->server, addrs);
	return true;
}

void doctor_execute(struct doctor *d)
{
	if (d->total_ms)
		d->deadline_ms = doctor_now_ms() + d->total_ms;
	if (!step_resolve(d))
		return;
	if (!d->smtp)
		for (int s = STEP_PORTS; s <= STEP_SEND; s++)
			doctor_step_set(d, s, S_SKIP, "not tested: --ports lists POP3 ports only");
	else if (doctor_step_ports(d))
		doctor_run_session(d);
	doctor_step_pop3(d);
}

static struct doctor *doctor_new(void)
{
	struct doctor *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->popts.connect_ms = 5000;
	d->popts.io_ms = 10000;
	for (int i = 0; i < SLOTS; i++)
		d->slots[i] = (struct slot){ .name = doctor_slot_names[i], .port = doctor_slot_names[i], .enabled = true };
	for (int i = 0; i < PSLOTS; i++)
		d->pslots[i] = (struct pslot){ .name = doctor_pslot_names[i], .port = doctor_pslot_names[i], .enabled = true };
	return d;
}

static void doctor_free(struct doctor *d)
{
	OPENSSL_cleanse(d->password, sizeof(d->password));
	free(d);
}

int diag_doctor_main(int argc, char **argv)
{
	struct doctor *d = doctor_new();
	struct explain_kb *kb = NULL;
	if (!d)
		return 1;
	int rc = 2;
	if (!parse_args(d, argc, argv))
		rc = doctor_usage();
	else if (!diag_load_kb(&kb, d->data))
		rc = 1;
	else {
		d->kb = kb;
		d->popts.source = d->source;
		d->transcript_to = d->transcript ? (d->json ? stderr : stdout) : NULL;
		d->popts.transcript = d->transcript_to ? write_transcript : NULL;
		d->popts.transcript_arg = d->transcript_to;
		if (d->transcript && !d->json)
			printf("Transcript (passwords masked):\n");
		doctor_execute(d);
		if (d->transcript && !d->json)
			printf("\n");
		const struct explain_cause *c = explain_kb_cause(d->kb, d->cause_id ? d->cause_id : "unknown");
		if (d->json)
			doctor_print_json(d, c);
		else
			doctor_print_text(d, c);
		rc = d->failed ? DOCTOR_EXIT_BASE + (int)d->failed : 0;
	}
	explain_kb_free(&kb);
	doctor_free(d);
	return rc;
}

/* --- the same run for a caller inside the server (doctor.h) -------------------------- */

/* Only the one port: its slot is the usual port of its kind (465 implicit TLS, 587
 * STARTTLS; 995 and 110 for POP3), so the steps' words name what a client would use. */
static void one_port(struct doctor *d, const struct doctor_options *o)
{
	for (int i = 0; i < SLOTS; i++)
		d->slots[i].enabled = false;
	for (int i = 0; i < PSLOTS; i++)
		d->pslots[i].enabled = false;
	if (o->smtp_port) {
		struct slot *s = doctor_slot_by_name(d, o->smtp_implicit_tls ? 465 : 587);
		s->enabled = true;
		s->port = o->smtp_port;
		d->client_port = s->name;
		d->security = o->smtp_implicit_tls ? "tls" : "starttls";
		d->smtp = true;
	}
	if (o->pop3_port) {
		struct pslot *p = doctor_pslot_by_name(d, o->pop3_implicit_tls ? 995 : 110);
		p->enabled = true;
		p->port = o->pop3_port;
		d->pop3 = true;
		d->pop3_port = p->name;
		d->pop3_security = o->pop3_implicit_tls ? "tls" : "starttls";
	}
}

bool doctor_run(const struct doctor_options *o, struct doctor_outcome *out)
{
	memset(out, 0, sizeof(*out));
	struct doctor *d = doctor_new();
	if (!d)
		return false;
	d->server = o->server;
	d->tls_name = o->tls_name;
	d->user = o->user;
	d->from = o->from;
	d->insecure = o->insecure;
	d->kb = o->kb;
	d->total_ms = o->total_ms;
	if (o->connect_ms)
		d->popts.connect_ms = o->connect_ms;
	if (o->io_ms)
		d->popts.io_ms = o->io_ms;
	if (o->user && o->password) {
		snprintf(d->password, sizeof(d->password), "%s", o->password);
		d->have_password = true;
	}
	one_port(d, o);
	doctor_execute(d);
	for (int s = 0; s < STEP_COUNT; s++) {
		out->steps[s].status = (enum doctor_status)d->steps[s].status;
		snprintf(out->steps[s].detail, sizeof(out->steps[s].detail), "%s", d->steps[s].detail);
	}
	out->failed = d->failed;
	snprintf(out->cause_id, sizeof(out->cause_id), "%s", d->failed && d->cause_id ? d->cause_id : "");
	snprintf(out->verdict, sizeof(out->verdict), "%s", d->failed ? d->verdict : "");
	doctor_free(d);
	return true;
}

const char *doctor_step_name(enum doctor_step s)
{
	return s > STEP_NONE && s < STEP_COUNT ? doctor_step_names[s] : "";
}
