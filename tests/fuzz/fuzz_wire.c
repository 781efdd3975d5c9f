/* fuzz_wire.c - the outbound wire encoder over any message: whatever goes in, what
 * comes out has CR only before LF, LF only after CR, no line over 1000 octets with
 * its CR LF, no line "." (DATA, first byte odd), and out_size counts it exactly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/smtp_wire.h"

static void check(const char *p, size_t n, bool stuff)
{
	size_t line = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n' || line > SMTP_WIRE_LINE_MAX)
				__builtin_trap();
			if (stuff && line == 1 && p[i - 1] == '.')
				__builtin_trap();
			line = 0;
			i++;
		} else if (p[i] == '\n') {
			__builtin_trap();
		} else {
			line++;
		}
	}
	if (line)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool stuff = data[0] & 1;
	size_t piece = (size_t)(data[0] >> 1) + 1;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	char *out = malloc(SMTP_WIRE_OUT_MAX(n) + SMTP_WIRE_OUT_MAX(0));
	if (!out)
		return 0;
	struct smtp_wire w;
	smtp_wire_init(&w, stuff);
	size_t o = 0;
	for (size_t i = 0; i < n && !w.failed; i += piece) {
		size_t k = n - i < piece ? n - i : piece;
		size_t before = o;
		o += smtp_wire_feed(&w, in + i, k, out + o);
		if (o - before > SMTP_WIRE_OUT_MAX(k))
			__builtin_trap();
	}
	if (!w.failed)
		o += smtp_wire_finish(&w, out + o);
	if (!w.failed) {
		if (o != w.out_size)
			__builtin_trap();
		check(out, o, stuff);
	}
	free(out);
	return 0;
}
