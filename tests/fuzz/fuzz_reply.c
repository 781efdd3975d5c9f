/* fuzz_reply.c - the SMTP client's reply and capability parsers, and the DNS wire
 * name decoder: lines split at LF are fed as one reply. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/mx.h"
#include "delivery/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	struct smtp_reply r;
	struct smtp_caps caps;
	memset(&caps, 0, sizeof(caps));
	smtp_reply_reset(&r);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int f = smtp_reply_feed(&r, line);
		if (f < 0)
			smtp_reply_reset(&r);
		else if (r.code && strlen(r.text) >= sizeof(r.text))
			__builtin_trap();
		if (strlen(line) > 4)
			smtp_caps_line(&caps, line + 4);
		if (f == 1) {
			char out[SMTP_REPLY_TEXT_MAX + 64];
			smtp_reply_format(&r, out, sizeof(out));
			smtp_reply_reset(&r);
		}
	}
	free(copy);
	char name[256];
	size_t used = mx_wire_name(data, size, name, sizeof(name));
	if (used > size || (used && strlen(name) >= sizeof(name)))
		__builtin_trap();
	return 0;
}
