/* autoconfig.c - Thunderbird's config-v1.1 document with the running server's settings
 * (see autoconfig.h), the settings themselves, and the XML escaping shared with
 * autodiscover.c.
 *
 * The format is the one of draft-ietf-mailmaint-autoconfig §4 ("Config file"):
 * <clientConfig version="1.1"> with one <emailProvider id=DOMAIN> holding <domain>,
 * <displayName>, <displayShortName>, the <incomingServer> elements (IMAP first when an
 * imap listener exists, then POP3), then the <outgoingServer> elements, each with hostname,
 * port, socketType (SSL = implicit TLS, STARTTLS), username and authentication.  A
 * client tries the servers of one kind in the listed order (§4.2), so implicit TLS
 * goes first (RFC 8314 §3).  Placeholders (§4.4): %EMAILADDRESS% is the full address,
 * which is what Postern's logins take. */
#include "web/autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"

void autoconfig_settings_init(struct autoconfig_settings *s, const char *hostname)
{
	memset(s, 0, sizeof *s);
	snprintf(s->hostname, sizeof s->hostname, "%s", hostname ? hostname : "");
}

bool autoconfig_settings_add(struct autoconfig_settings *s, enum listener_role role,
	enum tls_mode tls, unsigned port)
{
	enum autoconfig_service service;
	if (role == ROLE_SUBMISSION)
		service = AUTOCONFIG_SUBMISSION;
	else if (role == ROLE_POP3)
		service = AUTOCONFIG_POP3;
	else if (role == ROLE_IMAP)
		service = AUTOCONFIG_IMAP;
	else
		return false;           /* mx (port 25: no relaying, no logins), http, ... */
	if (tls == TLS_NONE || port == 0 || port > 65535 || s->n_endpoints >= AUTOCONFIG_MAX_ENDPOINTS)
		return false;           /* never a password in the clear */
	struct autoconfig_endpoint *e = &s->endpoints[s->n_endpoints++];
	e->service = service;
	e->port = port;
	e->implicit_tls = tls == TLS_IMPLICIT;
	return true;
}

void autoconfig_settings_from_conf(struct autoconfig_settings *s, const struct conf *c)
{
	autoconfig_settings_init(s, c->hostname);
	for (size_t i = 0; i < c->n_listeners; i++)
		autoconfig_settings_add(s, c->listeners[i].role, c->listeners[i].tls, c->listeners[i].port);
}

size_t autoconfig_endpoints(const struct autoconfig_settings *s, enum autoconfig_service service,
	const struct autoconfig_endpoint **out, size_t max)
{
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		bool implicit = pass == 0;
		for (size_t i = 0; i < s->n_endpoints && n < max; i++) {
			const struct autoconfig_endpoint *e = &s->endpoints[i];
			bool seen = false;
			for (size_t j = 0; j < n; j++)
				seen = seen || out[j]->port == e->port;   /* two listeners, one port: once */
			if (e->service == service && e->implicit_tls == implicit && !seen)
				out[n++] = e;
		}
	}
	return n;
}

bool autoconfig_xml_escape(struct buf *b, const char *s)
{
	bool ok = true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&': ok = buf_appends(b, "&amp;") && ok; break;
		case '<': ok = buf_appends(b, "&lt;") && ok; break;
		case '>': ok = buf_appends(b, "&gt;") && ok; break;
		case '"': ok = buf_appends(b, "&quot;") && ok; break;
		case '\'': ok = buf_appends(b, "&apos;") && ok; break;
		default:
			/* XML 1.0 §2.2 Char: no C0 controls but TAB, LF, CR; DEL is allowed
			 * but never wanted here. */
			if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
				break;
			ok = buf_appendc(b, (char)*p) && ok;
		}
	}
	return ok;
}

bool autoconfig_address_valid(char *address, char *domain, size_t domainsz)
{
	size_t n = strlen(address);
	if (n < 3 || n > AUTOCONFIG_ADDRESS_MAX)
		return false;
	char *at = strrchr(address, '@');
	if (!at || at == address || strchr(address, '@') != at)
		return false;
	char local[AUTOCONFIG_ADDRESS_MAX + 1];
	size_t ln = (size_t)(at - address);
	if (ln > 64)                 /* RFC 5321 §4.5.3.1.1 */
		return false;
	memcpy(local, address, ln);
	local[ln] = '\0';
	if (!directory_local_part_valid(local) || !directory_domain_valid(at + 1))
		return false;        /* lower-cases the domain in place */
	return snprintf(domain, domainsz, "%s", at + 1) < (int)domainsz;
}

/* One <incomingServer> or <outgoingServer> element (§4.1.1, §4.1.2). */
static void render_server(struct buf *out, const char *element, const char *type,
	const struct autoconfig_settings *s, const struct autoconfig_endpoint *e, const char *user)
{
	buf_printf(out, "    <%s type=\"%s\">\n      <hostname>", element, type);
	autoconfig_xml_escape(out, s->hostname);
	buf_printf(out, "</hostname>\n      <port>%u</port>\n      <socketType>%s</socketType>\n",
		e->port, e->implicit_tls ? "SSL" : "STARTTLS");
	buf_appends(out, "      <username>");
	autoconfig_xml_escape(out, user);
	/* password-cleartext: the password as typed, inside TLS (SASL PLAIN or LOGIN,
	 * POP3 USER/PASS); Postern offers no challenge-response mechanism. */
	buf_printf(out, "</username>\n      <authentication>password-cleartext</authentication>\n    </%s>\n",
		element);
}

bool autoconfig_render(const struct autoconfig_settings *s, const char *domain, const char *address,
	const char *const *domains, size_t n_domains, struct buf *out)
{
	const struct autoconfig_endpoint *in[AUTOCONFIG_MAX_ENDPOINTS], *sub[AUTOCONFIG_MAX_ENDPOINTS];
	const struct autoconfig_endpoint *imap[AUTOCONFIG_MAX_ENDPOINTS];
	size_t n_in = autoconfig_endpoints(s, AUTOCONFIG_POP3, in, AUTOCONFIG_MAX_ENDPOINTS);
	size_t n_imap = autoconfig_endpoints(s, AUTOCONFIG_IMAP, imap, AUTOCONFIG_MAX_ENDPOINTS);
	size_t n_sub = autoconfig_endpoints(s, AUTOCONFIG_SUBMISSION, sub, AUTOCONFIG_MAX_ENDPOINTS);
	if ((n_in == 0 && n_imap == 0) || n_sub == 0 || !s->hostname[0])
		return false;       /* a document without both would leave the client guessing */
	const char *user = address && address[0] ? address : "%EMAILADDRESS%";
	buf_appends(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!-- The settings of this Postern server, from its listeners. -->\n"
		"<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	autoconfig_xml_escape(out, domain);
	buf_appends(out, "\">\n    <domain>");
	autoconfig_xml_escape(out, domain);
	buf_appends(out, "</domain>\n");
	for (size_t i = 0; i < n_domains; i++) {
		if (strcmp(domains[i], domain) == 0)
			continue;
		buf_appends(out, "    <domain>");
		autoconfig_xml_escape(out, domains[i]);
		buf_appends(out, "</domain>\n");
	}
	buf_appends(out, "    <displayName>");
	autoconfig_xml_escape(out, domain);
	buf_appends(out, " mail</displayName>\n    <displayShortName>");
	autoconfig_xml_escape(out, domain);
	buf_appends(out, "</displayShortName>\n");
	/* IMAP (993 SSL, 143 STARTTLS) goes first: clients prefer the first incoming
	 * server, and IMAP keeps every device in step. */
	for (size_t i = 0; i < n_imap; i++)
		render_server(out, "incomingServer", "imap", s, imap[i], user);
	for (size_t i = 0; i < n_in; i++)
		render_server(out, "incomingServer", "pop3", s, in[i], user);
	for (size_t i = 0; i < n_sub; i++)
		render_server(out, "outgoingServer", "smtp", s, sub[i], user);
	buf_appends(out, "  </emailProvider>\n</clientConfig>\n");
	return !out->truncated;
}
