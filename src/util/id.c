/* id.c - queue ids (see id.h). */
#include "util/id.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last;

void id_new_queue_id(char out[QUEUE_ID_LEN + 1])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* Strictly increasing within the process, so two messages in the same
	 * microsecond still get different ids; the random bits separate processes. */
	pthread_mutex_lock(&id_lock);
	if (us <= id_last)
		us = id_last + 1;
	id_last = us;
	pthread_mutex_unlock(&id_lock);
	uint16_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint16_t)(ts.tv_nsec ^ (long)pthread_self());
	uint64_t v = (us << 12) | (rnd & 0xfffu);
	snprintf(out, QUEUE_ID_LEN + 1, "%016llX", (unsigned long long)v);
}

bool id_is_queue_id(const char *s)
{
	size_t n = strlen(s);
	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}
