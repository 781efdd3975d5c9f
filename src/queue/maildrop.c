/* maildrop.c - the parser of a maildrop file's envelope (see queue.h): the lines
 * sendmail (cli/sendmail.c) writes in front of a message it leaves while the server
 * is down, read by the server's pickup (serve/local.c).  The file comes from any local user:
 * the parser trusts nothing in it (fuzzed: fuzz_maildrop). */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One envelope line "KEY VALUE\n" of the file's header; false at the empty line. */
static bool header_line(char **p, char *end, char **key, char **value, size_t *len)
{
	char *nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl || nl == *p)
		return false;
	*len = (size_t)(nl - *p) + 1;
	*nl = '\0';
	*key = *p;
	char *sp = strchr(*p, ' ');
	*value = sp ? sp + 1 : nl;
	if (sp)
		*sp = '\0';
	*p = nl + 1;
	return true;
}

/* An address of the envelope: printable, no angle brackets (it goes between them). */
static bool envelope_address(const char *a)
{
	for (const unsigned char *c = (const unsigned char *)a; *c; c++)
		if (*c < 0x20 || *c == 0x7f || *c == '<' || *c == '>')
			return false;
	return strlen(a) < QUEUE_ADDR_MAX;
}

static bool add_rcpt(struct queue_envelope *env, size_t *cap, const char *value)
{
	if (env->n_rcpts == *cap) {
		size_t want = *cap ? *cap * 2 : 8;
		void *n = realloc(env->rcpts, want * sizeof(*env->rcpts));
		if (!n)
			return false;
		env->rcpts = n;
		*cap = want;
	}
	snprintf(env->rcpts[env->n_rcpts++], QUEUE_ADDR_MAX, "%s", value);
	return true;
}

/* The envelope at the start of the file (sendmail's cli/sendmail.c writes it):
 * "POSTERN-MAILDROP 1", then "sender ADDR", "rcpt ADDR"..., "body 8BITMIME|7BIT",
 * then an empty line and the message.  *off: where the message begins. */
bool queue_maildrop_parse(char *h, size_t got, struct queue_envelope *env, off_t *off, char *why, size_t whysz)
{
	size_t magic = strlen(QUEUE_MAILDROP_MAGIC);
	if (got < magic || memcmp(h, QUEUE_MAILDROP_MAGIC, magic) != 0) {
		snprintf(why, whysz, "the file does not begin with \"POSTERN-MAILDROP 1\"");
		return false;
	}
	h[got] = '\0';
	char *p = h + magic, *end = h + got, *key, *value;
	size_t cap = 0, used = magic;
	bool sender = false;
	size_t len;
	while (header_line(&p, end, &key, &value, &len)) {
		used += len;
		if (strcmp(key, "sender") == 0 && envelope_address(value)) {
			snprintf(env->sender, sizeof(env->sender), "%s", value);
			sender = true;
		} else if (strcmp(key, "rcpt") == 0 && envelope_address(value) && value[0]) {
			if (!add_rcpt(env, &cap, value)) {
				snprintf(why, whysz, "out of memory");
				return false;
			}
		} else if (strcmp(key, "body") == 0) {
			env->eightbit = strcasecmp(value, "8BITMIME") == 0;
		} else {
			snprintf(why, whysz, "an envelope line the pickup cannot read: \"%.40s\"", key);
			return false;
		}
	}
	if (p >= end || *p != '\n' || !sender || env->n_rcpts == 0) {
		snprintf(why, whysz, "%s", !sender ? "the envelope has no sender line" : env->n_rcpts == 0 ? "the envelope has no recipient"
			: "the envelope does not end with an empty line");
		return false;
	}
	*off = (off_t)used + 1;
	return true;
}
