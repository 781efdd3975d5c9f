/* mobileconfig.h - Apple configuration profiles that set up a mail account on iOS,
 * iPadOS and macOS with the running server's settings (GET
 * /apple/profile.mobileconfig?email=ADDRESS), signed with the server's certificate so
 * the device shows the signer instead of "Not Verified".
 *
 * The settings are autoconfig's (web/autoconfig.h: the submission and POP3 listeners
 * with TLS, implicit TLS first, never mx or tls = none), so every generator tells a
 * mail program the same thing.  The profile is a property list holding one
 * com.apple.mail.managed payload (Apple's Configuration Profile Reference); the
 * signature is CMS SignedData (RFC 5652) in DER with the content encapsulated. */
#ifndef POSTERN_WEB_MOBILECONFIG_H
#define POSTERN_WEB_MOBILECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "util/buf.h"
#include "web/autoconfig.h"

struct web_site;
struct web_worker;
struct http_request;
struct http_response;

#define MOBILECONFIG_MAX (16 * 1024)        /* a profile is about 3 KiB */

/* The profile (plist XML) for `address` (valid, domain lower case: autoconfig_address_valid).
 * PayloadUUID and PayloadIdentifier are derived from a hash of the host name and the
 * address (RFC 9562 §5.8 version 8), so a profile downloaded again replaces the one
 * installed.  false: no submission or no POP3 endpoint to set up, or out is full. */
bool mobileconfig_render(const struct autoconfig_settings *s, const char *address, struct buf *out);
/* The same with `password` (an app password made for the device, NULL: none) as
 * IncomingPassword and OutgoingPassword, so the device asks for nothing. */
bool mobileconfig_render_password(const struct autoconfig_settings *s, const char *address, const char *password,
	struct buf *out);
/* The answer to a profile download: the profile signed when the site holds the
 * certificate's key (unsigned otherwise, and the log note says so), as an attachment
 * named after the domain. */
void mobileconfig_answer(const struct web_site *site, const char *domain, const struct buf *plist,
	struct http_response *resp);

/* Sign p (n octets) with cert and key, the chain included (may be NULL): CMS_sign with
 * CMS_BINARY, DER.  *der is OPENSSL_malloc'd (OPENSSL_free it).  false: nothing signed. */
bool mobileconfig_sign(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, const void *p, size_t n,
	unsigned char **der, size_t *der_len);

/* GET /apple/profile.mobileconfig?email=ADDRESS (web/router.c, service autoconfig):
 * the signed profile (application/x-apple-aspen-config); 400 without a valid address,
 * 404 for a domain that is not ours or without POP3/submission listeners, 503 when the
 * directory cannot say. */
void mobileconfig_handle(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp);

#endif
