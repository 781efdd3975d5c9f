/* test_dns.c - the DNS room's pure parts: wire names, the rdata parsers (MX, A/AAAA,
 * PTR, TXT with several character-strings, TLSA) on good, malformed and truncated
 * records, and the mapping of what libunbound returns (rcode, DNSSEC status, TTL)
 * onto a dns_result.  Lookups against a real server: test_dns_live.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

#include "dns/dns.h"

static void test_wire_names(void **state)
{
	(void)state;
	char out[256];
	const unsigned char mx[] = { 3, 'm', 'x', '1', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0 };
	assert_int_equal(dns_wire_name(mx, sizeof(mx), out, sizeof(out)), sizeof(mx));
	assert_string_equal(out, "mx1.example.org");
	const unsigned char root[] = { 0 };
	assert_int_equal(dns_wire_name(root, 1, out, sizeof(out)), 1);
	assert_string_equal(out, ".");   /* the null MX target */
	const unsigned char cut[] = { 5, 'a', 'b' };
	assert_int_equal(dns_wire_name(cut, sizeof(cut), out, sizeof(out)), 0);
	const unsigned char noend[] = { 1, 'a' };
	assert_int_equal(dns_wire_name(noend, sizeof(noend), out, sizeof(out)), 0);
	const unsigned char pointer[] = { 0xc0, 0x0c };   /* compression is not expected here */
	assert_int_equal(dns_wire_name(pointer, sizeof(pointer), out, sizeof(out)), 0);
	assert_int_equal(dns_wire_name(mx, sizeof(mx), out, 5), 0);   /* too small: refused, not cut */
	const unsigned char dot[] = { 3, 'a', '.', 'b', 0 };         /* a dot inside a label */
	assert_int_equal(dns_wire_name(dot, sizeof(dot), out, sizeof(out)), 0);
	const unsigned char nul[] = { 3, 'a', 0, 'b', 0 };
	assert_int_equal(dns_wire_name(nul, sizeof(nul), out, sizeof(out)), 0);
	assert_int_equal(dns_wire_name(mx, 0, out, sizeof(out)), 0);
}

static void test_mx(void **state)
{
	(void)state;
	struct dns_mx m;
	const unsigned char good[] = { 0, 10, 2, 'm', 'x', 4, 't', 'e', 's', 't', 0 };
	assert_true(dns_parse_mx(good, sizeof(good), &m));
	assert_int_equal(m.preference, 10);
	assert_string_equal(m.exchange, "mx.test");
	const unsigned char null_mx[] = { 0, 0, 0 };   /* RFC 7505: "0 ." */
	assert_true(dns_parse_mx(null_mx, sizeof(null_mx), &m));
	assert_int_equal(m.preference, 0);
	assert_string_equal(m.exchange, ".");
	const unsigned char high[] = { 0xff, 0xfe, 0 };
	assert_true(dns_parse_mx(high, sizeof(high), &m));
	assert_int_equal(m.preference, 65534);
	/* truncated: no name, half a name, a preference only */
	assert_false(dns_parse_mx(good, 2, &m));
	assert_false(dns_parse_mx(good, 6, &m));
	assert_false(dns_parse_mx(good, 1, &m));
	assert_false(dns_parse_mx(good, 0, &m));
	/* trailing octets after the name: the rdata must be used exactly */
	const unsigned char trailing[] = { 0, 10, 0, 'x' };
	assert_false(dns_parse_mx(trailing, sizeof(trailing), &m));
	assert_string_equal(m.exchange, "");
}

static void test_addr_and_ptr(void **state)
{
	(void)state;
	struct dns_addr a;
	const unsigned char v4[] = { 192, 0, 2, 7 };
	assert_true(dns_parse_addr(DNS_A, v4, 4, &a));
	assert_string_equal(a.text, "192.0.2.7");
	assert_int_equal(a.family, AF_INET);
	unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	v6[15] = 1;
	assert_true(dns_parse_addr(DNS_AAAA, v6, 16, &a));
	assert_string_equal(a.text, "2001:db8::1");
	assert_int_equal(a.family, AF_INET6);
	assert_false(dns_parse_addr(DNS_A, v4, 3, &a));
	assert_false(dns_parse_addr(DNS_A, v6, 16, &a));
	assert_false(dns_parse_addr(DNS_AAAA, v4, 4, &a));
	assert_false(dns_parse_addr(DNS_MX, v4, 4, &a));
	char name[DNS_NAME_MAX];
	const unsigned char ptr[] = { 4, 'h', 'o', 's', 't', 2, 'e', 'x', 0 };
	assert_true(dns_parse_ptr(ptr, sizeof(ptr), name, sizeof(name)));
	assert_string_equal(name, "host.ex");
	assert_false(dns_parse_ptr(ptr, sizeof(ptr) - 1, name, sizeof(name)));
	assert_false(dns_parse_ptr(ptr, 0, name, sizeof(name)));
}

static void test_txt(void **state)
{
	(void)state;
	struct dns_txt t;
	/* RFC 7208 §3.3: a record split into strings is read as their concatenation */
	const unsigned char spf[] = { 6, 'v', '=', 's', 'p', 'f', '1', 5, ' ', '-', 'a', 'l', 'l' };
	assert_true(dns_parse_txt(spf, sizeof(spf), &t));
	assert_int_equal(t.len, 11);
	assert_string_equal(t.text, "v=spf1 -all");
	free(t.text);
	const unsigned char empty_string[] = { 0 };   /* one empty character-string */
	assert_true(dns_parse_txt(empty_string, 1, &t));
	assert_int_equal(t.len, 0);
	assert_string_equal(t.text, "");
	free(t.text);
	const unsigned char with_nul[] = { 3, 'a', 0, 'b' };
	assert_true(dns_parse_txt(with_nul, sizeof(with_nul), &t));
	assert_int_equal(t.len, 3);
	assert_memory_equal(t.text, "a\0b", 3);
	free(t.text);
	/* a 255-octet string, the longest there is */
	unsigned char longest[256];
	longest[0] = 255;
	memset(longest + 1, 'x', 255);
	assert_true(dns_parse_txt(longest, sizeof(longest), &t));
	assert_int_equal(t.len, 255);
	free(t.text);
	/* truncated: the second string's length runs past the rdata; no rdata at all */
	assert_false(dns_parse_txt(spf, sizeof(spf) - 1, &t));
	assert_null(t.text);
	assert_false(dns_parse_txt(spf, 3, &t));
	assert_false(dns_parse_txt(spf, 0, &t));
	assert_false(dns_parse_txt(longest, 255, &t));
}

static void test_tlsa(void **state)
{
	(void)state;
	struct dns_tlsa t;
	unsigned char rec[3 + 64];
	/* RFC 7672 §3.1: DANE-EE(3) SPKI(1) SHA2-256(1) */
	rec[0] = 3, rec[1] = 1, rec[2] = 1;
	for (int i = 0; i < 64; i++)
		rec[3 + i] = (unsigned char)i;
	assert_true(dns_parse_tlsa(rec, 3 + 32, &t));
	assert_int_equal(t.usage, 3);
	assert_int_equal(t.selector, 1);
	assert_int_equal(t.matching, 1);
	assert_int_equal(t.len, 32);
	assert_memory_equal(t.data, rec + 3, 32);
	free(t.data);
	assert_false(dns_parse_tlsa(rec, 3 + 31, &t));   /* a SHA2-256 digest is 32 octets */
	assert_false(dns_parse_tlsa(rec, 3 + 64, &t));
	assert_null(t.data);
	rec[2] = 2;   /* SHA2-512: 64 octets */
	assert_true(dns_parse_tlsa(rec, 3 + 64, &t));
	assert_int_equal(t.len, 64);
	free(t.data);
	assert_false(dns_parse_tlsa(rec, 3 + 32, &t));
	rec[0] = 2, rec[1] = 0, rec[2] = 0;   /* DANE-TA, full certificate: any length */
	assert_true(dns_parse_tlsa(rec, 3 + 5, &t));
	assert_int_equal(t.len, 5);
	free(t.data);
	assert_false(dns_parse_tlsa(rec, 3, &t));   /* no association data */
	assert_false(dns_parse_tlsa(rec, 2, &t));
	assert_false(dns_parse_tlsa(rec, 0, &t));
}

/* DNSKEY (RFC 4034 §2.1): fixed fields, protocol must be 3, a key must follow. */
static void test_dnskey(void **state)
{
	(void)state;
	const unsigned char ksk[] = { 0x01, 0x01, 3, 8, 0xAA, 0xBB };
	struct dns_dnskey k;
	assert_true(dns_parse_dnskey(ksk, sizeof(ksk), &k));
	assert_int_equal(k.flags, 257);
	assert_int_equal(k.algorithm, 8);
	const unsigned char badproto[] = { 0x01, 0x00, 2, 8, 0xAA };
	assert_false(dns_parse_dnskey(badproto, sizeof(badproto), &k));
	assert_false(dns_parse_dnskey(ksk, 4, &k));   /* no key */
	assert_string_equal(dns_type_name(DNS_DNSKEY), "DNSKEY");
}

/* The owner name of a trust-anchor file's first record: comments, directives and
 * blank lines are not records. */
static void test_anchor_zone(void **state)
{
	(void)state;
	char path[] = "/tmp/test_dns_anchorXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("; comment\n$TTL 3600\n\n  continued\nsec.test.\t3600\tIN\tDS 1 8 2 AB\n. IN DS 2 8 2 CD\n", f);
	fclose(f);
	char zone[DNS_NAME_MAX];
	assert_true(dns_anchor_zone(path, zone, sizeof(zone)));
	assert_string_equal(zone, "sec.test.");
	f = fopen(path, "w");
	fputs("; only a comment\n", f);
	fclose(f);
	assert_false(dns_anchor_zone(path, zone, sizeof(zone)));
	unlink(path);
	assert_false(dns_anchor_zone("/nonexistent/anchor", zone, sizeof(zone)));
}

static void test_parse_rr_dispatch(void **state)
{
	(void)state;
	struct dns_rr rr;
	const unsigned char txt[] = { 2, 'h', 'i' };
	assert_true(dns_parse_rr(DNS_TXT, txt, sizeof(txt), &rr));
	assert_string_equal(rr.u.txt.text, "hi");
	dns_rr_clear(DNS_TXT, &rr);
	assert_null(rr.u.txt.text);
	assert_false(dns_parse_rr((enum dns_type)99, txt, sizeof(txt), &rr));
	assert_string_equal(dns_type_name(DNS_TLSA), "TLSA");
	assert_string_equal(dns_type_name(DNS_MX), "MX");
}

/* RFC 2782 SRV and RFC 1035 CNAME: the records `postern dns check` reads. */
static void test_srv_and_cname(void **state)
{
	(void)state;
	const unsigned char srv[] = { 0, 0, 0, 1, 0x02, 0x4b, 4, 'm', 'a', 'i', 'l', 1, 't', 0 };
	struct dns_srv s;
	assert_true(dns_parse_srv(srv, sizeof(srv), &s));
	assert_int_equal(s.priority, 0);
	assert_int_equal(s.weight, 1);
	assert_int_equal(s.port, 587);
	assert_string_equal(s.target, "mail.t");
	const unsigned char null_srv[] = { 0, 0, 0, 0, 0, 0, 0 };   /* "0 0 0 .": not offered */
	assert_true(dns_parse_srv(null_srv, sizeof(null_srv), &s));
	assert_string_equal(s.target, ".");
	assert_int_equal(s.port, 0);
	assert_false(dns_parse_srv(srv, sizeof(srv) - 1, &s));   /* name cut short */
	assert_false(dns_parse_srv(srv, 6, &s));                 /* no target at all */
	unsigned char longer[sizeof(srv) + 1];
	memcpy(longer, srv, sizeof(srv));
	longer[sizeof(srv)] = 0;
	assert_false(dns_parse_srv(longer, sizeof(longer), &s)); /* rdata not used exactly */
	struct dns_rr rr;
	const unsigned char cname[] = { 4, 'm', 'a', 'i', 'l', 1, 'T', 0 };
	assert_true(dns_parse_rr(DNS_CNAME, cname, sizeof(cname), &rr));
	assert_string_equal(rr.u.name, "mail.t");
	assert_true(dns_parse_rr(DNS_SRV, srv, sizeof(srv), &rr));
	assert_int_equal(rr.u.srv.port, 587);
	assert_string_equal(dns_type_name(DNS_SRV), "SRV");
	assert_string_equal(dns_type_name(DNS_CNAME), "CNAME");
}

/* A ub_result as libunbound would return it. */
struct fake {
	struct ub_result ub;
	char *data[4];
	int len[4];
};

static void fake_init(struct fake *f, int rcode)
{
	memset(f, 0, sizeof(*f));
	f->ub.rcode = rcode;
	f->ub.data = f->data;
	f->ub.len = f->len;
}

static void fake_add(struct fake *f, const void *rd, int len)
{
	size_t i = 0;
	while (f->data[i])
		i++;
	f->data[i] = (char *)rd;
	f->len[i] = len;
	f->ub.havedata = 1;
}

static void test_status_mapping(void **state)
{
	(void)state;
	static const struct { int wire; enum dns_rcode rc; const char *name; } rcodes[] = {
		{ 0, DNS_NOERROR, "NOERROR" }, { 1, DNS_RCODE_OTHER, "error" }, { 2, DNS_SERVFAIL, "SERVFAIL" },
		{ 3, DNS_NXDOMAIN, "NXDOMAIN" }, { 4, DNS_RCODE_OTHER, "error" }, { 5, DNS_REFUSED, "REFUSED" },
	};
	struct fake f;
	struct dns_result res;
	for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
		fake_init(&f, rcodes[i].wire);
		dns_result_from_unbound(&res, DNS_MX, 0, &f.ub);
		assert_int_equal(res.rcode, rcodes[i].rc);
		assert_int_equal(res.wire_rcode, rcodes[i].wire);
		assert_string_equal(dns_rcode_name(res.rcode), rcodes[i].name);
		assert_int_equal(res.n, 0);
		assert_int_equal(res.security, DNS_INSECURE);
		dns_result_free(&res);
	}
	/* libunbound's own error: no result at all */
	dns_result_from_unbound(&res, DNS_TXT, UB_NOMEM, NULL);
	assert_int_equal(res.rcode, DNS_RESOLVER_ERROR);
	assert_string_not_equal(res.error, "");
	assert_string_equal(dns_rcode_name(DNS_TIMEOUT), "timeout");

	/* secure, with TTL and records; one malformed record is counted, not kept */
	const unsigned char mx1[] = { 0, 20, 1, 'b', 0 }, mx2[] = { 0, 10, 1, 'a', 0 }, bad[] = { 0, 5, 9, 'x' };
	fake_init(&f, 0);
	fake_add(&f, mx1, sizeof(mx1));
	fake_add(&f, bad, sizeof(bad));
	fake_add(&f, mx2, sizeof(mx2));
	f.ub.secure = 1;
	f.ub.ttl = 3600;
	dns_result_from_unbound(&res, DNS_MX, 0, &f.ub);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.security, DNS_SECURE);
	assert_int_equal(res.ttl, 3600);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.malformed, 1);
	assert_string_equal(res.rr[0].u.mx.exchange, "b");
	assert_int_equal(res.rr[1].u.mx.preference, 10);
	dns_result_free(&res);
	assert_null(res.rr);

	/* bogus: SERVFAIL with unbound's reason; records of a failed answer are not parsed */
	fake_init(&f, 2);
	fake_add(&f, mx1, sizeof(mx1));
	f.ub.bogus = 1;
	f.ub.why_bogus = "signature expired";
	f.ub.ttl = -5;
	dns_result_from_unbound(&res, DNS_MX, 0, &f.ub);
	assert_int_equal(res.rcode, DNS_SERVFAIL);
	assert_int_equal(res.security, DNS_BOGUS);
	assert_string_equal(res.why_bogus, "signature expired");
	assert_int_equal(res.ttl, 0);
	assert_int_equal(res.n, 0);
	dns_result_free(&res);

	/* NXDOMAIN, and NODATA (NOERROR without records) */
	fake_init(&f, 3);
	f.ub.nxdomain = 1;
	dns_result_from_unbound(&res, DNS_A, 0, &f.ub);
	assert_int_equal(res.rcode, DNS_NXDOMAIN);
	dns_result_free(&res);
	fake_init(&f, 0);
	dns_result_from_unbound(&res, DNS_A, 0, &f.ub);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n + res.malformed, 0);
	dns_result_free(&res);

	/* a negative length from the library is malformed, never read */
	fake_init(&f, 0);
	fake_add(&f, mx1, -1);
	dns_result_from_unbound(&res, DNS_MX, 0, &f.ub);
	assert_int_equal(res.n, 0);
	assert_int_equal(res.malformed, 1);
	dns_result_free(&res);
}

/* The pool makes resolvers on demand, at most max, and hands back the idle ones. */
static void test_pool(void **state)
{
	(void)state;
	struct dns_options o = { .forwarder = "127.0.0.1@9", .timeout_ms = 100 };
	struct dns_pool *p = dns_pool_new(&o, 2);
	assert_non_null(p);
	char err[256];
	struct dns_resolver *a = dns_pool_take(p, err, sizeof(err));
	struct dns_resolver *b = dns_pool_take(p, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	dns_pool_give(p, a);
	assert_ptr_equal(dns_pool_take(p, err, sizeof(err)), a);   /* the idle one again */
	dns_pool_give(p, a);
	dns_pool_give(p, b);
	dns_pool_free(&p);
	assert_null(p);
	assert_null(dns_pool_new(&o, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_names),
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_mx),
		cmocka_unit_test(test_addr_and_ptr),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_tlsa),
		cmocka_unit_test(test_dnskey),
		cmocka_unit_test(test_anchor_zone),
		cmocka_unit_test(test_parse_rr_dispatch),
		cmocka_unit_test(test_srv_and_cname),
		cmocka_unit_test(test_status_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
