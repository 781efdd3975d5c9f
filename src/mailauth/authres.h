/* authres.h - the Authentication-Results header field (RFC 8601) Postern adds to
 * mail it receives: one field, its authserv-id first, then one resinfo per check
 * ("spf=pass smtp.mailfrom=example.com"), each on its own folded line.  Values are
 * written as RFC 2045 tokens when they can be, as a local-part@domain or domain when
 * they are one (RFC 8601 §2.2 pvalue), and as quoted-strings otherwise; control
 * characters never reach the field.  Pure: builds text, nothing else. */
#ifndef POSTERN_MAILAUTH_AUTHRES_H
#define POSTERN_MAILAUTH_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#define AUTHRES_FIELD_MAX 4096

struct authres {
	char text[AUTHRES_FIELD_MAX];   /* "Authentication-Results: id;\r\n\tspf=pass ..." */
	size_t len;
	size_t n_results;
	bool truncated;                 /* something did not fit: the field is still whole */
	bool none_added;                /* authres_field wrote "none" */
};

/* Start the field with the authserv-id (RFC 8601 §2.5: the server's host name). */
void authres_begin(struct authres *a, const char *authserv_id);
/* A resinfo: method=result, with reason="..." when reason is not NULL or "" and a
 * comment "(...)" when comment is not NULL or "" (§2.2; the comment's parentheses and
 * backslashes are escaped). */
void authres_result(struct authres *a, const char *method, const char *result, const char *reason,
	const char *comment);
/* A property of the last resinfo: ptype.property=value (§2.3: ptypes smtp, header,
 * body, policy).  Nothing when value is NULL or "". */
void authres_prop(struct authres *a, const char *ptype, const char *property, const char *value);
/* The finished field, without a final CRLF: "none" when no result was added (§2.2). */
const char *authres_field(struct authres *a);

/* Write v as an RFC 8601 pvalue into out (token, [local-part]@domain, or a quoted
 * string); bounded, always NUL-terminated.  Returns the length written. */
size_t authres_value(char *out, size_t outsz, const char *v, bool quote_always);

#endif
