/* dkim_verify.c - checking the DKIM signatures of a message (RFC 6376 §6), with the
 * algorithm rules of RFC 8301 (no rsa-sha1, RSA keys of 1024 bits at least) and
 * ed25519-sha256 (RFC 8463).  Each signature gets an RFC 8601 result and plain words
 * saying why, so an administrator reading Authentication-Results or a log knows what
 * to change. */
#include "mailauth/dkim_internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define RSA_MIN_BITS 1024   /* RFC 8301 §3.2 */

const char *dkim_result_name(enum dkim_result r)
{
	static const char *names[] = { "none", "pass", "fail", "neutral", "policy", "temperror", "permerror" };
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "none";
}

static void say(struct dkim_outcome *o, enum dkim_result r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct dkim_outcome *o, enum dkim_result r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	o->result = r;
	vsnprintf(o->words, sizeof(o->words), fmt, ap);
	va_end(ap);
}

static bool past(const struct timespec *deadline)
{
	if (deadline->tv_sec == 0 && deadline->tv_nsec == 0)
		return false;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* The public key from p= (§3.6.1): RSA as SubjectPublicKeyInfo (what everyone
 * publishes) or a bare RSAPublicKey; Ed25519 as the raw 32 octets (RFC 8463 §4.2). */
static EVP_PKEY *public_key(const struct dkim_key_record *kr)
{
	const unsigned char *p = kr->key;
	if (kr->key_type == DKIM_ALG_ED25519_SHA256)
		return kr->key_len == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, kr->key, 32) : NULL;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)kr->key_len);
	if (!k) {
		p = kr->key;
		k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)kr->key_len);
	}
	if (k && EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

/* Look up <s>._domainkey.<d> (§3.6.2.1) and parse the first usable record. */
static bool fetch_key(const struct dkim_verify_options *o, const struct dkim_signature *sig,
	struct dkim_key_record *kr, struct dkim_outcome *out)
{
	char name[DNS_NAME_MAX + DKIM_SELECTOR_MAX + 16];
	snprintf(name, sizeof(name), "%s._domainkey.%s", sig->selector, sig->domain);
	if (past(&o->deadline)) {
		say(out, DKIM_TEMPERROR, "no time was left to look up the key record %s", name);
		return false;
	}
	struct dns_result res;
	if (o->lookup)
		o->lookup(o->lookup_arg, name, &res);
	else
		dns_lookup(o->resolver, DNS_TXT, name, &res);
	bool found = false;
	char why[DKIM_WORDS_MAX] = "";
	if (res.rcode == DNS_NXDOMAIN || (res.rcode == DNS_NOERROR && res.n == 0))
		say(out, DKIM_PERMERROR, "the key record %s was not found (no key)", name);
	else if (res.rcode != DNS_NOERROR)
		say(out, DKIM_TEMPERROR, "the key record %s could not be looked up: %s%s%s", name,
			res.rcode == DNS_TIMEOUT ? "the DNS did not answer in time" : dns_rcode_name(res.rcode),
			res.error[0] ? ": " : "", res.error);
	else {
		for (size_t i = 0; i < res.n && !found; i++)
			found = dkim_key_record_parse(res.rr[i].u.txt.text, res.rr[i].u.txt.len, kr, why, sizeof(why));
		if (!found)
			say(out, DKIM_PERMERROR, "the key record %s is not usable: %s", name, why);
	}
	dns_result_free(&res);
	return found;
}

/* The key record's own rules against the signature (§3.6.1, §6.1.2, RFC 8301 §3.2). */
static EVP_PKEY *usable_key(const struct dkim_signature *sig, const struct dkim_key_record *kr,
	struct dkim_outcome *out)
{
	const char *name = sig->selector;
	out->key_testing = kr->testing;
	if (kr->revoked) {
		say(out, DKIM_PERMERROR, "the key %s._domainkey.%s has been revoked (its p= is empty)", name, sig->domain);
		return NULL;
	}
	if (kr->key_type != sig->alg) {
		say(out, DKIM_PERMERROR, "the key %s._domainkey.%s is of another type than the signature's %s",
			name, sig->domain, sig->algorithm);
		return NULL;
	}
	const char *at = strrchr(sig->identity, '@');
	if (kr->strict_identity && at && strcmp(at + 1, sig->domain) != 0) {
		say(out, DKIM_PERMERROR, "the key record says t=s, but the identity i= is in a subdomain of %s", sig->domain);
		return NULL;
	}
	EVP_PKEY *k = public_key(kr);
	if (!k) {
		say(out, DKIM_PERMERROR, "the public key in %s._domainkey.%s cannot be read", name, sig->domain);
		return NULL;
	}
	if (sig->alg == DKIM_ALG_RSA_SHA256 && EVP_PKEY_get_bits(k) < RSA_MIN_BITS) {
		say(out, DKIM_PERMERROR, "the RSA key %s._domainkey.%s has %d bits; RFC 8301 requires at least %d",
			name, sig->domain, EVP_PKEY_get_bits(k), RSA_MIN_BITS);
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

/* The DKIM-Signature field with the value of its b= tag removed (§3.7). */
static void without_b(const struct dkim_field *f, struct buf *out)
{
	size_t vlen;
	const char *v = dkim_field_value(f, &vlen), *end = v + vlen;
	buf_append(out, f->p, (size_t)(v - f->p));
	const char *p = v;
	while (p < end) {
		const char *spec = p;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *spec_end = semi ? semi : end;
		const char *n = spec;
		while (n < spec_end && (*n == ' ' || *n == '\t' || *n == '\r' || *n == '\n'))
			n++;
		const char *eq = memchr(n, '=', (size_t)(spec_end - n));
		const char *ne = eq ? eq : n;
		while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t' || ne[-1] == '\r' || ne[-1] == '\n'))
			ne--;
		if (eq && ne - n == 1 && *n == 'b')
			buf_append(out, spec, (size_t)(eq + 1 - spec));
		else
			buf_append(out, spec, (size_t)(spec_end - spec));
		if (semi)
			buf_appendc(out, ';');
		p = semi ? semi + 1 : end;
	}
}

static bool check_signature(EVP_PKEY *k, const struct dkim_signature *sig, const struct buf *data)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;
	if (!ctx)
		return false;
	if (sig->alg == DKIM_ALG_RSA_SHA256) {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1
			&& EVP_DigestVerify(ctx, sig->b, sig->b_len, (const unsigned char *)data->data, data->len) == 1;
	} else {
		/* RFC 8463 §3: Ed25519 signs the SHA-256 hash of the header input. */
		unsigned char h[32];
		unsigned int hl = 0;
		ok = EVP_Digest(data->data, data->len, h, &hl, EVP_sha256(), NULL) == 1
			&& EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1
			&& EVP_DigestVerify(ctx, sig->b, sig->b_len, h, hl) == 1;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Body then header, the order of §6.1.3 (the body hash is cheap to compare). */
static void verify_one(int fd, struct dkim_msg *m, struct dkim_field *f, const struct dkim_signature *sig,
	const struct dkim_verify_options *o, struct dkim_outcome *out)
{
	unsigned char bh[32];
	uint64_t canon_len = 0;
	char err[256];
	if (!dkim_body_hash(fd, m, sig->body_canon, sig->has_length, sig->length, bh, &canon_len, err, sizeof(err))) {
		say(out, DKIM_TEMPERROR, "%s", err);
		return;
	}
	if (sig->has_length && canon_len < sig->length) {
		say(out, DKIM_FAIL, "the body is shorter than the signed length l=%llu: it was changed after signing",
			(unsigned long long)sig->length);
		return;
	}
	if (memcmp(bh, sig->bh, 32) != 0) {
		say(out, DKIM_FAIL, "the body was changed after signing (its hash is not the one in bh=)");
		return;
	}
	struct dkim_key_record kr;
	if (!fetch_key(o, sig, &kr, out))
		return;
	EVP_PKEY *k = usable_key(sig, &kr, out);
	dkim_key_record_free(&kr);
	if (!k)
		return;
	struct buf sf, data;
	buf_init(&sf, DKIM_FIELD_MAX);
	buf_init(&data, 2 * DKIM_HEADER_MAX);
	without_b(f, &sf);
	bool ok = dkim_header_input(m, sig->header_canon, (const char (*)[64])sig->headers, sig->nheaders,
		sf.data ? sf.data : "", sf.len, &data);
	if (!ok)
		say(out, DKIM_PERMERROR, "the signed header fields could not be put in canonical form");
	else if (!check_signature(k, sig, &data))
		say(out, DKIM_FAIL, "the signature does not match: a signed header field was changed after signing");
	else
		say(out, DKIM_PASS, "signed by %s with the key %s._domainkey.%s%s%s", sig->domain, sig->selector,
			sig->domain, sig->has_length ? "; only part of the body is signed (l=), more may have been added" : "",
			kr.testing ? "; the key is in testing mode (t=y)" : "");
	EVP_PKEY_free(k);
	buf_free(&sf);
	buf_free(&data);
}

static void evaluate(int fd, struct dkim_msg *m, struct dkim_field *f, const struct dkim_verify_options *o,
	time_t now, struct dkim_outcome *out)
{
	struct dkim_signature sig;
	char err[256];
	size_t vlen;
	const char *v = dkim_field_value(f, &vlen);
	memset(out, 0, sizeof(*out));
	if (!dkim_signature_parse(v, vlen, &sig, err, sizeof(err))) {
		say(out, DKIM_PERMERROR, "the DKIM-Signature field is not valid: %s", err);
		return;
	}
	snprintf(out->domain, sizeof(out->domain), "%s", sig.domain);
	snprintf(out->selector, sizeof(out->selector), "%s", sig.selector);
	snprintf(out->algorithm, sizeof(out->algorithm), "%s", sig.algorithm);
	snprintf(out->identity, sizeof(out->identity), "%s", sig.identity);
	snprintf(out->header_b, sizeof(out->header_b), "%s", sig.header_b);
	out->body_length_limited = sig.has_length;
	if (sig.has_expiry && (uint64_t)now > sig.expiry)
		say(out, DKIM_PERMERROR, "the signature expired (x=%llu is in the past)", (unsigned long long)sig.expiry);
	else
		verify_one(fd, m, f, &sig, o, out);
	dkim_signature_free(&sig);
}

size_t dkim_verify(int fd, uint64_t offset, uint64_t size, const struct dkim_verify_options *o,
	struct dkim_outcome *out, size_t max_out)
{
	struct dkim_msg m;
	char err[256];
	size_t limit = o->max_signatures ? o->max_signatures : DKIM_MAX_SIGNATURES_DEFAULT;
	if (limit > max_out)
		limit = max_out;
	if (limit == 0)
		return 0;
	if (!dkim_msg_read(fd, offset, size, &m, err, sizeof(err))) {
		memset(out, 0, sizeof(*out));
		say(out, DKIM_PERMERROR, "%s", err);
		return 1;
	}
	time_t now = o->now ? o->now : time(NULL);
	size_t n = 0;
	for (size_t i = 0; i < m.nfields && n < limit; i++)
		if (dkim_field_is(&m.fields[i], "dkim-signature"))
			evaluate(fd, &m, &m.fields[i], o, now, &out[n++]);
	dkim_msg_free(&m);
	return n;
}

size_t dkim_verify_path(const char *path, const struct dkim_verify_options *o, struct dkim_outcome *out,
	size_t max_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (max_out == 0)
			return 0;
		memset(out, 0, sizeof(*out));
		say(out, DKIM_TEMPERROR, "cannot open the message to verify it");
		return 1;
	}
	size_t n = dkim_verify(fd, 0, DKIM_TO_END_OF_FILE, o, out, max_out);
	close(fd);
	return n;
}
