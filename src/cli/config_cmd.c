/* config_cmd.c - `postern check-config` (the file, then every step serve takes before
 * serving: serve/startup.h), `postern config show [--all]` (the settings that differ
 * from the defaults, as INI) and `postern config man 5|8` (the manual pages, written
 * from the settings table and the subcommand table; meson builds them with it). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "delivery/dnssec.h"
#include "directory/directory.h"
#include "serve/startup.h"

static void print_check_error(void *arg, const char *msg)
{
	unsigned *errors = arg;
	(*errors)++;
	fprintf(stderr, "postern: %s\n", msg);
}

/* What delivery will find at start (delivery/dnssec.h): the same probe, the same words. */
static void print_dnssec(const struct conf *c)
{
	if (c->relay_host[0])
		return;   /* a smarthost resolves for us */
	const char *ta = dnssec_configured_anchor(c);
	if (!ta) {
		printf("  dnssec: off (dnssec_trust_anchor = %s): no validation, no DANE\n",
			c->dnssec_trust_anchor[0] ? c->dnssec_trust_anchor : "none");
		return;
	}
	struct dns_options o = { .forwarder = c->resolver, .trust_anchor_file = ta, .timeout_ms = DNSSEC_PROBE_TIMEOUT_MS };
	struct dns_dnssec_probe p;
	dns_dnssec_probe(&o, DNSSEC_PROBE_TIMEOUT_MS, &p);
	const char *via = c->resolver[0] ? c->resolver : "the system resolver";
	if (p.path == DNS_DNSSEC_VALIDATES)
		printf("  dnssec: on (%s through %s)\n", p.reason, via);
	else if (p.path == DNS_DNSSEC_UNAVAILABLE)
		printf("  warning: dnssec unavailable through %s: %s; serve will deliver without DNSSEC validation and "
			"without DANE; to change: %s\n", via, p.reason, dnssec_unavailable_fix());
	else
		printf("  dnssec: undecided through %s: %s; serve keeps validating and asks again every %d seconds\n", via,
			p.reason, DNSSEC_REPROBE_S);
}

/* Every error of the file (each on its line), or the start-up steps' errors. */
static unsigned file_errors(const char *err)
{
	unsigned n = 0;
	for (const char *line = err; *line; n++) {
		size_t len = strcspn(line, "\n");
		fprintf(stderr, "postern: %.*s\n", (int)len, line);
		line += len + (line[len] == '\n');
	}
	return n;
}

int cli_check_config(const struct conf *c, const char *load_error, bool bind_ports)
{
	unsigned errors = load_error ? file_errors(load_error) : 0;
	if (!errors)
		startup_check(c, bind_ports, print_check_error, &errors);
	if (errors) {
		fprintf(stderr, "postern: %s: %u error%s: serve would refuse to start\n", c->path, errors, errors == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok\n", c->path);
	printf("  hostname %s, data_dir %s, %zu local domain(s) in the file\n", c->hostname, c->data_dir,
		c->n_local_domains);
	for (size_t i = 0; i < c->n_listeners; i++) {
		char services[128] = "";
		if (c->listeners[i].role == ROLE_HTTP)
			conf_service_names(c->listeners[i].services, services, sizeof(services));
		printf("  listener %s: %s port %u, role %s, tls %s%s%s\n", c->listeners[i].name, c->listeners[i].address,
			c->listeners[i].port, conf_role_name(c->listeners[i].role), conf_tls_name(c->listeners[i].tls),
			services[0] ? ", services " : "", services);
	}
	char exposed[1400];
	if (directory_data_dir_exposed(c->data_dir, exposed, sizeof(exposed)))
		printf("  warning: %s\n", exposed);
	print_dnssec(c);
	return 0;
}

/* Text for roff: '-' as \- (an ASCII hyphen-minus in commands to copy), '\' as \e. */
static void roff_text(const char *s, size_t len, FILE *out)
{
	for (size_t i = 0; i < len && s[i]; i++) {
		if (s[i] == '-')
			fputs("\\-", out);
		else if (s[i] == '\\')
			fputs("\\e", out);
		else
			fputc(s[i], out);
	}
}

/* Roff text of one usage row: "NAME ARGS  description" (cli.c's subcommand table). */
static void man8_row(const char *usage, FILE *out)
{
	const char *desc = strstr(usage, "  ");
	size_t syntax = desc ? (size_t)(desc - usage) : strlen(usage);
	fputs(".TP\n.B postern ", out);
	roff_text(usage, syntax, out);
	fputs("\n", out);
	if (desc) {
		desc += strspn(desc, " ");
		roff_text(desc, strlen(desc), out);
		fputs("\n", out);
	}
}

static void write_man8(FILE *out)
{
	fprintf(out, ".\\\" postern(8), written by `postern config man 8` from the subcommand table (src/cli/cli.c)\n"
		".TH POSTERN 8 \"\" \"postern %s\" \"System Administration\"\n.SH NAME\npostern \\- a mail server that says "
		"why mail did not go\n.SH SYNOPSIS\n.B postern\n.I command\n.RI [ arguments ]\n.RB [ \\-c\n.IR file ]\n"
		".SH DESCRIPTION\nPostern receives mail for its domains (SMTP), accepts mail from logged-in users (submission), "
		"delivers it onward and into Maildirs, and serves POP3, IMAP and web pages. Every refusal says what happened, "
		"why, and what to change.\n.PP\nEvery command reads the configuration from \\fB\\-c\\fR \\fIfile\\fR, else "
		"\\fI/etc/postern/postern.conf\\fR (see \\fBpostern.conf\\fR(5)), else a built-in demonstration "
		"configuration. \\fBpostern\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR prints one command's usage.\n"
		".SH COMMANDS\n.\\\" left-adjusted: a long synopsis that wraps must not be stretched (\"postern  user\")\n.ad l\n",
		POSTERN_VERSION);
	for (size_t i = 0; i < cli_subcommand_count(); i++)
		man8_row(cli_subcommand_usage(i), out);
	fputs(".SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\nstop: no new connections, running sessions and deliveries get "
		"[server] shutdown_timeout, then the process exits.\n.TP\n.B SIGHUP\nreload: read the configuration again; "
		"TLS certificates and keys and log_level take effect at once, other changes are logged "
		"(event=reload_needs_restart) and wait for a restart; a file with errors is refused and the running "
		"configuration kept.\n.SH ENVIRONMENT\n.TP\n.B NOTIFY_SOCKET\nwhen set (systemd Type=notify), \\fBserve\\fR "
		"sends READY=1, STATUS= lines, RELOADING=1 and STOPPING=1 there.\n.TP\n.B LISTEN_PID, LISTEN_FDS, "
		"LISTEN_FDNAMES\nsocket activation: a listener whose name is in LISTEN_FDNAMES uses the socket it was given "
		"instead of binding its own.\n.SH EXIT STATUS\n0 on success, 1 on an error (said on standard error), "
		"2 on a usage error.\n.SH FILES\n.TP\n.I /etc/postern/postern.conf\nthe configuration\n.TP\n"
		".I /var/lib/postern\nthe data directory of the package's configuration\n.TP\n.I /usr/share/postern\n"
		"the knowledge base of \\fBpostern explain\\fR and the web templates\n.SH SEE ALSO\n.BR postern.conf (5)\n", out);
}

int cli_config(int argc, char **argv, const struct conf *c, bool all)
{
	if (argc >= 1 && strcmp(argv[0], "show") == 0 && argc == 1) {
		conf_write(c, all, stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "man") == 0 && strcmp(argv[1], "5") == 0) {
		conf_write_man(POSTERN_VERSION, stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "man") == 0 && strcmp(argv[1], "8") == 0) {
		write_man8(stdout);
		return 0;
	}
	return 2;
}
