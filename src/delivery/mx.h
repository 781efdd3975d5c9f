/* mx.h - where to deliver mail for a domain (RFC 5321 §5.1), with libunbound:
 * the MX records in preference order (equal preferences shuffled), each with its
 * IPv6 and IPv4 addresses; no MX records -> the domain's own addresses (the
 * "implicit MX"); a null MX (RFC 7505: one MX "0 .") -> the domain accepts no mail.
 * A resolver setting lets tests point it at a DNS server on loopback. */
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
};

enum mx_status {
	MX_OK,
	MX_NULL,        /* RFC 7505: the domain says it takes no mail */
	MX_NO_DOMAIN,   /* NXDOMAIN, or no MX and no address: permanent */
	MX_TEMP,        /* SERVFAIL, time-out, no answer: try later */
};

struct mx_resolver;

/* resolver: "" for /etc/resolv.conf (or full recursion without one), or
 * "ADDR[@PORT]" of a DNS server to forward to. */
struct mx_resolver *mx_resolver_new(const char *resolver, char *err, size_t errlen);
void mx_resolver_free(struct mx_resolver **r);
enum mx_status mx_lookup(struct mx_resolver *r, const char *domain, struct mx_host *hosts, size_t *n,
	char *err, size_t errlen);

/* Decode a wire-format domain name (RFC 1035 §3.1, no compression) at p[0..len)
 * into dotted text; returns the octets used or 0 when malformed.  For tests/fuzzing. */
size_t mx_wire_name(const unsigned char *p, size_t len, char *out, size_t outsz);

#endif
