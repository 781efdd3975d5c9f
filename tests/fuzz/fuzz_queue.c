/* fuzz_queue.c - queue_envelope_parse on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	struct queue_envelope env;
	long r = queue_envelope_parse(copy, size, &env);
	if (r < -1 || r > (long)size)
		abort();
	if (r < 0) {
		if (env.rcpts || env.n_rcpts)
			abort();
	} else {
		if (env.n_rcpts == 0 || !id_is_queue_id(env.qid))
			abort();
		for (size_t i = 0; i < env.n_rcpts; i++)
			if (!env.rcpts[i][0] || strlen(env.rcpts[i]) >= QUEUE_ADDR_MAX)
				abort();
		if (r < 2 || copy[r - 1] != '\n' || copy[r - 2] != '\n')
			abort();
	}
	queue_envelope_free(&env);
	free(copy);
	return 0;
}
