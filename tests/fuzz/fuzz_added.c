/* fuzz_added.c - policy_facts_add_header(), which takes fields built by end-of-data
 * stages from what a message says (DKIM d=, Authentication-Results words), and what
 * it stores: the input is split at NUL into fields; whatever is accepted, the block
 * must stay one run of complete header fields (RFC 5322 §2.2): each line ends in CR LF,
 * no bare CR or LF, no empty line (it would end the header), every line after a
 * field's first is folded (starts with a space or tab), a field name before each
 * colon, and never more than POLICY_ADDED_MAX octets (so that the queue takes the
 * block as it is: queue_writer_set_added wants CR LF at the end and no NUL). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static void check_block(const char *b, size_t n)
{
	if (n > POLICY_ADDED_MAX || strlen(b) != n)
		__builtin_trap();
	if (n == 0)
		return;
	if (n < 2 || b[n - 2] != '\r' || b[n - 1] != '\n')
		__builtin_trap();
	bool line_start = true, first_of_field = true;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (c == '\r' && (i + 1 >= n || b[i + 1] != '\n'))
			__builtin_trap();
		if (c == '\n' && (i == 0 || b[i - 1] != '\r'))
			__builtin_trap();
		if (line_start) {
			if (c == '\r')
				__builtin_trap();   /* an empty line */
			bool folded = c == ' ' || c == '\t';
			if (!folded && !first_of_field) {
				/* a new field: a name, then a colon */
				size_t k = i;
				while (k < n && b[k] > 32 && b[k] < 127 && b[k] != ':')
					k++;
				if (k == i || k >= n || b[k] != ':')
					__builtin_trap();
			}
			line_start = false;
		}
		if (c == '\n') {
			line_start = true;
			first_of_field = false;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	char *copy = malloc(size + 1);
	if (!f || !copy) {
		free(copy);
		policy_facts_free(&f);
		return 0;
	}
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (size_t at = 0; at <= size;) {
		const char *field = copy + at;
		size_t len = strlen(field);
		size_t before = f->added_len;
		bool ok = policy_facts_add_header(f, field);
		if (!ok && f->added_len != before)
			__builtin_trap();   /* a refused field stores nothing */
		if (ok && f->added_len <= before)
			__builtin_trap();
		check_block(f->added ? f->added : "", f->added_len);
		at += len + 1;
	}
	/* The block as the first field of a header: the first line needs a name too. */
	if (f->added_len) {
		size_t k = 0;
		while (f->added[k] > 32 && f->added[k] < 127 && f->added[k] != ':')
			k++;
		if (k == 0 || f->added[k] != ':')
			__builtin_trap();
	}
	free(copy);
	policy_facts_free(&f);
	return 0;
}
