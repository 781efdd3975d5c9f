/* router.c - the route table of the listeners of role http and the one function
 * that routes (see web.h): a path no route of this listener's services has gets a
 * 404 naming what the listener serves; a known path asked with another method gets
 * 405 with Allow (RFC 9110 §15.5.6); HEAD is answered as GET without the body (the
 * transport drops it, RFC 9110 §9.3.2); OPTIONS gets 204 with Allow (§9.3.7).
 * Each helper adds its rows to `routes`. */
#include "web/web.h"
#include "web/admin.h"
#include "web/app.h"
#include "web/mobileconfig.h"

#include "web/autoconfig.h"
#include "web/autodiscover.h"
#include "web/user.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct web_route routes[] = {
	{ NULL, "/healthz", 0, "health", web_health },
	/* Thunderbird (draft-ietf-mailmaint-autoconfig §3) and Outlook ([MS-OXDSCLI] §3.1.5) */
	{ NULL, "/mail/config-v1.1.xml", 0, "autoconfig", autoconfig_handle },
	{ NULL, "/.well-known/autoconfig/mail/config-v1.1.xml", 0, "autoconfig", autoconfig_handle },
	{ "POST", "/autodiscover/autodiscover.xml", WEB_NOCASE, "autoconfig", autodiscover_handle },
	{ NULL, "/autodiscover/autodiscover.xml", WEB_NOCASE, "autoconfig", autodiscover_handle },
	{ NULL, "/autodiscover/autodiscover.json", WEB_NOCASE, "autoconfig", autodiscover_json_handle },
	{ NULL, "/autodiscover/autodiscover.json/", WEB_PREFIX | WEB_NOCASE, "autoconfig", autodiscover_json_handle },
	{ NULL, "/metrics", 0, "metrics", web_metrics },
	{ NULL, "/apple/profile.mobileconfig", 0, "autoconfig", mobileconfig_handle },
	{ NULL, "/.well-known/mta-sts.txt", 0, "mta-sts", web_mta_sts },
	/* The account pages (web/app.h; contracts14.md §B, §C) */
	{ NULL, "/login", 0, "account", web_login_page },
	{ "POST", "/login", 0, "account", web_login_post },
	{ "POST", "/logout", 0, "account", web_logout },
	{ NULL, "/", 0, "account", web_overview },
	{ NULL, "/app-passwords", 0, "account", web_app_passwords },
	{ "POST", "/app-passwords", 0, "account", web_app_password_create },
	{ "POST", "/app-passwords/revoke", 0, "account", web_app_password_revoke },
	{ NULL, "/quota", 0, "account", web_quota },
	{ NULL, "/static/", WEB_PREFIX, "account", web_static },
	/* The administrator's pages (web/admin.h) */
	{ NULL, "/admin/queue", 0, "account", web_admin_queue },
	{ NULL, "/admin/queue/", WEB_PREFIX, "account", web_admin_message },
	{ "POST", "/admin/queue/action", 0, "account", web_admin_queue_action },
	{ NULL, "/admin/refusals", 0, "account", web_admin_refusals },
	{ NULL, "/admin/explain/", WEB_PREFIX, "account", web_admin_explain },
	{ NULL, "/admin/throttled", 0, "account", web_admin_throttled },
	{ "POST", "/admin/throttled/unblock", 0, "account", web_admin_unblock },
	/* the user's pages (web/user.h); after autoconfig's /mail/config-v1.1.xml */
	{ NULL, "/mail", 0, "account", web_outgoing_list },
	{ NULL, "/mail/", WEB_PREFIX, "account", web_outgoing_show },
	{ NULL, "/setup", 0, "account", web_setup_index },
	{ "POST", "/setup/apple/profile", 0, "account", web_setup_profile },
	{ NULL, "/setup/", WEB_PREFIX, "account", web_setup_program },
	{ "POST", "/setup/", WEB_PREFIX, "account", web_setup_password },
	{ NULL, "/test", 0, "account", web_selftest_page },
	{ "POST", "/test", 0, "account", web_selftest_run },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static bool path_matches(const struct web_route *rt, const char *path)
{
	size_t n = strlen(rt->path);
	if (rt->flags & WEB_PREFIX)
		return (rt->flags & WEB_NOCASE) ? strncasecmp(path, rt->path, n) == 0 : strncmp(path, rt->path, n) == 0;
	return (rt->flags & WEB_NOCASE) ? strcasecmp(path, rt->path) == 0 : strcmp(path, rt->path) == 0;
}

static bool method_matches(const struct web_route *rt, const char *method)
{
	if (!rt->method)
		return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	return strcmp(method, rt->method) == 0 || (strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

bool web_route_exists(const char *path)
{
	for (size_t i = 0; i < N_ROUTES; i++)
		if (strcmp(routes[i].path, path) == 0)
			return true;
	return false;
}

static unsigned listener_services(const struct web_site *site, const struct http_request *req)
{
	const struct conf_listener *l = web_site_listener(site, req->listener);
	return l ? l->services : 0;
}


static void add_method(char *out, size_t outsz, const char *m)
{
	if (strstr(out, m))
		return;
	size_t o = strlen(out);
	snprintf(out + o, outsz - o, "%s%s", o ? ", " : "", m);
}

/* The paths this listener serves, for the 404's words. */
static void served_paths(unsigned services, char *out, size_t outsz)
{
	out[0] = '\0';
	for (size_t i = 0; i < N_ROUTES; i++) {
		if (!(services & conf_service_bit(routes[i].service)))
			continue;
		bool listed = false;   /* one path may have a row per method */
		for (size_t j = 0; j < i && !listed; j++)
			listed = strcmp(routes[j].path, routes[i].path) == 0 && (services & conf_service_bit(routes[j].service));
		if (listed)
			continue;
		size_t o = strlen(out);
		snprintf(out + o, outsz - o, "%s%s%s (%s)", o ? ", " : "", routes[i].path,
			(routes[i].flags & WEB_PREFIX) ? "..." : "", routes[i].service);
	}
}

static void not_found(const struct http_request *req, unsigned services, struct http_response *resp)
{
	char names[128], paths[1024];
	conf_service_names(services, names, sizeof(names));
	served_paths(services, paths, sizeof(paths));
	http_response_printf(resp, 404, "text/plain; charset=utf-8",
		"Not found: nothing is served at this path on this listener (%s).\n"
		"It serves %s: %s.\n"
		"Another service needs a listener whose `services` lists it (docs/configuration.md, [listener NAME] of role http).\n",
		req->listener, names[0] ? names : "nothing", paths[0] ? paths : "no paths");
	snprintf(resp->log_note, sizeof(resp->log_note), "no route");
}

void web_handle(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	unsigned services = listener_services(site, req);
	char allow[96] = "";
	bool path_known = false;
	for (size_t i = 0; i < N_ROUTES; i++) {
		const struct web_route *rt = &routes[i];
		if (!(services & conf_service_bit(rt->service)) || !path_matches(rt, req->path))
			continue;
		path_known = true;
		if (method_matches(rt, req->method)) {
			rt->handle(site, w, req, resp);
			return;
		}
		if (rt->method && strcmp(rt->method, "GET") != 0) {
			add_method(allow, sizeof(allow), rt->method);
		} else {
			add_method(allow, sizeof(allow), "GET");
			add_method(allow, sizeof(allow), "HEAD");
		}
	}
	if (!path_known) {
		not_found(req, services, resp);
		return;
	}
	add_method(allow, sizeof(allow), "OPTIONS");
	http_response_header(resp, "Allow", allow);
	if (strcmp(req->method, "OPTIONS") == 0) {
		http_response_set(resp, 204, "", "", 0);
		return;
	}
	http_response_printf(resp, 405, "text/plain; charset=utf-8",
		"Method not allowed: %s is not answered at %s; allowed: %s.\n", req->method, req->path, allow);
	snprintf(resp->log_note, sizeof(resp->log_note), "method not allowed");
}
