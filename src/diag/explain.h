/* explain.h - the error knowledge base: what a mail server's reply means, its likely
 * causes in order, and the fix for each.  The knowledge is data (data/explain.ini);
 * this module loads it (inih) and matches a reply against it by reply code,
 * enhanced status code (RFC 3463) and text patterns.  No I/O besides reading the file. */
#ifndef POSTERN_DIAG_EXPLAIN_H
#define POSTERN_DIAG_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>

#define EXPLAIN_INPUT_MAX   65536  /* bytes of pasted text considered */
#define EXPLAIN_RESULT_MAX  8      /* causes reported */
#define EXPLAIN_FIXES_MAX   10     /* fixes per cause */

struct explain_kb;

/* One cause as the data file describes it; `id` is from the fixed list below. */
struct explain_cause {
	const char *id;
	const char *words;                   /* what it means in plain words */
	const char *fixes[EXPLAIN_FIXES_MAX];
	int n_fixes;
};

struct explain_result {
	int code;                 /* 0 when the text has no reply code */
	char enhanced[16];        /* "" when it has no enhanced code */
	const char *meaning;      /* never NULL */
	const struct explain_cause *causes[EXPLAIN_RESULT_MAX];
	int n_causes;             /* >= 1: "unknown" when nothing matched */
	bool known;               /* false when the only cause is "unknown" */
};

/* The fixed list of cause ids (a contract with scripts), "unknown" last. */
extern const char *const explain_cause_ids[];
bool explain_cause_id_valid(const char *id);

/* Load the knowledge base; errors name file:line. */
bool explain_kb_load_file(struct explain_kb **kb, const char *path, char *err, size_t errsz);
bool explain_kb_load_string(struct explain_kb **kb, const char *text, const char *name,
	char *err, size_t errsz);
void explain_kb_free(struct explain_kb **kb);

/* Find the data file: $POSTERN_DATA_DIR, the source tree, the installed datadir.
 * Writes the path of the first that exists; false when none does. */
bool explain_kb_locate(char *path, size_t pathsz);

/* The cause entry for an id (the data file's words and fixes), or the built-in
 * "unknown" entry when the id is not described. */
const struct explain_cause *explain_kb_cause(const struct explain_kb *kb, const char *id);

/* Find the reply code and enhanced code in free text (a reply, a pasted dialog). */
void explain_parse_codes(const char *text, size_t len, int *code, char *enh, size_t enhsz);

/* Match text (any bytes, at most EXPLAIN_INPUT_MAX considered) against the base. */
void explain_match(const struct explain_kb *kb, const char *text, size_t len, struct explain_result *r);

#endif
