/* hash.c - FNV-1a (see hash.h). */
#include "util/hash.h"

uint32_t hash_fnv1a(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV offset basis */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;   /* FNV prime */
	return h;
}
