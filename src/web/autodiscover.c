/* autodiscover.c - Microsoft Autodiscover (see autodiscover.h): the strict scanner of
 * the POX request, the outlook response schema with the running server's settings,
 * its error responses, and the v2 JSON answer.
 *
 * The scanner reads XML 1.0 as far as this request needs and refuses the rest: a
 * document type declaration (so no entity can expand: no "billion laughs", no
 * external entity), unknown entity references, unbalanced or over-deep elements,
 * names or text past their bounds, control characters (XML 1.0 §2.2), and anything
 * but white space, comments and processing instructions outside the one root.
 * Names are matched by their local part (after any prefix), as the namespace is
 * the default one in every request seen. */
#include "web/autodiscover.h"

#include <stdio.h>
#include <string.h>
#include <time.h>


#define NAME_MAX_LEN 64

struct scan {
	const char *p, *end;
	char stack[AUTODISCOVER_DEPTH_MAX][NAME_MAX_LEN + 1];   /* qualified names, to match ends */
	size_t depth;
	unsigned roots, requests, addresses, schemas;
	struct buf text;                /* the text of the element being read, when captured */
	char *capture;                  /* where that text goes when the element ends */
	size_t capture_sz;
	struct autodiscover_request *out;
};

static bool fail(struct scan *s, const char *why)
{
	snprintf(s->out->error, sizeof s->out->error, "%s", why);
	return false;
}

static bool starts(const struct scan *s, const char *lit)
{
	size_t n = strlen(lit);
	return (size_t)(s->end - s->p) >= n && memcmp(s->p, lit, n) == 0;
}

/* Skip past the next `lit`; false when it never comes. */
static bool skip_past(struct scan *s, const char *lit)
{
	size_t n = strlen(lit);
	for (const char *q = s->p; (size_t)(s->end - q) >= n; q++)
		if (memcmp(q, lit, n) == 0) {
			s->p = q + n;
			return true;
		}
	return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void skip_space(struct scan *s)
{
	while (s->p < s->end && is_space(*s->p))
		s->p++;
}

static bool name_char(unsigned char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':')
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* An element or attribute name (ASCII only: every name of this schema is). */
static bool read_name(struct scan *s, char *out)
{
	size_t n = 0;
	while (s->p < s->end && name_char((unsigned char)*s->p, n == 0)) {
		if (n == NAME_MAX_LEN)
			return fail(s, "an element or attribute name is longer than 64 characters");
		out[n++] = *s->p++;
	}
	out[n] = '\0';
	return n > 0 || fail(s, "a '<' is not followed by a name");
}

static const char *local_name(const char *qname)
{
	const char *c = strrchr(qname, ':');
	return c ? c + 1 : qname;
}

/* Append one code point as UTF-8 (XML 1.0 §2.2 Char). */
static bool append_code_point(struct scan *s, unsigned long cp)
{
	if (cp == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
		(cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF || cp > 0x10FFFF)
		return fail(s, "a character reference names a character XML does not allow");
	char u[4];
	size_t n;
	if (cp < 0x80) { u[0] = (char)cp; n = 1; }
	else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
	else if (cp < 0x10000) { u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F)); n = 3; }
	else { u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4; }
	if (s->capture)
		buf_append(&s->text, u, n);
	return true;
}

/* After '&': a predefined entity (XML 1.0 §4.6) or a character reference (§4.1). */
static bool read_reference(struct scan *s)
{
	char ref[12];
	size_t n = 0;
	while (s->p < s->end && (name_char((unsigned char)*s->p, false) || *s->p == '#')) {
		if (n == sizeof ref - 1)
			return fail(s, "an '&' does not start a known entity or character reference");
		ref[n++] = *s->p++;
	}
	if (s->p == s->end || *s->p != ';')
		return fail(s, "an entity reference has no ';'");
	s->p++;
	ref[n] = '\0';
	static const struct { const char *name; char c; } predefined[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' } };
	for (size_t i = 0; i < sizeof predefined / sizeof predefined[0]; i++)
		if (strcmp(ref, predefined[i].name) == 0)
			return append_code_point(s, (unsigned char)predefined[i].c);
	if (ref[0] != '#' || ref[1] == '\0')
		return fail(s, "an entity other than &amp; &lt; &gt; &quot; &apos; is not accepted (no DTD)");
	bool hex = ref[1] == 'x';
	const char *d = ref + (hex ? 2 : 1);
	unsigned long cp = 0;
	if (*d == '\0')
		return fail(s, "a character reference has no digits");
	for (; *d; d++) {
		unsigned v;
		if (*d >= '0' && *d <= '9') v = (unsigned)(*d - '0');
		else if (hex && *d >= 'a' && *d <= 'f') v = (unsigned)(*d - 'a' + 10);
		else if (hex && *d >= 'A' && *d <= 'F') v = (unsigned)(*d - 'A' + 10);
		else return fail(s, "a character reference has a bad digit");
		cp = cp * (hex ? 16 : 10) + v;
		if (cp > 0x10FFFF)
			return fail(s, "a character reference is out of range");
	}
	return append_code_point(s, cp);
}

/* Character data up to the next '<'. */
static bool read_text(struct scan *s)
{
	while (s->p < s->end && *s->p != '<') {
		unsigned char c = (unsigned char)*s->p;
		if (s->depth == 0 && !is_space((char)c))
			return fail(s, "text outside the Autodiscover element");
		if (c == '&') {
			s->p++;
			if (!read_reference(s))
				return false;
			continue;
		}
		if ((c < 0x20 && !is_space((char)c)) || c == 0x7f)
			return fail(s, "the body holds a control character");
		if (s->capture)
			buf_appendc(&s->text, (char)c);
		s->p++;
	}
	return true;
}

/* Attributes up to '>' or "/>"; their values are checked, not kept. */
static bool read_attributes(struct scan *s, bool *empty)
{
	for (unsigned n = 0; n < 32; n++) {
		skip_space(s);
		if (starts(s, "/>")) { s->p += 2; *empty = true; return true; }
		if (starts(s, ">")) { s->p++; *empty = false; return true; }
		char name[NAME_MAX_LEN + 1];
		if (!read_name(s, name))
			return false;
		skip_space(s);
		if (s->p == s->end || *s->p++ != '=')
			return fail(s, "an attribute has no '='");
		skip_space(s);
		if (s->p == s->end || (*s->p != '"' && *s->p != '\''))
			return fail(s, "an attribute value is not quoted");
		char q = *s->p++;
		while (s->p < s->end && *s->p != q) {
			if (*s->p == '<' || (unsigned char)*s->p < 0x20)
				return fail(s, "an attribute value holds '<' or a control character");
			s->p++;
		}
		if (s->p == s->end)
			return fail(s, "an attribute value does not end");
		s->p++;
	}
	return fail(s, "an element has more than 32 attributes");
}

/* Where the text of the element just opened goes (Autodiscover/Request/X). */
static bool choose_capture(struct scan *s)
{
	const char *name = local_name(s->stack[s->depth - 1]);
	if (s->depth == 1) {
		if (++s->roots > 1 || strcmp(name, "Autodiscover") != 0)
			return fail(s, "the root element is not one Autodiscover");
	} else if (s->depth == 2 && strcmp(name, "Request") == 0) {
		if (++s->requests > 1)
			return fail(s, "more than one Request element");
	} else if (s->capture) {
		return fail(s, "an element inside EMailAddress or AcceptableResponseSchema");
	} else if (s->depth == 3 && strcmp(local_name(s->stack[1]), "Request") == 0) {
		if (strcmp(name, "EMailAddress") == 0) {
			if (++s->addresses > 1)
				return fail(s, "more than one EMailAddress element");
			s->capture = s->out->address;
			s->capture_sz = sizeof s->out->address;
		} else if (strcmp(name, "AcceptableResponseSchema") == 0) {
			if (++s->schemas > 1)
				return fail(s, "more than one AcceptableResponseSchema element");
			s->capture = s->out->schema;
			s->capture_sz = sizeof s->out->schema;
		}
		buf_reset(&s->text);
	}
	return true;
}

/* The captured text, white space trimmed, into its field. */
static bool end_capture(struct scan *s)
{
	const char *t = buf_cstr(&s->text);
	size_t n = s->text.len;
	while (n && is_space(*t)) { t++; n--; }
	while (n && is_space(t[n - 1])) n--;
	if (s->text.truncated || n >= s->capture_sz)
		return fail(s, "EMailAddress or AcceptableResponseSchema is too long");
	if (memchr(t, '\0', n))
		return fail(s, "EMailAddress or AcceptableResponseSchema holds a NUL");
	memcpy(s->capture, t, n);
	s->capture[n] = '\0';
	s->capture = NULL;
	return true;
}

static bool read_start_tag(struct scan *s)
{
	if (s->depth == AUTODISCOVER_DEPTH_MAX)
		return fail(s, "elements nested deeper than 8");
	char *name = s->stack[s->depth];
	if (!read_name(s, name))
		return false;
	bool empty;
	if (!read_attributes(s, &empty))
		return false;
	s->depth++;
	if (!choose_capture(s))
		return false;
	if (empty) {
		s->depth--;
		if (s->capture && !end_capture(s))
			return false;
	}
	return true;
}

static bool read_end_tag(struct scan *s)
{
	char name[NAME_MAX_LEN + 1];
	if (!read_name(s, name))
		return false;
	skip_space(s);
	if (s->p == s->end || *s->p++ != '>')
		return fail(s, "an end tag does not close with '>'");
	if (s->depth == 0 || strcmp(s->stack[s->depth - 1], name) != 0)
		return fail(s, "an end tag does not match its start tag");
	s->depth--;
	return !s->capture || end_capture(s);
}

/* One markup construct after '<'. */
static bool read_markup(struct scan *s)
{
	if (starts(s, "<?")) {
		s->p += 2;
		return skip_past(s, "?>") || fail(s, "a processing instruction does not end");
	}
	if (starts(s, "<!--")) {
		s->p += 4;
		return skip_past(s, "-->") || fail(s, "a comment does not end");
	}
	if (starts(s, "<![CDATA[")) {
		if (s->depth == 0)
			return fail(s, "a CDATA section outside the Autodiscover element");
		const char *from = s->p + 9;
		s->p = from;
		if (!skip_past(s, "]]>"))
			return fail(s, "a CDATA section does not end");
		if (s->capture)
			buf_append(&s->text, from, (size_t)(s->p - 3 - from));
		return true;
	}
	if (starts(s, "<!"))
		return fail(s, "a document type declaration (DTD) is not accepted");
	if (starts(s, "</")) {
		s->p += 2;
		return read_end_tag(s);
	}
	s->p++;
	return read_start_tag(s);
}

bool autodiscover_parse(const char *body, size_t len, struct autodiscover_request *out)
{
	memset(out, 0, sizeof *out);
	struct scan s = { .p = body, .end = body + len, .out = out };
	if (len > AUTODISCOVER_REQUEST_MAX)
		return fail(&s, "the request body is larger than 16 KiB");
	if (len == 0 || !body)
		return fail(&s, "the request has no body (a POST of the Autodiscover request is expected)");
	buf_init(&s.text, AUTOCONFIG_ADDRESS_MAX + AUTODISCOVER_SCHEMA_MAX);
	if (starts(&s, "\xEF\xBB\xBF"))
		s.p += 3;   /* a UTF-8 byte order mark */
	bool ok = true;
	while (ok && s.p < s.end)
		ok = *s.p == '<' ? read_markup(&s) : read_text(&s);
	buf_free(&s.text);
	if (!ok)
		return false;
	if (s.depth != 0)
		return fail(&s, "the body ends inside an element");
	if (s.roots == 0)
		return fail(&s, "the body holds no Autodiscover element");
	return true;
}

/* --- responses ([MS-OXDSCLI] §2.2.4) ------------------------------------------------ */

#define RESPONSE_ROOT "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" \
	"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n" \
	"  <Response xmlns=\"" AUTODISCOVER_OUTLOOK_SCHEMA "\">\n"
#define RESPONSE_END "  </Response>\n</Autodiscover>\n"

/* One Protocol block.  SSL on means "use TLS"; Encryption (when present, it wins over
 * SSL) says which kind: TLS is STARTTLS on the plain port, SSL is implicit TLS.
 * UsePOPAuth: the outgoing server takes the incoming login (the same address and
 * password); SPA off: Postern has no NTLM. */
static void render_protocol(struct buf *out, const char *type, const struct autoconfig_settings *s,
	const struct autoconfig_endpoint *e, const char *address)
{
	buf_printf(out, "      <Protocol>\n        <Type>%s</Type>\n        <Server>", type);
	autoconfig_xml_escape(out, s->hostname);
	buf_printf(out, "</Server>\n        <Port>%u</Port>\n        <LoginName>", e->port);
	autoconfig_xml_escape(out, address);
	buf_appends(out, "</LoginName>\n        <DomainRequired>off</DomainRequired>\n"
		"        <SPA>off</SPA>\n        <SSL>on</SSL>\n");
	if (!e->implicit_tls)
		buf_appends(out, "        <Encryption>TLS</Encryption>\n");
	buf_appends(out, "        <AuthRequired>on</AuthRequired>\n");
	if (e->service == AUTOCONFIG_SUBMISSION)
		buf_appends(out, "        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n");
	buf_appends(out, "      </Protocol>\n");
}

bool autodiscover_render(const struct autoconfig_settings *s, const char *address, struct buf *out)
{
	const struct autoconfig_endpoint *in[AUTOCONFIG_MAX_ENDPOINTS], *sub[AUTOCONFIG_MAX_ENDPOINTS];
	const struct autoconfig_endpoint *imap[AUTOCONFIG_MAX_ENDPOINTS];
	size_t n_in = autoconfig_endpoints(s, AUTOCONFIG_POP3, in, AUTOCONFIG_MAX_ENDPOINTS);
	size_t n_imap = autoconfig_endpoints(s, AUTOCONFIG_IMAP, imap, AUTOCONFIG_MAX_ENDPOINTS);
	size_t n_sub = autoconfig_endpoints(s, AUTOCONFIG_SUBMISSION, sub, AUTOCONFIG_MAX_ENDPOINTS);
	if ((n_in == 0 && n_imap == 0) || n_sub == 0 || !s->hostname[0])
		return false;
	buf_appends(out, RESPONSE_ROOT "    <User>\n      <DisplayName>");
	autoconfig_xml_escape(out, address);
	buf_appends(out, "</DisplayName>\n    </User>\n    <Account>\n      <AccountType>email</AccountType>\n"
		"      <Action>settings</Action>\n");
	for (size_t i = 0; i < n_imap; i++)   /* IMAP first: every device sees the same folders */
		render_protocol(out, "IMAP", s, imap[i], address);
	for (size_t i = 0; i < n_in; i++)
		render_protocol(out, "POP3", s, in[i], address);
	for (size_t i = 0; i < n_sub; i++)
		render_protocol(out, "SMTP", s, sub[i], address);
	buf_appends(out, "    </Account>\n" RESPONSE_END);
	return !out->truncated;
}

void autodiscover_render_error(enum autodiscover_error code, const char *debug, struct buf *out)
{
	const char *message = code == AUTODISCOVER_ERR_NOT_FOUND ? "The e-mail address cannot be found."
		: code == AUTODISCOVER_ERR_NO_PROVIDER ? "Provider is not available" : "Invalid Request";
	/* Time and Id identify the error in the server's log in Exchange; here the time
	 * of day and the seconds since the epoch do. */
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	buf_printf(out, RESPONSE_ROOT "    <Error Time=\"%02d:%02d:%02d\" Id=\"%lld\">\n"
		"      <ErrorCode>%d</ErrorCode>\n      <Message>%s</Message>\n      <DebugData>",
		tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)now, (int)code, message);
	autoconfig_xml_escape(out, debug ? debug : "");
	buf_appends(out, "</DebugData>\n    </Error>\n" RESPONSE_END);
}
