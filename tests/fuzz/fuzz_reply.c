/* fuzz_reply.c - wire/'s reply, enhanced-code and EHLO keyword parsers and the reading
 * of a recorded delivery reason: lines split at LF are fed as one reply.  (DNS wire
 * names: fuzz_dns.c.) */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/reason.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	struct wire_reply r;
	struct wire_caps caps;
	memset(&caps, 0, sizeof(caps));
	wire_reply_reset(&r);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int f = wire_reply_feed(&r, line);
		if (f < 0)
			wire_reply_reset(&r);
		else if (r.code && strlen(r.text) >= sizeof(r.text))
			__builtin_trap();
		if (strlen(line) > 4)
			wire_caps_line(&caps, line + 4);
		char enh[WIRE_ENH_MAX];
		if (reason_status(line, enh, sizeof(enh)) && !wire_enh_valid(enh))
			__builtin_trap();
		if (f == 1) {
			char out[WIRE_REPLY_TEXT_MAX + 64];
			wire_reply_format(&r, out, sizeof(out));
			wire_reply_reset(&r);
		}
	}
	free(copy);
	return 0;
}
