/* dkim_tags.c - the tag=value lists of DKIM (RFC 6376 §3.2) and the two things written
 * in them: the DKIM-Signature field (§3.5) and the key record published in DNS
 * (§3.6.1, RFC 8463 §4.2).  Strict parsers of untrusted text: every problem is refused
 * with plain words, nothing is guessed. */
#include "mailauth/dkim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static bool is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool fail(char *err, size_t errlen, const char *words)
{
	snprintf(err, errlen, "%s", words);
	return false;
}

/* One tag-spec starting at *pp (§3.2): [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS].
 * The name and value are NUL-terminated in place. */
static bool parse_tag(char **pp, char *end, struct dkim_tag *t, char *err, size_t errlen)
{
	char *p = *pp;
	while (p < end && is_fws(*p))
		p++;
	if (p == end || !isalpha((unsigned char)*p))
		return fail(err, errlen, "a tag name must start with a letter (RFC 6376 section 3.2)");
	char *name = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
		p++;
	char *name_end = p;
	while (p < end && is_fws(*p))
		p++;
	if (p == end || *p != '=')
		return fail(err, errlen, "a tag has no \"=\" after its name (RFC 6376 section 3.2)");
	p++;
	while (p < end && is_fws(*p))
		p++;
	char *value = p;
	while (p < end && *p != ';') {
		unsigned char c = (unsigned char)*p;
		if (!is_fws(*p) && (c < 0x21 || c > 0x7e))
			return fail(err, errlen, "a tag value holds a character that is not allowed (RFC 6376 section 3.2)");
		p++;
	}
	char *value_end = p;
	while (value_end > value && is_fws(value_end[-1]))
		value_end--;
	*pp = p;
	*name_end = '\0';
	*value_end = '\0';
	t->name = name;
	t->value = value;
	t->value_len = (size_t)(value_end - value);
	return true;
}

bool dkim_tags_parse(const char *text, size_t len, struct dkim_tag_list *tl, char *err, size_t errlen)
{
	memset(tl, 0, sizeof(*tl));
	if (len > DKIM_FIELD_MAX)
		return fail(err, errlen, "the tag list is too long");
	if (memchr(text, '\0', len))
		return fail(err, errlen, "the tag list holds a NUL octet");
	tl->copy = malloc(len + 1);
	if (!tl->copy)
		return fail(err, errlen, "out of memory");
	memcpy(tl->copy, text, len);
	tl->copy[len] = '\0';
	char *p = tl->copy, *end = tl->copy + len;
	for (;;) {
		char *q = p;
		while (q < end && is_fws(*q))
			q++;
		if (q == end && tl->n > 0)
			break;   /* a final ";" is allowed */
		if (tl->n == DKIM_TAGS_MAX)
			return fail(err, errlen, "the tag list has too many tags");
		struct dkim_tag *t = &tl->tags[tl->n];
		if (!parse_tag(&p, end, t, err, errlen))
			return false;
		for (size_t i = 0; i < tl->n; i++)
			if (strcmp(tl->tags[i].name, t->name) == 0) {
				snprintf(err, errlen, "the tag \"%.20s\" appears twice (RFC 6376 section 3.2)", t->name);
				return false;
			}
		tl->n++;
		if (p == end)
			break;
		p++;   /* the ";" */
	}
	return true;
}

const struct dkim_tag *dkim_tags_get(const struct dkim_tag_list *tl, const char *name)
{
	for (size_t i = 0; i < tl->n; i++)
		if (strcmp(tl->tags[i].name, name) == 0)
			return &tl->tags[i];
	return NULL;
}

void dkim_tags_free(struct dkim_tag_list *tl)
{
	free(tl->copy);
	tl->copy = NULL;
	tl->n = 0;
}

/* Base64 (RFC 6376 §2.4: FWS may appear anywhere in it) through OpenSSL.  Allocates
 * *out; false when the text is not base64. */
static bool base64_decode(const char *v, size_t len, unsigned char **out, size_t *out_len)
{
	char *clean = malloc(len + 1);
	if (!clean)
		return false;
	size_t n = 0, pad = 0;
	for (size_t i = 0; i < len; i++)
		if (!is_fws(v[i]))
			clean[n++] = v[i];
	clean[n] = '\0';
	*out = malloc(n / 4 * 3 + 1);
	if (n % 4 != 0 || !*out) {
		free(clean);
		free(*out);
		*out = NULL;
		return false;
	}
	for (size_t i = n; i > 0 && clean[i - 1] == '=' && pad < 2; i--)
		pad++;
	int got = n ? EVP_DecodeBlock(*out, (const unsigned char *)clean, (int)n) : 0;
	free(clean);
	if (got < 0 || (size_t)got < pad) {
		free(*out);
		*out = NULL;
		return false;
	}
	*out_len = (size_t)got - pad;
	return true;
}

/* A domain name as DKIM writes it (§3.5 d=, RFC 5321 Domain): labels of letters,
 * digits and hyphens (and "_" in selectors), lower-cased into out. */
static bool domain_copy(const char *v, size_t len, char *out, size_t outsz, bool underscore)
{
	if (len == 0 || len >= outsz || v[0] == '.' || v[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!(isalnum(c) || c == '-' || c == '.' || (underscore && c == '_')))
			return false;
		if (c == '.' && v[i + 1] == '.')
			return false;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return true;
}

static bool digits(const struct dkim_tag *t, size_t maxdigits, uint64_t *out)
{
	if (t->value_len == 0 || t->value_len > maxdigits)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < t->value_len; i++) {
		if (!isdigit((unsigned char)t->value[i]))
			return false;
		v = v * 10 + (uint64_t)(t->value[i] - '0');
	}
	*out = v;
	return true;
}

/* Is `item` one of the colon-separated entries of v (FWS around entries allowed)? */
static bool colon_list_has(const char *v, const char *item)
{
	size_t ilen = strlen(item);
	const char *p = v;
	while (*p) {
		while (is_fws(*p))
			p++;
		const char *s = p;
		while (*p && *p != ':')
			p++;
		const char *e = p;
		while (e > s && is_fws(e[-1]))
			e--;
		if ((size_t)(e - s) == ilen && strncasecmp(s, item, ilen) == 0)
			return true;
		if (*p == ':')
			p++;
	}
	return false;
}


/* §3.5 h=: the signed field names, lower case.  It must contain From (§5.4). */
static bool parse_signed_headers(const struct dkim_tag *t, struct dkim_signature *sig, char *err, size_t errlen)
{
	const char *p = t->value;
	while (*p) {
		while (is_fws(*p))
			p++;
		const char *s = p;
		while (*p && *p != ':')
			p++;
		const char *e = p;
		while (e > s && is_fws(e[-1]))
			e--;
		size_t n = (size_t)(e - s);
		if (n == 0 || n >= sizeof(sig->headers[0]))
			return fail(err, errlen, "the h= tag lists an empty or overlong field name");
		if (sig->nheaders == DKIM_SIGNED_HEADERS_MAX)
			return fail(err, errlen, "the h= tag lists too many fields");
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c <= 0x20 || c > 0x7e || c == ':')
				return fail(err, errlen, "the h= tag lists a field name with a character not allowed in one");
			sig->headers[sig->nheaders][i] = (char)tolower(c);
		}
		sig->headers[sig->nheaders][n] = '\0';
		sig->nheaders++;
		if (*p == ':')
			p++;
	}
	for (size_t i = 0; i < sig->nheaders; i++)
		if (strcmp(sig->headers[i], "from") == 0)
			return true;
	return fail(err, errlen, "the signature does not cover the From: field (RFC 6376 section 5.4: h= must contain from)");
}

/* a= (§3.5, RFC 8301 §3.1, RFC 8463 §3). */
static bool parse_algorithm(const struct dkim_tag *t, struct dkim_signature *sig, char *err, size_t errlen)
{
	snprintf(sig->algorithm, sizeof(sig->algorithm), "%.*s", (int)t->value_len, t->value);
	for (char *c = sig->algorithm; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strcmp(sig->algorithm, "rsa-sha256") == 0)
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (strcmp(sig->algorithm, "ed25519-sha256") == 0)
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else if (strcmp(sig->algorithm, "rsa-sha1") == 0)
		return fail(err, errlen, "rsa-sha1 is not accepted (RFC 8301): SHA-1 signatures can be forged");
	else {
		snprintf(err, errlen, "the signing algorithm \"%.31s\" is not known", sig->algorithm);
		return false;
	}
	return true;
}

/* c= (§3.5): header[/body], each "simple" or "relaxed"; default simple/simple. */
static bool parse_canon(const struct dkim_tag *t, struct dkim_signature *sig)
{
	sig->header_canon = sig->body_canon = DKIM_CANON_SIMPLE;
	if (!t)
		return true;
	const char *slash = strchr(t->value, '/');
	size_t hlen = slash ? (size_t)(slash - t->value) : t->value_len;
	for (int part = 0; part < 2; part++) {
		const char *v = part == 0 ? t->value : slash + 1;
		size_t n = part == 0 ? hlen : strlen(slash + 1);
		enum dkim_canon *c = part == 0 ? &sig->header_canon : &sig->body_canon;
		if (n == 6 && strncasecmp(v, "simple", 6) == 0)
			*c = DKIM_CANON_SIMPLE;
		else if (n == 7 && strncasecmp(v, "relaxed", 7) == 0)
			*c = DKIM_CANON_RELAXED;
		else
			return false;
		if (!slash)
			break;
	}
	return true;
}

/* i= (§3.5): [local-part] "@" domain, the domain d= or a subdomain of it. */
static bool parse_identity(const struct dkim_tag *t, struct dkim_signature *sig, char *err, size_t errlen)
{
	if (!t) {
		snprintf(sig->identity, sizeof(sig->identity), "@%s", sig->domain);
		return true;
	}
	const char *at = strrchr(t->value, '@');
	char idom[DNS_NAME_MAX];
	if (!at || t->value_len >= sizeof(sig->identity)
		|| !domain_copy(at + 1, strlen(at + 1), idom, sizeof(idom), false))
		return fail(err, errlen, "the i= tag is not an identity of the form [local]@domain");
	size_t il = strlen(idom), dl = strlen(sig->domain);
	if (!(il == dl && strcmp(idom, sig->domain) == 0)
		&& !(il > dl && idom[il - dl - 1] == '.' && strcmp(idom + il - dl, sig->domain) == 0)) {
		snprintf(err, errlen, "the identity i= (%.80s) is not in the signing domain d=%.80s (RFC 6376 section 3.5)",
			idom, sig->domain);
		return false;
	}
	snprintf(sig->identity, sizeof(sig->identity), "%.*s@%s", (int)(at - t->value), t->value, idom);
	return true;
}

/* The tags every signature must have (§3.5 "REQUIRED") and their plain checks. */
static bool parse_required(const struct dkim_tag_list *tl, struct dkim_signature *sig, char *err, size_t errlen)
{
	static const char *required[] = { "v", "a", "b", "bh", "d", "h", "s" };
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!dkim_tags_get(tl, required[i])) {
			snprintf(err, errlen, "the signature has no %s= tag, which RFC 6376 section 3.5 requires", required[i]);
			return false;
		}
	const struct dkim_tag *v = dkim_tags_get(tl, "v");
	if (strcmp(v->value, "1") != 0)
		return fail(err, errlen, "the signature's version v= is not 1");
	if (!parse_algorithm(dkim_tags_get(tl, "a"), sig, err, errlen))
		return false;
	const struct dkim_tag *d = dkim_tags_get(tl, "d"), *s = dkim_tags_get(tl, "s");
	if (!domain_copy(d->value, d->value_len, sig->domain, sizeof(sig->domain), true))
		return fail(err, errlen, "the signing domain d= is not a domain name");
	if (!domain_copy(s->value, s->value_len, sig->selector, sizeof(sig->selector), true))
		return fail(err, errlen, "the selector s= is not a valid selector");
	const struct dkim_tag *b = dkim_tags_get(tl, "b"), *bh = dkim_tags_get(tl, "bh");
	size_t k = 0;
	for (size_t i = 0; i < b->value_len && k < 12; i++)
		if (!is_fws(b->value[i]))
			sig->header_b[k++] = b->value[i];
	sig->header_b[k] = '\0';
	if (!base64_decode(b->value, b->value_len, &sig->b, &sig->b_len) || sig->b_len == 0)
		return fail(err, errlen, "the signature data b= is not base64");
	unsigned char *bhv = NULL;
	size_t bhl = 0;
	if (!base64_decode(bh->value, bh->value_len, &bhv, &bhl) || bhl != 32) {
		free(bhv);
		return fail(err, errlen, "the body hash bh= is not a base64 SHA-256 hash");
	}
	memcpy(sig->bh, bhv, bhl);
	sig->bh_len = bhl;
	free(bhv);
	return parse_signed_headers(dkim_tags_get(tl, "h"), sig, err, errlen);
}

static bool parse_optional(const struct dkim_tag_list *tl, struct dkim_signature *sig, char *err, size_t errlen)
{
	if (!parse_canon(dkim_tags_get(tl, "c"), sig))
		return fail(err, errlen, "the canonicalisation c= is not simple or relaxed (RFC 6376 section 3.5)");
	if (!parse_identity(dkim_tags_get(tl, "i"), sig, err, errlen))
		return false;
	const struct dkim_tag *q = dkim_tags_get(tl, "q"), *l = dkim_tags_get(tl, "l");
	const struct dkim_tag *t = dkim_tags_get(tl, "t"), *x = dkim_tags_get(tl, "x");
	if (q && !colon_list_has(q->value, "dns/txt"))
		return fail(err, errlen, "the key query method q= does not include dns/txt");
	if (l && !(sig->has_length = digits(l, 18, &sig->length)))
		return fail(err, errlen, "the body length l= is not a number");
	if (t && !(sig->has_timestamp = digits(t, 12, &sig->timestamp)))
		return fail(err, errlen, "the timestamp t= is not a number");
	if (x && !(sig->has_expiry = digits(x, 12, &sig->expiry)))
		return fail(err, errlen, "the expiry x= is not a number");
	if (t && x && sig->expiry <= sig->timestamp)
		return fail(err, errlen, "the signature expires (x=) before it was made (t=) (RFC 6376 section 3.5)");
	return true;
}

bool dkim_signature_parse(const char *value, size_t len, struct dkim_signature *sig, char *err, size_t errlen)
{
	memset(sig, 0, sizeof(*sig));
	struct dkim_tag_list tl;
	bool ok = dkim_tags_parse(value, len, &tl, err, errlen)
		&& parse_required(&tl, sig, err, errlen) && parse_optional(&tl, sig, err, errlen);
	dkim_tags_free(&tl);
	if (!ok)
		dkim_signature_free(sig);
	return ok;
}

void dkim_signature_free(struct dkim_signature *sig)
{
	free(sig->b);
	sig->b = NULL;
	sig->b_len = 0;
}

/* The key record (§3.6.1): v=DKIM1 first if present, h= must allow sha256, k= rsa or
 * ed25519, s= must allow email, t= flags y and s, p= the key (empty: revoked). */
static bool key_record_tags(const struct dkim_tag_list *tl, struct dkim_key_record *kr, char *err, size_t errlen)
{
	const struct dkim_tag *v = dkim_tags_get(tl, "v"), *h = dkim_tags_get(tl, "h");
	const struct dkim_tag *k = dkim_tags_get(tl, "k"), *s = dkim_tags_get(tl, "s");
	const struct dkim_tag *t = dkim_tags_get(tl, "t"), *p = dkim_tags_get(tl, "p");
	if (v && (v != &tl->tags[0] || strcmp(v->value, "DKIM1") != 0))
		return fail(err, errlen, "the key record's v= is not DKIM1 as its first tag (RFC 6376 section 3.6.1)");
	if (h && !colon_list_has(h->value, "sha256"))
		return fail(err, errlen, "the key record's h= does not allow sha256");
	kr->key_type = DKIM_ALG_RSA_SHA256;
	if (k && strcasecmp(k->value, "ed25519") == 0)
		kr->key_type = DKIM_ALG_ED25519_SHA256;
	else if (k && strcasecmp(k->value, "rsa") != 0)
		return fail(err, errlen, "the key record's key type k= is neither rsa nor ed25519");
	if (s && !colon_list_has(s->value, "*") && !colon_list_has(s->value, "email"))
		return fail(err, errlen, "the key record's service type s= does not include email");
	if (t) {
		kr->testing = colon_list_has(t->value, "y");
		kr->strict_identity = colon_list_has(t->value, "s");
	}
	if (!p)
		return fail(err, errlen, "the key record has no p= tag (RFC 6376 section 3.6.1)");
	if (p->value_len == 0) {
		kr->revoked = true;
		return true;
	}
	if (!base64_decode(p->value, p->value_len, &kr->key, &kr->key_len) || kr->key_len == 0)
		return fail(err, errlen, "the key record's public key p= is not base64");
	return true;
}

bool dkim_key_record_parse(const char *text, size_t len, struct dkim_key_record *kr, char *err, size_t errlen)
{
	memset(kr, 0, sizeof(*kr));
	struct dkim_tag_list tl;
	bool ok = dkim_tags_parse(text, len, &tl, err, errlen) && key_record_tags(&tl, kr, err, errlen);
	dkim_tags_free(&tl);
	if (!ok)
		dkim_key_record_free(kr);
	return ok;
}

void dkim_key_record_free(struct dkim_key_record *kr)
{
	free(kr->key);
	kr->key = NULL;
	kr->key_len = 0;
}
