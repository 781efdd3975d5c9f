/* fuzz_mutf7.c - IMAP folder names in modified UTF-7 (RFC 3501 §5.1.3), as clients
 * send them and as directory names hold them.  What decodes must encode back to the
 * same octets (one spelling per name, so two directories never mean one folder), and
 * what encodes must decode back; folder_path must never let a name out of the root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/folder.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2048)
		return 0;
	char in[2049], out[8200], back[8200];
	memcpy(in, data, size);
	in[size] = '\0';
	if (folder_mutf7_decode(in, out, sizeof(out))) {
		if (!folder_mutf7_encode(out, back, sizeof(back)) || strcmp(back, in) != 0)
			die("decode then encode is not the input");
	}
	if (folder_mutf7_encode(in, out, sizeof(out))) {
		if (!folder_mutf7_decode(out, back, sizeof(back)) || strcmp(back, in) != 0)
			die("encode then decode is not the input");
	}
	char path[9000];
	if (folder_path("/root", in, path, sizeof(path))) {
		const char *rest = path + 5;   /* "" (INBOX) or "/.<one name without />" */
		if (strncmp(path, "/root", 5) != 0 || (*rest && (rest[0] != '/' || rest[1] != '.' || !rest[2] ||
				strchr(rest + 1, '/') || rest[2] == '.')))
			die("a folder path outside the root's own directory");
	}
	return 0;
}
