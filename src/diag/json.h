/* json.h - writing JSON output (escaped strings) for the diagnostics' --json. */
#ifndef POSTERN_DIAG_JSON_H
#define POSTERN_DIAG_JSON_H

#include <stdio.h>

/* Write s as a JSON string (quotes included); NULL writes null.  Control bytes and
 * invalid UTF-8 are escaped, so the output is always valid JSON. */
void json_str(FILE *f, const char *s);

#endif
