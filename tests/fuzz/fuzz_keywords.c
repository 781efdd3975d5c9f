/* fuzz_keywords.c - dovecot-keywords text as found on disk.  Every kept name must
 * be a valid IMAP keyword, no name twice (any case), and the written file must
 * read back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/uidlist.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keywords kw, again;
	keywords_parse((const char *)data, size, &kw);
	for (int i = 0; i < 26; i++) {
		if (!kw.names[i])
			continue;
		if (!keywords_valid_name(kw.names[i]))
			die("invalid name kept");
		for (int j = 0; j < i; j++)
			if (kw.names[j] && strcasecmp(kw.names[i], kw.names[j]) == 0)
				die("duplicate name kept");
	}
	size_t len;
	char *text = keywords_format(&kw, &len);
	if (!text)
		die("format failed");
	keywords_parse(text, len, &again);
	for (int i = 0; i < 26; i++)
		if ((kw.names[i] == NULL) != (again.names[i] == NULL) ||
		    (kw.names[i] && strcmp(kw.names[i], again.names[i]) != 0))
			die("round trip changed the keywords");
	free(text);
	keywords_free(&again);
	keywords_free(&kw);
	return 0;
}
