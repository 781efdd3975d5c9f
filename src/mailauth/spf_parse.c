/* spf_parse.c - the SPF record parser (RFC 7208 §4.5, §4.6, §12 ABNF).  A record is
 * parsed whole before anything is evaluated: §4.6 "If there are any syntax errors
 * anywhere in the record, check_host() returns immediately with the result
 * permerror".  Terms point into the record text; nothing is copied. */
#include "mailauth/spf.h"
#include "util/parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool spf_is_record(const char *txt, size_t len)
{
	/* §4.5: records begin with "v=spf1" and either end there or go on after a space;
	 * the version is case-insensitive (§4.6.1 "v=spf1", matched like pyspf's RE_SPF). */
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}


/* §12 toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool toplabel_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	bool alpha = false, hyphen = false;
	for (size_t i = 0; i < n; i++) {
		if (ascii_is_alpha((unsigned char)s[i]))
			alpha = true;
		else if (s[i] == '-')
			hyphen = true;
		else if (!ascii_is_digit((unsigned char)s[i]))
			return false;
	}
	if (hyphen)
		return s[0] != '-' && s[n - 1] != '-';
	return alpha;
}

/* §12 domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static bool domain_spec_ok(const char *s, size_t n, char *err, size_t errsz)
{
	if (n == 0) {
		snprintf(err, errsz, "the domain is empty");
		return false;
	}
	if (!spf_macro_valid(s, n, false, err, errsz))
		return false;
	if (s[n - 1] == '}')
		return true;   /* ends with a macro-expand */
	if (n >= 2 && s[n - 1] == '%' && s[n - 2] == '%')
		return true;
	size_t end = s[n - 1] == '.' ? n - 1 : n;
	size_t dot = end;
	while (dot > 0 && s[dot - 1] != '.')
		dot--;
	if (dot == 0 || !toplabel_ok(s + dot, end - dot)) {
		snprintf(err, errsz, "\"%.*s\" does not end in a top-level domain name (RFC 7208 section 12 domain-end)",
			(int)(n > 80 ? 80 : n), s);
		return false;
	}
	return true;
}

/* "/N" with N in 0..max, no leading zero (§12 ip4-cidr-length / ip6-cidr-length). */
static bool cidr_value(const char *s, size_t n, int max, int *out)
{
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return false;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ascii_is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Take a trailing dual-cidr-length ("/24", "//64", "/24//64") off arg (§5.6). */
static bool split_cidr(const char *arg, size_t *len, struct spf_term *t, bool v4, bool v6)
{
	size_t n = *len;
	/* The last '/' group; then, if v4 is allowed, one more before "//". */
	size_t slash = n;
	while (slash > 0 && ascii_is_digit((unsigned char)arg[slash - 1]))
		slash--;
	if (slash == 0 || arg[slash - 1] != '/' || slash == n) {
		/* no trailing "/digits": a bare '/' at the end is an error */
		return n == 0 || arg[n - 1] != '/';
	}
	bool dbl = slash >= 2 && arg[slash - 2] == '/';
	if (dbl) {
		/* "//" only in a dual-cidr-length (a, mx), never after ip4: or ip6: */
		if (!v6 || !v4 || !cidr_value(arg + slash, n - slash, 128, &t->cidr6))
			return false;
		n = slash - 2;
		size_t s4 = n;
		while (s4 > 0 && ascii_is_digit((unsigned char)arg[s4 - 1]))
			s4--;
		if (s4 > 0 && s4 < n && arg[s4 - 1] == '/') {
			if (!v4 || !cidr_value(arg + s4, n - s4, 32, &t->cidr4))
				return false;
			n = s4 - 1;
		}
	} else {
		if (v4 && !cidr_value(arg + slash, n - slash, 32, &t->cidr4))
			return false;
		if (!v4 && !cidr_value(arg + slash, n - slash, 128, &t->cidr6))
			return false;
		n = slash - 1;
	}
	*len = n;
	return true;
}

static bool parse_ip(struct spf_term *t, const char *arg, size_t n, char *err, size_t errsz)
{
	bool v6 = t->mech == SPF_M_IP6;
	if (!split_cidr(arg, &n, t, !v6, v6) || n == 0 || n >= 64) {
		snprintf(err, errsz, "the network is not valid");
		return false;
	}
	char ip[64];
	memcpy(ip, arg, n);
	ip[n] = '\0';
	if (!v6) {
		/* §12 qnum: no leading zeros; inet_pton(AF_INET) takes exactly a dotted quad. */
		for (size_t i = 0; i < n; i++)
			if (ip[i] == '0' && (i == 0 || ip[i - 1] == '.') && i + 1 < n && ascii_is_digit((unsigned char)ip[i + 1])) {
				snprintf(err, errsz, "\"%s\" is not an IPv4 address", ip);
				return false;
			}
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, ip, t->net) != 1) {
		snprintf(err, errsz, "\"%s\" is not an IPv%d address", ip, v6 ? 6 : 4);
		return false;
	}
	return true;
}

static const struct { const char *name; enum spf_mech mech; } mechs[] = {
	{ "all", SPF_M_ALL }, { "include", SPF_M_INCLUDE }, { "a", SPF_M_A }, { "mx", SPF_M_MX },
	{ "ptr", SPF_M_PTR }, { "ip4", SPF_M_IP4 }, { "ip6", SPF_M_IP6 }, { "exists", SPF_M_EXISTS },
};

/* The argument of a mechanism: after the name, ":" domain-spec and/or a cidr. */
static bool parse_mech_arg(struct spf_term *t, const char *arg, size_t n, char *err, size_t errsz)
{
	switch (t->mech) {
	case SPF_M_ALL:
		if (n == 0)
			return true;
		snprintf(err, errsz, "\"all\" takes no argument");
		return false;
	case SPF_M_IP4:
	case SPF_M_IP6:
		if (n == 0 || arg[0] != ':') {
			snprintf(err, errsz, "an address is required after ':'");
			return false;
		}
		return parse_ip(t, arg + 1, n - 1, err, errsz);
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		if (n == 0 || arg[0] != ':') {
			snprintf(err, errsz, "a domain is required after ':'");
			return false;
		}
		break;
	case SPF_M_A:
	case SPF_M_MX:
		if (!split_cidr(arg, &n, t, true, true)) {
			snprintf(err, errsz, "the prefix length is not valid (RFC 7208 section 5.6)");
			return false;
		}
		break;
	case SPF_M_PTR:
		break;
	}
	if (n == 0)
		return true;
	if (arg[0] != ':') {
		snprintf(err, errsz, "unexpected \"%.*s\"", (int)(n > 40 ? 40 : n), arg);
		return false;
	}
	t->spec = arg + 1;
	t->spec_len = n - 1;
	return domain_spec_ok(t->spec, t->spec_len, err, errsz);
}

static bool parse_directive(struct spf_term *t, const char *s, size_t n, char *err, size_t errsz)
{
	memset(t, 0, sizeof(*t));
	t->text = s;
	t->text_len = n;
	t->cidr4 = 32;
	t->cidr6 = 128;
	t->qualifier = '+';
	if (n > 0 && strchr("+-~?", s[0])) {
		t->qualifier = s[0];
		s++, n--;
	}
	size_t name = 0;
	while (name < n && s[name] != ':' && s[name] != '/')
		name++;
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == name && strncasecmp(s, mechs[i].name, name) == 0) {
			t->mech = mechs[i].mech;
			return parse_mech_arg(t, s + name, n - name, err, errsz);
		}
	snprintf(err, errsz, "unknown mechanism");
	return false;
}

/* name "=" value: redirect, exp, or an unknown modifier (ignored, §6). */
static bool parse_modifier(struct spf_record *rec, const char *s, size_t n, size_t eq, char *err, size_t errsz)
{
	if (!ascii_is_alpha((unsigned char)s[0])) {
		snprintf(err, errsz, "a modifier name must begin with a letter");
		return false;
	}
	for (size_t i = 1; i < eq; i++)
		if (!ascii_is_alpha((unsigned char)s[i]) && !ascii_is_digit((unsigned char)s[i]) && !strchr("-_.", s[i])) {
			snprintf(err, errsz, "unknown mechanism");
			return false;
		}
	const char *v = s + eq + 1;
	size_t vn = n - eq - 1;
	bool redirect = eq == 8 && strncasecmp(s, "redirect", 8) == 0;
	bool exp = eq == 3 && strncasecmp(s, "exp", 3) == 0;
	if (!redirect && !exp)
		return spf_macro_valid(v, vn, false, err, errsz);
	/* §6: "These two modifiers MUST NOT appear in a record more than once each." */
	if ((redirect && rec->redirect) || (exp && rec->exp)) {
		snprintf(err, errsz, "%s= appears twice (RFC 7208 section 6)", redirect ? "redirect" : "exp");
		return false;
	}
	if (!domain_spec_ok(v, vn, err, errsz))
		return false;
	if (redirect) {
		rec->redirect = v, rec->redirect_len = vn;
		rec->redirect_text = s, rec->redirect_text_len = n;
	} else
		rec->exp = v, rec->exp_len = vn;
	return true;
}

static bool parse_term(struct spf_record *rec, const char *s, size_t n, char *err, size_t errsz)
{
	/* A modifier's name runs up to '='; a mechanism's up to ':' or '/'. */
	size_t eq = 0;
	while (eq < n && s[eq] != '=' && s[eq] != ':' && s[eq] != '/')
		eq++;
	if (eq < n && s[eq] == '=' && eq > 0)
		return parse_modifier(rec, s, n, eq, err, errsz);
	if (rec->n >= SPF_TERMS_MAX) {
		snprintf(err, errsz, "more than %d terms", SPF_TERMS_MAX);
		return false;
	}
	struct spf_term *t = &rec->terms[rec->n];
	if (!parse_directive(t, s, n, err, errsz))
		return false;
	if (t->mech == SPF_M_ALL && t->qualifier == '-')
		rec->has_fail_all = true;
	rec->n++;
	return true;
}

bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec, char *err, size_t errsz)
{
	memset(rec, 0, sizeof(*rec));
	if (!spf_is_record(txt, len)) {
		snprintf(err, errsz, "not an SPF record (no \"v=spf1\")");
		return false;
	}
	if (len > SPF_RECORD_MAX) {
		snprintf(err, errsz, "the record is longer than %d octets", SPF_RECORD_MAX);
		return false;
	}
	size_t i = 6;
	while (i < len) {
		if (txt[i] == ' ') {   /* §12 terms = *( 1*SP ( directive / modifier ) ) */
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && txt[i] != ' ')
			i++;
		char why[200];
		if (!parse_term(rec, txt + start, i - start, why, sizeof(why))) {
			size_t tl = i - start;
			char shown[100];
			size_t o = 0;
			for (size_t k = 0; k < tl && o + 5 < sizeof(shown); k++) {
				unsigned char ch = (unsigned char)txt[start + k];
				o += (size_t)snprintf(shown + o, sizeof(shown) - o, ch >= 0x20 && ch < 0x7f && ch != '"' ? "%c" : "\\x%02x", ch);
			}
			snprintf(err, errsz, "\"%s\": %s", shown, why);
			return false;
		}
	}
	return true;
}
