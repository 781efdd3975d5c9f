/* fuzz_sasl.c - the SASL exchange decoder: the first byte picks the mechanism and
 * whether an initial response is given; the rest is split into lines. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum sasl_mech m = (data[0] & 1) ? SASL_LOGIN : SASL_PLAIN;
	bool initial = data[0] & 2;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	struct sasl_exchange x;
	const char *nl = memchr(p, '\n', n);
	size_t first = nl ? (size_t)(nl - p) : n;
	enum sasl_status st = sasl_start(&x, m, initial, p, initial ? first : 0);
	size_t pos = initial ? (nl ? first + 1 : n) : 0;
	for (int steps = 0; st == SASL_CONTINUE && pos < n && steps < 8; steps++) {
		(void)sasl_challenge(&x);
		const char *l = p + pos;
		const char *e = memchr(l, '\n', n - pos);
		size_t ln = e ? (size_t)(e - l) : n - pos;
		st = sasl_step(&x, l, ln);
		pos += ln + 1;
	}
	if (st == SASL_DONE && (strlen(x.user) > SASL_USER_MAX || strlen(x.pass) > SASL_PASS_MAX))
		__builtin_trap();
	sasl_clear(&x);
	return 0;
}
