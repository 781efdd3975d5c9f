/* setup.c - "Set up a device" (see user.h): the running server's settings for each
 * mail program, its steps, and an app password made for the device.
 *
 * The settings are autoconfig's (autoconfig_site_settings: the host name and the
 * submission and POP3 listeners as bound, implicit TLS first, never mx or tls = none),
 * so this page, Thunderbird's autoconfig, Autodiscover and the Apple profile all say
 * the same thing and nothing is typed by hand.  The steps of each program are data:
 * the template data/web/setup_<id>.html.  An app password made here is shown once, as
 * text and as a QR code (web/qr.h) whose text is the password itself: a phone's camera
 * app reads it as text that can be copied into the password field (there is no
 * standard QR form for mail account settings that phones' mail apps read).  For Apple
 * devices POST /setup/apple/profile answers the signed profile (web/mobileconfig.h),
 * with a new app password in it when asked, so the device needs nothing typed. */
#include "web/user.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/credentials.h"
#include "auth/password.h"
#include "directory/directory.h"
#include "web/app.h"
#include "web/autoconfig.h"
#include "web/mobileconfig.h"
#include "web/qr.h"

const struct setup_program setup_programs[] = {
	{ "outlook", "Outlook", "Outlook", false },
	{ "thunderbird", "Thunderbird", "Thunderbird", false },
	{ "apple-mail", "Apple Mail on a Mac", "Apple Mail", true },
	{ "iphone", "iPhone and iPad", "iPhone", true },
	{ "android", "Android", "Android", false },
	{ "gmail", "Gmail: send mail as", "Gmail", false },
};
const size_t setup_n_programs = sizeof(setup_programs) / sizeof(setup_programs[0]);

const struct setup_program *setup_program_find(const char *id)
{
	for (size_t i = 0; id && i < setup_n_programs; i++)
		if (strcmp(setup_programs[i].id, id) == 0)
			return &setup_programs[i];
	return NULL;
}

/* The endpoints of one service as table rows; the first is tagged "use this" when
 * recommend, and named (KEY_port, KEY_security) for the steps' words.  Returns how many. */
static size_t add_endpoints(struct web_view *v, const char *key, const struct autoconfig_settings *s,
	enum autoconfig_service service, bool recommend)
{
	const struct autoconfig_endpoint *e[AUTOCONFIG_MAX_ENDPOINTS];
	size_t n = autoconfig_endpoints(s, service, e, AUTOCONFIG_MAX_ENDPOINTS);
	for (size_t i = 0; i < n; i++) {
		struct web_view *it = web_view_add_item(v, key);
		web_view_set(it, "host", s->hostname);
		web_view_setf(it, "port", "%u", e[i]->port);
		web_view_set(it, "security", e[i]->implicit_tls ? "SSL/TLS" : "STARTTLS");
		web_view_set(it, "first", i == 0 && recommend ? "yes" : "");
		if (i == 0) {   /* the one to use, for the steps' words */
			char k[32];
			snprintf(k, sizeof(k), "%s_port", key);
			web_view_setf(v, k, "%u", e[i]->port);
			snprintf(k, sizeof(k), "%s_security", key);
			web_view_set(v, k, e[i]->implicit_tls ? "SSL/TLS" : "STARTTLS");
			snprintf(k, sizeof(k), "%s_tls", key);
			web_view_set(v, k, e[i]->implicit_tls ? "yes" : "");
		}
	}
	return n;
}

/* The settings every setup page shows. */
static void settings_view(const struct web_site *site, const struct web_user *u, struct web_view *v)
{
	struct autoconfig_settings s;
	autoconfig_site_settings(site, &s);
	web_view_set(v, "host", s.hostname);
	web_view_set(v, "user", u->address);
	/* The steps name one incoming protocol: IMAP where the server has it (the folders
	 * stay on the server, the same on every device), else POP3. */
	bool imap = add_endpoints(v, "imap", &s, AUTOCONFIG_IMAP, true) > 0;
	add_endpoints(v, "incoming", &s, AUTOCONFIG_POP3, !imap);
	add_endpoints(v, "outgoing", &s, AUTOCONFIG_SUBMISSION, true);
	web_view_set(v, "in_kind", imap ? "IMAP" : "POP3");
	web_view_set(v, "in_kind_short", imap ? "IMAP" : "POP");
	for (size_t i = 0; i < setup_n_programs; i++) {
		struct web_view *p = web_view_add_item(v, "programs");
		web_view_set(p, "id", setup_programs[i].id);
		web_view_set(p, "name", setup_programs[i].name);
	}
}

void web_setup_index(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct web_view *v = web_view_new();
	settings_view(site, u, v);
	web_page(site, u, "setup", "Set up a device", v, resp);
	web_view_free(&v);
}

/* The program of /setup/<id>, or NULL after the 404 page. */
static const struct setup_program *program_of(const struct web_site *site, const struct web_user *u,
	const struct http_request *req, struct http_response *resp)
{
	const struct setup_program *p = setup_program_find(req->path + strlen("/setup/"));
	if (p)
		return p;
	struct web_view *v = web_view_new();
	web_view_set(v, "what", "Not found: this server has no setup page for that mail program.");
	web_view_set(v, "todo", "Pick your mail program on the Set up a device page; for another program, use the "
		"settings shown there.");
	if (web_page(site, u, "words", "Not found", v, resp))
		resp->status = 404;
	web_view_free(&v);
	return NULL;
}

static void program_page(const struct web_site *site, const struct web_user *u, const struct setup_program *p,
	struct web_view *v, struct http_response *resp)
{
	char template[64], title[96];
	settings_view(site, u, v);
	web_view_set(v, "program_id", p->id);
	web_view_set(v, "program_name", p->name);
	web_view_set(v, "apple", p->apple ? "yes" : "");
	web_view_set(v, "signed", site->certificate && site->key ? "yes" : "");
	snprintf(template, sizeof(template), "setup_%s", p->id);
	snprintf(title, sizeof(title), "Set up %s", p->name);
	web_page(site, u, template, title, v, resp);
}

void web_setup_program(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	const struct setup_program *p = u ? program_of(site, u, req, resp) : NULL;
	if (!p)
		return;
	struct web_view *v = web_view_new();
	program_page(site, u, p, v, resp);
	web_view_free(&v);
}

/* A new app password for the device: the name typed, or "<program> <date>".  false
 * with words in err. */
static bool new_app_password(struct web_worker *w, const struct web_user *u, const struct http_request *req,
	const struct setup_program *p, char *name, size_t namesz, char *pw, size_t pwsz, char *err, size_t errsz)
{
	char typed[128] = "";
	web_form_field(req, "device", typed, sizeof(typed));
	if (typed[0] && strlen(typed) <= 64)
		snprintf(name, namesz, "%s", typed);
	else {
		time_t now = time(NULL);
		struct tm tm;
		char when[32] = "";
		if (gmtime_r(&now, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(name, namesz, "%.40s %s", p->name, when);
	}
	for (const char *c = name; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			snprintf(err, errsz, "Not made: the device name may not hold control characters.");
			return false;
		}
	bool no_password = false;
	enum dir_result r = credentials_app_password_new(w->dir, u->address, name, pw, pwsz, &no_password);
	if (r == DIR_OK)
		return true;
	snprintf(err, errsz, "Not made: %s", r == DIR_EXISTS ? "an app password of that name exists; revoke it on the "
		"App passwords page or choose another name." : no_password ? "no password could be generated; try again." :
		directory_error(w->dir));
	return false;
}

/* POST /setup/<id>: an app password for the device, shown once as text and QR code. */
void web_setup_password(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	const struct setup_program *p = u ? program_of(site, u, req, resp) : NULL;
	if (!p)
		return;
	struct web_view *v = web_view_new();
	char name[128], pw[APP_PASSWORD_LEN + 1], err[400];
	if (new_app_password(w, u, req, p, name, sizeof(name), pw, sizeof(pw), err, sizeof(err))) {
		struct buf svg;
		buf_init(&svg, QR_SVG_MAX);
		web_view_set(v, "new_name", name);
		web_view_set(v, "new_password", pw);
		if (qr_svg(pw, 6, "QR code of the new app password", &svg))
			web_view_set_html(v, "qr", buf_cstr(&svg));   /* our own markup, from the matrix only */
		OPENSSL_cleanse(svg.data, svg.cap);
		buf_free(&svg);
		snprintf(resp->log_note, sizeof(resp->log_note), "account app-password=created page=setup program=%s", p->id);
	} else
		web_view_set(v, "error", err);
	program_page(site, u, p, v, resp);
	OPENSSL_cleanse(pw, sizeof(pw));
	web_view_free(&v);
}

/* POST /setup/apple/profile: the signed profile for the signed-in address; with
 * with_password=yes a new app password for the device goes into it (and nowhere else:
 * it is not shown, the device keeps it). */
void web_setup_profile(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_app_user(site, w, req, resp, &storage);
	if (!u)
		return;
	const struct setup_program *p = setup_program_find("iphone");
	char want[8] = "", name[128], pw[APP_PASSWORD_LEN + 1] = "", err[400], address[sizeof(u->address)];
	char domain[DIR_ADDRESS_MAX];
	web_form_field(req, "with_password", want, sizeof(want));
	snprintf(address, sizeof(address), "%s", u->address);
	struct web_view *v = web_view_new();
	struct autoconfig_settings s;
	autoconfig_site_settings(site, &s);
	struct buf plist;
	buf_init(&plist, MOBILECONFIG_MAX);
	bool with = strcmp(want, "yes") == 0;
	if (!autoconfig_address_valid(address, domain, sizeof(domain)))
		web_view_set(v, "error", "No profile: your address cannot be put into a profile (its local part has "
			"characters Apple's profile does not take); set the device up by hand with the settings below.");
	else if (with && !new_app_password(w, u, req, p, name, sizeof(name), pw, sizeof(pw), err, sizeof(err)))
		web_view_set(v, "error", err);
	else if (!mobileconfig_render_password(&s, address, with ? pw : NULL, &plist))
		web_view_set(v, "error", "No profile: this server has no POP3 or no submission listener with TLS to set up "
			"(the administrator adds them: docs/configuration.md, [listener NAME]).");
	else {
		mobileconfig_answer(site, domain, &plist, resp);
		size_t o = strlen(resp->log_note);
		snprintf(resp->log_note + o, sizeof(resp->log_note) - o, " app-password=%s", with ? "created" : "no");
	}
	if (resp->status != 200)   /* not answered with the profile: the page with the words */
		program_page(site, u, p, v, resp);
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(plist.data, plist.cap);
	buf_free(&plist);
	web_view_free(&v);
}
