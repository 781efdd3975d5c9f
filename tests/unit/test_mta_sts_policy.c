/* test_mta_sts_policy.c - conf/mta_sts.c: the policy this server publishes, read back
 * by Postern's own sender-side parser (delivery/mta_sts.c, RFC 8461 §3.2), its id (a
 * digest: the same policy the same id, another policy another), and when nothing is
 * published (mode off, no STARTTLS on an mx listener). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "delivery/mta_sts.h"

static void load(struct conf *c, const char *extra)
{
	char text[2048], err[512];
	snprintf(text, sizeof(text), "[server]\nhostname = mx.example.test\ndata_dir = /tmp/x\nlocal_domains = example.test\n"
		"[listener smtp]\nport = 25\ntls = starttls\n%s", extra);
	assert_true(conf_load_string(c, text, "test", err, sizeof(err)));
}

static void test_round_trip_through_the_parser(void **state)
{
	(void)state;
	static struct conf c;
	load(&c, "[mta-sts]\nmode = enforce\nmx = mx.example.test, *.backup.example.test\nmax_age = 30d\n");
	char policy[CONF_MTA_STS_POLICY_MAX], id[CONF_MTA_STS_ID_MAX], err[256];
	assert_true(conf_mta_sts_policy(&c, policy, sizeof(policy), id, sizeof(id)));
	assert_string_equal(policy, "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmx: *.backup.example.test\r\n"
		"max_age: 2592000\r\n");
	struct sts_policy p;
	assert_true(sts_parse_policy(policy, strlen(policy), &p, err, sizeof(err)));
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 2592000);
	assert_true(sts_mx_matches(&p, "mx.example.test"));
	assert_true(sts_mx_matches(&p, "mx2.backup.example.test"));
	assert_false(sts_mx_matches(&p, "mx.elsewhere.test"));
	/* the id is what the TXT record parser accepts */
	char txt[80], parsed[STS_ID_MAX];
	snprintf(txt, sizeof(txt), "v=STSv1; id=%s", id);
	assert_true(sts_parse_txt(txt, strlen(txt), parsed, sizeof(parsed), err, sizeof(err)));
	assert_string_equal(parsed, id);
}

static void test_id_follows_the_policy(void **state)
{
	(void)state;
	static struct conf a, b;
	load(&a, "");
	load(&b, "[mta-sts]\nmode = testing\nmax_age = 7d\n");
	char pa[CONF_MTA_STS_POLICY_MAX], pb[CONF_MTA_STS_POLICY_MAX], ida[CONF_MTA_STS_ID_MAX], idb[CONF_MTA_STS_ID_MAX];
	assert_true(conf_mta_sts_policy(&a, pa, sizeof(pa), ida, sizeof(ida)));
	assert_true(conf_mta_sts_policy(&b, pb, sizeof(pb), idb, sizeof(idb)));
	/* the defaults: testing, the host name, a week */
	assert_string_equal(pa, "version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 604800\r\n");
	assert_string_equal(pa, pb);
	assert_string_equal(ida, idb);
	assert_int_equal(strlen(ida), 20);
	load(&b, "[mta-sts]\nmode = none\n");
	assert_true(conf_mta_sts_policy(&b, pb, sizeof(pb), idb, sizeof(idb)));
	assert_non_null(strstr(pb, "mode: none\r\n"));
	assert_string_not_equal(ida, idb);
}

static void test_nothing_published(void **state)
{
	(void)state;
	static struct conf c;
	char p[CONF_MTA_STS_POLICY_MAX], id[CONF_MTA_STS_ID_MAX];
	load(&c, "[mta-sts]\nmode = off\n");
	assert_false(conf_mta_sts_policy(&c, p, sizeof(p), id, sizeof(id)));
	assert_string_equal(p, "");
	char text[512], err[256];
	snprintf(text, sizeof(text), "[server]\nhostname = mx.example.test\ndata_dir = /tmp/x\n[listener smtp]\nport = 25\n");
	assert_true(conf_load_string(&c, text, "test", err, sizeof(err)));
	assert_false(conf_mta_sts_policy(&c, p, sizeof(p), id, sizeof(id)));   /* no STARTTLS on mx */
	/* a name that is not a host name is refused at load */
	snprintf(text, sizeof(text), "[server]\nhostname = h.example\ndata_dir = /tmp/x\n[mta-sts]\nmx = a b_c\n"
		"[listener smtp]\nport = 25\n");
	assert_false(conf_load_string(&c, text, "test", err, sizeof(err)));
	assert_non_null(strstr(err, "[mta-sts] mx"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_through_the_parser),
		cmocka_unit_test(test_id_follows_the_policy),
		cmocka_unit_test(test_nothing_published),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
