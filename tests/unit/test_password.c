/* test_password.c - hashing, verification of foreign hash formats, and the cache
 * of recent successes (which must never accept a changed or revoked password). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <crypt.h>
#include <string.h>

#include "auth/password.h"

static void test_hash_and_verify(void **state)
{
	(void)state;
	char h[PASSWORD_HASH_MAX];
	assert_true(password_hash("correct horse", h, sizeof(h)));
	assert_memory_equal(h, "$y$", 3);   /* yescrypt */
	assert_true(password_verify("correct horse", h));
	assert_false(password_verify("correct horsE", h));
	assert_false(password_verify("", h));
	assert_false(password_verify("x", "*"));
	assert_false(password_verify("x", "!"));
	assert_false(password_verify("x", ""));
}

/* Hashes as Dovecot or /etc/shadow write them keep working after a migration. */
static void test_foreign_formats(void **state)
{
	(void)state;
	static const char *const prefixes[] = { "$6$", "$5$", "$2b$" };
	for (size_t i = 0; i < 3; i++) {
		char salt[CRYPT_GENSALT_OUTPUT_SIZE];
		assert_non_null(crypt_gensalt_rn(prefixes[i], 0, NULL, 0, salt, sizeof(salt)));
		struct crypt_data cd;
		memset(&cd, 0, sizeof(cd));
		const char *h = crypt_r("migrated", salt, &cd);
		assert_non_null(h);
		assert_true(password_verify("migrated", h));
		assert_false(password_verify("migrateD", h));
	}
}

static void test_cache(void **state)
{
	(void)state;
	char old[PASSWORD_HASH_MAX], changed[PASSWORD_HASH_MAX];
	assert_true(password_hash("phone-pass", old, sizeof(old)));
	assert_true(password_verify_cached("phone-pass", old, 3600));
	assert_true(password_verify_cached("phone-pass", old, 3600));   /* from the cache */
	assert_false(password_verify_cached("wrong", old, 3600));
	/* The password is changed: the new stored hash never matches the old entry. */
	assert_true(password_hash("new-pass", changed, sizeof(changed)));
	assert_false(password_verify_cached("phone-pass", changed, 3600));
	assert_true(password_verify_cached("new-pass", changed, 3600));
	/* ttl 0: no cache, still correct. */
	assert_true(password_verify_cached("new-pass", changed, 0));
	assert_false(password_verify_cached("phone-pass", changed, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_foreign_formats),
		cmocka_unit_test(test_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
