/* autodiscover_handler.c - the web handlers of Autodiscover (autodiscover.h): POX over
 * POST (and the GET some clients send), the errors of the outlook response schema, and
 * the v2 JSON pointer to the POX service.  Runs on a web worker thread (web/web.h).
 * Never logs the body or the Authorization header: the event=http line gets a note
 * with the domain only. */
#include "web/autodiscover.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "directory/directory.h"
#include "net/http.h"
#include "web/web.h"

#define XML_TYPE "text/xml; charset=utf-8"
#define JSON_TYPE "application/json; charset=utf-8"

static void reply_xml(struct http_response *resp, int status, const struct buf *b)
{
	http_response_set(resp, status, XML_TYPE, buf_cstr(b), b->len);
}

/* The address of a GET (some clients send ?emailaddress= or ?Email= instead of a body). */
static void address_of_get(const struct http_request *req, struct autodiscover_request *r)
{
	static const char *const names[] = { "emailaddress", "EmailAddress", "EMailAddress", "Email", "email" };
	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < sizeof names / sizeof names[0] && !r->address[0]; i++)
		if (!http_query_param(req, names[i], r->address, sizeof r->address))
			r->address[0] = '\0';
}

/* The answer to a parsed request: settings, or the Error the schema defines. */
static void answer(const struct web_site *site, struct web_worker *w, struct autodiscover_request *r,
	struct http_response *resp, struct buf *b)
{
	char domain[DIR_ADDRESS_MAX] = "";
	if (r->schema[0] && strcmp(r->schema, AUTODISCOVER_OUTLOOK_SCHEMA) != 0) {
		/* e.g. mobilesync (ActiveSync): Postern has no provider for it */
		autodiscover_render_error(AUTODISCOVER_ERR_NO_PROVIDER, "this server answers only the outlook "
			"response schema (" AUTODISCOVER_OUTLOOK_SCHEMA "): POP3 and SMTP settings", b);
		reply_xml(resp, 200, b);
		return;
	}
	if (!r->address[0] || !autoconfig_address_valid(r->address, domain, sizeof domain)) {
		autodiscover_render_error(AUTODISCOVER_ERR_INVALID, r->address[0] ? "EMailAddress is not a mail "
			"address this server can have (local@domain)" : "the request names no EMailAddress", b);
		reply_xml(resp, 400, b);
		return;
	}
	snprintf(resp->log_note, sizeof resp->log_note, "autodiscover domain=%.160s", domain);
	enum autoconfig_locality where = autoconfig_domain_locality(site, w, domain);
	if (where != AUTOCONFIG_LOCAL) {
		struct buf words;
		buf_init(&words, 1024);
		autoconfig_locality_words(site, where, domain, &words);
		autodiscover_render_error(AUTODISCOVER_ERR_NOT_FOUND, buf_cstr(&words), b);
		buf_free(&words);
		reply_xml(resp, where == AUTOCONFIG_NOT_LOCAL ? 200 : 503, b);
		return;
	}
	struct autoconfig_settings s;
	autoconfig_site_settings(site, &s);
	if (!autodiscover_render(&s, r->address, b)) {
		buf_reset(b);
		autodiscover_render_error(AUTODISCOVER_ERR_NO_PROVIDER, "this server has no submission and POP3 "
			"listeners with TLS to advertise", b);
		reply_xml(resp, 503, b);
		return;
	}
	reply_xml(resp, 200, b);
}

void autodiscover_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp)
{
	struct autodiscover_request r;
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	bool parsed = true;
	if (strcmp(req->method, "POST") == 0)
		parsed = autodiscover_parse(req->body, req->body_len, &r);
	else
		address_of_get(req, &r);
	/* Never logged: the body (it may carry a password in other shapes) and the
	 * Authorization header; the event=http line gets the domain only. */
	if (!parsed) {
		snprintf(resp->log_note, sizeof resp->log_note, "autodiscover refused=malformed");
		autodiscover_render_error(AUTODISCOVER_ERR_INVALID, r.error, &b);
		reply_xml(resp, 400, &b);
	} else {
		answer(site, w, &r, resp, &b);
	}
	buf_free(&b);
}

/* Append s as the inside of a JSON string (RFC 8259 §7), at most `limit` bytes of it. */
static void json_escape(struct buf *b, const char *s, size_t limit)
{
	for (size_t i = 0; s[i] && i < limit; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f || c >= 0x80)
			buf_printf(b, "\\u%04x", c);   /* bytes, not characters: never invalid JSON */
		else
			buf_appendc(b, (char)c);
	}
}

/* The address of a v2 request: /v1.0/ADDRESS after the route's path, or ?Email=. */
static void address_of_json(const struct http_request *req, char *address, size_t sz)
{
	static const char route[] = "/autodiscover/autodiscover.json";
	address[0] = '\0';
	const char *rest = req->path + (strlen(req->path) >= sizeof route - 1 ? sizeof route - 1 : strlen(req->path));
	if (strncasecmp(rest, "/v1.0/", 6) == 0)
		snprintf(address, sz, "%s", rest + 6);
	else if (!http_query_param(req, "Email", address, sz) && !http_query_param(req, "email", address, sz))
		address[0] = '\0';
}

static void reply_json_error(struct http_response *resp, int status, const char *code, const char *words,
	const char *value)
{
	struct buf b;
	buf_init(&b, 2048);
	buf_printf(&b, "{\"ErrorCode\":\"%s\",\"ErrorMessage\":\"", code);
	json_escape(&b, words, 512);
	if (value) {
		json_escape(&b, value, 64);
		buf_appends(&b, "' is invalid. Supported values are 'AutodiscoverV1'.");
	}
	buf_appends(&b, "\"}");
	http_response_set(resp, status, JSON_TYPE, buf_cstr(&b), b.len);
	buf_free(&b);
}

void autodiscover_json_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp)
{
	char protocol[64] = "", address[AUTOCONFIG_ADDRESS_MAX + 1], domain[DIR_ADDRESS_MAX];
	if (!http_query_param(req, "Protocol", protocol, sizeof protocol))
		http_query_param(req, "protocol", protocol, sizeof protocol);
	address_of_json(req, address, sizeof address);
	if (strcasecmp(protocol, "AutodiscoverV1") != 0) {
		/* Postern serves POP3 and SMTP through Autodiscover v1 only: no ActiveSync,
		 * EWS or REST endpoints to point at. */
		reply_json_error(resp, 400, "InvalidProtocol", "The given protocol value '", protocol);
		return;
	}
	if (!autoconfig_address_valid(address, domain, sizeof domain)) {
		reply_json_error(resp, 400, "InvalidUser", "The address in the request is not a mail address this "
			"server can have (local@domain): /autodiscover/autodiscover.json/v1.0/ADDRESS?Protocol=AutodiscoverV1", NULL);
		return;
	}
	snprintf(resp->log_note, sizeof resp->log_note, "autodiscover domain=%.160s v2", domain);
	enum autoconfig_locality where = autoconfig_domain_locality(site, w, domain);
	if (where != AUTOCONFIG_LOCAL) {
		struct buf words;
		buf_init(&words, 1024);
		autoconfig_locality_words(site, where, domain, &words);
		reply_json_error(resp, where == AUTOCONFIG_NOT_LOCAL ? 404 : 503, "InvalidUser", buf_cstr(&words), NULL);
		buf_free(&words);
		return;
	}
	struct autoconfig_settings s;
	autoconfig_site_settings(site, &s);
	struct buf b;
	buf_init(&b, 2048);
	buf_appends(&b, "{\"Protocol\":\"AutodiscoverV1\",\"Url\":\"https://");
	json_escape(&b, s.hostname, CONF_NAME_MAX);
	buf_appends(&b, "/autodiscover/autodiscover.xml\"}");
	http_response_set(resp, 200, JSON_TYPE, buf_cstr(&b), b.len);
	buf_free(&b);
}
