/* address_list.c - RFC 5322 address lists such as From: (see header.h).  Pure: no I/O,
 * no allocation.  Finding the field itself is header.c.
 *
 * The address parser is a small lexer, which skips CFWS before every token
 * (RFC 5322 §3.2.2), under a recursive-descent parser for §3.4 that also takes
 * the §4.4 obsolete forms.  Comments nest by counting, not recursion, and the
 * parser's own calls are a fixed few frames deep.  Every loop consumes input,
 * and the only backtracking (display name or group name, then addr-spec) rescans
 * one address at most twice, so the work is linear in the value's length.
 *
 * Choices the RFCs leave open, or that real mail forces:
 *   - A quoted local part is unquoted in the output, so it may itself hold "@"
 *     or spaces ("a@b"@c.test gives a@b@c.test): the domain is what follows the
 *     LAST "@" (domain literals may not hold one).  An empty local part
 *     (""@x.test) is MSG_SYNTAX.
 *   - Control characters (other than HTAB) are refused in quoted strings and
 *     quoted-pairs, so an address never holds CR, LF, NUL or escapes
 *     (obs-qtext, §4.1, is not tolerated: it would reach the output).  Comments
 *     are dropped, so their obs-ctext is accepted (NUL excepted).
 *   - Bytes >= 0x80 are accepted in atoms, quoted strings, comments and
 *     domains (RFC 6532 §3.2) without checking that they form valid UTF-8;
 *     raw Latin-1 display names still occur in old mail.
 *   - A line end inside a value must be a fold (followed by WSP, §2.2.3); one
 *     at the very end of the value is tolerated.  Bare LF counts as a line end.
 *   - A group whose closing ";" is missing at the very end of the value is
 *     accepted ("undisclosed-recipients:").  Groups do not nest (§3.4).
 *   - An empty angle-addr "<>" is MSG_SYNTAX: a From needs an address.
 *   - On any status but MSG_OK the list is left empty (n = 0, not truncated).
 *   - Status: MSG_SYNTAX for the first grammar error; MSG_TOO_LONG when a
 *     well-formed addr-spec yields more than MSG_ADDR_MAX bytes; MSG_EMPTY when
 *     the value holds no mailbox (only CFWS, commas or empty groups).
 *     Mailboxes past MSG_MAX_MAILBOXES are still parsed (the whole value must
 *     be valid) but dropped, with `truncated` set. */
#include "msg/header.h"

#include <string.h>

#include "msg/internal.h"
#include "util/parse.h"

/* ---- Lexer: CFWS, atoms, quoted strings, domain literals ---- */

enum tok_type { T_ERR, T_END, T_ATOM, T_QSTR, T_DLIT, T_CHAR };

/* A token is a span of the input; T_QSTR and T_DLIT include their delimiters. */
struct tok {
	enum tok_type type;
	size_t start, len;
	unsigned char ch;   /* T_CHAR: the special (§3.2.3 specials) or stray byte */
};

struct lexer {
	const unsigned char *p;
	size_t len;
	size_t i;
	bool err;        /* sticky: a malformed comment, quoted string, literal or fold */
	bool too_long;   /* an addr-spec exceeded MSG_ADDR_MAX */
};

/* §3.2.3 atext, plus UTF-8 bytes (RFC 6532 §3.2).  RFC 2047 encoded words
 * ("=?UTF-8?B?...?=") are made of atext, so they lex as atoms. */
static bool is_atext(unsigned char c) { return c >= 0x80 || rfc5322_is_atext(c); }

/* Printable or UTF-8: what may appear in an address after unquoting. */
static bool is_vchar_or_utf8(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* §3.2.2 FWS: a line end inside a value must be followed by WSP (a fold); one
 * ending the value is tolerated.  A lone CR is an error. */
static bool skip_fold(struct lexer *lx)
{
	size_t e = eol_len(lx->p, lx->len, lx->i);
	if (e == 0 || (lx->i + e < lx->len && !is_wsp(lx->p[lx->i + e])))
		return false;
	lx->i += e;
	return true;
}

/* §3.2.1 quoted-pair = "\" (VCHAR / WSP), plus UTF-8.  The obsolete
 * "\" CTL forms (§4.1) are refused. */
static bool skip_quoted_pair(struct lexer *lx)
{
	if (lx->i + 1 >= lx->len)
		return false;
	unsigned char c = lx->p[lx->i + 1];
	if (!is_vchar_or_utf8(c) && !is_wsp(c))
		return false;
	lx->i += 2;
	return true;
}

/* §3.2.2 CFWS = (1*([FWS] comment) [FWS]) / FWS;
 * comment = "(" *([FWS] ccontent) [FWS] ")"; ccontent = ctext / quoted-pair / comment.
 * Nesting is counted.  Returns false on an unterminated comment or bad fold. */
static bool skip_cfws(struct lexer *lx)
{
	size_t depth = 0;
	while (lx->i < lx->len) {
		unsigned char c = lx->p[lx->i];
		if (is_wsp(c)) {
			lx->i++;
		} else if (c == '\r' || c == '\n') {
			if (!skip_fold(lx))
				return false;
		} else if (c == '(') {
			depth++;
			lx->i++;
		} else if (depth == 0) {
			return true;
		} else if (c == ')') {
			depth--;
			lx->i++;
		} else if (c == '\\') {
			if (!skip_quoted_pair(lx))
				return false;
		} else if (c == '\0') {
			return false;
		} else {
			lx->i++;   /* ctext, obs-ctext (§4.1), UTF-8 */
		}
	}
	return depth == 0;
}

/* §3.2.4 quoted-string = [CFWS] DQUOTE *([FWS] qcontent) [FWS] DQUOTE [CFWS];
 * qcontent = qtext / quoted-pair.  At the opening quote. */
static bool lex_quoted_string(struct lexer *lx)
{
	lx->i++;
	while (lx->i < lx->len) {
		unsigned char c = lx->p[lx->i];
		if (c == '"') {
			lx->i++;
			return true;
		}
		if (c == '\\') {
			if (!skip_quoted_pair(lx))
				return false;
		} else if (c == '\r' || c == '\n') {
			if (!skip_fold(lx))
				return false;
		} else if (is_vchar_or_utf8(c) || is_wsp(c)) {
			lx->i++;
		} else {
			return false;
		}
	}
	return false;
}

/* §3.4.1 domain-literal = [CFWS] "[" *([FWS] dtext) [FWS] "]" [CFWS];
 * dtext = %d33-90 / %d94-126, plus UTF-8, except "@": no address literal
 * (RFC 5321 §4.1.3) holds one, and without it the domain of an output
 * address is always what follows its last "@".  At the opening bracket. */
static bool lex_domain_literal(struct lexer *lx)
{
	lx->i++;
	while (lx->i < lx->len) {
		unsigned char c = lx->p[lx->i];
		if (c == ']') {
			lx->i++;
			return true;
		}
		if (c == '\r' || c == '\n') {
			if (!skip_fold(lx))
				return false;
		} else if (is_wsp(c) || (c >= 33 && c <= 90 && c != '@') || (c >= 94 && c <= 126) || c >= 0x80) {
			lx->i++;
		} else {
			return false;
		}
	}
	return false;
}

/* The next token after CFWS.  Errors are sticky: once set, T_ERR forever. */
static struct tok next_token(struct lexer *lx)
{
	struct tok t = { T_ERR, lx->i, 0, 0 };
	if (lx->err || !skip_cfws(lx)) {
		lx->err = true;
		return t;
	}
	t.start = lx->i;
	if (lx->i >= lx->len) {
		t.type = T_END;
		return t;
	}
	unsigned char c = lx->p[lx->i];
	bool ok = true;
	if (is_atext(c)) {
		while (lx->i < lx->len && is_atext(lx->p[lx->i]))
			lx->i++;
		t.type = T_ATOM;
	} else if (c == '"') {
		ok = lex_quoted_string(lx);
		t.type = T_QSTR;
	} else if (c == '[') {
		ok = lex_domain_literal(lx);
		t.type = T_DLIT;
	} else {
		lx->i++;
		t.type = T_CHAR;
		t.ch = c;
	}
	if (!ok) {
		lx->err = true;
		t.type = T_ERR;
	}
	t.len = lx->i - t.start;
	return t;
}

static struct tok peek_token(struct lexer *lx)
{
	size_t save = lx->i;
	struct tok t = next_token(lx);
	lx->i = save;
	return t;
}

static bool is_char(struct tok t, unsigned char ch)
{
	return t.type == T_CHAR && t.ch == ch;
}

/* §3.2.5 word = atom / quoted-string */
static bool is_word(struct tok t)
{
	return t.type == T_ATOM || t.type == T_QSTR;
}

/* Consume the special `ch` if it comes next. */
static bool accept_char(struct lexer *lx, unsigned char ch)
{
	size_t save = lx->i;
	if (is_char(next_token(lx), ch))
		return true;
	lx->i = save;
	return false;
}

/* ---- The address being built ---- */

struct addr_buf {
	char s[MSG_ADDR_MAX + 1];
	size_t n;
	bool too_long;
};

static void put(struct addr_buf *b, unsigned char c)
{
	if (b->n < MSG_ADDR_MAX)
		b->s[b->n++] = (char)c;
	else
		b->too_long = true;
}

/* An atom as is (lower-cased for a domain); a quoted string's content with
 * the quotes, quoted-pair backslashes and fold line ends removed (§3.2.4:
 * the content is semantically the string without them). */
static void put_word(struct addr_buf *b, const struct lexer *lx, struct tok t, bool lower)
{
	const unsigned char *s = lx->p + t.start;
	if (t.type == T_ATOM) {
		for (size_t k = 0; k < t.len; k++)
			put(b, lower ? ascii_lower_c(s[k]) : s[k]);
		return;
	}
	for (size_t k = 1; k + 1 < t.len; k++) {
		if (s[k] == '\\')
			put(b, s[++k]);
		else if (s[k] != '\r' && s[k] != '\n')
			put(b, s[k]);
	}
}

/* A domain literal is kept as written, brackets included, minus FWS. */
static void put_literal(struct addr_buf *b, const struct lexer *lx, struct tok t)
{
	for (size_t k = 0; k < t.len; k++) {
		unsigned char c = lx->p[t.start + k];
		if (!is_wsp(c) && c != '\r' && c != '\n')
			put(b, c);
	}
}

static void add_mailbox(struct msg_address_list *out, const struct addr_buf *b)
{
	if (out->n >= MSG_MAX_MAILBOXES) {
		out->truncated = true;
		return;
	}
	memcpy(out->mailboxes[out->n].addr, b->s, b->n);
	out->mailboxes[out->n].addr[b->n] = '\0';
	out->n++;
}

/* ---- Parser: RFC 5322 §3.4 with the §4.4 obsolete forms ---- */

/* §3.4.1 local-part = dot-atom / quoted-string / obs-local-part;
 * §4.4 obs-local-part = word *("." word), e.g. a."b".c -> a.b.c. */
static bool parse_local_part(struct lexer *lx, struct addr_buf *b)
{
	for (;;) {
		struct tok t = next_token(lx);
		if (!is_word(t))
			return false;
		put_word(b, lx, t, false);
		if (!accept_char(lx, '.'))
			return b->n > 0;
		put(b, '.');
	}
}

/* §3.4.1 domain = dot-atom / domain-literal / obs-domain;
 * §4.4 obs-domain = atom *("." atom).  No empty label, no trailing dot. */
static bool parse_domain(struct lexer *lx, struct addr_buf *b)
{
	struct tok t = next_token(lx);
	if (t.type == T_DLIT) {
		put_literal(b, lx, t);
		return true;
	}
	for (;;) {
		if (t.type != T_ATOM)
			return false;
		put_word(b, lx, t, true);
		if (!accept_char(lx, '.'))
			return true;
		put(b, '.');
		t = next_token(lx);
	}
}

/* §3.4.1 addr-spec = local-part "@" domain.  Adds it to the list. */
static bool parse_addr_spec(struct lexer *lx, struct msg_address_list *out)
{
	struct addr_buf b;
	b.n = 0;
	b.too_long = false;
	if (!parse_local_part(lx, &b) || !accept_char(lx, '@'))
		return false;
	put(&b, '@');
	if (!parse_domain(lx, &b))
		return false;
	if (b.too_long) {
		lx->too_long = true;
		return false;
	}
	add_mailbox(out, &b);
	return true;
}

/* §4.4 obs-route = obs-domain-list ":"
 * obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]).
 * Parsed for syntax and ignored. */
static bool skip_route(struct lexer *lx)
{
	struct addr_buf scratch;
	bool seen_domain = false, need_comma = false;
	for (;;) {
		struct tok t = next_token(lx);
		if (is_char(t, ':'))
			return seen_domain;
		if (is_char(t, ',')) {
			need_comma = false;
		} else if (is_char(t, '@') && !need_comma) {
			scratch.n = 0;
			scratch.too_long = false;
			if (!parse_domain(lx, &scratch))
				return false;
			seen_domain = need_comma = true;
		} else {
			return false;
		}
	}
}

/* §3.4 angle-addr = [CFWS] "<" addr-spec ">" [CFWS];
 * §4.4 obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]. */
static bool parse_angle_addr(struct lexer *lx, struct msg_address_list *out)
{
	if (!accept_char(lx, '<'))
		return false;
	struct tok t = peek_token(lx);
	if ((is_char(t, '@') || is_char(t, ',')) && !skip_route(lx))
		return false;
	return parse_addr_spec(lx, out) && accept_char(lx, '>');
}

/* §3.2.5 phrase = 1*word / obs-phrase; §4.1 obs-phrase = word *(word / "." / CFWS),
 * so "John Q. Public" is a phrase.  Display names and group names are phrases;
 * they are skipped, not kept.  False when no word starts here. */
static bool skip_phrase(struct lexer *lx)
{
	if (!is_word(next_token(lx)))
		return false;
	for (;;) {
		size_t save = lx->i;
		struct tok t = next_token(lx);
		if (!is_word(t) && !is_char(t, '.')) {
			lx->i = save;
			return true;
		}
	}
}

/* §3.4 mailbox = name-addr / addr-spec; name-addr = [display-name] angle-addr.
 * A display name is tried first; if no "<" follows it, the same words are
 * read again as an addr-spec (john@example.test, "a b"@example.test). */
static bool parse_mailbox(struct lexer *lx, struct msg_address_list *out)
{
	size_t save = lx->i;
	if (is_char(peek_token(lx), '<'))
		return parse_angle_addr(lx, out);
	if (skip_phrase(lx) && is_char(peek_token(lx), '<'))
		return parse_angle_addr(lx, out);
	lx->i = save;
	return parse_addr_spec(lx, out);
}

/* A list element must be followed by one of these. */
static bool at_separator(struct lexer *lx, bool in_group)
{
	struct tok t = peek_token(lx);
	return t.type == T_END || is_char(t, ',') || (in_group && is_char(t, ';'));
}

/* §3.4 group = display-name ":" [group-list] ";" [CFWS];
 * group-list = mailbox-list / CFWS / obs-group-list;
 * §4.4 obs-mbox-list and obs-group-list allow empty elements (",,").
 * Called after the ":".  A missing ";" at the end of the value is tolerated. */
static bool parse_group_rest(struct lexer *lx, struct msg_address_list *out)
{
	for (;;) {
		struct tok t = peek_token(lx);
		if (t.type == T_END)
			return true;
		if (is_char(t, ';') || is_char(t, ',')) {
			next_token(lx);
			if (t.ch == ';')
				return true;
			continue;
		}
		if (!parse_mailbox(lx, out) || !at_separator(lx, true))
			return false;
	}
}

/* §3.4 address = mailbox / group.  A phrase followed by ":" opens a group. */
static bool parse_address(struct lexer *lx, struct msg_address_list *out)
{
	size_t save = lx->i;
	if (skip_phrase(lx) && accept_char(lx, ':'))
		return parse_group_rest(lx, out);
	lx->i = save;
	return parse_mailbox(lx, out);
}

/* §3.4 address-list = (address *("," address)) / obs-addr-list;
 * §4.4 obs-addr-list = *([CFWS] ",") address *("," [address / CFWS]).
 * mailbox-list (From, §3.6.2) is the same without groups; groups are accepted
 * here for every field and flattened. */
static bool parse_list(struct lexer *lx, struct msg_address_list *out)
{
	for (;;) {
		struct tok t = peek_token(lx);
		if (t.type == T_END)
			return true;
		if (is_char(t, ',')) {
			next_token(lx);
			continue;
		}
		if (!parse_address(lx, out) || !at_separator(lx, false))
			return false;
	}
}

enum msg_status msg_parse_address_list(const char *value, size_t len, struct msg_address_list *out)
{
	struct lexer lx = { (const unsigned char *)value, value ? len : 0, 0, false, false };
	out->n = 0;
	out->truncated = false;
	if (!parse_list(&lx, out)) {
		out->n = 0;
		out->truncated = false;
		return lx.too_long && !lx.err ? MSG_TOO_LONG : MSG_SYNTAX;
	}
	return out->n == 0 && !out->truncated ? MSG_EMPTY : MSG_OK;
}
