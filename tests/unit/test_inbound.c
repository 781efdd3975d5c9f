/* test_inbound.c - the inbound checks' words and verdicts (policy/inbound_words.c) on
 * findings made up here: p=reject refused with the words, sp= of the
 * organisational domain named as such, quarantine with its field, dmarc_reject = no,
 * temporary results (and none for p=none), the strictest of several From: domains,
 * and the Authentication-Results field that goes with each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "policy/inbound.h"
#include "policy/policy.h"

static struct conf conf;

static int setup(void **state)
{
	(void)state;
	conf_defaults(&conf);
	snprintf(conf.hostname, sizeof(conf.hostname), "mx.example.org");
	return 0;
}

static struct dmarc_outcome *domain(struct inbound_check *ck, const char *from, const char *record,
	enum dmarc_policy p, enum dmarc_result r)
{
	struct dmarc_outcome *o = &ck->dmarc[ck->n_from];
	snprintf(ck->from[ck->n_from++], DMARC_DOMAIN_MAX, "%s", from);
	ck->from_fields = 1;
	snprintf(o->from_domain, sizeof(o->from_domain), "%s", from);
	snprintf(o->org_domain, sizeof(o->org_domain), "%s", record);
	snprintf(o->record_domain, sizeof(o->record_domain), "%s", record);
	o->have_policy = true;
	o->rec.pct = 100;
	o->policy = o->disposition = p;
	o->result = r;
	snprintf(o->spf_words, sizeof(o->spf_words), "192.0.2.7 is not allowed to send for %s", from);
	snprintf(o->dkim_words, sizeof(o->dkim_words), "no signature");
	snprintf(o->words, sizeof(o->words), "the DNS lookup of _dmarc.%s failed (timeout)", from);
	return o;
}

static struct policy_facts *decide(const struct inbound_check *ck, struct verdict *v)
{
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	assert_non_null(f);
	verdict_set(v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
	inbound_decide(&conf, f, ck, v);
	assert_non_null(f->added);
	assert_non_null(strstr(f->added, "Authentication-Results: mx.example.org;\r\n"));
	return f;
}

static void test_reject_words(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	domain(&ck, "example.com", "example.com", DMARC_P_REJECT, DMARC_RESULT_FAIL);
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_PERM);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enh, "5.7.1");
	assert_string_equal(v.reason, "the message claims to be from example.com, but example.com's DMARC policy says to "
		"reject mail that neither SPF nor DKIM confirms; SPF: 192.0.2.7 is not allowed to send for example.com; "
		"DKIM: no signature");
	assert_non_null(strstr(v.hint, "administrator of example.com"));
	assert_non_null(strstr(f->added, "dmarc=fail (p=reject dis=reject) header.from=example.com"));
	assert_non_null(strstr(f->added, "dkim=none"));
	policy_facts_free(&f);
}

static void test_subdomain_policy_words(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	struct dmarc_outcome *o = domain(&ck, "news.example.com", "example.com", DMARC_P_REJECT, DMARC_RESULT_FAIL);
	o->policy_is_sp = true;
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_non_null(strstr(v.reason, "claims to be from news.example.com, but the DMARC policy of example.com for its "
		"subdomains says to reject"));
	assert_non_null(strstr(f->added, "(sp=reject dis=reject)"));
	policy_facts_free(&f);
}

static void test_quarantine_and_reject_off(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	domain(&ck, "example.com", "example.com", DMARC_P_QUARANTINE, DMARC_RESULT_FAIL);
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_OK);
	assert_non_null(strstr(f->added, "\r\nX-Postern-Quarantine: dmarc; example.com's DMARC policy asks to quarantine"));
	policy_facts_free(&f);

	struct inbound_check ck2 = { 0 };
	domain(&ck2, "example.com", "example.com", DMARC_P_REJECT, DMARC_RESULT_FAIL);
	conf.dmarc_reject = false;
	f = decide(&ck2, &v);
	conf.dmarc_reject = true;
	assert_int_equal(v.kind, VERDICT_OK);
	assert_non_null(strstr(f->added, "X-Postern-Quarantine: dmarc; example.com's DMARC policy asks to reject"));
	policy_facts_free(&f);

	/* no dedicated field: Authentication-Results alone says so */
	conf.dmarc_quarantine_header[0] = '\0';
	f = decide(&ck, &v);
	snprintf(conf.dmarc_quarantine_header, sizeof(conf.dmarc_quarantine_header), "X-Postern-Quarantine");
	assert_null(strstr(f->added, "X-Postern-Quarantine"));
	assert_non_null(strstr(f->added, "dis=quarantine"));
	policy_facts_free(&f);
}

static void test_temporary(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	struct dmarc_outcome *o = domain(&ck, "slow.example", "slow.example", DMARC_P_NONE, DMARC_RESULT_TEMPERROR);
	o->have_policy = false;   /* the record itself did not come */
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_TEMP);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, "4.4.3");
	assert_string_equal(v.reason, "temporary failure: the DMARC check of slow.example could not finish: the DNS "
		"lookup of _dmarc.slow.example failed (timeout)");
	assert_non_null(strstr(f->added, "dmarc=temperror reason=\"the DNS lookup of _dmarc.slow.example failed (timeout)\""));
	policy_facts_free(&f);
	/* p=none asks for nothing: waiting changes nothing, delivered */
	o->have_policy = true;
	f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_OK);
	policy_facts_free(&f);
}

static void test_strictest_of_several_domains(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	domain(&ck, "a.example", "a.example", DMARC_P_QUARANTINE, DMARC_RESULT_FAIL);
	domain(&ck, "b.example", "b.example", DMARC_P_REJECT, DMARC_RESULT_FAIL);
	domain(&ck, "c.example", "c.example", DMARC_P_REJECT, DMARC_RESULT_PASS);
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_PERM);
	assert_non_null(strstr(v.reason, "claims to be from b.example"));
	assert_non_null(strstr(f->added, "header.from=a.example"));
	assert_non_null(strstr(f->added, "header.from=b.example"));
	assert_non_null(strstr(f->added, "dmarc=pass (p=reject dis=none) header.from=c.example"));
	policy_facts_free(&f);
}

static void test_no_from(void **state)
{
	(void)state;
	struct inbound_check ck = { 0 };
	struct verdict v;
	struct policy_facts *f = decide(&ck, &v);
	assert_int_equal(v.kind, VERDICT_OK);
	assert_non_null(strstr(f->added, "dmarc=none reason=\"the message has no From: field\""));
	policy_facts_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reject_words, setup),
		cmocka_unit_test_setup(test_subdomain_policy_words, setup),
		cmocka_unit_test_setup(test_quarantine_and_reject_off, setup),
		cmocka_unit_test_setup(test_temporary, setup),
		cmocka_unit_test_setup(test_strictest_of_several_domains, setup),
		cmocka_unit_test_setup(test_no_from, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
