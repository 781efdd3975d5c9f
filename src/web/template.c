/* template.c - the templates of the account pages (see app.h): data files
 * data/web/NAME.html read once at start and parsed into a tree of nodes (text,
 * {{name}}, {{#each}}, {{#if}}/{{else}}, {{> partial}}); a broken template or a
 * partial that does not exist stops the start with file:line.  Rendering never
 * inserts a view's text unescaped: every {{name}} goes through html_escape unless
 * the C code set that value as HTML it built itself (web_view_set_html).  The
 * static files of the same directory (style.css, app.js) are kept in memory too. */
#include "web/app.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

#define TEMPLATES_MAX 64
#define TEMPLATE_FILE_MAX (256u * 1024u)
#define TEMPLATE_NAME_MAX 64
#define RENDER_DEPTH_MAX 12      /* nesting of partials and blocks at render */
#define PARSE_DEPTH_MAX 32

enum node_kind { N_TEXT, N_VAR, N_EACH, N_IF, N_PARTIAL };

struct node {
	enum node_kind kind;
	const char *text;         /* N_TEXT: into the template's source; others: the name */
	size_t len;
	unsigned line;
	struct node *child;       /* EACH, IF: the block; IF: the then-part */
	struct node *alt;         /* IF: the else-part */
	const struct tmpl *partial;   /* resolved after loading */
	struct node *next;
};

struct tmpl {
	char name[TEMPLATE_NAME_MAX];
	char file[1200];
	char *src;
	struct node *root;
};

struct static_file {
	char name[32];
	char *data;
	size_t len;
};

struct web_templates {
	struct tmpl t[TEMPLATES_MAX];
	size_t n;
	struct static_file statics[2];
	size_t n_static;
};

/* --- parsing --------------------------------------------------------------- */

struct parser {
	struct tmpl *t;
	const char *p, *end;
	unsigned line;
	char *err;
	size_t errsz;
	bool failed;
};

static void parse_error(struct parser *ps, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void parse_error(struct parser *ps, unsigned line, const char *fmt, ...)
{
	if (ps->failed)
		return;
	ps->failed = true;
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errsz, "%s:%u: %s", ps->t->file, line, what);
}

static struct node *node_new(struct parser *ps, enum node_kind k, const char *text, size_t len, unsigned line)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n) {
		parse_error(ps, line, "%s", "out of memory");
		return NULL;
	}
	*n = (struct node){ .kind = k, .text = text, .len = len, .line = line };
	return n;
}

static void nodes_free(struct node *n)
{
	while (n) {
		struct node *next = n->next;
		nodes_free(n->child);
		nodes_free(n->alt);
		free(n);
		n = next;
	}
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* A tag's inside "  #each items " split into its sigil word and its name. */
struct tag {
	enum { TAG_VAR, TAG_EACH, TAG_IF, TAG_ELSE, TAG_END_EACH, TAG_END_IF, TAG_PARTIAL } kind;
	const char *name;
	size_t name_len;
};

static bool tag_read_name(const char *s, const char *e, struct tag *t)
{
	while (s < e && *s == ' ')
		s++;
	while (e > s && e[-1] == ' ')
		e--;
	t->name = s;
	t->name_len = (size_t)(e - s);
	if (t->name_len == 0 || t->name_len >= TEMPLATE_NAME_MAX)
		return false;
	for (const char *q = s; q < e; q++)
		if (!name_char(*q))
			return false;
	return true;
}

static bool tag_parse(const char *s, const char *e, struct tag *t)
{
	while (s < e && *s == ' ')
		s++;
	static const struct { const char *word; int kind; bool named; } words[] = {
		{ "#each ", TAG_EACH, true }, { "#if ", TAG_IF, true }, { "/each", TAG_END_EACH, false },
		{ "/if", TAG_END_IF, false }, { ">", TAG_PARTIAL, true }, { "else", TAG_ELSE, false },
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);
		if ((size_t)(e - s) < n || memcmp(s, words[i].word, n) != 0)
			continue;
		t->kind = words[i].kind;
		if (words[i].named)
			return tag_read_name(s + n, e, t);
		const char *r = s + n;
		while (r < e && *r == ' ')
			r++;
		if (r != e)
			continue;     /* "elsewhere" is a name, not {{else}} */
		return true;
	}
	t->kind = TAG_VAR;
	return tag_read_name(s, e, t);
}

static void count_lines(struct parser *ps, const char *from, const char *to)
{
	for (const char *q = from; q < to; q++)
		if (*q == '\n')
			ps->line++;
}

static struct node *parse_block(struct parser *ps, int depth, struct tag *ended);

/* After {{#each x}} or {{#if x}}: the block up to its end (and an else). */
static void parse_section(struct parser *ps, struct node *n, int depth, bool is_if)
{
	struct tag end = { 0 };
	n->child = parse_block(ps, depth + 1, &end);
	if (ps->failed)
		return;
	if (is_if && end.kind == TAG_ELSE) {
		n->alt = parse_block(ps, depth + 1, &end);
		if (ps->failed)
			return;
		if (end.kind == TAG_ELSE) {
			parse_error(ps, ps->line, "%s", "a second {{else}} in one {{#if}}");
			return;
		}
	}
	char name[TEMPLATE_NAME_MAX];
	snprintf(name, sizeof(name), "%.*s", (int)n->len, n->text);
	if (!end.name)
		parse_error(ps, n->line, is_if ? "{{#if %s}} is not closed: the file ends first (close it with {{/if}})"
			: "{{#each %s}} is not closed: the file ends first (close it with {{/each}})", name);
	else if (end.kind != (is_if ? TAG_END_IF : TAG_END_EACH))
		parse_error(ps, n->line, is_if ? "{{#if %s}} is closed by {{/each}}: close it with {{/if}}"
			: "{{#each %s}} is closed by {{/if}} or has an {{else}}: close it with {{/each}}", name);
}

/* Nodes until the end of the source or a closing tag, which goes into *ended
 * (ended->name NULL at the end of the source). */
static struct node *parse_block(struct parser *ps, int depth, struct tag *ended)
{
	struct node *head = NULL, **tail = &head;
	ended->name = NULL;
	if (depth > PARSE_DEPTH_MAX) {
		parse_error(ps, ps->line, "%s", "blocks nested too deep");
		return NULL;
	}
	while (!ps->failed && ps->p < ps->end) {
		const char *open = memmem(ps->p, (size_t)(ps->end - ps->p), "{{", 2);
		const char *text_end = open ? open : ps->end;
		if (text_end > ps->p) {
			*tail = node_new(ps, N_TEXT, ps->p, (size_t)(text_end - ps->p), ps->line);
			if (*tail)
				tail = &(*tail)->next;
			count_lines(ps, ps->p, text_end);
			ps->p = text_end;
		}
		if (!open)
			break;
		const char *close = memmem(open + 2, (size_t)(ps->end - open - 2), "}}", 2);
		const char *nl = memchr(open + 2, '\n', (size_t)(ps->end - open - 2));
		if (!close || (nl && nl < close)) {
			parse_error(ps, ps->line, "%s", "a tag opened with {{ is not closed by }} on its line");
			break;
		}
		struct tag tg = { 0 };
		if (!tag_parse(open + 2, close, &tg)) {
			char shown[80];
			snprintf(shown, sizeof(shown), "%.*s", (int)(close - open - 2 > 60 ? 60 : close - open - 2), open + 2);
			parse_error(ps, ps->line, "unknown tag {{%s}}: use {{name}}, {{#each name}}, {{#if name}}, {{else}}, "
				"{{/each}}, {{/if}} or {{> partial}} (names: letters, digits, _ - .)", shown);
			break;
		}
		ps->p = close + 2;
		if (tg.kind == TAG_ELSE || tg.kind == TAG_END_EACH || tg.kind == TAG_END_IF) {
			if (depth == 0) {
				parse_error(ps, ps->line, "%s", "a closing tag ({{/each}}, {{/if}} or {{else}}) without its opening tag");
				break;
			}
			*ended = tg;
			ended->name = "end";
			return head;
		}
		enum node_kind k = tg.kind == TAG_EACH ? N_EACH : tg.kind == TAG_IF ? N_IF : tg.kind == TAG_PARTIAL ? N_PARTIAL : N_VAR;
		struct node *n = node_new(ps, k, tg.name, tg.name_len, ps->line);
		if (!n)
			break;
		*tail = n;
		tail = &n->next;
		if (k == N_EACH || k == N_IF)
			parse_section(ps, n, depth, k == N_IF);
	}
	return head;   /* at the end of the source: ended->name stays NULL */
}

/* --- views ----------------------------------------------------------------- */

enum value_kind { V_TEXT, V_HTML, V_LIST };

struct entry {
	char *key;
	enum value_kind kind;
	char *text;
	struct web_view **items;
	size_t n_items, cap_items;
};

struct web_view {
	struct web_view *parent;
	struct entry *e;
	size_t n, cap;
	bool oom;                 /* on the root: something could not be stored */
};

static void view_oom(struct web_view *v)
{
	while (v->parent)
		v = v->parent;
	v->oom = true;
}

bool web_view_failed(const struct web_view *v)
{
	while (v->parent)
		v = v->parent;
	return v->oom;
}

struct web_view *web_view_new(void)
{
	return calloc(1, sizeof(struct web_view));
}

static void entry_clear(struct entry *e)
{
	free(e->text);
	e->text = NULL;
	for (size_t i = 0; i < e->n_items; i++)
		web_view_free(&e->items[i]);
	free(e->items);
	e->items = NULL;
	e->n_items = e->cap_items = 0;
}

void web_view_free(struct web_view **vp)
{
	struct web_view *v = *vp;
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		entry_clear(&v->e[i]);
		free(v->e[i].key);
	}
	free(v->e);
	free(v);
	*vp = NULL;
}

/* The entry of key in v itself, made when absent (cleared when present). */
static struct entry *entry_for(struct web_view *v, const char *key, bool clear)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->e[i].key, key) == 0) {
			if (clear)
				entry_clear(&v->e[i]);
			return &v->e[i];
		}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		struct entry *e = realloc(v->e, cap * sizeof(*e));
		if (!e)
			return NULL;
		v->e = e;
		v->cap = cap;
	}
	struct entry *e = &v->e[v->n];
	*e = (struct entry){ .key = strdup(key) };
	if (!e->key)
		return NULL;
	v->n++;
	return e;
}

static void view_put(struct web_view *v, const char *key, const char *text, enum value_kind k)
{
	if (!v)
		return;
	struct entry *e = entry_for(v, key, true);
	if (!e || !(e->text = strdup(text ? text : ""))) {
		view_oom(v);
		return;
	}
	e->kind = k;
}

void web_view_set(struct web_view *v, const char *key, const char *text)
{
	view_put(v, key, text, V_TEXT);
}

void web_view_set_html(struct web_view *v, const char *key, const char *trusted_html)
{
	view_put(v, key, trusted_html, V_HTML);
}

void web_view_setf(struct web_view *v, const char *key, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (v)
			view_oom(v);
		return;
	}
	view_put(v, key, s, V_TEXT);
	free(s);
}

struct web_view *web_view_add_item(struct web_view *v, const char *list_key)
{
	if (!v)
		return NULL;
	struct entry *e = entry_for(v, list_key, false);
	if (e && e->kind != V_LIST) {
		entry_clear(e);
		e->kind = V_LIST;
	}
	struct web_view *item = e ? web_view_new() : NULL;
	if (item && e->n_items == e->cap_items) {
		size_t cap = e->cap_items ? e->cap_items * 2 : 8;
		struct web_view **items = realloc(e->items, cap * sizeof(*items));
		if (items) {
			e->items = items;
			e->cap_items = cap;
		}
	}
	if (!item || e->n_items == e->cap_items) {
		free(item);
		view_oom(v);
		return NULL;
	}
	item->parent = v;
	e->items[e->n_items++] = item;
	return item;
}

/* The value of name in v or the views around it. */
static const struct entry *view_lookup(const struct web_view *v, const char *name, size_t len)
{
	for (; v; v = v->parent)
		for (size_t i = 0; i < v->n; i++)
			if (strlen(v->e[i].key) == len && memcmp(v->e[i].key, name, len) == 0)
				return &v->e[i];
	return NULL;
}

static bool entry_true(const struct entry *e)
{
	if (!e)
		return false;
	return e->kind == V_LIST ? e->n_items > 0 : e->text && e->text[0];
}

/* --- rendering --------------------------------------------------------------- */

/* HTML-escape text (HTML §13.1.2.6, and quotes for attribute values): & < > " '
 * become references, so no value can open a tag, close an attribute or start an
 * entity. */
static bool html_escape(struct buf *out, const char *s)
{
	bool ok = true;
	for (; *s && ok; s++) {
		switch (*s) {
		case '&': ok = buf_appends(out, "&amp;"); break;
		case '<': ok = buf_appends(out, "&lt;"); break;
		case '>': ok = buf_appends(out, "&gt;"); break;
		case '"': ok = buf_appends(out, "&quot;"); break;
		case '\'': ok = buf_appends(out, "&#39;"); break;
		default: ok = buf_appendc(out, *s); break;
		}
	}
	return ok;
}

static bool render_nodes(const struct node *n, const struct web_view *v, struct buf *out, int depth)
{
	if (depth > RENDER_DEPTH_MAX)
		return false;
	for (; n; n = n->next) {
		const struct entry *e = n->kind == N_TEXT ? NULL : view_lookup(v, n->text, n->len);
		bool ok = true;
		switch (n->kind) {
		case N_TEXT:
			ok = buf_append(out, n->text, n->len);
			break;
		case N_VAR:
			if (e && e->kind == V_HTML)
				ok = buf_appends(out, e->text);
			else if (e && e->kind == V_TEXT)
				ok = html_escape(out, e->text);
			break;
		case N_IF:
			ok = render_nodes(entry_true(e) ? n->child : n->alt, v, out, depth + 1);
			break;
		case N_EACH:
			for (size_t i = 0; ok && e && e->kind == V_LIST && i < e->n_items; i++)
				ok = render_nodes(n->child, e->items[i], out, depth + 1);
			break;
		case N_PARTIAL:
			ok = n->partial && render_nodes(n->partial->root, v, out, depth + 1);
			break;
		}
		if (!ok)
			return false;
	}
	return true;
}

static const struct tmpl *find_template(const struct web_templates *ts, const char *name, size_t len)
{
	for (size_t i = 0; ts && i < ts->n; i++)
		if (strlen(ts->t[i].name) == len && memcmp(ts->t[i].name, name, len) == 0)
			return &ts->t[i];
	return NULL;
}

bool web_template_render(const struct web_templates *ts, const char *name, const struct web_view *v, struct buf *out)
{
	const struct tmpl *t = find_template(ts, name, strlen(name));
	return t && render_nodes(t->root, v, out, 0) && !out->truncated;
}

const char *web_templates_static(const struct web_templates *ts, const char *name, size_t *len)
{
	for (size_t i = 0; ts && i < ts->n_static; i++)
		if (strcmp(ts->statics[i].name, name) == 0) {
			*len = ts->statics[i].len;
			return ts->statics[i].data;
		}
	return NULL;
}

/* --- loading ------------------------------------------------------------------ */

static char *read_small_file(const char *path, size_t *len, char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	char *data = malloc(TEMPLATE_FILE_MAX + 1);
	size_t n = data ? fread(data, 1, TEMPLATE_FILE_MAX + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!data || bad || n > TEMPLATE_FILE_MAX) {
		snprintf(err, errsz, "%s: %s", path, !data ? "out of memory" : bad ? "cannot read" : "larger than 256K");
		free(data);
		return NULL;
	}
	data[n] = '\0';
	if (memchr(data, '\0', n)) {
		snprintf(err, errsz, "%s: holds a NUL byte", path);
		free(data);
		return NULL;
	}
	*len = n;
	return data;
}

static bool load_one(struct web_templates *ts, const char *dir, const char *fname, char *err, size_t errsz)
{
	if (ts->n == TEMPLATES_MAX) {
		snprintf(err, errsz, "%s: more than %d templates", dir, TEMPLATES_MAX);
		return false;
	}
	struct tmpl *t = &ts->t[ts->n];
	size_t nlen = strlen(fname) - 5;   /* ".html" */
	if (nlen == 0 || nlen >= sizeof(t->name)) {
		snprintf(err, errsz, "%s/%s: the name is too long for a template", dir, fname);
		return false;
	}
	snprintf(t->name, sizeof(t->name), "%.*s", (int)nlen, fname);
	snprintf(t->file, sizeof(t->file), "%s/%s", dir, fname);
	size_t len;
	t->src = read_small_file(t->file, &len, err, errsz);
	if (!t->src)
		return false;
	ts->n++;
	struct parser ps = { .t = t, .p = t->src, .end = t->src + len, .line = 1, .err = err, .errsz = errsz };
	struct tag end = { 0 };
	t->root = parse_block(&ps, 0, &end);
	return !ps.failed;
}

/* Every {{> name}} must name a template that exists. */
static bool resolve_partials(const struct web_templates *ts, struct node *n, const struct tmpl *in, char *err, size_t errsz)
{
	for (; n; n = n->next) {
		if (n->kind == N_PARTIAL && !(n->partial = find_template(ts, n->text, n->len))) {
			snprintf(err, errsz, "%s:%u: {{> %.*s}} names no template (no %.*s.html beside it)", in->file, n->line,
				(int)n->len, n->text, (int)n->len, n->text);
			return false;
		}
		if (!resolve_partials(ts, n->child, in, err, errsz) || !resolve_partials(ts, n->alt, in, err, errsz))
			return false;
	}
	return true;
}

static bool load_static(struct web_templates *ts, const char *dir, const char *name, char *err, size_t errsz)
{
	struct static_file *sf = &ts->statics[ts->n_static];
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(sf->name, sizeof(sf->name), "%s", name);
	sf->data = read_small_file(path, &sf->len, err, errsz);
	if (!sf->data)
		return false;
	ts->n_static++;
	return true;
}

struct web_templates *web_templates_load(const char *datadir, char *err, size_t errsz)
{
	char dir[1100];
	snprintf(dir, sizeof(dir), "%s/web", datadir);
	struct web_templates *ts = calloc(1, sizeof(*ts));
	DIR *d = ts ? opendir(dir) : NULL;
	if (!d) {
		snprintf(err, errsz, "%s: %s", dir, ts ? strerror(errno) : "out of memory");
		free(ts);
		return NULL;
	}
	bool ok = true;
	struct dirent *de;
	while (ok && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] != '.' && n > 5 && strcmp(de->d_name + n - 5, ".html") == 0)
			ok = load_one(ts, dir, de->d_name, err, errsz);
	}
	closedir(d);
	for (size_t i = 0; ok && i < ts->n; i++)
		ok = resolve_partials(ts, ts->t[i].root, &ts->t[i], err, errsz);
	ok = ok && load_static(ts, dir, "style.css", err, errsz) && load_static(ts, dir, "app.js", err, errsz);
	if (ok && !find_template(ts, "layout", 6)) {
		snprintf(err, errsz, "%s/layout.html: missing (every page is drawn inside it)", dir);
		ok = false;
	}
	if (!ok)
		web_templates_free(&ts);
	return ts;
}

void web_templates_free(struct web_templates **tsp)
{
	struct web_templates *ts = *tsp;
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++) {
		nodes_free(ts->t[i].root);
		free(ts->t[i].src);
	}
	for (size_t i = 0; i < ts->n_static; i++)
		free(ts->statics[i].data);
	free(ts);
	*tsp = NULL;
}

struct web_templates *web_templates_from_string(const char *name, const char *text, size_t len, char *err, size_t errsz)
{
	struct web_templates *ts = calloc(1, sizeof(*ts));
	char *src = ts ? malloc(len + 1) : NULL;
	if (!src || strlen(name) >= TEMPLATE_NAME_MAX || memchr(text, '\0', len)) {
		snprintf(err, errsz, "%s", !src ? "out of memory" : "a bad name or a NUL byte");
		free(src);
		free(ts);
		return NULL;
	}
	memcpy(src, text, len);
	src[len] = '\0';
	struct tmpl *t = &ts->t[ts->n++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->file, sizeof(t->file), "(%s)", name);
	t->src = src;
	struct parser ps = { .t = t, .p = src, .end = src + len, .line = 1, .err = err, .errsz = errsz };
	struct tag end = { 0 };
	t->root = parse_block(&ps, 0, &end);
	if (ps.failed || !resolve_partials(ts, t->root, t, err, errsz))
		web_templates_free(&ts);
	return ts;
}

bool web_templates_locate(char *dir, size_t dirsz)
{
	const char *env = getenv("POSTERN_DATA_DIR");
	/* POSTERN_SOURCE_DIR is "" in a package (meson -Dsource_data=false) */
	const char *dirs[] = { env && *env ? env : NULL, POSTERN_SOURCE_DIR[0] ? POSTERN_SOURCE_DIR "/data" : NULL, POSTERN_DATADIR };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char probe[1200];
		if (!dirs[i] || snprintf(probe, sizeof(probe), "%s/web/layout.html", dirs[i]) >= (int)sizeof(probe))
			continue;
		if (access(probe, R_OK) == 0 && snprintf(dir, dirsz, "%s", dirs[i]) < (int)dirsz)
			return true;
	}
	return false;
}
