/* test_mobileconfig.c - web/mobileconfig.c: the profile's settings (autoconfig's
 * order: implicit TLS first, never mx), stable UUIDs per address, XML escaping, and a
 * CMS signature that OpenSSL verifies against the signing certificate and that
 * carries the profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "web/mobileconfig.h"

static void typical(struct autoconfig_settings *s)
{
	autoconfig_settings_init(s, "mx.example.test");
	autoconfig_settings_add(s, ROLE_MX, TLS_STARTTLS, 25);
	autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_STARTTLS, 587);
	autoconfig_settings_add(s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	autoconfig_settings_add(s, ROLE_POP3, TLS_STARTTLS, 110);
	autoconfig_settings_add(s, ROLE_POP3, TLS_IMPLICIT, 995);
}

/* The <string> (or <integer>) after <key>KEY</key>, copied into out. */
static const char *value_of(const char *plist, const char *key, char *out, size_t outsz)
{
	char k[128];
	snprintf(k, sizeof(k), "<key>%s</key>\n\t<", key);
	const char *p = strstr(plist, k);
	assert_non_null(p);
	p = strchr(p + strlen(k), '>');
	assert_non_null(p);
	p++;
	size_t n = strcspn(p, "<\n");
	snprintf(out, outsz, "%.*s", (int)n, p);
	return out;
}

static void render(const struct autoconfig_settings *s, const char *address, struct buf *b)
{
	buf_init(b, MOBILECONFIG_MAX);
	assert_true(mobileconfig_render(s, address, b));
}

static void test_settings(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	typical(&s);
	struct buf b;
	render(&s, "alice@example.test", &b);
	const char *x = buf_cstr(&b);
	char v[128];
	assert_string_equal(value_of(x, "EmailAccountType", v, sizeof(v)), "EmailTypePOP");
	assert_string_equal(value_of(x, "IncomingMailServerPortNumber", v, sizeof(v)), "995");
	assert_string_equal(value_of(x, "OutgoingMailServerPortNumber", v, sizeof(v)), "465");
	assert_string_equal(value_of(x, "OutgoingMailServerHostName", v, sizeof(v)), "mx.example.test");
	assert_string_equal(value_of(x, "OutgoingMailServerUsername", v, sizeof(v)), "alice@example.test");
	assert_string_equal(value_of(x, "OutgoingMailServerAuthentication", v, sizeof(v)), "EmailAuthPassword");
	assert_non_null(strstr(x, "<key>OutgoingPasswordSameAsIncomingPassword</key>\n\t<true/>"));
	assert_non_null(strstr(x, "<key>OutgoingMailServerUseSSL</key>\n\t<true/>"));
	assert_non_null(strstr(x, "<string>com.apple.mail.managed</string>"));
	assert_null(strstr(x, ">25<"));
	buf_free(&b);
	/* only STARTTLS ports: 587 and 110, still with UseSSL */
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_SUBMISSION, TLS_STARTTLS, 587);
	autoconfig_settings_add(&s, ROLE_POP3, TLS_STARTTLS, 110);
	render(&s, "alice@example.test", &b);
	assert_string_equal(value_of(buf_cstr(&b), "OutgoingMailServerPortNumber", v, sizeof(v)), "587");
	assert_string_equal(value_of(buf_cstr(&b), "IncomingMailServerPortNumber", v, sizeof(v)), "110");
	assert_non_null(strstr(buf_cstr(&b), "<key>IncomingMailServerUseSSL</key>\n\t<true/>"));
	buf_free(&b);
	/* nothing to set up without POP3 */
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	buf_init(&b, MOBILECONFIG_MAX);
	assert_false(mobileconfig_render(&s, "alice@example.test", &b));
	buf_free(&b);
}

static void test_stable_uuids_and_escaping(void **state)
{
	(void)state;
	struct autoconfig_settings s;
	typical(&s);
	struct buf a1, a2, bob;
	render(&s, "alice@example.test", &a1);
	render(&s, "alice@example.test", &a2);
	render(&s, "o'hara&co@example.test", &bob);
	assert_string_equal(buf_cstr(&a1), buf_cstr(&a2));
	char u1[64], u2[64];
	value_of(strstr(buf_cstr(&a1), "</array>"), "PayloadUUID", u1, sizeof(u1));
	value_of(strstr(buf_cstr(&bob), "</array>"), "PayloadUUID", u2, sizeof(u2));
	assert_int_equal(strlen(u1), 36);
	assert_int_equal(u1[14], '8');                          /* version 8 */
	assert_non_null(strchr("89AB", u1[19]));                /* variant 10 */
	assert_string_not_equal(u1, u2);
	value_of(buf_cstr(&a1), "PayloadUUID", u2, sizeof(u2));   /* the inner payload's */
	assert_string_not_equal(u1, u2);
	assert_non_null(strstr(buf_cstr(&bob), "<string>o&apos;hara&amp;co@example.test</string>"));
	assert_null(strstr(buf_cstr(&bob), "o'hara"));
	buf_free(&a1);
	buf_free(&a2);
	buf_free(&bob);
}

/* A self-signed certificate for the signing test. */
static X509 *self_signed(EVP_PKEY *key)
{
	X509 *x = X509_new();
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"mx.example.test", -1, -1, 0);
	X509_set_issuer_name(x, n);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void test_signature_verifies(void **state)
{
	(void)state;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	X509 *cert = self_signed(key);
	struct autoconfig_settings s;
	typical(&s);
	struct buf b;
	render(&s, "alice@example.test", &b);
	unsigned char *der = NULL;
	size_t der_len = 0;
	assert_true(mobileconfig_sign(cert, key, NULL, b.data, b.len, &der, &der_len));
	assert_true(der_len > b.len);
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
	assert_non_null(cms);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, cert);
	BIO *out = BIO_new(BIO_s_mem());
	assert_int_equal(CMS_verify(cms, NULL, store, NULL, out, CMS_BINARY), 1);
	char *got;
	long n = BIO_get_mem_data(out, &got);
	assert_int_equal((size_t)n, b.len);
	assert_memory_equal(got, b.data, b.len);
	/* no key: nothing signed */
	unsigned char *none = NULL;
	assert_false(mobileconfig_sign(cert, NULL, NULL, b.data, b.len, &none, &der_len));
	assert_null(none);
	BIO_free(out);
	X509_STORE_free(store);
	CMS_ContentInfo_free(cms);
	OPENSSL_free(der);
	X509_free(cert);
	EVP_PKEY_free(key);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_stable_uuids_and_escaping),
		cmocka_unit_test(test_signature_verifies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
