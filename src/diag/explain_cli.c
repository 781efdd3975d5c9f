/* explain_cli.c - `postern explain`: what a reply means, its likely causes and fixes;
 * `postern explain --ref REF --log FILE`: the decision behind one of Postern's replies.
 *
 *   postern explain [--json] [--data FILE] "TEXT..."   (or the text on standard input)
 *   postern explain --ref REF --log FILE [--json]
 * Exit status: 0 explained, 3 not recognised ("unknown"), 1 error, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/common.h"
#include "diag/diag.h"
#include "diag/json.h"
#include "diag/reflog.h"

struct explain_opts {
	bool json;
	const char *data;
	const char *ref;
	const char *log;
	char text[EXPLAIN_INPUT_MAX + 1];
	size_t len;
};

static int explain_usage(void)
{
	fprintf(stderr, "usage: postern explain [--json] [--data FILE] \"REPLY TEXT\"   (or the text on stdin)\n"
		"       postern explain --ref REF --log FILE [--json]\n");
	return 2;
}

static void add_text(struct explain_opts *o, const char *s, size_t n)
{
	if (o->len && o->len < EXPLAIN_INPUT_MAX)
		o->text[o->len++] = ' ';
	if (n > EXPLAIN_INPUT_MAX - o->len)
		n = EXPLAIN_INPUT_MAX - o->len;
	memcpy(o->text + o->len, s, n);
	o->len += n;
	o->text[o->len] = '\0';
}

static bool parse_args(struct explain_opts *o, int argc, char **argv)
{
	bool stdin_text = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0)
			o->json = true;
		else if (strcmp(a, "--data") == 0 && i + 1 < argc)
			o->data = argv[++i];
		else if (strcmp(a, "--ref") == 0 && i + 1 < argc)
			o->ref = argv[++i];
		else if (strcmp(a, "--log") == 0 && i + 1 < argc)
			o->log = argv[++i];
		else if (strcmp(a, "-") == 0)
			stdin_text = true;
		else if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++)
				add_text(o, argv[i], strlen(argv[i]));
		} else if (a[0] == '-' && a[1] == '-')
			return false;
		else
			add_text(o, a, strlen(a));
	}
	if (!o->ref && (stdin_text || o->len == 0))
		o->len = fread(o->text, 1, EXPLAIN_INPUT_MAX, stdin);
	o->text[o->len] = '\0';
	return o->ref ? o->log != NULL : true;
}

static void print_json(const struct explain_result *r)
{
	printf("{\"code\": ");
	if (r->code)
		printf("%d", r->code);
	else
		printf("null");
	printf(", \"enhanced\": ");
	json_str(stdout, r->enhanced[0] ? r->enhanced : NULL);
	printf(", \"meaning\": ");
	json_str(stdout, r->meaning);
	printf(", \"causes\": [");
	for (int i = 0; i < r->n_causes; i++) {
		printf(i ? ", " : "");
		diag_cause_json(stdout, r->causes[i]);
	}
	printf("]}\n");
}

static void print_text(const struct explain_result *r)
{
	char code[48];
	snprintf(code, sizeof(code), "%s%s%s", r->code ? "" : "(no reply code)", r->enhanced[0] ? " " : "",
		r->enhanced);
	if (r->code)
		snprintf(code, sizeof(code), "%d%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced);
	printf("Reply:    %s\n", code);
	diag_wrap(stdout, 10, "Meaning:", r->meaning);
	if (!r->known) {
		printf("\nCause: not recognised.\n");
		diag_cause_text(stdout, 0, r->causes[0]);
		return;
	}
	printf("\nLikely causes, most likely first, each with its fix:\n");
	for (int i = 0; i < r->n_causes; i++) {
		printf("\n");
		diag_cause_text(stdout, i + 1, r->causes[i]);
	}
}

int diag_explain_main(int argc, char **argv)
{
	struct explain_opts *o = calloc(1, sizeof(*o));
	if (!o)
		return 1;
	int rc = 2;
	struct explain_kb *kb = NULL;
	if (!parse_args(o, argc, argv))
		rc = explain_usage();
	else if (!diag_load_kb(&kb, o->data))
		rc = 1;
	else if (o->ref)
		rc = reflog_explain(kb, o->ref, o->log, o->json);
	else {
		struct explain_result r;
		explain_match(kb, o->text, o->len, &r);
		if (o->json)
			print_json(&r);
		else
			print_text(&r);
		rc = r.known ? 0 : 3;
	}
	explain_kb_free(&kb);
	free(o);
	return rc;
}
