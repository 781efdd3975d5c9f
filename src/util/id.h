/* id.h - queue ids and unique names.
 * A queue id is 16 upper-case hex digits: microseconds since the epoch (52 bits are
 * enough until year 2112) then 12 random bits, so ids sort by arrival and are safe
 * as file names. */
#ifndef POSTERN_UTIL_ID_H
#define POSTERN_UTIL_ID_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_ID_LEN 16

void id_new_queue_id(char out[QUEUE_ID_LEN + 1]);
bool id_is_queue_id(const char *s);

/* A run id: what makes log references ("RUN.CONN.N") unique across restarts.  A
 * counter of the server's starts, kept in data_dir/run-id (written atomically and
 * fsync'd before the first connection), so it never repeats for one data directory
 * whatever the clock does; decimal, so a reference stays digits and dots, short
 * enough to read out ("ref 12.113.1").  A node name can go in front when several
 * nodes share a log.  false with `err` when the file cannot be written. */
#define RUN_ID_MAX 16
bool id_new_run_id(const char *data_dir, char out[RUN_ID_MAX], char *err, size_t errlen);

#endif
