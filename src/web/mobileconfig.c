/* mobileconfig.c - the Apple configuration profile and its signature (see
 * mobileconfig.h).
 *
 * The plist (Apple's "Configuration Profile Reference"): a top-level payload of type
 * Configuration whose PayloadContent holds one com.apple.mail.managed dictionary:
 * EmailAccountType EmailTypePOP (IMAP once Postern serves it), the incoming and the
 * outgoing host, port and UseSSL, EmailAuthPassword for both, the full address as user
 * name (what Postern's logins take), OutgoingPasswordSameAsIncomingPassword so the
 * user types the password once.  The ports are the first of autoconfig's order:
 * implicit TLS (995, 465: RFC 8314 §3) before STARTTLS (110, 587); UseSSL is true for
 * both kinds (on a STARTTLS port the device upgrades the connection), so a password
 * never crosses the network in the clear.  Never port 25.
 *
 * The signature: CMS SignedData with the profile encapsulated (iOS reads the content
 * from the signature), CMS_BINARY so the octets are signed as they are (no MIME
 * canonicalisation of line ends), the chain included so the device can build the path
 * to a root it trusts.
 *
 * The handler (a web worker thread): ?email= must be an address in a local domain
 * (404 in words otherwise; whether the user exists is not said); the settings are the
 * site's mail listeners as bound; signed with the certificate and key struct web_site
 * read at start before the privilege drop (without them the profile goes unsigned and
 * the event=http line says so).  The address itself is not logged, only its domain. */
#include "web/mobileconfig.h"

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "directory/directory.h"
#include "web/web.h"

static void key_string(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, "\t<key>%s</key>\n\t<string>", key);
	autoconfig_xml_escape(b, value);
	buf_appends(b, "</string>\n");
}

static void key_int(struct buf *b, const char *key, unsigned value)
{
	buf_printf(b, "\t<key>%s</key>\n\t<integer>%u</integer>\n", key, value);
}

static void key_bool(struct buf *b, const char *key, bool value)
{
	buf_printf(b, "\t<key>%s</key>\n\t<%s/>\n", key, value ? "true" : "false");
}

/* A UUID from a hash (RFC 9562 §5.8, version 8: the first 128 bits of the SHA-256 of
 * the label, the host name and the address, version and variant bits set): the same
 * address gets the same UUID on every download, another address another one. */
static bool stable_uuid(const char *label, const char *host, const char *address, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		EVP_DigestUpdate(ctx, label, strlen(label) + 1) && EVP_DigestUpdate(ctx, host, strlen(host) + 1) &&
		EVP_DigestUpdate(ctx, address, strlen(address)) && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return false;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);   /* version 8 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);   /* variant 10 */
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13],
		md[14], md[15]);
	return true;
}

/* The com.apple.mail.managed dictionary. */
static void mail_payload(struct buf *b, const char *host, const char *address, const char *password,
	const char *uuid, const char *ident, const struct autoconfig_endpoint *in, const struct autoconfig_endpoint *out)
{
	buf_appends(b, "\t<dict>\n");
	key_string(b, "PayloadType", "com.apple.mail.managed");
	key_int(b, "PayloadVersion", 1);
	key_string(b, "PayloadIdentifier", ident);
	key_string(b, "PayloadUUID", uuid);
	key_string(b, "PayloadDisplayName", address);
	key_string(b, "EmailAccountDescription", address);
	key_string(b, "EmailAccountType", in->service == AUTOCONFIG_IMAP ? "EmailTypeIMAP" : "EmailTypePOP");
	key_string(b, "EmailAddress", address);
	key_string(b, "IncomingMailServerHostName", host);
	key_int(b, "IncomingMailServerPortNumber", in->port);
	key_bool(b, "IncomingMailServerUseSSL", true);
	key_string(b, "IncomingMailServerAuthentication", "EmailAuthPassword");
	key_string(b, "IncomingMailServerUsername", address);
	if (password)   /* an app password made for this device: nothing to type */
		key_string(b, "IncomingPassword", password);
	key_string(b, "OutgoingMailServerHostName", host);
	key_int(b, "OutgoingMailServerPortNumber", out->port);
	key_bool(b, "OutgoingMailServerUseSSL", true);
	key_string(b, "OutgoingMailServerAuthentication", "EmailAuthPassword");
	key_string(b, "OutgoingMailServerUsername", address);
	if (password)
		key_string(b, "OutgoingPassword", password);
	key_bool(b, "OutgoingPasswordSameAsIncomingPassword", true);
	buf_appends(b, "\t</dict>\n");
}

bool mobileconfig_render(const struct autoconfig_settings *s, const char *address, struct buf *b)
{
	return mobileconfig_render_password(s, address, NULL, b);
}

bool mobileconfig_render_password(const struct autoconfig_settings *s, const char *address, const char *password,
	struct buf *b)
{
	const struct autoconfig_endpoint *in, *out;
	char uuid[37], inner[37], ident[300], inner_ident[320], words[800];
	if ((autoconfig_endpoints(s, AUTOCONFIG_IMAP, &in, 1) != 1 && autoconfig_endpoints(s, AUTOCONFIG_POP3, &in, 1) != 1) ||
		autoconfig_endpoints(s, AUTOCONFIG_SUBMISSION, &out, 1) != 1)
		return false;   /* IMAP when it is served, else POP3 */
	if (!stable_uuid("postern profile", s->hostname, address, uuid) ||
		!stable_uuid("postern mail payload", s->hostname, address, inner))
		return false;
	/* Reverse-DNS style and unique per address; the UUID stands for the address. */
	snprintf(ident, sizeof(ident), "postern.mail.%.200s.%s", s->hostname, uuid);
	snprintf(inner_ident, sizeof(inner_ident), "%s.account", ident);
	buf_appends(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
		"<plist version=\"1.0\">\n<dict>\n\t<key>PayloadContent</key>\n\t<array>\n");
	mail_payload(b, s->hostname, address, password, inner, inner_ident, in, out);
	buf_appends(b, "\t</array>\n");
	snprintf(words, sizeof(words), "Mail: %s", address);
	key_string(b, "PayloadDisplayName", words);
	snprintf(words, sizeof(words), "Sets up the mail account %s on %s: incoming mail (%s) on port %u, "
		"outgoing mail (SMTP with login) on port %u, both encrypted.", address, s->hostname,
		in->service == AUTOCONFIG_IMAP ? "IMAP" : "POP3", in->port, out->port);
	key_string(b, "PayloadDescription", words);
	key_string(b, "PayloadIdentifier", ident);
	key_string(b, "PayloadOrganization", s->hostname);
	key_string(b, "PayloadType", "Configuration");
	key_string(b, "PayloadUUID", uuid);
	key_int(b, "PayloadVersion", 1);
	key_bool(b, "PayloadRemovalDisallowed", false);
	buf_appends(b, "</dict>\n</plist>\n");
	return !b->truncated;
}

bool mobileconfig_sign(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, const void *p, size_t n,
	unsigned char **der, size_t *der_len)
{
	*der = NULL;
	*der_len = 0;
	if (!cert || !key || n > MOBILECONFIG_MAX)
		return false;
	BIO *in = BIO_new_mem_buf(p, (int)n);
	CMS_ContentInfo *cms = in ? CMS_sign(cert, key, chain, in, CMS_BINARY) : NULL;
	int len = cms ? i2d_CMS_ContentInfo(cms, der) : -1;
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	ERR_clear_error();   /* OpenSSL's error queue is per thread: leave it empty */
	if (len <= 0) {
		OPENSSL_free(*der);
		*der = NULL;
		return false;
	}
	*der_len = (size_t)len;
	return true;
}

/* --- GET /apple/profile.mobileconfig?email=ADDRESS (a web worker thread) ----------- */

static void words(struct http_response *resp, int status, const char *note, const char *text)
{
	http_response_set(resp, status, "text/plain; charset=utf-8", text, strlen(text));
	snprintf(resp->log_note, sizeof(resp->log_note), "mobileconfig %s", note);
}

/* The profile, signed when the site holds the certificate's key (read at start, before
 * the privilege drop); unsigned otherwise, and the log line says so. */
void mobileconfig_answer(const struct web_site *site, const char *domain, const struct buf *plist,
	struct http_response *resp)
{
	unsigned char *der = NULL;
	size_t der_len = 0;
	bool is_signed = mobileconfig_sign(site->certificate, site->key, site->chain, plist->data, plist->len, &der, &der_len);
	if (is_signed)
		http_response_set(resp, 200, "application/x-apple-aspen-config", der, der_len);
	else
		http_response_set(resp, 200, "application/x-apple-aspen-config", plist->data, plist->len);
	OPENSSL_free(der);
	char disposition[DIR_ADDRESS_MAX + 64];
	snprintf(disposition, sizeof(disposition), "attachment; filename=\"%.200s.mobileconfig\"", domain);
	http_response_header(resp, "Content-Disposition", disposition);
	http_response_header(resp, "Cache-Control", "no-store");
	snprintf(resp->log_note, sizeof(resp->log_note), "mobileconfig domain=%.100s signed=%s", domain,
		is_signed ? "yes" : "no");
}

void mobileconfig_handle(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	char address[AUTOCONFIG_ADDRESS_MAX + 1], domain[DIR_ADDRESS_MAX];
	if (!http_query_param(req, "email", address, sizeof(address)) || !address[0]) {
		words(resp, 400, "no address", "A profile needs the mail address it sets up: "
			"/apple/profile.mobileconfig?email=you@example.org\n");
		return;
	}
	if (!autoconfig_address_valid(address, domain, sizeof(domain))) {
		words(resp, 400, "bad address", "The email parameter is not the address of an account here (local@domain; the "
			"local part of letters, digits and . _ + -): give the full address, e.g. ?email=you@example.org\n");
		return;
	}
	enum autoconfig_locality local = autoconfig_domain_locality(site, w, domain);
	if (local != AUTOCONFIG_LOCAL) {
		struct buf why;
		buf_init(&why, 1024);
		buf_appends(&why, "No profile: ");
		autoconfig_locality_words(site, local, domain, &why);   /* the words autoconfig and Autodiscover say */
		bool unknown = local == AUTOCONFIG_UNKNOWN;
		words(resp, unknown ? 503 : 404, unknown ? "directory error" : "not local", buf_cstr(&why));
		buf_free(&why);
		return;
	}
	struct autoconfig_settings s;
	autoconfig_site_settings(site, &s);
	struct buf plist;
	buf_init(&plist, MOBILECONFIG_MAX);
	if (mobileconfig_render(&s, address, &plist))
		mobileconfig_answer(site, domain, &plist, resp);
	else
		words(resp, 404, "no listeners", "No profile: this server has no POP3 or no submission listener with TLS to set up "
			"(the administrator adds them: docs/configuration.md, [listener NAME]).\n");
	buf_free(&plist);
}
