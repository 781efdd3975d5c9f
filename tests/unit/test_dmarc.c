/* test_dmarc.c - DMARC (RFC 7489): the record parser on good, odd and broken
 * records; organisational domains from the public suffix list (co.uk-style names);
 * the alignment table (strict/relaxed, subdomains); policy discovery against a table
 * of TXT answers (the org-domain fallback, sp=, several records, a time-out); pct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "mailauth/dmarc.h"

static enum dmarc_parse parse(const char *txt, struct dmarc_record *r)
{
	char why[160];
	return dmarc_record_parse(txt, strlen(txt), r, why, sizeof(why));
}

static void test_parse_good(void **state)
{
	(void)state;
	struct dmarc_record r;
	assert_int_equal(parse("v=DMARC1; p=reject", &r), DMARC_PARSE_OK);
	assert_true(r.p_valid);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_false(r.sp_set);
	assert_int_equal(r.adkim, DMARC_RELAXED);
	assert_int_equal(r.aspf, DMARC_RELAXED);
	assert_int_equal(r.pct, 100);
	assert_string_equal(r.fo, "0");
	assert_string_equal(r.rf, "afrf");
	assert_int_equal(r.ri, 86400);

	assert_int_equal(parse("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;"
		"rua=mailto:d@example.com,mailto:e@example.net!10m;ruf=mailto:f@example.com;fo=1:d;rf=afrf;ri=3600;", &r),
		DMARC_PARSE_OK);
	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	assert_true(r.sp_set && r.sp_valid);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_int_equal(r.adkim, DMARC_STRICT);
	assert_int_equal(r.aspf, DMARC_STRICT);
	assert_int_equal(r.pct, 20);
	assert_true(r.rua_valid);
	assert_string_equal(r.rua, "mailto:d@example.com,mailto:e@example.net!10m");
	assert_string_equal(r.ruf, "mailto:f@example.com");
	assert_string_equal(r.fo, "1:d");
	assert_int_equal(r.ri, 3600);
	assert_int_equal(r.defaulted, 0);

	/* white space around tags and '=', a trailing ';' and blanks, keyword case */
	assert_int_equal(parse("v = DMARC1 ;\tp = Reject ; np=quarantine ;  ", &r), DMARC_PARSE_OK);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_true(r.np_set);
	/* unknown tags are ignored (§6.3) */
	assert_int_equal(parse("v=DMARC1; p=none; future=thing; x_y=1", &r), DMARC_PARSE_OK);
	assert_int_equal(r.p, DMARC_P_NONE);
}

static void test_parse_defaults_and_invalid(void **state)
{
	(void)state;
	struct dmarc_record r;
	/* invalid values of other tags fall back to the defaults (§6.3) */
	assert_int_equal(parse("v=DMARC1; p=reject; pct=101; adkim=x; aspf=; fo=2; ri=-1", &r), DMARC_PARSE_OK);
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.adkim, DMARC_RELAXED);
	assert_int_equal(r.aspf, DMARC_RELAXED);
	assert_string_equal(r.fo, "0");
	assert_int_equal(r.defaulted, 5);
	/* p missing or unknown: the caller applies §6.6.3 step 6 */
	assert_int_equal(parse("v=DMARC1; sp=reject", &r), DMARC_PARSE_OK);
	assert_false(r.p_valid);
	assert_int_equal(parse("v=DMARC1; p=block; rua=mailto:x@example.com", &r), DMARC_PARSE_OK);
	assert_false(r.p_valid);
	assert_true(r.rua_valid);
	assert_int_equal(parse("v=DMARC1; p=none; sp=maybe", &r), DMARC_PARSE_OK);
	assert_true(r.sp_set);
	assert_false(r.sp_valid);
	assert_int_equal(parse("v=DMARC1; p=none; rua=not a uri", &r), DMARC_PARSE_OK);
	assert_false(r.rua_valid);
}

static void test_parse_not_dmarc_or_bad(void **state)
{
	(void)state;
	struct dmarc_record r;
	/* v=DMARC1 first, exactly (§6.3; the version is case-sensitive) */
	assert_int_equal(parse("p=reject; v=DMARC1", &r), DMARC_PARSE_NOT_DMARC);
	assert_int_equal(parse("v=dmarc1; p=reject", &r), DMARC_PARSE_NOT_DMARC);
	assert_int_equal(parse("v=DMARC2; p=reject", &r), DMARC_PARSE_NOT_DMARC);
	assert_int_equal(parse("v=spf1 -all", &r), DMARC_PARSE_NOT_DMARC);
	assert_int_equal(parse("", &r), DMARC_PARSE_NOT_DMARC);
	assert_int_equal(parse("v=DMARC1x", &r), DMARC_PARSE_NOT_DMARC);
	/* a broken tag list */
	assert_int_equal(parse("v=DMARC1; p=reject; p=none", &r), DMARC_PARSE_BAD);    /* a tag twice */
	assert_int_equal(parse("v=DMARC1; p=reject; P=none", &r), DMARC_PARSE_BAD);
	assert_int_equal(parse("v=DMARC1; v=DMARC1; p=none", &r), DMARC_PARSE_BAD);
	assert_int_equal(parse("v=DMARC1;; p=none", &r), DMARC_PARSE_BAD);             /* an empty tag */
	assert_int_equal(parse("v=DMARC1; reject", &r), DMARC_PARSE_BAD);               /* no '=' */
	assert_int_equal(parse("v=DMARC1; 1p=none", &r), DMARC_PARSE_BAD);              /* tag-name */
	assert_int_equal(parse("v=DMARC1; p=no\x01ne", &r), DMARC_PARSE_BAD);
	assert_int_equal(parse("v=DMARC1; p=n\xc3\xa9", &r), DMARC_PARSE_BAD);
	const char nul[] = "v=DMARC1; p=none\0; sp=reject";
	char why[160];
	assert_int_equal(dmarc_record_parse(nul, sizeof(nul) - 1, &r, why, sizeof(why)), DMARC_PARSE_BAD);
}

static void test_org_domain(void **state)
{
	(void)state;
	assert_string_equal(dmarc_psl_error(), "");
	static const char *const table[][2] = {
		{ "example.com", "example.com" },
		{ "mail.example.com", "example.com" },
		{ "a.b.c.example.com", "example.com" },
		{ "Example.COM.", "example.com" },
		{ "example.co.uk", "example.co.uk" },
		{ "mail.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },                 /* a public suffix stands for itself */
		{ "mail.example.com.au", "example.com.au" },
		{ "x.example.test", "example.test" }, /* unknown TLD: the "*" rule */
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char out[256];
		assert_true(dmarc_org_domain(table[i][0], out, sizeof(out)));
		assert_string_equal(out, table[i][1]);
	}
	char small[4];
	assert_false(dmarc_org_domain("example.com", small, sizeof(small)));
	assert_false(dmarc_org_domain("", small, sizeof(small)));
}

static void test_alignment_table(void **state)
{
	(void)state;
	static const struct {
		const char *from, *auth;
		bool relaxed, strict;
	} table[] = {
		{ "example.com", "example.com", true, true },
		{ "example.com", "EXAMPLE.com", true, true },
		{ "example.com", "mail.example.com", true, false },    /* subdomain of the author */
		{ "news.example.com", "example.com", true, false },    /* author is the subdomain */
		{ "news.example.com", "bounce.example.com", true, false },
		{ "example.com", "example.net", false, false },
		{ "example.com", "badexample.com", false, false },
		{ "example.co.uk", "mail.example.co.uk", true, false },
		{ "example.co.uk", "other.co.uk", false, false },      /* co.uk is a public suffix */
		{ "a.example.co.uk", "b.example.co.uk", true, false },
		{ "example.com", "", false, false },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		assert_int_equal(dmarc_aligned(table[i].from, table[i].auth, DMARC_RELAXED), table[i].relaxed);
		assert_int_equal(dmarc_aligned(table[i].from, table[i].auth, DMARC_STRICT), table[i].strict);
	}
}

/* --- discovery against a table of TXT answers --------------------------------- */

struct zone {
	const char *name;
	enum dns_rcode rcode;
	const char *txt[3];
};

struct fake_dns {
	const struct zone *zone;
	unsigned lookups;
};

static void fake_txt(void *ctx, const char *name, struct dns_result *res)
{
	struct fake_dns *f = ctx;
	f->lookups++;
	res->type = DNS_TXT;
	res->rcode = DNS_NXDOMAIN;
	for (const struct zone *z = f->zone; z->name; z++) {
		if (strcmp(z->name, name) != 0)
			continue;
		res->rcode = z->rcode;
		size_t n = 0;
		while (n < 3 && z->txt[n])
			n++;
		res->rr = n ? calloc(n, sizeof(*res->rr)) : NULL;
		for (size_t i = 0; i < n; i++) {
			res->rr[i].u.txt.text = strdup(z->txt[i]);
			res->rr[i].u.txt.len = strlen(z->txt[i]);
		}
		res->n = n;
	}
}

static const struct zone zone[] = {
	{ "_dmarc.example.com", DNS_NOERROR, { "v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine; aspf=s" } },
	{ "_dmarc.none.example", DNS_NOERROR, { "v=DMARC1; p=none" } },
	{ "_dmarc.two.example", DNS_NOERROR, { "v=DMARC1; p=reject", "v=DMARC1; p=none" } },
	{ "_dmarc.slow.example", DNS_TIMEOUT, { NULL } },
	{ "_dmarc.nop.example", DNS_NOERROR, { "v=DMARC1; rua=mailto:r@nop.example" } },
	{ "_dmarc.nopnorua.example", DNS_NOERROR, { "v=DMARC1; sp=reject" } },
	{ "_dmarc.half.example", DNS_NOERROR, { "v=DMARC1; p=reject; pct=50" } },
	{ "_dmarc.example.co.uk", DNS_NOERROR, { "v=DMARC1; p=reject" } },
	{ NULL, DNS_NOERROR, { NULL } },
};

static void check(const char *from, bool spf_pass, const char *spf_domain, const struct dmarc_dkim_sig *sigs,
	size_t n, unsigned sample, struct dmarc_outcome *o)
{
	struct fake_dns f = { zone, 0 };
	struct dmarc_dns dns = { fake_txt, &f };
	struct dmarc_check c = {
		.from_domain = from, .spf_pass = spf_pass, .spf_domain = spf_domain,
		.spf_words = spf_pass ? "" : "192.0.2.7 is not allowed to send for example.com",
		.dkim = sigs, .n_dkim = n, .sample = sample,
	};
	dmarc_evaluate(&dns, &c, o);
	assert_true(f.lookups <= 2);
}

static void test_evaluate(void **state)
{
	(void)state;
	struct dmarc_outcome o;
	/* SPF aligned strictly */
	check("example.com", true, "example.com", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_PASS);
	assert_true(o.spf_aligned);
	assert_string_equal(o.record_domain, "example.com");
	/* aspf=s: a subdomain's SPF pass does not align */
	check("example.com", true, "bounce.example.com", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_int_equal(o.disposition, DMARC_P_REJECT);
	assert_string_equal(o.dkim_words, "no signature");
	/* adkim relaxed: a subdomain's signature aligns */
	struct dmarc_dkim_sig sub = { .pass = true, .d = "mail.example.com" };
	check("example.com", false, "example.com", &sub, 1, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_PASS);
	assert_true(o.dkim_aligned);
	assert_string_equal(o.dkim_domain, "mail.example.com");
	/* nothing confirms: fail, with SPF's own words */
	struct dmarc_dkim_sig bad = { .pass = false, .d = "example.com", .words = "the body was changed after signing" };
	check("example.com", false, "example.com", &bad, 1, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_string_equal(o.spf_words, "192.0.2.7 is not allowed to send for example.com");
	assert_non_null(strstr(o.dkim_words, "the body was changed after signing"));
	/* a subdomain without a record of its own: the org record's sp= */
	check("news.example.com", false, "news.example.com", NULL, 0, 0, &o);
	assert_string_equal(o.org_domain, "example.com");
	assert_string_equal(o.record_domain, "example.com");
	assert_true(o.policy_is_sp);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	/* co.uk-style: the org domain example.co.uk has the record */
	check("mail.example.co.uk", false, "mail.example.co.uk", NULL, 0, 0, &o);
	assert_string_equal(o.record_domain, "example.co.uk");
	assert_int_equal(o.policy, DMARC_P_REJECT);
	/* a signature by another domain does not align */
	struct dmarc_dkim_sig other = { .pass = true, .d = "example.net" };
	check("example.co.uk", false, "", &other, 1, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_non_null(strstr(o.dkim_words, "example.net"));
}

static void test_evaluate_errors_and_pct(void **state)
{
	(void)state;
	struct dmarc_outcome o;
	check("nothing.example", false, "nothing.example", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_NONE);
	assert_false(o.have_policy);
	check("two.example", false, "two.example", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_PERMERROR);   /* several records: none applies */
	check("slow.example", false, "slow.example", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_TEMPERROR);
	/* no valid p=, but a valid rua: as p=none (§6.6.3 step 6) */
	check("nop.example", false, "nop.example", NULL, 0, 0, &o);
	assert_true(o.have_policy);
	assert_int_equal(o.policy, DMARC_P_NONE);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	check("nopnorua.example", false, "nopnorua.example", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_PERMERROR);
	/* an aligned DKIM check that could not finish: temporary, never fail */
	struct dmarc_dkim_sig later = { .temperror = true, .d = "example.com" };
	check("example.com", false, "example.com", &later, 1, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_TEMPERROR);
	/* pct=50: inside the sample reject, outside quarantine (§6.6.4) */
	check("half.example", false, "half.example", NULL, 0, 10, &o);
	assert_int_equal(o.disposition, DMARC_P_REJECT);
	assert_false(o.sampled_out);
	check("half.example", false, "half.example", NULL, 0, 60, &o);
	assert_int_equal(o.disposition, DMARC_P_QUARANTINE);
	assert_true(o.sampled_out);
	/* p=none: fail, nothing to do */
	check("none.example", false, "none.example", NULL, 0, 0, &o);
	assert_int_equal(o.result, DMARC_RESULT_FAIL);
	assert_int_equal(o.disposition, DMARC_P_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_defaults_and_invalid),
		cmocka_unit_test(test_parse_not_dmarc_or_bad),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_alignment_table),
		cmocka_unit_test(test_evaluate),
		cmocka_unit_test(test_evaluate_errors_and_pct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
