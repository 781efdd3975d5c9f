/* parse_fetch.c - FETCH's items (RFC 3501 §6.4.5 and §9 fetch-att, RFC 3516
 * BINARY, RFC 7162 MODSEQ and CHANGEDSINCE/VANISHED) and SEARCH's keys (RFC 3501
 * §6.4.4, RFC 7162 MODSEQ, RFC 4731 RETURN, RFC 5182 "$"). */
#include <string.h>
#include <strings.h>

#include "imap/parse_internal.h"

/* A fetch-att or search-key word: letters, digits, '.', '-' (stops at '[', SP, ')'). */
static size_t word_len(const struct lex *l)
{
	size_t n = 0;
	while (l->p + n < l->end) {
		char ch = l->p[n];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-'))
			break;
		n++;
	}
	return n;
}

static bool word_eq(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && strncasecmp(w, s, n) == 0;
}

static bool header_list(struct lex *l, struct imap_section *sec)
{
	size_t cap = 0;
	if (!lex_sp(l) || !lex_char(l, '('))
		return false;
	do {
		char *f;
		if (!lex_astring(l, &f, NULL, "a header field name") ||
		    !lex_grow(l, (void **)&sec->fields, &cap, sec->n_fields, sizeof(char *)))
			return false;
		for (char *p = f; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		sec->fields[sec->n_fields++] = f;
	} while (lex_try_char(l, ' '));
	return lex_char(l, ')');
}

/* section = "[" [section-spec] "]"; binary: section-binary = "[" [section-part] "]" */
static bool section(struct lex *l, struct imap_section *sec, bool binary)
{
	if (!lex_char(l, '['))
		return false;
	sec->kind = SEC_ALL;
	while (lex_peek(l) >= '0' && lex_peek(l) <= '9') {
		if (sec->n_part == sizeof(sec->part) / sizeof(sec->part[0]))
			return lex_fail(l, "section numbers nest at most 16 deep");
		if (!lex_number(l, &sec->part[sec->n_part++], true, "a section part number"))
			return false;
		if (!lex_try_char(l, '.'))
			break;
		if (!(lex_peek(l) >= '0' && lex_peek(l) <= '9') && binary)
			return lex_fail(l, "a BINARY section is part numbers only (RFC 3516)");
	}
	if (!binary && lex_peek(l) != ']') {
		size_t n = word_len(l);
		const char *w = l->p;
		l->p += n;
		if (word_eq(w, n, "HEADER"))
			sec->kind = SEC_HEADER;
		else if (word_eq(w, n, "TEXT"))
			sec->kind = SEC_TEXT;
		else if (word_eq(w, n, "MIME") && sec->n_part)
			sec->kind = SEC_MIME;
		else if (word_eq(w, n, "HEADER.FIELDS") || word_eq(w, n, "HEADER.FIELDS.NOT")) {
			sec->kind = n == 13 ? SEC_HEADER_FIELDS : SEC_HEADER_FIELDS_NOT;
			if (!header_list(l, sec))
				return false;
		} else {
			l->p = w;
			char near[64];
			return lex_fail(l, "unknown section at \"%s\" (HEADER, HEADER.FIELDS (...), HEADER.FIELDS.NOT (...), "
				"TEXT, MIME or part numbers like 1.2)", lex_near(l, near, sizeof(near)));
		}
	}
	return lex_char(l, ']');
}

static bool partial(struct lex *l, struct imap_fetch_item *it)
{
	if (!lex_try_char(l, '<'))
		return true;
	it->partial = true;
	return lex_number(l, &it->offset, false, "the partial offset") && lex_char(l, '.') &&
		lex_number(l, &it->length, true, "the partial length") && lex_char(l, '>');
}

static const struct { const char *name; enum imap_fetch_att att; } simple_atts[] = {
	{ "FLAGS", FA_FLAGS }, { "INTERNALDATE", FA_INTERNALDATE }, { "RFC822.SIZE", FA_RFC822_SIZE },
	{ "ENVELOPE", FA_ENVELOPE }, { "BODYSTRUCTURE", FA_BODYSTRUCTURE }, { "UID", FA_UID }, { "MODSEQ", FA_MODSEQ },
	{ "RFC822", FA_RFC822 }, { "RFC822.HEADER", FA_RFC822_HEADER }, { "RFC822.TEXT", FA_RFC822_TEXT },
};

static bool fetch_att(struct lex *l, struct imap_fetch_item *it)
{
	size_t n = word_len(l);
	const char *w = l->p;
	l->p += n;
	if (!lex_count_arg(l))
		return false;
	memset(it, 0, sizeof(*it));
	bool body = word_eq(w, n, "BODY"), peek = word_eq(w, n, "BODY.PEEK");
	bool bin = word_eq(w, n, "BINARY"), binpeek = word_eq(w, n, "BINARY.PEEK"), binsize = word_eq(w, n, "BINARY.SIZE");
	if ((body || peek) && lex_peek(l) == '[') {
		it->att = FA_BODY_SECTION;
		it->peek = peek;
		return section(l, &it->sec, false) && partial(l, it);
	}
	if (bin || binpeek || binsize) {
		it->att = binsize ? FA_BINARY_SIZE : FA_BINARY_SECTION;
		it->peek = binpeek;
		return section(l, &it->sec, true) && (binsize || partial(l, it));
	}
	if (body) {
		it->att = FA_BODY;
		return true;
	}
	for (size_t i = 0; i < sizeof(simple_atts) / sizeof(simple_atts[0]); i++)
		if (word_eq(w, n, simple_atts[i].name)) {
			it->att = simple_atts[i].att;
			return true;
		}
	l->p = w;
	char near[64];
	return lex_fail(l, "unknown FETCH item at \"%s\" (RFC 3501 §6.4.5)", lex_near(l, near, sizeof(near)));
}

static bool add_items(struct lex *l, size_t *cap, const enum imap_fetch_att *atts, size_t k)
{
	struct imap_cmd *c = l->c;
	for (size_t i = 0; i < k; i++) {
		if (!lex_grow(l, (void **)&c->fetch.items, cap, c->fetch.n, sizeof(*c->fetch.items)))
			return false;
		memset(&c->fetch.items[c->fetch.n], 0, sizeof(c->fetch.items[0]));
		c->fetch.items[c->fetch.n++].att = atts[i];
	}
	return true;
}

static bool fetch_one(struct lex *l, size_t *cap)
{
	struct imap_cmd *c = l->c;
	if (!lex_grow(l, (void **)&c->fetch.items, cap, c->fetch.n, sizeof(*c->fetch.items)))
		return false;
	if (!fetch_att(l, &c->fetch.items[c->fetch.n]))
		return false;
	c->fetch.n++;
	return true;
}

/* fetch-modifier: CHANGEDSINCE mod-sequence-valzer / VANISHED (RFC 7162 §3.1.4, §3.2.6) */
static bool fetch_modifiers(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_char(l, '('))
		return false;
	do {
		if (lex_word_is(l, "CHANGEDSINCE")) {
			c->fetch.changedsince_given = true;
			if (!lex_sp(l) || !lex_number64(l, &c->fetch.changedsince, false, "CHANGEDSINCE"))
				return false;
		} else if (lex_word_is(l, "VANISHED")) {
			c->fetch.vanished = true;
		} else {
			return lex_fail(l, "unknown FETCH modifier (CHANGEDSINCE and VANISHED are known)");
		}
	} while (lex_try_char(l, ' '));
	if (!lex_char(l, ')'))
		return false;
	if (c->fetch.vanished && (!c->uid || !c->fetch.changedsince_given))
		return lex_fail(l, "VANISHED is only for UID FETCH with CHANGEDSINCE (RFC 7162 §3.2.6)");
	return true;
}

bool parse_fetch_args(struct lex *l)
{
	static const enum imap_fetch_att fast[] = { FA_FLAGS, FA_INTERNALDATE, FA_RFC822_SIZE };
	static const enum imap_fetch_att all[] = { FA_FLAGS, FA_INTERNALDATE, FA_RFC822_SIZE, FA_ENVELOPE };
	static const enum imap_fetch_att full[] = { FA_FLAGS, FA_INTERNALDATE, FA_RFC822_SIZE, FA_ENVELOPE, FA_BODY };
	struct imap_cmd *c = l->c;
	size_t cap = 0;
	if (!lex_sp(l) || !lex_seqset(l, &c->set, c->uid ? "the UID set" : "the message set") || !lex_sp(l))
		return false;
	bool ok;
	if (lex_word_is(l, "ALL"))
		ok = add_items(l, &cap, all, 4);
	else if (lex_word_is(l, "FAST"))
		ok = add_items(l, &cap, fast, 3);
	else if (lex_word_is(l, "FULL"))
		ok = add_items(l, &cap, full, 5);
	else if (lex_try_char(l, '(')) {
		do {
			if (!fetch_one(l, &cap))
				return false;
		} while (lex_try_char(l, ' '));
		ok = lex_char(l, ')');
	} else
		ok = fetch_one(l, &cap);
	if (!ok)
		return false;
	if (lex_try_char(l, ' '))
		return fetch_modifiers(l);
	return true;
}

/* ---- SEARCH -------------------------------------------------------------------- */

static bool search_key(struct lex *l, struct imap_search_key *k);

static const struct { const char *name; enum imap_search_op op; char arg; } keys[] = {
	/* arg: 0 none, 's' astring, 'k' keyword atom, 'd' date, 'n' number, 'h' two astrings */
	{ "ALL", SK_ALL, 0 }, { "ANSWERED", SK_ANSWERED, 0 }, { "DELETED", SK_DELETED, 0 }, { "DRAFT", SK_DRAFT, 0 },
	{ "FLAGGED", SK_FLAGGED, 0 }, { "NEW", SK_NEW, 0 }, { "OLD", SK_OLD, 0 }, { "RECENT", SK_RECENT, 0 },
	{ "SEEN", SK_SEEN, 0 }, { "UNANSWERED", SK_UNANSWERED, 0 }, { "UNDELETED", SK_UNDELETED, 0 },
	{ "UNDRAFT", SK_UNDRAFT, 0 }, { "UNFLAGGED", SK_UNFLAGGED, 0 }, { "UNSEEN", SK_UNSEEN, 0 },
	{ "KEYWORD", SK_KEYWORD, 'k' }, { "UNKEYWORD", SK_UNKEYWORD, 'k' },
	{ "BCC", SK_BCC, 's' }, { "CC", SK_CC, 's' }, { "FROM", SK_FROM, 's' }, { "SUBJECT", SK_SUBJECT, 's' },
	{ "TO", SK_TO, 's' }, { "BODY", SK_BODY, 's' }, { "TEXT", SK_TEXT, 's' }, { "HEADER", SK_HEADER, 'h' },
	{ "BEFORE", SK_BEFORE, 'd' }, { "ON", SK_ON, 'd' }, { "SINCE", SK_SINCE, 'd' },
	{ "SENTBEFORE", SK_SENTBEFORE, 'd' }, { "SENTON", SK_SENTON, 'd' }, { "SENTSINCE", SK_SENTSINCE, 'd' },
	{ "LARGER", SK_LARGER, 'n' }, { "SMALLER", SK_SMALLER, 'n' },
};

/* date = date-text / DQUOTE date-text DQUOTE */
static bool search_date(struct lex *l, time_t *t)
{
	const char *s;
	size_t n;
	char *q = NULL;
	if (lex_peek(l) == '"') {
		if (!lex_string(l, &q, &n, "a date"))
			return false;
		s = q;
	} else if (!lex_atom(l, false, &s, &n, "a date like 1-Dec-2026")) {
		return false;
	}
	if (!imap_parse_date(s, n, t))
		return lex_fail(l, "a date looks like 1-Dec-2026 (RFC 3501 §9)");
	return true;
}

/* MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer (RFC 7162 §3.1.5) */
static bool search_modseq(struct lex *l, struct imap_search_key *k)
{
	k->op = SK_MODSEQ;
	if (!lex_sp(l))
		return false;
	if (lex_peek(l) == '"') {
		char *type;
		const char *s;
		size_t n;
		if (!lex_string(l, &k->str, NULL, "the entry name") || !lex_sp(l) ||
		    !lex_atom(l, false, &s, &n, "the entry type (priv, shared or all)") || !lex_sp(l))
			return false;
		type = arena_strndup(l->c->arena, s, n);
		if (!type)
			return lex_fail(l, "out of memory");
		k->str2 = type;
	}
	return lex_number64(l, &k->num, false, "the mod-sequence");
}

static bool key_children(struct lex *l, struct imap_search_key *k, size_t n)
{
	k->child = arena_alloc(l->c->arena, n * sizeof(*k->child));
	if (!k->child)
		return lex_fail(l, "out of memory");
	k->n_child = n;
	for (size_t i = 0; i < n; i++)
		if ((i > 0 && !lex_sp(l)) || !search_key(l, &k->child[i]))
			return false;
	return true;
}

/* "(" search-key *(SP search-key) ")" or the top level's keys: an AND */
static bool key_list(struct lex *l, struct imap_search_key *k, bool paren)
{
	k->op = SK_AND;
	size_t cap = 0;
	do {
		if (!lex_grow(l, (void **)&k->child, &cap, k->n_child, sizeof(*k->child)))
			return false;
		memset(&k->child[k->n_child], 0, sizeof(*k->child));
		if (!search_key(l, &k->child[k->n_child]))
			return false;
		k->n_child++;
	} while (lex_try_char(l, ' ') && (!paren || lex_peek(l) != ')'));
	return !paren || lex_char(l, ')');
}

static bool search_arg(struct lex *l, struct imap_search_key *k, char arg)
{
	const char *s;
	size_t n;
	switch (arg) {
	case 's': return lex_astring(l, &k->str, NULL, "the text to search for");
	case 'h': return lex_astring(l, &k->str, NULL, "the header field name") && lex_sp(l) &&
		lex_astring(l, &k->str2, NULL, "the text to search for");
	case 'k':
		if (!lex_atom(l, false, &s, &n, "a keyword"))
			return false;
		k->str = arena_strndup(l->c->arena, s, n);
		return k->str ? true : lex_fail(l, "out of memory");
	case 'd': return search_date(l, &k->date);
	case 'n': return lex_number64(l, &k->num, false, "the size");
	default: return true;
	}
}

static bool search_word(struct lex *l, struct imap_search_key *k)
{
	size_t n = word_len(l);
	const char *w = l->p;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (word_eq(w, n, keys[i].name)) {
			l->p += n;
			k->op = keys[i].op;
			return lex_count_arg(l) && (!keys[i].arg || (lex_sp(l) && search_arg(l, k, keys[i].arg)));
		}
	l->p += n;
	if (word_eq(w, n, "NOT")) {
		k->op = SK_NOT;
		return lex_sp(l) && key_children(l, k, 1);
	}
	if (word_eq(w, n, "OR")) {
		k->op = SK_OR;
		return lex_sp(l) && key_children(l, k, 2);
	}
	if (word_eq(w, n, "UID")) {
		k->op = SK_UID;
		return lex_sp(l) && lex_seqset(l, &k->set, "the UID set");
	}
	if (word_eq(w, n, "MODSEQ"))
		return search_modseq(l, k);
	l->p = w;
	char near[64];
	return lex_fail(l, "unknown search key at \"%s\" (RFC 3501 §6.4.4)", lex_near(l, near, sizeof(near)));
}

static bool search_key(struct lex *l, struct imap_search_key *k)
{
	if (!lex_push(l))
		return false;
	bool ok;
	int ch = lex_peek(l);
	if (ch == '(') {
		l->p++;
		ok = key_list(l, k, true);
	} else if ((ch >= '0' && ch <= '9') || ch == '*' || ch == '$') {
		k->op = SK_SEQSET;
		ok = lex_seqset(l, &k->set, "the message set");
	} else {
		ok = search_word(l, k);
	}
	lex_pop(l);
	return ok;
}

/* search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")" */
static bool search_return(struct lex *l)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_SEARCH_RET_MIN }, { "MAX", IMAP_SEARCH_RET_MAX }, { "ALL", IMAP_SEARCH_RET_ALL },
		{ "COUNT", IMAP_SEARCH_RET_COUNT }, { "SAVE", IMAP_SEARCH_RET_SAVE } };
	struct imap_cmd *c = l->c;
	c->search.return_given = true;
	if (!lex_sp(l) || !lex_char(l, '('))
		return false;
	bool first = true;
	while (!lex_try_char(l, ')')) {
		if (!first && !lex_sp(l))
			return false;
		first = false;
		size_t i;
		for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
			if (lex_word_is(l, opts[i].name)) {
				c->search.ret |= opts[i].bit;
				break;
			}
		if (i == sizeof(opts) / sizeof(opts[0]))
			return lex_fail(l, "unknown SEARCH RETURN option (MIN, MAX, ALL, COUNT, SAVE are known)");
	}
	if (c->search.ret == 0)
		c->search.ret = IMAP_SEARCH_RET_ALL;   /* RFC 4731 §3.1: () means ALL */
	return lex_sp(l);
}

bool parse_search_args(struct lex *l)
{
	struct imap_cmd *c = l->c;
	if (!lex_sp(l))
		return false;
	if (lex_word_is(l, "RETURN") && !search_return(l))
		return false;
	if (lex_word_is(l, "CHARSET")) {
		if (!lex_sp(l) || !lex_astring(l, &c->search.charset, NULL, "the charset") || !lex_sp(l))
			return false;
	}
	c->search.key = arena_alloc(c->arena, sizeof(*c->search.key));
	if (!c->search.key)
		return lex_fail(l, "out of memory");
	return key_list(l, c->search.key, false);
}
