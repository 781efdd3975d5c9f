/* test_dkim.c - DKIM (mailauth/dkim.h): canonicalisation against RFC 6376 §3.4.5's
 * example, the strict tag-list, signature and key-record parsers on tables of good and
 * bad input, and verification of fixed vectors made with python3-dkim
 * (tests/unit/data/dkim/make_vectors.py), with the key records fed from a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailauth/dkim.h"

#define VECTORS POSTERN_SOURCE_DIR "/tests/unit/data/dkim/"

static void collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

static const char *body_canon(enum dkim_canon c, const char *in, size_t split, struct buf *out)
{
	struct dkim_body_canon bc;
	buf_reset(out);
	dkim_body_canon_init(&bc, c, collect, out);
	size_t len = strlen(in);
	if (split > len)
		split = len;
	dkim_body_canon_feed(&bc, in, split);    /* any split gives the same result */
	dkim_body_canon_feed(&bc, in + split, len - split);
	dkim_body_canon_finish(&bc);
	return buf_cstr(out);
}

static void test_canon_rfc_example(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 4096);
	/* RFC 6376 §3.4.5 */
	const char *body = " C \r\nD \t E\r\n\r\n\r\n";
	for (size_t split = 0; split <= strlen(body); split++) {
		assert_string_equal(body_canon(DKIM_CANON_RELAXED, body, split, &out), " C\r\nD E\r\n");
		assert_string_equal(body_canon(DKIM_CANON_SIMPLE, body, split, &out), " C \r\nD \t E\r\n");
	}
	buf_reset(&out);
	assert_true(dkim_canon_header(DKIM_CANON_RELAXED, "A: X\r\n", strlen("A: X\r\n"), true, &out));
	assert_true(dkim_canon_header(DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  \r\n", strlen("B : Y\t\r\n\tZ  \r\n"), true, &out));
	assert_string_equal(buf_cstr(&out), "a:X\r\nb:Y Z\r\n");
	buf_reset(&out);
	assert_true(dkim_canon_header(DKIM_CANON_SIMPLE, "B : Y\t\n\tZ  \n", strlen("B : Y\t\n\tZ  \n"), true, &out));
	assert_string_equal(buf_cstr(&out), "B : Y\t\r\n\tZ  \r\n");   /* bare LF made CRLF */
	buf_free(&out);
}

static void test_canon_edges(void **state)
{
	(void)state;
	struct buf out;
	buf_init(&out, 4096);
	assert_string_equal(body_canon(DKIM_CANON_SIMPLE, "", 0, &out), "\r\n");      /* §3.4.3 */
	assert_string_equal(body_canon(DKIM_CANON_RELAXED, "", 0, &out), "");         /* §3.4.4 */
	assert_string_equal(body_canon(DKIM_CANON_SIMPLE, "\r\n\r\n", 1, &out), "\r\n");
	assert_string_equal(body_canon(DKIM_CANON_RELAXED, " \r\n\t\r\n", 2, &out), "");
	assert_string_equal(body_canon(DKIM_CANON_SIMPLE, "no end", 3, &out), "no end\r\n");
	assert_string_equal(body_canon(DKIM_CANON_RELAXED, "a\n\nb\n\n", 2, &out), "a\r\n\r\nb\r\n");
	assert_string_equal(body_canon(DKIM_CANON_SIMPLE, "a\rb\r\n", 2, &out), "a\rb\r\n");  /* bare CR */
	assert_string_equal(body_canon(DKIM_CANON_RELAXED, "x \r", 3, &out), "x \r\r\n");
	buf_free(&out);
}

static void test_tag_lists(void **state)
{
	(void)state;
	struct dkim_tag_list tl;
	char err[256];
	assert_true(dkim_tags_parse(" a = 1 ; b=two words\r\n\tmore ;", strlen(" a = 1 ; b=two words\r\n\tmore ;"), &tl, err, sizeof(err)));
	assert_int_equal(tl.n, 2);
	assert_string_equal(dkim_tags_get(&tl, "a")->value, "1");
	assert_string_equal(dkim_tags_get(&tl, "b")->value, "two words\r\n\tmore");
	assert_null(dkim_tags_get(&tl, "c"));
	dkim_tags_free(&tl);
	const char *bad[] = { "a=1; a=2", "=1", "1a=x", "a", "a=1;;b=2", "a=\x01", "a=1; b", "", "a=x;b=\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(dkim_tags_parse(bad[i], strlen(bad[i]), &tl, err, sizeof(err)));
		dkim_tags_free(&tl);
	}
	assert_false(dkim_tags_parse("a=1; a=2", 8, &tl, err, sizeof(err)));
	assert_non_null(strstr(err, "twice"));
	dkim_tags_free(&tl);
}

#define SIG_BASE "v=1; a=rsa-sha256; d=example.test; s=sel; bh=LLYPNIHgO9S3Z7iKooS7i52tGN8d7JzQ+mKBPdKWIMY=; b=AAAA; "

static void test_signature_fields(void **state)
{
	(void)state;
	struct dkim_signature sig;
	char err[256];
	const char *good = SIG_BASE "h=From : To; c=relaxed; i=joe@Sub.Example.test; t=100; x=200; l=5";
	assert_true(dkim_signature_parse(good, strlen(good), &sig, err, sizeof(err)));
	assert_int_equal(sig.header_canon, DKIM_CANON_RELAXED);
	assert_int_equal(sig.body_canon, DKIM_CANON_SIMPLE);
	assert_int_equal(sig.nheaders, 2);
	assert_string_equal(sig.headers[1], "to");
	assert_string_equal(sig.identity, "joe@sub.example.test");
	assert_true(sig.has_length);
	assert_int_equal(sig.length, 5);
	dkim_signature_free(&sig);
	const struct { const char *text, *words; } bad[] = {
		{ SIG_BASE "h=to:subject", "From" },
		{ SIG_BASE "h=from; i=@other.test", "not in the signing domain" },
		{ SIG_BASE "h=from; i=@badexample.test", "not in the signing domain" },
		{ SIG_BASE "h=from; t=200; x=100", "expires" },
		{ SIG_BASE "h=from; t=200; x=200", "expires" },
		{ "v=1; a=rsa-sha256; d=example.test; s=sel; b=AAAA; h=from", "bh=" },
		{ "v=1; a=rsa-sha1; d=example.test; s=sel; bh=LLYPNIHgO9S3Z7iKooS7i52tGN8d7JzQ+mKBPdKWIMY=; b=AAAA; h=from",
			"RFC 8301" },
		{ SIG_BASE "h=from; c=loose", "canonicalisation" },
		{ SIG_BASE "h=from; q=http", "dns/txt" },
		{ SIG_BASE "h=from; d=twice.test", "twice" },
		{ "v=2; a=rsa-sha256; d=example.test; s=sel; bh=LLYPNIHgO9S3Z7iKooS7i52tGN8d7JzQ+mKBPdKWIMY=; b=AAAA; h=from",
			"version" },
		{ "v=1; a=rsa-sha256; d=example.test; s=sel; bh=AAAA; b=AAAA; h=from", "body hash" },
		{ "v=1; a=rsa-sha256; d=exa..mple; s=sel; bh=LLYPNIHgO9S3Z7iKooS7i52tGN8d7JzQ+mKBPdKWIMY=; b=AAAA; h=from",
			"domain" },
		{ SIG_BASE "h=from; l=12a", "l=" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool ok = dkim_signature_parse(bad[i].text, strlen(bad[i].text), &sig, err, sizeof(err));
		if (ok || !strstr(err, bad[i].words))
			fail_msg("case %zu: ok=%d err=%s", i, ok, err);
	}
}

static void test_key_records(void **state)
{
	(void)state;
	struct dkim_key_record kr;
	char err[256];
	const char *ed = "v=DKIM1; k=ed25519; t=y:s; p=KLl1fL6T8+kTXmiXAreJiQx7V0hAId6UfYkQkX+TtXE=";
	assert_true(dkim_key_record_parse(ed, strlen(ed), &kr, err, sizeof(err)));
	assert_int_equal(kr.key_type, DKIM_ALG_ED25519_SHA256);
	assert_true(kr.testing && kr.strict_identity && !kr.revoked);
	assert_int_equal(kr.key_len, 32);
	dkim_key_record_free(&kr);
	assert_true(dkim_key_record_parse("p=", 2, &kr, err, sizeof(err)));
	assert_true(kr.revoked);
	assert_int_equal(kr.key_type, DKIM_ALG_RSA_SHA256);
	dkim_key_record_free(&kr);
	assert_true(dkim_key_record_parse("s=email:*; h=sha1:sha256; p=AAAA", strlen("s=email:*; h=sha1:sha256; p=AAAA"), &kr, err, sizeof(err)));
	dkim_key_record_free(&kr);
	const char *bad[] = { "k=rsa; v=DKIM1; p=AAAA", "v=DKIM2; p=AAAA", "k=dsa; p=AAAA", "h=sha1; p=AAAA",
		"s=web; p=AAAA", "k=rsa", "p=@@@@", "p=AAAA; p=AAAA" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dkim_key_record_parse(bad[i], strlen(bad[i]), &kr, err, sizeof(err)))
			fail_msg("key record %zu accepted", i);
	}
}

/* The key records of keys.txt, plus names that fail the way the DNS can. */
static void table_lookup(void *arg, const char *name, struct dns_result *res)
{
	(void)arg;
	memset(res, 0, sizeof(*res));
	res->type = DNS_TXT;
	if (strncmp(name, "slow.", 5) == 0) {
		res->rcode = DNS_TIMEOUT;
		return;
	}
	res->rcode = DNS_NXDOMAIN;
	FILE *f = fopen(VECTORS "keys.txt", "r");
	assert_non_null(f);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		char *sp = strchr(line, ' ');
		line[strcspn(line, "\n")] = '\0';
		if (!sp || strncmp(line, name, (size_t)(sp - line)) != 0 || strlen(name) != (size_t)(sp - line))
			continue;
		res->rcode = DNS_NOERROR;
		res->rr = calloc(1, sizeof(*res->rr));
		/* a record of several character-strings arrives joined (dns/ does it) */
		res->rr[0].u.txt.text = strdup(sp + 1);
		res->rr[0].u.txt.len = strlen(sp + 1);
		res->n = 1;
	}
	fclose(f);
}

static size_t verify_vector(const char *name, struct dkim_outcome *out, size_t max)
{
	char path[512];
	snprintf(path, sizeof(path), VECTORS "%s.eml", name);
	struct dkim_verify_options o = { .lookup = table_lookup };
	return dkim_verify_path(path, &o, out, max);
}

static void test_vectors(void **state)
{
	(void)state;
	const struct { const char *name; enum dkim_result r; const char *words; } cases[] = {
		{ "rsa-relaxed", DKIM_PASS, "rsa._domainkey.example.test" },
		{ "rsa-simple", DKIM_PASS, "signed by example.test" },
		{ "rsa-relaxed-simple", DKIM_PASS, "signed" },
		{ "ed25519-relaxed", DKIM_PASS, "ed._domainkey" },
		{ "empty-simple", DKIM_PASS, "signed" },
		{ "empty-relaxed", DKIM_PASS, "signed" },
		{ "twice", DKIM_PASS, "signed" },
		{ "length", DKIM_PASS, "only part of the body" },
		{ "body-changed", DKIM_FAIL, "body was changed" },
		{ "header-changed", DKIM_FAIL, "header field was changed" },
		{ "rsa-sha1", DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)" },
		{ "opendkim-sha1", DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)" },   /* OpenDKIM's signer */
		{ "small-key", DKIM_PERMERROR, "768 bits" },
		{ "no-key", DKIM_PERMERROR, "missing._domainkey.example.test was not found" },
		{ "revoked", DKIM_PERMERROR, "revoked" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dkim_outcome out[4];
		size_t n = verify_vector(cases[i].name, out, 4);
		if (n != 1 || out[0].result != cases[i].r || !strstr(out[0].words, cases[i].words))
			fail_msg("%s: n=%zu result=%s words=%s", cases[i].name, n, n ? dkim_result_name(out[0].result) : "-",
				n ? out[0].words : "");
		if (cases[i].r == DKIM_PASS) {
			assert_string_equal(out[0].domain, "example.test");
			assert_true(strlen(out[0].header_b) >= 8);
		}
	}
	struct dkim_outcome out[2];
	assert_int_equal(verify_vector("length", out, 2), 1);
	assert_true(out[0].body_length_limited);
	assert_int_equal(verify_vector("rsa-relaxed", out, 0), 0);
}

/* A message inside a larger file (the queue file: envelope records before it, the
 * commit's records after): only [offset, offset + size) is read. */
static void test_range(void **state)
{
	(void)state;
	FILE *in = fopen(VECTORS "rsa-relaxed.eml", "rb");
	assert_non_null(in);
	static char msg[65536];
	size_t len = fread(msg, 1, sizeof(msg), in);
	fclose(in);
	char path[] = "/tmp/test_dkim_range_XXXXXX";
	int fd = mkstemp(path);
	const char *before = "E envelope records\n\n", *after = "trailer that is not the body\r\n";
	assert_int_equal(write(fd, before, strlen(before)), (ssize_t)strlen(before));
	assert_int_equal(write(fd, msg, len), (ssize_t)len);
	assert_int_equal(write(fd, after, strlen(after)), (ssize_t)strlen(after));
	struct dkim_verify_options o = { .lookup = table_lookup };
	struct dkim_outcome out[2];
	assert_int_equal(dkim_verify(fd, strlen(before), len, &o, out, 2), 1);
	assert_int_equal(out[0].result, DKIM_PASS);
	assert_int_equal(dkim_verify(fd, strlen(before), len + strlen(after), &o, out, 2), 1);
	assert_int_equal(out[0].result, DKIM_FAIL);      /* the trailer counted: body changed */
	assert_int_equal(dkim_verify(fd, 0, DKIM_TO_END_OF_FILE, &o, out, 2), 0);   /* envelope first: no header */
	close(fd);
	unlink(path);
}

static void test_dns_failures(void **state)
{
	(void)state;
	char path[] = "/tmp/test_dkim_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *msg = "DKIM-Signature: " SIG_BASE "h=from\r\nDKIM-Signature: v=1; a=rsa-sha256; d=slow.test; s=slow;"
		" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA; h=from; c=relaxed/relaxed\r\n"
		"From: a@example.test\r\n\r\n";
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	struct dkim_outcome out[8];
	struct dkim_verify_options o = { .lookup = table_lookup, .max_signatures = 8 };
	assert_int_equal(dkim_verify(fd, 0, DKIM_TO_END_OF_FILE, &o, out, 8), 2);
	assert_int_equal(out[0].result, DKIM_FAIL);           /* the body hash of another body */
	assert_int_equal(out[1].result, DKIM_TEMPERROR);      /* empty relaxed body: bh matches, DNS times out */
	assert_non_null(strstr(out[1].words, "did not answer in time"));
	o.max_signatures = 1;
	assert_int_equal(dkim_verify(fd, 0, DKIM_TO_END_OF_FILE, &o, out, 8), 1);     /* at most N are checked */
	close(fd);
	unlink(path);
	const char *no_sig = "From: a@example.test\r\n\r\nbody\r\n";
	char p2[] = "/tmp/test_dkim_XXXXXX";
	fd = mkstemp(p2);
	assert_int_equal(write(fd, no_sig, strlen(no_sig)), (ssize_t)strlen(no_sig));
	assert_int_equal(dkim_verify(fd, 0, DKIM_TO_END_OF_FILE, &o, out, 8), 0);     /* no signature: result none */
	close(fd);
	unlink(p2);
}

/* Signing: keys made in a temporary data directory, the signed message verified by
 * the verifier above with the key records the key files give. */
struct records {
	char names[4][400];
	char values[4][1024];
	size_t n;
};

static void collect_key(void *arg, const struct dkim_key_info *k)
{
	struct records *r = arg;
	snprintf(r->names[r->n], sizeof(r->names[0]), "%s._domainkey.%s", k->selector, k->domain);
	snprintf(r->values[r->n], sizeof(r->values[0]), "%s", k->record);
	r->n++;
}

static void records_lookup(void *arg, const char *name, struct dns_result *res)
{
	struct records *r = arg;
	memset(res, 0, sizeof(*res));
	res->type = DNS_TXT;
	res->rcode = DNS_NXDOMAIN;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->names[i], name) == 0) {
			res->rcode = DNS_NOERROR;
			res->rr = calloc(1, sizeof(*res->rr));
			res->rr[0].u.txt.text = strdup(r->values[i]);
			res->rr[0].u.txt.len = strlen(r->values[i]);
			res->n = 1;
		}
}

static void test_sign_round_trip(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_dkim_sign_XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct dkim_key_info ki;
	char err[512];
	assert_true(dkim_key_generate(dir, "example.test", "s1", DKIM_ALG_RSA_SHA256, 0, &ki, err, sizeof(err)));
	assert_int_equal(ki.bits, 2048);
	assert_false(dkim_key_generate(dir, "example.test", "s1", DKIM_ALG_RSA_SHA256, 0, &ki, err, sizeof(err)));
	assert_non_null(strstr(err, "never overwritten"));
	assert_false(dkim_key_generate(dir, "../x", "s1", DKIM_ALG_RSA_SHA256, 0, &ki, err, sizeof(err)));
	assert_true(dkim_key_generate(dir, "example.test", "e1", DKIM_ALG_ED25519_SHA256, 0, &ki, err, sizeof(err)));
	struct dkim_signer signers[4];
	size_t n = dkim_signers_for_domain(dir, "example.test", signers, 4, err, sizeof(err));
	assert_int_equal(n, 2);
	const char *msg = "Received: from somewhere\r\nFrom: A <a@example.test>\r\nTo: b@d2.test\r\nCc: c@d2.test\r\n"
		"Subject: hello\r\n\tfolded\r\nX-Other: not signed\r\n\r\nbody  text \r\n\r\n";
	char path[] = "/tmp/test_dkim_msg_XXXXXX";
	int fd = mkstemp(path);
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	struct buf fields[2];
	buf_init(&fields[0], DKIM_FIELD_MAX);
	buf_init(&fields[1], DKIM_FIELD_MAX);
	assert_true(dkim_sign(fd, 0, DKIM_TO_END_OF_FILE, signers, n, 1796126464, fields, err, sizeof(err)));
	char domain[256];
	assert_true(dkim_from_domain(fd, 0, DKIM_TO_END_OF_FILE, domain, sizeof(domain)));
	assert_string_equal(domain, "example.test");
	assert_false(dkim_from_domain(fd, 0, 20, domain, sizeof(domain)));   /* the From: is past the range */
	close(fd);
	for (size_t i = 0; i < n; i++)
		dkim_signer_free(&signers[i]);
	assert_non_null(strstr(fields[0].data, "a=ed25519-sha256"));    /* e1 sorts before s1 */
	assert_non_null(strstr(fields[1].data, "a=rsa-sha256"));
	assert_non_null(strstr(fields[1].data, "h=from:from:to:cc:subject;"));
	assert_non_null(strstr(fields[1].data, "t=1796126464;"));
	assert_null(strstr(fields[1].data, " l="));
	for (const char *p = fields[1].data; (p = strchr(p, '\n')); p++)
		assert_true(p[1] == '\t');                                  /* folded, never a bare line */
	struct buf signed_msg;
	buf_init(&signed_msg, 1 << 20);
	buf_printf(&signed_msg, "%s\r\n%s\r\n%s", fields[0].data, fields[1].data, msg);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, signed_msg.data, signed_msg.len), (ssize_t)signed_msg.len);
	close(fd);
	struct records recs = { .n = 0 };
	assert_true(dkim_keys_list(dir, NULL, collect_key, &recs, err, sizeof(err)));
	assert_int_equal(recs.n, 2);
	struct dkim_verify_options o = { .lookup = records_lookup, .lookup_arg = &recs, .now = 1796126500 };
	struct dkim_outcome out[4];
	assert_int_equal(dkim_verify_path(path, &o, out, 4), 2);
	assert_int_equal(out[0].result, DKIM_PASS);
	assert_int_equal(out[1].result, DKIM_PASS);
	struct dkim_key_cache *cache = dkim_key_cache_new(dir);
	assert_int_equal(dkim_key_cache_signers(cache, "example.test", signers, 4, err, sizeof(err)), 2);
	/* the next message gets the very same keys: the files are not read again while
	 * the key directory is unchanged (reading a PEM key costs more than a signature) */
	struct dkim_signer again[4];
	assert_int_equal(dkim_key_cache_signers(cache, "example.test", again, 4, err, sizeof(err)), 2);
	assert_ptr_equal(again[0].pkey, signers[0].pkey);
	assert_ptr_equal(again[1].pkey, signers[1].pkey);
	dkim_signer_free(&again[0]);
	dkim_signer_free(&again[1]);
	dkim_signer_free(&signers[0]);
	dkim_signer_free(&signers[1]);
	assert_int_equal(dkim_key_cache_signers(cache, "nokeys.test", signers, 4, err, sizeof(err)), 0);
	assert_true(dkim_key_retire(dir, "example.test", "s1", err, sizeof(err)));
	assert_int_equal(dkim_signers_for_domain(dir, "example.test", signers, 4, err, sizeof(err)), 1);
	assert_int_equal(signers[0].alg, DKIM_ALG_ED25519_SHA256);
	dkim_signer_free(&signers[0]);
	/* the cache sees the retirement at the next message */
	assert_int_equal(dkim_key_cache_signers(cache, "example.test", signers, 4, err, sizeof(err)), 1);
	assert_int_equal(signers[0].alg, DKIM_ALG_ED25519_SHA256);
	dkim_signer_free(&signers[0]);
	dkim_key_cache_free(&cache);
	assert_null(cache);
	unlink(path);
	buf_free(&signed_msg);
	buf_free(&fields[0]);
	buf_free(&fields[1]);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Keys held in memory (the PostgreSQL directory's rows): the cache signs from the set
 * only, the oldest active key of each type, retired ones never; a new set replaces the
 * old whole; an unparsable key is reported and the others still sign. */
static void test_key_cache_set(void **state)
{
	(void)state;
	struct buf old_rsa, new_rsa, ed;
	char err[256] = "";
	buf_init(&old_rsa, 8192);
	buf_init(&new_rsa, 8192);
	buf_init(&ed, 8192);
	assert_true(dkim_key_generate_pem(DKIM_ALG_RSA_SHA256, 1024, &old_rsa, err, sizeof(err)));
	assert_true(dkim_key_generate_pem(DKIM_ALG_RSA_SHA256, 1024, &new_rsa, err, sizeof(err)));
	assert_true(dkim_key_generate_pem(DKIM_ALG_ED25519_SHA256, 0, &ed, err, sizeof(err)));
	assert_false(dkim_key_generate_pem(DKIM_ALG_RSA_SHA256, 512, &ed, err, sizeof(err)));
	struct dkim_key_pem keys[] = {
		{ "example.test", "new", buf_cstr(&new_rsa), true, 2000 },
		{ "example.test", "old", buf_cstr(&old_rsa), true, 1000 },
		{ "example.test", "gone", buf_cstr(&ed), false, 500 },
		{ "other.test", "e1", buf_cstr(&ed), true, 100 },
	};
	struct dkim_key_info ki;
	assert_true(dkim_key_info_from_pem(&keys[0], "postgresql", &ki));
	assert_string_equal(ki.type, "rsa");
	assert_int_equal(ki.bits, 1024);
	assert_non_null(strstr(ki.record, "v=DKIM1; k=rsa; p="));
	assert_string_equal(ki.path, "postgresql");
	assert_true(dkim_key_names_valid("example.test", "s1", err, sizeof(err)));
	assert_false(dkim_key_names_valid("example.test", "../x", err, sizeof(err)));

	struct dkim_key_cache *cache = dkim_key_cache_new("/nonexistent");
	assert_non_null(cache);
	assert_true(dkim_key_cache_set(cache, keys, 4, err, sizeof(err)));
	struct dkim_signer s[2];
	size_t n = dkim_key_cache_signers(cache, "example.test", s, 2, err, sizeof(err));
	assert_int_equal(n, 1);                       /* the retired ed25519 key does not sign */
	assert_string_equal(s[0].selector, "old");    /* the oldest active rsa key signs */
	dkim_signer_free(&s[0]);
	n = dkim_key_cache_signers(cache, "other.test", s, 2, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_int_equal(s[0].alg, DKIM_ALG_ED25519_SHA256);
	dkim_signer_free(&s[0]);
	assert_int_equal(dkim_key_cache_signers(cache, "none.test", s, 2, err, sizeof(err)), 0);

	/* old retired, a bad key beside: new signs, the bad one is reported */
	keys[1].active = false;
	keys[3].pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
	assert_false(dkim_key_cache_set(cache, keys, 4, err, sizeof(err)));
	n = dkim_key_cache_signers(cache, "example.test", s, 2, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(s[0].selector, "new");
	dkim_signer_free(&s[0]);
	assert_int_equal(dkim_key_cache_signers(cache, "other.test", s, 2, err, sizeof(err)), 0);
	n = dkim_signers_from_pems(keys, 4, "example.test", s, 2, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(s[0].selector, "new");
	dkim_signer_free(&s[0]);
	assert_true(dkim_key_cache_set(cache, NULL, 0, err, sizeof(err)));
	assert_int_equal(dkim_key_cache_signers(cache, "example.test", s, 2, err, sizeof(err)), 0);
	dkim_key_cache_free(&cache);
	buf_free(&old_rsa);
	buf_free(&new_rsa);
	buf_free(&ed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_rfc_example),
		cmocka_unit_test(test_canon_edges),
		cmocka_unit_test(test_tag_lists),
		cmocka_unit_test(test_signature_fields),
		cmocka_unit_test(test_key_records),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_dns_failures),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_sign_round_trip),
		cmocka_unit_test(test_key_cache_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
