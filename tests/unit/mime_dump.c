/* mime_dump.c - prints what msg/mime makes of each message file named on the
 * command line: ENVELOPE, BODYSTRUCTURE and BODY, then each section given
 * with -s in doveadm's spelling ("body.1.2.mime", "body.header.fields(to)",
 * "binary.2"), and whether it matches each SEARCH given with -q
 * ("body:café"), each as "<name> <length>\n" and the bytes, then "\n".
 * tests/integration/test_mime_oracle.py compares them with Dovecot's answer
 * for the same Maildir (doveadm fetch). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg/mime.h"
#include "util/buf.h"

static void emit(const char *name, const struct buf *b)
{
	printf("%s %zu\n", name, b->len);
	fwrite(b->data ? b->data : "", 1, b->len, stdout);
	printf("\n");
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *p = malloc(cap);
	size_t r;
	while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *q = realloc(p, cap *= 2);
			if (!q) {
				free(p);
				p = NULL;
			}
			p = q;
		}
	}
	fclose(f);
	*len = n;
	return p;
}

/* "body.<n.n...>[.header|.text|.mime|.header.fields(f)|.header.fields.not(f)]" or "binary.<n...>". */
static void dump_section(const struct mime_tree *t, const char *spec)
{
	bool binary = strncmp(spec, "binary.", 7) == 0;
	const char *s = spec + (binary ? 7 : 5);
	uint32_t part[16];
	size_t n = 0;
	while (*s >= '0' && *s <= '9' && n < 16) {
		part[n++] = (uint32_t)strtoul(s, (char **)&s, 10);
		if (*s == '.')
			s++;
	}
	int kind = MIME_SEC_ALL;
	char field[128] = "";
	const char *fields[1] = { field };
	if (strcmp(s, "header") == 0)
		kind = MIME_SEC_HEADER;
	else if (strcmp(s, "text") == 0)
		kind = MIME_SEC_TEXT;
	else if (strcmp(s, "mime") == 0)
		kind = MIME_SEC_MIME;
	else if (sscanf(s, "header.fields.not(%127[^)])", field) == 1)
		kind = MIME_SEC_HEADER_FIELDS_NOT;
	else if (sscanf(s, "header.fields(%127[^)])", field) == 1)
		kind = MIME_SEC_HEADER_FIELDS;
	struct buf b;
	buf_init(&b, 1 << 24);
	if (binary)
		mime_binary(t, part, n, &b);
	else
		mime_section(t, part, n, kind, fields, 1, &b);
	emit(spec, &b);
	buf_free(&b);
}

/* "subject:x", "from:x", "to:x", "cc:x", "body:x", "text:x", "header:name:x",
 * "sentbefore:YYYY-MM-DD", "senton:..", "sentsince:..": does the message match? */
static void dump_search(const struct mime_tree *t, const char *q)
{
	char key[32] = "", arg[256] = "", field[64] = "";
	sscanf(q, "%31[^:]:%255[^\n]", key, arg);
	bool hit = false;
	if (strcmp(key, "body") == 0 || strcmp(key, "text") == 0) {
		hit = mime_text_contains(t, arg, strcmp(key, "text") == 0);
	} else if (strcmp(key, "header") == 0) {
		char needle[256] = "";
		sscanf(arg, "%63[^:]:%255[^\n]", field, needle);
		hit = mime_header_contains(t, field, needle);
	} else if (strncmp(key, "sent", 4) == 0) {
		int y, m, d;
		long zone;
		time_t when = mime_date_tz(t, &zone);
		if (sscanf(arg, "%d-%d-%d", &y, &m, &d) == 3) {
			/* RFC 3501 §6.4.4: the date as written, time and zone disregarded; no
			 * readable Date: is 1970-01-01, as Dovecot compares it. */
			time_t local = when + zone;
			struct tm tm;
			gmtime_r(&local, &tm);
			long have = (tm.tm_year + 1900) * 10000L + (tm.tm_mon + 1) * 100L + tm.tm_mday;
			long want = y * 10000L + m * 100L + d;
			hit = strcmp(key, "sentbefore") == 0 ? have < want : strcmp(key, "senton") == 0 ? have == want :
				have >= want;
		}
	} else {
		hit = mime_header_contains(t, key, arg);
	}
	printf("%s %d\n%s\n", q, 1, hit ? "1" : "0");
}

int main(int argc, char **argv)
{
	const char *specs[64], *queries[64];
	size_t n_specs = 0, n_queries = 0;
	int first = 1;
	while (first + 1 < argc && n_specs < 64 && n_queries < 64) {
		if (strcmp(argv[first], "-s") == 0)
			specs[n_specs++] = argv[first + 1];
		else if (strcmp(argv[first], "-q") == 0)
			queries[n_queries++] = argv[first + 1];
		else
			break;
		first += 2;
	}
	for (int i = first; i < argc; i++) {
		size_t len;
		char *raw = slurp(argv[i], &len);
		if (!raw) {
			fprintf(stderr, "mime_dump: cannot read %s\n", argv[i]);
			return 1;
		}
		struct mime_tree *t = mime_parse(raw, len);
		struct buf b;
		buf_init(&b, 1 << 24);
		mime_envelope(t, &b);
		emit("ENVELOPE", &b);
		buf_reset(&b);
		mime_bodystructure(t, true, &b);
		emit("BODYSTRUCTURE", &b);
		buf_reset(&b);
		mime_bodystructure(t, false, &b);
		emit("BODY", &b);
		buf_free(&b);
		for (size_t k = 0; k < n_specs; k++)
			dump_section(t, specs[k]);
		for (size_t k = 0; k < n_queries; k++)
			dump_search(t, queries[k]);
		mime_free(&t);
		free(raw);
	}
	return 0;
}
