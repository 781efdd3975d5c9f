/* test_credentials.c - a login attempt costs one hash whatever the account: unknown
 * user, user without app passwords, user with several, right or wrong, app-password
 * form or not (counted with password_verifications(), not timed).  Legacy app
 * passwords (no selector) still log in while allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/credentials.h"
#include "auth/password.h"
#include "directory/directory.h"

static char dir_path[] = "/tmp/postern-test-credentials-XXXXXX";
static struct directory *dir;
static char dummy[PASSWORD_HASH_MAX];
static char bob_app[3][APP_PASSWORD_LEN + 1];
static char carol_legacy[] = "abcd-efgh-ijkm-npqr-stuv-wxyz";

static void add_user(const char *address, const char *password)
{
	char hash[PASSWORD_HASH_MAX];
	assert_true(password_hash(password, hash, sizeof(hash)));
	assert_int_equal(directory_user_add(dir, address, hash), DIR_OK);
}

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir_path));
	char err[256];
	assert_true(directory_open(&dir, dir_path, err, sizeof(err)));
	assert_int_equal(directory_domain_add(dir, "example.test"), DIR_OK);
	assert_true(password_hash("postern-timing-equaliser", dummy, sizeof(dummy)));
	add_user("alice@example.test", "alice-pw");
	add_user("bob@example.test", "bob-pw");
	add_user("carol@example.test", "carol-pw");
	const char *names[] = { "phone", "laptop", "tablet" };
	for (int i = 0; i < 3; i++) {
		char sel[APP_SELECTOR_LEN + 1], hash[PASSWORD_HASH_MAX];
		assert_true(password_app_generate(bob_app[i], sizeof(bob_app[i]), sel));
		assert_int_equal(strlen(bob_app[i]), APP_PASSWORD_LEN);
		assert_true(password_hash(bob_app[i], hash, sizeof(hash)));
		assert_int_equal(directory_app_password_add(dir, "bob@example.test", names[i], sel, hash), DIR_OK);
	}
	/* Two app passwords as versions before selectors made them. */
	char hash[PASSWORD_HASH_MAX];
	assert_true(password_hash(carol_legacy, hash, sizeof(hash)));
	assert_int_equal(directory_app_password_add(dir, "carol@example.test", "old-phone", NULL, hash), DIR_OK);
	assert_true(password_hash("zzzz-zzzz-zzzz-zzzz-zzzz-zzzz", hash, sizeof(hash)));
	assert_int_equal(directory_app_password_add(dir, "carol@example.test", "old-tablet", NULL, hash), DIR_OK);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	directory_close(&dir);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir_path);
	return system(cmd) == 0 ? 0 : -1;
}

/* Hashes computed by one attempt. */
static unsigned long attempt(const char *user, const char *password, bool legacy, struct credential_result *r)
{
	struct credential_policy p = { .dummy_hash = dummy, .cache_ttl = 0, .legacy_app_passwords = legacy };
	unsigned long before = password_verifications();
	credentials_check(dir, &p, user, password, r);
	return password_verifications() - before;
}

static void test_wrong_password_costs_one_hash_for_everyone(void **state)
{
	(void)state;
	struct credential_result r;
	char app_form[APP_PASSWORD_LEN + 1];
	/* bob's first selector with other random groups: the form and selector of a real one */
	snprintf(app_form, sizeof(app_form), "%.4s-aaaa-bbbb-cccc-dddd-eeee-ffff", bob_app[0]);
	const char *users[] = { "nobody@example.test", "alice@example.test", "bob@example.test", "carol@example.test" };
	const char *guesses[] = { "Spring2026!", app_form, "kkkk-aaaa-bbbb-cccc-dddd-eeee-ffff" };
	for (size_t u = 0; u < 4; u++)
		for (size_t g = 0; g < 3; g++) {
			unsigned long n = attempt(users[u], guesses[g], true, &r);
			if (n != 1)
				fail_msg("%s with %s: %lu hash checks, not 1", users[u], guesses[g], n);
			assert_int_not_equal(r.outcome, CRED_OK);
			assert_int_equal(r.outcome, u == 0 ? CRED_NO_USER : CRED_WRONG_PASSWORD);
		}
}

static void test_right_passwords_cost_one_hash(void **state)
{
	(void)state;
	struct credential_result r;
	assert_int_equal(attempt("alice@example.test", "alice-pw", true, &r), 1);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.which, "main");
	assert_int_equal(attempt("BOB@example.test", "bob-pw", true, &r), 1);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.canonical, "bob@example.test");
	const char *names[] = { "app:phone", "app:laptop", "app:tablet" };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(attempt("bob@example.test", bob_app[i], true, &r), 1);
		assert_int_equal(r.outcome, CRED_OK);
		assert_string_equal(r.which, names[i]);
		assert_false(r.legacy);
	}
	/* An app password logs in only its own account. */
	assert_int_equal(attempt("alice@example.test", bob_app[0], true, &r), 1);
	assert_int_equal(r.outcome, CRED_WRONG_PASSWORD);
}

static void test_legacy_app_passwords(void **state)
{
	(void)state;
	struct credential_result r;
	/* Still accepted while allowed: the account's hash, then the legacy ones. */
	attempt("carol@example.test", carol_legacy, true, &r);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.which, "app:old-phone");
	assert_true(r.legacy);
	/* Only a password of their form pays for them: 1 + 2 legacy hashes. */
	assert_int_equal(attempt("carol@example.test", "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa", true, &r), 3);
	assert_int_equal(attempt("carol@example.test", "not-that-form", true, &r), 1);
	/* Switched off: one hash, and they no longer log in. */
	assert_int_equal(attempt("carol@example.test", carol_legacy, false, &r), 1);
	assert_int_equal(r.outcome, CRED_WRONG_PASSWORD);
	assert_int_equal(directory_legacy_app_password_count(dir), 2);
}

/* The web page's check (primary_only): the account's own password, never an app
 * password nor a legacy one, and still one hash per attempt. */
static void test_primary_only(void **state)
{
	(void)state;
	struct credential_result r;
	struct credential_policy p = { .dummy_hash = dummy, .cache_ttl = 0, .legacy_app_passwords = true, .primary_only = true };
	unsigned long before = password_verifications();
	credentials_check(dir, &p, "bob@example.test", bob_app[0], &r);
	assert_int_equal(password_verifications() - before, 1);
	assert_int_equal(r.outcome, CRED_WRONG_PASSWORD);
	credentials_check(dir, &p, "carol@example.test", carol_legacy, &r);
	assert_int_equal(r.outcome, CRED_WRONG_PASSWORD);
	credentials_check(dir, &p, "bob@example.test", "bob-pw", &r);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.which, "main");
}

static void test_app_password_forms(void **state)
{
	(void)state;
	char sel[APP_SELECTOR_LEN + 1], pw[APP_PASSWORD_LEN + 1];
	assert_true(password_app_generate(pw, sizeof(pw), sel));
	char got[APP_SELECTOR_LEN + 1];
	assert_true(password_app_selector(pw, got));
	assert_string_equal(got, sel);
	assert_false(password_app_legacy_form(pw));
	assert_true(password_app_legacy_form("abcd-efgh-ijkm-npqr-stuv-wxyz"));
	assert_false(password_app_selector("abcd-efgh-ijkm-npqr-stuv-wxyz", got));
	assert_false(password_app_selector("abcd-efgh-ijkm-npqr-stuv-wxyz-abc1", got));   /* '1' not in the alphabet */
	assert_false(password_app_selector("abcd-efgh-ijkm-npqr-stuv-wxyz-abcde", got));
	assert_false(password_app_selector("", got));
}

/* The admin commands' path: the hash is made in auth/ and stored, and logs in. */
static void test_set_passwords(void **state)
{
	(void)state;
	bool no_hash, no_password;
	struct credential_result r;
	assert_int_equal(credentials_user_add(dir, "Dave@example.test", "dave-pw", &no_hash), DIR_OK);
	assert_false(no_hash);
	assert_int_equal(credentials_user_add(dir, "dave@example.test", "other", &no_hash), DIR_EXISTS);
	attempt("dave@example.test", "dave-pw", false, &r);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.which, "main");
	char pw[APP_PASSWORD_LEN + 1];
	assert_int_equal(credentials_app_password_new(dir, "dave@example.test", "phone", pw, sizeof(pw), &no_password),
		DIR_OK);
	assert_false(no_password);
	assert_int_equal(attempt("dave@example.test", pw, false, &r), 1);
	assert_int_equal(r.outcome, CRED_OK);
	assert_string_equal(r.which, "app:phone");
	assert_int_equal(credentials_app_password_new(dir, "dave@example.test", "phone", pw, sizeof(pw), &no_password),
		DIR_EXISTS);
	assert_int_equal(credentials_app_password_new(dir, "nobody@example.test", "phone", pw, sizeof(pw), &no_password),
		DIR_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_password_costs_one_hash_for_everyone),
		cmocka_unit_test(test_right_passwords_cost_one_hash),
		cmocka_unit_test(test_legacy_app_passwords),
		cmocka_unit_test(test_primary_only),
		cmocka_unit_test(test_app_password_forms),
		cmocka_unit_test(test_set_passwords),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
