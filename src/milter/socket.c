/* socket.c - a content filter's socket as configured (see milter.h): Postfix's
 * "inet:host:port" and "unix:/path", Sendmail's "inet:port@host" and "local:/path". */
#include "milter/milter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_port(const char *s, size_t n, unsigned *port)
{
	if (n == 0 || n > 5)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*port = v;
	return true;
}

static bool set_host(struct milter_socket *out, const char *h, size_t n)
{
	if (n == 0 || n >= sizeof(out->host) || memchr(h, ' ', n) || memchr(h, '/', n))
		return false;
	memcpy(out->host, h, n);
	out->host[n] = '\0';
	return true;
}

/* host:port, [v6]:port or port@host */
static bool parse_inet(const char *s, bool v6, struct milter_socket *out)
{
	const char *at = strchr(s, '@');
	if (at)
		return parse_port(s, (size_t)(at - s), &out->port) && set_host(out, at + 1, strlen(at + 1));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		return close && close[1] == ':' && parse_port(close + 2, strlen(close + 2), &out->port) &&
			set_host(out, s + 1, (size_t)(close - s - 1));
	}
	const char *colon = strrchr(s, ':');
	if (!colon || (!v6 && strchr(s, ':') != colon))
		return false;
	return parse_port(colon + 1, strlen(colon + 1), &out->port) && set_host(out, s, (size_t)(colon - s));
}

bool milter_socket_parse(const char *spec, struct milter_socket *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *path = NULL;
	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	else if (spec[0] == '/')
		path = spec;
	if (path) {
		if (path[0] != '/' || strlen(path) >= sizeof(out->path)) {
			snprintf(err, errlen, "'%.120s': a unix socket is an absolute path of at most %zu octets", spec,
				sizeof(out->path) - 1);
			return false;
		}
		out->is_unix = true;
		snprintf(out->path, sizeof(out->path), "%s", path);
		return true;
	}
	bool ok = false;
	if (strncmp(spec, "inet:", 5) == 0)
		ok = parse_inet(spec + 5, false, out);
	else if (strncmp(spec, "inet6:", 6) == 0)
		ok = parse_inet(spec + 6, true, out);
	if (!ok)
		snprintf(err, errlen, "'%.120s' is not unix:/path, inet:host:port or inet6:[address]:port", spec);
	return ok;
}
