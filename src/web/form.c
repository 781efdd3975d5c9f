/* form.c - the fields of an HTML form POST (see app.h): the body of a request
 * whose Content-Type is application/x-www-form-urlencoded (HTML §4.10.21.7,
 * the WHATWG URL standard's application/x-www-form-urlencoded parser: '&'-separated
 * name=value pairs, '+' for a space, percent escapes), bounded by [http] body_max
 * before it reaches us.  The decoding is net/http.h's query parser, which the
 * transport's fuzzer already drives; a body holding a NUL is refused whole (a
 * field cut at a NUL could mean something else). */
#include "web/app.h"

#include <string.h>
#include <strings.h>

static bool is_form(const struct http_request *r)
{
	const char *ct = http_request_header(r, "Content-Type");
	const char *want = "application/x-www-form-urlencoded";
	size_t n = strlen(want);
	if (!ct || strncasecmp(ct, want, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

bool web_form_field(const struct http_request *r, const char *name, char *out, size_t outsz)
{
	if (outsz)
		out[0] = '\0';
	if (!r->body || !is_form(r) || memchr(r->body, '\0', r->body_len))
		return false;
	struct http_request view = { .query = r->body };
	bool found = http_query_param(&view, name, out, outsz);
	if (!found && outsz)
		out[0] = '\0';   /* a value refused half-way leaves nothing behind */
	return found;
}
