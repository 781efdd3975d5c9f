/* selftest.c - "Test my settings" (see user.h): GET /test, the form; POST /test, the
 * doctor's checks (diag/doctor.h: TLS and certificate, EHLO, login, MAIL FROM, RCPT
 * to an outside address, optionally POP3) run from the server against its own
 * listener, with the port and security the user's mail program uses, and the
 * checklist with the first failure's cause and fix.
 *
 * Only this server's own mail ports can be chosen (the form's port must be one of the
 * submission or POP3 listeners as bound), so the page cannot be used to probe other
 * hosts or ports.  The password typed goes to the doctor and is wiped; it is never
 * stored or logged.  The run blocks this web thread for at most SELFTEST_TOTAL_MS
 * (and never more than half of [http] request_timeout), every connect and reply
 * within it. */
#include "web/user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "diag/doctor.h"
#include "diag/explain.h"
#include "web/app.h"

#define SELFTEST_TOTAL_MS 20000u
#define SELFTEST_CONNECT_MS 3000u
#define SELFTEST_IO_MS 8000u

static const char *const status_names[] = { "skipped", "ok", "warning", "failed" };

/* The mail listener bound to `port` with that role, or NULL. */
static const struct web_mail_listener *mail_listener(const struct web_site *site, enum listener_role role, unsigned port)
{
	for (size_t i = 0; i < site->n_mail; i++)
		if (site->mail[i].role == role && site->mail[i].port == port && site->mail[i].tls != TLS_NONE)
			return &site->mail[i];
	return NULL;
}

static void port_options(const struct web_site *site, struct web_view *v, const char *key, enum listener_role role,
	unsigned chosen)
{
	for (size_t i = 0; i < site->n_mail; i++) {
		const struct web_mail_listener *l = &site->mail[i];
		if (l->role != role || l->tls == TLS_NONE || !l->port)
			continue;
		struct web_view *o = web_view_add_item(v, key);
		web_view_setf(o, "port", "%u", l->port);
		web_view_set(o, "security", l->tls == TLS_IMPLICIT ? "SSL/TLS" : "STARTTLS");
		web_view_set(o, "selected", l->port == chosen ? "yes" : "");
	}
}

/* The form, with what the user chose last time (a POST) selected. */
static void form_view(const struct web_site *site, struct web_view *v, unsigned smtp_port, unsigned pop3_port,
	bool implicit)
{
	port_options(site, v, "smtp_ports", ROLE_SUBMISSION, smtp_port);
	port_options(site, v, "pop3_ports", ROLE_POP3, pop3_port);
	web_view_set(v, "implicit", implicit ? "yes" : "");
	web_view_set(v, "host", site->hostname);
}

void web_selftest_page(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	form_view(site, v, 0, 0, false);
	web_page(site, u, "selftest", "Test my settings", v, resp);
	web_view_free(&v);
}

/* Where the doctor connects: the listener's own address, loopback for a wildcard. */
static void connect_address(const struct web_site *site, const struct web_mail_listener *l, char *out, size_t outsz)
{
	const struct conf_listener *c = web_site_listener(site, l->name);
	const char *a = c ? c->address : "";
	if (!a[0] || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "*") == 0)
		a = "127.0.0.1";
	else if (strcmp(a, "::") == 0)
		a = "::1";
	snprintf(out, outsz, "%s", a);
}

static unsigned form_port(const struct http_request *req, const char *name)
{
	char s[16] = "";
	web_form_field(req, name, s, sizeof(s));
	char *end;
	long p = strtol(s, &end, 10);
	return s[0] && !*end && p > 0 && p < 65536 ? (unsigned)p : 0;
}

/* The doctor's words are the CLI's; one phrase names a CLI option. */
static void web_detail(const char *detail, char *out, size_t outsz)
{
	const char *cli = strstr(detail, "ignored because of --insecure");
	if (cli)
		snprintf(out, outsz, "%.*sshown as a warning: a mail program asks you to trust it, or refuses it%s",
			(int)(cli - detail), detail, cli + strlen("ignored because of --insecure"));
	else
		snprintf(out, outsz, "%s", detail);
}

static void outcome_view(const struct web_site *site, const struct doctor_outcome *o, struct web_view *v)
{
	for (int s = STEP_RESOLVE; s < STEP_COUNT; s++) {
		if (s == STEP_RESOLVE || o->steps[s].status == DOCTOR_SKIP)
			continue;   /* the server's own address resolves; skipped steps are not part of this test */
		struct web_view *e = web_view_add_item(v, "steps");
		char detail[700];
		web_detail(o->steps[s].detail[0] ? o->steps[s].detail : "not reached", detail, sizeof(detail));
		web_view_set(e, "name", doctor_step_name((enum doctor_step)s));
		web_view_set(e, "status", status_names[o->steps[s].status]);
		web_view_set(e, "detail", detail);
	}
	web_view_set(v, "ran", "yes");
	if (o->failed == STEP_NONE) {
		web_view_set(v, "passed", "yes");
		return;
	}
	web_view_set(v, "failed_step", doctor_step_name(o->failed));
	web_view_set(v, "verdict", o->verdict);
	if (site->kb && o->cause_id[0]) {
		const struct explain_cause *c = explain_kb_cause(site->kb, o->cause_id);
		web_view_set(v, "cause_id", c->id);
		web_view_set(v, "cause_words", c->words);
		for (int i = 0; i < c->n_fixes; i++)
			web_view_set(web_view_add_item(v, "fixes"), "fix", c->fixes[i]);
	}
}

/* The total time: SELFTEST_TOTAL_MS, at most half of [http] request_timeout, so the
 * answer goes out before the transport gives up on the request. */
static unsigned total_ms(const struct web_site *site)
{
	uint64_t half = site->conf->http_request_timeout * 1000u / 2;
	return half < SELFTEST_TOTAL_MS ? (unsigned)(half > 2000 ? half : 2000) : SELFTEST_TOTAL_MS;
}

void web_selftest_run(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	char security[16] = "", password[512] = "", server[64];
	web_form_field(req, "security", security, sizeof(security));
	web_form_field(req, "password", password, sizeof(password));
	form_view(site, v, form_port(req, "port"), form_port(req, "pop3_port"), strcmp(security, "tls") == 0);
	const struct web_mail_listener *smtp = mail_listener(site, ROLE_SUBMISSION, form_port(req, "port"));
	unsigned pop3_port = form_port(req, "pop3_port");
	const struct web_mail_listener *pop3 = pop3_port ? mail_listener(site, ROLE_POP3, pop3_port) : NULL;
	struct doctor_outcome *o = calloc(1, sizeof(*o));
	if (!smtp || (pop3_port && !pop3))
		web_view_set(v, "error", "Not tested: pick one of this server's ports from the list.");
	else if (!password[0])
		web_view_set(v, "error", "Not tested: type your password (it is used for this test only, never kept).");
	else if (!site->kb || !o)
		web_view_set(v, "error", "Not tested: the server cannot run the test now (its knowledge base of replies "
			"did not load, or it is out of memory); the administrator's log says which.");
	else {
		connect_address(site, smtp, server, sizeof(server));
		struct doctor_options opt = { .server = server, .tls_name = site->hostname, .smtp_port = smtp->port,
			.smtp_implicit_tls = strcmp(security, "tls") == 0, .user = u->address, .password = password,
			.insecure = true, .pop3_port = pop3 ? pop3->port : 0, .pop3_implicit_tls = pop3 && pop3->tls == TLS_IMPLICIT,
			.connect_ms = SELFTEST_CONNECT_MS, .io_ms = SELFTEST_IO_MS, .total_ms = total_ms(site), .kb = site->kb };
		if (doctor_run(&opt, o))
			outcome_view(site, o, v);
		web_view_setf(v, "tested", "port %u with %s%s", smtp->port, opt.smtp_implicit_tls ? "SSL/TLS" : "STARTTLS",
			pop3 ? ", and POP3" : "");
		snprintf(resp->log_note, sizeof(resp->log_note), "account page=test port=%u result=%s", smtp->port,
			o->failed ? doctor_step_name(o->failed) : "passed");
	}
	OPENSSL_cleanse(password, sizeof(password));
	web_page(site, u, "selftest", "Test my settings", v, resp);
	free(o);
	web_view_free(&v);
}
