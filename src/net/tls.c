/* tls.c - server TLS contexts (see tls.h). */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/fileio.h"
#include "util/log.h"

/* A certificate chosen by SNI: its context and a copy of the names it serves (the
 * configuration it came from may be a reload's, gone after it). */
struct sni_entry {
	SSL_CTX *ctx;
	char (*names)[CONF_NAME_MAX];
	size_t n_names;
};

/* The lock: a reload (tls_replace, SIGHUP) swaps the contexts while loop threads make
 * connections (tls_new_ssl) and handshakes pick certificates (sni_cb).  Connections
 * already made keep their context (OpenSSL counts its references). */
struct tls {
	pthread_rwlock_t lock;
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
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->n_sni; i++)
		for (size_t j = 0; j < t->sni[i].n_names; j++)
			if (name_matches(t->sni[i].names[j], name)) {
				SSL_set_SSL_CTX(ssl, t->sni[i].ctx);
				pthread_rwlock_unlock(&t->lock);
				return SSL_TLSEXT_ERR_OK;
			}
	pthread_rwlock_unlock(&t->lock);
	return SSL_TLSEXT_ERR_OK;   /* unknown name: the default certificate */
}

/* A key encrypted with a passphrase fails to load instead of prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return 0;
}

/* OpenSSL's reason for e in words an administrator can act on ("system lib" alone
 * explains nothing). */
static const char *openssl_reason(unsigned long e, char *buf, size_t bufsz)
{
	int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
	if (!e)
		return "no reason given by OpenSSL";
	if (ERR_SYSTEM_ERROR(e))
		return strerror(reason);
	if (lib == ERR_LIB_PEM && reason == PEM_R_NO_START_LINE)
		return "no PEM block in it (expected a -----BEGIN ...----- line): wrong file, or DER (convert with openssl x509 -in F -inform der -out F.pem)";
	if (lib == ERR_LIB_PEM && (reason == PEM_R_BAD_PASSWORD_READ || reason == PEM_R_PROBLEMS_GETTING_PASSWORD || reason == PEM_R_BAD_DECRYPT))
		return "it is encrypted with a passphrase, which a server cannot type: store it decrypted (openssl pkey -in KEY -out KEY.plain; chmod 600)";
	if (lib == ERR_LIB_X509 && reason == X509_R_KEY_VALUES_MISMATCH)
		return "the key does not belong to the certificate";
	if (lib == ERR_LIB_SSL && reason == SSL_R_EE_KEY_TOO_SMALL)
		return "the certificate's key is too small for OpenSSL's security level (use RSA 2048 or more, or an EC key)";
	if (lib == ERR_LIB_SSL && reason == SSL_R_CA_MD_TOO_WEAK)
		return "the certificate is signed with a digest OpenSSL refuses (MD5/SHA-1): get one signed with SHA-256";
	ERR_error_string_n(e, buf, bufsz);
	return buf;
}

/* What to do about a file that cannot be opened. */
static const char *open_fix(int e)
{
	return e == ENOENT ? "no such file: correct the path, or put the file there"
		: e == EACCES ? "permission denied: postern reads it at start, as root before it drops privileges; make it readable by root (the key: chmod 600, owned by root)"
		: e == EISDIR ? "it is a directory: name the PEM file in it"
		: strerror(e);
}

static FILE *open_pem(const char *where, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot read %s: %s", where, path, open_fix(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: cannot read %s: %s", where, path, open_fix(EISDIR));
		fclose(f);
		return NULL;
	}
	return f;
}

/* "-----BEGIN ENCRYPTED PRIVATE KEY-----" (PKCS #8) or "Proc-Type: 4,ENCRYPTED"
 * (traditional PEM): OpenSSL 3 reports a decryption failure deep in PKCS #12. */
static bool pem_encrypted(FILE *f)
{
	char line[256];
	rewind(f);
	for (int i = 0; i < 64 && fgets(line, sizeof(line), f); i++)
		if (strstr(line, "ENCRYPTED"))
			return true;
	return false;
}

/* Read the certificate and key ourselves first, so each failure gets its own words:
 * missing, unreadable, not PEM, encrypted, not a pair. */
static EVP_PKEY *read_pair(const char *cert, const char *key, const char *wcert, const char *wkey, char *err, size_t errlen)
{
	char buf[256];
	ERR_clear_error();
	FILE *f = open_pem(wcert, cert, err, errlen);
	if (!f)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!x) {
		snprintf(err, errlen, "%s: %s is not a PEM certificate: %s", wcert, cert, openssl_reason(ERR_peek_last_error(), buf, sizeof(buf)));
		ERR_clear_error();
		return NULL;
	}
	f = open_pem(wkey, key, err, errlen);
	EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL) : NULL;
	if (f && !pk) {
		if (pem_encrypted(f))
			snprintf(err, errlen, "%s: %s is encrypted with a passphrase, which a server cannot type: store it "
				"decrypted (openssl pkey -in KEY -out KEY.plain; chmod 600 KEY.plain) and name that file", wkey, key);
		else
			snprintf(err, errlen, "%s: %s is not a PEM private key: %s", wkey, key, openssl_reason(ERR_peek_last_error(), buf, sizeof(buf)));
	}
	if (f)
		fclose(f);
	if (pk && X509_check_private_key(x, pk) != 1) {
		snprintf(err, errlen, "%s: %s does not belong to the certificate %s (their public keys differ): set key to the "
			"private key this certificate was issued for, or certificate to the one issued for this key", wkey, key, cert);
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	X509_free(x);
	ERR_clear_error();
	return pk;
}

/* SSL_CTX_set_cipher_list succeeds when anything at all is selected, TLS 1.3 suites
 * included: "NULL:eNULL" leaves TLS 1.2 with nothing a client can use.  Ask for at
 * least one TLS 1.2 cipher that encrypts, authenticates with this certificate's key
 * type, and exchanges keys without parameters or secrets Postern does not set (DHE
 * parameters, PSK, SRP). */
static bool tls12_cipher_usable(SSL_CTX *ctx, int key_type)
{
	int want = key_type == EVP_PKEY_RSA || key_type == EVP_PKEY_RSA_PSS ? NID_auth_rsa : NID_auth_ecdsa;
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
	for (int i = 0; sk && i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
		int auth = SSL_CIPHER_get_auth_nid(ci), kx = SSL_CIPHER_get_kx_nid(ci);
		if (auth == NID_auth_any)
			continue;   /* a TLS 1.3 suite */
		if (auth == want && SSL_CIPHER_get_cipher_nid(ci) != NID_undef && (kx == NID_kx_ecdhe || kx == NID_kx_rsa))
			return true;
	}
	return false;
}

static bool check_ciphers(const struct conf *c, SSL_CTX *ctx, int key_type, char *err, size_t errlen)
{
	char where[CONF_PATH_MAX + 64];
	conf_where(c, "tls", "ciphers", where, sizeof(where));
	if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
		snprintf(err, errlen, "%s: \"%s\" names no cipher OpenSSL knows: remove the setting (default "
			"ECDHE+AESGCM:ECDHE+CHACHA20) or use OpenSSL cipher-list syntax (openssl ciphers -v LIST)", where, c->tls_ciphers);
		ERR_clear_error();
		return false;
	}
	if (!tls12_cipher_usable(ctx, key_type)) {
		snprintf(err, errlen, "%s: \"%s\" leaves no TLS 1.2 cipher that both encrypts and authenticates with this %s "
			"certificate (NULL, eNULL and aNULL ciphers, DHE, PSK and ones for other key types do not count): every "
			"TLS 1.2 handshake would fail; remove the setting (default ECDHE+AESGCM:ECDHE+CHACHA20) or list ciphers "
			"such as ECDHE+AESGCM", where, c->tls_ciphers, key_type == EVP_PKEY_RSA || key_type == EVP_PKEY_RSA_PSS ? "RSA" : "EC");
		return false;
	}
	return true;
}

static SSL_CTX *new_ctx(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		openssl_error(err, errlen, "cannot create a TLS context", "");
		return NULL;
	}
	/* TLS 1.2 and 1.3 only (RFC 8996 retired the older ones). */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);   /* kilobytes per idle TLS connection */
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	return ctx;
}

/* wcert/wkey: where the paths are set, "FILE:LINE: [tls] certificate", for errors. */
static SSL_CTX *make_ctx(const struct conf *c, const char *cert, const char *key, const char *wcert, const char *wkey,
	char *err, size_t errlen)
{
	EVP_PKEY *pk = read_pair(cert, key, wcert, wkey, err, errlen);
	if (!pk)
		return NULL;
	int key_type = EVP_PKEY_get_base_id(pk);
	SSL_CTX *ctx = new_ctx(err, errlen);
	char buf[256];
	if (ctx && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: cannot use %s: %s", wcert, cert, openssl_reason(ERR_peek_last_error(), buf, sizeof(buf)));
		goto fail;
	}
	if (ctx && (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(err, errlen, "%s: cannot use %s: %s", wkey, key, openssl_reason(ERR_peek_last_error(), buf, sizeof(buf)));
		goto fail;
	}
	if (ctx && !check_ciphers(c, ctx, key_type, err, errlen))
		goto fail;
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return NULL;
}

/* Written beside, then renamed into place: another process starting at the same
 * moment sees no file or a whole one, never an empty certificate. */
static bool write_pem(const char *path, mode_t mode, bool is_key, EVP_PKEY *pk, X509 *x)
{
	char tmp[CONF_PATH_MAX + 64];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return false;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return false;
	}
	bool ok = is_key ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1 : PEM_write_X509(f, x) == 1;
	ok = fflush(f) == 0 && fileio_fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	ok = ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
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

bool tls_init(struct tls **tp, const struct conf *c, uid_t uid, gid_t gid, bool check_only, char *err, size_t errlen)
{
	*tp = NULL;
	char wcert[CONF_PATH_MAX + 64], wkey[CONF_PATH_MAX + 64];
	conf_where(c, "tls", "certificate", wcert, sizeof(wcert));
	conf_where(c, "tls", "key", wkey, sizeof(wkey));
	struct tls *t = calloc(1, sizeof(*t));
	if (!t || pthread_rwlock_init(&t->lock, NULL) != 0) {
		free(t);
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
		snprintf(wcert, sizeof(wcert), "%s: [tls] certificate (not set: self-signed)", c->path);
		snprintf(wkey, sizeof(wkey), "%s: [tls] key (not set: self-signed)", c->path);
		if (check_only && (access(crt, F_OK) != 0 || access(key, F_OK) != 0)) {
			/* It would be generated (an EC key, P-256): the cipher list must suit it. */
			t->def = new_ctx(err, errlen);
			if (!t->def || !check_ciphers(c, t->def, EVP_PKEY_EC, err, errlen)) {
				tls_free(&t);
				return false;
			}
		} else if (access(crt, R_OK) != 0 || access(key, R_OK) != 0) {
			if ((mkdir(c->data_dir, 0750) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
				snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
				tls_free(&t);
				return false;
			}
			if (!generate_selfsigned(c, crt, key, err, errlen)) {
				tls_free(&t);
				return false;
			}
			if (uid != (uid_t)-1 && (chown(dir, uid, gid) != 0 || chown(crt, uid, gid) != 0 || chown(key, uid, gid) != 0))
				log_event(LOG_WARN, "tls_selfsigned", "error=\"cannot give the files to the server user: %s\"", strerror(errno));
			log_event(LOG_WARN, "tls_selfsigned_generated", "certificate=%s key=%s name=%s valid_days=365 hint=\"clients will warn that it is self-signed; set [tls] certificate and key to a real one\"",
				crt, key, c->hostname);
		} else if (!check_only) {
			log_event(LOG_WARN, "tls_selfsigned", "certificate=%s hint=\"self-signed: set [tls] certificate and key to a real one\"", crt);
		}
	}
	if (!t->def)
		t->def = make_ctx(c, crt, key, wcert, wkey, err, errlen);
	if (!t->def) {
		tls_free(&t);
		return false;
	}
	for (size_t i = 0; i < c->n_certificates; i++) {
		const struct conf_certificate *cc = &c->certificates[i];
		snprintf(wcert, sizeof(wcert), "%s:%u: [certificate %s] certificate", c->path, cc->line, cc->name);
		snprintf(wkey, sizeof(wkey), "%s:%u: [certificate %s] key", c->path, cc->line, cc->name);
		t->sni[i].ctx = make_ctx(c, cc->certificate, cc->key, wcert, wkey, err, errlen);
		t->sni[i].names = t->sni[i].ctx ? calloc(cc->n_names ? cc->n_names : 1, CONF_NAME_MAX) : NULL;
		if (!t->sni[i].names) {
			if (t->sni[i].ctx)
				snprintf(err, errlen, "out of memory");
			SSL_CTX_free(t->sni[i].ctx);
			tls_free(&t);
			return false;
		}
		memcpy(t->sni[i].names, cc->names, cc->n_names * CONF_NAME_MAX);
		t->sni[i].n_names = cc->n_names;
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
	for (size_t i = 0; i < t->n_sni; i++) {
		SSL_CTX_free(t->sni[i].ctx);
		free(t->sni[i].names);
	}
	SSL_CTX_free(t->def);
	pthread_rwlock_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

SSL *tls_new_ssl(struct tls *t)
{
	pthread_rwlock_rdlock(&t->lock);
	SSL *ssl = SSL_new(t->def);
	pthread_rwlock_unlock(&t->lock);
	return ssl;
}

void tls_replace(struct tls *t, struct tls **fresh)
{
	struct tls *f = *fresh;
	/* f's default context names f as its SNI callback's argument: it is t's now */
	SSL_CTX_set_tlsext_servername_arg(f->def, t);
	pthread_rwlock_wrlock(&t->lock);
	SSL_CTX *def = t->def;
	struct sni_entry sni[CONF_MAX_CERTS];
	size_t n_sni = t->n_sni;
	memcpy(sni, t->sni, sizeof(sni));
	t->def = f->def;
	memcpy(t->sni, f->sni, sizeof(t->sni));
	t->n_sni = f->n_sni;
	pthread_rwlock_unlock(&t->lock);
	/* the old contexts go with f; connections made with them keep their references */
	f->def = def;
	memcpy(f->sni, sni, sizeof(f->sni));
	f->n_sni = n_sni;
	tls_free(fresh);
}

void tls_describe(SSL *ssl, char *out, size_t outsz)
{
	int alg = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg);
	snprintf(out, outsz, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl), SSL_get_cipher_name(ssl), bits, alg);
}
