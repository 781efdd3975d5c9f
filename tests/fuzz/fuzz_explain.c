/* fuzz_explain.c - libFuzzer harness for the explain knowledge base: the code parser
 * and matcher on arbitrary reply text against the shipped data file, and the loader
 * (inih + our checks + regcomp) on arbitrary data files.  The first byte chooses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/explain.h"
#include "diag/reflog.h"

static struct explain_kb *kb;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[512];
	if (!explain_kb_load_file(&kb, POSTERN_SOURCE_DIR "/data/explain.ini", err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] & 1) {
		struct explain_kb *k = NULL;
		char err[256];
		if (explain_kb_load_string(&k, text, "fuzz", err, sizeof(err))) {
			struct explain_result r;
			explain_match(k, "550 5.1.1 user unknown", 22, &r);
			explain_kb_free(&k);
		}
	} else {
		struct explain_result r;
		explain_match(kb, (const char *)data + 1, size - 1, &r);
		if (!r.n_causes || !r.meaning)
			abort();
		char v[64];
		reflog_field(text, "ref", v, sizeof(v));
	}
	free(text);
	return 0;
}
