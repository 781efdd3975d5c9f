/* explain.c - load the knowledge base (data/explain.ini, read with inih) and check
 * its rules; matching a reply against it is explain_match.c, the bound on its
 * regexes explain_regex.c.
 *
 * The file has two kinds of sections:
 *   [cause ID]   words = ..., fix.CLIENT = ... (one key per fix)
 *   [rule NAME]  code, enhanced, text (case-insensitive substring), regex (POSIX ERE,
 *                case-insensitive), meaning, causes (ids, most likely first)
 * Indented continuation lines (inih multi-line values) are appended with a space
 * (a regex's without one).
 * A rule matches when every condition it gives holds; more specific rules (text,
 * then enhanced code, then exact code) come first.  Reply codes: RFC 5321 §4.2;
 * enhanced codes: RFC 3463. */
#include "diag/explain.h"

#include <ctype.h>
#include <ini.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag/explain_int.h"
#include "diag/explain_regex.h"
#include "wire/enh.h"
#include "wire/wire.h"

#ifndef POSTERN_SOURCE_DIR
#define POSTERN_SOURCE_DIR "."
#endif
#ifndef POSTERN_DATADIR
#define POSTERN_DATADIR "/usr/local/share/postern"
#endif

#define KB_FILE        "explain.ini"
#define RULES_MAX      512
#define VALUE_MAX      4096
#define LINE_MAX_INIH  199     /* Debian's inih reads lines into a 200-octet buffer */

const char *const explain_cause_ids[] = {
	"not_authenticated", "wrong_credentials", "app_password_required", "tls_required",
	"tls_mode_mismatch", "sender_not_owned", "untrusted_network", "pop_before_smtp_expired",
	"unknown_recipient", "mailbox_full", "message_too_large", "command_sequence",
	"syntax_error", "throttled", "greylisted", "spam_or_policy", "sender_authentication_failed",
	"reverse_dns_missing", "blocklisted", "port_blocked", "certificate_untrusted",
	"certificate_expired", "certificate_name_mismatch", "server_unavailable", "server_storage_full", "spf_failed",
	"dmarc_failed", "dane_mismatch", "dane_tls_failed", "dnssec_bogus", "mta_sts_failed", "delivery_expired",
	"wrong_port", "address_not_ascii", "message_format",
	"unknown",
};
_Static_assert(sizeof(explain_cause_ids) / sizeof(explain_cause_ids[0]) == N_IDS, "N_IDS in explain_int.h");

static const struct explain_cause unknown_builtin = {
	.id = "unknown",
	.words = "Postern does not recognise this reply, so it will not guess at a cause.",
	.fixes = { "Send the complete reply text, and the time you saw it, to the support of the server that sent it." },
	.n_fixes = 1,
};

bool explain_cause_id_valid(const char *id)
{
	for (int i = 0; i < N_IDS; i++)
		if (strcmp(id, explain_cause_ids[i]) == 0)
			return true;
	return false;
}

static int cause_index(const char *id)
{
	for (int i = 0; i < N_IDS; i++)
		if (strcmp(id, explain_cause_ids[i]) == 0)
			return i;
	return -1;
}

/* --- loading ------------------------------------------------------------------ */

static bool fail(struct explain_kb *kb, const char *fmt, const char *a, const char *b)
{
	if (!kb->err[0])
		snprintf(kb->err, sizeof(kb->err), fmt, a, b);
	return false;
}

/* Set *slot to value, or append " value" for a continuation line. */
static bool store(struct explain_kb *kb, char **slot, const char *value, bool cont)
{
	size_t old = (cont && *slot) ? strlen(*slot) : 0;
	size_t add = strlen(value);
	if (old + add + 2 > VALUE_MAX)
		return fail(kb, "value of \"%s\" is longer than %s bytes", kb->last_key, "4096");
	char *p = realloc(cont ? *slot : NULL, old + add + 2);
	if (!p)
		return fail(kb, "out of memory%s%s", "", "");
	if (!cont && *slot)
		free(*slot);
	if (old && strcmp(kb->last_key, "regex") != 0)  /* a regex continues with no space */
		p[old++] = ' ';
	memcpy(p + old, value, add + 1);
	*slot = p;
	return true;
}

static bool new_section(struct explain_kb *kb, const char *section)
{
	snprintf(kb->section, sizeof(kb->section), "%s", section);
	kb->last_key[0] = '\0';
	free(kb->seen_keys);
	kb->seen_keys = strdup("|");
	if (!kb->seen_keys)
		return fail(kb, "out of memory%s%s", "", "");
	if (strncmp(section, "rule ", 5) == 0) {
		if (kb->n_rules >= RULES_MAX)
			return fail(kb, "more than %s rules%s", "512", "");
		if (!kb->rules && !(kb->rules = calloc(RULES_MAX, sizeof(struct rule))))
			return fail(kb, "out of memory%s%s", "", "");
		struct rule *r = &kb->rules[kb->n_rules++];
		r->name = strdup(section + 5);
		return r->name ? true : fail(kb, "out of memory%s%s", "", "");
	}
	if (strncmp(section, "cause ", 6) == 0) {
		int i = cause_index(section + 6);
		if (i < 0)
			return fail(kb, "[%s]: not a cause id of the fixed list%s", section, "");
		if (kb->causes[i].described)
			return fail(kb, "[%s] appears twice%s", section, "");
		kb->causes[i].described = true;
		return true;
	}
	return fail(kb, "[%s]: sections are [rule NAME] or [cause ID]%s", section, "");
}

static char **rule_slot(struct rule *r, const char *name)
{
	if (strcmp(name, "code") == 0) return &r->code_s;
	if (strcmp(name, "enhanced") == 0) return &r->enh_s;
	if (strcmp(name, "text") == 0) return &r->text;
	if (strcmp(name, "regex") == 0) return &r->regex_s;
	if (strcmp(name, "meaning") == 0) return &r->meaning;
	if (strcmp(name, "causes") == 0) return &r->causes_s;
	return NULL;
}

static char **cause_slot(struct cause_entry *c, const char *name)
{
	if (strcmp(name, "words") == 0)
		return &c->words;
	if (strncmp(name, "fix", 3) != 0)
		return NULL;
	for (int i = 0; i < EXPLAIN_FIXES_MAX; i++)
		if (!c->fixes[i])
			return &c->fixes[i];
	return NULL;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct explain_kb *kb = user;
	if (kb->err[0])      /* inih goes on after an error: the first one stands */
		return 0;
	if (strncmp(section, "rule ", 5) != 0 && strncmp(section, "cause ", 6) != 0)
		return fail(kb, "[%s]: sections are [rule NAME] or [cause ID]%s", section, "");
	if (strcmp(section, kb->section) != 0 && !new_section(kb, section))
		return 0;
	bool cont = strcmp(name, kb->last_key) == 0;
	char marker[80];
	snprintf(marker, sizeof(marker), "|%.60s|", name);
	if (!cont && strstr(kb->seen_keys, marker))
		return fail(kb, "[%s]: \"%s\" is given twice", section, name);
	char **slot = NULL;
	if (strncmp(section, "rule ", 5) == 0)
		slot = rule_slot(&kb->rules[kb->n_rules - 1], name);
	else {
		struct cause_entry *c = &kb->causes[cause_index(section + 6)];
		if (cont && strncmp(name, "fix", 3) == 0) {
			for (int i = EXPLAIN_FIXES_MAX - 1; i >= 0 && !slot; i--)
				if (c->fixes[i])
					slot = &c->fixes[i];
		} else
			slot = cause_slot(c, name);
	}
	if (!slot)
		return fail(kb, "[%s]: unknown key \"%s\" (or too many fixes)", section, name);
	snprintf(kb->last_key, sizeof(kb->last_key), "%s", name);
	if (!cont) {
		size_t n = strlen(kb->seen_keys) + strlen(marker);
		char *p = realloc(kb->seen_keys, n + 1);
		if (!p)
			return fail(kb, "out of memory%s%s", "", "");
		kb->seen_keys = p;
		strcat(p, marker + 1);
	}
	return store(kb, slot, value, cont) ? 1 : 0;
}

/* Lists are separated by commas and/or spaces. */
static int split_list(const char *s, char out[][16], int max, size_t width)
{
	int n = 0;
	while (s && *s) {
		s += strspn(s, ", \t");
		size_t len = strcspn(s, ", \t");
		if (len == 0)
			break;
		if (n >= max || len >= width)
			return -1;
		memcpy(out[n], s, len);
		out[n++][len] = '\0';
		s += len;
	}
	return n;
}

static bool code_pattern_valid(const char *p)
{
	if (strlen(p) != 3 || (p[0] != '2' && p[0] != '3' && p[0] != '4' && p[0] != '5'))
		return false;
	for (int i = 1; i < 3; i++)
		if (!isdigit((unsigned char)p[i]) && p[i] != 'x')
			return false;
	return true;
}

static bool finish_codes(struct explain_kb *kb, struct rule *r)
{
	char tmp[LIST_MAX][16];
	r->n_codes = split_list(r->code_s, tmp, LIST_MAX, 4);
	if (r->n_codes < 0)
		return fail(kb, "[rule %s]: codes \"%s\" are not like 550 or 5xx (at most 8)", r->name, r->code_s);
	for (int i = 0; i < r->n_codes; i++) {
		if (!code_pattern_valid(tmp[i]))
			return fail(kb, "[rule %s]: code \"%s\" is not like 550 or 5xx", r->name, tmp[i]);
		memcpy(r->codes[i], tmp[i], 4);
	}
	r->n_enh = split_list(r->enh_s, r->enh, LIST_MAX, 16);
	if (r->n_enh < 0)
		return fail(kb, "[rule %s]: enhanced codes \"%s\" are not like " ENH_PERM_NOT_AUTHORIZED " (at most 8)", r->name, r->enh_s);
	for (int i = 0; i < r->n_enh; i++)
		if (!wire_enh_valid(r->enh[i]))
			return fail(kb, "[rule %s]: enhanced code \"%s\" is not like " ENH_PERM_NOT_AUTHORIZED, r->name, r->enh[i]);
	return true;
}

static bool finish_causes(struct explain_kb *kb, struct rule *r)
{
	const char *s = r->causes_s;
	r->n_causes = 0;
	while (s && *s) {
		s += strspn(s, ", \t");
		size_t len = strcspn(s, ", \t");
		if (len == 0)
			break;
		char id[40];
		if (len >= sizeof(id) || r->n_causes >= LIST_MAX)
			return fail(kb, "[rule %s]: a cause id is too long or too many causes%s", r->name, "");
		memcpy(id, s, len);
		id[len] = '\0';
		int i = cause_index(id);
		if (i < 0)
			return fail(kb, "[rule %s]: \"%s\" is not a cause id of the fixed list", r->name, id);
		if (!kb->causes[i].described)
			return fail(kb, "[rule %s]: cause \"%s\" has no [cause] section", r->name, id);
		r->causes[r->n_causes++] = i;
		s += len;
	}
	return true;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static bool finish_rule(struct explain_kb *kb, struct rule *r)
{
	if (!finish_codes(kb, r) || !finish_causes(kb, r))
		return false;
	char why[160];
	if (r->regex_s && !explain_regex_bounded(r->regex_s, why, sizeof(why)))
		return fail(kb, "[rule %s]: regex too complex: %s", r->name, why);
	if (r->regex_s) {
		int rc = regcomp(&r->re, r->regex_s, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (rc != 0) {
			char msg[128];
			regerror(rc, &r->re, msg, sizeof(msg));
			return fail(kb, "[rule %s]: bad regex: %s", r->name, msg);
		}
		r->has_re = true;
	}
	lower(r->text);
	if (!r->n_codes && !r->n_enh && !r->text && !r->has_re)
		return fail(kb, "[rule %s]: needs code, enhanced, text or regex%s", r->name, "");
	if (!r->meaning && !r->n_causes)
		return fail(kb, "[rule %s]: needs a meaning or causes%s", r->name, "");
	bool exact = false;
	for (int i = 0; i < r->n_codes; i++)
		exact |= strchr(r->codes[i], 'x') == NULL;
	r->score = ((r->text || r->has_re) ? 8 : 0) + (r->n_enh ? 4 : 0) + (r->n_codes ? (exact ? 2 : 1) : 0);
	return true;
}

static bool finish(struct explain_kb *kb)
{
	for (int i = 0; i < N_IDS; i++) {
		struct cause_entry *c = &kb->causes[i];
		if (!c->described)
			continue;
		if (!c->words)
			return fail(kb, "[cause %s]: needs words%s", explain_cause_ids[i], "");
		c->pub.id = explain_cause_ids[i];
		c->pub.words = c->words;
		for (int f = 0; f < EXPLAIN_FIXES_MAX && c->fixes[f]; f++)
			c->pub.fixes[c->pub.n_fixes++] = c->fixes[f];
	}
	for (int i = 0; i < kb->n_rules; i++)
		if (!finish_rule(kb, &kb->rules[i]))
			return false;
	return true;
}

/* Debian's inih splits lines longer than its buffer, and an inline " ;" would cut a
 * value: refuse both with the line number rather than load something else. */
static int prescan(const char *text, char *why, size_t whysz)
{
	int line = 1;
	const char *p = text;
	while (*p) {
		size_t len = strcspn(p, "\n");
		const char *eq = memchr(p, '=', len);
		if (len > LINE_MAX_INIH) {
			snprintf(why, whysz, "line longer than %d bytes (continue it on an indented line)", LINE_MAX_INIH);
			return line;
		}
		if (eq && p[0] != ';' && p[0] != '#')
			for (const char *q = eq; q + 1 < p + len; q++)
				if ((q[0] == ' ' || q[0] == '\t') && q[1] == ';') {
					snprintf(why, whysz, "\" ;\" in a value starts a comment: rephrase without it");
					return line;
				}
		p += len;
		if (*p == '\n')
			p++;
		line++;
	}
	return 0;
}

bool explain_kb_load_string(struct explain_kb **out, const char *text, const char *name,
	char *err, size_t errsz)
{
	*out = NULL;
	char why[160];
	int line = prescan(text, why, sizeof(why));
	if (line) {
		snprintf(err, errsz, "%s:%d: %s", name, line, why);
		return false;
	}
	struct explain_kb *kb = calloc(1, sizeof(*kb));
	if (!kb) {
		snprintf(err, errsz, "%s: out of memory", name);
		return false;
	}
	kb->seen_keys = strdup("|");
	line = kb->seen_keys ? ini_parse_string(text, handler, kb) : -2;
	if (line != 0 || !finish(kb)) {
		if (line > 0)
			snprintf(err, errsz, "%s:%d: %s", name, line, kb->err[0] ? kb->err : "syntax error");
		else
			snprintf(err, errsz, "%s: %s", name, kb->err[0] ? kb->err : "cannot parse");
		explain_kb_free(&kb);
		return false;
	}
	free(kb->seen_keys);
	kb->seen_keys = NULL;
	*out = kb;
	return true;
}

bool explain_kb_load_file(struct explain_kb **kb, const char *path, char *err, size_t errsz)
{
	*kb = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errsz, "%s: cannot open the knowledge base", path);
		return false;
	}
	enum { FILE_MAX = 1 << 20 };
	char *text = malloc(FILE_MAX + 1);
	size_t n = text ? fread(text, 1, FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!text || n > FILE_MAX) {
		free(text);
		snprintf(err, errsz, "%s: too large or out of memory", path);
		return false;
	}
	text[n] = '\0';
	bool ok = explain_kb_load_string(kb, text, path, err, errsz);
	free(text);
	return ok;
}

void explain_kb_free(struct explain_kb **pkb)
{
	struct explain_kb *kb = *pkb;
	if (!kb)
		return;
	for (int i = 0; i < kb->n_rules; i++) {
		struct rule *r = &kb->rules[i];
		free(r->name); free(r->code_s); free(r->enh_s); free(r->text);
		free(r->regex_s); free(r->meaning); free(r->causes_s);
		if (r->has_re)
			regfree(&r->re);
	}
	free(kb->rules);
	for (int i = 0; i < N_IDS; i++) {
		free(kb->causes[i].words);
		for (int f = 0; f < EXPLAIN_FIXES_MAX; f++)
			free(kb->causes[i].fixes[f]);
	}
	free(kb->seen_keys);
	free(kb);
	*pkb = NULL;
}

bool explain_kb_locate(char *path, size_t pathsz)
{
	const char *env = getenv("POSTERN_DATA_DIR");
	/* POSTERN_SOURCE_DIR is "" in a package (meson -Dsource_data=false) */
	const char *dirs[] = { env && *env ? env : NULL, POSTERN_SOURCE_DIR[0] ? POSTERN_SOURCE_DIR "/data" : NULL, POSTERN_DATADIR };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		if (snprintf(path, pathsz, "%s/%s", dirs[i], KB_FILE) >= (int)pathsz)
			continue;
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

const struct explain_cause *explain_kb_cause(const struct explain_kb *kb, const char *id)
{
	int i = cause_index(id);
	if (kb && i >= 0 && kb->causes[i].described)
		return &kb->causes[i].pub;
	return &unknown_builtin;
}
