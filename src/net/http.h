/* http.h - the HTTP transport: listeners of role http on libevent's evhttp, plain
 * or implicit TLS (the mail listeners' certificates and SNI), with bounded header
 * and body sizes ([http] header_max, body_max), a deadline for each whole request
 * ([http] request_timeout), the [limits] connection limits shared with mail, and
 * one event=http log line per request.  It knows no route: each request is handed,
 * as a read-only view that owns its bytes (struct http_request), to the handler
 * serve/ gave; the handler answers later, on the loop thread, with
 * http_exchange_reply.  Paths that climb above "/", hold NUL, backslashes or bad
 * escapes are answered 400 here, before any handler sees them. */
#ifndef POSTERN_NET_HTTP_H
#define POSTERN_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct conf_listener;
struct net;

struct http_header {
	const char *name, *value;
};

struct http_request {
	const char *method;       /* as sent: "GET", "POST", "HEAD", "OPTIONS" */
	const char *path;         /* percent-decoded, dot segments removed (RFC 3986 §5.2.4) */
	const char *query;        /* raw, after '?'; "" when none */
	const char *host;         /* Host: lower case, port removed; "" when none */
	const char *client_addr;  /* "127.0.0.1" */
	const char *listener;     /* the [listener NAME] */
	bool tls;
	const char *body;         /* bounded by [http] body_max; NUL-terminated (not counted) */
	size_t body_len;
	const struct http_header *headers;   /* Authorization included: never log it */
	size_t n_headers;
	unsigned long long id;
};

/* The first header of that name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);
/* The query parameter `name`, form-decoded ('+' is a space), into out.  false: absent,
 * badly escaped, holding NUL, or longer than outsz - 1. */
bool http_query_param(const struct http_request *r, const char *name, char *out, size_t outsz);

#define HTTP_RESPONSE_HEADERS 8

struct http_response {
	int status;
	char content_type[128];
	char *body;               /* malloc'd; net frees it */
	size_t body_len;
	struct { char name[64]; char value[512]; } headers[HTTP_RESPONSE_HEADERS];
	size_t n_headers;
	char log_note[192];       /* added to the event=http line: "autoconfig domain=example.com" */
};

/* Replace the status, type and body (copied).  false: out of memory (status 500 set). */
bool http_response_set(struct http_response *r, int status, const char *content_type, const void *body, size_t len);
bool http_response_printf(struct http_response *r, int status, const char *content_type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Add a header (name and value checked: no CR, LF or NUL; bounded).  false: refused. */
bool http_response_header(struct http_response *r, const char *name, const char *value);
/* Free the body (a response that is not handed to http_exchange_reply). */
void http_response_clear(struct http_response *r);

/* One request and its answer.  The request view stays valid, whatever the client
 * does (it may leave), until http_exchange_reply. */
struct http_exchange;
typedef void http_handler_fn(void *ctx, struct http_exchange *x);

const struct http_request *http_exchange_request(const struct http_exchange *x);
/* Send r (its body is taken: r->body is NULL after), log the request, free x.  Loop
 * thread only.  When the client has gone, the answer goes nowhere, safely. */
void http_exchange_reply(struct http_exchange *x, struct http_response *r);

/* Serve HTTP on the bound, listening socket fd for listener cl: every request goes to
 * handler(ctx, x) on the loop thread.  false: fd closed, error logged. */
bool net_http_listen(struct net *n, const struct conf_listener *cl, http_handler_fn *handler, void *ctx, int fd);

/* --- the pure parts (http_view.c), for the transport, unit tests and fuzzing --- */

/* The path part of a request target (before '?'), n octets, made safe into out:
 * percent-decoded, dot segments removed, "//" folded.  NULL, or why it is refused
 * with 400 (climbs above "/", NUL, backslash, control character, bad escape, not
 * starting with "/", longer than outsz - 1). */
const char *http_path_normalise(const char *target, size_t n, char *out, size_t outsz);
/* A Host field value reduced to the name: lower case, port and trailing dot removed;
 * "" when absent or holding anything but letters, digits, '-', '.', '_' (or an
 * IPv6 literal in brackets). */
void http_host_normalise(const char *host, char *out, size_t outsz);
/* The reason phrase of a status ("Not Found"). */
const char *http_status_phrase(int status);

#endif
