/* fuzz_dkim_tags.c - the DKIM tag-list parser (RFC 6376 §3.2) and the DKIM-Signature
 * parser on top of it (§3.5): whatever the bytes, the parsers stay inside them, and
 * what they accept holds together (tag values NUL-terminated at their length, h=
 * contains from, i= in d=, x= after t=). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct dkim_tag_list tl;
	if (dkim_tags_parse((const char *)data, size, &tl, err, sizeof(err))) {
		for (size_t i = 0; i < tl.n; i++)
			if (strlen(tl.tags[i].value) != tl.tags[i].value_len || tl.tags[i].name[0] == '\0')
				__builtin_trap();
	}
	dkim_tags_free(&tl);
	struct dkim_signature sig;
	if (dkim_signature_parse((const char *)data, size, &sig, err, sizeof(err))) {
		bool from = false;
		for (size_t i = 0; i < sig.nheaders; i++)
			from |= strcmp(sig.headers[i], "from") == 0;
		if (!from || sig.bh_len != 32 || sig.b_len == 0 || !strchr(sig.identity, '@'))
			__builtin_trap();
		if (sig.has_expiry && sig.has_timestamp && sig.expiry <= sig.timestamp)
			__builtin_trap();
		dkim_signature_free(&sig);
	}
	return 0;
}
