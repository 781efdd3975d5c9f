/* folder_list.c - LIST's picture of a mailbox (RFC 3501 §6.3.8, RFC 3348
 * children, RFC 6154 special use) and the subscriptions file as Dovecot 2.3 writes
 * it: "V\t2\n\n", then one name a line in modified UTF-7 with TAB as the hierarchy
 * separator.  An older file (no "V" line: one name a line, "/" separated) is read
 * too and rewritten in the new form at the next change. */
#include "store/folder_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUBS_FILE "subscriptions"
#define SUBS_FILE_MAX (1u << 20)
#define FOLDERS_MAX 5000   /* names_add is linear: bounded */

struct names {
	char **v;
	size_t n, cap;
};

static bool names_add(struct names *ns, const char *s)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], s) == 0)
			return true;
	if (ns->n >= FOLDERS_MAX)
		return false;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 32;
		char **v = realloc(ns->v, cap * sizeof(char *));
		if (!v)
			return false;
		ns->v = v;
		ns->cap = cap;
	}
	return (ns->v[ns->n] = strdup(s)) != NULL && ++ns->n;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

/* A directory name ".A.B" -> "A/B" in UTF-8; false when it is not a folder name. */
static bool dir_to_name(const char *dir, char *out, size_t outsz)
{
	char tmp[FOLDER_SUB_LEN];
	if (dir[0] != '.' || !dir[1] || dir[1] == '.' || snprintf(tmp, sizeof(tmp), "%s", dir + 1) >= (int)sizeof(tmp))
		return false;
	for (char *p = tmp; *p; p++)
		if (*p == '.')
			*p = '/';
	return folder_mutf7_decode(tmp, out, outsz) && strcasecmp(out, "INBOX") != 0;
}

/* --- subscriptions ----------------------------------------------------------------- */

static void read_subs(const char *root, struct names *out)
{
	char p[FOLDER_SUB_LEN];
	snprintf(p, sizeof(p), "%s/%s", root, SUBS_FILE);
	FILE *fp = fopen(p, "re");
	if (!fp)
		return;
	char line[FOLDER_NAME_MAX * 4 + 8];
	bool v2 = false, first = true;
	size_t total = 0;
	while (fgets(line, sizeof(line), fp) && total < SUBS_FILE_MAX) {
		total += strlen(line);
		line[strcspn(line, "\r\n")] = '\0';
		if (first && strncmp(line, "V\t", 2) == 0) {
			v2 = true;
			first = false;
			continue;
		}
		first = false;
		if (!line[0])
			continue;
		char utf8[FOLDER_NAME_MAX * 4 + 8];
		if (v2) {
			for (char *q = line; *q; q++)
				if (*q == '\t')
					*q = '/';
			if (!folder_mutf7_decode(line, utf8, sizeof(utf8)))
				continue;
		} else {
			snprintf(utf8, sizeof(utf8), "%s", line);
		}
		if (strcasecmp(utf8, "INBOX") == 0)
			snprintf(utf8, sizeof(utf8), "INBOX");
		names_add(out, utf8);
	}
	fclose(fp);
}

static bool write_subs(const char *root, const struct names *ns, char *err, size_t errsz)
{
	size_t cap = 16, n = 0;
	for (size_t i = 0; i < ns->n; i++)
		cap += strlen(ns->v[i]) * 4 + 2;
	char *text = malloc(cap);
	if (!text) {
		snprintf(err, errsz, "out of memory");
		return false;
	}
	n += (size_t)snprintf(text, cap, "V\t2\n\n");
	for (size_t i = 0; i < ns->n; i++) {
		char enc[FOLDER_NAME_MAX * 4 + 8];
		if (!folder_mutf7_encode(ns->v[i], enc, sizeof(enc)))
			continue;
		for (char *q = enc; *q; q++)
			if (*q == '/')
				*q = '\t';
		n += (size_t)snprintf(text + n, cap - n, "%s\n", enc);
	}
	int fd = dotlock_open(root, SUBS_FILE, err, errsz);
	bool ok = fd >= 0 && dotlock_commit(fd, root, SUBS_FILE, text, n, err, errsz);
	free(text);
	return ok;
}

bool folder_subscribe(const char *root, const char *name, bool on, char *err, size_t errsz)
{
	char path[FOLDER_PATH_LEN];
	if (!folder_path(root, name, path, sizeof(path))) {
		snprintf(err, errsz, "\"%s\" cannot be a folder name", name);
		return false;
	}
	const char *canon = strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
	struct names ns = { 0 };
	read_subs(root, &ns);
	size_t at = ns.n;
	for (size_t i = 0; i < ns.n; i++)
		if (strcmp(ns.v[i], canon) == 0)
			at = i;
	bool ok = true;
	if (on && at == ns.n)
		ok = names_add(&ns, canon) && write_subs(root, &ns, err, errsz);
	else if (!on && at < ns.n) {
		free(ns.v[at]);
		ns.v[at] = ns.v[--ns.n];
		ok = write_subs(root, &ns, err, errsz);
	}
	names_free(&ns);
	return ok;
}

/* --- LIST ---------------------------------------------------------------------------- */

static int cmp_info(const void *a, const void *b)
{
	const struct folder_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Every selectable folder, and every parent implied by a child ("A" for "A/B"). */
static void collect(const char *root, struct names *sel, struct names *all)
{
	names_add(sel, "INBOX");
	DIR *d = opendir(root);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char name[FOLDER_NAME_MAX * 4 + 8], cur[FOLDER_SUB_LEN];
		struct stat st;
		if (!dir_to_name(e->d_name, name, sizeof(name)))
			continue;
		snprintf(cur, sizeof(cur), "%s/%s/cur", root, e->d_name);
		if (stat(cur, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		names_add(sel, name);
	}
	closedir(d);
	for (size_t i = 0; i < sel->n; i++) {
		char parent[FOLDER_NAME_MAX * 4 + 8];
		snprintf(parent, sizeof(parent), "%s", sel->v[i]);
		names_add(all, parent);
		for (char *slash; (slash = strrchr(parent, '/')) != NULL;) {
			*slash = '\0';
			names_add(all, parent);
		}
	}
}

bool folder_list(const char *root, struct folder_info **out, size_t *n, char *err, size_t errsz)
{
	struct names sel = { 0 }, all = { 0 }, subs = { 0 };
	collect(root, &sel, &all);
	read_subs(root, &subs);
	for (size_t i = 0; i < subs.n; i++)
		names_add(&all, subs.v[i]);
	*out = calloc(all.n + 1, sizeof(struct folder_info));
	*n = 0;
	if (!*out) {
		snprintf(err, errsz, "out of memory");
		names_free(&sel), names_free(&all), names_free(&subs);
		return false;
	}
	for (size_t i = 0; i < all.n; i++) {
		struct folder_info *fi = &(*out)[(*n)++];
		snprintf(fi->name, sizeof(fi->name), "%s", all.v[i]);
		fi->noselect = true;
		for (size_t k = 0; k < sel.n; k++)
			if (strcmp(sel.v[k], all.v[i]) == 0)
				fi->noselect = false;
		for (size_t k = 0; k < subs.n; k++)
			if (strcmp(subs.v[k], all.v[i]) == 0)
				fi->subscribed = true;
		size_t len = strlen(all.v[i]);
		for (size_t k = 0; k < sel.n && !fi->has_children; k++)
			fi->has_children = strncmp(sel.v[k], all.v[i], len) == 0 && sel.v[k][len] == '/';
		fi->nonexistent = fi->noselect && !fi->has_children;
		fi->special = folder_special_of(all.v[i]);
	}
	qsort(*out, *n, sizeof(struct folder_info), cmp_info);
	names_free(&sel), names_free(&all), names_free(&subs);
	return true;
}
