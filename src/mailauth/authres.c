/* authres.c - building the Authentication-Results field (RFC 8601 §2.2):
 *
 *   Authentication-Results: mx.example.org;
 *   	spf=pass smtp.mailfrom=example.com;
 *   	dkim=pass header.d=example.com header.s=sel header.b="abc/def+";
 *   	dmarc=pass (p=reject dis=none) header.from=example.com
 *
 * Everything that came from mail (domains, selectors, words) goes through
 * authres_value(), so a hostile value can neither end the field nor add a resinfo. */
#include "mailauth/authres.h"
#include "util/parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void append(struct authres *a, const char *s, size_t n)
{
	/* A resinfo that does not fit is dropped whole by the callers (they check room
	 * first); this only guards the bound. */
	if (a->len + n >= sizeof(a->text)) {
		a->truncated = true;
		return;
	}
	memcpy(a->text + a->len, s, n);
	a->len += n;
	a->text[a->len] = '\0';
}

static void appends(struct authres *a, const char *s)
{
	append(a, s, strlen(s));
}

/* RFC 2045 §5.1: token := 1*<any CHAR except SPACE, CTLs, or tspecials> */
static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* RFC 5322 §3.2.3 atext */
static bool is_atext(unsigned char c) { return rfc5322_is_atext(c); }

static bool is_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_token(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_token_char((unsigned char)v[i]))
			return false;
	return n > 0;
}

/* [ [ local-part ] "@" ] domain-name with a dot-atom local part (§2.2 pvalue). */
static bool is_mailbox_or_domain(const char *v, size_t n)
{
	const char *at = memchr(v, '@', n);
	size_t dstart = at ? (size_t)(at - v) + 1 : 0;
	if (dstart >= n || v[dstart] == '.' || v[n - 1] == '.')
		return false;
	for (size_t i = dstart; i < n; i++)
		if (!is_domain_char((unsigned char)v[i]) || (v[i] == '.' && v[i - 1] == '.'))
			return false;
	for (size_t i = 0; at && i + 1 < dstart; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!(is_atext(c) || (c == '.' && i > 0 && v[i - 1] != '.' && i + 2 < dstart)))
			return false;
	}
	return true;
}

size_t authres_value(char *out, size_t outsz, const char *v, bool quote_always)
{
	if (outsz == 0)
		return 0;
	size_t n = v ? strlen(v) : 0;
	size_t o = 0;
	if (!quote_always && (is_token(v, n) || (n && is_mailbox_or_domain(v, n))) && n < outsz) {
		memcpy(out, v, n);
		out[n] = '\0';
		return n;
	}
	/* quoted-string (RFC 5322 §3.2.4): qtext, quoted-pair for " and \, no CTLs. */
	if (outsz < 3) {
		out[0] = '\0';
		return 0;
	}
	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		bool pair = c == '"' || c == '\\';
		if (o + (pair ? 2 : 1) + 2 > outsz)
			break;
		if (pair)
			out[o++] = '\\';
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

void authres_begin(struct authres *a, const char *authserv_id)
{
	memset(a, 0, sizeof(*a));
	char id[300];
	authres_value(id, sizeof(id), authserv_id && authserv_id[0] ? authserv_id : "localhost", false);
	appends(a, "Authentication-Results: ");
	appends(a, id);
}

/* A comment (RFC 5322 §3.2.2): ctext, with ( ) \ as quoted-pairs, no CTLs. */
static void comment_text(char *out, size_t outsz, const char *c)
{
	size_t o = 0;
	out[o++] = '(';
	for (size_t i = 0; c[i] && o + 4 < outsz; i++) {
		unsigned char ch = (unsigned char)c[i];
		if (ch == '(' || ch == ')' || ch == '\\')
			out[o++] = '\\';
		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o++] = ')';
	out[o] = '\0';
}

void authres_result(struct authres *a, const char *method, const char *result, const char *reason,
	const char *comment)
{
	char line[1200], r[600] = "", c[400] = "";
	if (reason && reason[0]) {
		char q[560];
		authres_value(q, sizeof(q), reason, true);
		snprintf(r, sizeof(r), " reason=%s", q);
	}
	if (comment && comment[0]) {
		char cm[380];
		comment_text(cm, sizeof(cm), comment);
		snprintf(c, sizeof(c), " %s", cm);
	}
	int n = snprintf(line, sizeof(line), ";\r\n\t%s=%s%s%s", method, result, c, r);
	if (n < 0 || (size_t)n >= sizeof(line) || a->len + (size_t)n + 1 >= sizeof(a->text)) {
		a->truncated = true;
		return;
	}
	appends(a, line);
	a->n_results++;
}

void authres_prop(struct authres *a, const char *ptype, const char *property, const char *value)
{
	if (!value || !value[0] || a->n_results == 0)
		return;
	char q[600], line[700];
	authres_value(q, sizeof(q), value, false);
	int n = snprintf(line, sizeof(line), " %s.%s=%s", ptype, property, q);
	if (n < 0 || (size_t)n >= sizeof(line) || a->len + (size_t)n + 1 >= sizeof(a->text)) {
		a->truncated = true;
		return;
	}
	appends(a, line);
}

const char *authres_field(struct authres *a)
{
	if (a->n_results == 0 && !a->none_added) {
		appends(a, "; none");
		a->none_added = true;
	}
	return a->text;
}
