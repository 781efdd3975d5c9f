/* fuzz_maildrop.c - the maildrop envelope parser (queue/maildrop.c): any local user
 * can put any bytes in the maildrop, and the server's pickup parses them.  Whatever
 * the input, the parse stays in bounds, and what it accepts is usable: a sender and
 * recipients without control characters or angle brackets, the message's offset
 * within the input. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

static void clean(const char *a)
{
	for (const unsigned char *c = (const unsigned char *)a; *c; c++)
		assert(*c >= 0x20 && *c != 0x7f && *c != '<' && *c != '>');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > QUEUE_MAILDROP_HEADER_MAX)
		return 0;
	char *h = malloc(size + 1);
	if (!h)
		return 0;
	memcpy(h, data, size);
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	off_t off = -1;
	char why[300];
	if (queue_maildrop_parse(h, size, &env, &off, why, sizeof(why))) {
		assert(off > 0 && (size_t)off <= size);
		assert(env.n_rcpts > 0);
		clean(env.sender);
		for (size_t i = 0; i < env.n_rcpts; i++)
			clean(env.rcpts[i]);
	}
	free(env.rcpts);
	free(h);
	return 0;
}
