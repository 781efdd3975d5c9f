/* autoconfig.h - what Postern tells mail programs that set themselves up.
 *
 * A user types an address and a password; the mail program asks the web listener how
 * to reach the server.  The answer must be the running server's own settings, because
 * a guess (Thunderbird's second guess is port 25 with STARTTLS) ends at a server that
 * refuses to relay without a login.  This module holds the settings as the listeners
 * give them (`struct autoconfig_settings`: host name, each submission and POP3 port
 * with its TLS, ordered as a client should try them), the XML text escaping every
 * generator here shares, and Thunderbird's config-v1.1 document
 * (draft-ietf-mailmaint-autoconfig; served at /mail/config-v1.1.xml and
 * /.well-known/autoconfig/mail/config-v1.1.xml).  Autodiscover (web/autodiscover.h)
 * renders the same settings in Microsoft's shapes.
 *
 * Never advertised: an mx listener (port 25 refuses to relay without a login, and
 * logins there are refused), and a listener with tls = none (a password would cross
 * the network in the clear). */
#ifndef POSTERN_WEB_AUTOCONFIG_H
#define POSTERN_WEB_AUTOCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "util/buf.h"

struct web_site;
struct web_worker;
struct http_request;
struct http_response;

#define AUTOCONFIG_MAX_ENDPOINTS CONF_MAX_LISTENERS
#define AUTOCONFIG_ADDRESS_MAX 320      /* RFC 5321 §4.5.3.1: 64 + 1 + 255 */
#define AUTOCONFIG_DOCUMENT_MAX (64 * 1024)

enum autoconfig_service { AUTOCONFIG_SUBMISSION, AUTOCONFIG_POP3, AUTOCONFIG_IMAP };

/* One port a mail program may use: implicit TLS (465, 995) or STARTTLS (587, 110). */
struct autoconfig_endpoint {
	enum autoconfig_service service;
	unsigned port;
	bool implicit_tls;
};

struct autoconfig_settings {
	char hostname[CONF_NAME_MAX];   /* [server] hostname: the name the certificate is for */
	struct autoconfig_endpoint endpoints[AUTOCONFIG_MAX_ENDPOINTS];
	size_t n_endpoints;
};

/* Start empty with the host name. */
void autoconfig_settings_init(struct autoconfig_settings *s, const char *hostname);
/* Add one listener (role, tls, the port it is bound to).  Roles other than submission
 * and pop3, tls = none and port 0 are left out; returns whether it was added. */
bool autoconfig_settings_add(struct autoconfig_settings *s, enum listener_role role,
	enum tls_mode tls, unsigned port);
/* Every listener of the configuration, with its configured port (tests and callers
 * that know the bound ports use autoconfig_settings_add). */
void autoconfig_settings_from_conf(struct autoconfig_settings *s, const struct conf *c);
/* The endpoints of one service in the order a client should try them: implicit TLS
 * first (RFC 8314 §3.3 prefers it for submission; §3.1 for POP3), then STARTTLS;
 * within each, the listed order.  Returns the count written into out (at most max). */
size_t autoconfig_endpoints(const struct autoconfig_settings *s, enum autoconfig_service service,
	const struct autoconfig_endpoint **out, size_t max);

/* Append text escaped for XML character data and attribute values (& < > " '); bytes
 * that XML 1.0 §2.2 does not allow (controls other than TAB, LF, CR) are left out. */
bool autoconfig_xml_escape(struct buf *b, const char *s);

/* A mail address a client sent: local@domain, at most 320 octets, no controls, spaces,
 * angle brackets or quotes; the domain a valid host name.  On success the domain part
 * (lower case) is copied to domain (size DIR_ADDRESS_MAX) and the address's domain
 * lower-cased in place. */
bool autoconfig_address_valid(char *address, char *domain, size_t domainsz);

/* Thunderbird's config-v1.1 document for `domain` (lower case); `address` NULL or ""
 * writes the placeholder %EMAILADDRESS% that the client fills in itself.  `domains`
 * (n of them, may be 0) are listed as further <domain> elements of the provider. */
bool autoconfig_render(const struct autoconfig_settings *s, const char *domain, const char *address,
	const char *const *domains, size_t n_domains, struct buf *out);

/* --- on a web worker thread (web/web.h) ---------------------------------------- */

/* The settings the site advertises: its host name and mail listeners (bound ports). */
void autoconfig_site_settings(const struct web_site *site, struct autoconfig_settings *s);

enum autoconfig_locality { AUTOCONFIG_LOCAL, AUTOCONFIG_NOT_LOCAL, AUTOCONFIG_UNKNOWN /* directory error */ };
/* Is `domain` (lower case) one of ours: [server] local_domains or the directory's? */
enum autoconfig_locality autoconfig_domain_locality(const struct web_site *site, struct web_worker *w,
	const char *domain);
/* Why a domain's settings cannot be given, for every document that answers for a
 * domain (autoconfig, Autodiscover, the Apple profile): AUTOCONFIG_NOT_LOCAL, another
 * provider's domain (a 404) and how to serve it here; AUTOCONFIG_UNKNOWN, the directory
 * could not be read (a 503).  Appended to out as one or two sentences and a LF. */
void autoconfig_locality_words(const struct web_site *site, enum autoconfig_locality where,
	const char *domain, struct buf *out);

/* GET /mail/config-v1.1.xml and /.well-known/autoconfig/mail/config-v1.1.xml. */
void autoconfig_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp);

#endif
