/* dkim_keys.c - the DKIM key files: <data_dir>/dkim/<domain>/<selector>.pem (PKCS#8
 * PEM, 0600), made with OpenSSL EVP, never overwritten; a key is retired by a
 * <selector>.retired file next to it, so it stays listed (its DNS record stays
 * published until the administrator removes it) but no longer signs.  The record to
 * publish (RFC 6376 §3.6.1) is derived from the key itself, never stored apart. */
#include "mailauth/dkim.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "util/fileio.h"

#define NAMES_MAX 1024

/* Names that become path components: letters, digits, "-", "_" and (domains) dots
 * between labels, so no "/" and no "..". */
static bool safe_name(const char *s, bool dots, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '-' || c == '_' || (dots && c == '.')))
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static bool key_path(char *out, size_t outsz, const char *data_dir, const char *domain, const char *selector,
	const char *ext)
{
	int n = snprintf(out, outsz, "%s/dkim/%s/%s%s", data_dir, domain, selector, ext);
	return n > 0 && (size_t)n < outsz;
}

/* The TXT value (§3.6.1): RSA as base64 SubjectPublicKeyInfo, Ed25519 as the raw 32
 * octets (RFC 8463 §4.2). */
static bool record_of(EVP_PKEY *k, char *out, size_t outsz)
{
	unsigned char der[1024], *p = der;
	size_t len = 0;
	bool rsa = EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;
	if (rsa) {
		int n = i2d_PUBKEY(k, NULL);
		if (n <= 0 || (size_t)n > sizeof(der) || i2d_PUBKEY(k, &p) != n)
			return false;
		len = (size_t)n;
	} else {
		len = sizeof(der);
		if (EVP_PKEY_get_raw_public_key(k, der, &len) != 1)
			return false;
	}
	char b64[1400];
	EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
	int n = snprintf(out, outsz, "v=DKIM1; k=%s; p=%s", rsa ? "rsa" : "ed25519", b64);
	return n > 0 && (size_t)n < outsz;
}

/* Type, size and record of k (NULL: "unreadable"); frees k. */
static void describe(EVP_PKEY *k, struct dkim_key_info *ki)
{
	ki->type = "unreadable";
	if (!k)
		return;
	ki->type = EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA ? "rsa" : "ed25519";
	ki->bits = (unsigned)EVP_PKEY_get_bits(k);
	if (!record_of(k, ki->record, sizeof(ki->record)))
		ki->record[0] = '\0';
	EVP_PKEY_free(k);
}

static bool fill_info(const char *data_dir, const char *domain, const char *selector, struct dkim_key_info *ki)
{
	memset(ki, 0, sizeof(*ki));
	snprintf(ki->domain, sizeof(ki->domain), "%s", domain);
	snprintf(ki->selector, sizeof(ki->selector), "%s", selector);
	char retired[4200];
	struct stat st;
	if (!key_path(ki->path, sizeof(ki->path), data_dir, domain, selector, ".pem")
		|| !key_path(retired, sizeof(retired), data_dir, domain, selector, ".retired") || stat(ki->path, &st) != 0)
		return false;
	ki->created = st.st_mtime;
	ki->active = access(retired, F_OK) != 0;
	FILE *f = fopen(ki->path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	describe(k, ki);
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir that pass `keep` (and end in `ext`, which is cut), sorted. */
static size_t sorted_names(const char *dir, const char *ext, bool dots, char **names, size_t max)
{
	DIR *d = opendir(dir);
	size_t n = 0, el = strlen(ext);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		size_t len = strlen(e->d_name);
		if (len <= el || strcmp(e->d_name + len - el, ext) != 0)
			continue;
		char *name = strndup(e->d_name, len - el);
		if (name && safe_name(name, dots, DNS_NAME_MAX))
			names[n++] = name;
		else
			free(name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	return n;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

bool dkim_keys_list(const char *data_dir, const char *domain, dkim_key_cb *cb, void *arg, char *err, size_t errlen)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/dkim", data_dir);
	char **list = calloc(NAMES_MAX, sizeof(*list));
	size_t nd;
	if (!list) {
		snprintf(err, errlen, "out of memory listing the DKIM keys");
		return false;
	}
	if (domain) {
		if (!safe_name(domain, true, DNS_NAME_MAX)) {
			snprintf(err, errlen, "\"%s\" is not a domain name", domain);
			free(list);
			return false;
		}
		list[0] = strdup(domain);
		nd = list[0] ? 1 : 0;
	} else
		nd = sorted_names(dir, "", true, list, NAMES_MAX);
	for (size_t i = 0; i < nd; i++) {
		char *sels[NAMES_MAX], ddir[4500];
		snprintf(ddir, sizeof(ddir), "%s/%s", dir, list[i]);
		size_t ns = sorted_names(ddir, ".pem", false, sels, NAMES_MAX);
		for (size_t j = 0; j < ns; j++) {
			struct dkim_key_info ki;
			if (fill_info(data_dir, list[i], sels[j], &ki))
				cb(arg, &ki);
		}
		free_names(sels, ns);
	}
	free_names(list, nd);
	free(list);
	return true;
}

static bool make_dirs(const char *data_dir, const char *domain, char *err, size_t errlen)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/dkim", data_dir);
	for (int step = 0; step < 2; step++) {
		if (step == 1)
			snprintf(dir, sizeof(dir), "%s/dkim/%s", data_dir, domain);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return false;
		}
	}
	return true;
}

static EVP_PKEY *generate(enum dkim_alg type, unsigned bits)
{
	if (type == DKIM_ALG_ED25519_SHA256)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)(bits ? bits : 2048));
}

/* Written with O_EXCL and 0600, flushed to disk with its directory before the record
 * is shown: an administrator publishes the record only for a key that is kept. */
static bool write_key(const char *path, EVP_PKEY *k, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, errno == EEXIST ? "%s already exists: a key is never overwritten (choose another"
			" --selector)" : "cannot create %s", path);
		return false;
	}
	FILE *f = fdopen(fd, "w");
	bool ok = f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1 && fflush(f) == 0 && fileio_fsync(fd) == 0;
	if (f)
		ok = fclose(f) == 0 && ok;
	else
		close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, errlen, "cannot write the key %s", path);
		return false;
	}
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fileio_fsync(dfd);
		close(dfd);
	}
	return true;
}

bool dkim_key_generate(const char *data_dir, const char *domain, const char *selector, enum dkim_alg type,
	unsigned bits, struct dkim_key_info *info, char *err, size_t errlen)
{
	if (!safe_name(domain, true, DNS_NAME_MAX) || !safe_name(selector, false, DKIM_SELECTOR_MAX)) {
		snprintf(err, errlen, "the domain must be a domain name and the selector letters, digits, \"-\" or \"_\"");
		return false;
	}
	if (type == DKIM_ALG_RSA_SHA256 && bits && (bits < 1024 || bits > 4096)) {
		snprintf(err, errlen, "an RSA key must have 1024 to 4096 bits (2048 is the default, RFC 8301 section 3.2)");
		return false;
	}
	char path[4200];
	if (!key_path(path, sizeof(path), data_dir, domain, selector, ".pem") || !make_dirs(data_dir, domain, err, errlen))
		return false;
	if (access(path, F_OK) == 0) {
		snprintf(err, errlen, "%s already exists: a key is never overwritten (choose another --selector)", path);
		return false;
	}
	EVP_PKEY *k = generate(type, bits);
	if (!k) {
		snprintf(err, errlen, "OpenSSL could not generate the key");
		return false;
	}
	bool ok = write_key(path, k, err, errlen);
	EVP_PKEY_free(k);
	if (ok && !fill_info(data_dir, domain, selector, info)) {
		snprintf(err, errlen, "the key %s was written but cannot be read back", path);
		return false;
	}
	return ok;
}

bool dkim_key_retire(const char *data_dir, const char *domain, const char *selector, char *err, size_t errlen)
{
	char path[4200], retired[4200];
	if (!safe_name(domain, true, DNS_NAME_MAX) || !safe_name(selector, false, DKIM_SELECTOR_MAX)
		|| !key_path(path, sizeof(path), data_dir, domain, selector, ".pem")
		|| !key_path(retired, sizeof(retired), data_dir, domain, selector, ".retired") || access(path, F_OK) != 0) {
		snprintf(err, errlen, "there is no DKIM key %s for %s (see postern dkim list)", selector, domain);
		return false;
	}
	int fd = open(retired, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fileio_fsync(fd) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", retired, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

struct collect_signers {
	const char *data_dir;
	struct dkim_signer *out;
	time_t created[8];
	size_t max, n;
	char *err;
	size_t errlen;
};

/* The oldest active key of each type signs: a new key made for a rotation signs only
 * once the old one is retired, so there is time to publish its record first and no
 * signature ever names a record not yet in the DNS. */
static void take_signer(void *arg, const struct dkim_key_info *k)
{
	struct collect_signers *c = arg;
	if (!k->active || k->bits == 0)
		return;
	enum dkim_alg alg = strcmp(k->type, "rsa") == 0 ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
	size_t slot = c->n;
	for (size_t i = 0; i < c->n; i++)
		if (c->out[i].alg == alg) {
			if (k->created >= c->created[i])
				return;
			slot = i;
		}
	if (slot == c->n && (c->n >= c->max || c->n >= 8))
		return;
	struct dkim_signer s;
	if (!dkim_signer_load(&s, k->domain, k->selector, k->path, c->err, c->errlen))
		return;
	if (slot < c->n)
		dkim_signer_free(&c->out[slot]);
	else
		c->n++;
	c->out[slot] = s;
	c->created[slot] = k->created;
}

size_t dkim_signers_for_domain(const char *data_dir, const char *domain, struct dkim_signer *out, size_t max,
	char *err, size_t errlen)
{
	struct collect_signers c = { .data_dir = data_dir, .out = out, .max = max, .err = err, .errlen = errlen };
	if (!dkim_keys_list(data_dir, domain, take_signer, &c, err, errlen))
		return 0;
	return c.n;
}

void dkim_record_zone_text(const char *record, struct buf *out)
{
	size_t len = strlen(record);
	buf_appendc(out, '(');
	for (size_t i = 0; i < len; i += 255) {
		size_t chunk = len - i < 255 ? len - i : 255;
		buf_printf(out, " \"%.*s\"", (int)chunk, record + i);
	}
	buf_appends(out, " )");
}

/* ---- keys in memory (a database's rows) ---- */

bool dkim_key_names_valid(const char *domain, const char *selector, char *err, size_t errlen)
{
	if (safe_name(domain, true, DNS_NAME_MAX) && safe_name(selector, false, DKIM_SELECTOR_MAX))
		return true;
	snprintf(err, errlen, "the domain must be a domain name and the selector letters, digits, \"-\" or \"_\"");
	return false;
}

bool dkim_key_generate_pem(enum dkim_alg type, unsigned bits, struct buf *out, char *err, size_t errlen)
{
	if (type == DKIM_ALG_RSA_SHA256 && bits && (bits < 1024 || bits > 4096)) {
		snprintf(err, errlen, "an RSA key must have 1024 to 4096 bits (2048 is the default, RFC 8301 section 3.2)");
		return false;
	}
	EVP_PKEY *k = generate(type, bits);
	BIO *b = k ? BIO_new(BIO_s_mem()) : NULL;
	char *p = NULL;
	long n = 0;
	bool ok = b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1 && (n = BIO_get_mem_data(b, &p)) > 0
		&& buf_append(out, p, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(k);
	if (!ok)
		snprintf(err, errlen, "OpenSSL could not generate the key");
	return ok;
}

bool dkim_key_info_from_pem(const struct dkim_key_pem *k, const char *where, struct dkim_key_info *ki)
{
	memset(ki, 0, sizeof(*ki));
	snprintf(ki->domain, sizeof(ki->domain), "%s", k->domain);
	snprintf(ki->selector, sizeof(ki->selector), "%s", k->selector);
	snprintf(ki->path, sizeof(ki->path), "%s", where);
	ki->active = k->active;
	ki->created = k->created;
	BIO *b = BIO_new_mem_buf(k->pem, -1);
	EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	bool ok = key != NULL;
	describe(key, ki);
	return ok;
}
