/* reflog.h - `postern explain --ref REF --log FILE`: find the refusal with reference
 * REF in a Postern log and print the decision that produced it. */
#ifndef POSTERN_DIAG_REFLOG_H
#define POSTERN_DIAG_REFLOG_H

#include <stdbool.h>
#include <stddef.h>

#include "diag/explain.h"

/* Value of key in one key=value log line ("..." values unescaped of \" and \\);
 * false when absent. */
bool reflog_field(const char *line, const char *key, char *out, size_t outsz);

/* Exit status: 0 found, 1 not found or unreadable. */
int reflog_explain(const struct explain_kb *kb, const char *ref, const char *path, bool json);

#endif
