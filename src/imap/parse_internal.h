/* parse_internal.h - shared by the parser's files only (parse.c: the incremental
 * scanner and the lexer's primitives; parse_cmd.c: the commands' arguments;
 * parse_fetch.c: FETCH items and SEARCH keys; parse_text.c: modified UTF-7 and
 * dates).  Other files use imap/parse.h. */
#ifndef POSTERN_IMAP_PARSE_INTERNAL_H
#define POSTERN_IMAP_PARSE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/parse.h"

/* One complete command being parsed: the text with literals inline. */
struct lex {
	const char *p, *end;
	struct imap_cmd *c;
	bool utf8;                 /* UTF8=ACCEPT: mailbox names are not modified UTF-7 */
	unsigned args;             /* tokens so far (IMAP_ARGS_MAX) */
	unsigned depth;            /* nesting (IMAP_DEPTH_MAX) */
	bool failed;
	char err[256];
};

void *arena_alloc(struct imap_arena *a, size_t n);            /* zeroed; NULL: out of memory */
char *arena_strndup(struct imap_arena *a, const char *s, size_t n);

/* Record the first error (printf words); always returns false. */
bool lex_fail(struct lex *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text at the current position, escaped and cut, for error words. */
const char *lex_near(const struct lex *l, char *out, size_t outsz);
int lex_peek(const struct lex *l);                           /* -1 at the end */
bool lex_at_end(const struct lex *l);
bool lex_sp(struct lex *l);                                  /* exactly one SP */
bool lex_char(struct lex *l, char ch);                       /* that character */
bool lex_try_char(struct lex *l, char ch);                   /* consumed when present */
bool lex_end(struct lex *l);                                 /* nothing left */
bool lex_count_arg(struct lex *l);
bool lex_push(struct lex *l);                                /* one level deeper */
void lex_pop(struct lex *l);
/* An atom (ATOM-CHAR, plus ']' when astring); *s points into the input. */
bool lex_atom(struct lex *l, bool astring, const char **s, size_t *n, const char *what);
/* Case-insensitive match of the next atom-ish word; consumed when it matches. */
bool lex_word_is(struct lex *l, const char *word);
bool lex_string(struct lex *l, char **out, size_t *n, const char *what);     /* quoted / literal */
bool lex_astring(struct lex *l, char **out, size_t *n, const char *what);
bool lex_nstring(struct lex *l, char **out, size_t *n, const char *what);    /* NIL: *out NULL */
bool lex_number(struct lex *l, uint32_t *v, bool nz, const char *what);
bool lex_number64(struct lex *l, uint64_t *v, bool nz, const char *what);
bool lex_seqset(struct lex *l, struct imap_seqset *set, const char *what);
bool lex_mailbox(struct lex *l, char **out, const char *what);               /* decoded, INBOX */
bool lex_list_mailbox(struct lex *l, char **out);                            /* LIST pattern */
bool lex_flag(struct lex *l, char **out);
bool lex_flag_list(struct lex *l, char ***flags, size_t *n);                  /* "(" [flag *(SP flag)] ")" */
/* A growable array in the arena. */
bool lex_grow(struct lex *l, void **v, size_t *cap, size_t n, size_t size);

/* parse_text.c: UTF-8 without controls (a mailbox name under UTF8=ACCEPT) */
bool utf8_valid(const char *s, size_t n);

/* parse_cmd.c */
bool parse_arguments(struct lex *l);
/* parse_fetch.c */
bool parse_fetch_args(struct lex *l);
bool parse_search_args(struct lex *l);

#endif
