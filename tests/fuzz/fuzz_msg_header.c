/* fuzz_msg_header.c - libFuzzer harness for msg/header: the input is used as a
 * header block (find and count "From", then parse the body found), as a field body
 * on its own, and as a message streamed in pieces through msg_field_scan, which must
 * agree with find and count.  Checks the invariants every result must keep. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg/header.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* What the parser promises about its output, whatever the input. */
static void check_list(enum msg_status st, const struct msg_address_list *l)
{
	CHECK(st == MSG_OK || st == MSG_SYNTAX || st == MSG_EMPTY || st == MSG_TOO_LONG);
	CHECK(l->n <= MSG_MAX_MAILBOXES);
	CHECK(!l->truncated || l->n == MSG_MAX_MAILBOXES);
	if (st != MSG_OK) {
		CHECK(l->n == 0 && !l->truncated);
		return;
	}
	CHECK(l->n > 0);
	for (size_t i = 0; i < l->n; i++) {
		const char *a = l->mailboxes[i].addr;
		size_t n = strnlen(a, MSG_ADDR_MAX + 1);
		CHECK(n <= MSG_ADDR_MAX);
		const char *at = strrchr(a, '@');
		CHECK(at && at > a && at[1] != '\0');   /* non-empty local part and domain */
		for (const char *p = a; *p; p++) {
			unsigned char c = (unsigned char)*p;
			CHECK((c >= 0x20 && c != 0x7f) || c == '\t');   /* quoted WSP only: no CR, LF, NUL */
			if (p > at && c >= 'A' && c <= 'Z')   /* domain lower-cased, literals aside */
				CHECK(at[1] == '[');
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *h = (const char *)data;
	struct msg_address_list l;

	const char *v = NULL;
	size_t vl = 0;
	size_t count = msg_header_count(h, size, "From");
	bool found = msg_header_find(h, size, "From", &v, &vl);
	CHECK(found == (count > 0));
	if (found) {
		CHECK(v >= h && vl <= size && (size_t)(v - h) <= size - vl);
		check_list(msg_parse_address_list(v, vl, &l), &l);
	}
	check_list(msg_parse_address_list(h, size, &l), &l);

	/* The streaming scanner, fed in pieces whose sizes come from the input, finds
	 * what find and count find in the whole block (its value bounded). */
	static struct msg_field_scan sc;
	msg_field_scan_init(&sc, "From");
	for (size_t p = 0, k = 0; p < size; k++) {
		size_t piece = 1 + (size ? (size_t)data[k % size] % 23 : 0);
		if (piece > size - p)
			piece = size - p;
		msg_field_scan_feed(&sc, h + p, piece);
		p += piece;
	}
	CHECK(sc.count == count);
	const char *sv = NULL;
	size_t svl = 0;
	CHECK(msg_field_scan_value(&sc, &sv, &svl) == found);
	CHECK(sc.value_len <= MSG_FIELD_VALUE_MAX);
	if (found && !sc.value_truncated)
		CHECK(svl == vl && memcmp(sv, v, vl) == 0);
	return 0;
}
