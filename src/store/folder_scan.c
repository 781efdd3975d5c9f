/* folder_scan.c - Maildir names and directories for the folder module: the
 * ":2,<info>" flags (cr.yp.to/proto/maildir.html; letters in ASCII order), keyword
 * letters a-z (Dovecot), new/ -> cur/, listing cur/, the stamps that say whether
 * anything moved, and the process-wide per-folder records. */
#include "store/folder_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/hash.h"

#define SHARED_SLOTS 4096
#define CUR_MAX 8000000u   /* entries of cur/ listed at most */

/* --- names --------------------------------------------------------------------- */

size_t folder_name_main_len(const char *name)
{
	const char *colon = strchr(name, ':');
	return colon ? (size_t)(colon - name) : strlen(name);
}

bool folder_name_field(const char *name, char key, uint64_t *out)
{
	size_t end = folder_name_main_len(name);
	for (size_t i = 0; i + 2 < end; i++) {
		if (name[i] != ',' || name[i + 1] != key || name[i + 2] != '=')
			continue;
		uint64_t v = 0;
		size_t j = i + 3;
		while (j < end && name[j] >= '0' && name[j] <= '9' && v < UINT64_MAX / 10)
			v = v * 10 + (uint64_t)(name[j++] - '0');
		if (j > i + 3 && (j == end || name[j] == ',')) {
			*out = v;
			return true;
		}
	}
	return false;
}

static uint32_t letter_flag(char c)
{
	switch (c) {
	case 'D': return FOLDER_DRAFT;
	case 'F': return FOLDER_FLAGGED;
	case 'R': return FOLDER_ANSWERED;
	case 'S': return FOLDER_SEEN;
	case 'T': return FOLDER_DELETED;
	default: return 0;
	}
}

void folder_info_flags(const char *name, uint32_t *flags, uint64_t *keywords)
{
	*flags = 0;
	*keywords = 0;
	const char *info = strchr(name, ':');
	if (!info || info[1] != '2' || info[2] != ',')
		return;
	for (const char *p = info + 3; *p; p++) {
		if (*p >= 'a' && *p <= 'z')
			*keywords |= 1ull << (*p - 'a');
		else
			*flags |= letter_flag(*p);
	}
}

bool folder_name_with_flags(const char *name, uint32_t flags, uint64_t keywords, char *out, size_t outsz)
{
	size_t main = folder_name_main_len(name);
	bool have[128] = { false };
	const char *info = strchr(name, ':');
	/* Letters we do not manage (P "passed", other experimental ones) stay. */
	if (info && info[1] == '2' && info[2] == ',')
		for (const char *p = info + 3; *p; p++)
			if ((unsigned char)*p < 128 && *p > ' ' && !letter_flag(*p) && !(*p >= 'a' && *p <= 'z'))
				have[(unsigned char)*p] = true;
	static const struct { char c; uint32_t f; } sys[] = {
		{ 'D', FOLDER_DRAFT }, { 'F', FOLDER_FLAGGED }, { 'R', FOLDER_ANSWERED },
		{ 'S', FOLDER_SEEN }, { 'T', FOLDER_DELETED },
	};
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (flags & sys[i].f)
			have[(unsigned char)sys[i].c] = true;
	for (int i = 0; i < 26; i++)
		if (keywords & (1ull << i))
			have['a' + i] = true;
	if (main + 3 >= outsz)
		return false;
	memcpy(out, name, main);
	size_t n = main;
	memcpy(out + n, ":2,", 3);
	n += 3;
	for (int c = 33; c < 127; c++) {   /* ASCII order, as maildir(5) asks */
		if (!have[c])
			continue;
		if (n + 1 >= outsz)
			return false;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return true;
}

int folder_name_order(const char *a, const char *b)
{
	unsigned long long as = strtoull(a, NULL, 10), bs = strtoull(b, NULL, 10);
	if (as != bs)
		return as < bs ? -1 : 1;
	const char *am = strstr(a, ".M"), *bm = strstr(b, ".M");
	unsigned long long au = am ? strtoull(am + 2, NULL, 10) : 0, bu = bm ? strtoull(bm + 2, NULL, 10) : 0;
	if (au != bu)
		return au < bu ? -1 : 1;
	return strcmp(a, b);
}

/* --- stamps -------------------------------------------------------------------- */

void folder_stamp_of(const char *path, struct folder_stamp *st)
{
	struct stat sb;
	memset(st, 0, sizeof(*st));
	if (stat(path, &sb) != 0)
		return;
	st->exists = true;
	st->ino = sb.st_ino;
	st->size = sb.st_size;
	st->mtim = sb.st_mtim;
	st->ctim = sb.st_ctim;
}

bool folder_stamp_same(const struct folder_stamp *a, const struct folder_stamp *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* --- directories ---------------------------------------------------------------- */

size_t folder_move_new(const char *path)
{
	char dir[FOLDER_SUB_LEN];
	snprintf(dir, sizeof(dir), "%s/new", path);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t moved = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char from[FOLDER_SUB_LEN], to[FOLDER_SUB_LEN];
		int a = snprintf(from, sizeof(from), "%s/new/%s", path, e->d_name);
		int b = snprintf(to, sizeof(to), "%s/cur/%s%s", path, e->d_name, strchr(e->d_name, ':') ? "" : ":2,");
		if (a < 0 || (size_t)a >= sizeof(from) || b < 0 || (size_t)b >= sizeof(to))
			continue;
		/* ENOENT: another session or program moved it first. */
		if (rename(from, to) == 0)
			moved++;
	}
	closedir(d);
	if (moved) {
		snprintf(dir, sizeof(dir), "%s/cur", path);
		fileio_fsync_dir(dir);
	}
	return moved;
}

static int cmp_main(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t xl = folder_name_main_len(x), yl = folder_name_main_len(y);
	int c = memcmp(x, y, xl < yl ? xl : yl);
	return c ? c : (xl < yl ? -1 : xl > yl);
}

bool folder_list_cur(const char *path, char ***names, size_t *n, char *err, size_t errsz)
{
	char dir[FOLDER_SUB_LEN];
	snprintf(dir, sizeof(dir), "%s/cur", path);
	*names = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errsz, "cannot list %s: %s", dir, strerror(errno));
		return false;
	}
	size_t cap = 0;
	struct dirent *e;
	bool ok = true;
	while ((e = readdir(d)) != NULL && *n < CUR_MAX) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			char **nn = realloc(*names, cap * sizeof(char *));
			if (!nn) {
				ok = false;
				break;
			}
			*names = nn;
		}
		if (!((*names)[*n] = strdup(e->d_name))) {
			ok = false;
			break;
		}
		(*n)++;
	}
	closedir(d);
	if (!ok) {
		snprintf(err, errsz, "out of memory listing %s", dir);
		folder_free_names(*names, *n);
		*names = NULL;
		*n = 0;
		return false;
	}
	if (*n > 1)
		qsort(*names, *n, sizeof(char *), cmp_main);
	return true;
}

void folder_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* --- the process-wide records ------------------------------------------------------ */

static struct folder_shared shared_slots[SHARED_SLOTS];
static bool shared_used[SHARED_SLOTS];
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

/* Open addressing on the path; a full table hands out the last slot to everyone
 * (more wake-ups, never a missed one). */
struct folder_shared *folder_shared_get(const char *path)
{
	uint32_t h = hash_fnv1a(path) % (SHARED_SLOTS - 1);
	pthread_mutex_lock(&shared_mu);
	struct folder_shared *found = &shared_slots[SHARED_SLOTS - 1];
	for (uint32_t k = 0; k < SHARED_SLOTS - 1; k++) {
		uint32_t i = (h + k) % (SHARED_SLOTS - 1);
		if (!shared_used[i]) {
			shared_used[i] = true;
			snprintf(shared_slots[i].path, sizeof(shared_slots[i].path), "%s", path);
			pthread_mutex_init(&shared_slots[i].mu, NULL);
			atomic_init(&shared_slots[i].counter, 1);
			found = &shared_slots[i];
			break;
		}
		if (strcmp(shared_slots[i].path, path) == 0) {
			found = &shared_slots[i];
			break;
		}
	}
	if (found == &shared_slots[SHARED_SLOTS - 1] && !shared_used[SHARED_SLOTS - 1]) {
		shared_used[SHARED_SLOTS - 1] = true;
		pthread_mutex_init(&found->mu, NULL);
		atomic_init(&found->counter, 1);
	}
	pthread_mutex_unlock(&shared_mu);
	return found;
}

void folder_shared_bump(struct folder_shared *s)
{
	atomic_fetch_add(&s->counter, 1);
}
