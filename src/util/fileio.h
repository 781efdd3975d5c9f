/* fileio.h - small file-system helpers shared by the rooms that write durably
 * (queue/, store/): complete writes, directory creation, directory fsync. */
#ifndef POSTERN_UTIL_FILEIO_H
#define POSTERN_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* fsync(2) / fdatasync(2) with EINTR retried, counted (fileio_fsync_count).  Every
 * fsync in src/ goes through these (test_structure.py refuses a raw call elsewhere),
 * so the count is the server's whole durability cost: /metrics exports it as
 * postern_fsyncs_total and the benches divide it by the messages of a case.
 * Returns what fsync/fdatasync returned (0, or -1 with errno set). */
int fileio_fsync(int fd);
int fileio_fdatasync(int fd);
/* Every fsync/fdatasync made through fileio_* since the process started (including
 * fileio_fsync_dir and the durable mkdir), successful or not.  Thread-safe. */
uint64_t fileio_fsync_count(void);

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
