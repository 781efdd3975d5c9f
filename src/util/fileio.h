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
/* mkdir -p that makes what it creates durable: after each directory it creates, the
 * directory holding it is fsync'd (a new directory's name lives in its parent, so
 * without this a crash can forget the directory and everything later put in it).
 * Directories that already existed cost no fsync.  false with errno set. */
bool fileio_mkdir_p_durable(const char *path, mode_t mode);

#endif
