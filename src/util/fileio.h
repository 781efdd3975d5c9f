/* fileio.h - small file-system helpers shared by the rooms that write durably
 * (queue/, store/): complete writes, directory creation, directory fsync. */
#ifndef POSTERN_UTIL_FILEIO_H
#define POSTERN_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* write(2) until all n bytes are written; retries EINTR.  false with errno set. */
bool fileio_write_all(int fd, const void *p, size_t n);
/* mkdir -p with the given mode for every created component. */
bool fileio_mkdir_p(const char *path, mode_t mode);
/* fsync a directory by path, so a rename or create inside it is durable. */
bool fileio_fsync_dir(const char *path);

#endif
