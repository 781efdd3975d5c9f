/* dns.h - the DNS room: typed lookups with libunbound, for delivery (MX, A/AAAA) and
 * for what comes next (TXT for SPF/DKIM/DMARC, TLSA for DANE, PTR).
 *
 * A result says what the DNS said (rcode, or that no answer came in time), how far it
 * can be trusted (DNSSEC: secure, insecure, or bogus with unbound's reason), its TTL,
 * and the records parsed from their wire form by this room's own strict parsers.
 * What a result means for mail (null MX, implicit MX, SPF's void lookups...) is the
 * caller's business, not the resolver's.
 *
 * A resolver is used by one thread at a time: the blocking form (dns_lookup) for
 * worker threads, or the asynchronous form (dns_query_start + dns_resolver_fd /
 * dns_resolver_process / dns_resolver_expire) for an event loop, which registers the
 * descriptor with its own loop: this room knows no event library. */
#ifndef POSTERN_DNS_DNS_H
#define POSTERN_DNS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 256        /* dotted text of a name, RFC 1035 §2.3.4: 255 octets */
#define DNS_ERR_MAX 256

/* Record types asked for (RFC 1035 §3.2.2, RFC 3596, RFC 6698). */
enum dns_type {
	DNS_A = 1,
	DNS_CNAME = 5,          /* asked for itself: `postern dns check` (autoconfig names) */
	DNS_PTR = 12,
	DNS_MX = 15,
	DNS_TXT = 16,
	DNS_AAAA = 28,
	DNS_SRV = 33,           /* RFC 2782: RFC 6186/8314 service records */
	DNS_DNSKEY = 48,        /* RFC 4034 §2: asked only by the DNSSEC probe */
	DNS_TLSA = 52,
};

/* What came back (RFC 1035 §4.1.1 RCODE, plus the two outcomes that are not the
 * server's word: no answer in time, and the resolver itself failing). */
enum dns_rcode {
	DNS_NOERROR,            /* answer; n == 0 is NODATA */
	DNS_NXDOMAIN,           /* the name does not exist */
	DNS_SERVFAIL,           /* also what a DNSSEC failure (bogus) gives */
	DNS_REFUSED,
	DNS_RCODE_OTHER,        /* FORMERR, NOTIMP, ...: see wire_rcode */
	DNS_TIMEOUT,            /* no answer within the time given */
	DNS_RESOLVER_ERROR,     /* libunbound could not ask: see error */
};

/* DNSSEC status (RFC 4033 §5): secure needs a trust anchor in the options. */
enum dns_security {
	DNS_INSECURE,
	DNS_SECURE,
	DNS_BOGUS,              /* validation failed: why_bogus says why */
};

struct dns_mx {
	unsigned preference;
	char exchange[DNS_NAME_MAX];   /* "." for a null MX (RFC 7505) */
};

struct dns_addr {
	int family;                    /* AF_INET or AF_INET6 */
	unsigned char bytes[16];
	char text[48];                 /* numeric form */
};

/* TXT: the character-strings joined without separator (RFC 7208 §3.3, RFC 6376
 * §3.6.2.2, RFC 7489 §6.3); text is NUL-terminated but may hold NULs itself. */
struct dns_txt {
	char *text;
	size_t len;
};

/* TLSA (RFC 6698 §2.1): certificate usage, selector, matching type, data. */
struct dns_tlsa {
	uint8_t usage;
	uint8_t selector;
	uint8_t matching;
	unsigned char *data;
	size_t len;
};

/* SRV (RFC 2782): priority, weight, port, target ("." : service not offered). */
struct dns_srv {
	unsigned priority;
	unsigned weight;
	unsigned port;
	char target[DNS_NAME_MAX];
};

/* DNSKEY (RFC 4034 §2.1): the fixed fields; the key itself is not kept. */
struct dns_dnskey {
	uint16_t flags;
	uint8_t protocol;
	uint8_t algorithm;
};

struct dns_rr {
	union {
		struct dns_srv srv;
		struct dns_dnskey dnskey;
		struct dns_mx mx;
		struct dns_addr addr;          /* A, AAAA */
		struct dns_txt txt;
		struct dns_tlsa tlsa;
		char name[DNS_NAME_MAX];       /* PTR, CNAME */
	} u;
};

struct dns_result {
	enum dns_type type;
	enum dns_rcode rcode;
	int wire_rcode;                        /* the RCODE itself */
	enum dns_security security;
	char why_bogus[DNS_ERR_MAX];
	uint32_t ttl;
	char error[DNS_ERR_MAX];               /* DNS_RESOLVER_ERROR, DNS_TIMEOUT */
	struct dns_rr *rr;
	size_t n;                              /* records parsed */
	size_t malformed;                      /* records refused by the parsers */
};

struct dns_options {
	const char *forwarder;          /* "ADDR[@PORT]"; NULL or "": /etc/resolv.conf */
	const char *trust_anchor_file;  /* DS/DNSKEY records, zone-file form; NULL: none */
	unsigned timeout_ms;            /* per query; 0: DNS_DEFAULT_TIMEOUT_MS */
};

#define DNS_DEFAULT_TIMEOUT_MS 30000

struct dns_resolver;
struct ub_result;

struct dns_resolver *dns_resolver_new(const struct dns_options *o, char *err, size_t errlen);
void dns_resolver_free(struct dns_resolver **r);

/* Blocking: waits at most the resolver's timeout.  Returns res, which the caller
 * frees with dns_result_free (res is always filled, whatever the outcome). */
struct dns_result *dns_lookup(struct dns_resolver *r, enum dns_type type, const char *name,
	struct dns_result *res);
/* The same with a shorter deadline for this query (0: the resolver's), for a caller
 * with a time budget over several lookups (SPF, RFC 7208 §4.6.4). */
struct dns_result *dns_lookup_within(struct dns_resolver *r, enum dns_type type, const char *name, unsigned timeout_ms,
	struct dns_result *res);
void dns_result_free(struct dns_result *res);

/* Asynchronous.  The callback gets a result it must dns_result_free; it is called
 * from dns_resolver_process or dns_resolver_expire, never from dns_query_start.
 * A NULL return means the query could not start (err says why). */
typedef void dns_callback(void *arg, struct dns_result *res);
struct dns_query;
struct dns_query *dns_query_start(struct dns_resolver *r, enum dns_type type, const char *name,
	dns_callback *cb, void *arg, char *err, size_t errlen);
/* The callback will not be called. */
void dns_query_cancel(struct dns_resolver *r, struct dns_query **q);
/* Readable when answers are waiting: then call dns_resolver_process. */
int dns_resolver_fd(struct dns_resolver *r);
void dns_resolver_process(struct dns_resolver *r);
/* Milliseconds until the next query times out (-1: none pending); the loop arms a
 * timer for it and then calls dns_resolver_expire, which answers DNS_TIMEOUT. */
int dns_resolver_next_timeout(const struct dns_resolver *r);
void dns_resolver_expire(struct dns_resolver *r);
size_t dns_resolver_pending(const struct dns_resolver *r);

/* A pool of resolvers for worker threads: take one (made when none is idle, at most
 * max; past that the caller waits for one given back), use it, give it back.  The
 * pool copies the options.  Free it after every taker has given back. */
struct dns_pool;
struct dns_pool *dns_pool_new(const struct dns_options *o, size_t max);
struct dns_resolver *dns_pool_take(struct dns_pool *p, char *err, size_t errlen);
void dns_pool_give(struct dns_pool *p, struct dns_resolver *r);
void dns_pool_free(struct dns_pool **p);

/* Can this resolver path deliver validatable DNSSEC?  (probe.c)  The probe asks the
 * DNSKEY records of the trust anchor's zone twice within timeout_ms: through a
 * validating context (o as given) and through one without the anchor.  Secure: the
 * path validates.  Not secure while the plain context gets a definite answer (the
 * records without usable signatures, NXDOMAIN, NODATA, REFUSED): the resolver cannot
 * serve DNSSEC, and every answer would be bogus.  No answer at all: undecided (no
 * network yet), to be asked again later.  Blocking: worker threads and commands only. */
enum dns_dnssec_path {
	DNS_DNSSEC_VALIDATES,      /* the anchor's zone answered secure */
	DNS_DNSSEC_UNAVAILABLE,    /* a definite answer that cannot be validated */
	DNS_DNSSEC_UNDECIDED,      /* no answer (timeout, no network, resolver error) */
};
struct dns_dnssec_probe {
	enum dns_dnssec_path path;
	char zone[DNS_NAME_MAX];   /* the anchor's owner name that was asked */
	char reason[1024];         /* plain words: what the resolver answered */
};
void dns_dnssec_probe(const struct dns_options *o, unsigned timeout_ms, struct dns_dnssec_probe *out);
/* The owner name of the first record in a trust-anchor file (zone-file form);
 * false when the file cannot be read or holds no record. */
bool dns_anchor_zone(const char *path, char *out, size_t outsz);

/* Parts, for tests and fuzzing. */
/* Fill res from what libunbound returned (err: ub_resolve's error code). */
void dns_result_from_unbound(struct dns_result *res, enum dns_type type, int err, const struct ub_result *ub);
const char *dns_rcode_name(enum dns_rcode rc);
const char *dns_type_name(enum dns_type t);

/* Wire-format parsers (RFC 1035 §3.3): each takes one record's rdata and is strict:
 * every length is checked, the rdata must be used exactly, nothing is truncated. */
/* A domain name without compression (libunbound hands rdata uncompressed); dotted,
 * lower case, "." for the root.  Returns the octets used, 0 when malformed. */
size_t dns_wire_name(const unsigned char *p, size_t len, char *out, size_t outsz);
bool dns_parse_mx(const unsigned char *rd, size_t len, struct dns_mx *out);
bool dns_parse_addr(enum dns_type type, const unsigned char *rd, size_t len, struct dns_addr *out);
bool dns_parse_ptr(const unsigned char *rd, size_t len, char *out, size_t outsz);   /* and CNAME */
bool dns_parse_srv(const unsigned char *rd, size_t len, struct dns_srv *out);
/* Allocates out->text (free it with dns_rr_clear). */
bool dns_parse_txt(const unsigned char *rd, size_t len, struct dns_txt *out);
/* Allocates out->data. */
bool dns_parse_tlsa(const unsigned char *rd, size_t len, struct dns_tlsa *out);
bool dns_parse_dnskey(const unsigned char *rd, size_t len, struct dns_dnskey *out);
bool dns_parse_rr(enum dns_type type, const unsigned char *rd, size_t len, struct dns_rr *out);
void dns_rr_clear(enum dns_type type, struct dns_rr *rr);

#endif
