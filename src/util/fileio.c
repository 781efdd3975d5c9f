/* fileio.c - see fileio.h. */
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Relaxed: a statistic read by /metrics, ordering nothing. */
static atomic_uint_fast64_t fsync_calls;

int fileio_fsync(int fd)
{
	int r;
	do {
		atomic_fetch_add_explicit(&fsync_calls, 1, memory_order_relaxed);
		r = fsync(fd);
	} while (r != 0 && errno == EINTR);
	return r;
}

int fileio_fdatasync(int fd)
{
	int r;
	do {
		atomic_fetch_add_explicit(&fsync_calls, 1, memory_order_relaxed);
		r = fdatasync(fd);
	} while (r != 0 && errno == EINTR);
	return r;
}

uint64_t fileio_fsync_count(void)
{
	return (uint64_t)atomic_load_explicit(&fsync_calls, memory_order_relaxed);
}

bool fileio_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

bool fileio_mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return false;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, mode) != 0 && errno != EEXIST)
				return false;
			*p = '/';
		}
	}
	return mkdir(tmp, mode) == 0 || errno == EEXIST;
}

bool fileio_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = fileio_fsync(fd) == 0;
	close(fd);
	return ok;
}

/* Create one directory; when it is new, fsync its parent so its name is durable. */
static bool mkdir_durable(char *path, mode_t mode)
{
	if (mkdir(path, mode) != 0)
		return errno == EEXIST;
	char *slash = strrchr(path, '/');
	if (!slash)
		return fileio_fsync_dir(".");
	if (slash == path)
		return fileio_fsync_dir("/");
	*slash = '\0';
	bool ok = fileio_fsync_dir(path);
	*slash = '/';
	return ok;
}

bool fileio_mkdir_p_durable(const char *path, mode_t mode)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return false;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/' && p[-1] != '/') {
			*p = '\0';
			bool ok = mkdir_durable(tmp, mode);
			*p = '/';
			if (!ok)
				return false;
		}
	}
	return mkdir_durable(tmp, mode);
}
