/* explain_regex.c - the bound on a knowledge-base regex, checked before regcomp (see
 * explain_regex.h and the comment below). */
#include "diag/explain_regex.h"

#include <stdio.h>
#include <string.h>

/* Bounds on a knowledge-base regex, checked before regcomp: glibc's regcomp builds
 * automata whose size multiplies with each quantifier stacked on another ("((a*)*)*",
 * "a{1000}{1000}") and ran the fuzzer out of memory.  The shipped rules need at most
 * one quantifier over another and short intervals; these bounds leave room. */
#define REGEX_LEN_MAX     1024   /* octets, after continuation lines are joined */
#define REGEX_GROUPS_MAX  8      /* parentheses open at once */
#define REGEX_STACK_MAX   2      /* quantifiers applying to one atom, nested or stacked */
#define REGEX_COUNT_MAX   100    /* largest m or n in {m,n} */
#define REGEX_COPIES_MAX  1000   /* product of interval counts over one nesting path */

struct re_size {
	unsigned stack;              /* quantifiers over this atom, its own and its contents' */
	unsigned long copies;        /* interval repetitions multiplied */
};

static void re_fold(struct re_size *into, const struct re_size *atom)
{
	if (atom->stack > into->stack)
		into->stack = atom->stack;
	if (atom->copies > into->copies)
		into->copies = atom->copies;
}

/* An interval "{m}", "{m,}" or "{m,n}" at p: its length and largest count; 0 if p
 * holds no interval (a literal brace to regcomp). */
static size_t re_interval(const char *p, unsigned long *count)
{
	size_t i = 1;
	unsigned long n = 0, most = 0;
	bool digits = false;
	for (; p[i] && p[i] != '}'; i++) {
		if (p[i] >= '0' && p[i] <= '9') {
			n = n * 10 + (unsigned long)(p[i] - '0');
			if (n > 1000000)
				n = 1000000;
			digits = true;
		} else if (p[i] == ',') {
			most = n > most ? n : most;
			n = 0;
		} else {
			return 0;
		}
	}
	if (p[i] != '}' || !digits)
		return 0;
	*count = n > most ? n : most;
	return i + 1;
}

/* The end of a bracket expression starting at p ("[]a]", "[^]a]", "[[:alpha:]]"). */
static size_t re_bracket(const char *p)
{
	size_t i = 1;
	if (p[i] == '^')
		i++;
	if (p[i] == ']')
		i++;
	for (; p[i] && p[i] != ']'; i++)
		if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
			const char *close = strchr(p + i + 2, p[i + 1]);
			if (!close || close[1] != ']')
				return strlen(p);   /* regcomp reports it */
			i = (size_t)(close + 1 - p);
		}
	return p[i] ? i + 1 : i;
}

/* Is the POSIX ERE within the bounds above?  On no, why names the bound. */
bool explain_regex_bounded(const char *re, char *why, size_t whysz)
{
	size_t len = strlen(re);
	if (len > REGEX_LEN_MAX) {
		snprintf(why, whysz, "%zu octets long (at most %d): split it into two rules", len, REGEX_LEN_MAX);
		return false;
	}
	struct re_size level[REGEX_GROUPS_MAX + 1] = { { 0, 1 } };
	unsigned depth = 0;
	struct re_size atom = { 0, 1 };
	bool have_atom = false;
	for (size_t i = 0; i < len;) {
		char ch = re[i];
		if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
			unsigned long count = 1;
			size_t n = ch == '{' ? re_interval(re + i, &count) : 1;
			if (n == 0 || !have_atom) {   /* a literal brace, or nothing to repeat: regcomp decides */
				re_fold(&level[depth], &atom);
				atom = (struct re_size){ 0, 1 };
				have_atom = true;
				i++;
				continue;
			}
			if (count > REGEX_COUNT_MAX) {
				snprintf(why, whysz, "repeats %lu times at offset %zu (at most %d)", count, i, REGEX_COUNT_MAX);
				return false;
			}
			atom.stack++;
			atom.copies *= count ? count : 1;
			if (atom.stack > REGEX_STACK_MAX || atom.copies > REGEX_COPIES_MAX) {
				snprintf(why, whysz, "stacks quantifiers too deep at offset %zu (at most %d over one another, "
					"%d repetitions in all): simplify it", i, REGEX_STACK_MAX, REGEX_COPIES_MAX);
				return false;
			}
			i += n;
			continue;
		}
		re_fold(&level[depth], &atom);
		atom = (struct re_size){ 0, 1 };
		have_atom = true;
		if (ch == '(') {
			if (depth == REGEX_GROUPS_MAX) {
				snprintf(why, whysz, "nests groups deeper than %d at offset %zu: simplify it", REGEX_GROUPS_MAX, i);
				return false;
			}
			level[++depth] = (struct re_size){ 0, 1 };
			have_atom = false;
			i++;
		} else if (ch == ')' && depth > 0) {
			atom = level[depth--];   /* the group is the atom a quantifier applies to */
			i++;
		} else if (ch == '|') {
			have_atom = false;
			i++;
		} else if (ch == '[') {
			i += re_bracket(re + i);
		} else if (ch == '\\' && re[i + 1]) {
			i += 2;
		} else {
			i++;
		}
	}
	return true;
}
