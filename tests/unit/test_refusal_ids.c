/* test_refusal_ids.c - the cause ids that label postern_refusals_total are the ones
 * `postern explain` names: every refusal of the SMTP reply catalogue against the
 * knowledge base's answer for its text (data/explain.ini), every policy cause a valid id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "diag/explain.h"
#include "policy/policy.h"
#include "smtp/reply.h"

static struct explain_kb *kb;

static int load_kb(void **state)
{
	(void)state;
	char path[1024], err[256];
	if (!explain_kb_locate(path, sizeof(path)) || !explain_kb_load_file(&kb, path, err, sizeof(err))) {
		fprintf(stderr, "cannot load the knowledge base: %s\n", err);
		return -1;
	}
	return 0;
}

static int free_kb(void **state)
{
	(void)state;
	explain_kb_free(&kb);
	return 0;
}

static void test_catalogue_ids_match_explain(void **state)
{
	(void)state;
	int checked = 0, mismatches = 0;
	for (int id = 0; id < REPLY_ID_COUNT; id++) {
		const struct reply_entry *e = reply_get(id);
		if (e->code < 400)
			continue;
		char text[2048];
		snprintf(text, sizeof(text), "%d %s %s %s", e->code, e->enh ? e->enh : "", e->text, e->hint ? e->hint : "");
		struct explain_result r;
		explain_match(kb, text, strlen(text), &r);
		const char *ours = reply_cause_id(id);
		assert_true(explain_cause_id_valid(ours));
		/* A user never has to guess: every refusal Postern gives has a cause explain knows. */
		if (strcmp(ours, "unknown") == 0) {
			fprintf(stderr, "reply %d (%d %s \"%.50s\"): no cause id\n", id, e->code, e->enh ? e->enh : "", e->text);
			mismatches++;
		}
		if (strcmp(ours, r.causes[0]->id) != 0) {
			fprintf(stderr, "reply %d (%d %s \"%.50s\"): refusal_cause_ids says %s, postern explain says %s\n",
				id, e->code, e->enh ? e->enh : "", e->text, ours, r.causes[0]->id);
			mismatches++;
		}
		checked++;
	}
	assert_true(checked > 40);
	assert_int_equal(mismatches, 0);
}

static void test_policy_cause_ids_valid(void **state)
{
	(void)state;
	for (int c = CAUSE_NONE + 1; c < CAUSE_COUNT; c++) {
		const char *id = policy_cause_id(c);
		if (!explain_cause_id_valid(id) || strcmp(id, "unknown") == 0)
			fail_msg("cause %d (%s) has cause id \"%s\"", c, policy_cause_name(c), id);
	}
	assert_string_equal(policy_cause_id(CAUSE_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalogue_ids_match_explain),
		cmocka_unit_test(test_policy_cause_ids_valid),
	};
	return cmocka_run_group_tests(tests, load_kb, free_kb);
}
