/* fuzz_web_template.c - the template engine (web/template.c) on hostile input: the
 * input, split at its first 0xff byte, is a template to parse and a value to show.
 * Parsing either fails with words or gives a template that renders within its
 * bound; and every real page template of data/web/ (loaded once) rendered with the
 * hostile value in every key has exactly as many < > " ' & characters as with a
 * harmless value, less the value's own escapes: no value can open a tag, close an
 * attribute or start an entity. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "web/app.h"

static struct web_templates *pages;
static const char *keys[] = { "title", "hostname", "user_address", "csrf", "flash", "error", "why", "todo", "note",
	"address", "what", "name", "created", "last_used", "new_name", "new_password", "used", "limit", "percent",
	"count", "label", "href", "about", "admin", "legacy", "current", "list_error", "idle_minutes", "full" };
static const char *page_names[] = { "layout", "login", "overview", "app_passwords", "quota", "words" };

static struct web_view *view_with(const char *value)
{
	struct web_view *v = web_view_new();
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		web_view_set(v, keys[k], value);
	for (int i = 0; i < 2; i++) {
		struct web_view *item = web_view_add_item(v, i ? "nav" : "passwords");
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			web_view_set(item, keys[k], value);
		web_view_set(web_view_add_item(v, "pages"), "label", value);
	}
	return v;
}

static void count_specials(const char *s, size_t n, size_t c[5])
{
	memset(c, 0, 5 * sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		switch (s[i]) {
		case '<': c[0]++; break;
		case '>': c[1]++; break;
		case '"': c[2]++; break;
		case '\'': c[3]++; break;
		case '&': c[4]++; break;
		}
}

#define N_PAGES (sizeof(page_names) / sizeof(page_names[0]))
static size_t baseline[2][N_PAGES][5];    /* the counts with "" and with "x" in every key */

static bool count_page(size_t p, const struct web_view *v, size_t c[5])
{
	struct buf b;
	buf_init(&b, 1u << 22);
	bool ok = web_template_render(pages, page_names[p], v, &b);
	count_specials(buf_cstr(&b), b.len, c);
	buf_free(&b);
	return ok;
}

static void check_pages(const char *value)
{
	struct web_view *hostile = view_with(value);
	const size_t (*base)[5] = baseline[value[0] ? 1 : 0];
	for (size_t p = 0; p < N_PAGES; p++) {
		size_t c[5];
		/* every & beyond the harmless page's is an escape the value made */
		if (count_page(p, hostile, c) && (c[0] != base[p][0] || c[1] != base[p][1] || c[2] != base[p][2] ||
			c[3] != base[p][3] || c[4] < base[p][4]))
			__builtin_trap();
	}
	web_view_free(&hostile);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[512];
	pages = web_templates_load(POSTERN_SOURCE_DIR "/data", err, sizeof(err));
	if (!pages) {
		fprintf(stderr, "fuzz_web_template: %s\n", err);
		abort();
	}
	for (int i = 0; i < 2; i++) {
		struct web_view *v = view_with(i ? "x" : "");
		for (size_t p = 0; p < N_PAGES; p++)
			if (!count_page(p, v, baseline[i][p]))
				abort();
		web_view_free(&v);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	const uint8_t *split = memchr(data, 0xff, size);
	size_t tlen = split ? (size_t)(split - data) : size;
	char value[8200];
	size_t vlen = split ? size - tlen - 1 : 0;
	memcpy(value, split ? split + 1 : data, vlen);
	value[vlen] = '\0';
	char err[512];
	struct web_templates *ts = web_templates_from_string("t", (const char *)data, tlen, err, sizeof(err));
	if (ts) {
		struct web_view *v = view_with(value);
		struct buf out;
		buf_init(&out, 1u << 20);
		web_template_render(ts, "t", v, &out);
		if (out.len > out.max)
			__builtin_trap();
		buf_free(&out);
		web_view_free(&v);
		web_templates_free(&ts);
	} else if (!err[0]) {
		__builtin_trap();   /* a refusal always has words */
	}
	check_pages(value);
	return 0;
}
