/* app.h - the web application core of the "account" service (the user's pages):
 * templates (template.c: data files data/web/NAME.html, loaded once at start),
 * views (the values a page shows: text, always HTML-escaped, or HTML our own code
 * built), the layout and the security headers every page carries (app.c), forms
 * (form.c), server-side sessions with a CSRF token each (session.c), and the
 * signed-in user of a request (web_app_user).  The pages of webuser and webadmin
 * are built on these (contracts14.md §B). */
#ifndef POSTERN_WEB_APP_H
#define POSTERN_WEB_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "net/http.h"
#include "util/buf.h"
#include "web/web.h"

/* The signed-in user of one request (a copy: the session may change meanwhile). */
struct web_user {
	char address[321];
	bool admin;
	char csrf[64];            /* the session's CSRF token: forms carry it as field "csrf" */
	char session_id[64];
	char flash[256];          /* a message for this page, set by the request before (web_flash) */
};

/* The signed-in user of this request, or NULL after writing the answer (303 to
 * /login for a page, 401 words for a POST) into resp.  POST also checks the CSRF
 * token (form field "csrf"): 403 in words when missing or wrong.  Refuses (403 in
 * words: "use https://...") a plain-HTTP request unless the listener is bound to
 * loopback. */
const struct web_user *web_app_user(const struct web_site *, struct web_worker *, const struct http_request *,
	struct http_response *, struct web_user *storage);
/* A message shown on the user's next page (after a redirect): "App password revoked." */
void web_flash(const struct web_site *, const struct web_user *, const char *text);
/* May this request be answered over plain HTTP?  Only on a listener bound to a
 * loopback address (127.0.0.0/8, ::1, localhost); false writes the 403 into resp. */
bool web_transport_ok(const struct web_site *, const struct http_request *, struct http_response *);
bool web_address_is_loopback(const char *bind_address);
/* A path of this site that is safe to redirect to after signing in ("/mail/12"),
 * never "//host", a backslash, a space or a control character. */
bool web_local_path(const char *path);

/* Forms: an application/x-www-form-urlencoded body (bounded by [http] body_max).
 * false: absent, too long (outsz - 1), badly escaped, holding NUL, or the body is
 * not a form. */
bool web_form_field(const struct http_request *, const char *name, char *out, size_t outsz);

/* Views: a tree of key -> text / trusted HTML / list of views.  Keys are looked up
 * in the view, then in the views around it (an item of {{#each}} sees the page's
 * csrf).  Out of memory is remembered and makes web_page answer 500. */
struct web_view;
struct web_view *web_view_new(void);
void web_view_free(struct web_view **);
void web_view_set(struct web_view *, const char *key, const char *text);            /* copied */
void web_view_setf(struct web_view *, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void web_view_set_html(struct web_view *, const char *key, const char *trusted_html);
struct web_view *web_view_add_item(struct web_view *, const char *list_key);         /* a new list element */
bool web_view_failed(const struct web_view *);                                       /* out of memory */

/* Templates.  Syntax: {{name}} = HTML-escaped text (or a value set with
 * web_view_set_html, as is); {{#each list}}..{{/each}}; {{#if name}}..{{else}}..{{/if}}
 * (true: a non-empty value or a list with an item); {{> partial}}; nothing else.
 * Loaded once from DIR/web/ (web_templates_locate: $POSTERN_DATA_DIR, the source
 * tree's data/, the installed datadir, as explain.ini); an error names file:line. */
struct web_templates;
bool web_templates_locate(char *dir, size_t dirsz);
struct web_templates *web_templates_load(const char *dir, char *err, size_t errsz);
void web_templates_free(struct web_templates **);
/* One template from memory (tests and the fuzzer); its partials may name only itself. */
struct web_templates *web_templates_from_string(const char *name, const char *text, size_t len, char *err, size_t errsz);
/* Render template `name` with view into out (bounded).  false: no such template, or
 * the output was cut. */
bool web_template_render(const struct web_templates *, const char *name, const struct web_view *, struct buf *out);
/* A static file loaded with the templates (style.css, app.js): its bytes, or NULL. */
const char *web_templates_static(const struct web_templates *, const char *name, size_t *len);

/* Render template `name` inside the layout (title, nav with the user's links, flash
 * message) into resp: 200 text/html; charset=utf-8, with the security headers. */
bool web_page(const struct web_site *, const struct web_user *, const char *template_name, const char *title,
	struct web_view *, struct http_response *);
void web_redirect(struct http_response *, const char *path_and_query);               /* 303 See Other */
/* The headers every answer of the account service carries (CSP, nosniff,
 * no-referrer, no-store). */
void web_security_headers(struct http_response *);
/* A refusal in words (what happened, why, what to do): as plain text (web_words),
 * or as a page of the layout (web_words_page, template words.html; u may be NULL). */
void web_words(struct http_response *, int status, const char *title, const char *what, const char *why,
	const char *todo);
void web_words_page(const struct web_site *, const struct web_user *u, struct http_response *, int status,
	const char *title, const char *what, const char *why, const char *todo);
/* The navigation entries this user has (pages whose routes exist; admin pages for
 * admins), as items of list_key with href, label, about and current. */
void web_nav_add(const struct web_user *, const char *current, struct web_view *, const char *list_key);
/* The session cookie of a request ("" when none), and the Set-Cookie of an answer
 * (id "" or NULL: the cookie is removed). */
void web_session_cookie(const struct http_request *, char *out, size_t outsz);
void web_session_set_cookie(struct http_response *, const char *id);

/* Sessions (session.c): in memory, at most WEB_SESSIONS_MAX (the oldest evicted),
 * idle and absolute expiry from [web] session_idle / session_max. */
#define WEB_SESSIONS_MAX 10000
struct web_sessions;
struct web_sessions *web_sessions_new(unsigned idle_seconds, unsigned max_seconds);
void web_sessions_free(struct web_sessions **);
/* A new session for address; its id and CSRF token into u.  false: no randomness. */
bool web_session_create(struct web_sessions *, const char *address, bool admin, struct web_user *u);
/* The live session of this id (idle time refreshed), copied into u (its flash taken). */
bool web_session_find(struct web_sessions *, const char *id, time_t now, struct web_user *u);
void web_session_destroy(struct web_sessions *, const char *id);
void web_session_set_flash(struct web_sessions *, const char *id, const char *text);
size_t web_sessions_count(struct web_sessions *);
/* Compare two NUL-terminated tokens in time independent of where they differ. */
bool web_token_equal(const char *a, const char *b);

/* The pages of app.c and pages.c. */
web_handler_fn web_login_page, web_login_post, web_logout, web_overview, web_static;
web_handler_fn web_app_passwords, web_app_password_create, web_app_password_revoke, web_quota;

#endif
