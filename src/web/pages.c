/* pages.c - the first pages of the account service (see app.h): sign in and out,
 * the overview, app passwords (list, create — shown once —, revoke) and the quota.
 * Sign-in goes through the login hook (serve/web.c: the login service with the
 * throttle SMTP and POP3 share, proto "http") and accepts the account's own
 * password only: an app password is a device's, and must not open the page that
 * makes more of them.  The session is made only after a success, with a new id
 * (any session the browser had is ended: no fixation). */
#include "web/app.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/credentials.h"
#include "auth/password.h"
#include "directory/directory.h"
#include "store/layout.h"
#include "store/quota.h"

/* Is the account an administrator (the directory's admin flag, postern user admin)?
 * The admin pages ask the directory again on every request (web/admin.c). */
static bool account_is_admin(struct web_worker *w, const char *address)
{
	const char *at = strrchr(address, '@');
	char local[DIR_ADDRESS_MAX];
	struct dir_user du;
	if (!w->dir || !at || (size_t)(at - address) >= sizeof(local))
		return false;
	snprintf(local, sizeof(local), "%.*s", (int)(at - address), address);
	return directory_user_lookup(w->dir, local, at + 1, &du) == DIR_OK && du.admin;
}

/* The page to go to after signing in (the "next" of the form or the query), or "". */
static void next_of(const struct http_request *req, char *out, size_t outsz)
{
	bool have = strcmp(req->method, "POST") == 0 ? web_form_field(req, "next", out, outsz)
		: http_query_param(req, "next", out, outsz);
	if (!have || !web_local_path(out))
		out[0] = '\0';
}

static void login_form(const struct web_site *site, const struct http_request *req, struct http_response *resp,
	int status, const char *address, const char *error, const char *why, const char *todo, const char *note)
{
	struct web_view *v = web_view_new();
	char next[600];
	next_of(req, next, sizeof(next));
	web_view_set(v, "next", next);
	web_view_set(v, "address", address);
	web_view_set(v, "error", error);
	web_view_set(v, "why", why);
	web_view_set(v, "todo", todo);
	web_view_set(v, "note", note);
	web_view_set(v, "hostname", site->hostname);
	if (web_page(site, NULL, "login", "Sign in", v, resp))
		resp->status = status;
	web_view_free(&v);
}

/* GET /login */
void web_login_page(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	(void)w;
	if (!web_transport_ok(site, req, resp))
		return;
	char id[128], flag[8];
	struct web_user u;
	web_session_cookie(req, id, sizeof(id));
	if (id[0] && web_session_find(site->sessions, id, time(NULL), &u)) {
		web_redirect(resp, "/");
		return;
	}
	bool out = http_query_param(req, "signed_out", flag, sizeof(flag));
	login_form(site, req, resp, 200, "", NULL, NULL, NULL, out ? "You are signed out." : NULL);
}

/* A POST /login from another site's page?  A browser says where a request comes
 * from in Sec-Fetch-Site (Fetch Metadata) and, unless the referrer policy hides it
 * ("null", as ours does), in Origin (RFC 6454 §7); either, when present, must say
 * this site. */
static bool origin_ok(const struct http_request *req)
{
	const char *site = http_request_header(req, "Sec-Fetch-Site");
	if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return false;
	const char *o = http_request_header(req, "Origin");
	if (!o || strcmp(o, "null") == 0)
		return true;
	const char *h = strstr(o, "://");
	if (!h)
		return false;
	h += 3;
	char host[256];
	size_t n = strcspn(h, ":/");
	snprintf(host, sizeof(host), "%.*s", (int)(n < 255 ? n : 255), h);
	return req->host && strcasecmp(host, req->host) == 0;
}

static void login_refused(const struct web_site *site, const struct http_request *req, struct http_response *resp, enum login_result r,
	const char *address, const char *why)
{
	if (r == LOGIN_BLOCKED) {
		login_form(site, req, resp, 429, address, "Not signed in: sign-ins are blocked for now.", why,
			"Wait until the time above, then sign in with the account's own password. If you did not make these "
			"attempts, a device of yours may be trying an old password: correct it in that device.", NULL);
	} else if (r == LOGIN_TEMPFAIL) {
		login_form(site, req, resp, 503, address, "Not signed in: the password could not be checked just now.",
			"The account directory did not answer in time (the server's log says why).",
			"Try again in a minute.", NULL);
	} else {
		login_form(site, req, resp, 401, address, "Not signed in: the address or the password is wrong.",
			"This page takes the account's own password. An app password (made for a mail program) does not open "
			"it, so that a device's password cannot make more of them.",
			"Check the address and type the password again. After repeated failures sign-ins from your address are "
			"blocked for a while, for this page and for mail programs alike.", NULL);
	}
}

/* POST /login: address and password. */
void web_login_post(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	if (!web_transport_ok(site, req, resp))
		return;
	if (!origin_ok(req)) {
		web_words_page(site, NULL, resp, 403, "Refused", "Refused: the sign-in form was sent from another web site.",
			"The request's Origin names another host than this one; signing you in from there would let that site "
			"choose whose account your browser uses.", "Open this server's own /login page and sign in there.");
		return;
	}
	char address[SASL_USER_MAX + 1], password[SASL_PASS_MAX + 1], canonical[DIR_ADDRESS_MAX], why[400] = "";
	bool have = web_form_field(req, "address", address, sizeof(address));
	have = web_form_field(req, "password", password, sizeof(password)) && have;
	if (!have || !address[0] || !password[0]) {
		explicit_bzero(password, sizeof(password));
		login_form(site, req, resp, 400, have ? address : "", "Not signed in: give your mail address and your password.",
			"One of the two was empty or too long.", NULL, NULL);
		return;
	}
	if (!site->hooks.login) {
		explicit_bzero(password, sizeof(password));
		web_words_page(site, NULL, resp, 503, "Unavailable", "Not signed in: this server checks no passwords here.",
			"The login service is not running in this process.", "Try again in a moment.");
		return;
	}
	enum login_result r = site->hooks.login(site->hooks.ctx, req->client_addr, req->tls, address, password, true,
		canonical, sizeof(canonical), why, sizeof(why));
	explicit_bzero(password, sizeof(password));
	if (r != LOGIN_OK) {
		login_refused(site, req, resp, r, address, why);
		snprintf(resp->log_note, sizeof(resp->log_note), "account login=refused");
		return;
	}
	char old[128];
	web_session_cookie(req, old, sizeof(old));
	if (old[0])
		web_session_destroy(site->sessions, old);   /* a new id at every sign-in */
	struct web_user u;
	if (!web_session_create(site->sessions, canonical, account_is_admin(w, canonical), &u)) {
		web_words_page(site, NULL, resp, 503, "Unavailable", "Not signed in: no session could be made.",
			"The server could not draw random bytes for the session's id.", "Try again in a moment.");
		return;
	}
	char next[600];
	next_of(req, next, sizeof(next));
	web_redirect(resp, next[0] ? next : "/");
	web_session_set_cookie(resp, u.session_id);
	snprintf(resp->log_note, sizeof(resp->log_note), "account login=ok user=%.100s", canonical);
}

/* POST /logout */
void web_logout(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	web_session_destroy(site->sessions, u->session_id);
	web_redirect(resp, "/login?signed_out=1");
	web_session_set_cookie(resp, NULL);
}

/* GET / */
void web_overview(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	web_view_set(v, "admin", u->admin ? "yes" : "");
	web_view_set(v, "hostname", site->hostname);
	web_view_setf(v, "idle_minutes", "%llu", (unsigned long long)(site->conf->web_session_idle / 60));
	web_nav_add(u, "/", v, "pages");
	web_page(site, u, "overview", "Overview", v, resp);
	web_view_free(&v);
}

static void fmt_when(long long t, char *out, size_t outsz)
{
	if (!t) {
		snprintf(out, outsz, "never");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	strftime(out, outsz, "%Y-%m-%d %H:%M UTC", gmtime_r(&tt, &tm));
}

static void add_app_password(void *arg, const char *name, long long created, long long last_used, bool legacy)
{
	struct web_view *item = web_view_add_item(arg, "passwords");
	char c[40], l[40];
	fmt_when(created, c, sizeof(c));
	fmt_when(last_used, l, sizeof(l));
	web_view_set(item, "name", name);
	web_view_set(item, "created", c);
	web_view_set(item, "last_used", l);
	web_view_set(item, "legacy", legacy ? "yes" : "");
}

/* The app passwords page; new_password (and its name) shown once when given. */
static void app_passwords_page(const struct web_site *site, struct web_worker *w, const struct web_user *u,
	struct http_response *resp, const char *new_name, const char *new_password, const char *error)
{
	struct web_view *v = web_view_new();
	if (directory_app_password_list(w->dir, u->address, add_app_password, v) != DIR_OK)
		web_view_set(v, "list_error", directory_error(w->dir));
	web_view_set(v, "new_name", new_name);
	web_view_set(v, "new_password", new_password);
	web_view_set(v, "error", error);
	web_page(site, u, "app_passwords", "App passwords", v, resp);
	web_view_free(&v);
}

/* GET /app-passwords */
void web_app_passwords(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (u)
		app_passwords_page(site, w, u, resp, NULL, NULL, NULL);
}

/* A name for an app password: 1 to 64 printable characters (it is shown escaped). */
static bool app_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/* POST /app-passwords: name */
void web_app_password_create(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char name[128];
	if (!web_form_field(req, "name", name, sizeof(name)) || !app_name_ok(name)) {
		app_passwords_page(site, w, u, resp, NULL, NULL,
			"Not made: give the app password a name of 1 to 64 characters (the device it is for: \"Phone\", \"Laptop\").");
		return;
	}
	char pw[APP_PASSWORD_LEN + 1];
	bool no_password;
	enum dir_result r = credentials_app_password_new(w->dir, u->address, name, pw, sizeof(pw), &no_password);
	if (r == DIR_OK) {
		app_passwords_page(site, w, u, resp, name, pw, NULL);
		snprintf(resp->log_note, sizeof(resp->log_note), "account app-password=created user=%.100s", u->address);
	} else {
		char err[400];
		snprintf(err, sizeof(err), "Not made: %s", r == DIR_EXISTS ? "an app password of that name exists; "
			"revoke it first or choose another name." : no_password ? "no password could be generated; try again." :
			directory_error(w->dir));
		app_passwords_page(site, w, u, resp, NULL, NULL, err);
	}
	explicit_bzero(pw, sizeof(pw));
}

/* POST /app-passwords/revoke: name */
void web_app_password_revoke(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char name[128], words[300];
	enum dir_result r = web_form_field(req, "name", name, sizeof(name)) ?
		directory_app_password_revoke(w->dir, u->address, name) : DIR_NOT_FOUND;
	if (r == DIR_OK)
		snprintf(words, sizeof(words), "App password \"%.64s\" revoked: the devices that use it can no longer log in.", name);
	else if (r == DIR_NOT_FOUND)
		snprintf(words, sizeof(words), "Nothing revoked: you have no app password of that name (revoked already?).");
	else
		snprintf(words, sizeof(words), "Nothing revoked: %.200s. Try again.", directory_error(w->dir));
	web_flash(site, u, words);
	web_redirect(resp, "/app-passwords");
}

static void size_words(uint64_t n, char *out, size_t outsz)
{
	if (n >= (1ull << 30))
		snprintf(out, outsz, "%.1f GB", (double)n / (double)(1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(out, outsz, "%.1f MB", (double)n / (double)(1ull << 20));
	else if (n >= 1024)
		snprintf(out, outsz, "%.1f KB", (double)n / 1024.0);
	else
		snprintf(out, outsz, "%llu bytes", (unsigned long long)n);
}

/* The Maildir usage into v; false: err says why. */
static bool quota_view(const struct web_site *site, struct web_worker *w, const char *address, struct web_view *v,
	char *err, size_t errsz)
{
	struct dir_recipient dr;
	char path[1400];
	if (directory_resolve_recipient(w->dir, site->conf, address, &dr) != DIR_RCPT_USER ||
		!store_mailbox_path(site->conf->data_dir, dr.mailbox.domain, dr.mailbox.local, path, sizeof(path))) {
		snprintf(err, errsz, "%s", dr.kind == DIR_RCPT_TEMPFAIL ? dr.error : "this account has no mailbox here");
		return false;
	}
	struct quota_state st;
	if (!quota_read(path, &st, err, errsz))
		return false;
	char used[32], limit[32];
	size_words(st.used_bytes, used, sizeof(used));
	web_view_set(v, "used", used);
	web_view_setf(v, "count", "%llu", (unsigned long long)st.used_count);
	if (st.defined && st.limit_bytes) {
		unsigned pct = (unsigned)(st.used_bytes >= st.limit_bytes ? 100 : st.used_bytes * 100 / st.limit_bytes);
		size_words(st.limit_bytes, limit, sizeof(limit));
		web_view_set(v, "limit", limit);
		web_view_setf(v, "percent", "%u", pct);
		web_view_set(v, "full", st.used_bytes >= st.limit_bytes ? "yes" : "");
		web_view_set(v, "nearly_full", pct >= 90 && st.used_bytes < st.limit_bytes ? "yes" : "");
	}
	if (st.defined && st.limit_count)
		web_view_setf(v, "limit_count", "%llu", (unsigned long long)st.limit_count);
	return true;
}

/* GET /quota */
void web_quota(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	char err[400];
	if (!quota_view(site, w, u->address, v, err, sizeof(err)))
		web_view_set(v, "error", err);
	web_page(site, u, "quota", "Quota", v, resp);
	web_view_free(&v);
}
