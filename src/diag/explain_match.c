/* explain_match.c - what a reply says: its reply code and enhanced code found in free
 * text (a pasted bounce, a log line), and the knowledge-base rules it matches, most
 * specific first (see explain.h).  Reply codes: RFC 5321 §4.2; enhanced codes:
 * RFC 3463. */
#include "diag/explain.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/explain_int.h"
#include "wire/wire.h"

/* --- finding codes in free text ------------------------------------------------ */

static bool boundary_before(const char *t, size_t i)
{
	return i == 0 || !(isalnum((unsigned char)t[i - 1]) || t[i - 1] == '.');
}

/* [245][0-5][0-9] followed by space, '-', line end or end of text. */
static bool code_at(const char *t, size_t len, size_t i)
{
	if (i + 3 > len || !boundary_before(t, i))
		return false;
	if ((t[i] != '2' && t[i] != '4' && t[i] != '5') || t[i + 1] < '0' || t[i + 1] > '5'
		|| !isdigit((unsigned char)t[i + 2]))
		return false;
	return i + 3 == len || t[i + 3] == ' ' || t[i + 3] == '-' || t[i + 3] == '\r' || t[i + 3] == '\n'
		|| t[i + 3] == '\'' || t[i + 3] == '"' || t[i + 3] == ',';
}

/* An enhanced code (wire.h) standing as a word at i; returns its length or 0. */
static size_t enh_at(const char *t, size_t len, size_t i)
{
	return i < len && boundary_before(t, i) ? wire_enh_len(t + i, len - i) : 0;
}

static bool at_line_start(const char *t, size_t i)
{
	while (i > 0 && (t[i - 1] == ' ' || t[i - 1] == '\t' || t[i - 1] == '>' || t[i - 1] == '#'))
		i--;
	return i == 0 || t[i - 1] == '\n';
}

void explain_parse_codes(const char *t, size_t len, int *code, char *enh, size_t enhsz)
{
	size_t best = len, followed = len, any = len, e = len, elen = 0;
	for (size_t i = 0; i < len; i++) {
		if (e == len && (elen = enh_at(t, len, i)) > 0)
			e = i;
		if (!code_at(t, len, i))
			continue;
		if (best == len && at_line_start(t, i))
			best = i;
		size_t j = i + 3;
		while (j < len && (t[j] == ' ' || t[j] == '-'))
			j++;
		if (followed == len && enh_at(t, len, j))
			followed = i;
		if (any == len)
			any = i;
	}
	size_t c = best != len ? best : followed != len ? followed : any;
	/* A bare number somewhere in prose is a code only if an enhanced code agrees. */
	if (c == any && c != best && c != followed && !(e != len && t[e] == t[c]))
		c = len;
	*code = c == len ? 0 : (t[c] - '0') * 100 + (t[c + 1] - '0') * 10 + (t[c + 2] - '0');
	if (c != len) {           /* prefer the enhanced code that follows the chosen code */
		size_t j = c + 3;
		while (j < len && (t[j] == ' ' || t[j] == '-'))
			j++;
		size_t l = enh_at(t, len, j);
		if (l) {
			e = j;
			elen = l;
		}
	}
	if (enhsz)
		enh[0] = '\0';
	if (e != len && elen < enhsz) {
		memcpy(enh, t + e, elen);
		enh[elen] = '\0';
	}
}

/* --- matching ------------------------------------------------------------------- */

static bool code_matches(const struct rule *r, int code)
{
	if (!r->n_codes)
		return true;
	char c[4];
	snprintf(c, sizeof(c), "%03d", code);
	for (int i = 0; i < r->n_codes; i++) {
		if (code == 0)
			break;
		bool ok = true;
		for (int k = 0; k < 3; k++)
			ok &= r->codes[i][k] == 'x' || r->codes[i][k] == c[k];
		if (ok)
			return true;
	}
	return false;
}

static bool enh_matches(const struct rule *r, const char *enh)
{
	if (!r->n_enh)
		return true;
	for (int i = 0; i < r->n_enh; i++)
		if (enh[0] && strcmp(r->enh[i], enh) == 0)
			return true;
	return false;
}

static bool rule_matches(const struct rule *r, const char *low, int code, const char *enh)
{
	return code_matches(r, code) && enh_matches(r, enh)
		&& (!r->text || strstr(low, r->text))
		&& (!r->has_re || regexec(&r->re, low, 0, NULL, 0) == 0);
}

static void add_cause(struct explain_result *res, const struct explain_cause *c)
{
	for (int i = 0; i < res->n_causes; i++)
		if (res->causes[i] == c)
			return;
	if (res->n_causes < EXPLAIN_RESULT_MAX)
		res->causes[res->n_causes++] = c;
}

void explain_match(const struct explain_kb *kb, const char *text, size_t len, struct explain_result *res)
{
	memset(res, 0, sizeof(*res));
	if (len > EXPLAIN_INPUT_MAX)
		len = EXPLAIN_INPUT_MAX;
	char *low = malloc(len + 1);
	if (!low)
		len = 0;
	for (size_t i = 0; low && i < len; i++)
		low[i] = text[i] == '\0' ? ' ' : (char)tolower((unsigned char)text[i]);
	if (low)
		low[len] = '\0';
	explain_parse_codes(low ? low : "", len, &res->code, res->enhanced, sizeof(res->enhanced));
	for (int score = 15; low && kb && score > 0; score--)
		for (int i = 0; i < kb->n_rules; i++) {
			const struct rule *r = &kb->rules[i];
			if (r->score != score || !rule_matches(r, low, res->code, res->enhanced))
				continue;
			if (!res->meaning && r->meaning)
				res->meaning = r->meaning;
			for (int k = 0; k < r->n_causes; k++)
				add_cause(res, &kb->causes[r->causes[k]].pub);
		}
	free(low);
	res->known = res->n_causes > 0;
	if (!res->known)
		res->causes[res->n_causes++] = explain_kb_cause(kb, "unknown");
	if (!res->meaning)
		res->meaning = "Postern does not recognise this reply.";
}
