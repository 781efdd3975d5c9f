/* fuzz_field_drop.c - msg_field_drop (the removal of Authentication-Results fields
 * claiming our authserv-id, RFC 8601 §5) on any bytes, split at a point the input
 * chooses: what comes out is never longer than what went in, nothing is dropped when
 * no field was, and the same input split anywhere gives the same output. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg/header.h"

struct out {
	char *data;
	size_t len, cap;
};

static void emit(void *arg, const char *p, size_t n)
{
	struct out *o = arg;
	if (o->len + n > o->cap)
		__builtin_trap();   /* more out than in */
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

static size_t run(const uint8_t *data, size_t size, size_t split, struct out *o)
{
	static struct msg_field_drop d;
	msg_field_drop_init(&d, "Authentication-Results", "mx.example.org");
	o->len = 0;
	msg_field_drop_feed(&d, (const char *)data, split, emit, o);
	msg_field_drop_feed(&d, (const char *)data + split, size - split, emit, o);
	msg_field_drop_finish(&d, emit, o);
	return d.dropped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t split = data[0] % size;
	data++;
	size--;
	if (split > size)
		split = size;
	struct out a = { malloc(size + 1), 0, size }, b = { malloc(size + 1), 0, size };
	if (!a.data || !b.data) {
		free(a.data);
		free(b.data);
		return 0;
	}
	size_t da = run(data, size, split, &a);
	size_t db = run(data, size, 0, &b);
	if (da != db || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		__builtin_trap();
	if (da == 0 && (a.len != size || memcmp(a.data, data, size) != 0))
		__builtin_trap();
	free(a.data);
	free(b.data);
	return 0;
}
