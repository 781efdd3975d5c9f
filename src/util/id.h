/* id.h - queue ids and unique names.
 * A queue id is 16 upper-case hex digits: microseconds since the epoch (52 bits are
 * enough until year 2112) then 12 random bits, so ids sort by arrival and are safe
 * as file names. */
#ifndef POSTERN_UTIL_ID_H
#define POSTERN_UTIL_ID_H

#include <stdbool.h>

#define QUEUE_ID_LEN 16

void id_new_queue_id(char out[QUEUE_ID_LEN + 1]);
bool id_is_queue_id(const char *s);

#endif
