/* parse_lex.c - the lexer of the IMAP parser: the tokens of RFC 3501 §9 (atom,
 * quoted, literal, astring, nstring, number, sequence-set, flag, mailbox,
 * list-mailbox) read from one complete command, every one bounded and counted. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap/parse_internal.h"
#include "util/buf.h"

bool lex_fail(struct lex *l, const char *fmt, ...)
{
	if (!l->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(l->err, sizeof(l->err), fmt, ap);
		va_end(ap);
		l->failed = true;
	}
	return false;
}

const char *lex_near(const struct lex *l, char *out, size_t outsz)
{
	struct buf b;
	buf_init(&b, outsz > 1 ? outsz - 1 : 0);
	size_t n = (size_t)(l->end - l->p);
	if (n == 0)
		buf_appends(&b, "the end of the command");
	else
		buf_append_escaped(&b, l->p, n, 24);
	snprintf(out, outsz, "%s", buf_cstr(&b));
	buf_free(&b);
	return out;
}

int lex_peek(const struct lex *l)
{
	return l->p < l->end ? (unsigned char)*l->p : -1;
}

bool lex_at_end(const struct lex *l)
{
	return l->p >= l->end;
}

bool lex_char(struct lex *l, char ch)
{
	if (lex_peek(l) == (unsigned char)ch) {
		l->p++;
		return true;
	}
	char near[64];
	if (ch == ' ')
		return lex_fail(l, "expected a space before \"%s\"", lex_near(l, near, sizeof(near)));
	return lex_fail(l, "expected \"%c\" at \"%s\"", ch, lex_near(l, near, sizeof(near)));
}

bool lex_sp(struct lex *l)
{
	return lex_char(l, ' ');
}

bool lex_try_char(struct lex *l, char ch)
{
	if (lex_peek(l) == (unsigned char)ch) {
		l->p++;
		return true;
	}
	return false;
}

bool lex_end(struct lex *l)
{
	if (l->failed)
		return false;
	if (l->p == l->end)
		return true;
	char near[64];
	return lex_fail(l, "unexpected \"%s\" after the arguments", lex_near(l, near, sizeof(near)));
}

bool lex_count_arg(struct lex *l)
{
	if (++l->args > IMAP_ARGS_MAX)
		return lex_fail(l, "too many arguments (at most %d)", IMAP_ARGS_MAX);
	return true;
}

bool lex_push(struct lex *l)
{
	if (++l->depth > IMAP_DEPTH_MAX)
		return lex_fail(l, "nested too deep (at most %d levels of parentheses)", IMAP_DEPTH_MAX);
	return true;
}

void lex_pop(struct lex *l)
{
	l->depth--;
}

/* ATOM-CHAR: any CHAR except atom-specials (RFC 3501 §9); ASTRING-CHAR adds ']'. */
static bool atom_char(int ch, bool astring)
{
	if (ch <= 0x20 || ch >= 0x7f)
		return false;
	if (ch == ']')
		return astring;
	return !strchr("(){%*\"\\", ch);
}

bool lex_atom(struct lex *l, bool astring, const char **s, size_t *n, const char *what)
{
	const char *start = l->p;
	while (l->p < l->end && atom_char((unsigned char)*l->p, astring))
		l->p++;
	if (l->p == start) {
		char near[64];
		return lex_fail(l, "expected %s at \"%s\"", what, lex_near(l, near, sizeof(near)));
	}
	*s = start;
	*n = (size_t)(l->p - start);
	return lex_count_arg(l);
}

bool lex_word_is(struct lex *l, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(l->end - l->p) < n || strncasecmp(l->p, word, n) != 0)
		return false;
	if (l->p + n < l->end && atom_char((unsigned char)l->p[n], true))
		return false;
	l->p += n;
	return true;
}

static bool lex_quoted(struct lex *l, char **out, size_t *n, const char *what)
{
	l->p++;   /* DQUOTE */
	const char *start = l->p;
	size_t len = 0;
	for (const char *q = start; q < l->end; q++) {
		if (*q == '"') {
			char *r = arena_alloc(l->c->arena, len + 1);
			if (!r)
				return lex_fail(l, "out of memory");
			size_t k = 0;
			for (const char *t = start; t < q; t++) {
				if (*t == '\\')
					t++;
				r[k++] = *t;
			}
			r[k] = '\0';
			if (l->utf8 && !utf8_valid(r, k))   /* RFC 6855 §3: quoted strings hold UTF-8 */
				return lex_fail(l, "in %s: the quoted string is not valid UTF-8 (RFC 6855 §3)", what);
			*out = r;
			*n = k;
			l->p = q + 1;
			return lex_count_arg(l);
		}
		if (*q == '\\') {
			if (q + 1 >= l->end || (q[1] != '"' && q[1] != '\\'))
				return lex_fail(l, "in %s: a backslash in a quoted string may only escape \" or \\", what);
			q++;
		} else if (*q == '\0' || *q == '\r' || *q == '\n') {
			return lex_fail(l, "in %s: a quoted string may not hold NUL, CR or LF (send a literal)", what);
		}
		len++;
	}
	return lex_fail(l, "in %s: the quoted string has no closing \"", what);
}

/* "{" number ["+"] "}" CRLF *CHAR8: the scanner stored it as "{N}\r\n" + octets. */
static bool lex_literal(struct lex *l, char **out, size_t *n, const char *what, bool allow_nul)
{
	const char *q = l->p + 1;
	unsigned long long size = 0;
	int digits = 0;
	while (q < l->end && *q >= '0' && *q <= '9' && digits < 11) {
		size = size * 10 + (unsigned)(*q++ - '0');
		digits++;
	}
	if (q < l->end && *q == '+')
		q++;
	if (!digits || q + 3 > l->end || q[0] != '}' || q[1] != '\r' || q[2] != '\n')
		return lex_fail(l, "in %s: a literal is {N} (or {N+}) at the end of a line", what);
	q += 3;
	if (size > (unsigned long long)(l->end - q))
		return lex_fail(l, "in %s: the literal is cut short", what);
	if (!allow_nul && memchr(q, '\0', (size_t)size))
		return lex_fail(l, "in %s: a literal may not hold NUL octets (RFC 3501 §4.3)", what);
	*out = arena_strndup(l->c->arena, q, (size_t)size);
	if (!*out)
		return lex_fail(l, "out of memory");
	*n = (size_t)size;
	l->p = q + size;
	return lex_count_arg(l);
}

bool lex_string(struct lex *l, char **out, size_t *n, const char *what)
{
	size_t dummy;
	if (!n)
		n = &dummy;
	if (lex_peek(l) == '"')
		return lex_quoted(l, out, n, what);
	if (lex_peek(l) == '{')
		return lex_literal(l, out, n, what, l->c->name == IMAP_CMD_APPEND);
	char near[64];
	return lex_fail(l, "expected %s (a quoted string or a literal) at \"%s\"", what, lex_near(l, near, sizeof(near)));
}

bool lex_astring(struct lex *l, char **out, size_t *n, const char *what)
{
	size_t dummy;
	if (!n)
		n = &dummy;
	int ch = lex_peek(l);
	if (ch == '"' || ch == '{')
		return lex_string(l, out, n, what);
	const char *s;
	if (!lex_atom(l, true, &s, n, what))
		return false;
	*out = arena_strndup(l->c->arena, s, *n);
	return *out ? true : lex_fail(l, "out of memory");
}

bool lex_nstring(struct lex *l, char **out, size_t *n, const char *what)
{
	if (lex_word_is(l, "NIL")) {
		*out = NULL;
		if (n)
			*n = 0;
		return lex_count_arg(l);
	}
	return lex_string(l, out, n, what);
}

bool lex_number64(struct lex *l, uint64_t *v, bool nz, const char *what)
{
	const char *start = l->p;
	uint64_t r = 0;
	while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
		unsigned d = (unsigned)(*l->p - '0');
		if (r > (UINT64_MAX - d) / 10 || r * 10 + d > (uint64_t)INT64_MAX)
			return lex_fail(l, "%s is too large", what);
		r = r * 10 + d;
		l->p++;
	}
	char near[64];
	if (l->p == start) {
		l->p = start;
		return lex_fail(l, "expected %s (a number) at \"%s\"", what, lex_near(l, near, sizeof(near)));
	}
	if (nz && r == 0)
		return lex_fail(l, "%s may not be 0", what);
	*v = r;
	return lex_count_arg(l);
}

bool lex_number(struct lex *l, uint32_t *v, bool nz, const char *what)
{
	uint64_t r;
	if (!lex_number64(l, &r, nz, what))
		return false;
	if (r > UINT32_MAX)
		return lex_fail(l, "%s is too large (at most 4294967295)", what);
	*v = (uint32_t)r;
	return true;
}

bool lex_grow(struct lex *l, void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 4;
	while (ncap <= n)
		ncap *= 2;
	void *nv = arena_alloc(l->c->arena, ncap * size);
	if (!nv)
		return lex_fail(l, "out of memory");
	if (*cap && *v)
		memcpy(nv, *v, *cap * size);
	*v = nv;
	*cap = ncap;
	return true;
}

static bool seq_number(struct lex *l, uint32_t *v, const char *what)
{
	if (lex_try_char(l, '*')) {
		*v = IMAP_SEQ_STAR;
		return true;
	}
	if (lex_peek(l) < '0' || lex_peek(l) > '9') {
		char near[64];
		return lex_fail(l, "expected %s (numbers and ranges like 1:5,7,10:*) at \"%s\"", what,
			lex_near(l, near, sizeof(near)));
	}
	uint64_t r = 0;
	while (lex_peek(l) >= '0' && lex_peek(l) <= '9') {
		r = r * 10 + (unsigned)(*l->p++ - '0');
		if (r > UINT32_MAX)
			return lex_fail(l, "in %s: a number is too large", what);
	}
	if (r == 0)
		return lex_fail(l, "in %s: message numbers start at 1 (0 is not one)", what);
	/* nz-number goes up to 4294967295 (RFC 3501 §9; interimap asks for "N:4294967295"),
	 * but that value stands for '*' here: it is taken as 4294967294, which no UID or
	 * message number here reaches, so "N:4294967295" keeps meaning N and above. */
	*v = r == UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)r;
	return true;
}

bool lex_seqset(struct lex *l, struct imap_seqset *set, const char *what)
{
	memset(set, 0, sizeof(*set));
	if (!lex_count_arg(l))
		return false;
	if (lex_try_char(l, '$')) {   /* RFC 5182 §2.1 */
		set->saved = true;
		return true;
	}
	size_t cap = 0;
	do {
		struct imap_seq s;
		if (!seq_number(l, &s.lo, what))
			return false;
		s.hi = s.lo;
		if (lex_try_char(l, ':') && !seq_number(l, &s.hi, what))
			return false;
		if (s.lo > s.hi) {
			uint32_t t = s.lo;
			s.lo = s.hi;
			s.hi = t;
		}
		if (!lex_grow(l, (void **)&set->r, &cap, set->n, sizeof(*set->r)) || !lex_count_arg(l))
			return false;
		set->r[set->n++] = s;
	} while (lex_try_char(l, ','));
	return true;
}

bool imap_seq_contains(const struct imap_seqset *s, uint32_t v, uint32_t max)
{
	for (size_t i = 0; i < s->n; i++) {
		uint32_t lo = s->r[i].lo == IMAP_SEQ_STAR ? max : s->r[i].lo;
		uint32_t hi = s->r[i].hi == IMAP_SEQ_STAR ? max : s->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi)
			return true;
	}
	return false;
}

/* Decode (unless UTF8=ACCEPT) and give INBOX its one spelling (RFC 3501 §5.1). */
static bool finish_mailbox(struct lex *l, char *raw, size_t n, char **out)
{
	char *name = raw;
	if (!l->utf8) {
		size_t cap = n * 2 + 8;   /* UTF-8 of modified UTF-7 is never more than twice as long */
		name = arena_alloc(l->c->arena, cap);
		if (!name)
			return lex_fail(l, "out of memory");
		if (!imap_mutf7_decode(raw, n, name, cap))
			return lex_fail(l, "the mailbox name is not valid modified UTF-7 (RFC 3501, mailbox naming): "
				"write \"&\" as \"&-\", other non-ASCII as &...-");
	} else if (!utf8_valid(raw, n)) {
		return lex_fail(l, "the mailbox name is not valid UTF-8 (RFC 6855 §3)");
	}
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
	*out = name;
	return true;
}

bool lex_mailbox(struct lex *l, char **out, const char *what)
{
	char *raw;
	size_t n;
	if (!lex_astring(l, &raw, &n, what))
		return false;
	if (memchr(raw, '\0', n))
		return lex_fail(l, "%s may not hold NUL", what);
	return finish_mailbox(l, raw, n, out);
}

/* list-mailbox = 1*list-char / string; list-char = ATOM-CHAR / list-wildcards /
 * resp-specials */
bool lex_list_mailbox(struct lex *l, char **out)
{
	int ch = lex_peek(l);
	if (ch == '"' || ch == '{')
		return lex_mailbox(l, out, "a mailbox pattern");
	const char *start = l->p;
	while (l->p < l->end && (atom_char((unsigned char)*l->p, true) || *l->p == '%' || *l->p == '*'))
		l->p++;
	if (l->p == start) {
		char near[64];
		return lex_fail(l, "expected a mailbox pattern at \"%s\"", lex_near(l, near, sizeof(near)));
	}
	char *raw = arena_strndup(l->c->arena, start, (size_t)(l->p - start));
	if (!raw || !lex_count_arg(l))
		return raw ? false : lex_fail(l, "out of memory");
	return finish_mailbox(l, raw, (size_t)(l->p - start), out);
}

/* flag = "\Answered" / ... / keyword / flag-extension ("\" atom) */
bool lex_flag(struct lex *l, char **out)
{
	const char *start = l->p;
	lex_try_char(l, '\\');
	const char *s;
	size_t n;
	if (!lex_atom(l, false, &s, &n, "a flag (\\Seen, \\Answered, \\Flagged, \\Deleted, \\Draft or a keyword)"))
		return false;
	*out = arena_strndup(l->c->arena, start, (size_t)(l->p - start));
	return *out ? true : lex_fail(l, "out of memory");
}

bool lex_flag_list(struct lex *l, char ***flags, size_t *n)
{
	size_t cap = 0;
	*flags = NULL;
	*n = 0;
	if (!lex_char(l, '('))
		return false;
	if (lex_try_char(l, ')'))
		return true;
	do {
		char *f;
		if (!lex_flag(l, &f) || !lex_grow(l, (void **)flags, &cap, *n, sizeof(**flags)))
			return false;
		(*flags)[(*n)++] = f;
	} while (lex_try_char(l, ' '));
	return lex_char(l, ')');
}
