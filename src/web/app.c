/* app.c - the core of the account pages (see app.h): the layout every page is drawn
 * in (its navigation links only to pages whose routes exist), the security headers
 * every answer carries, the words of a refusal as a page, the redirect, the static
 * files, and the gate each page passes first: the transport (HTTPS unless the
 * listener is loopback), the session cookie, and on a POST the CSRF token.
 * The pages themselves are in pages.c. */
#include "web/app.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

#define PAGE_MAX (2u << 20)
#define COOKIE_NAME "postern_session"

/* The pages a user may have, in the order the navigation shows them.  A page is
 * linked only when a route serves its path (web_route_exists), so a page another
 * helper has not added yet is not a dead link. */
static const struct nav_entry {
	const char *path, *label, *about;
	bool admin;
} nav[] = {
	{ "/", "Overview", "who you are signed in as, and these pages", false },
	{ "/mail", "My outgoing mail", "what became of every message you sent and every refused attempt, with what to do", false },
	{ "/setup", "Set up a device", "the exact settings of this server for your mail program, step by step", false },
	{ "/test", "Test my settings", "this server checks the port and security your mail program uses", false },
	{ "/app-passwords", "App passwords", "a password of its own for each mail program; revoke one without changing the others", false },
	{ "/quota", "Quota", "how full your mailbox is, and what to do when it is full", false },
	{ "/admin/queue", "Queue", "messages waiting to go out: flush, hold, release, delete, bounce", true },
	{ "/admin/refusals", "Refusals", "refusals by cause, account and client over the last day and week", true },
	{ "/admin/throttled", "Throttled logins", "addresses and accounts blocked for failed logins, with unblock", true },
};

void web_nav_add(const struct web_user *u, const char *current, struct web_view *v, const char *list_key)
{
	for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++) {
		if ((nav[i].admin && !u->admin) || !web_route_exists(nav[i].path))
			continue;
		struct web_view *item = web_view_add_item(v, list_key);
		web_view_set(item, "href", nav[i].path);
		web_view_set(item, "label", nav[i].label);
		web_view_set(item, "about", nav[i].about);
		web_view_set(item, "current", current && strcmp(current, nav[i].path) == 0 ? "yes" : "");
	}
}

/* The nav entry a page's title names (the page marks itself current). */
static const char *nav_path_of(const char *title)
{
	for (size_t i = 0; title && i < sizeof(nav) / sizeof(nav[0]); i++)
		if (strcmp(nav[i].label, title) == 0)
			return nav[i].path;
	return NULL;
}

void web_security_headers(struct http_response *r)
{
	/* No inline script or style anywhere: only our own /static/ files (CSP Level 3). */
	http_response_header(r, "Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
		"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
	http_response_header(r, "X-Content-Type-Options", "nosniff");
	http_response_header(r, "Referrer-Policy", "no-referrer");
	http_response_header(r, "Cache-Control", "no-store");
}

void web_redirect(struct http_response *r, const char *path_and_query)
{
	/* RFC 9110 §15.4.4: 303 makes the browser GET the new location after a POST. */
	http_response_printf(r, 303, "text/plain; charset=utf-8", "See %s\n", path_and_query);
	http_response_header(r, "Location", path_and_query);
	web_security_headers(r);
}

static void render_failed(struct http_response *resp, const char *template_name)
{
	http_response_printf(resp, 500, "text/plain; charset=utf-8",
		"Internal error: the page %s could not be drawn (out of memory, or the page grew past its bound).\n"
		"Try again; if it stays, the server's log has the reason.\n", template_name);
	web_security_headers(resp);
	snprintf(resp->log_note, sizeof(resp->log_note), "render failed template=%s", template_name);
}

/* The page's template, then the layout around it. */
bool web_page(const struct web_site *site, const struct web_user *u, const char *template_name, const char *title,
	struct web_view *view, struct http_response *resp)
{
	struct buf page, whole;
	buf_init(&page, PAGE_MAX);
	buf_init(&whole, PAGE_MAX);
	struct web_view *layout = web_view_new();
	if (view && u) {
		web_view_set(view, "csrf", u->csrf);
		web_view_set(view, "user_address", u->address);
	}
	bool ok = view && layout && !web_view_failed(view) &&
		web_template_render(site->templates, template_name, view, &page);
	if (ok) {
		web_view_set(layout, "title", title);
		web_view_set(layout, "hostname", site->hostname);
		web_view_set_html(layout, "content", buf_cstr(&page));
		if (u) {
			web_view_set(layout, "user_address", u->address);
			web_view_set(layout, "csrf", u->csrf);
			web_view_set(layout, "flash", u->flash);
			web_nav_add(u, nav_path_of(title), layout, "nav");
		}
		ok = !web_view_failed(layout) && web_template_render(site->templates, "layout", layout, &whole);
	}
	if (ok)
		ok = http_response_set(resp, 200, "text/html; charset=utf-8", whole.data, whole.len);
	if (ok)
		web_security_headers(resp);
	else
		render_failed(resp, template_name);
	web_view_free(&layout);
	buf_free(&page);
	buf_free(&whole);
	return ok;
}

void web_words(struct http_response *resp, int status, const char *title, const char *what, const char *why,
	const char *todo)
{
	(void)title;
	http_response_printf(resp, status, "text/plain; charset=utf-8", "%s\n%s%s%s%s", what, why ? why : "",
		why ? "\n" : "", todo ? todo : "", todo ? "\n" : "");
	web_security_headers(resp);
}

/* The words as a page of the layout when the templates are there. */
void web_words_page(const struct web_site *site, const struct web_user *u, struct http_response *resp, int status,
	const char *title, const char *what, const char *why, const char *todo)
{
	struct web_view *v = web_view_new();
	web_view_set(v, "what", what);
	web_view_set(v, "why", why);
	web_view_set(v, "todo", todo);
	if (site->templates && web_page(site, u, "words", title, v, resp))
		resp->status = status;
	else
		web_words(resp, status, title, what, why, todo);
	web_view_free(&v);
}

bool web_address_is_loopback(const char *a)
{
	if (!a || !*a)
		return false;
	if (strcasecmp(a, "localhost") == 0)
		return true;
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, a, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;      /* 127.0.0.0/8, RFC 1122 §3.2.1.3 */
	if (inet_pton(AF_INET6, a, &v6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&v6))
			return true;                               /* ::1, RFC 4291 §2.5.3 */
		if (IN6_IS_ADDR_V4MAPPED(&v6))
			return v6.s6_addr[12] == 127;
	}
	return false;
}

/* The https:// address a plain request should have used. */
static void https_url(const struct web_site *site, const struct http_request *req, char *out, size_t outsz)
{
	unsigned port = 443;
	for (size_t i = 0; i < site->conf->n_listeners; i++) {
		const struct conf_listener *l = &site->conf->listeners[i];
		if (l->role == ROLE_HTTP && l->tls == TLS_IMPLICIT && conf_listener_serves(l, "account")) {
			port = l->port;
			break;
		}
	}
	const char *host = req->host && req->host[0] ? req->host : site->hostname;
	char p[16] = "";
	if (port != 443)
		snprintf(p, sizeof(p), ":%u", port);
	snprintf(out, outsz, "https://%s%s%s", host, p, req->path);
}

bool web_transport_ok(const struct web_site *site, const struct http_request *req, struct http_response *resp)
{
	const struct conf_listener *l = web_site_listener(site, req->listener);
	if (req->tls || (l && web_address_is_loopback(l->address)))
		return true;
	char url[700], what[900];
	https_url(site, req, url, sizeof(url));
	snprintf(what, sizeof(what), "Refused: this page is served over HTTPS only. Use %s", url);
	web_words(resp, 403, "HTTPS only", what,
		"Your address and password, and the session cookie after them, would cross the network unencrypted. "
		"Plain HTTP is answered only on a listener bound to a loopback address.",
		"Open the https:// address above. Administrators: give the listener `tls = implicit` "
		"(docs/operations.md, the web page).");
	snprintf(resp->log_note, sizeof(resp->log_note), "account refused=plain-http");
	return false;
}

/* The value of our cookie in the Cookie field (RFC 6265 §5.4), or "". */
void web_session_cookie(const struct http_request *req, char *out, size_t outsz)
{
	out[0] = '\0';
	const char *c = http_request_header(req, "Cookie");
	size_t n = strlen(COOKIE_NAME);
	while (c && *c) {
		while (*c == ' ' || *c == ';')
			c++;
		const char *end = strchr(c, ';');
		size_t len = end ? (size_t)(end - c) : strlen(c);
		if (len > n && strncmp(c, COOKIE_NAME "=", n + 1) == 0 && len - n - 1 < outsz) {
			snprintf(out, outsz, "%.*s", (int)(len - n - 1), c + n + 1);
			return;
		}
		c = end;
	}
}

void web_session_set_cookie(struct http_response *resp, const char *id)
{
	char v[200];
	/* RFC 6265 §4.1: HttpOnly keeps it from scripts, Secure from plain HTTP (browsers
	 * treat http://127.0.0.1 as secure), SameSite=Strict from other sites' requests. */
	if (id && id[0])
		snprintf(v, sizeof(v), COOKIE_NAME "=%s; Path=/; HttpOnly; Secure; SameSite=Strict", id);
	else
		snprintf(v, sizeof(v), COOKIE_NAME "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
	http_response_header(resp, "Set-Cookie", v);
}

bool web_local_path(const char *p)
{
	/* "/x" only: never "//host" or "/\\host" (a browser takes those for another site), no
	 * spaces or control characters (nothing to split a header or a URL with). */
	if (!p || p[0] != '/' || p[1] == '/' || p[1] == '\\' || strlen(p) > 512)
		return false;
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '\\')
			return false;
	return true;
}

/* 303 to /login, with the page asked for as `next` (percent-encoded, RFC 3986 §2.1)
 * so that signing in leads back to it. */
static void login_redirect(const struct http_request *req, struct http_response *resp)
{
	char to[1700] = "/login";
	if (strcmp(req->path, "/") != 0 && web_local_path(req->path)) {
		size_t o = strlen("/login?next=");
		memcpy(to, "/login?next=", o + 1);
		for (const char *q = req->path; *q && o + 4 < sizeof(to); q++) {
			unsigned char c = (unsigned char)*q;
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("/-._~", c))
				to[o++] = (char)c;
			else
				o += (size_t)snprintf(to + o, sizeof(to) - o, "%%%02X", c);
		}
		to[o] = '\0';
	}
	web_redirect(resp, to);
}

static bool is_post(const struct http_request *req)
{
	return strcmp(req->method, "POST") == 0;
}

const struct web_user *web_app_user(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp, struct web_user *u)
{
	(void)w;
	if (!web_transport_ok(site, req, resp))
		return NULL;
	char id[128];
	web_session_cookie(req, id, sizeof(id));
	if (!id[0] || !web_session_find(site->sessions, id, time(NULL), u)) {
		if (!is_post(req)) {
			login_redirect(req, resp);
		} else {
			web_words_page(site, NULL, resp, 401, "Not signed in",
				"Not done: you are not signed in, or your session has ended.",
				"A session ends after a while without use and, in any case, some hours after signing in; "
				"a restart of the server ends every session.",
				"Sign in again at /login, then repeat what you were doing.");
		}
		snprintf(resp->log_note, sizeof(resp->log_note), "account no-session");
		return NULL;
	}
	if (is_post(req)) {
		char token[128];
		if (!web_form_field(req, "csrf", token, sizeof(token)) || !web_token_equal(token, u->csrf)) {
			web_words_page(site, u, resp, 403, "Refused",
				"Refused: the form did not carry this session's security token (CSRF token).",
				"Every form of these pages carries a token only this session knows, so that another web site "
				"cannot make your browser send a form in your name. This request had none, or another session's.",
				"Go back, reload the page (it gets the current token) and send the form again.");
			snprintf(resp->log_note, sizeof(resp->log_note), "account refused=csrf user=%.64s", u->address);
			return NULL;
		}
	}
	return u;
}

void web_flash(const struct web_site *site, const struct web_user *u, const char *text)
{
	web_session_set_flash(site->sessions, u->session_id, text);
}

/* GET /static/NAME: the stylesheet and the copy buttons' script. */
void web_static(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	(void)w;
	const char *name = req->path + strlen("/static/");
	size_t len = 0;
	const char *data = web_templates_static(site->templates, name, &len);
	if (!data) {
		http_response_printf(resp, 404, "text/plain; charset=utf-8", "Not found: /static/ holds style.css and app.js only.\n");
		return;
	}
	size_t n = strlen(name);
	bool css = n > 4 && strcmp(name + n - 4, ".css") == 0;
	http_response_set(resp, 200, css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8", data, len);
	http_response_header(resp, "X-Content-Type-Options", "nosniff");
	http_response_header(resp, "Cache-Control", "max-age=300");
}
