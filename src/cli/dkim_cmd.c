/* dkim_cmd.c - `postern dkim keygen|list|retire|verify|sign`: the DKIM keys of the local
 * domains (mailauth/dkim.h), a check of a message's signatures against the DNS, and a
 * message signed by hand as the signing stage would.
 * Options come among the positional words (cli.c passes unknown ones through).
 * With [directory] backend = postgresql the keys are rows of the directory (table
 * postern_dkim_keys, directory.h) instead of files, so that every node's signer sees
 * them (serve/dkim_refresh.c); the commands and their words are the same. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <unistd.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "mailauth/dkim.h"

struct dkim_opts {
	const char *selector, *type, *bits;
	bool force;
	const char *pos[4];
	int npos;
};

static bool parse_opts(int argc, char **argv, struct dkim_opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char **dst = strcmp(argv[i], "--selector") == 0 ? &o->selector
			: strcmp(argv[i], "--type") == 0 ? &o->type : strcmp(argv[i], "--bits") == 0 ? &o->bits : NULL;
		if (dst && i + 1 < argc)
			*dst = argv[++i];
		else if (strcmp(argv[i], "--force") == 0)
			o->force = true;
		else if (dst || argv[i][0] == '-' || o->npos == 4) {
			fprintf(stderr, "postern dkim: unexpected \"%s\"\n", argv[i]);
			return false;
		} else
			o->pos[o->npos++] = argv[i];
	}
	return true;
}

static bool keys_in_directory(const struct conf *c)
{
	return c->directory_backend == CONF_DIRECTORY_POSTGRESQL;
}

struct pem_walk {
	dkim_key_cb *cb;
	void *arg;
	struct dkim_key_pem *keep;   /* sign: the rows kept (NULL: only passed on) */
	char **texts;
	size_t n, max;
};

static void row_seen(void *arg, const struct dir_dkim_key *k)
{
	struct pem_walk *w = arg;
	struct dkim_key_pem p = { .domain = k->domain, .selector = k->selector, .pem = k->pem, .active = k->active,
		.created = (time_t)k->created };
	if (w->cb) {
		struct dkim_key_info ki;
		dkim_key_info_from_pem(&p, "postgresql", &ki);
		w->cb(w->arg, &ki);
	}
	if (w->keep && w->n < w->max) {
		char *pem = strdup(k->pem), *sel = strdup(k->selector);
		if (pem && sel) {   /* the domain is the caller's: one domain */
			w->texts[w->n] = pem;
			w->keep[w->n++] = (struct dkim_key_pem){ .domain = "", .selector = sel, .pem = pem, .active = k->active,
				.created = (time_t)k->created };
		} else {
			free(pem);
			free(sel);
		}
	}
}

/* The rows of domain (NULL: all) through w, on a handle of its own. */
static bool walk_rows(const struct conf *c, const char *domain, struct pem_walk *w, char *err, size_t errlen)
{
	struct directory *d;
	if (!directory_open(&d, c->data_dir, err, errlen))
		return false;
	enum dir_result r = directory_dkim_key_list(d, domain, row_seen, w);
	if (r != DIR_OK)
		snprintf(err, errlen, "%s", directory_error(d));
	directory_close(&d);
	return r == DIR_OK;
}

bool cli_dkim_keys_each(const struct conf *c, const char *domain, dkim_key_cb *cb, void *arg, char *err,
	size_t errlen)
{
	if (!keys_in_directory(c))
		return dkim_keys_list(c->data_dir, domain, cb, arg, err, errlen);
	struct pem_walk w = { .cb = cb, .arg = arg };
	return walk_rows(c, domain, &w, err, errlen);
}

static void print_record(const struct dkim_key_info *k)
{
	struct buf zone;
	buf_init(&zone, 4096);
	dkim_record_zone_text(k->record, &zone);
	printf("%s._domainkey.%s. IN TXT %s\n", k->selector, k->domain, buf_cstr(&zone));
	buf_free(&zone);
}

/* A new key as a row of the directory (never over an existing one). */
static bool store_key(struct directory *d, const char *domain, const char *sel, enum dkim_alg type, unsigned bits,
	struct dkim_key_info *info, char *err, size_t errlen)
{
	if (!dkim_key_names_valid(domain, sel, err, errlen))
		return false;
	struct dir_dkim_key *k = calloc(1, sizeof(*k));
	struct buf pem;
	buf_init(&pem, DIR_DKIM_PEM_MAX - 1);
	bool ok = k && dkim_key_generate_pem(type, bits, &pem, err, errlen) && !pem.truncated;
	if (ok) {
		snprintf(k->domain, sizeof(k->domain), "%s", domain);
		snprintf(k->selector, sizeof(k->selector), "%s", sel);
		snprintf(k->algorithm, sizeof(k->algorithm), "%s", type == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519");
		snprintf(k->pem, sizeof(k->pem), "%s", buf_cstr(&pem));
		k->active = true;
		k->created = (long long)time(NULL);
		enum dir_result r = directory_dkim_key_add(d, k);
		if (r == DIR_EXISTS)
			snprintf(err, errlen, "the DKIM key %s of %s already exists: a key is never overwritten (choose another"
				" --selector)", sel, domain);
		else if (r != DIR_OK)
			snprintf(err, errlen, "cannot store the DKIM key: %s", directory_error(d));
		ok = r == DIR_OK;
	} else if (k && !err[0])
		snprintf(err, errlen, "the new key does not fit the directory's %d bytes", DIR_DKIM_PEM_MAX);
	if (ok) {
		struct dkim_key_pem p = { .domain = k->domain, .selector = k->selector, .pem = k->pem, .active = true,
			.created = (time_t)k->created };
		dkim_key_info_from_pem(&p, "postgresql", info);
	}
	buf_free(&pem);
	free(k);
	return ok;
}

/* A key for a domain this server does not serve would sign nothing (signing follows
 * the From: domain of local senders): refused unless --force (a domain about to be
 * added, keys prepared ahead of the DNS change). */
static int keygen(const struct conf *c, struct directory *d, const struct dkim_opts *o)
{
	if (o->npos != 1)
		return fprintf(stderr, "usage: postern dkim keygen DOMAIN [--selector S] [--type rsa|ed25519]\n"), 2;
	const char *domain = o->pos[0];
	if (!o->force && !conf_is_local_domain(c, domain) && directory_domain_exists(d, domain) != DIR_OK) {
		fprintf(stderr, "postern: %s is not a local domain (postern domain list): its key would sign nothing;"
			" add the domain first, or give --force to prepare the key ahead\n", domain);
		return 1;
	}
	enum dkim_alg type = DKIM_ALG_RSA_SHA256;
	if (o->type && strcmp(o->type, "ed25519") == 0)
		type = DKIM_ALG_ED25519_SHA256;
	else if (o->type && strcmp(o->type, "rsa") != 0)
		return fprintf(stderr, "postern: --type is rsa or ed25519, not \"%s\"\n", o->type), 2;
	char sel[DKIM_SELECTOR_MAX];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	if (o->selector)
		snprintf(sel, sizeof(sel), "%s", o->selector);
	else   /* "s" + yyyymm, with "e" for ed25519 so both types of one month can coexist */
		snprintf(sel, sizeof(sel), "%s%04d%02d", type == DKIM_ALG_RSA_SHA256 ? "s" : "e", tm.tm_year + 1900,
			tm.tm_mon + 1);
	unsigned bits = o->bits ? (unsigned)strtoul(o->bits, NULL, 10) : 0;
	struct dkim_key_info k;
	char err[512];
	if (keys_in_directory(c) ? !store_key(d, domain, sel, type, bits, &k, err, sizeof(err))
		: !dkim_key_generate(c->data_dir, domain, sel, type, bits, &k, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	if (keys_in_directory(c))
		printf("key stored in the PostgreSQL directory (table postern_dkim_keys; every node signs with it within"
			" seconds): %s, %u bits, selector %s\n", k.type, k.bits, k.selector);
	else
		printf("key written: %s (%s, %u bits, selector %s)\n", k.path, k.type, k.bits, k.selector);
	printf("publish this DNS record, then mail from %s is signed with it:\n", domain);
	print_record(&k);
	return 0;
}

static void list_one(void *arg, const struct dkim_key_info *k)
{
	char when[32];
	struct tm tm;
	gmtime_r(&k->created, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	printf("%-24s %-12s %-8s %5u %-8s %s\n", k->domain, k->selector, k->type, k->bits,
		k->active ? "active" : "retired", when);
	printf("    ");
	print_record(k);
	(*(int *)arg)++;
}

static int list(const struct conf *c, const struct dkim_opts *o)
{
	int n = 0;
	char err[512];
	printf("%-24s %-12s %-8s %5s %-8s %s\n", "DOMAIN", "SELECTOR", "TYPE", "BITS", "STATE", "CREATED (UTC)");
	if (!cli_dkim_keys_each(c, o->npos ? o->pos[0] : NULL, list_one, &n, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	if (n == 0)
		printf("(no DKIM keys: postern dkim keygen DOMAIN makes one)\n");
	return 0;
}

static bool retire_row(struct directory *d, const char *domain, const char *selector, char *err, size_t errlen)
{
	enum dir_result r = directory_dkim_key_retire(d, domain, selector);
	if (r == DIR_NOT_FOUND)
		snprintf(err, errlen, "there is no DKIM key %s for %s (see postern dkim list)", selector, domain);
	else if (r != DIR_OK)
		snprintf(err, errlen, "cannot retire the DKIM key: %s", directory_error(d));
	return r == DIR_OK;
}

static int retire(const struct conf *c, struct directory *d, const struct dkim_opts *o)
{
	char err[512];
	if (o->npos != 2)
		return fprintf(stderr, "usage: postern dkim retire DOMAIN SELECTOR\n"), 2;
	if (keys_in_directory(c) ? !retire_row(d, o->pos[0], o->pos[1], err, sizeof(err))
		: !dkim_key_retire(c->data_dir, o->pos[0], o->pos[1], err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	printf("key %s of %s retired: it no longer signs; keep its DNS record published until mail signed with it"
		" has been delivered (a few days), then remove the record\n", o->pos[1], o->pos[0]);
	return 0;
}

/* The message's signatures checked against the DNS of [delivery] resolver. */
static int verify(const struct conf *c, const struct dkim_opts *o)
{
	if (o->npos != 1)
		return fprintf(stderr, "usage: postern dkim verify MESSAGE-FILE\n"), 2;
	struct dns_options dopt = { .forwarder = c->resolver, .timeout_ms = 10000 };
	char err[512];
	struct dns_resolver *r = dns_resolver_new(&dopt, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	struct dkim_verify_options vo = { .resolver = r };
	struct dkim_outcome out[DKIM_MAX_SIGNATURES_DEFAULT];
	size_t n = dkim_verify_path(o->pos[0], &vo, out, DKIM_MAX_SIGNATURES_DEFAULT);
	dns_resolver_free(&r);
	if (n == 0)
		printf("dkim=none (the message has no DKIM-Signature)\n");
	bool all_pass = n > 0;
	for (size_t i = 0; i < n; i++) {
		printf("dkim=%s header.d=%s header.s=%s header.a=%s header.b=%s: %s\n", dkim_result_name(out[i].result),
			out[i].domain, out[i].selector, out[i].algorithm, out[i].header_b, out[i].words);
		all_pass &= out[i].result == DKIM_PASS;
	}
	return all_pass ? 0 : 1;
}

/* The directory's signers of domain (as the server would choose them). */
static size_t row_signers(const struct conf *c, const char *domain, struct dkim_signer *out, size_t max, char *err,
	size_t errlen)
{
	enum { ROWS_MAX = 64 };
	struct dkim_key_pem keep[ROWS_MAX];
	char *texts[ROWS_MAX];
	struct pem_walk w = { .keep = keep, .texts = texts, .max = ROWS_MAX };
	size_t n = 0;
	if (walk_rows(c, domain, &w, err, errlen)) {
		for (size_t i = 0; i < w.n; i++)
			keep[i].domain = domain;
		n = dkim_signers_from_pems(keep, w.n, domain, out, max, err, errlen);
	}
	for (size_t i = 0; i < w.n; i++) {
		free(texts[i]);
		free((char *)keep[i].selector);
	}
	return n;
}

/* The message signed with its From: domain's active keys, on stdout: what the
 * signing stage would add, for checking keys and records by hand. */
static int sign(const struct conf *c, const struct dkim_opts *o)
{
	if (o->npos != 1)
		return fprintf(stderr, "usage: postern dkim sign MESSAGE-FILE\n"), 2;
	int fd = open(o->pos[0], O_RDONLY | O_CLOEXEC);
	char domain[DNS_NAME_MAX], err[512];
	if (fd < 0 || !dkim_from_domain(fd, 0, DKIM_TO_END_OF_FILE, domain, sizeof(domain))) {
		fprintf(stderr, "postern: %s: %s\n", o->pos[0], fd < 0 ? "cannot open it" : "no From: address to sign for");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	struct dkim_signer signers[4];
	struct buf fields[4];
	size_t n = keys_in_directory(c) ? row_signers(c, domain, signers, 4, err, sizeof(err))
		: dkim_signers_for_domain(c->data_dir, domain, signers, 4, err, sizeof(err));
	for (size_t i = 0; i < 4; i++)
		buf_init(&fields[i], DKIM_FIELD_MAX);
	bool ok = n > 0 && dkim_sign(fd, 0, DKIM_TO_END_OF_FILE, signers, n, time(NULL), fields, err, sizeof(err));
	if (n == 0)
		fprintf(stderr, "postern: %s has no active DKIM key (postern dkim keygen %s)\n", domain, domain);
	else if (!ok)
		fprintf(stderr, "postern: %s\n", err);
	for (size_t i = 0; ok && i < n; i++)
		printf("%s\r\n", buf_cstr(&fields[i]));
	char chunk[65536];
	ssize_t got;
	fflush(stdout);
	while (ok && (got = read(fd, chunk, sizeof(chunk))) > 0)
		ok = fwrite(chunk, 1, (size_t)got, stdout) == (size_t)got;
	for (size_t i = 0; i < 4; i++) {
		buf_free(&fields[i]);
		if (i < n)
			dkim_signer_free(&signers[i]);
	}
	close(fd);
	return ok ? 0 : 1;
}

int cli_dkim(int argc, char **argv, const struct conf *c, struct directory *d)
{
	struct dkim_opts o;
	if (argc < 1 || !parse_opts(argc, argv, &o))
		return 2;
	if (strcmp(argv[0], "keygen") == 0)
		return keygen(c, d, &o);
	if (strcmp(argv[0], "list") == 0)
		return list(c, &o);
	if (strcmp(argv[0], "retire") == 0)
		return retire(c, d, &o);
	if (strcmp(argv[0], "verify") == 0)
		return verify(c, &o);
	if (strcmp(argv[0], "sign") == 0)
		return sign(c, &o);
	fprintf(stderr, "postern dkim: unknown verb \"%s\" (keygen, list, retire, verify, sign)\n", argv[0]);
	return 2;
}
