/* mime_field.c - structured MIME header fields (see mime_internal.h):
 * Content-Type and Content-Disposition values with their parameters
 * (RFC 2045 §5.1, RFC 2183 §2), RFC 2231 continuations joined, and header
 * values unfolded.  Pure: no I/O.
 *
 * Leniency follows Dovecot: comments are skipped anywhere CFWS may be; the
 * parameter list stops at the first one that does not parse (the ones before
 * it are kept); "text" without a subtype gives the subtype "".  Parameters
 * keep their case.  RFC 2231: plain parameters come first in their order,
 * then the joined ones sorted by name; name*0..name*N (contiguous from 0)
 * become name, or "name*" when section 0 is extended, the value still
 * percent-encoded (a plain section inside an extended one is encoded to
 * match); sections that cannot be joined keep their own names. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/header.h"
#include "msg/mime_internal.h"

#define MAX_PARAMS 64

struct lex {
	const unsigned char *p;
	size_t n, i;
};

/* RFC 2045 §5.1 token: any CHAR except SPACE, CTLs and tspecials; 8-bit bytes
 * are accepted, as real mail has them. */
static bool is_token(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* RFC 5322 §3.2.2 CFWS: white space, line ends and (nested) comments; nesting
 * is counted, not recursed. */
static void skip_cfws(struct lex *lx)
{
	size_t depth = 0;
	while (lx->i < lx->n) {
		unsigned char c = lx->p[lx->i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->i++;
		} else if (c == '(') {
			depth++;
			lx->i++;
		} else if (depth == 0) {
			return;
		} else if (c == ')') {
			depth--;
			lx->i++;
		} else if (c == '\\' && lx->i + 1 < lx->n) {
			lx->i += 2;
		} else {
			lx->i++;
		}
	}
}

static bool read_token(struct lex *lx, size_t *start, size_t *len)
{
	*start = lx->i;
	while (lx->i < lx->n && is_token(lx->p[lx->i]))
		lx->i++;
	*len = lx->i - *start;
	return *len > 0;
}

/* A quoted string at the opening quote, unescaped into the arena (sized to
 * the string, not to the rest of the field). */
static char *read_quoted(struct mime_arena *a, struct lex *lx)
{
	size_t end = lx->i + 1;
	while (end < lx->n && lx->p[end] != '"')
		end += lx->p[end] == '\\' && end + 1 < lx->n ? 2 : 1;
	char *out = mime_arena_alloc(a, end - lx->i + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (lx->i++; lx->i < end; lx->i++) {
		unsigned char c = lx->p[lx->i];
		if (c == '\\' && lx->i + 1 < end)
			c = lx->p[++lx->i];
		else if (c == '\r' || c == '\n')
			continue;
		out[o++] = (char)c;
	}
	if (lx->i < lx->n)
		lx->i++;   /* the closing quote; unterminated: what there was */
	return out;
}

struct raw_param {
	const char *name, *value;
	size_t base_len;   /* RFC 2231: the length of the name before "*" */
	long index;        /* RFC 2231 section, -1: none */
	bool extended;     /* the name ends in "*" */
};

/* "name*N", "name*N*", "name*" (RFC 2231 §3, §4). */
static void split_2231(struct raw_param *rp)
{
	size_t n = strlen(rp->name);
	const char *star = strchr(rp->name, '*');
	rp->index = -1;
	rp->extended = false;
	rp->base_len = n;
	if (!star)
		return;
	size_t b = (size_t)(star - rp->name);
	const char *s = star + 1;
	long idx = -1;
	if (*s >= '0' && *s <= '9') {
		idx = 0;
		while (*s >= '0' && *s <= '9' && idx < 100000)
			idx = idx * 10 + (*s++ - '0');
	}
	bool ext = false;
	if (*s == '*' && idx >= 0) {
		ext = true;
		s++;
	}
	if (*s != '\0' || b == 0)
		return;   /* not RFC 2231 after all: a plain name with a "*" in it */
	rp->base_len = b;
	rp->index = idx;
	rp->extended = idx < 0 || ext;
}

static int cmp_2231(const void *x, const void *y)
{
	const struct raw_param *a = x, *b = y;
	size_t n = a->base_len < b->base_len ? a->base_len : b->base_len;
	int c = strncasecmp(a->name, b->name, n);
	if (c == 0 && a->base_len != b->base_len)
		c = a->base_len < b->base_len ? -1 : 1;
	if (c == 0)
		c = a->index < b->index ? -1 : a->index > b->index;
	return c;
}

/* RFC 2231 §7 attribute-char: what a plain section may keep inside an
 * extended value; the rest is percent-encoded. */
static void append_pct(struct buf *b, const char *v, bool encode)
{
	for (const unsigned char *s = (const unsigned char *)v; *s; s++) {
		if (!encode || (is_token(*s) && *s != '*' && *s != '\'' && *s != '%' && *s < 0x80))
			buf_appendc(b, (char)*s);
		else
			buf_printf(b, "%%%02X", *s);
	}
}

static bool same_base(const struct raw_param *a, const struct raw_param *b)
{
	return a->base_len == b->base_len && strncasecmp(a->name, b->name, a->base_len) == 0;
}

/* Join the RFC 2231 sections in rp[0..n) (sorted) into out; returns the count written. */
static size_t join_2231(struct mime_arena *a, struct raw_param *rp, size_t n, struct mime_param *out)
{
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		if (rp[i].index == 0)
			while (j < n && same_base(&rp[j], &rp[i]) && rp[j].index == (long)(j - i))
				j++;
		if (rp[i].index != 0) {   /* "name*" alone, or a section without its section 0 */
			out[w].name = rp[i].name;
			out[w++].value = rp[i].value;
			i++;
			continue;
		}
		struct buf b;
		buf_init(&b, 1 << 20);
		buf_append(&b, rp[i].name, rp[i].base_len);
		if (rp[i].extended)
			buf_appendc(&b, '*');
		size_t name_len = b.len;
		for (size_t k = i; k < j; k++)
			append_pct(&b, rp[k].value, rp[i].extended && !rp[k].extended);
		out[w].name = mime_arena_strndup(a, b.data, name_len);
		out[w].value = mime_arena_strndup(a, b.data + name_len, b.len - name_len);
		buf_free(&b);
		if (out[w].name && out[w].value)
			w++;
		i = j;
	}
	return w;
}

/* The parameters after the value: *(";" attribute "=" value), stopping at
 * the first that does not parse. */
static size_t read_params(struct mime_arena *a, struct lex *lx, struct raw_param *rp)
{
	size_t n = 0;
	while (n < MAX_PARAMS) {
		skip_cfws(lx);
		if (lx->i >= lx->n || lx->p[lx->i] != ';')
			break;
		lx->i++;
		skip_cfws(lx);
		size_t ns, nl, vs, vl;
		if (!read_token(lx, &ns, &nl))
			break;
		skip_cfws(lx);
		if (lx->i >= lx->n || lx->p[lx->i] != '=')
			break;
		lx->i++;
		skip_cfws(lx);
		char *value;
		if (lx->i < lx->n && lx->p[lx->i] == '"')
			value = read_quoted(a, lx);
		else if (read_token(lx, &vs, &vl))
			value = mime_arena_strndup(a, (const char *)lx->p + vs, vl);
		else
			break;
		rp[n].name = mime_arena_strndup(a, (const char *)lx->p + ns, nl);
		rp[n].value = value;
		if (!rp[n].name || !value)
			break;
		split_2231(&rp[n]);
		n++;
	}
	return n;
}

/* Plain parameters first, then the RFC 2231 ones joined (see the top). */
static void order_params(struct mime_arena *a, struct raw_param *rp, size_t n, struct mime_param **params,
	size_t *n_params)
{
	*params = NULL;
	*n_params = 0;
	if (n == 0)
		return;
	struct mime_param *out = mime_arena_alloc(a, n * sizeof(*out));
	if (!out)
		return;
	size_t w = 0, n2231 = 0;
	struct raw_param sections[MAX_PARAMS];
	for (size_t i = 0; i < n; i++) {
		if (rp[i].index < 0 && !rp[i].extended) {
			out[w].name = rp[i].name;
			out[w++].value = rp[i].value;
		} else {
			sections[n2231++] = rp[i];
		}
	}
	qsort(sections, n2231, sizeof(*sections), cmp_2231);
	w += join_2231(a, sections, n2231, out + w);
	*params = out;
	*n_params = w;
}

/* RFC 2045 §5.1 content := type "/" subtype *(";" parameter), comments
 * anywhere.  Dovecot's reading: a type alone is "type" ""; anything else
 * that does not parse (no type, no subtype after "/", junk after them, ";"
 * straight after a type) is "" "" without parameters. */
void mime_content_type_parse(struct mime_arena *a, const char *v, size_t n, const char **type,
	const char **sub, struct mime_param **params, size_t *n_params)
{
	struct lex lx = { (const unsigned char *)v, n, 0 };
	size_t ts, tl, ss, sl;
	*type = *sub = "";
	*params = NULL;
	*n_params = 0;
	skip_cfws(&lx);
	if (!read_token(&lx, &ts, &tl))
		return;
	skip_cfws(&lx);
	if (lx.i >= lx.n) {
		*type = mime_arena_strndup(a, v + ts, tl);
		return;
	}
	if (lx.p[lx.i] != '/')
		return;
	lx.i++;
	skip_cfws(&lx);
	if (!read_token(&lx, &ss, &sl))
		return;
	skip_cfws(&lx);
	if (lx.i < lx.n && lx.p[lx.i] != ';')
		return;
	*type = mime_arena_strndup(a, v + ts, tl);
	*sub = mime_arena_strndup(a, v + ss, sl);
	if (!*type || !*sub) {
		*type = *sub = "";
		return;
	}
	struct raw_param rp[MAX_PARAMS];
	order_params(a, rp, read_params(a, &lx, rp), params, n_params);
}

/* RFC 2183 disposition := type *(";" parameter).  Leniently, as Dovecot: no
 * token gives "", and what follows it up to the first ";" is skipped. */
void mime_disposition_parse(struct mime_arena *a, const char *v, size_t n, const char **type,
	struct mime_param **params, size_t *n_params)
{
	struct lex lx = { (const unsigned char *)v, n, 0 };
	size_t ts, tl;
	skip_cfws(&lx);
	*type = read_token(&lx, &ts, &tl) ? mime_arena_strndup(a, v + ts, tl) : "";
	if (!*type)
		*type = "";
	while (lx.i < lx.n && lx.p[lx.i] != ';')
		lx.i++;
	struct raw_param rp[MAX_PARAMS];
	order_params(a, rp, read_params(a, &lx, rp), params, n_params);
}

const char *mime_token_value(struct mime_arena *a, const char *v, size_t n)
{
	struct lex lx = { (const unsigned char *)v, n, 0 };
	size_t ts, tl;
	skip_cfws(&lx);
	if (!read_token(&lx, &ts, &tl))
		return NULL;
	skip_cfws(&lx);
	return lx.i < lx.n ? NULL : mime_arena_strndup(a, v + ts, tl);
}

const char *mime_param_get(const struct mime_param *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (mime_ieq(p[i].name, name))
			return p[i].value;
	return NULL;
}

/* Dovecot's header values: the first line's leading white space skipped,
 * folds unfolded (CR and LF dropped, the WSP after them kept), a bare CR
 * made a space, NUL made U+FFFD. */
char *mime_header_value(struct mime_arena *a, const char *hdr, size_t hlen, const char *name, bool last)
{
	const char *v;
	size_t vl, n = last ? msg_header_count(hdr, hlen, name) : 1;
	if (n == 0 || !msg_header_find_nth(hdr, hlen, name, n - 1, &v, &vl))
		return NULL;
	/* msg_header_find skips folds too; Dovecot skips only the white space of
	 * the first line, so a value that starts on a continuation line keeps
	 * that line's leading white space. */
	const char *start = v;
	while (start > hdr && start[-1] != ':')
		start--;
	while (start < v && (*start == ' ' || *start == '\t'))
		start++;
	vl += (size_t)(v - start);
	v = start;
	char *out = mime_arena_alloc(a, 3 * vl + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < vl; i++) {
		if (v[i] == '\n' || (v[i] == '\r' && i + 1 < vl && v[i + 1] == '\n'))
			continue;
		if (v[i] == '\0') {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		} else {
			out[o++] = v[i] == '\r' ? ' ' : v[i];
		}
	}
	return out;
}
