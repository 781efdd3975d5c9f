/* explain_int.h - what explain.c (loading) and explain_match.c (matching) share:
 * the loaded knowledge base.  No other file includes it; the interface is explain.h. */
#ifndef POSTERN_DIAG_EXPLAIN_INT_H
#define POSTERN_DIAG_EXPLAIN_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag/explain.h"

#define LIST_MAX       8
#define N_IDS          36      /* entries of explain_cause_ids (explain.c checks) */
#define UNKNOWN_IDX (N_IDS - 1)

struct rule {
	char *name, *code_s, *enh_s, *text, *regex_s, *meaning, *causes_s;
	char codes[LIST_MAX][4];
	int n_codes;
	char enh[LIST_MAX][16];
	int n_enh;
	regex_t re;
	bool has_re;
	int causes[LIST_MAX];
	int n_causes;
	int score;
};

struct cause_entry {
	struct explain_cause pub;
	char *words;
	char *fixes[EXPLAIN_FIXES_MAX];
	bool described;
};

struct explain_kb {
	struct rule *rules;
	int n_rules;
	struct cause_entry causes[N_IDS];
	/* parser state */
	char section[128];
	char last_key[64];
	char *seen_keys;     /* "|key|key|" of the current section */
	char err[256];
};

#endif
