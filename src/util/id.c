/* id.c - queue ids (see id.h). */
#include "util/id.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/fileio.h"

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

static uint64_t last_run(const char *path)
{
	char text[32] = "";
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	return end != text ? (uint64_t)v : 0;
}

bool id_new_run_id(const char *data_dir, char out[RUN_ID_MAX], char *err, size_t errlen)
{
	char path[1100], tmp[1120];
	snprintf(path, sizeof(path), "%s/run-id", data_dir);
	snprintf(tmp, sizeof(tmp), "%s/run-id.tmp", data_dir);
	uint64_t run = last_run(path) + 1;
	char text[32];
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", run);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && fileio_write_all(fd, text, (size_t)len) && fileio_fsync(fd) == 0;
	int e = ok ? 0 : errno;
	if (fd >= 0)
		close(fd);
	ok = ok && rename(tmp, path) == 0 && fileio_fsync_dir(data_dir);
	if (!ok) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(e ? e : errno));
		unlink(tmp);
		return false;
	}
	snprintf(out, RUN_ID_MAX, "%" PRIu64, run);
	return true;
}
