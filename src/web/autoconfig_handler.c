/* autoconfig_handler.c - the web handler of Thunderbird's autoconfig (autoconfig.h):
 * which domain a request asks about, whether it is ours (local_domains or the
 * directory), and the answer in words when there is no document to give.  Runs on a
 * web worker thread (web/web.h): the directory lookup blocks, never the loop. */
#include "web/autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"
#include "net/http.h"
#include "web/web.h"

#define XML_TYPE "text/xml; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

enum autoconfig_locality autoconfig_domain_locality(const struct web_site *site, struct web_worker *w,
	const char *domain)
{
	if (conf_is_local_domain(site->conf, domain))
		return AUTOCONFIG_LOCAL;
	struct directory *dir = w->dir;
	if (!dir)
		return AUTOCONFIG_UNKNOWN;
	switch (directory_domain_exists(dir, domain)) {
	case DIR_OK: return AUTOCONFIG_LOCAL;
	case DIR_NOT_FOUND: return AUTOCONFIG_NOT_LOCAL;
	default: return AUTOCONFIG_UNKNOWN;
	}
}

void autoconfig_locality_words(const struct web_site *site, enum autoconfig_locality where,
	const char *domain, struct buf *out)
{
	if (where != AUTOCONFIG_NOT_LOCAL) {
		buf_printf(out, "The directory could not be read just now, so whether %s is served here is not "
			"known: try again in a minute.\n", domain);
		return;
	}
	const char *host = site->hostname;
	buf_printf(out, "%s is not a mail domain of this server (%s), so its mail settings are not known here: "
		"they come from the provider of %s. If %s should be served here, add it: "
		"postern domain add %s (or [server] local_domains).\n", domain, host, domain, domain, domain);
}

/* The domain a request without emailaddress asks about: the Host it was sent to
 * (autoconfig.DOMAIN, or DOMAIN itself), else the first of [server] local_domains. */
static bool domain_without_address(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, char *domain, size_t domainsz)
{
	const char *host = req->host ? req->host : "";
	if (strncmp(host, "autoconfig.", 11) == 0)
		host += 11;
	char candidate[DIR_ADDRESS_MAX];
	if (snprintf(candidate, sizeof candidate, "%s", host) < (int)sizeof candidate &&
		directory_domain_valid(candidate) &&
		autoconfig_domain_locality(site, w, candidate) == AUTOCONFIG_LOCAL)
		return snprintf(domain, domainsz, "%s", candidate) < (int)domainsz;
	const struct conf *c = site->conf;
	if (c->n_local_domains == 0)
		return false;
	return snprintf(domain, domainsz, "%s", c->local_domains[0]) < (int)domainsz;
}

/* Does the raw query hold NAME=VALUE with a VALUE (name_eq ends in '=')? */
static bool param_sent(const char *query, const char *name_eq)
{
	size_t n = strlen(name_eq);
	for (const char *p = query ? strstr(query, name_eq) : NULL; p; p = strstr(p + 1, name_eq))
		if ((p == query || p[-1] == '&') && p[n] && p[n] != '&')
			return true;
	return false;
}

static void reply_text(struct http_response *resp, int status, const struct buf *words)
{
	http_response_set(resp, status, TEXT_TYPE, buf_cstr(words), words->len);
}

/* 503 when there is nothing complete to advertise: the words name the listeners. */
static void reply_no_listeners(const struct web_site *site, struct http_response *resp)
{
	struct buf words;
	buf_init(&words, 1024);
	buf_printf(&words, "The mail settings cannot be given: this server (%s) needs a submission listener and a "
		"POP3 listener with TLS to advertise ([listener NAME] with role = submission or pop3 and "
		"tls = implicit or starttls). Listeners on the mx role (port 25) and with tls = none are never "
		"advertised.\n", site->hostname);
	reply_text(resp, 503, &words);
	buf_free(&words);
}

void autoconfig_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp)
{
	char address[AUTOCONFIG_ADDRESS_MAX + 1] = "", domain[DIR_ADDRESS_MAX] = "";
	struct buf b;
	buf_init(&b, AUTOCONFIG_DOCUMENT_MAX);
	bool have = http_query_param(req, "emailaddress", address, sizeof address) && address[0];
	/* sent but not taken (longer than any address): refused, not answered as absent */
	bool sent = have || param_sent(req->query, "emailaddress=");
	if (sent && (!have || !autoconfig_address_valid(address, domain, sizeof domain))) {
		buf_appends(&b, "emailaddress is not a mail address this server can have (local@domain, at most 320 "
			"characters; letters, digits and . _ + - before the @): send the address the user typed.\n");
		reply_text(resp, 400, &b);
	} else if (!have && !domain_without_address(site, w, req, domain, sizeof domain)) {
		buf_appends(&b, "This server has no mail domain to give settings for: add one to [server] "
			"local_domains or with postern domain add.\n");
		reply_text(resp, 404, &b);
	} else {
		snprintf(resp->log_note, sizeof resp->log_note, "autoconfig domain=%.160s", domain);
		struct autoconfig_settings s;
		autoconfig_site_settings(site, &s);
		enum autoconfig_locality where = autoconfig_domain_locality(site, w, domain);
		if (where != AUTOCONFIG_LOCAL) {
			autoconfig_locality_words(site, where, domain, &b);
			reply_text(resp, where == AUTOCONFIG_NOT_LOCAL ? 404 : 503, &b);
		} else if (!autoconfig_render(&s, domain, have ? address : NULL, NULL, 0, &b)) {
			reply_no_listeners(site, resp);
		} else {
			http_response_set(resp, 200, XML_TYPE, b.data, b.len);
		}
	}
	buf_free(&b);
}

void autoconfig_site_settings(const struct web_site *site, struct autoconfig_settings *s)
{
	/* the ports the listeners really bound (serve tells the site: port = 0 in tests) */
	autoconfig_settings_init(s, site->hostname);
	for (size_t i = 0; i < site->n_mail; i++)
		autoconfig_settings_add(s, site->mail[i].role, site->mail[i].tls, site->mail[i].port);
}
