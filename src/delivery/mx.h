/* mx.h - where to deliver mail for a domain (RFC 5321 §5.1), asked of dns/:
 * the MX records in preference order (equal preferences shuffled), each with its
 * IPv6 and IPv4 addresses; no MX records -> the domain's own addresses (the
 * "implicit MX"); a null MX (RFC 7505: one MX "0 .") -> the domain accepts no mail.
 * The resolver ([delivery] resolver: tests point it at a DNS server on loopback)
 * belongs to the delivery thread that asks (dns/dns.h). */
#ifndef POSTERN_DELIVERY_MX_H
#define POSTERN_DELIVERY_MX_H

#include <stdbool.h>
#include <stddef.h>

#define MX_MAX_HOSTS 10
#define MX_MAX_ADDRS 8

struct mx_host {
	char name[256];
	unsigned preference;
	char addrs[MX_MAX_ADDRS][64];   /* numeric, IPv6 first */
	size_t n_addrs;
	bool addrs_secure;              /* every address answer DNSSEC-secure (RFC 7672 §2.2.2) */
};

enum mx_status {
	MX_OK,
	MX_NULL,        /* RFC 7505: the domain says it takes no mail */
	MX_NO_DOMAIN,   /* NXDOMAIN, or no MX and no address: permanent */
	MX_TEMP,        /* SERVFAIL, time-out, no answer: try later */
};

struct dns_resolver;

/* The blocking lookups of dns/: each waits at most the resolver's timeout.
 * *secure: the MX answer (or, for the implicit MX, the answer that there is none)
 * was DNSSEC-secure, the first condition of DANE (RFC 7672 §2.2.1).  A bogus MX
 * answer is MX_TEMP with words saying so. */
enum mx_status mx_lookup(struct dns_resolver *r, const char *domain, struct mx_host *hosts, size_t *n,
	bool *secure, char *err, size_t errlen);

#endif
