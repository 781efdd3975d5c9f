/* dkim.h - DomainKeys Identified Mail (RFC 6376, RFC 8301, RFC 8463): canonicalisation,
 * the DKIM-Signature and key-record tag lists, verification, signing, and the key files
 * of <data_dir>/dkim/<domain>/<selector>.pem.
 *
 * Everything here is on OpenSSL 3 EVP (hashes, RSA PKCS#1 v1.5, Ed25519, base64) and
 * the dns/ room (TXT lookups); nothing is hand-rolled.  Verification and signing read
 * the message from a file descriptor: the header block is held in memory up to
 * DKIM_HEADER_MAX, the body is streamed through the hashes in fixed-size chunks, so
 * memory stays bounded whatever the message size.  These functions block (disk, DNS,
 * signatures): callers run them off the event loop. */
#ifndef POSTERN_MAILAUTH_DKIM_H
#define POSTERN_MAILAUTH_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dns/dns.h"
#include "util/buf.h"

#define DKIM_HEADER_MAX (1024 * 1024)   /* header block read into memory */
#define DKIM_FIELD_MAX 65536            /* one DKIM-Signature field, or one key record */
#define DKIM_TAGS_MAX 64
#define DKIM_SELECTOR_MAX 64
#define DKIM_WORDS_MAX 320
#define DKIM_MAX_SIGNATURES_DEFAULT 8
#define DKIM_TO_END_OF_FILE UINT64_MAX

/* ---- Canonicalisation (RFC 6376 §3.4) ---- */

enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

/* Header field canonicalisation (§3.4.1, §3.4.2).  field: one complete field with its
 * folding, with or without its final line end.  Appends the canonical form followed by
 * CRLF when with_crlf (the DKIM-Signature field itself is hashed without, §3.7). */
bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool with_crlf, struct buf *out);

/* Body canonicalisation (§3.4.3, §3.4.4) as a stream: feed any split of the body;
 * bare LF is taken as a line end (spooled files may use either).  The canonical bytes
 * go to `emit`; trailing empty lines are held back and dropped at the end. */
typedef void dkim_emit(void *arg, const char *p, size_t n);
struct dkim_body_canon {
	enum dkim_canon canon;
	dkim_emit *emit;
	void *arg;
	uint64_t pending_empty;   /* empty lines not yet emitted (maybe trailing) */
	bool line_has_content;
	bool pending_wsp;         /* relaxed: a run of WSP to emit as one SP before content */
	bool cr_pending;
	uint64_t emitted;         /* canonical octets so far */
};
void dkim_body_canon_init(struct dkim_body_canon *bc, enum dkim_canon c, dkim_emit *emit, void *arg);
void dkim_body_canon_feed(struct dkim_body_canon *bc, const char *p, size_t n);
void dkim_body_canon_finish(struct dkim_body_canon *bc);

/* ---- Tag lists (RFC 6376 §3.2) ---- */

struct dkim_tag {
	const char *name;     /* pointers into the parsed copy */
	const char *value;    /* leading/trailing FWS removed, inner FWS kept */
	size_t value_len;
};
struct dkim_tag_list {
	char *copy;
	struct dkim_tag tags[DKIM_TAGS_MAX];
	size_t n;
};
/* Strict: tag names are ALPHA *(ALNUM / "_"), values are VALCHAR runs separated by
 * FWS, a duplicate tag makes the whole list invalid (§3.2).  err gets plain words. */
bool dkim_tags_parse(const char *text, size_t len, struct dkim_tag_list *tl, char *err, size_t errlen);
const struct dkim_tag *dkim_tags_get(const struct dkim_tag_list *tl, const char *name);
void dkim_tags_free(struct dkim_tag_list *tl);

/* ---- DKIM-Signature (§3.5) ---- */

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };

#define DKIM_SIGNED_HEADERS_MAX 64

struct dkim_signature {
	enum dkim_alg alg;
	char algorithm[32];                  /* a= as written, lower case */
	enum dkim_canon header_canon, body_canon;
	char domain[DNS_NAME_MAX];           /* d=, lower case */
	char selector[DKIM_SELECTOR_MAX];    /* s= */
	char identity[DNS_NAME_MAX + 64];    /* i= (default "@" d=) */
	char headers[DKIM_SIGNED_HEADERS_MAX][64];   /* h=, lower case */
	size_t nheaders;
	bool has_length;
	uint64_t length;                     /* l= */
	bool has_timestamp, has_expiry;
	uint64_t timestamp, expiry;          /* t=, x= */
	unsigned char bh[64];                /* bh= decoded */
	size_t bh_len;
	unsigned char *b;                    /* b= decoded (allocated) */
	size_t b_len;
	char header_b[16];                   /* b= as written, first 12 base64 characters */
};
/* value: the field body after "DKIM-Signature:". */
bool dkim_signature_parse(const char *value, size_t len, struct dkim_signature *sig, char *err, size_t errlen);
void dkim_signature_free(struct dkim_signature *sig);

/* ---- Key records (§3.6.1, RFC 8463 §4.2) ---- */

struct dkim_key_record {
	enum dkim_alg key_type;      /* k= rsa (default) or ed25519; the hash is sha256 */
	bool revoked;                /* p= empty (§3.6.1) */
	bool testing;                /* t=y */
	bool strict_identity;        /* t=s: i= must be exactly d= */
	unsigned char *key;          /* p= decoded (allocated) */
	size_t key_len;
};
bool dkim_key_record_parse(const char *text, size_t len, struct dkim_key_record *kr, char *err, size_t errlen);
void dkim_key_record_free(struct dkim_key_record *kr);

/* ---- Verification (§6, RFC 8301, RFC 8463) ---- */

/* RFC 8601 §2.7.1 result names. */
enum dkim_result { DKIM_NONE, DKIM_PASS, DKIM_FAIL, DKIM_NEUTRAL, DKIM_POLICY, DKIM_TEMPERROR, DKIM_PERMERROR };
const char *dkim_result_name(enum dkim_result r);

struct dkim_outcome {
	enum dkim_result result;
	char domain[DNS_NAME_MAX];           /* d= (empty when the field did not parse) */
	char selector[DKIM_SELECTOR_MAX];
	char algorithm[32];
	char identity[DNS_NAME_MAX + 64];
	char header_b[16];                   /* header.b (RFC 6008) */
	bool body_length_limited;            /* l= was used: content may follow the signed part */
	bool key_testing;                    /* the key record says t=y */
	char words[DKIM_WORDS_MAX];          /* why, in plain words */
};

/* TXT lookup: fill res (as dns_lookup does) for `name`.  Tests feed records from a
 * table; the server passes NULL and a resolver. */
typedef void dkim_txt_lookup(void *arg, const char *name, struct dns_result *res);

struct dkim_verify_options {
	struct dns_resolver *resolver;       /* used when lookup is NULL */
	dkim_txt_lookup *lookup;
	void *lookup_arg;
	size_t max_signatures;               /* 0: DKIM_MAX_SIGNATURES_DEFAULT */
	time_t now;                          /* 0: time(NULL) */
	struct timespec deadline;            /* CLOCK_MONOTONIC; {0,0}: none */
};

/* Verify up to min(max_out, max_signatures) DKIM-Signature fields of the message
 * that is the octets [offset, offset + size) of the file at fd (read with pread;
 * size DKIM_TO_END_OF_FILE: the rest of the file).  Returns how many outcomes were
 * written; 0 means the message carries no DKIM-Signature (result "none"). */
size_t dkim_verify(int fd, uint64_t offset, uint64_t size, const struct dkim_verify_options *o,
	struct dkim_outcome *out, size_t max_out);
/* The whole file at path. */
size_t dkim_verify_path(const char *path, const struct dkim_verify_options *o, struct dkim_outcome *out, size_t max_out);

/* ---- Signing (§5) ---- */

struct dkim_signer {
	char domain[DNS_NAME_MAX];
	char selector[DKIM_SELECTOR_MAX];
	enum dkim_alg alg;
	void *pkey;                          /* EVP_PKEY */
};
bool dkim_signer_load(struct dkim_signer *s, const char *domain, const char *selector, const char *pem_path,
	char *err, size_t errlen);
/* The same from the PEM text itself (a key held in a database). */
bool dkim_signer_load_pem(struct dkim_signer *s, const char *domain, const char *selector, const char *pem,
	char *err, size_t errlen);
void dkim_signer_free(struct dkim_signer *s);

/* Sign the message [offset, offset + size) of the file at fd with each signer (relaxed/relaxed, t=now, never l=), writing
 * one complete "DKIM-Signature: ..." field (folded, no final CRLF) per signer into
 * fields[i] (initialised by the caller).  h= lists the fields present among
 * DKIM_SIGNED_FIELDS, each as often as it occurs, and From once more (over-signing,
 * §8.15).  False with err when the message cannot be read or a signature fails. */
#define DKIM_SIGNED_FIELDS "from:to:cc:subject:date:message-id:mime-version:content-type:" \
	"content-transfer-encoding:reply-to:in-reply-to:references"
bool dkim_sign(int fd, uint64_t offset, uint64_t size, const struct dkim_signer *signers, size_t n, time_t now,
	struct buf *fields, char *err, size_t errlen);

/* The domain a message is signed for (d=, RFC 6376 §6.1.1 via DMARC alignment): that of
 * the mailbox of its one From: field (RFC 5322 §3.6.2), lower case.  False when the
 * header has no From:, several, or one without an address. */
bool dkim_from_domain(int fd, uint64_t offset, uint64_t size, char *out, size_t outsz);

/* ---- Key files (<data_dir>/dkim/<domain>/<selector>.pem) ---- */

struct dkim_key_info {
	char domain[DNS_NAME_MAX];
	char selector[DKIM_SELECTOR_MAX];
	const char *type;                    /* "rsa" | "ed25519" */
	unsigned bits;
	bool active;                         /* false: retired (kept listed, does not sign) */
	time_t created;
	char path[4096];
	char record[1024];                   /* the TXT value: "v=DKIM1; k=...; p=..." */
};
typedef void dkim_key_cb(void *arg, const struct dkim_key_info *k);
/* Every key, sorted by domain then selector.  domain: NULL for all. */
bool dkim_keys_list(const char *data_dir, const char *domain, dkim_key_cb *cb, void *arg, char *err, size_t errlen);
/* A new key (rsa: bits, default 2048; ed25519), written 0600 with O_EXCL: never
 * overwrites.  Fills info on success. */
bool dkim_key_generate(const char *data_dir, const char *domain, const char *selector, enum dkim_alg type,
	unsigned bits, struct dkim_key_info *info, char *err, size_t errlen);
bool dkim_key_retire(const char *data_dir, const char *domain, const char *selector, char *err, size_t errlen);
/* The signers of a domain: the oldest active key of each type (rsa, ed25519), so a key
 * added for a rotation signs only after the old one is retired.  Returns how many
 * were loaded (at most max); free each with dkim_signer_free. */
size_t dkim_signers_for_domain(const char *data_dir, const char *domain, struct dkim_signer *out, size_t max,
	char *err, size_t errlen);
/* The same from memory while the domain's key directory is unchanged (dkim_cache.c):
 * thread-safe, for the signing stage; free each signer handed out with
 * dkim_signer_free. */
struct dkim_key_cache;
struct dkim_key_cache *dkim_key_cache_new(const char *data_dir);
void dkim_key_cache_free(struct dkim_key_cache **c);
size_t dkim_key_cache_signers(struct dkim_key_cache *c, const char *domain, struct dkim_signer *out, size_t max,
	char *err, size_t errlen);

/* ---- Keys held in memory: the PostgreSQL directory's table (serve/ and cli/ read it;
 * mailauth/ never sees the directory) ---- */

struct dkim_key_pem {
	const char *domain, *selector;
	const char *pem;                     /* PKCS#8 PEM private key */
	bool active;
	time_t created;
};
/* Is domain a domain name and selector letters, digits, "-" or "_" (the rules keygen
 * applies to files)?  false with err in words. */
bool dkim_key_names_valid(const char *domain, const char *selector, char *err, size_t errlen);
/* A new key (as dkim_key_generate) as PKCS#8 PEM text into out. */
bool dkim_key_generate_pem(enum dkim_alg type, unsigned bits, struct buf *out, char *err, size_t errlen);
/* What list shows of a key in memory (type, bits, the record); path gets `where`.
 * false when the PEM is not a key (ki still names it, type "unreadable"). */
bool dkim_key_info_from_pem(const struct dkim_key_pem *k, const char *where, struct dkim_key_info *ki);
/* The signers of domain among keys (the same choice as dkim_signers_for_domain: the
 * oldest active key of each type). */
size_t dkim_signers_from_pems(const struct dkim_key_pem *keys, size_t n, const char *domain, struct dkim_signer *out,
	size_t max, char *err, size_t errlen);
/* From now on the cache signs with these keys and never reads the key files: each
 * call replaces the whole set (keys parsed here, once; the texts are not kept).  The
 * caller refreshes it off the signing path (serve/: a thread that reads the
 * directory).  false with err when a key does not parse (the others are taken). */
bool dkim_key_cache_set(struct dkim_key_cache *c, const struct dkim_key_pem *keys, size_t n, char *err,
	size_t errlen);

/* The TXT value split into quoted strings of at most 255 octets (RFC 1035 §3.3.14). */
void dkim_record_zone_text(const char *record, struct buf *out);

#endif
