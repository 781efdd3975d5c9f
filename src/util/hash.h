/* hash.h - a small non-cryptographic string hash for in-memory tables (FNV-1a,
 * 32 bits).  Only for bucketing keys Postern chose or bounded itself (addresses);
 * anything an attacker could aim at a table with keyed lookups uses a keyed hash
 * instead (auth/throttle.c: SipHash). */
#ifndef POSTERN_UTIL_HASH_H
#define POSTERN_UTIL_HASH_H

#include <stdint.h>

uint32_t hash_fnv1a(const char *s);

#endif
