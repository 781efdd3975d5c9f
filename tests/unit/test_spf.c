/* test_spf.c - SPF (RFC 7208): the record parser on good and broken records (§4.6,
 * §12), macro expansion with the examples of §7.4, and check_host() over a fake DNS
 * table (limits of §4.6.4, include/redirect, exp=, timeouts).  Against real DNS and
 * the oracles: tests/integration/test_spf.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

/* --- the parser ----------------------------------------------------------------------- */

static bool parses(const char *rec)
{
	static struct spf_record r;
	char err[300];
	return spf_record_parse(rec, strlen(rec), &r, err, sizeof(err));
}

static void test_record_selection(void **state)
{
	(void)state;
	assert_true(spf_is_record("v=spf1", 6));
	assert_true(spf_is_record("v=spf1 -all", 11));
	assert_true(spf_is_record("V=SPF1 -all", 11));
	assert_false(spf_is_record("v=spf10 -all", 12));
	assert_false(spf_is_record("v=spf1-all", 10));
	assert_false(spf_is_record("spf1 -all", 9));
}

static void test_parse_terms(void **state)
{
	(void)state;
	struct spf_record r;
	char err[300];
	const char *rec = "v=spf1 +mx a:mail.example.com/24//64 -ip4:192.0.2.0/24 ~ip6:2001:db8::/32 ?ptr "
		"include:_spf.example.net exists:%{ir}.%{l1r+-}._spf.%{d} redirect=_spf.example.com exp=exp.%{d} "
		"x-custom=%{o} -all";
	assert_true(spf_record_parse(rec, strlen(rec), &r, err, sizeof(err)));
	assert_int_equal(r.n, 8);
	assert_int_equal(r.terms[0].mech, SPF_M_MX);
	assert_int_equal(r.terms[0].qualifier, '+');
	assert_int_equal(r.terms[1].mech, SPF_M_A);
	assert_int_equal(r.terms[1].cidr4, 24);
	assert_int_equal(r.terms[1].cidr6, 64);
	assert_memory_equal(r.terms[1].spec, "mail.example.com", 16);
	assert_int_equal(r.terms[1].spec_len, 16);
	assert_int_equal(r.terms[2].qualifier, '-');
	assert_int_equal(r.terms[2].cidr4, 24);
	const unsigned char net[4] = { 192, 0, 2, 0 };
	assert_memory_equal(r.terms[2].net, net, 4);
	assert_int_equal(r.terms[3].mech, SPF_M_IP6);
	assert_int_equal(r.terms[3].cidr6, 32);
	assert_int_equal(r.terms[4].mech, SPF_M_PTR);
	assert_null(r.terms[4].spec);
	assert_int_equal(r.terms[5].mech, SPF_M_INCLUDE);
	assert_int_equal(r.terms[6].mech, SPF_M_EXISTS);
	assert_int_equal(r.terms[7].mech, SPF_M_ALL);
	assert_true(r.has_fail_all);
	assert_int_equal(r.redirect_len, strlen("_spf.example.com"));
	assert_memory_equal(r.exp, "exp.%{d}", 8);
	/* mechanism names are case-insensitive; spaces may repeat */
	assert_true(parses("v=spf1  IP4:192.0.2.1   A:Example.COM  -ALL "));
	assert_true(parses("v=spf1"));
	assert_true(parses("v=spf1 a/0 mx//0 ip4:0.0.0.0/0 ip6:::/0"));
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"v=spf1 ip4:192.0.2.300",          /* not an address */
		"v=spf1 ip4:192.0.2.1/33",         /* §5.6 cidr range */
		"v=spf1 ip4:192.0.2.01",           /* §12 qnum: no leading zero */
		"v=spf1 ip4:192.0.2.1/032",
		"v=spf1 ip6:2001:db8::/129",
		"v=spf1 ip6:2001:db8::1//64",      /* "//" only in a dual-cidr-length */
		"v=spf1 ip4",                      /* an address is required */
		"v=spf1 a:",                       /* empty domain */
		"v=spf1 a:localhost",              /* §12 domain-end: a top label after a dot */
		"v=spf1 a:example.123",            /* an all-numeric top label */
		"v=spf1 a/33",
		"v=spf1 mx//129",
		"v=spf1 include",                  /* a domain is required */
		"v=spf1 exists",
		"v=spf1 all:example.com",
		"v=spf1 ptr/24",
		"v=spf1 frobnicate",               /* unknown mechanism */
		"v=spf1 -redirect=example.com",    /* modifiers take no qualifier */
		"v=spf1 redirect=a.example.com redirect=b.example.com",   /* §6 at most once */
		"v=spf1 exp=a.example.com exp=b.example.com",
		"v=spf1 exists:%{x}.example.com",  /* no such macro letter */
		"v=spf1 exists:%{c}.example.com",  /* c, r, t only in exp text (§7.3) */
		"v=spf1 exists:%{d0}.example.com", /* §7.3 digits must not be zero */
		"v=spf1 exists:%{d.example.com",   /* unclosed */
		"v=spf1 exists:100%.example.com",  /* a bare % */
		"v=spf1 foo=%z",                   /* unknown modifiers must be valid too */
		"v=spf1 1foo=bar",
		"v=spf1 ip4:192.0.2.1\x0a-all",     /* terms are separated by spaces only */
		"v=spf1 a:ex\xc3\xa4mple.com",      /* §3.1 ASCII only */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parses(bad[i]))
			fail_msg("accepted: %s", bad[i]);
	}
	/* and the error names the term */
	struct spf_record r;
	char err[300];
	assert_false(spf_record_parse("v=spf1 a ip4:1.2.3.4/40 -all", 28, &r, err, sizeof(err)));
	assert_non_null(strstr(err, "ip4:1.2.3.4/40"));
}

/* --- macros (RFC 7208 §7.4 examples) -------------------------------------------------- */

static const char *fake_ptr(void *ctx, const char *domain)
{
	(void)ctx;
	(void)domain;
	return "mx.example.org";
}

static struct spf_macro_vars v4_vars(void)
{
	return (struct spf_macro_vars){ .sender = "strong-bad@email.example.com", .local = "strong-bad",
		.sender_domain = "email.example.com", .domain = "email.example.com", .ip_dotted = "192.0.2.3",
		.ip_text = "192.0.2.3", .helo = "mx.example.org", .receiver = "receiver.example.net", .now = 1700000000,
		.validated_name = fake_ptr };
}

static void expands(const struct spf_macro_vars *v, const char *in, bool exp, const char *want)
{
	char out[600], err[200];
	if (!spf_macro_expand(v, in, strlen(in), exp, out, sizeof(out), err, sizeof(err)))
		fail_msg("%s: %s", in, err);
	if (strcmp(out, want) != 0)
		fail_msg("%s: got %s, want %s", in, out, want);
}

static void test_macro_examples(void **state)
{
	(void)state;
	struct spf_macro_vars v = v4_vars();
	expands(&v, "%{s}", false, "strong-bad@email.example.com");
	expands(&v, "%{o}", false, "email.example.com");
	expands(&v, "%{d}", false, "email.example.com");
	expands(&v, "%{d4}", false, "email.example.com");
	expands(&v, "%{d3}", false, "email.example.com");
	expands(&v, "%{d2}", false, "example.com");
	expands(&v, "%{d1}", false, "com");
	expands(&v, "%{dr}", false, "com.example.email");
	expands(&v, "%{d2r}", false, "example.email");
	expands(&v, "%{l}", false, "strong-bad");
	expands(&v, "%{l-}", false, "strong.bad");
	expands(&v, "%{lr}", false, "strong-bad");
	expands(&v, "%{lr-}", false, "bad.strong");
	expands(&v, "%{l1r-}", false, "strong");
	expands(&v, "%{ir}.%{v}._spf.%{d2}", false, "3.2.0.192.in-addr._spf.example.com");
	expands(&v, "%{lr-}.lp._spf.%{d2}", false, "bad.strong.lp._spf.example.com");
	expands(&v, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", false, "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expands(&v, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", false, "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expands(&v, "%{d2}.trusted-domains.example.net", false, "example.com.trusted-domains.example.net");
	expands(&v, "%{p}", false, "mx.example.org");
	expands(&v, "%{p2}.trusted.example.net.", false, "example.org.trusted.example.net");   /* trailing dot dropped */
	/* §7.1: %% %_ %-, and upper case letters URL-escaped (§7.3) */
	expands(&v, "a%%b%_c%-d.example.com", false, "a%b c%20d.example.com");
	expands(&v, "%{S}", false, "strong-bad%40email.example.com");
	/* explanation text: spaces, c r t */
	expands(&v, "%{c} is not one of %{d}'s designated mail servers (checked by %{r} at %{t})", true,
		"192.0.2.3 is not one of email.example.com's designated mail servers (checked by receiver.example.net at "
		"1700000000)");
	/* IPv6 (§7.4): dotted nibbles */
	v.ip_dotted = "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1";
	v.ipv6 = true;
	expands(&v, "%{ir}.%{v}._spf.%{d2}", false,
		"1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

static void test_macro_limits(void **state)
{
	(void)state;
	struct spf_macro_vars v = v4_vars();
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 50; i < sizeof(big) - 1; i += 51)
		big[i] = '.';
	v.local = big;
	/* §7.3: over 253 octets, labels go from the left */
	char out[600], err[200];
	assert_true(spf_macro_expand(&v, "%{l}.example.com", 16, false, out, sizeof(out), err, sizeof(err)));
	assert_true(strlen(out) <= 253);
	assert_non_null(strstr(out, ".example.com"));
	/* too small an output is an error, never a cut */
	assert_false(spf_macro_expand(&v, "%{l}", 4, true, out, 20, err, sizeof(err)));
	/* many digits: all parts */
	v.local = "a.b.c";
	assert_true(spf_macro_expand(&v, "%{l99999999999}", 15, false, out, sizeof(out), err, sizeof(err)));
	assert_string_equal(out, "a.b.c");
}

/* --- check_host over a fake DNS -------------------------------------------------------- */

struct fake_rr {
	const char *name;
	enum dns_type type;
	const char *value;       /* TXT text, address, MX/PTR name; "TIMEOUT" */
};

struct fake_dns {
	const struct fake_rr *rr;
	size_t n;
	unsigned queries;
};

static void fake_lookup(void *ctx, enum dns_type type, const char *name, unsigned timeout_ms, struct dns_result *res)
{
	(void)timeout_ms;
	struct fake_dns *d = ctx;
	d->queries++;
	memset(res, 0, sizeof(*res));
	res->type = type;
	res->rcode = DNS_NXDOMAIN;
	res->rr = calloc(16, sizeof(*res->rr));
	for (size_t i = 0; i < d->n; i++) {
		if (strcasecmp(d->rr[i].name, name) != 0)
			continue;
		res->rcode = DNS_NOERROR;
		if (d->rr[i].type != type)
			continue;
		if (strcmp(d->rr[i].value, "TIMEOUT") == 0) {
			res->rcode = DNS_TIMEOUT;
			return;
		}
		struct dns_rr *r = &res->rr[res->n++];
		const char *v = d->rr[i].value;
		if (type == DNS_TXT) {
			r->u.txt.text = strdup(v);
			r->u.txt.len = strlen(v);
		} else if (type == DNS_A || type == DNS_AAAA) {
			r->u.addr.family = type == DNS_A ? AF_INET : AF_INET6;
			inet_pton(r->u.addr.family, v, r->u.addr.bytes);
		} else if (type == DNS_MX)
			snprintf(r->u.mx.exchange, sizeof(r->u.mx.exchange), "%s", v);
		else
			snprintf(r->u.name, sizeof(r->u.name), "%s", v);
		if (res->n == 16)
			break;
	}
}

static enum spf_result check(const struct fake_rr *rr, size_t n, const char *ip, const char *sender,
	struct spf_outcome *o)
{
	struct fake_dns d = { .rr = rr, .n = n };
	struct spf_dns dns = { .lookup = fake_lookup, .ctx = &d };
	struct spf_request rq = { .client_ip = ip, .sender = sender, .helo = "mail.example.org", .timeout_ms = 5000 };
	spf_check(&rq, &dns, o);
	return o->result;
}

#define N(a) (sizeof(a) / sizeof(a[0]))

static void test_check_basic(void **state)
{
	(void)state;
	static const struct fake_rr z[] = {
		{ "example.com", DNS_TXT, "v=spf1 mx include:_spf.example.net -all exp=why.example.com" },
		{ "example.com", DNS_TXT, "google-site-verification=xyz" },
		{ "example.com", DNS_MX, "mx.example.com" },
		{ "mx.example.com", DNS_A, "192.0.2.10" },
		{ "_spf.example.net", DNS_TXT, "v=spf1 ip4:198.51.100.0/24 ~all" },
		{ "why.example.com", DNS_TXT, "%{i} is not ours; ask postmaster@%{d}" },
	};
	struct spf_outcome o;
	assert_int_equal(check(z, N(z), "192.0.2.10", "a@example.com", &o), SPF_PASS);
	assert_string_equal(o.mechanism, "mx");
	assert_int_equal(check(z, N(z), "198.51.100.5", "a@example.com", &o), SPF_PASS);
	assert_string_equal(o.mechanism, "include:_spf.example.net");
	/* the include's ~all does not match (§5.2): the outer -all decides */
	assert_int_equal(check(z, N(z), "203.0.113.5", "a@example.com", &o), SPF_FAIL);
	assert_string_equal(o.mechanism, "-all");
	assert_true(o.record_has_fail_all);
	assert_string_equal(o.explanation, "203.0.113.5 is not ours; ask postmaster@example.com");
	assert_string_equal(o.words, "203.0.113.5 is not allowed to send for example.com: its SPF record ends in -all; "
		"example.com explains: \"203.0.113.5 is not ours; ask postmaster@example.com\"");
	/* IPv4-mapped IPv6 is the IPv4 address */
	assert_int_equal(check(z, N(z), "::ffff:192.0.2.10", "a@example.com", &o), SPF_PASS);
	assert_string_equal(o.client_ip, "192.0.2.10");
	/* no record */
	assert_int_equal(check(z, N(z), "192.0.2.10", "a@nowhere.example", &o), SPF_NONE);
	assert_int_equal(check(z, N(z), "192.0.2.10", "a@localhost", &o), SPF_NONE);
}

static void test_check_limits(void **state)
{
	(void)state;
	static const struct fake_rr z[] = {
		{ "loop.example", DNS_TXT, "v=spf1 include:loop.example -all" },
		{ "redir.example", DNS_TXT, "v=spf1 redirect=redir.example" },
		{ "voids.example", DNS_TXT, "v=spf1 a:n1.voids.example a:n2.voids.example a:n3.voids.example +all" },
		{ "slow.example", DNS_TXT, "v=spf1 a:t.slow.example -all" },
		{ "t.slow.example", DNS_A, "TIMEOUT" },
		{ "txtslow.example", DNS_TXT, "TIMEOUT" },
		{ "two.example", DNS_TXT, "v=spf1 -all" },
		{ "two.example", DNS_TXT, "v=spf1 +all" },
		{ "inone.example", DNS_TXT, "v=spf1 include:nothing.example -all" },
	};
	struct spf_outcome o;
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@loop.example", &o), SPF_PERMERROR);
	assert_non_null(strstr(o.words, "more than 10 DNS-querying terms"));
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@redir.example", &o), SPF_PERMERROR);
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@voids.example", &o), SPF_PERMERROR);
	assert_non_null(strstr(o.words, "found nothing"));
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@slow.example", &o), SPF_TEMPERROR);
	assert_non_null(strstr(o.words, "timed out"));
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@txtslow.example", &o), SPF_TEMPERROR);
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@two.example", &o), SPF_PERMERROR);
	assert_int_equal(check(z, N(z), "192.0.2.1", "a@inone.example", &o), SPF_PERMERROR);
}

static void test_identities(void **state)
{
	(void)state;
	static const struct fake_rr z[] = {
		{ "mail.example.org", DNS_TXT, "v=spf1 a -all" },
		{ "mail.example.org", DNS_A, "192.0.2.25" },
		{ "example.com", DNS_TXT, "v=spf1 -all" },
	};
	struct fake_dns d = { .rr = z, .n = N(z) };
	struct spf_dns dns = { .lookup = fake_lookup, .ctx = &d };
	struct spf_outcome o;
	/* the null sender: postmaster@HELO, identity helo (§2.4) */
	struct spf_request rq = { .client_ip = "192.0.2.25", .sender = "", .helo = "Mail.Example.org",
		.check_helo = true };
	spf_check(&rq, &dns, &o);
	assert_int_equal(o.result, SPF_PASS);
	assert_int_equal(o.identity, SPF_ID_HELO);
	assert_string_equal(o.sender, "postmaster@mail.example.org");
	assert_string_equal(o.domain, "mail.example.org");
	/* a sender, and the HELO checked separately (§2.3) */
	rq.sender = "someone@example.com";
	spf_check(&rq, &dns, &o);
	assert_int_equal(o.result, SPF_FAIL);
	assert_int_equal(o.identity, SPF_ID_MAILFROM);
	assert_true(o.helo.checked);
	assert_int_equal(o.helo.result, SPF_PASS);
	/* a HELO address literal is not checked */
	rq.helo = "[192.0.2.25]";
	spf_check(&rq, &dns, &o);
	assert_false(o.helo.checked);
	assert_int_equal(o.helo.result, SPF_NONE);
	/* an empty local-part is postmaster (§4.3) */
	rq.sender = "@example.com";
	spf_check(&rq, &dns, &o);
	assert_string_equal(o.sender, "postmaster@example.com");
	/* names */
	enum spf_result r;
	assert_true(spf_result_from_name("softfail", &r));
	assert_int_equal(r, SPF_SOFTFAIL);
	assert_string_equal(spf_result_name(SPF_TEMPERROR), "temperror");
	assert_false(spf_result_from_name("maybe", &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_selection),
		cmocka_unit_test(test_parse_terms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_macro_examples),
		cmocka_unit_test(test_macro_limits),
		cmocka_unit_test(test_check_basic),
		cmocka_unit_test(test_check_limits),
		cmocka_unit_test(test_identities),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
