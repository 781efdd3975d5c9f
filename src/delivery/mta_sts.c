/* mta_sts.c - the MTA-STS record and policy parsers and MX matching (see mta_sts.h).
 * Both inputs come from the network: every field is bounded, anything that does not
 * follow the grammar is refused rather than guessed at. */
#include "delivery/mta_sts.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *sts_mode_name(enum sts_mode m)
{
	return m == STS_MODE_ENFORCE ? "enforce" : m == STS_MODE_TESTING ? "testing" : "none";
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* One "name=value" of the TXT record, whitespace trimmed.  §3.1:
 * sts-text-record = sts-version 1*(*WSP %x3B *WSP sts-field) [%x3B]. */
static bool txt_field(const char *p, size_t n, char *name, size_t namesz, char *val, size_t valsz)
{
	while (n && is_wsp(*p))
		p++, n--;
	while (n && is_wsp(p[n - 1]))
		n--;
	const char *eq = memchr(p, '=', n);
	if (!eq || eq == p || (size_t)(eq - p) >= namesz || n - (size_t)(eq - p) - 1 >= valsz)
		return false;
	memcpy(name, p, (size_t)(eq - p));
	name[eq - p] = '\0';
	memcpy(val, eq + 1, n - (size_t)(eq - p) - 1);
	val[n - (size_t)(eq - p) - 1] = '\0';
	for (const char *c = name; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
			return false;
	return true;
}

bool sts_parse_txt(const char *txt, size_t len, char *id, size_t idsz, char *err, size_t errlen)
{
	id[0] = '\0';
	/* §3.1: the record must begin with the version field, exactly "v=STSv1". */
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0 || (len > 7 && txt[7] != ';' && !is_wsp(txt[7]))) {
		snprintf(err, errlen, "not an MTA-STS record (it must begin with v=STSv1)");
		return false;
	}
	size_t i = 7, fields = 0;
	while (i < len) {
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i >= len)
			break;
		if (txt[i] != ';') {
			snprintf(err, errlen, "MTA-STS record: fields must be separated by \";\"");
			return false;
		}
		i++;
		const char *start = txt + i;
		const char *semi = memchr(start, ';', len - i);
		size_t n = semi ? (size_t)(semi - start) : len - i;
		i += n;
		bool blank = true;
		for (size_t k = 0; k < n; k++)
			blank &= is_wsp(start[k]);
		if (blank && !semi)
			break;   /* a trailing ";" */
		char name[33], val[300];
		if (memchr(start, '\0', n) || !txt_field(start, n, name, sizeof(name), val, sizeof(val))) {
			snprintf(err, errlen, "MTA-STS record: a field is not name=value");
			return false;
		}
		if (++fields > 32) {
			snprintf(err, errlen, "MTA-STS record: too many fields");
			return false;
		}
		if (strcmp(name, "id") == 0 && !id[0]) {
			size_t vl = strlen(val);
			bool ok = vl >= 1 && vl <= 32 && vl < idsz;
			for (size_t k = 0; ok && k < vl; k++)
				ok = isalnum((unsigned char)val[k]);
			if (!ok) {
				snprintf(err, errlen, "MTA-STS record: id must be 1 to 32 letters and digits");
				return false;
			}
			memcpy(id, val, vl + 1);
		}
	}
	if (!id[0]) {
		snprintf(err, errlen, "MTA-STS record without id=");
		return false;
	}
	return true;
}

/* §3.2 / §4.1: an MX pattern is a host name, optionally "*." in front. */
static bool valid_pattern(const char *v)
{
	const char *p = strncmp(v, "*.", 2) == 0 ? v + 2 : v;
	size_t n = strlen(p), label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 || p[n - 1] == '.';
}

struct policy_seen {
	bool version, mode, max_age;
};

static bool policy_field(struct sts_policy *p, struct policy_seen *seen, const char *key, char *val, char *err,
	size_t errlen)
{
	/* §3.2: "If a field is present more than once, the first instance is used"
	 * (except mx, which may repeat). */
	if (strcmp(key, "version") == 0) {
		if (!seen->version && strcmp(val, "STSv1") != 0) {
			snprintf(err, errlen, "MTA-STS policy: version is not STSv1");
			return false;
		}
		seen->version = true;
	} else if (strcmp(key, "mode") == 0) {
		if (seen->mode)
			return true;
		if (strcmp(val, "enforce") == 0)
			p->mode = STS_MODE_ENFORCE;
		else if (strcmp(val, "testing") == 0)
			p->mode = STS_MODE_TESTING;
		else if (strcmp(val, "none") == 0)
			p->mode = STS_MODE_NONE;
		else {
			snprintf(err, errlen, "MTA-STS policy: mode must be enforce, testing or none");
			return false;
		}
		seen->mode = true;
	} else if (strcmp(key, "max_age") == 0) {
		if (seen->max_age)
			return true;
		size_t n = strlen(val);
		unsigned long long v = 0;
		bool ok = n >= 1 && n <= 10;
		for (size_t i = 0; ok && i < n; i++) {
			ok = isdigit((unsigned char)val[i]);
			v = v * 10 + (unsigned)(val[i] - '0');
		}
		if (!ok || v > STS_MAX_AGE_MAX) {
			snprintf(err, errlen, "MTA-STS policy: max_age must be 0 to %u seconds", STS_MAX_AGE_MAX);
			return false;
		}
		p->max_age = (uint32_t)v;
		seen->max_age = true;
	} else if (strcmp(key, "mx") == 0) {
		for (char *c = val; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		size_t n = strlen(val);
		if (n && val[n - 1] == '.')
			val[--n] = '\0';
		if (!valid_pattern(val) || n >= sizeof(p->mx[0])) {
			snprintf(err, errlen, "MTA-STS policy: \"%.60s\" is not an mx host name or *.pattern", val);
			return false;
		}
		if (p->n_mx < STS_MAX_MX)
			memcpy(p->mx[p->n_mx++], val, n + 1);
	}
	return true;   /* §3.2: unknown fields are ignored */
}

/* One line "key: value"; the key is letters, digits, "_" (§3.2 sts-policy-field). */
static bool policy_line(struct sts_policy *p, struct policy_seen *seen, const char *line, size_t n, char *err,
	size_t errlen)
{
	const char *colon = memchr(line, ':', n);
	if (!colon || colon == line || colon - line > 32) {
		snprintf(err, errlen, "MTA-STS policy: a line is not \"key: value\"");
		return false;
	}
	char key[33], val[300];
	size_t kl = (size_t)(colon - line);
	memcpy(key, line, kl);
	key[kl] = '\0';
	for (size_t i = 0; i < kl; i++)
		if (!isalnum((unsigned char)key[i]) && key[i] != '_') {
			snprintf(err, errlen, "MTA-STS policy: a key holds \"%c\"", isprint((unsigned char)key[i]) ? key[i] : '?');
			return false;
		}
	const char *v = colon + 1, *end = line + n;
	while (v < end && is_wsp(*v))
		v++;
	while (end > v && is_wsp(end[-1]))
		end--;
	if ((size_t)(end - v) >= sizeof(val)) {
		snprintf(err, errlen, "MTA-STS policy: the value of %s is too long", key);
		return false;
	}
	memcpy(val, v, (size_t)(end - v));
	val[end - v] = '\0';
	for (size_t i = 0; val[i]; i++)
		if ((unsigned char)val[i] < 0x20 || (unsigned char)val[i] == 0x7f) {
			snprintf(err, errlen, "MTA-STS policy: a control character in %s", key);
			return false;
		}
	if (memchr(v, '\0', (size_t)(end - v))) {
		snprintf(err, errlen, "MTA-STS policy: a NUL in %s", key);
		return false;
	}
	return policy_field(p, seen, key, val, err, errlen);
}

bool sts_parse_policy(const char *text, size_t len, struct sts_policy *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	struct policy_seen seen = { false, false, false };
	if (len > STS_POLICY_MAX) {
		snprintf(err, errlen, "MTA-STS policy larger than %u octets", STS_POLICY_MAX);
		return false;
	}
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		size_t next = i + n + (nl ? 1 : 0);
		if (n && text[i + n - 1] == '\r')
			n--;
		if (n > 0 && !policy_line(p, &seen, text + i, n, err, errlen))
			return false;
		i = next;
	}
	if (!seen.version || !seen.mode || !seen.max_age) {
		snprintf(err, errlen, "MTA-STS policy without %s", !seen.version ? "version" : !seen.mode ? "mode" : "max_age");
		return false;
	}
	if (p->mode != STS_MODE_NONE && p->n_mx == 0) {
		snprintf(err, errlen, "MTA-STS policy in %s mode without an mx line", sts_mode_name(p->mode));
		return false;
	}
	return true;
}

bool sts_mx_matches(const struct sts_policy *p, const char *host)
{
	char h[256];
	size_t n = strlen(host);
	if (n == 0 || n >= sizeof(h))
		return false;
	for (size_t i = 0; i <= n; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	if (h[n - 1] == '.')
		h[--n] = '\0';
	for (size_t k = 0; k < p->n_mx; k++) {
		const char *pat = p->mx[k];
		if (strncmp(pat, "*.", 2) == 0) {
			/* §4.1: the wildcard stands for exactly one label. */
			const char *dot = strchr(h, '.');
			if (dot && dot != h && strcmp(dot + 1, pat + 2) == 0)
				return true;
		} else if (strcmp(h, pat) == 0) {
			return true;
		}
	}
	return false;
}

/* --- the HTTP response (§3.3) ------------------------------------------------------- */

/* The value of header `name` in hdr (the lines after the status line), or NULL. */
static const char *header_value(const char *hdr, size_t len, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < len;) {
		const char *eol = memchr(hdr + i, '\n', len - i);
		size_t n = eol ? (size_t)(eol - (hdr + i)) : len - i;
		if (n > nl && strncasecmp(hdr + i, name, nl) == 0 && hdr[i + nl] == ':') {
			const char *v = hdr + i + nl + 1, *end = hdr + i + n;
			while (v < end && is_wsp(*v))
				v++;
			while (end > v && (end[-1] == '\r' || is_wsp(end[-1])))
				end--;
			*vlen = (size_t)(end - v);
			return v;
		}
		i += n + 1;
	}
	return NULL;
}

bool sts_http_response(const char *resp, size_t len, const char **body, size_t *body_len, char *err, size_t errlen)
{
	*body = NULL;
	*body_len = 0;
	const char *end_hdr = NULL;
	for (size_t i = 0; i + 1 < len && !end_hdr; i++) {
		if (resp[i] == '\n' && resp[i + 1] == '\n')
			end_hdr = resp + i + 2;
		else if (i + 3 < len && memcmp(resp + i, "\r\n\r\n", 4) == 0)
			end_hdr = resp + i + 4;
	}
	if (len < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || !end_hdr) {
		snprintf(err, errlen, "the policy server did not answer with HTTP");
		return false;
	}
	int code = 0;
	for (size_t i = 9; i < 12; i++) {
		if (!isdigit((unsigned char)resp[i])) {
			snprintf(err, errlen, "the policy server sent a malformed status line");
			return false;
		}
		code = code * 10 + (resp[i] - '0');
	}
	if (code >= 300 && code < 400) {
		snprintf(err, errlen, "the policy server answered with a redirect (HTTP %d), which RFC 8461 §3.3 forbids following", code);
		return false;
	}
	if (code != 200) {
		snprintf(err, errlen, "the policy server answered HTTP %d", code);
		return false;
	}
	const char *hdr = memchr(resp, '\n', len);
	size_t hlen = (size_t)(end_hdr - hdr);
	size_t tl = 0;
	const char *type = header_value(hdr + 1, hlen - 1, "Content-Type", &tl);
	/* §3.2: the policy is served as "text/plain" (parameters such as charset allowed). */
	if (!type || tl < 10 || strncasecmp(type, "text/plain", 10) != 0 || (tl > 10 && type[10] != ';' && !is_wsp(type[10]))) {
		snprintf(err, errlen, "the policy is not served as text/plain (RFC 8461 §3.2)");
		return false;
	}
	size_t te_len = 0;
	if (header_value(hdr + 1, hlen - 1, "Transfer-Encoding", &te_len)) {
		/* Asked with HTTP/1.0: a chunked answer is not one Postern reads. */
		snprintf(err, errlen, "the policy server sent a Transfer-Encoding to an HTTP/1.0 request");
		return false;
	}
	*body = end_hdr;
	*body_len = len - (size_t)(end_hdr - resp);
	size_t cl_len = 0;
	const char *cl = header_value(hdr + 1, hlen - 1, "Content-Length", &cl_len);
	if (cl) {
		unsigned long long want = 0;
		bool ok = cl_len > 0 && cl_len <= 10;
		for (size_t i = 0; ok && i < cl_len; i++) {
			ok = isdigit((unsigned char)cl[i]);
			want = want * 10 + (unsigned)(cl[i] - '0');
		}
		if (!ok || want != *body_len) {
			snprintf(err, errlen, "the policy was cut short (Content-Length %.*s, %zu octets came)", (int)(cl_len < 12 ? cl_len : 12), cl, *body_len);
			return false;
		}
	}
	return true;
}
