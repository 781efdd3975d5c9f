/* dns_zone.h - the records a domain served by this Postern needs (private to cli/):
 * built once from the configuration and the DKIM keys, then printed by `postern dns`
 * and compared with what the DNS says by `postern dns check`, so that what the one
 * prints is exactly what the other accepts. */
#ifndef POSTERN_CLI_DNS_ZONE_H
#define POSTERN_CLI_DNS_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "dns/dns.h"

struct conf;

#define ZONE_TTL 3600
#define ZONE_MAX_RECORDS 40
#define ZONE_VALUE_MAX 2048
#define ZONE_COMMENT_MAX 1024

enum zone_kind {
	ZONE_MX,          /* DOMAIN MX -> hostname */
	ZONE_HOST_ADDR,   /* hostname A/AAAA */
	ZONE_SPF,
	ZONE_DKIM,        /* one per selector */
	ZONE_DKIM_NONE,   /* no key yet: nothing to publish, but a check that fails */
	ZONE_DMARC,
	ZONE_MTA_STS,     /* _mta-sts TXT */
	ZONE_MTA_STS_HOST,/* mta-sts.DOMAIN, where the policy file is fetched */
	ZONE_TLSRPT,
	ZONE_SRV,
	ZONE_ALIAS,       /* autoconfig / autodiscover CNAMEs */
	ZONE_PTR,         /* set by whoever owns the address, not in DOMAIN's zone */
};

struct zone_record {
	enum zone_kind kind;
	bool required;                  /* the big receivers refuse or junk mail without it */
	bool comment_only;              /* printed commented out (PTR, an address not known) */
	char label[24];                 /* what the checklist calls it: "MX", "SPF", ... */
	char name[DNS_NAME_MAX];        /* absolute, without the trailing dot */
	enum dns_type type;
	char value[ZONE_VALUE_MAX];     /* TXT: the text itself (joined); others: zone rdata */
	char comment[ZONE_COMMENT_MAX]; /* why: printed before the record */
	/* what the check compares (SRV, DKIM) */
	unsigned port;
	char target[DNS_NAME_MAX];      /* SRV, MX, CNAME target; "." for a null SRV */
	char selector[64];              /* DKIM */
	bool active;                    /* DKIM: signs (a retired key stays published) */
};

struct zone {
	char domain[DNS_NAME_MAX];
	char hostname[DNS_NAME_MAX];
	char address[48];               /* this server's address, "" when not known */
	char address_from[128];         /* where it came from: "--address", "listener mx" */
	char mta_sts_policy[1024];      /* the file served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (CR LF lines) */
	char mta_sts_id[40];            /* its id, as in the _mta-sts TXT record; "" when not published */
	struct zone_record rec[ZONE_MAX_RECORDS];
	size_t n;
};

/* Fill z for domain (lower case).  address: NULL or "" to take it from the listeners. */
bool zone_build(const struct conf *c, const char *domain, const char *address, struct zone *z,
	char *err, size_t errlen);
/* One record in zone-file form, "NAME.<TAB>TTL<TAB>IN<TAB>TYPE<TAB>RDATA" (TXT split
 * into quoted strings of at most 255 octets, RFC 1035 §3.3.14), no newline. */
void zone_record_line(const struct zone_record *r, char *out, size_t outsz);
/* The whole zone fragment, comments included, ready to paste. */
void zone_print(const struct zone *z, FILE *out);
/* The reverse name of a numeric address (RFC 1035 §3.5, RFC 3596 §2.5). */
bool zone_reverse_name(const char *address, char *out, size_t outsz);

/* `postern dns check` (dns_check.c): returns the exit status. */
int zone_check(const struct zone *z, const char *resolver, unsigned timeout_ms, bool json);

#endif
