/* command.c - SMTP command line splitting (RFC 5321 §4.1.1: verb, SP, argument).
 * Verbs are case-insensitive.  We accept a tab or several spaces after the verb
 * (liberal in what we accept), but never control bytes: a command line holding NUL,
 * a bare CR or any other C0 byte except HT is refused as a whole. */
#include "smtp/command.h"

#include <string.h>

#include "util/parse.h"

static const char *const verb_names[SMTP_VERB_COUNT] = {
	[SMTP_UNKNOWN] = "?", [SMTP_HELO] = "HELO", [SMTP_EHLO] = "EHLO", [SMTP_MAIL] = "MAIL",
	[SMTP_RCPT] = "RCPT", [SMTP_DATA] = "DATA", [SMTP_BDAT] = "BDAT", [SMTP_RSET] = "RSET",
	[SMTP_NOOP] = "NOOP", [SMTP_QUIT] = "QUIT", [SMTP_HELP] = "HELP", [SMTP_VRFY] = "VRFY",
	[SMTP_EXPN] = "EXPN", [SMTP_STARTTLS] = "STARTTLS", [SMTP_AUTH] = "AUTH",
	[SMTP_LHLO] = "LHLO", [SMTP_XNODE] = "XNODE",
};

const char *smtp_verb_name(enum smtp_verb v)
{
	return (unsigned)v < SMTP_VERB_COUNT ? verb_names[v] : "?";
}

enum smtp_command_status smtp_command_parse(const char *line, size_t len, struct smtp_command *out)
{
	memset(out, 0, sizeof(*out));
	out->arg = "";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return SMTP_CMD_BAD_BYTES;
	}
	/* Trailing white space is not part of the argument (some clients send it). */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return SMTP_CMD_EMPTY;
	size_t v = 0;
	while (v < len && line[v] != ' ' && line[v] != '\t')
		v++;
	out->verb_text = line;
	out->verb_len = v;
	for (int i = 1; i < SMTP_VERB_COUNT; i++) {
		size_t n = strlen(verb_names[i]);
		if (n == v && ascii_ieq(line, verb_names[i], n)) {
			out->verb = (enum smtp_verb)i;
			break;
		}
	}
	size_t a = v;
	while (a < len && (line[a] == ' ' || line[a] == '\t'))
		a++;
	out->arg = line + a;
	out->arg_len = len - a;
	return SMTP_CMD_OK;
}
