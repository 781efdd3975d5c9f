/* json.c - JSON string escaping (RFC 8259 §7) for the diagnostics' --json output. */
#include "diag/json.h"

/* Length of a valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static int utf8_len(const unsigned char *p)
{
	int n = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 && p[0] < 0xE0 ? 2 : 0;
	if (p[0] >= 0xF5)
		n = 0;
	for (int i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

void json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20 || *p == 0x7F)
			fprintf(f, "\\u%04x", *p);
		else if (*p < 0x80)
			fputc(*p, f);
		else {
			int n = utf8_len(p);
			if (n == 0) {
				fprintf(f, "\\u%04x", 0xFFFD);
				continue;
			}
			fwrite(p, 1, (size_t)n, f);
			p += n - 1;
		}
	}
	fputc('"', f);
}
