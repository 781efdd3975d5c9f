/* mx.c - MX resolution over dns/ (see mx.h): what the records mean for mail. */
#include "delivery/mx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dns/dns.h"

/* One query; returns 1 data, 0 NODATA, -1 NXDOMAIN, -2 temporary.  Records the
 * parsers refused still count as data: the domain has MX (or addresses), only none
 * that can be used, which is worth a retry rather than the implicit MX. */
static int query(struct dns_resolver *r, const char *name, enum dns_type type, struct dns_result *res,
	char *err, size_t errlen)
{
	dns_lookup(r, type, name, res);
	if (res->security == DNS_BOGUS) {
		/* RFC 4035 §5.5: a bogus answer is not used; unbound answers SERVFAIL. */
		snprintf(err, errlen, "the DNS answer for %s (%s) failed DNSSEC validation (%s): it was tampered with or the "
			"domain's DNSSEC signatures are broken; Postern will try again", name, dns_type_name(type), res->why_bogus);
		return -2;
	}
	switch (res->rcode) {
	case DNS_NOERROR:
		return res->n + res->malformed > 0 ? 1 : 0;
	case DNS_NXDOMAIN:
		return -1;
	case DNS_TIMEOUT:
	case DNS_RESOLVER_ERROR:
		snprintf(err, errlen, "DNS lookup of %s failed: %s", name, res->error);
		return -2;
	case DNS_SERVFAIL:
	case DNS_REFUSED:
	case DNS_RCODE_OTHER:
		break;
	}
	snprintf(err, errlen, "DNS lookup of %s failed (%s): the DNS server could not answer; Postern will try again", name,
		dns_rcode_name(res->rcode));
	return -2;
}

static void add_addrs(struct dns_resolver *r, struct mx_host *h, enum dns_type type, char *err, size_t errlen)
{
	struct dns_result res;
	int q = query(r, h->name, type, &res, err, errlen);
	if (q != 0 && res.security != DNS_SECURE)
		h->addrs_secure = false;
	if (q == 1)
		for (size_t i = 0; i < res.n && h->n_addrs < MX_MAX_ADDRS; i++)
			snprintf(h->addrs[h->n_addrs++], sizeof(h->addrs[0]), "%s", res.rr[i].u.addr.text);
	dns_result_free(&res);
}

static int by_preference(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;
	return x->preference < y->preference ? -1 : x->preference > y->preference;
}

/* RFC 5321 §5.1: equal preferences in random order, to spread the load. */
static void shuffle_ties(struct mx_host *hosts, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && hosts[j].preference == hosts[i].preference)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			unsigned rnd = 0;
			if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
				rnd = (unsigned)k;
			size_t m = i + rnd % (k - i + 1);
			struct mx_host t = hosts[k];
			hosts[k] = hosts[m];
			hosts[m] = t;
		}
		i = j;
	}
}

/* The MX records, at most MX_MAX_HOSTS, in preference order; false for a null MX. */
static bool take_mx(const struct dns_result *res, struct mx_host *hosts, size_t *n)
{
	for (size_t i = 0; i < res->n && *n < MX_MAX_HOSTS; i++) {
		struct mx_host *h = &hosts[(*n)++];
		memset(h, 0, sizeof(*h));
		h->preference = res->rr[i].u.mx.preference;
		snprintf(h->name, sizeof(h->name), "%s", res->rr[i].u.mx.exchange);
	}
	/* RFC 7505 §3: a single MX with the root as exchange. */
	if (*n == 1 && strcmp(hosts[0].name, ".") == 0) {
		*n = 0;
		return false;
	}
	qsort(hosts, *n, sizeof(*hosts), by_preference);
	shuffle_ties(hosts, *n);
	return true;
}

enum mx_status mx_lookup(struct dns_resolver *r, const char *domain, struct mx_host *hosts, size_t *n,
	bool *secure, char *err, size_t errlen)
{
	*n = 0;
	err[0] = '\0';
	struct dns_result res;
	int q = query(r, domain, DNS_MX, &res, err, errlen);
	*secure = q >= 0 && res.security == DNS_SECURE;
	bool null_mx = q == 1 && !take_mx(&res, hosts, n);
	dns_result_free(&res);
	if (q == -2)
		return MX_TEMP;
	if (q == -1) {
		snprintf(err, errlen, "the domain %s does not exist (DNS: NXDOMAIN)", domain);
		return MX_NO_DOMAIN;
	}
	if (null_mx) {
		snprintf(err, errlen, "the domain %s publishes a null MX (RFC 7505): it accepts no mail", domain);
		return MX_NULL;
	}
	if (q == 0) {
		/* No MX: the domain itself is the implicit MX (RFC 5321 §5.1). */
		memset(&hosts[0], 0, sizeof(hosts[0]));
		snprintf(hosts[0].name, sizeof(hosts[0].name), "%s", domain);
		*n = 1;
	}
	for (size_t i = 0; i < *n; i++) {
		hosts[i].addrs_secure = true;
		add_addrs(r, &hosts[i], DNS_AAAA, err, errlen);
		add_addrs(r, &hosts[i], DNS_A, err, errlen);
	}
	size_t with = 0;
	for (size_t i = 0; i < *n; i++)
		with += hosts[i].n_addrs > 0;
	if (with == 0) {
		snprintf(err, errlen, "no address found for the mail servers of %s", domain);
		return q == 1 ? MX_TEMP : MX_NO_DOMAIN;
	}
	return MX_OK;
}
