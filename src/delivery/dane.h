/* dane.h - DANE for SMTP (RFC 7672 on RFC 6698/7671): for an MX host whose MX and
 * address answers were DNSSEC-secure, the TLSA records at _PORT._tcp.HOST (PORT is
 * [delivery] remote_port, 25 on the Internet) decide how the host is authenticated:
 *   - secure and usable (usages 2 DANE-TA and 3 DANE-EE, §3.1.3: 0 and 1 are not
 *     used for SMTP) -> TLS required, the peer authenticated by them alone;
 *   - secure but none usable -> TLS required, no authentication (§2.2);
 *   - secure "no such records", or insecure -> no DANE (opportunistic TLS, or
 *     MTA-STS if the domain has a policy);
 *   - bogus, or no answer from a signed zone -> the host is not used (§2.2: an
 *     attacker could be hiding the records); the delivery waits with the reason. */
#ifndef POSTERN_DELIVERY_DANE_H
#define POSTERN_DELIVERY_DANE_H

#include <stdbool.h>
#include <stddef.h>

#include "net/client.h"

#define DANE_MAX_TLSA 16
#define DANE_DATA_MAX 2048    /* a record's data (a full certificate, matching 0); longer: unusable */

enum dane_state {
	DANE_NONE,        /* no DANE for this host */
	DANE_AUTH,        /* usable records: authenticate with them */
	DANE_TLS_ONLY,    /* records, none usable: encrypt, do not authenticate */
	DANE_UNUSABLE,    /* bogus or failed lookup: do not use this host (why says) */
};

struct dane_host {
	enum dane_state state;
	struct net_tlsa tlsa[DANE_MAX_TLSA];
	unsigned char data[DANE_MAX_TLSA][DANE_DATA_MAX];
	size_t n;
	char why[800];
};

struct dns_resolver;

/* Look up and classify the TLSA records of host (blocking, bounded by the
 * resolver's timeout). */
enum dane_state dane_lookup(struct dns_resolver *r, const char *host, unsigned port, struct dane_host *out);

/* Keep the usable records of a parsed TLSA RRset (RFC 7672 §3.1.3; RFC 6698 §2.1:
 * selector 0 full certificate / 1 public key, matching 0 exact / 1 SHA2-256 /
 * 2 SHA2-512).  Returns how many were kept. */
size_t dane_take_usable(const struct net_tlsa *in, size_t n, struct dane_host *out);
bool dane_usable(unsigned usage, unsigned selector, unsigned matching);

/* "usage 3, SHA-256 of the public key" */
void dane_describe(const struct net_tlsa *t, char *out, size_t outsz);
/* "mx.example.com's certificate does not match its DANE TLSA record (usage 3,
 * SHA-256 of the public key)"; plural for several records. */
void dane_mismatch_words(const char *host, const struct dane_host *d, char *out, size_t outsz);

#endif
