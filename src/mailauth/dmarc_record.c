/* dmarc_record.c - the DMARC policy record parser (RFC 7489 §6.3, §6.4), strict.
 *
 * A record is a tag list (RFC 6376 §3.2 syntax): "v=DMARC1" first, exactly (the
 * version is case-sensitive, %x44.4d.41.52.43.31), then tag=value pairs separated by
 * ";" with an optional ";" at the end.  What is refused outright (DMARC_PARSE_BAD): a
 * tag list that does not follow that syntax, a tag given twice (RFC 6376 §3.2: the
 * whole list is then invalid), bytes outside printable ASCII.  Unknown tags are ignored
 * (§6.3).  A known tag with a value it cannot have takes its default, and is counted
 * in `defaulted` (§6.3: "syntax errors in the remainder of the record SHOULD be
 * discarded in favor of default values"), except p and sp, whose validity the caller
 * judges (§6.6.3 step 6).  Keywords are compared case-insensitively (ABNF strings). */
#include "mailauth/dmarc.h"
#include "util/parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_TAGS 32

struct span {
	const char *p;
	size_t n;
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct span trim(const char *p, size_t n)
{
	while (n && is_wsp(p[0])) {
		p++;
		n--;
	}
	while (n && is_wsp(p[n - 1]))
		n--;
	return (struct span){ p, n };
}


/* tag-name = ALPHA *ALNUMPUNC (RFC 6376 §3.2) */
static bool valid_name(struct span s)
{
	if (s.n == 0 || !ascii_is_alpha((unsigned char)s.p[0]))
		return false;
	for (size_t i = 1; i < s.n; i++)
		if (!ascii_is_alpha((unsigned char)s.p[i]) && !ascii_is_digit((unsigned char)s.p[i]) && s.p[i] != '_')
			return false;
	return true;
}

/* tag-value = [ tval *( 1*(WSP / FWS) tval ) ], tval = %x21-3A / %x3C-7E */
static bool valid_value(struct span s)
{
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (!is_wsp((char)c) && (c < 0x21 || c > 0x7e || c == ';'))
			return false;
	}
	return true;
}

static bool span_is(struct span s, const char *word)
{
	size_t n = strlen(word);
	return s.n == n && strncasecmp(s.p, word, n) == 0;
}

static bool parse_policy(struct span v, enum dmarc_policy *out)
{
	if (span_is(v, "none"))
		*out = DMARC_P_NONE;
	else if (span_is(v, "quarantine"))
		*out = DMARC_P_QUARANTINE;
	else if (span_is(v, "reject"))
		*out = DMARC_P_REJECT;
	else
		return false;
	return true;
}

static bool parse_align(struct span v, enum dmarc_align *out)
{
	if (span_is(v, "r"))
		*out = DMARC_RELAXED;
	else if (span_is(v, "s"))
		*out = DMARC_STRICT;
	else
		return false;
	return true;
}

/* 1*DIGIT up to max */
static bool parse_number(struct span v, unsigned long long max, unsigned long long *out)
{
	if (v.n == 0 || v.n > 20)
		return false;
	unsigned long long n = 0;
	for (size_t i = 0; i < v.n; i++) {
		if (!ascii_is_digit((unsigned char)v.p[i]))
			return false;
		n = n * 10 + (unsigned)(v.p[i] - '0');
		if (n > max)
			return false;
	}
	*out = n;
	return true;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]; a URI here needs a
 * scheme (RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":") and
 * something after it.  Is at least one element of the comma-separated list valid? */
static bool any_valid_uri(struct span v)
{
	size_t i = 0;
	while (i <= v.n) {
		size_t j = i;
		while (j < v.n && v.p[j] != ',')
			j++;
		struct span u = trim(v.p + i, j - i);
		size_t k = 0;
		if (u.n && ascii_is_alpha((unsigned char)u.p[0])) {
			while (k < u.n && (ascii_is_alpha((unsigned char)u.p[k]) || ascii_is_digit((unsigned char)u.p[k]) || u.p[k] == '+' || u.p[k] == '-' || u.p[k] == '.'))
				k++;
			if (k < u.n && u.p[k] == ':' && k + 1 < u.n && u.p[k + 1] != '!')
				return true;
		}
		i = j + 1;
	}
	return false;
}

/* fo = ("0" / "1" / "d" / "s") *(":" ("0" / "1" / "d" / "s")) */
static bool valid_fo(struct span v)
{
	if (v.n == 0 || v.n >= sizeof(((struct dmarc_record *)0)->fo))
		return false;
	for (size_t i = 0; i < v.n; i++) {
		char c = v.p[i];
		bool opt = c == '0' || c == '1' || c == 'd' || c == 's' || c == 'D' || c == 'S';
		if (i % 2 == 0 ? !opt : c != ':')
			return false;
	}
	return v.n % 2 == 1;
}

/* rf = Keyword *(":" Keyword); the only format registered is afrf (§6.3). */
static bool valid_rf(struct span v)
{
	if (v.n == 0 || v.n >= sizeof(((struct dmarc_record *)0)->rf))
		return false;
	for (size_t i = 0; i < v.n; i++)
		if (!ascii_is_alpha((unsigned char)v.p[i]) && !ascii_is_digit((unsigned char)v.p[i]) && v.p[i] != ':' && v.p[i] != '-')
			return false;
	return true;
}

static void copy_span(char *dst, size_t dstsz, struct span v)
{
	size_t n = v.n < dstsz - 1 ? v.n : dstsz - 1;
	memcpy(dst, v.p, n);
	dst[n] = '\0';
}

static void defaults(struct dmarc_record *r)
{
	memset(r, 0, sizeof(*r));
	r->adkim = DMARC_RELAXED;
	r->aspf = DMARC_RELAXED;
	r->pct = 100;
	strcpy(r->fo, "0");
	strcpy(r->rf, "afrf");
	r->ri = 86400;
}

/* One known tag's value; unknown tags are ignored (§6.3). */
static void take_tag(struct dmarc_record *r, struct span name, struct span v)
{
	unsigned long long n;
	bool ok = true;
	if (span_is(name, "p")) {
		r->p_valid = parse_policy(v, &r->p);
	} else if (span_is(name, "sp")) {
		r->sp_set = true;
		r->sp_valid = parse_policy(v, &r->sp);
	} else if (span_is(name, "np")) {
		r->np_set = parse_policy(v, &r->np);
		ok = r->np_set;
	} else if (span_is(name, "adkim")) {
		ok = parse_align(v, &r->adkim);
	} else if (span_is(name, "aspf")) {
		ok = parse_align(v, &r->aspf);
	} else if (span_is(name, "pct")) {
		ok = parse_number(v, 100, &n);
		if (ok)
			r->pct = (unsigned)n;
	} else if (span_is(name, "ri")) {
		ok = parse_number(v, UINT32_MAX, &n);
		if (ok)
			r->ri = (uint32_t)n;
	} else if (span_is(name, "fo")) {
		ok = valid_fo(v);
		if (ok)
			copy_span(r->fo, sizeof(r->fo), v);
	} else if (span_is(name, "rf")) {
		ok = valid_rf(v);
		if (ok)
			copy_span(r->rf, sizeof(r->rf), v);
	} else if (span_is(name, "rua")) {
		copy_span(r->rua, sizeof(r->rua), v);
		r->rua_valid = any_valid_uri(v);
	} else if (span_is(name, "ruf")) {
		copy_span(r->ruf, sizeof(r->ruf), v);
	}
	if (!ok)
		r->defaulted++;
}

static void say(char *why, size_t whysz, const char *what)
{
	if (why && whysz)
		snprintf(why, whysz, "%s", what);
}

/* The first tag must be exactly v=DMARC1 (§6.3: "v: ... MUST be the first tag"). */
static bool version_first(const char *txt, size_t len, size_t *after)
{
	const char *semi = memchr(txt, ';', len);
	size_t seg = semi ? (size_t)(semi - txt) : len;
	struct span s = trim(txt, seg);
	const char *eq = memchr(s.p, '=', s.n);
	if (!eq)
		return false;
	struct span name = trim(s.p, (size_t)(eq - s.p));
	struct span val = trim(eq + 1, s.n - (size_t)(eq - s.p) - 1);
	if (name.n != 1 || name.p[0] != 'v' || val.n != 6 || memcmp(val.p, "DMARC1", 6) != 0)
		return false;
	*after = semi ? seg + 1 : len;
	return true;
}

enum dmarc_parse dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r, char *why, size_t whysz)
{
	defaults(r);
	say(why, whysz, "");
	size_t pos;
	if (!txt || !version_first(txt, len, &pos)) {
		say(why, whysz, "the record does not begin with v=DMARC1");
		return DMARC_PARSE_NOT_DMARC;
	}
	if (len > DMARC_RECORD_MAX) {
		say(why, whysz, "the record is too long");
		return DMARC_PARSE_BAD;
	}
	struct span seen[MAX_TAGS];
	size_t n_seen = 0;
	while (pos < len) {
		const char *semi = memchr(txt + pos, ';', len - pos);
		size_t seg = semi ? (size_t)(semi - (txt + pos)) : len - pos;
		struct span s = trim(txt + pos, seg);
		pos += seg + (semi ? 1 : 0);
		if (s.n == 0 && !semi && pos >= len)
			break;   /* white space after the final ";" */
		const char *eq = s.n ? memchr(s.p, '=', s.n) : NULL;
		if (!eq) {
			say(why, whysz, s.n ? "a tag has no \"=\"" : "an empty tag between two \";\"");
			return DMARC_PARSE_BAD;
		}
		struct span name = trim(s.p, (size_t)(eq - s.p));
		struct span val = trim(eq + 1, s.n - (size_t)(eq - s.p) - 1);
		if (!valid_name(name) || !valid_value(val)) {
			say(why, whysz, "a tag name or value holds characters a tag list cannot");
			return DMARC_PARSE_BAD;
		}
		if (span_is(name, "v") || n_seen >= MAX_TAGS) {
			say(why, whysz, n_seen >= MAX_TAGS ? "the record has too many tags" : "the tag v appears twice");
			return DMARC_PARSE_BAD;
		}
		for (size_t i = 0; i < n_seen; i++)
			if (seen[i].n == name.n && strncasecmp(seen[i].p, name.p, name.n) == 0) {
				say(why, whysz, "a tag appears twice (RFC 6376 §3.2)");
				return DMARC_PARSE_BAD;
			}
		seen[n_seen++] = name;
		take_tag(r, name, val);
	}
	if (r->defaulted)
		say(why, whysz, "a tag's value is not valid; its default was used");
	return DMARC_PARSE_OK;
}
