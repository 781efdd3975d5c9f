/* doctor_report.c - `postern doctor`'s report: plain text, or JSON with --json, and
 * the settings a mail client should use. */
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

/* --- output ----------------------------------------------------------------------------- */

static const char *const marks[] = { "[skip]", "[ok]", "[warn]", "[FAIL]" };
static const char *const status_names[] = { "skipped", "ok", "warning", "failed" };

/* What worked: the recommended client settings. */
static const struct slot *settings_slot(const struct doctor *d)
{
	if (!d->failed || (d->failed > STEP_TLS && d->chosen))
		return d->chosen;
	return doctor_best_slot((struct doctor *)d);
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
	const struct pslot *best = doctor_pop_best((struct doctor *)d);
	bool worked = d->pop.logged_in || (!d->user && d->steps[STEP_POP3].status != S_FAIL);
	if (worked || !best) {
		*port = d->pop.port ? d->pop.port : 995;
		*sec = d->pop.port ? doctor_mode_names[d->pop.mode] : "SSL/TLS";
	} else {
		*port = best->port;
		*sec = doctor_mode_names[best->mode];
	}
}

void doctor_print_text(const struct doctor *d, const struct explain_cause *c)
{
	printf("Postern doctor: %s%s%s\n\n", d->server, d->local_addr[0] ? " from " : "", d->local_addr);
	for (int s = 1; s < STEP_COUNT; s++) {
		const struct step_result *r = &d->steps[s];
		char head[64];
		snprintf(head, sizeof(head), "%-6s %d. %s:", marks[r->status], s, doctor_step_names[s]);
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

/* "ports": the SMTP ports surveyed, with their certificates. */
static void json_ports(const struct doctor *d)
{
	printf("], \"ports\": [");
	bool first = true;
	for (int i = 0; i < SLOTS; i++) {
		const struct slot *s = &d->slots[i];
		if (!s->enabled)
			continue;
		printf("%s{\"name\": %u, \"port\": %u, \"open\": %s, \"security\": \"%s\", \"auth\": ", first ? "" : ", ",
			s->name, s->port, s->open ? "true" : "false", doctor_mode_names[s->mode]);
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
	printf("]");
}

/* "pop3": the POP3 step's ports and result (the caller printed the key). */
static void json_pop3(const struct doctor *d)
{
	unsigned port;
	const char *sec;
	bool first = true;
	printf("{\"ports\": [");
	for (int i = 0; i < PSLOTS; i++) {
		const struct pslot *s = &d->pslots[i];
		if (!s->enabled)
			continue;
		printf("%s{\"name\": %u, \"port\": %u, \"open\": %s, \"security\": \"%s\"}", first ? "" : ", ",
			s->name, s->port, s->open ? "true" : "false", doctor_mode_names[s->mode]);
		first = false;
	}
	printf("], \"port\": %u, \"security\": \"%s\", \"logged_in\": %s, \"uidl\": %s, ", d->pop.port,
		doctor_mode_names[d->pop.mode], d->pop.logged_in ? "true" : "false",
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

void doctor_print_json(const struct doctor *d, const struct explain_cause *c)
{
	printf("{\"server\": ");
	json_str(stdout, d->server);
	printf(", \"source\": ");
	json_str(stdout, d->local_addr[0] ? d->local_addr : NULL);
	printf(", \"steps\": [");
	for (int s = 1; s < STEP_COUNT; s++) {
		printf("%s{\"step\": %d, \"name\": ", s > 1 ? ", " : "", s);
		json_str(stdout, doctor_step_names[s]);
		printf(", \"status\": \"%s\", \"detail\": ", status_names[d->steps[s].status]);
		json_str(stdout, d->steps[s].detail);
		printf("}");
	}
	json_ports(d);
	printf(", \"verdict\": {\"ok\": %s, \"step\": ", d->failed ? "false" : "true");
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
	json_pop3(d);
}
