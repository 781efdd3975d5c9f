/* spf.h - Sender Policy Framework (RFC 7208): may this client IP send mail for the
 * domain of the MAIL FROM (and of the HELO) identity?
 *
 * spf_check() runs check_host() (§4) on the identities of one SMTP transaction over
 * a blocking DNS lookup function with a deadline, for a worker thread: record
 * selection (§4.5), the terms (§4.6, §5, §6), the limits of §4.6.4 (10 terms that
 * query DNS, 2 void lookups, 10 MX names, 10 PTR names), macros (§7), and the
 * explanation of a fail (§6.2).  A DNS failure or timeout is a temperror, never a
 * permanent result.  The outcome carries plain words for logs and replies.
 *
 * The parser and the macro expander are exposed for unit tests and fuzzing. */
#ifndef POSTERN_MAILAUTH_SPF_H
#define POSTERN_MAILAUTH_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "dns/dns.h"

/* RFC 7208 §2.6; names as in RFC 8601 §2.7.2 and Received-SPF (§9.1). */
enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_identity {
	SPF_ID_MAILFROM,   /* RFC 7208 §2.4 */
	SPF_ID_HELO,       /* §2.3; also MAIL FROM:<> (checked as postmaster@HELO) */
};

#define SPF_DOMAIN_MAX 256
#define SPF_SENDER_MAX 400
#define SPF_WORDS_MAX 640
#define SPF_MECHANISM_MAX 128
#define SPF_EXPLANATION_MAX 256
#define SPF_DEFAULT_TIMEOUT_MS 20000   /* §4.6.4: "at least 20 seconds" overall */

struct spf_helo_outcome {
	bool checked;                    /* false: HELO is no domain name (address literal...) */
	enum spf_result result;
	char domain[SPF_DOMAIN_MAX];
	char words[SPF_WORDS_MAX];
};

struct spf_outcome {
	enum spf_result result;
	enum spf_identity identity;
	char domain[SPF_DOMAIN_MAX];     /* the identity's domain, lower case */
	char sender[SPF_SENDER_MAX];     /* as checked: "user@example.com", "postmaster@helo.example" */
	char client_ip[48];
	/* "192.0.2.7 is not allowed to send for example.com: its SPF record ends in -all" */
	char words[SPF_WORDS_MAX];
	/* The term of the domain's record that decided, as written ("-all",
	 * "include:_spf.example.net", "redirect=_spf.example.com"); "" when none did. */
	char mechanism[SPF_MECHANISM_MAX];
	/* fail only: the domain's own exp= text (§6.2), printable ASCII; "" when none. */
	char explanation[SPF_EXPLANATION_MAX];
	/* The record that decided (after redirect=) contains a "-all" term. */
	bool record_has_fail_all;
	/* The HELO identity, checked separately (§2.3, RECOMMENDED). */
	struct spf_helo_outcome helo;
};

/* A blocking DNS lookup taking at most timeout_ms; res is always filled (rcode
 * DNS_TIMEOUT when no answer came) and freed by the caller with dns_result_free. */
struct spf_dns {
	void (*lookup)(void *ctx, enum dns_type type, const char *name, unsigned timeout_ms, struct dns_result *res);
	void *ctx;
};

struct spf_request {
	const char *client_ip;   /* numeric IPv4 or IPv6 */
	const char *helo;        /* as given at HELO/EHLO; NULL or "": none */
	const char *sender;      /* MAIL FROM address; NULL or "": the null sender <> */
	const char *receiver;    /* our host name, for %{r} (§7.3); NULL: "unknown" */
	unsigned timeout_ms;     /* for all lookups together; 0: SPF_DEFAULT_TIMEOUT_MS */
	bool check_helo;         /* also check the HELO identity (outcome.helo) */
};

/* Fills out completely, whatever happens. */
void spf_check(const struct spf_request *rq, const struct spf_dns *dns, struct spf_outcome *out);

/* "pass", "fail", ... (RFC 8601 §2.7.2 result names) */
const char *spf_result_name(enum spf_result r);
/* Reads a result name; false when unknown. */
bool spf_result_from_name(const char *name, enum spf_result *r);

/* The spf_dns of a dns/ resolver (ctx is the struct dns_resolver). */
void spf_dns_resolver_lookup(void *resolver, enum dns_type type, const char *name, unsigned timeout_ms,
	struct dns_result *res);

/* --- parts, for tests and fuzzing ------------------------------------------------- */

enum spf_mech { SPF_M_ALL, SPF_M_INCLUDE, SPF_M_A, SPF_M_MX, SPF_M_PTR, SPF_M_IP4, SPF_M_IP6, SPF_M_EXISTS };

struct spf_term {
	char qualifier;          /* '+', '-', '~', '?' (§4.6.2) */
	enum spf_mech mech;
	const char *spec;        /* the domain-spec as written (a macro-string); NULL: none */
	size_t spec_len;
	int cidr4, cidr6;        /* §5.6 dual-cidr-length; 32 / 128 when not given */
	unsigned char net[16];   /* ip4 (4 octets) / ip6 */
	const char *text;        /* the whole term, for the words */
	size_t text_len;
};

#define SPF_TERMS_MAX 128
#define SPF_RECORD_MAX 4096     /* longer records are refused (permerror) */

/* A parsed record: pointers into the text it was parsed from. */
struct spf_record {
	struct spf_term terms[SPF_TERMS_MAX];
	size_t n;
	const char *redirect, *exp;          /* domain-specs of the modifiers (§6); NULL: none */
	size_t redirect_len, exp_len;
	const char *redirect_text;           /* "redirect=..." as written */
	size_t redirect_text_len;
	bool has_fail_all;
};

/* Is this TXT string an SPF record (§4.5: "v=spf1" then a space or the end)? */
bool spf_is_record(const char *txt, size_t len);
/* §4.6, §12: the whole record or nothing.  On a syntax error returns false with
 * err saying which term is wrong and why. */
bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec, char *err, size_t errsz);

/* What the macros of §7.3 expand to. */
struct spf_macro_vars {
	const char *sender;       /* s: local@domain */
	const char *local;        /* l */
	const char *sender_domain;/* o */
	const char *domain;       /* d: the current domain */
	const char *ip_dotted;    /* i: 192.0.2.7, or 32 dotted nibbles for IPv6 */
	const char *ip_text;      /* c: 192.0.2.7 / 2001:db8::7 */
	bool ipv6;                /* v: "ip6" or "in-addr" */
	const char *helo;         /* h */
	const char *receiver;     /* r */
	long long now;            /* t */
	/* p: the validated domain name of the client (§5.5); may do DNS.  NULL: "unknown". */
	const char *(*validated_name)(void *ctx, const char *domain);
	void *ctx;
};

/* Expand macro-string s (len octets).  explanation: the string is exp= text (§6.2:
 * spaces allowed, c r t allowed).  Otherwise a domain-spec: a trailing dot is
 * dropped and a result over 253 octets loses labels on the left (§7.3).
 * False on a syntax error or when out is too small (err says which). */
bool spf_macro_expand(const struct spf_macro_vars *v, const char *s, size_t len, bool explanation, char *out,
	size_t outsz, char *err, size_t errsz);
/* Syntax check of a macro-string without expanding it. */
bool spf_macro_valid(const char *s, size_t len, bool explanation, char *err, size_t errsz);

#endif
