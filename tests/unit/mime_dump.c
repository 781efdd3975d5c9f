/* mime_dump.c - prints what msg/mime makes of each message file named on the
 * command line: ENVELOPE, BODYSTRUCTURE and BODY, each as "<name> <length>\n"
 * and the bytes, then "\n".  tests/integration/test_mime_oracle.py compares
 * them with Dovecot's answer for the same Maildir (doveadm fetch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
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
		mime_free(&t);
		free(raw);
	}
	return 0;
}
