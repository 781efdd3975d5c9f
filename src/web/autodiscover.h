/* autodiscover.h - Microsoft Autodiscover for Outlook and the programs that copy it.
 *
 * POX ("plain old XML", [MS-OXDSCLI] §2.2.3 and §2.2.4): the client POSTs
 *     <Autodiscover xmlns=".../outlook/requestschema/2006"><Request>
 *       <EMailAddress>user@example.com</EMailAddress>
 *       <AcceptableResponseSchema>.../outlook/responseschema/2006a</AcceptableResponseSchema>
 *     </Request></Autodiscover>
 * to /autodiscover/autodiscover.xml (any case) and gets an Account of type email with
 * one Protocol block per way in (SMTP 465 then 587, POP3 995 then 110), or an Error
 * (600 invalid request, 601 no provider for the schema asked for, 500 address not
 * found).  Autodiscover v2 (/autodiscover/autodiscover.json/v1.0/ADDRESS?Protocol=
 * AutodiscoverV1) answers with the URL of the POX service.
 *
 * The request body is untrusted XML: autodiscover_parse is a strict scanner of this
 * one shape (no DTD, so no entity expansion; bounded depth, text and input; the
 * predefined and numeric character references only), fuzzed by fuzz_autodiscover. */
#ifndef POSTERN_WEB_AUTODISCOVER_H
#define POSTERN_WEB_AUTODISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "web/autoconfig.h"

#define AUTODISCOVER_REQUEST_MAX (16 * 1024)   /* a real request is ~400 octets */
#define AUTODISCOVER_DEPTH_MAX 8
#define AUTODISCOVER_SCHEMA_MAX 256

#define AUTODISCOVER_OUTLOOK_SCHEMA "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

struct autodiscover_request {
	char address[AUTOCONFIG_ADDRESS_MAX + 1];    /* Request/EMailAddress, as sent */
	char schema[AUTODISCOVER_SCHEMA_MAX];        /* Request/AcceptableResponseSchema */
	char error[160];                             /* why the body was refused, in words */
};

/* Parse a POX request body.  False: malformed, too large or too deep, a DTD, an
 * unknown entity, more than one Request (error says which); a well-formed body
 * without EMailAddress parses (address ""), so that the caller can answer 600. */
bool autodiscover_parse(const char *body, size_t len, struct autodiscover_request *out);

/* Error codes of the outlook response schema ([MS-OXDSCLI] §2.2.4.1.1.1.2). */
enum autodiscover_error {
	AUTODISCOVER_ERR_NOT_FOUND = 500,      /* the address is not ours */
	AUTODISCOVER_ERR_INVALID = 600,        /* invalid request */
	AUTODISCOVER_ERR_NO_PROVIDER = 601,    /* no provider for the schema asked for */
};

/* The response for `address` (valid, of a local domain): Account, Action settings,
 * the Protocol blocks.  False when there is no submission or POP3 endpoint. */
bool autodiscover_render(const struct autoconfig_settings *s, const char *address, struct buf *out);
/* An error response; `debug` (may be "") goes in DebugData, escaped. */
void autodiscover_render_error(enum autodiscover_error code, const char *debug, struct buf *out);

/* POST (and GET) /autodiscover/autodiscover.xml. */
void autodiscover_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp);
/* GET /autodiscover/autodiscover.json... (v2). */
void autodiscover_json_handle(const struct web_site *site, struct web_worker *w,
	const struct http_request *req, struct http_response *resp);

#endif
