/* internal.h - what the files of src/conf/ share and no other room sees: the settings
 * table's row type (table.c), the reader's state (reader.c), and the error function
 * and the checks of the whole file (check.c).  The public interface is conf.h. */
#ifndef POSTERN_CONF_INTERNAL_H
#define POSTERN_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/conf.h"

enum setting_type { T_STRING, T_SIZE, T_DURATION, T_COUNT, T_DOMAINS, T_NETWORKS, T_BOOL, T_TLS, T_CHOICE,
	T_MILLIS /* a duration kept in milliseconds: "2ms", "1s", "0" */ };

struct setting {
	const char *section;
	const char *key;
	enum setting_type type;
	size_t offset;        /* into struct conf */
	size_t size;          /* for T_STRING: the array size */
	const char *def;
	uint64_t min, max;
	const char *help;     /* T_CHOICE: the words allowed are in conf_choices() (table.c) */
};

/* T_CHOICE rows: the '|'-separated words allowed ("off|check"); the value stored is
 * the index of the word (uint64_t). */
const char *conf_choices(const struct setting *s);

/* table.c: the rows, in the order of struct conf's setting_line[]. */
extern const struct setting conf_settings[];
extern const size_t conf_n_settings;

/* Set one row's value from its text; NULL, or what is wrong with the value. */
const char *conf_set_value(struct conf *c, const struct setting *s, const char *v);
/* Copy v into dst[dstsz]; false if it does not fit. */
bool conf_set_string(char *dst, size_t dstsz, const char *v);

/* Bounds of the repeat check: far above what the settings table and the listener and
 * certificate limits allow, so a real file never reaches them. */
#define CONF_MAX_SECTIONS 64
#define CONF_MAX_KEYS 512

struct parse_state {
	struct conf *c;
	const char *name;
	unsigned line;          /* current line, counted by the reader */
	char *err;
	size_t errlen;
	bool failed;
	bool every_error;       /* check-config: append each further error on a line of its own */
	/* stream reading */
	const char *text;       /* for strings */
	size_t pos, len;
	FILE *fp;               /* for files */
	char section[128];      /* current section, tracked by the reader */
	bool continuation;      /* the current line starts with a blank (inih: continues the last key) */
	/* Every section header and key seen, so that a repeat is refused instead of
	 * silently merged (two [listener mx] sections once lost a listener). */
	struct seen_section { char name[128]; unsigned line; } sections[CONF_MAX_SECTIONS];
	size_t n_sections;
	size_t cur_section;     /* index into sections; n_sections when before any */
	struct seen_key { size_t section; char key[64]; unsigned line; } keys[CONF_MAX_KEYS];
	size_t n_keys;
};

/* check.c: the first error, as "file:line: what is wrong"; later ones are dropped. */
void conf_fail(struct parse_state *ps, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The rules that concern the whole file, after reading it. */
bool conf_check_whole(struct parse_state *ps);

/* milter.c: a key of [milter NAME] (key NULL: the section starts), a listener's
 * `milters =` list, and the check that every name a listener lists has a section. */
void conf_milter_key(struct parse_state *ps, const char *mname, const char *key, const char *v);
void conf_listener_milters(struct parse_state *ps, struct conf_listener *l, const char *v);
void conf_check_milters(struct parse_state *ps);

#endif
