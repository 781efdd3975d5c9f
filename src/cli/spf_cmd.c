/* spf_cmd.c - `postern spf check IP SENDER [HELO]`: the SPF result (RFC 7208) this
 * server would record for a client, with its words, through the resolver of the
 * configuration ([delivery] resolver) and [mailauth] spf_timeout.  For an
 * administrator asking "why did mail from X get softfail?" and for tests. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "mailauth/spf.h"

static void print_outcome(const struct spf_outcome *o)
{
	printf("result=%s identity=%s domain=%s sender=%s ip=%s mechanism=%s\n", spf_result_name(o->result),
		o->identity == SPF_ID_HELO ? "helo" : "mailfrom", o->domain[0] ? o->domain : "-", o->sender,
		o->client_ip, o->mechanism[0] ? o->mechanism : "-");
	printf("words: %s\n", o->words);
	if (o->explanation[0])
		printf("explanation: %s\n", o->explanation);
	if (o->helo.checked && o->identity == SPF_ID_MAILFROM)
		printf("helo: result=%s domain=%s: %s\n", spf_result_name(o->helo.result), o->helo.domain, o->helo.words);
	else if (o->identity == SPF_ID_MAILFROM)
		printf("helo: not checked: %s\n", o->helo.words[0] ? o->helo.words : "no HELO name given");
}

int cli_spf(int argc, char **argv, const struct conf *c)
{
	if (argc < 3 || argc > 4 || strcmp(argv[0], "check") != 0) {
		fprintf(stderr, "usage: postern spf check IP SENDER [HELO]   (SENDER \"<>\" or \"\": the null sender)\n");
		return 2;
	}
	const char *sender = argv[2];
	if (strcmp(sender, "<>") == 0)
		sender = "";
	struct dns_options o = { .forwarder = c->resolver, .timeout_ms = (unsigned)c->mailauth_spf_timeout * 1000u };
	char err[512];
	struct dns_resolver *r = dns_resolver_new(&o, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	struct spf_dns dns = { .lookup = spf_dns_resolver_lookup, .ctx = r };
	struct spf_request rq = { .client_ip = argv[1], .sender = sender, .helo = argc > 3 ? argv[3] : "",
		.receiver = c->hostname, .timeout_ms = (unsigned)c->mailauth_spf_timeout * 1000u, .check_helo = true };
	struct spf_outcome out;
	spf_check(&rq, &dns, &out);
	dns_resolver_free(&r);
	print_outcome(&out);
	return 0;
}
