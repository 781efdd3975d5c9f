/* common.c - knowledge-base loading and output helpers shared by explain and doctor. */
#include "diag/common.h"

#include <string.h>

#include "diag/json.h"

#define WRAP_COLUMNS 78

bool diag_load_kb(struct explain_kb **kb, const char *path)
{
	char found[4096], err[512];
	if (!path) {
		if (!explain_kb_locate(found, sizeof(found))) {
			fprintf(stderr, "postern: cannot find the knowledge base explain.ini: set POSTERN_DATA_DIR "
				"to the directory that holds it (the source tree's data/, or share/postern where installed)\n");
			return false;
		}
		path = found;
	}
	if (!explain_kb_load_file(kb, path, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return false;
	}
	return true;
}

void diag_wrap(FILE *f, int indent, const char *first, const char *text)
{
	int col = fprintf(f, "%-*s", indent, first);
	const char *p = text;
	bool line_empty = true;
	while (*p) {
		p += strspn(p, " \n");
		size_t w = strcspn(p, " \n");
		if (w == 0)
			break;
		if (!line_empty && col + 1 + (int)w > WRAP_COLUMNS) {
			col = fprintf(f, "\n%*s", indent, "") - 1;
			line_empty = true;
		}
		if (!line_empty)
			col += fprintf(f, " ");
		col += fprintf(f, "%.*s", (int)w, p);
		line_empty = false;
		p += w;
	}
	fputc('\n', f);
}

void diag_cause_json(FILE *f, const struct explain_cause *c)
{
	fputs("{\"id\": ", f);
	json_str(f, c->id);
	fputs(", \"words\": ", f);
	json_str(f, c->words);
	fputs(", \"fixes\": [", f);
	for (int i = 0; i < c->n_fixes; i++) {
		fputs(i ? ", " : "", f);
		json_str(f, c->fixes[i]);
	}
	fputs("]}", f);
}

void diag_cause_text(FILE *f, int n, const struct explain_cause *c)
{
	char head[64];
	if (n)
		snprintf(head, sizeof(head), "%d. %s", n, c->id);
	else
		snprintf(head, sizeof(head), "%s", c->id);
	fprintf(f, "%s\n", head);
	diag_wrap(f, 3, "", c->words);
	for (int i = 0; i < c->n_fixes; i++)
		diag_wrap(f, 5, "   -", c->fixes[i]);
}
