/* dmarc.h - DMARC (RFC 7489): the policy record (strict parser, §6.3-§6.4), its
 * discovery in the DNS (§6.6.3: _dmarc.<From: domain>, then the organisational
 * domain), the organisational domain itself (§3.2, from the public suffix list through
 * libpsl), identifier alignment for SPF and DKIM (§3.1, strict or relaxed) and the
 * evaluation of one author domain (§6.6.2-§6.6.4, pct included).
 *
 * Postern follows RFC 7489 with the public suffix list rather than the DNS tree walk
 * of its successor drafts: see docs/architecture.md, "Message authentication".
 *
 * Pure except for the DNS, which comes through the caller's lookup function (a worker
 * thread's blocking resolver in the server, a table in the tests).  mailauth/ never
 * decides what the SMTP session says: the inbound stage (policy/) does. */
#ifndef POSTERN_MAILAUTH_DMARC_H
#define POSTERN_MAILAUTH_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMARC_DOMAIN_MAX 256
#define DMARC_URI_MAX 512
#define DMARC_WORDS_MAX 400
#define DMARC_RECORD_MAX 4096   /* longer TXT answers are not a sane policy record */

enum dmarc_policy { DMARC_P_NONE, DMARC_P_QUARANTINE, DMARC_P_REJECT };
enum dmarc_align { DMARC_RELAXED, DMARC_STRICT };

/* One parsed record.  Tags the record does not give hold their defaults (§6.3). */
struct dmarc_record {
	bool p_valid;                   /* p= present with a known value */
	enum dmarc_policy p;
	bool sp_set, sp_valid;          /* sp= present; and its value known */
	enum dmarc_policy sp;
	bool np_set;                    /* np= (RFC 9091), parsed; not applied */
	enum dmarc_policy np;
	enum dmarc_align adkim, aspf;   /* default relaxed */
	unsigned pct;                   /* 0..100, default 100 */
	char rua[DMARC_URI_MAX];        /* as published; reports are not sent */
	char ruf[DMARC_URI_MAX];
	bool rua_valid;                 /* at least one syntactically valid rua URI */
	char fo[16];                    /* default "0" */
	char rf[32];                    /* default "afrf" */
	uint32_t ri;                    /* default 86400 */
	unsigned defaulted;             /* tags whose invalid value was replaced by the default */
};

enum dmarc_parse {
	DMARC_PARSE_OK,         /* a DMARC record; p_valid may still be false (§6.6.3 step 6) */
	DMARC_PARSE_NOT_DMARC,  /* does not begin with v=DMARC1: discarded (§6.6.3 step 2) */
	DMARC_PARSE_BAD,        /* v=DMARC1, but the tag list is broken (syntax, a tag twice) */
};

/* Parse one TXT record (its strings joined).  why says what was wrong, or what was
 * replaced by a default, in a few words. */
enum dmarc_parse dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r, char *why, size_t whysz);

/* The organisational domain of a domain (§3.2): the public suffix plus one label,
 * the domain itself when it is a public suffix or has no registrable part.  Lower
 * case.  False when the name does not fit or the public suffix list could not be
 * loaded (dmarc_psl_error says why). */
bool dmarc_org_domain(const char *domain, char *out, size_t outsz);
/* "" when the list loaded; otherwise why not. */
const char *dmarc_psl_error(void);

/* Identifier alignment (§3.1.1, §3.1.2): strict means the same name, relaxed the same
 * organisational domain.  Case-insensitive; a trailing dot ignored. */
bool dmarc_aligned(const char *from_domain, const char *auth_domain, enum dmarc_align mode);

/* --- discovery and evaluation ---------------------------------------------------- */

struct dns_result;

/* How mailauth asks the DNS: fill res (zeroed by the caller) with the TXT records at
 * name, as dns_lookup() does.  The caller frees res with dns_result_free. */
struct dmarc_dns {
	void (*txt)(void *ctx, const char *name, struct dns_result *res);
	void *ctx;
};

enum dmarc_result {
	DMARC_RESULT_NONE,       /* no policy published (or none usable, §6.6.3) */
	DMARC_RESULT_PASS,
	DMARC_RESULT_FAIL,
	DMARC_RESULT_TEMPERROR,  /* a DNS answer that may come later (time-out, SERVFAIL) */
	DMARC_RESULT_PERMERROR,  /* several records, an unusable record */
};

/* One DKIM result as DMARC needs it (from dkim_verify). */
struct dmarc_dkim_sig {
	bool pass;
	bool temperror;
	const char *d;               /* d= */
	const char *words;           /* why it failed; "" or NULL when it passed */
};

struct dmarc_check {
	const char *from_domain;     /* the author domain (RFC5322.From), lower case */
	/* SPF (RFC 7208) of the MAIL FROM domain, or of HELO for <> (§3.1.2) */
	bool spf_pass;
	bool spf_temperror;
	const char *spf_domain;      /* the identity SPF checked; NULL or "": no SPF result */
	const char *spf_words;       /* SPF's own words when it did not pass */
	const struct dmarc_dkim_sig *dkim;
	size_t n_dkim;
	unsigned sample;             /* 0..99, drawn by the caller: pct applies when sample >= pct */
};

struct dmarc_outcome {
	enum dmarc_result result;
	char from_domain[DMARC_DOMAIN_MAX];
	char org_domain[DMARC_DOMAIN_MAX];
	char record_domain[DMARC_DOMAIN_MAX];   /* where the record was found ("" none) */
	bool have_policy;                       /* a usable record applies */
	struct dmarc_record rec;
	enum dmarc_policy policy;               /* published for this domain: p, or sp for a subdomain */
	bool policy_is_sp;
	enum dmarc_policy disposition;          /* what to do: policy, or the next lower one when
	                                         * pct sampled the message out (§6.6.4) */
	bool sampled_out;
	bool spf_aligned, dkim_aligned;         /* an aligned identifier that passed */
	char dkim_domain[DMARC_DOMAIN_MAX];     /* the d= that passed aligned */
	char words[DMARC_WORDS_MAX];            /* why the result: none, temperror, permerror */
	char spf_words[DMARC_WORDS_MAX];        /* what SPF said for this domain, in words */
	char dkim_words[DMARC_WORDS_MAX];       /* what DKIM said, in words ("no signature") */
};

/* Policy discovery (§6.6.3) and the evaluation of one author domain against the SPF
 * and DKIM results (§6.6.2, §6.6.4).  At most two TXT lookups. */
void dmarc_evaluate(const struct dmarc_dns *dns, const struct dmarc_check *c, struct dmarc_outcome *o);

const char *dmarc_result_name(enum dmarc_result r);   /* RFC 8601 words: "pass", "fail", ... */
const char *dmarc_policy_name(enum dmarc_policy p);   /* "none", "quarantine", "reject" */

#endif
