/* dkim_sign.c - making DKIM-Signature fields (RFC 6376 §5): rsa-sha256 and
 * ed25519-sha256 (RFC 8463), relaxed/relaxed, the fields receivers expect signed with
 * From over-signed (§8.15), t= set, never l= (§8.2: l= lets anyone append content). */
#include "mailauth/dkim_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "msg/header.h"

#define LINE_WIDTH 76

/* RSA or Ed25519 only (RFC 6376 §3.3, RFC 8463). */
static bool signer_take(struct dkim_signer *s, EVP_PKEY *k, const char *domain, const char *selector,
	const char *what, char *err, size_t errlen)
{
	if (!k) {
		snprintf(err, errlen, "the DKIM key %s is not a PEM private key", what);
		return false;
	}
	int id = EVP_PKEY_get_base_id(k);
	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		snprintf(err, errlen, "the DKIM key %s is neither RSA nor Ed25519", what);
		return false;
	}
	s->alg = id == EVP_PKEY_RSA ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	snprintf(s->selector, sizeof(s->selector), "%s", selector);
	s->pkey = k;
	return true;
}

bool dkim_signer_load(struct dkim_signer *s, const char *domain, const char *selector, const char *pem_path,
	char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	FILE *f = fopen(pem_path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open the DKIM key %s", pem_path);
		return false;
	}
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return signer_take(s, k, domain, selector, pem_path, err, errlen);
}

bool dkim_signer_load_pem(struct dkim_signer *s, const char *domain, const char *selector, const char *pem,
	char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	char what[DNS_NAME_MAX + DKIM_SELECTOR_MAX + 8];
	snprintf(what, sizeof(what), "%s of %s", selector, domain);
	return signer_take(s, k, domain, selector, what, err, errlen);
}

void dkim_signer_free(struct dkim_signer *s)
{
	EVP_PKEY_free(s->pkey);
	s->pkey = NULL;
}

/* h=: each field of DKIM_SIGNED_FIELDS as often as it occurs, so every instance is
 * covered; From once more than present, so no second From can be added (§8.15). */
static size_t signed_names(const struct dkim_msg *m, char (*names)[64])
{
	size_t n = 0;
	const char *p = DKIM_SIGNED_FIELDS;
	while (*p && n < DKIM_SIGNED_HEADERS_MAX) {
		size_t len = strcspn(p, ":");
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		size_t count = 0;
		for (size_t i = 0; i < m->nfields; i++)
			count += dkim_field_is(&m->fields[i], name);
		if (strcmp(name, "from") == 0)
			count++;
		for (size_t i = 0; i < count && n < DKIM_SIGNED_HEADERS_MAX; i++)
			snprintf(names[n++], 64, "%s", name);
		p += len + (p[len] == ':');
	}
	return n;
}

/* Append `s`, folding before it (CRLF TAB, RFC 5322 §2.2.3) when the line would pass
 * LINE_WIDTH; *col tracks the current line's width. */
static void fold_append(struct buf *b, size_t *col, const char *s, size_t len)
{
	if (*col + len > LINE_WIDTH && *col > 1) {
		buf_append(b, "\r\n\t", 3);   /* the fold is the white space */
		*col = 1;
		if (len > 0 && *s == ' ') {
			s++;
			len--;
		}
	}
	buf_append(b, s, len);
	*col += len;
}

static void field_without_b(const struct dkim_signer *s, time_t now, const char (*names)[64], size_t n,
	const unsigned char bh[32], struct buf *f)
{
	char bh64[48], part[320];
	EVP_EncodeBlock((unsigned char *)bh64, bh, 32);
	size_t col = 0;
	buf_printf(f, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
		s->alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
	col = f->len;
	snprintf(part, sizeof(part), " d=%.255s;", s->domain);
	fold_append(f, &col, part, strlen(part));
	snprintf(part, sizeof(part), " s=%.63s;", s->selector);
	fold_append(f, &col, part, strlen(part));
	snprintf(part, sizeof(part), " t=%lld;", (long long)now);
	fold_append(f, &col, part, strlen(part));
	fold_append(f, &col, " h=", 3);
	for (size_t i = 0; i < n; i++) {
		snprintf(part, sizeof(part), "%.63s%s", names[i], i + 1 < n ? ":" : ";");
		fold_append(f, &col, part, strlen(part));
	}
	snprintf(part, sizeof(part), " bh=%s;", bh64);
	fold_append(f, &col, part, strlen(part));
	fold_append(f, &col, " b=", 3);
}

static bool sign_data(const struct dkim_signer *s, const struct buf *data, unsigned char *sig, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;
	if (!ctx)
		return false;
	if (s->alg == DKIM_ALG_RSA_SHA256) {
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->pkey) == 1
			&& EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)data->data, data->len) == 1;
	} else {
		/* RFC 8463 §3: Ed25519 over the SHA-256 hash of the header input. */
		unsigned char h[32];
		unsigned int hl = 0;
		ok = EVP_Digest(data->data, data->len, h, &hl, EVP_sha256(), NULL) == 1
			&& EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->pkey) == 1
			&& EVP_DigestSign(ctx, sig, siglen, h, hl) == 1;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* One signature: the field without b=, the header input over it, the signature
 * appended base64 in folded lines. */
static bool sign_one(struct dkim_msg *m, const struct dkim_signer *s, time_t now, const char (*names)[64],
	size_t n, const unsigned char bh[32], struct buf *out)
{
	struct buf data;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	if ((size_t)EVP_PKEY_get_size(s->pkey) > sizeof(sig))
		return false;
	buf_reset(out);
	field_without_b(s, now, names, n, bh, out);
	buf_init(&data, 2 * DKIM_HEADER_MAX);
	bool ok = !out->truncated && dkim_header_input(m, DKIM_CANON_RELAXED, names, n, out->data, out->len, &data)
		&& sign_data(s, &data, sig, &siglen);
	buf_free(&data);
	if (!ok)
		return false;
	char b64[1400];
	int len = EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	size_t col = 4;   /* after the fold " b=" started, roughly */
	for (int i = 0; i < len; i += 64) {
		size_t chunk = (size_t)(len - i) < 64 ? (size_t)(len - i) : 64;
		fold_append(out, &col, b64 + i, chunk);
	}
	return !out->truncated;
}

bool dkim_sign(int fd, uint64_t offset, uint64_t size, const struct dkim_signer *signers, size_t n, time_t now,
	struct buf *fields, char *err, size_t errlen)
{
	struct dkim_msg m;
	if (!dkim_msg_read(fd, offset, size, &m, err, errlen))
		return false;
	char names[DKIM_SIGNED_HEADERS_MAX][64];
	size_t nnames = signed_names(&m, names);
	unsigned char bh[32];
	uint64_t canon_len;
	bool ok = dkim_body_hash(fd, &m, DKIM_CANON_RELAXED, false, 0, bh, &canon_len, err, errlen);
	for (size_t i = 0; ok && i < n; i++)
		if (!(ok = sign_one(&m, &signers[i], now, (const char (*)[64])names, nnames, bh, &fields[i])))
			snprintf(err, errlen, "the %s signature for %s (selector %s) could not be made",
				signers[i].alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256",
				signers[i].domain, signers[i].selector);
	dkim_msg_free(&m);
	return ok;
}

bool dkim_from_domain(int fd, uint64_t offset, uint64_t size, char *out, size_t outsz)
{
	struct msg_field_scan *sc = malloc(sizeof(*sc));
	struct msg_address_list *al = malloc(sizeof(*al));
	char chunk[8192];
	bool ok = false;
	if (sc && al) {
		msg_field_scan_init(sc, "From");
		uint64_t off = 0;
		while (!sc->done && off < size && off < DKIM_HEADER_MAX) {
			size_t want = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
			ssize_t got = pread(fd, chunk, want, (off_t)(offset + off));
			if (got <= 0)
				break;
			msg_field_scan_feed(sc, chunk, (size_t)got);
			off += (uint64_t)got;
		}
		const char *v;
		size_t vlen;
		if (sc->count == 1 && msg_field_scan_value(sc, &v, &vlen) && msg_parse_address_list(v, vlen, al) == MSG_OK
			&& al->n > 0) {
			const char *at = strrchr(al->mailboxes[0].addr, '@');
			ok = at && (size_t)snprintf(out, outsz, "%s", at + 1) < outsz;
		}
	}
	free(sc);
	free(al);
	return ok;
}
