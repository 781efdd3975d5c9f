/* fuzz_dkim_key.c - the DKIM key record parser (RFC 6376 §3.6.1, RFC 8463 §4.2) on
 * any TXT text: a record is revoked exactly when it carries no key. */
#include <stddef.h>
#include <stdint.h>

#include "mailauth/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct dkim_key_record kr;
	if (dkim_key_record_parse((const char *)data, size, &kr, err, sizeof(err))) {
		if (kr.revoked != (kr.key == NULL) || (kr.key && kr.key_len == 0))
			__builtin_trap();
		dkim_key_record_free(&kr);
	}
	return 0;
}
