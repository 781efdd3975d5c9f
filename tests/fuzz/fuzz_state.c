/* fuzz_state.c - the per-recipient delivery state file parser and the salvage of a
 * damaged one; the first byte picks the recipient count it must match. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "queue/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = data[0] % 8;
	struct queue_state st;
	if (queue_state_parse((const char *)data + 1, size - 1, n, &st)) {
		if (st.n != n)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (st.r[i].state > RCPT_FAILED || strlen(st.r[i].last_reply) >= sizeof(st.r[i].last_reply))
				__builtin_trap();
		queue_state_free(&st);
	}
	/* Salvage: never refuses, never more records than recipients. */
	if (queue_state_recover((const char *)data + 1, size - 1, n, &st)) {
		if (st.n != n || st.recovered > n || !st.damaged)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (st.r[i].state > RCPT_FAILED || strlen(st.r[i].last_reply) >= sizeof(st.r[i].last_reply))
				__builtin_trap();
		queue_state_free(&st);
	}
	return 0;
}
