/* dns_cmd.c - `postern dns DOMAIN` and `postern dns check DOMAIN`: the options and the
 * domain (one of this server's local domains), then dns_zone.c builds the records and
 * prints them, or dns_check.c looks them up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/dns_zone.h"
#include "conf/conf.h"
#include "directory/directory.h"
#include "util/parse.h"

#define CHECK_TIMEOUT_MS 10000

struct dns_args {
	bool check;
	const char *domain;
	const char *resolver;   /* --resolver ADDR@PORT; NULL: [delivery] resolver */
	const char *address;    /* --address ADDR */
};

static bool parse(int argc, char **argv, struct dns_args *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--resolver") == 0 && i + 1 < argc)
			o->resolver = argv[++i];
		else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc)
			o->address = argv[++i];
		else if (i == 0 && strcmp(argv[i], "check") == 0)
			o->check = true;
		else if (argv[i][0] == '-' || o->domain)
			return false;
		else
			o->domain = argv[i];
	}
	return o->domain != NULL;
}

int cli_dns(int argc, char **argv, const struct conf *c, struct directory *d, bool json)
{
	struct dns_args o;
	if (!parse(argc, argv, &o)) {
		fprintf(stderr, "usage: postern dns DOMAIN [--address ADDR]\n"
			"       postern dns check DOMAIN [--resolver ADDR@PORT] [--address ADDR] [--json]\n");
		return 2;
	}
	char domain[DNS_NAME_MAX], err[512];
	snprintf(domain, sizeof(domain), "%s", o.domain);
	size_t len = strlen(domain);
	if (len > 1 && domain[len - 1] == '.')
		domain[len - 1] = '\0';
	ascii_lower(domain);
	if (!conf_is_local_domain(c, domain) && directory_domain_exists(d, domain) != DIR_OK) {
		fprintf(stderr, "postern: %s is not a local domain of this server: list it in local_domains in %s or "
			"run postern domain add %s\n", domain, c->path, domain);
		return 1;
	}
	struct zone *z = malloc(sizeof(*z));   /* large: off the stack */
	if (!z)
		return 1;
	int rc = 0;
	if (!zone_build(c, domain, o.address, z, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		rc = 2;
	} else if (o.check) {
		rc = zone_check(z, o.resolver ? o.resolver : c->resolver, CHECK_TIMEOUT_MS, json);
	} else {
		zone_print(z, stdout);
	}
	free(z);
	return rc;
}
