/* sasl.c - SASL PLAIN and LOGIN server exchanges (see sasl.h). */
#include "auth/sasl.h"

#include <openssl/evp.h>
#include <string.h>

#include "util/parse.h"

/* LOGIN's challenges are the base64 of "Username:" and "Password:". */
#define LOGIN_USER_CHALLENGE "VXNlcm5hbWU6"
#define LOGIN_PASS_CHALLENGE "UGFzc3dvcmQ6"

bool sasl_mech_from_name(const char *name, size_t n, enum sasl_mech *out)
{
	if (n == 5 && ascii_ieq(name, "PLAIN", 5)) {
		*out = SASL_PLAIN;
		return true;
	}
	if (n == 5 && ascii_ieq(name, "LOGIN", 5)) {
		*out = SASL_LOGIN;
		return true;
	}
	return false;
}

const char *sasl_mech_name(enum sasl_mech m)
{
	return m == SASL_PLAIN ? "PLAIN" : "LOGIN";
}

bool sasl_base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz, size_t *outlen)
{
	if (n % 4 != 0 || n / 4 * 3 > outsz || n > SASL_LINE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
		/* '=' only as padding: the last one or two characters. */
		if (c == '=')
			ok = i >= n - 2 && (i == n - 1 || in[n - 1] == '=');
		if (!ok)
			return false;
	}
	if (n == 0) {
		*outlen = 0;
		return true;
	}
	int r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (r < 0)
		return false;
	/* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
	size_t pad = (in[n - 1] == '=') + (in[n - 2] == '=');
	*outlen = (size_t)r - pad;
	return true;
}

static enum sasl_status decode(const char *line, size_t n, unsigned char *out, size_t outsz, size_t *outlen)
{
	if (n == 1 && line[0] == '*')
		return SASL_CANCELLED;
	return sasl_base64_decode(line, n, out, outsz, outlen) ? SASL_DONE : SASL_BAD_BASE64;
}

/* Copy a credential that must not contain NUL, CR or LF. */
static bool take(char *dst, size_t dstsz, const unsigned char *p, size_t n)
{
	if (n >= dstsz || memchr(p, '\0', n) || memchr(p, '\r', n) || memchr(p, '\n', n))
		return false;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return true;
}

/* RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static enum sasl_status plain_message(struct sasl_exchange *x, const unsigned char *m, size_t n)
{
	const unsigned char *nul1 = memchr(m, '\0', n);
	if (!nul1)
		return SASL_MALFORMED;
	size_t zlen = (size_t)(nul1 - m);
	const unsigned char *u = nul1 + 1;
	size_t rest = n - zlen - 1;
	const unsigned char *nul2 = memchr(u, '\0', rest);
	if (!nul2)
		return SASL_MALFORMED;
	size_t ulen = (size_t)(nul2 - u);
	const unsigned char *p = nul2 + 1;
	size_t plen = rest - ulen - 1;
	if (ulen == 0 || plen == 0 || !take(x->user, sizeof(x->user), u, ulen) || !take(x->pass, sizeof(x->pass), p, plen))
		return SASL_MALFORMED;
	/* Acting as another identity is not offered; the same identity is harmless. */
	if (zlen && (zlen != ulen || memcmp(m, u, ulen) != 0))
		return SASL_AUTHZID;
	return SASL_DONE;
}

static enum sasl_status feed(struct sasl_exchange *x, const char *line, size_t n)
{
	unsigned char dec[SASL_LINE_MAX];
	size_t dlen;
	enum sasl_status st = decode(line, n, dec, sizeof(dec), &dlen);
	if (st != SASL_DONE)
		return st;
	if (x->mech == SASL_PLAIN) {
		st = plain_message(x, dec, dlen);
	} else if (x->step == 0) {
		st = dlen && take(x->user, sizeof(x->user), dec, dlen) ? SASL_CONTINUE : SASL_MALFORMED;
		x->step = 1;
	} else {
		st = dlen && take(x->pass, sizeof(x->pass), dec, dlen) ? SASL_DONE : SASL_MALFORMED;
	}
	OPENSSL_cleanse(dec, sizeof(dec));
	return st;
}

enum sasl_status sasl_start(struct sasl_exchange *x, enum sasl_mech m, bool has_initial,
	const char *initial, size_t n)
{
	memset(x, 0, sizeof(*x));
	x->mech = m;
	if (!has_initial)
		return SASL_CONTINUE;   /* PLAIN: empty challenge; LOGIN: "Username:" */
	if (n == 1 && initial[0] == '=') {
		/* An empty initial response: nothing for either mechanism. */
		return m == SASL_PLAIN ? SASL_MALFORMED : SASL_CONTINUE;
	}
	return feed(x, initial, n);
}

enum sasl_status sasl_step(struct sasl_exchange *x, const char *line, size_t n)
{
	return feed(x, line, n);
}

const char *sasl_challenge(const struct sasl_exchange *x)
{
	if (x->mech == SASL_PLAIN)
		return "";
	return x->step == 0 ? LOGIN_USER_CHALLENGE : LOGIN_PASS_CHALLENGE;
}

void sasl_clear(struct sasl_exchange *x)
{
	OPENSSL_cleanse(x, sizeof(*x));
}
