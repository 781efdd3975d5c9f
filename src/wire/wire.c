/* wire.c - reply lines, enhanced status codes and EHLO keywords (see wire.h). */
#include "wire/wire.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"


/* --- enhanced status codes ----------------------------------------------------------- */

size_t wire_enh_len(const char *p, size_t n)
{
	/* RFC 3463 §2: status-code = class "." subject "." detail; class 2, 4 or 5;
	 * subject and detail 1*3digit. */
	if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return 0;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && ascii_is_digit((unsigned char)p[i]) && i - start < 4)
			i++;
		if (i == start || i - start > 3)
			return 0;
		if (part == 0) {
			if (i >= n || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && (ascii_is_digit((unsigned char)p[i]) || (p[i] == '.' && i + 1 < n && ascii_is_digit((unsigned char)p[i + 1]))))
		return 0;
	return i;
}

bool wire_enh_valid(const char *s)
{
	if (!s)
		return false;
	size_t n = strlen(s);
	return n > 0 && wire_enh_len(s, n) == n;
}

size_t wire_enh_lead(const char *text, char *enh, size_t enhsz)
{
	size_t n = strnlen(text, 32);
	size_t el = wire_enh_len(text, n);
	if (el == 0 || (text[el] != ' ' && text[el] != '\0'))
		return 0;
	if (el < enhsz) {
		memcpy(enh, text, el);
		enh[el] = '\0';
	}
	return el;
}

bool wire_reply_enh(const char *reply, char *enh, size_t enhsz)
{
	int code;
	bool more;
	const char *text;
	if (wire_reply_line(reply, &code, &more, &text))
		return wire_enh_lead(text, enh, enhsz) > 0;
	return wire_enh_lead(reply, enh, enhsz) > 0;
}

/* --- replies --------------------------------------------------------------------------- */

bool wire_reply_line(const char *line, int *code, bool *more, const char **text)
{
	if (line[0] < '2' || line[0] > '5' || !ascii_is_digit((unsigned char)line[1]) || !ascii_is_digit((unsigned char)line[2]) ||
		(line[3] != ' ' && line[3] != '-' && line[3] != '\0'))
		return false;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*more = line[3] == '-';
	*text = line[3] ? line + 4 : "";
	return true;
}

void wire_reply_reset(struct wire_reply *r)
{
	memset(r, 0, sizeof(*r));
}

static void keep_line(struct wire_reply *r, const char *line)
{
	size_t used = strlen(r->lines);
	snprintf(r->lines + used, sizeof(r->lines) - used, "%s%s", used ? "\n" : "", line);
	r->n_lines++;
}

int wire_reply_feed(struct wire_reply *r, const char *line)
{
	keep_line(r, line);
	int code;
	bool more;
	const char *text;
	if (!wire_reply_line(line, &code, &more, &text) || (r->code && code != r->code))
		return -1;
	r->code = code;
	char enh[WIRE_ENH_MAX];
	size_t el = wire_enh_lead(text, enh, sizeof(enh));
	if (el) {
		if (!r->enh[0] && el < sizeof(r->enh))
			memcpy(r->enh, enh, el + 1);
		text += el;
		while (*text == ' ')
			text++;
	}
	size_t have = strlen(r->text);
	if (have && have + 1 < sizeof(r->text))
		r->text[have++] = ' ';
	snprintf(r->text + have, sizeof(r->text) - have, "%s", text);
	r->done = !more;
	return r->done ? 1 : 0;
}

void wire_reply_format(const struct wire_reply *r, char *out, size_t outsz)
{
	snprintf(out, outsz, "%d%s%s %s", r->code, r->enh[0] ? " " : "", r->enh, r->text);
}

/* --- EHLO keywords ------------------------------------------------------------------------ */

static void caps_auth(struct wire_caps *caps, const char *arg, bool standard)
{
	snprintf(caps->auth, sizeof(caps->auth), "%s", arg);
	if (!standard)
		return;
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s", arg);
	for (char *save = NULL, *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (strcasecmp(t, "PLAIN") == 0)
			caps->auth_plain = true;
		else if (strcasecmp(t, "LOGIN") == 0)
			caps->auth_login = true;
	}
}

void wire_caps_line(struct wire_caps *caps, const char *text)
{
	if (strncasecmp(text, "AUTH=", 5) == 0) {
		caps_auth(caps, text + 5, false);
		return;
	}
	char kw[32];
	size_t n = strcspn(text, " ");
	if (n >= sizeof(kw))
		return;
	memcpy(kw, text, n);
	kw[n] = '\0';
	const char *arg = text[n] ? text + n + 1 : "";
	if (strcasecmp(kw, "PIPELINING") == 0)
		caps->pipelining = true;
	else if (strcasecmp(kw, "STARTTLS") == 0)
		caps->starttls = true;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		caps->eightbitmime = true;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
		caps->smtputf8 = true;
	else if (strcasecmp(kw, "CHUNKING") == 0)
		caps->chunking = true;
	else if (strcasecmp(kw, "DSN") == 0)
		caps->dsn = true;
	else if (strcasecmp(kw, "SIZE") == 0) {
		uint64_t v;
		if (parse_u64(arg, strlen(arg), &v))
			caps->size = v;
	} else if (strcasecmp(kw, "AUTH") == 0)
		caps_auth(caps, arg, true);
}
