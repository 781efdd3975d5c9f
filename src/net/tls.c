/* tls.c - server TLS contexts (see tls.h). */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/log.h"

struct sni_entry {
	SSL_CTX *ctx;
	const struct conf_certificate *cert;
};

struct tls {
	SSL_CTX *def;
	struct sni_entry sni[CONF_MAX_CERTS];
	size_t n_sni;
};

void tls_last_error(unsigned long code, char *out, size_t outsz)
{
	if (!code)
		code = ERR_peek_last_error();
	if (!code) {
		snprintf(out, outsz, "%s", "");
		return;
	}
	ERR_error_string_n(code, out, outsz);
}

static void openssl_error(char *err, size_t errlen, const char *what, const char *path)
{
	char e[256];
	tls_last_error(0, e, sizeof(e));
	snprintf(err, errlen, "%s %s: %s", what, path, e[0] ? e : strerror(errno));
	ERR_clear_error();
}

/* Does the SNI name match a configured name ("*.example.org" covers one label)? */
static bool name_matches(const char *pattern, const char *name)
{
	if (strncmp(pattern, "*.", 2) == 0) {
		const char *dot = strchr(name, '.');
		return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, name) == 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	(void)alert;
	struct tls *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (!name)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < t->n_sni; i++)
		for (size_t j = 0; j < t->sni[i].cert->n_names; j++)
			if (name_matches(t->sni[i].cert->names[j], name)) {
				SSL_set_SSL_CTX(ssl, t->sni[i].ctx);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK;   /* unknown name: the default certificate */
}

static SSL_CTX *make_ctx(const struct conf *c, const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		openssl_error(err, errlen, "cannot create a TLS context for", cert);
		return NULL;
	}
	/* TLS 1.2 and 1.3 only (RFC 8996 retired the older ones). */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);   /* kilobytes per idle TLS connection */
	if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		openssl_error(err, errlen, "[tls] ciphers: no usable cipher in", c->tls_ciphers);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_error(err, errlen, "cannot load the certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		openssl_error(err, errlen, "cannot load the private key (or it does not match the certificate)", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static bool write_pem(const char *path, mode_t mode, bool is_key, EVP_PKEY *pk, X509 *x)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return false;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return false;
	}
	bool ok = is_key ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1 : PEM_write_X509(f, x) == 1;
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	fclose(f);
	return ok;
}

/* A P-256 key and a one-year certificate for the host name, with it as SAN. */
static bool generate_selfsigned(const struct conf *c, const char *crt, const char *key, char *err, size_t errlen)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	bool ok = pk && x;
	unsigned char serial[16];
	if (ok && RAND_bytes(serial, sizeof(serial)) == 1) {
		serial[0] &= 0x7f;
		BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
		ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
		BN_free(bn);
	}
	ok = ok && X509_set_version(x, 2) == 1;
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	ok = ok && X509_set_pubkey(x, pk) == 1;
	X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
	ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)c->hostname, -1, -1, 0) == 1;
	ok = ok && X509_set_issuer_name(x, name) == 1;
	char san[CONF_NAME_MAX + 8];
	snprintf(san, sizeof(san), "DNS:%s", c->hostname);
	X509_EXTENSION *ext = ok ? X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san) : NULL;
	ok = ok && ext && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	ok = ok && X509_sign(x, pk, EVP_sha256()) > 0;
	ok = ok && write_pem(key, 0600, true, pk, NULL) && write_pem(crt, 0644, false, NULL, x);
	if (!ok)
		openssl_error(err, errlen, "cannot generate a self-signed certificate in", crt);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ok;
}

bool tls_init(struct tls **tp, const struct conf *c, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct tls *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	char crt[CONF_PATH_MAX + 32], key[CONF_PATH_MAX + 32];
	if (c->tls_certificate[0]) {
		snprintf(crt, sizeof(crt), "%s", c->tls_certificate);
		snprintf(key, sizeof(key), "%s", c->tls_key);
	} else {
		char dir[CONF_PATH_MAX + 8];
		snprintf(dir, sizeof(dir), "%s/tls", c->data_dir);
		snprintf(crt, sizeof(crt), "%s/selfsigned.crt", dir);
		snprintf(key, sizeof(key), "%s/selfsigned.key", dir);
		if (access(crt, R_OK) != 0 || access(key, R_OK) != 0) {
			if ((mkdir(c->data_dir, 0750) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
				snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
				free(t);
				return false;
			}
			if (!generate_selfsigned(c, crt, key, err, errlen)) {
				free(t);
				return false;
			}
			if (uid != (uid_t)-1 && (chown(dir, uid, gid) != 0 || chown(crt, uid, gid) != 0 || chown(key, uid, gid) != 0))
				log_event(LOG_WARN, "tls_selfsigned", "error=\"cannot give the files to the server user: %s\"", strerror(errno));
			log_event(LOG_WARN, "tls_selfsigned_generated", "certificate=%s key=%s name=%s valid_days=365 hint=\"clients will warn that it is self-signed; set [tls] certificate and key to a real one\"",
				crt, key, c->hostname);
		} else {
			log_event(LOG_WARN, "tls_selfsigned", "certificate=%s hint=\"self-signed: set [tls] certificate and key to a real one\"", crt);
		}
	}
	t->def = make_ctx(c, crt, key, err, errlen);
	if (!t->def) {
		free(t);
		return false;
	}
	for (size_t i = 0; i < c->n_certificates; i++) {
		const struct conf_certificate *cc = &c->certificates[i];
		t->sni[i].ctx = make_ctx(c, cc->certificate, cc->key, err, errlen);
		t->sni[i].cert = cc;
		if (!t->sni[i].ctx) {
			tls_free(&t);
			return false;
		}
		t->n_sni++;
	}
	SSL_CTX_set_tlsext_servername_callback(t->def, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(t->def, t);
	*tp = t;
	return true;
}

void tls_free(struct tls **tp)
{
	struct tls *t = *tp;
	if (!t)
		return;
	for (size_t i = 0; i < t->n_sni; i++)
		SSL_CTX_free(t->sni[i].ctx);
	SSL_CTX_free(t->def);
	free(t);
	*tp = NULL;
}

SSL *tls_new_ssl(struct tls *t)
{
	return SSL_new(t->def);
}

void tls_describe(SSL *ssl, char *out, size_t outsz)
{
	int alg = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg);
	snprintf(out, outsz, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, alg);
}
