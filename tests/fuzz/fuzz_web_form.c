/* fuzz_web_form.c - the account pages' form parser (web/form.c) on any body: the
 * first byte picks the field name asked for and the size of the output; a field
 * found is NUL-terminated within the output, holds no NUL before its end, and is
 * found again, the same, when asked twice. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	static const char *names[] = { "csrf", "name", "address", "password", "a", "", "x y", "%41" };
	const char *name = names[data[0] & 7];
	size_t outsz = (size_t)(data[0] >> 3) * 9 + 1;     /* 1..280 */
	char *body = malloc(size);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	struct http_header h[] = { { "Content-Type", "application/x-www-form-urlencoded" } };
	struct http_request r = { .method = "POST", .path = "/", .query = "", .body = body, .body_len = size - 1,
		.headers = h, .n_headers = 1 };
	char out[300], again[300];
	memset(out, 'Z', sizeof(out));
	bool found = web_form_field(&r, name, out, outsz);
	if (found) {
		if (!memchr(out, '\0', outsz))
			__builtin_trap();
		if (!web_form_field(&r, name, again, outsz) || strcmp(out, again) != 0)
			__builtin_trap();
	} else if (outsz && out[0] != '\0') {
		__builtin_trap();   /* nothing found: out is "" */
	}
	free(body);
	return 0;
}
