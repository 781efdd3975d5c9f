/* explain_regex.h - the bound on a knowledge-base regex (explain_regex.c), used by
 * explain.c before regcomp. */
#ifndef POSTERN_DIAG_EXPLAIN_REGEX_H
#define POSTERN_DIAG_EXPLAIN_REGEX_H

#include <stdbool.h>
#include <stddef.h>

/* Whether a knowledge-base regex stays within the bounds that keep regcomp small;
 * false with the reason in why. */
bool explain_regex_bounded(const char *re, char *why, size_t whysz);

#endif
