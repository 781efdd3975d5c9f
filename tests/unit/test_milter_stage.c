/* test_milter_stage.c - the content-filter stage's pure parts (policy/milter_stage.h):
 * a filter's reply turned into Postern's refusal (its code kept, its enhanced code when
 * the catalogue has it, its words after "The content filter (NAME) refused ..."), the
 * default actions' verdicts, and a header block split into the fields a filter is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "policy/milter_stage.h"
#include "wire/enh.h"

static struct milter_peer peer(enum milter_action a)
{
	struct milter_peer p;
	memset(&p, 0, sizeof(p));
	snprintf(p.fc.name, sizeof(p.fc.name), "rspamd");
	snprintf(p.fc.socket, sizeof(p.fc.socket), "inet:127.0.0.1:11332");
	snprintf(p.display, sizeof(p.display), "rspamd");
	p.fc.default_action = a;
	return p;
}

static void test_replycode(void **state)
{
	(void)state;
	static const struct {
		const char *reply;
		enum policy_point point;
		int code;
		const char *enh;
		const char *reason;
	} rows[] = {
		{ "554 5.7.1 Spam message rejected", POLICY_AT_END_OF_DATA, 554, ENH_PERM_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message: Spam message rejected" },
		{ "550 5.1.1 no such user here", POLICY_AT_RCPT, 550, ENH_PERM_BAD_MAILBOX,
		  "The content filter (rspamd) refused this recipient: no such user here" },
		{ "451 4.7.1 try again later", POLICY_AT_MAIL, 451, ENH_TEMP_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message for now: try again later" },
		{ "550 5.7.99 not in the catalogue", POLICY_AT_END_OF_DATA, 550, ENH_PERM_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message: not in the catalogue" },
		{ "550 no enhanced code", POLICY_AT_END_OF_DATA, 550, ENH_PERM_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message: no enhanced code" },
		{ "550-5.7.1 first line\n550 5.7.1 second line", POLICY_AT_END_OF_DATA, 550, ENH_PERM_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message: first line; second line" },
		{ "550 5.7.1 caf\xc3\xa9 \x01" "bell", POLICY_AT_END_OF_DATA, 550, ENH_PERM_NOT_AUTHORIZED,
		  "The content filter (rspamd) refused this message: caf??  bell" },
	};
	struct milter_peer p = peer(MILTER_DEFAULT_TEMPFAIL);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct verdict v;
		memset(&v, 0, sizeof(v));
		milter_refusal_verdict(&p, rows[i].point, MILTER_REPLYCODE, rows[i].reply, &v);
		assert_int_equal(v.code, rows[i].code);
		assert_string_equal(v.enh, rows[i].enh);
		assert_string_equal(v.reason, rows[i].reason);
		assert_int_equal(v.kind, rows[i].code >= 500 ? VERDICT_PERM : VERDICT_TEMP);
		assert_int_equal(v.cause, CAUSE_CONTENT_FILTER);
	}
	struct verdict v;
	milter_refusal_verdict(&p, POLICY_AT_END_OF_DATA, MILTER_REJECT, NULL, &v);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.reason, "The content filter (rspamd) refused this message");
	milter_refusal_verdict(&p, POLICY_AT_END_OF_DATA, MILTER_TEMPFAIL, NULL, &v);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, ENH_TEMP_NOT_AUTHORIZED);
}

static void test_default_actions(void **state)
{
	(void)state;
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	assert_non_null(f);
	struct verdict v;
	verdict_set(&v, VERDICT_OK, 250, ENH_OK, CAUSE_NONE, "", "");
	struct milter_peer p = peer(MILTER_DEFAULT_ACCEPT);
	milter_failure_verdict(&p, f, "did not answer within 10 seconds", &v);
	assert_int_equal(v.kind, VERDICT_OK);
	p = peer(MILTER_DEFAULT_TEMPFAIL);
	milter_failure_verdict(&p, f, "closed the connection", &v);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enh, ENH_TEMP_NOT_AUTHORIZED);
	assert_non_null(strstr(v.reason, "content filter (rspamd) not answering; this is the server's fault, not your "
		"message's; try again later"));
	assert_int_equal(v.cause, CAUSE_FILTER_UNAVAILABLE);
	p = peer(MILTER_DEFAULT_REJECT);
	milter_failure_verdict(&p, f, "connect refused", &v);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enh, ENH_PERM_NOT_AUTHORIZED);
	policy_facts_free(&f);
}

static void test_header_split(void **state)
{
	(void)state;
	static const char block[] = "Received: from x\r\n\tby y\r\nSubject: hi\r\nNot a field\r\nName :obsolete\r\n"
		"X-Empty:\r\nBad Name: x\r\n";
	struct milter_message m;
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	assert_true(milter_message_split(&m, block, sizeof(block) - 1));
	assert_int_equal(m.n_fields, 4);
	assert_string_equal(m.fields[0].name, "Received");
	assert_string_equal(m.fields[0].value, " from x\n\tby y");
	assert_string_equal(m.fields[1].name, "Subject");
	assert_string_equal(m.fields[1].value, " hi");
	assert_string_equal(m.fields[2].name, "Name");
	assert_string_equal(m.fields[2].value, "obsolete");
	assert_string_equal(m.fields[3].name, "X-Empty");
	assert_string_equal(m.fields[3].value, "");
	milter_message_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replycode),
		cmocka_unit_test(test_default_actions),
		cmocka_unit_test(test_header_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
