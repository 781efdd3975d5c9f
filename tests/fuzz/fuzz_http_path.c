/* fuzz_http_path.c - the HTTP transport's pure half (net/http_view.c) on any bytes:
 * http_path_normalise either refuses or gives a path that starts with "/", is no
 * longer than the input, holds no NUL, backslash or control character and no ".."
 * or "." segment, and is a fixed point (normalising it again changes nothing);
 * http_host_normalise and http_query_param never overrun. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

static void check_path(const char *p, size_t inlen)
{
	size_t n = strlen(p);
	if (p[0] != '/' || n > inlen + 1)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\\' || (unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			__builtin_trap();
	if (strstr(p, "/../") || strstr(p, "/./") || strstr(p, "//"))
		__builtin_trap();
	if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	char out[8200], again[8200];
	if (!http_path_normalise(in, size, out, sizeof(out))) {
		check_path(out, size);
		/* The output is decoded: a '%', a space or a non-ASCII octet in it is data
		 * the raw form must escape, so re-normalising is a fixed point only when it
		 * holds none. */
		bool plain = !strchr(out, '%');
		for (const char *p = out; *p && plain; p++)
			plain = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
		if (plain &&
			(http_path_normalise(out, strlen(out), again, sizeof(again)) || strcmp(out, again) != 0))
			__builtin_trap();
	}
	char host[256];
	http_host_normalise(in, host, sizeof(host));
	if (strlen(host) >= sizeof(host))
		__builtin_trap();
	struct http_request r = { .query = in };
	char v[64];
	http_query_param(&r, "emailaddress", v, sizeof(v));
	free(in);
	return 0;
}
