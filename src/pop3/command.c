/* command.c - POP3 command lines (RFC 1939 §3: "a case-insensitive keyword, possibly
 * followed by one or more arguments ... separated by a single SPACE").  We accept
 * several spaces or tabs between arguments (liberal in what we accept), never
 * control bytes. */
#include "pop3/command.h"

#include <string.h>

#include "util/parse.h"

static const char *const verb_names[POP3_VERB_COUNT] = {
	[POP3_UNKNOWN] = "?", [POP3_USER] = "USER", [POP3_PASS] = "PASS", [POP3_STAT] = "STAT",
	[POP3_LIST] = "LIST", [POP3_RETR] = "RETR", [POP3_DELE] = "DELE", [POP3_NOOP] = "NOOP",
	[POP3_RSET] = "RSET", [POP3_QUIT] = "QUIT", [POP3_TOP] = "TOP", [POP3_UIDL] = "UIDL",
	[POP3_CAPA] = "CAPA", [POP3_STLS] = "STLS", [POP3_AUTH] = "AUTH", [POP3_APOP] = "APOP",
	[POP3_XCLIENT] = "XCLIENT",
};

const char *pop3_verb_name(enum pop3_verb v)
{
	return (unsigned)v < POP3_VERB_COUNT ? verb_names[v] : "?";
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

enum pop3_command_status pop3_command_parse(const char *line, size_t len, struct pop3_command *out)
{
	memset(out, 0, sizeof(*out));
	out->rest.p = "";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return POP3_CMD_BAD_BYTES;
	}
	size_t start = 0;
	while (start < len && is_space(line[start]))
		start++;
	if (start == len)
		return POP3_CMD_EMPTY;
	size_t v = start;
	while (v < len && !is_space(line[v]))
		v++;
	out->verb_text.p = line + start;
	out->verb_text.n = v - start;
	for (int i = 1; i < POP3_VERB_COUNT; i++) {
		size_t n = strlen(verb_names[i]);
		if (n == out->verb_text.n && ascii_ieq(out->verb_text.p, verb_names[i], n)) {
			out->verb = (enum pop3_verb)i;
			break;
		}
	}
	if (v < len) {
		out->rest.p = line + v + 1;   /* after exactly one separator */
		out->rest.n = len - v - 1;
	}
	size_t i = v;
	for (;;) {
		while (i < len && is_space(line[i]))
			i++;
		if (i == len)
			break;
		size_t a = i;
		while (i < len && !is_space(line[i]))
			i++;
		if (out->n_args == POP3_MAX_ARGS) {
			out->too_many_args = true;
			break;
		}
		out->args[out->n_args].p = line + a;
		out->args[out->n_args].n = i - a;
		out->n_args++;
	}
	return POP3_CMD_OK;
}

bool pop3_parse_number(const struct pop3_span *a, uint64_t *out)
{
	if (a->n == 0 || a->n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (a->p[i] < '0' || a->p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(a->p[i] - '0');
	}
	*out = v;
	return true;
}
