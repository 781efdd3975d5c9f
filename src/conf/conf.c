/* conf.c - questions asked of a loaded configuration (see conf.h): is a domain
 * local, does any listener want TLS, and client networks (address/prefix): parsing,
 * matching an address, the trusted_networks test of [server].  Reading the file is
 * reader.c, the settings table table.c, the checks check.c. */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

bool conf_parse_network(const char *s, struct conf_network *out)
{
	char tmp[80];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return false;
	memset(out, 0, sizeof(*out));
	char *slash = strchr(tmp, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		return false;
	}
	if (slash) {
		uint64_t p;
		if (!parse_u64(slash + 1, strlen(slash + 1), &p) || p > out->prefix)
			return false;
		out->prefix = (unsigned)p;
	}
	return true;
}

bool conf_network_contains(const struct conf_network *n, int family, const unsigned char *addr)
{
	if (n->family != family)
		return false;
	unsigned full = n->prefix / 8, rest = n->prefix % 8;
	if (memcmp(n->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (n->addr[full] & mask) == (addr[full] & mask);
}

static bool in_networks(const struct conf_network *nets, size_t n, const char *addr)
{
	unsigned char a[16];
	int family = AF_INET;
	if (inet_pton(AF_INET, addr, a) != 1) {
		if (inet_pton(AF_INET6, addr, a) != 1)
			return false;
		family = AF_INET6;
	}
	for (size_t i = 0; i < n; i++)
		if (conf_network_contains(&nets[i], family, a))
			return true;
	return false;
}

bool conf_is_trusted(const struct conf *c, const char *addr)
{
	return in_networks(c->trusted_networks, c->n_trusted_networks, addr);
}

bool conf_is_check_skipped(const struct conf *c, const char *addr)
{
	return in_networks(c->skip_networks, c->n_skip_networks, addr);
}

bool conf_wants_tls(const struct conf *c)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].tls != TLS_NONE)
			return true;
	return false;
}

bool conf_is_local_domain(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->n_local_domains; i++)
		if (strcasecmp(c->local_domains[i], domain) == 0)
			return true;
	return false;
}

const char *conf_authserv_id(const struct conf *c)
{
	return c->authserv_id[0] ? c->authserv_id : c->hostname;
}

/* The local submission socket (sendmail's way in): [server] local_socket, by default
 * data_dir/run/submit.sock; false when set to "none". */
bool conf_local_socket(const struct conf *c, char *out, size_t outsz)
{
	if (strcmp(c->local_socket, "none") == 0)
		return false;
	int n = c->local_socket[0] ? snprintf(out, outsz, "%s", c->local_socket)
		: snprintf(out, outsz, "%s/run/submit.sock", c->data_dir);
	return n > 0 && (size_t)n < outsz;
}

void conf_maildrop_dir(const struct conf *c, char *out, size_t outsz)
{
	if (c->maildrop_dir[0])
		snprintf(out, outsz, "%s", c->maildrop_dir);
	else
		snprintf(out, outsz, "%s/maildrop", c->data_dir);
}

const char *conf_local_domain(const struct conf *c)
{
	return c->local_domain[0] ? c->local_domain : c->hostname;
}
