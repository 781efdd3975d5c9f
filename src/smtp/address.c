/* address.c - MAIL FROM / RCPT TO paths and parameters (see address.h).
 *
 * Grammar (RFC 5321 §4.1.2, with RFC 6531 UTF-8 extensions):
 *   Path       = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox    = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *   Domain     = sub-domain *("." sub-domain)      ; no trailing dot
 *   esmtp-param = esmtp-keyword ["=" esmtp-value]
 * Leniency, as deployed servers allow: a space after "FROM:" / "TO:", and a path
 * without angle brackets when it holds no spaces. */
#include "smtp/address.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

struct cursor {
	const char *p;
	size_t n;
	size_t i;
};

static bool at_end(const struct cursor *c) { return c->i >= c->n; }
static char peek(const struct cursor *c) { return at_end(c) ? '\0' : c->p[c->i]; }

static bool is_alpha(unsigned char c) { return ascii_is_alpha(c); }
static bool is_digit(unsigned char c) { return ascii_is_digit(c); }

/* atext of RFC 5322 §3.2.3, plus UTF-8 bytes (RFC 6531 §3.3). */
static bool is_atext(unsigned char c) { return c >= 0x80 || rfc5322_is_atext(c); }

/* Local-part into path->local (unquoted). */
static enum smtp_addr_status parse_local(struct cursor *c, struct smtp_path *path)
{
	size_t o = 0;
	if (peek(c) == '"') {
		c->i++;
		for (;;) {
			if (at_end(c))
				return ADDR_SYNTAX;
			unsigned char ch = (unsigned char)c->p[c->i++];
			if (ch == '"')
				break;
			if (ch == '\\') {
				if (at_end(c))
					return ADDR_SYNTAX;
				ch = (unsigned char)c->p[c->i++];
				if (ch < 0x20 || ch == 0x7f)
					return ADDR_SYNTAX;
			} else if (ch < 0x20 || ch == 0x7f) {
				return ADDR_SYNTAX;
			}
			if (ch >= 0x80)
				path->utf8 = true;
			if (o >= SMTP_LOCAL_MAX)
				return ADDR_TOO_LONG;
			path->local[o++] = (char)ch;
		}
		if (o == 0)
			return ADDR_SYNTAX;   /* "" is legal in 5322 but useless and abused */
	} else {
		bool need_atom = true;
		while (!at_end(c)) {
			unsigned char ch = (unsigned char)peek(c);
			if (ch == '.') {
				if (need_atom)
					return ADDR_SYNTAX;   /* leading or double dot */
				need_atom = true;
			} else if (is_atext(ch)) {
				need_atom = false;
				if (ch >= 0x80)
					path->utf8 = true;
			} else {
				break;
			}
			if (o >= SMTP_LOCAL_MAX)
				return ADDR_TOO_LONG;
			path->local[o++] = (char)ch;
			c->i++;
		}
		if (need_atom)
			return ADDR_SYNTAX;   /* empty or ends with a dot */
	}
	path->local[o] = '\0';
	return ADDR_OK;
}

/* Domain (LDH labels, or UTF-8 U-labels) or an address literal.  Lower-cased. */
static enum smtp_addr_status parse_domain(struct cursor *c, char *out, bool *literal, bool *utf8)
{
	size_t o = 0;
	if (peek(c) == '[') {
		/* address-literal: "[" ... "]", contents checked loosely: dcontent. */
		while (!at_end(c)) {
			unsigned char ch = (unsigned char)c->p[c->i++];
			if (o >= SMTP_DOMAIN_MAX)
				return ADDR_TOO_LONG;
			out[o++] = (char)ch;
			if (ch == ']')
				break;
			if (o > 1 && !(is_alpha(ch) || is_digit(ch) || ch == '.' || ch == ':' || ch == '-'))
				return ADDR_SYNTAX;
		}
		if (o < 3 || out[o - 1] != ']')
			return ADDR_SYNTAX;
		out[o] = '\0';
		*literal = true;
		return ADDR_OK;
	}
	size_t label = 0;
	unsigned char prev = '.';
	while (!at_end(c)) {
		unsigned char ch = (unsigned char)peek(c);
		if (ch == '.') {
			if (label == 0 || prev == '-')
				return ADDR_SYNTAX;
			label = 0;
		} else if (is_alpha(ch) || is_digit(ch) || ch >= 0x80) {
			if (ch >= 0x80)
				*utf8 = true;
			if (++label > 63)
				return ADDR_TOO_LONG;
		} else if (ch == '-') {
			if (label == 0)
				return ADDR_SYNTAX;
			label++;
		} else {
			break;
		}
		if (o >= SMTP_DOMAIN_MAX)
			return ADDR_TOO_LONG;
		out[o++] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
		prev = ch;
		c->i++;
	}
	/* A trailing dot ("example.test.") is refused: RFC 5321 Domain has none, and
	 * accepting it would let "user@local." slip past a local-domain check. */
	if (o == 0 || label == 0 || prev == '-')
		return ADDR_SYNTAX;
	out[o] = '\0';
	return ADDR_OK;
}

/* Skip an A-d-l source route "@a,@b:" (RFC 5321 §4.1.2; ignored per Appendix C). */
static enum smtp_addr_status skip_route(struct cursor *c, struct smtp_path *path)
{
	char scratch[SMTP_DOMAIN_MAX + 1];
	bool lit = false, u8 = false;
	while (peek(c) == '@') {
		c->i++;
		enum smtp_addr_status st = parse_domain(c, scratch, &lit, &u8);
		if (st != ADDR_OK)
			return st;
		path->source_route = true;
		if (peek(c) == ',') {
			c->i++;
			if (peek(c) != '@')
				return ADDR_SYNTAX;   /* A-d-l = At-domain *( "," At-domain ) */
			continue;
		}
		if (peek(c) != ':')
			return ADDR_SYNTAX;
		c->i++;
		return ADDR_OK;
	}
	return ADDR_OK;
}

/* "<" Path ">" (or the lenient bare form).  Leaves the cursor after it. */
static enum smtp_addr_status parse_path(struct cursor *c, struct smtp_path *path, bool allow_null,
	bool allow_bare_postmaster)
{
	memset(path, 0, sizeof(*path));
	bool bracket = peek(c) == '<';
	if (bracket)
		c->i++;
	if (bracket && peek(c) == '>') {
		c->i++;
		if (!allow_null)
			return ADDR_NULL_RCPT;
		path->null = true;
		return ADDR_OK;
	}
	size_t start = c->i;
	enum smtp_addr_status st = skip_route(c, path);
	if (st != ADDR_OK)
		return st;
	st = parse_local(c, path);
	if (st != ADDR_OK)
		return st;
	if (peek(c) != '@') {
		/* RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> without a domain must work. */
		bool closes = bracket ? peek(c) == '>' : (at_end(c) || peek(c) == ' ');
		if (allow_bare_postmaster && !path->source_route && closes && c->i - start == 10 &&
			ascii_ieq(c->p + start, "postmaster", 10)) {
			path->bare_postmaster = true;
			if (bracket)
				c->i++;
			return ADDR_OK;
		}
		return ADDR_SYNTAX;
	}
	c->i++;
	st = parse_domain(c, path->domain, &path->domain_literal, &path->utf8);
	if (st != ADDR_OK)
		return st;
	if (bracket) {
		if (peek(c) != '>')
			return ADDR_SYNTAX;
		c->i++;
	}
	if (strlen(path->local) + 1 + strlen(path->domain) > 254)
		return ADDR_TOO_LONG;   /* RFC 5321 §4.5.3.1.3: path <= 256 with brackets */
	return ADDR_OK;
}

/* "...example.> ..." or "...example." at the end: a trailing dot in the domain. */
static bool ends_with_dot(const char *arg, size_t len)
{
	const char *gt = memchr(arg, '>', len);
	size_t end = gt ? (size_t)(gt - arg) : len;
	while (!gt && end > 0 && arg[end - 1] == ' ')
		end--;
	return end > 0 && arg[end - 1] == '.';
}

/* Expect the keyword ("FROM:" or "TO:"), allowing spaces after the colon. */
static bool parse_keyword(struct cursor *c, const char *kw)
{
	size_t n = strlen(kw);
	if (c->n - c->i < n || !ascii_ieq(c->p + c->i, kw, n))
		return false;
	c->i += n;
	while (peek(c) == ' ')
		c->i++;
	return true;
}

/* One "KEY[=VALUE]" token: [start, end).  Splits at '='. */
struct param {
	const char *key;
	size_t key_len;
	const char *val;   /* NULL when there is no '=' */
	size_t val_len;
};

static bool next_param(struct cursor *c, struct param *pm)
{
	while (peek(c) == ' ')
		c->i++;
	if (at_end(c))
		return false;
	size_t s = c->i;
	while (!at_end(c) && peek(c) != ' ')
		c->i++;
	pm->key = c->p + s;
	pm->val = NULL;
	pm->val_len = 0;
	const char *eq = memchr(pm->key, '=', c->i - s);
	if (eq) {
		pm->key_len = (size_t)(eq - pm->key);
		pm->val = eq + 1;
		pm->val_len = c->i - s - pm->key_len - 1;
	} else {
		pm->key_len = c->i - s;
	}
	return true;
}

static bool key_is(const struct param *pm, const char *name)
{
	size_t n = strlen(name);
	return pm->key_len == n && ascii_ieq(pm->key, name, n);
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool keyword_valid(const struct param *pm)
{
	if (pm->key_len == 0 || !(is_alpha((unsigned char)pm->key[0]) || is_digit((unsigned char)pm->key[0])))
		return false;
	for (size_t i = 1; i < pm->key_len; i++) {
		unsigned char ch = (unsigned char)pm->key[i];
		if (!(is_alpha(ch) || is_digit(ch) || ch == '-'))
			return false;
	}
	return true;
}

/* After the path: nothing, or one space and parameters. */
static bool path_followed_properly(const struct cursor *c)
{
	return at_end(c) || peek(c) == ' ';
}

/* MAIL parameters seen so far: each may come once. */
struct mail_params_seen {
	bool size, body, utf8, auth;
};

/* One MAIL parameter (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 RET
 * and ENVID, RFC 4954 AUTH) into params. */
static enum smtp_addr_status parse_mail_param(const struct param *pm, struct smtp_mail_params *params,
	struct mail_params_seen *seen, const char **detail)
{
	if (!keyword_valid(pm)) {
		*detail = "a parameter is malformed";
		return ADDR_PARAM_SYNTAX;
	}
	if (key_is(pm, "SIZE")) {
		/* RFC 1870: size-value = 1*20DIGIT */
		if (seen->size || !pm->val || !parse_u64(pm->val, pm->val_len, &params->size)) {
			*detail = "SIZE= needs a number of octets";
			return ADDR_PARAM_SYNTAX;
		}
		seen->size = params->size_set = true;
	} else if (key_is(pm, "BODY")) {
		if (seen->body || !pm->val) {
			*detail = "BODY= needs 7BIT, 8BITMIME or BINARYMIME";
			return ADDR_PARAM_SYNTAX;
		}
		if (pm->val_len == 4 && ascii_ieq(pm->val, "7BIT", 4))
			params->body = BODY_7BIT;
		else if (pm->val_len == 8 && ascii_ieq(pm->val, "8BITMIME", 8))
			params->body = BODY_8BITMIME;
		else if (pm->val_len == 10 && ascii_ieq(pm->val, "BINARYMIME", 10))
			params->body = BODY_BINARYMIME;
		else {
			*detail = "BODY= needs 7BIT, 8BITMIME or BINARYMIME";
			return ADDR_PARAM_SYNTAX;
		}
		seen->body = true;
	} else if (key_is(pm, "SMTPUTF8")) {
		if (seen->utf8 || pm->val) {
			*detail = "SMTPUTF8 takes no value";
			return ADDR_PARAM_SYNTAX;
		}
		seen->utf8 = params->smtputf8 = true;
	} else if (key_is(pm, "RET")) {
		/* RFC 3461 §4.3: RET=FULL / RET=HDRS */
		if (params->ret || !pm->val) {
			*detail = "RET= needs FULL or HDRS";
			return ADDR_PARAM_SYNTAX;
		}
		if (pm->val_len == 4 && ascii_ieq(pm->val, "FULL", 4))
			params->ret = 1;
		else if (pm->val_len == 4 && ascii_ieq(pm->val, "HDRS", 4))
			params->ret = 2;
		else {
			*detail = "RET= needs FULL or HDRS";
			return ADDR_PARAM_SYNTAX;
		}
	} else if (key_is(pm, "ENVID")) {
		/* RFC 3461 §4.4: ENVID=xtext, at most 100 characters */
		if (params->envid[0] || !pm->val || pm->val_len == 0 ||
			!smtp_xtext_decode(pm->val, pm->val_len, params->envid, sizeof(params->envid))) {
			*detail = "ENVID= needs an xtext value of at most 100 characters";
			return ADDR_PARAM_SYNTAX;
		}
	} else if (key_is(pm, "AUTH")) {
		/* RFC 4954 §5: AUTH=<> or AUTH=xtext mailbox; accepted, not trusted. */
		if (seen->auth || !pm->val || pm->val_len == 0) {
			*detail = "AUTH= needs a value";
			return ADDR_PARAM_SYNTAX;
		}
		seen->auth = params->auth_set = true;
	} else {
		*detail = "this server does not know that parameter";
		return ADDR_PARAM_UNKNOWN;
	}
	return ADDR_OK;
}

enum smtp_addr_status smtp_parse_mail(const char *arg, size_t len, struct smtp_path *path,
	struct smtp_mail_params *params, const char **detail)
{
	struct cursor c = { arg, len, 0 };
	memset(params, 0, sizeof(*params));
	*detail = NULL;
	if (!parse_keyword(&c, "FROM:")) {
		*detail = "the command must read MAIL FROM:<address>";
		return ADDR_NO_KEYWORD;
	}
	enum smtp_addr_status st = parse_path(&c, path, true, false);
	if (st == ADDR_OK && !path_followed_properly(&c))
		st = ADDR_SYNTAX;
	if (st != ADDR_OK) {
		*detail = st == ADDR_TOO_LONG ? "the address is too long"
			: ends_with_dot(arg, len) ? "the domain must not end with a dot"
			: "the sender address is not a valid mailbox";
		return st;
	}
	struct param pm;
	struct mail_params_seen seen = { false, false, false, false };
	while (next_param(&c, &pm)) {
		st = parse_mail_param(&pm, params, &seen, detail);
		if (st != ADDR_OK)
			return st;
	}
	return ADDR_OK;
}

bool smtp_xtext_decode(const char *in, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (i + 2 >= n)
				return false;
			char hex[3] = { in[i + 1], in[i + 2], 0 };
			char *end;
			long v = strtol(hex, &end, 16);
			if (*end || !((hex[0] >= '0' && hex[0] <= '9') || (hex[0] >= 'A' && hex[0] <= 'F')) ||
				!((hex[1] >= '0' && hex[1] <= '9') || (hex[1] >= 'A' && hex[1] <= 'F')) || v == 0)
				return false;
			c = (unsigned char)v;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
		if (o + 1 >= outsz)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

/* NOTIFY=NEVER / NOTIFY=SUCCESS,FAILURE,DELAY (RFC 3461 §4.1) */
static bool parse_notify(const char *v, size_t n, unsigned char *out)
{
	unsigned char f = 0;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t l = j - i;
		unsigned char bit = 0;
		if (l == 5 && ascii_ieq(v + i, "NEVER", 5))
			bit = SMTP_NOTIFY_NEVER;
		else if (l == 7 && ascii_ieq(v + i, "SUCCESS", 7))
			bit = SMTP_NOTIFY_SUCCESS;
		else if (l == 7 && ascii_ieq(v + i, "FAILURE", 7))
			bit = SMTP_NOTIFY_FAILURE;
		else if (l == 5 && ascii_ieq(v + i, "DELAY", 5))
			bit = SMTP_NOTIFY_DELAY;
		if (!bit || (f & bit))
			return false;
		f |= bit;
		i = j + 1;
		if (j < n && i == n)
			return false;   /* trailing comma */
	}
	if (!f || ((f & SMTP_NOTIFY_NEVER) && f != SMTP_NOTIFY_NEVER))
		return false;   /* NEVER stands alone */
	*out = f;
	return true;
}

enum smtp_addr_status smtp_parse_rcpt_dsn(const char *arg, size_t len, struct smtp_path *path,
	struct smtp_rcpt_params *params, const char **detail)
{
	struct cursor c = { arg, len, 0 };
	memset(params, 0, sizeof(*params));
	*detail = NULL;
	if (!parse_keyword(&c, "TO:")) {
		*detail = "the command must read RCPT TO:<address>";
		return ADDR_NO_KEYWORD;
	}
	enum smtp_addr_status st = parse_path(&c, path, false, true);
	if (st == ADDR_OK && !path_followed_properly(&c))
		st = ADDR_SYNTAX;
	if (st != ADDR_OK) {
		*detail = st == ADDR_NULL_RCPT ? "<> is not a recipient"
			: st == ADDR_TOO_LONG ? "the address is too long"
			: ends_with_dot(arg, len) ? "the domain must not end with a dot"
			: "the recipient address is not a valid mailbox";
		return st;
	}
	struct param pm;
	while (next_param(&c, &pm)) {
		if (!keyword_valid(&pm)) {
			*detail = "a parameter is malformed";
			return ADDR_PARAM_SYNTAX;
		}
		if (key_is(&pm, "NOTIFY")) {
			if (params->notify || !pm.val || !parse_notify(pm.val, pm.val_len, &params->notify)) {
				*detail = "NOTIFY= needs NEVER, or SUCCESS, FAILURE and DELAY separated by commas";
				return ADDR_PARAM_SYNTAX;
			}
		} else if (key_is(&pm, "ORCPT")) {
			/* ORCPT=addr-type;xtext (RFC 3461 §4.2) */
			const char *semi = pm.val ? memchr(pm.val, ';', pm.val_len) : NULL;
			size_t tl = semi ? (size_t)(semi - pm.val) : 0;
			char decoded[SMTP_ADDR_MAX + 1];
			if (params->orcpt[0] || !semi || tl == 0 || tl > 20 ||
				!smtp_xtext_decode(semi + 1, pm.val_len - tl - 1, decoded, sizeof(decoded)) || !decoded[0]) {
				*detail = "ORCPT= needs addr-type;address, e.g. ORCPT=rfc822;user@example.org";
				return ADDR_PARAM_SYNTAX;
			}
			snprintf(params->orcpt, sizeof(params->orcpt), "%.*s;%s", (int)tl, pm.val, decoded);
		} else {
			*detail = "this server does not know that parameter";
			return ADDR_PARAM_UNKNOWN;
		}
	}
	return ADDR_OK;
}

enum smtp_addr_status smtp_parse_rcpt(const char *arg, size_t len, struct smtp_path *path,
	const char **detail)
{
	struct smtp_rcpt_params unused;
	return smtp_parse_rcpt_dsn(arg, len, path, &unused, detail);
}

const char *smtp_path_format(const struct smtp_path *p, char *out, size_t outsz)
{
	if (outsz == 0)
		return out;
	if (p->null) {
		out[0] = '\0';
		return out;
	}
	if (p->bare_postmaster) {
		snprintf(out, outsz, "postmaster");
		return out;
	}
	/* Quote the local part again when it is not a dot-string. */
	bool quote = false;
	size_t n = strlen(p->local);
	if (n == 0 || p->local[0] == '.' || p->local[n - 1] == '.')
		quote = true;
	for (size_t i = 0; i < n && !quote; i++) {
		unsigned char ch = (unsigned char)p->local[i];
		if (!(is_atext(ch) || (ch == '.' && p->local[i + 1] != '.')))
			quote = true;
	}
	size_t o = 0;
	if (quote && o + 1 < outsz)
		out[o++] = '"';
	for (size_t i = 0; i < n && o + 2 < outsz; i++) {
		char ch = p->local[i];
		if (quote && (ch == '"' || ch == '\\'))
			out[o++] = '\\';
		out[o++] = ch;
	}
	if (quote && o + 1 < outsz)
		out[o++] = '"';
	out[o] = '\0';
	snprintf(out + o, outsz - o, "@%s", p->domain);
	return out;
}
