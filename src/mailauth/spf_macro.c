/* spf_macro.c - SPF macros (RFC 7208 §7): the syntax of a macro-string and its
 * expansion for domain-specs (include, a, mx, ptr, exists, redirect, exp) and for
 * explanation text.  Every output is bounded; a string that does not fit is an
 * error, never cut silently (except §7.3's own rule for names over 253 octets). */
#include "mailauth/spf.h"

#include <stdio.h>
#include <string.h>

#define PARTS_MAX 128

/* §7.1: macro-literal = %x21-24 / %x26-7E; explain-string also allows SP. */
static bool literal_ok(unsigned char ch, bool explanation)
{
	return (ch >= 0x21 && ch <= 0x7e && ch != '%') || (explanation && ch == ' ');
}

static bool is_delimiter(char ch)
{
	return ch && strchr(".-+,/_=", ch) != NULL;   /* §7.1 delimiter */
}

static bool letter_ok(char lower, bool explanation)
{
	if (strchr("slodipvh", lower))
		return true;
	/* §7.3: "c", "r" and "t" are allowed only in "exp" text. */
	return explanation && strchr("crt", lower);
}

struct macro {
	char letter;        /* as written: upper case means URL-escape (§7.3) */
	unsigned digits;    /* 0: all parts */
	bool reverse;
	char delims[8];     /* "" : "." */
};

/* Parse "%{...}" at s[*i] (s[*i] == '%', s[*i+1] == '{'); on success *i is past '}'. */
static bool parse_macro(const char *s, size_t len, size_t *i, bool explanation, struct macro *m, char *err,
	size_t errsz)
{
	size_t k = *i + 2;
	memset(m, 0, sizeof(*m));
	char ch = k < len ? s[k] : '\0';
	char lower = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	if (!ch || !letter_ok(lower, explanation)) {
		snprintf(err, errsz, "%%{%c...}: %s", ch ? ch : '?',
			ch && strchr("crt", lower) ? "the macros c, r and t are allowed only in exp= text (RFC 7208 section 7.3)"
			: "no such macro letter (RFC 7208 section 7.1)");
		return false;
	}
	m->letter = ch;
	k++;
	bool any_digit = false;
	while (k < len && s[k] >= '0' && s[k] <= '9') {
		if (m->digits < 1000)
			m->digits = m->digits * 10 + (unsigned)(s[k] - '0');
		any_digit = true;
		k++;
	}
	if (any_digit && m->digits == 0) {
		snprintf(err, errsz, "%%{%c0}: the number of parts must not be zero (RFC 7208 section 7.3)", ch);
		return false;
	}
	if (k < len && (s[k] == 'r' || s[k] == 'R')) {
		m->reverse = true;
		k++;
	}
	size_t nd = 0;
	while (k < len && is_delimiter(s[k])) {
		if (nd + 1 < sizeof(m->delims) && !strchr(m->delims, s[k]))
			m->delims[nd++] = s[k];
		k++;
	}
	if (k >= len || s[k] != '}') {
		snprintf(err, errsz, "a macro %%{%c... is not closed with } (RFC 7208 section 7.1)", ch);
		return false;
	}
	*i = k + 1;
	return true;
}

/* Walk a macro-string; each macro is handed to emit (NULL: syntax check only). */
struct sink {
	char *out;
	size_t outsz, n;
	bool overflow;
};

static void put(struct sink *k, const char *p, size_t n)
{
	if (k->n + n >= k->outsz) {
		k->overflow = true;
		return;
	}
	memcpy(k->out + k->n, p, n);
	k->n += n;
	k->out[k->n] = '\0';
}

/* §7.3: split on the delimiters, reverse if asked, keep the rightmost `digits`
 * parts, join with ".". */
static void transform(const char *value, const struct macro *m, struct sink *k)
{
	const char *delims = m->delims[0] ? m->delims : ".";
	const char *part[PARTS_MAX];
	size_t plen[PARTS_MAX], n = 0;
	const char *p = value, *start = value;
	for (;; p++) {
		if (*p == '\0' || strchr(delims, *p)) {
			if (n == PARTS_MAX) {
				k->overflow = true;   /* more parts than any name has: an error, not a cut */
				return;
			}
			part[n] = start;
			plen[n] = (size_t)(p - start);
			n++;
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
	if (m->reverse)
		for (size_t a = 0, b = n - 1; a < b; a++, b--) {
			const char *tp = part[a];
			size_t tl = plen[a];
			part[a] = part[b], plen[a] = plen[b];
			part[b] = tp, plen[b] = tl;
		}
	size_t first = m->digits && m->digits < n ? n - m->digits : 0;
	for (size_t i = first; i < n; i++) {
		if (i > first)
			put(k, ".", 1);
		put(k, part[i], plen[i]);
	}
}

/* §7.3: upper-case macro letters are URL-escaped (RFC 3986 unreserved kept). */
static void url_escape(const char *s, size_t n, struct sink *k)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			put(k, (const char *)&s[i], 1);
		else {
			char hex[4];
			snprintf(hex, sizeof(hex), "%%%02X", ch);
			put(k, hex, 3);
		}
	}
}

static const char *macro_value(const struct spf_macro_vars *v, char lower, char *tmp, size_t tmpsz)
{
	switch (lower) {
	case 's': return v->sender;
	case 'l': return v->local;
	case 'o': return v->sender_domain;
	case 'd': return v->domain;
	case 'i': return v->ip_dotted;
	case 'c': return v->ip_text;
	case 'v': return v->ipv6 ? "ip6" : "in-addr";
	case 'h': return v->helo;
	case 'r': return v->receiver && v->receiver[0] ? v->receiver : "unknown";
	case 't': snprintf(tmp, tmpsz, "%lld", v->now); return tmp;
	case 'p': return v->validated_name ? v->validated_name(v->ctx, v->domain) : "unknown";
	}
	return "";
}

static void expand_one(const struct spf_macro_vars *v, const struct macro *m, struct sink *k)
{
	char lower = (m->letter >= 'A' && m->letter <= 'Z') ? (char)(m->letter + 32) : m->letter;
	char tmp[32], buf[1024];
	const char *value = macro_value(v, lower, tmp, sizeof(tmp));
	if (!value)
		value = "";
	struct sink t = { .out = buf, .outsz = sizeof(buf) };
	buf[0] = '\0';
	transform(value, m, &t);
	if (t.overflow)
		k->overflow = true;
	else if (lower != m->letter)
		url_escape(buf, t.n, k);
	else
		put(k, buf, t.n);
}

static bool walk(const struct spf_macro_vars *v, const char *s, size_t len, bool explanation, struct sink *k,
	char *err, size_t errsz)
{
	for (size_t i = 0; i < len;) {
		unsigned char ch = (unsigned char)s[i];
		if (ch != '%') {
			if (!literal_ok(ch, explanation)) {
				snprintf(err, errsz, "character 0x%02x is not allowed in %s (RFC 7208 section 7.1)", ch,
					explanation ? "explanation text" : "a domain-spec");
				return false;
			}
			if (k)
				put(k, (const char *)&s[i], 1);
			i++;
			continue;
		}
		char next = i + 1 < len ? s[i + 1] : '\0';
		if (next == '%' || next == '_' || next == '-') {
			if (k)
				put(k, next == '%' ? "%" : next == '_' ? " " : "%20", next == '-' ? 3 : 1);
			i += 2;
			continue;
		}
		if (next != '{') {
			snprintf(err, errsz, "a %% not followed by {, %%, _ or - (RFC 7208 section 7.1)");
			return false;
		}
		struct macro m;
		if (!parse_macro(s, len, &i, explanation, &m, err, errsz))
			return false;
		if (k)
			expand_one(v, &m, k);
	}
	return true;
}

bool spf_macro_valid(const char *s, size_t len, bool explanation, char *err, size_t errsz)
{
	return walk(NULL, s, len, explanation, NULL, err, errsz);
}

/* §7.3: "When the result of macro expansion is used in a domain name query, if the
 * expanded domain name exceeds 253 characters, the left side is truncated to fit,
 * by removing successive domain labels until the total length does not exceed 253". */
static void shorten_name(char *out, size_t *n)
{
	if (*n > 0 && out[*n - 1] == '.')
		out[--*n] = '\0';
	while (*n > 253) {
		char *dot = strchr(out, '.');
		if (!dot) {
			out[253] = '\0';
			*n = 253;
			break;
		}
		size_t cut = (size_t)(dot - out) + 1;
		memmove(out, dot + 1, *n - cut + 1);
		*n -= cut;
	}
}

bool spf_macro_expand(const struct spf_macro_vars *v, const char *s, size_t len, bool explanation, char *out,
	size_t outsz, char *err, size_t errsz)
{
	if (outsz == 0)
		return false;
	out[0] = '\0';
	struct sink k = { .out = out, .outsz = outsz };
	if (!walk(v, s, len, explanation, &k, err, errsz))
		return false;
	if (k.overflow) {
		snprintf(err, errsz, "the expansion is longer than %zu octets", outsz - 1);
		return false;
	}
	if (!explanation)
		shorten_name(out, &k.n);
	return true;
}
