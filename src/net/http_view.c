/* http_view.c - the pure half of the HTTP transport (see http.h): the request path
 * made safe (percent-decoding, RFC 3986 §5.2.4 dot segments, refusals for climbing
 * above "/", NUL, backslashes, control characters and bad escapes), the Host field
 * reduced to a name, query parameters, header lookup and the response helpers.  No
 * I/O and no libevent: table-tested (tests/unit/test_http.c) and fuzzed
 * (tests/fuzz/fuzz_http_path.c). */
#include "net/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode p[0..n) into out (at most n + 1 octets); plus_space: form
 * encoding.  NULL, or what is wrong. */
static const char *percent_decode(const char *p, size_t n, char *out, size_t *outlen, bool plus_space)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return "a '%' escape is cut short (RFC 3986 §2.1: '%' and two hex digits)";
			int h = hex_value((unsigned char)p[i + 1]), l = hex_value((unsigned char)p[i + 2]);
			if (h < 0 || l < 0)
				return "a '%' is not followed by two hex digits (RFC 3986 §2.1)";
			c = (unsigned char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c == '\0')
			return "the path holds a NUL octet (%00)";
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*outlen = o;
	return NULL;
}

/* RFC 3986 §5.2.4 on a decoded absolute path, in place, segment by segment: "."
 * segments vanish, ".." removes the one before it, empty segments ("//") fold into
 * one.  A ".." with nothing left to remove climbs above "/": refused, not clamped,
 * since only an attack sends one. */
static const char *remove_dot_segments(char *path)
{
	size_t o = 0;   /* output length; path[0] is '/' */
	const char *in = path;
	bool trailing = false;
	char *out = path;
	while (*in) {
		while (*in == '/')
			in++;
		const char *seg = in;
		while (*in && *in != '/')
			in++;
		size_t len = (size_t)(in - seg);
		trailing = *in == '/' || len == 0;
		if (len == 0)
			break;
		if (len == 1 && seg[0] == '.') {
			trailing = true;
			continue;
		}
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			if (o == 0)
				return "the path climbs above \"/\" (\"..\")";
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;   /* the '/' before the removed segment */
			trailing = true;
			continue;
		}
		out[o++] = '/';
		memmove(out + o, seg, len);
		o += len;
	}
	if (o == 0 || trailing)
		out[o++] = '/';
	out[o] = '\0';
	return NULL;
}

const char *http_path_normalise(const char *target, size_t n, char *out, size_t outsz)
{
	if (n == 0 || target[0] != '/')
		return "the request target is not an absolute path (it must start with \"/\")";
	if (n + 1 > outsz)
		return "the path is too long";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)target[i];
		if (c == '\\')
			return "the path holds a backslash";
		if (c <= 0x20 || c >= 0x7f)
			return "the path holds a space, a control character or a non-ASCII octet (RFC 3986 §2: percent-encode them)";
	}
	size_t len;
	const char *why = percent_decode(target, n, out, &len, false);
	if (why)
		return why;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '\\')
			return "the path holds an escaped backslash (%5c)";
		if (c < 0x20 || c == 0x7f)
			return "the path holds an escaped control character";
	}
	return remove_dot_segments(out);
}

void http_host_normalise(const char *host, char *out, size_t outsz)
{
	out[0] = '\0';
	if (!host)
		return;
	size_t n = strlen(host);
	if (n == 0 || n >= outsz)
		return;
	const char *end = host + n;
	if (host[0] == '[') {   /* an IPv6 literal, RFC 3986 §3.2.2 */
		const char *close = strchr(host, ']');
		if (!close)
			return;
		end = close + 1;
	} else {
		const char *colon = strchr(host, ':');
		if (colon)
			end = colon;
	}
	size_t o = 0;
	for (const char *p = host; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			c == '_' || ((c == ':' || c == '[' || c == ']') && host[0] == '[');
		if (!ok) {
			out[0] = '\0';
			return;
		}
		out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	while (o > 0 && out[o - 1] == '.')   /* "example.com." names example.com */
		o--;
	out[o] = '\0';
}

const char *http_request_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

bool http_query_param(const struct http_request *r, const char *name, char *out, size_t outsz)
{
	size_t nlen = strlen(name);
	const char *q = r->query ? r->query : "";
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		char key[128];
		size_t kdec;
		if (klen < sizeof(key) && !percent_decode(q, klen, key, &kdec, true) && kdec == nlen && memcmp(key, name, nlen) == 0) {
			const char *v = eq ? eq + 1 : q + len;
			size_t vlen = eq ? len - klen - 1 : 0;
			if (vlen + 1 > outsz)
				return false;
			size_t dec;
			return percent_decode(v, vlen, out, &dec, true) == NULL;
		}
		q += len + (amp != NULL);
	}
	return false;
}

bool http_response_set(struct http_response *r, int status, const char *content_type, const void *body, size_t len)
{
	char *copy = malloc(len + 1);
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	if (!copy) {
		r->status = 500;
		return false;
	}
	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	r->status = status;
	snprintf(r->content_type, sizeof(r->content_type), "%s", content_type ? content_type : "");
	r->body = copy;
	r->body_len = len;
	return true;
}

bool http_response_printf(struct http_response *r, int status, const char *content_type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		free(r->body);
		r->body = NULL;
		r->body_len = 0;
		r->status = 500;
		return false;
	}
	bool ok = http_response_set(r, status, content_type, text, (size_t)n);
	free(text);
	return ok;
}

static bool header_text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n')
			return false;
	return true;
}

bool http_response_header(struct http_response *r, const char *name, const char *value)
{
	if (r->n_headers >= HTTP_RESPONSE_HEADERS || !name[0] || strpbrk(name, ": \t") ||
		!header_text_ok(name, sizeof(r->headers[0].name)) || !header_text_ok(value, sizeof(r->headers[0].value)))
		return false;
	snprintf(r->headers[r->n_headers].name, sizeof(r->headers[0].name), "%s", name);
	snprintf(r->headers[r->n_headers].value, sizeof(r->headers[0].value), "%s", value);
	r->n_headers++;
	return true;
}

void http_response_clear(struct http_response *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

const char *http_status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
	}
}
