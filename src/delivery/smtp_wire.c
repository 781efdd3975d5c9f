/* smtp_wire.c - see smtp_wire.h. */
#include "delivery/smtp_wire.h"

#include <stdio.h>
#include <string.h>

void smtp_wire_init(struct smtp_wire *w, bool dot_stuff)
{
	memset(w, 0, sizeof(*w));
	w->stuff = dot_stuff;
	w->lineno = 1;
}

static void put(struct smtp_wire *w, char **o, const char *p, size_t n)
{
	memcpy(*o, p, n);
	*o += n;
	w->out_size += n;
}

static void end_line(struct smtp_wire *w, char **o)
{
	if (w->failed) {
		if (!w->bad_done)
			w->bad_len = w->in_len;
		w->bad_done = true;
		return;
	}
	w->in_len = 0;
	put(w, o, w->line, w->len);
	put(w, o, "\r\n", 2);
	if (!w->in_body && w->len == 0)
		w->in_body = true;   /* RFC 5322 §2.1: the empty line ends the header */
	w->len = 0;
	w->lineno++;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 §2.2.3: break before the last space or tab that leaves something other than
 * white space on the line before it. */
static bool fold(struct smtp_wire *w, char **o)
{
	if (w->in_body)
		return false;
	size_t first_text = 0;
	while (first_text < w->len && is_wsp(w->line[first_text]))
		first_text++;
	size_t k = w->len;
	while (k > first_text + 1 && !is_wsp(w->line[k - 1]))
		k--;
	if (k <= first_text + 1)
		return false;
	k--;   /* the space itself starts the next line */
	put(w, o, w->line, k);
	put(w, o, "\r\n", 2);
	memmove(w->line, w->line + k, w->len - k);
	w->len -= k;
	return true;
}

static void add(struct smtp_wire *w, char c, char **o)
{
	w->in_len++;
	if (w->failed)
		return;
	if (w->len == 0 && c == '.' && w->stuff)
		w->line[w->len++] = '.';   /* RFC 5321 §4.5.2 */
	if (w->len == SMTP_WIRE_LINE_MAX && !fold(w, o)) {
		w->failed = true;
		w->bad_in_header = !w->in_body;
		w->bad_line = w->lineno;
		return;
	}
	w->line[w->len++] = c;
}

size_t smtp_wire_feed(struct smtp_wire *w, const char *in, size_t n, char *out)
{
	char *o = out;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (w->cr) {
			w->cr = false;
			end_line(w, &o);   /* CR LF, or a bare CR: a line end either way */
			if (c == '\n')
				continue;
		}
		if (c == '\r')
			w->cr = true;
		else if (c == '\n')
			end_line(w, &o);   /* a bare LF */
		else
			add(w, c, &o);
	}
	return w->failed ? 0 : (size_t)(o - out);
}

size_t smtp_wire_finish(struct smtp_wire *w, char *out)
{
	char *o = out;
	if (w->cr || w->len > 0 || (w->failed && !w->bad_done)) {
		w->cr = false;
		end_line(w, &o);
	}
	return w->failed ? 0 : (size_t)(o - out);
}

void smtp_wire_describe(const struct smtp_wire *w, char *out, size_t outsz)
{
	if (w->bad_in_header)
		snprintf(out, outsz, "header line %llu of the message is %llu octets long and has no space to fold it at; "
			"another server need not accept lines over 998 octets (RFC 5321 4.5.3.1.6), so it was not sent: "
			"shorten that header field and send the message again",
			(unsigned long long)w->bad_line, (unsigned long long)w->bad_len);
	else
		snprintf(out, outsz, "line %llu of the message is %llu octets long; another server need not accept lines "
			"over 998 octets (RFC 5321 4.5.3.1.6), so it was not sent, and Postern does not rewrite a message's "
			"content: send it again with lines wrapped (most mail programs do it when the text is sent as "
			"quoted-printable or format=flowed), or put the long text in an attachment",
			(unsigned long long)w->bad_line, (unsigned long long)w->bad_len);
}
