/* common.h - what explain and doctor share: loading the knowledge base, wrapped
 * plain-text output and the JSON form of a cause. */
#ifndef POSTERN_DIAG_COMMON_H
#define POSTERN_DIAG_COMMON_H

#include <stdio.h>

#include "diag/explain.h"

/* Load the knowledge base from `path`, or from explain_kb_locate() when NULL.
 * Errors go to stderr. */
bool diag_load_kb(struct explain_kb **kb, const char *path);

/* Print text wrapped at 78 columns; the first line starts with `first` (padded to
 * `indent`), the following lines with `indent` spaces. */
void diag_wrap(FILE *f, int indent, const char *first, const char *text);

/* {"id": ..., "words": ..., "fixes": [...]} */
void diag_cause_json(FILE *f, const struct explain_cause *c);

/* The cause with its words and fixes, as plain text, numbered n (0: no number). */
void diag_cause_text(FILE *f, int n, const struct explain_cause *c);

#endif
