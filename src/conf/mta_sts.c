/* mta_sts.c - the MTA-STS policy this server publishes for its domains (RFC 8461),
 * derived from [mta-sts] alone (conf.h: conf_mta_sts_policy): the text the web listener
 * serves at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (web/mta_sts.c) and the id
 * `postern dns` announces in the _mta-sts TXT record (cli/dns_zone.c), from one
 * function so the two always agree.
 *
 * The policy (RFC 8461 §3.2) is built from [mta-sts]: "version: STSv1", "mode:" the
 * setting, one "mx:" line per name of [mta-sts] mx (or [server] hostname), "max_age:"
 * in seconds; each line ends in CR LF (§3.2: "lines ... separated by CRLF").  The id
 * (§3.1: it must change whenever the policy does) is a digest of the policy text, so
 * it changes by itself: nobody has to remember to bump it, and the TXT record printed
 * by `postern dns` and the file served always agree. */
#include "conf/conf.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = { "off", "none", "testing", "enforce" };   /* enum conf_mta_sts_mode */

/* Append to policy at *o; false when it does not fit. */
static bool add_line(char *policy, size_t policysz, size_t *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(policy + *o, policysz - *o, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= policysz - *o)
		return false;
	*o += (size_t)n;
	return true;
}

static bool policy_id(const char *policy, char *id, size_t idsz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (!EVP_Digest(policy, strlen(policy), md, &mdlen, EVP_sha256(), NULL) || mdlen < 10 || idsz < 21)
		return false;
	for (unsigned i = 0; i < 10; i++)
		snprintf(id + 2 * i, idsz - 2 * i, "%02x", md[i]);
	return true;
}

bool conf_mta_sts_policy(const struct conf *c, char *policy, size_t policysz, char *id, size_t idsz)
{
	policy[0] = '\0';
	if (id && idsz)
		id[0] = '\0';
	if (c->mta_sts_mode == CONF_MTA_STS_OFF || c->mta_sts_mode >= sizeof(mode_names) / sizeof(mode_names[0]))
		return false;
	/* §3.2/§4.1: senders then insist on STARTTLS at the mx hosts: without it offered
	 * here, a policy would only stop mail. */
	bool starttls = false;
	for (size_t i = 0; i < c->n_listeners; i++)
		starttls = starttls || (c->listeners[i].role == ROLE_MX && c->listeners[i].tls == TLS_STARTTLS);
	if (!starttls)
		return false;
	size_t o = 0;
	if (!add_line(policy, policysz, &o, "version: STSv1\r\nmode: %s\r\n", mode_names[c->mta_sts_mode]))
		return false;
	char names[sizeof(c->mta_sts_mx)];
	snprintf(names, sizeof(names), "%s", c->mta_sts_mx[0] ? c->mta_sts_mx : c->hostname);
	for (char *save = NULL, *m = strtok_r(names, ", \t", &save); m; m = strtok_r(NULL, ", \t", &save))
		if (!add_line(policy, policysz, &o, "mx: %s\r\n", m))
			return false;
	if (!add_line(policy, policysz, &o, "max_age: %llu\r\n", (unsigned long long)c->mta_sts_max_age))
		return false;
	return !id || !idsz || policy_id(policy, id, idsz);
}
