/* folder_tree.c - the folders of a mailbox: list, create, delete, rename,
 * subscriptions, the special-use folders (Maildir++ layout, see folder.h). */
#include "store/folder_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"

#define MARKER_FILE "maildirfolder"
#define RENAME_CHILDREN_MAX 10000

enum store_result folder_create(const char *root, const char *name, char *err, size_t errsz)
{
	char path[FOLDER_PATH_LEN], marker[FOLDER_SUB_LEN];
	if (!folder_path(root, name, path, sizeof(path))) {
		snprintf(err, errsz, "\"%s\" cannot be a folder name (no \".\", \"%%\", \"*\", empty parts)", name);
		return STORE_CANNOT;
	}
	if (folder_exists(root, name)) {
		snprintf(err, errsz, "\"%s\" exists already", name);
		return STORE_EXISTS;
	}
	if (!maildir_create(path, err, errsz))
		return STORE_TEMP;
	if (strcmp(path, root) != 0) {
		/* Maildir++: a folder directory says it is one (Courier, Dovecot quota). */
		snprintf(marker, sizeof(marker), "%s/%s", path, MARKER_FILE);
		int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
	return STORE_OK;
}

/* Remove a folder directory: its files, and cur/ new/ tmp/ with theirs (a folder
 * holds nothing deeper; anything unexpected stops the removal). */
static bool remove_tree(const char *path, int depth)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT;
	struct dirent *e;
	bool ok = true;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[FOLDER_SUB_LEN];
		if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p)) {
			ok = false;
			continue;
		}
		struct stat st;
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			ok = depth > 0 && remove_tree(p, depth - 1) && ok;
		else if (unlink(p) != 0 && errno != ENOENT)
			ok = false;
	}
	closedir(d);
	return rmdir(path) == 0 && ok;
}

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

enum store_result folder_delete(const char *root, const char *name, char *err, size_t errsz)
{
	char path[FOLDER_PATH_LEN], gone[FOLDER_SUB_LEN];
	if (is_inbox(name)) {
		snprintf(err, errsz, "INBOX cannot be deleted (RFC 3501 section 6.3.4)");
		return STORE_CANNOT;
	}
	if (!folder_path(root, name, path, sizeof(path)) || !folder_exists(root, name)) {
		snprintf(err, errsz, "no folder \"%s\"", name);
		return STORE_NONEXISTENT;
	}
	/* Out of the listing at once (one rename), then removed. */
	static atomic_uint seq;
	snprintf(gone, sizeof(gone), "%s/tmp/.deleted-%ld-%u", root, (long)getpid(), atomic_fetch_add(&seq, 1));
	if (rename(path, gone) != 0) {
		snprintf(err, errsz, "cannot move %s away: %s", path, strerror(errno));
		return STORE_TEMP;
	}
	fileio_fsync_dir(root);
	folder_shared_bump(folder_shared_get(path));
	if (!remove_tree(gone, 2)) {
		snprintf(err, errsz, "%s left behind: %s", gone, strerror(errno));
		/* The folder is gone for IMAP; only disk space is left to reclaim. */
	}
	return STORE_OK;
}

/* Move every message of INBOX (cur/ and new/) into the folder at dest. */
static enum store_result move_inbox(const char *root, const char *dest, char *err, size_t errsz)
{
	static const char *const subs[] = { "cur", "new" };
	for (size_t k = 0; k < 2; k++) {
		char dir[FOLDER_SUB_LEN];
		snprintf(dir, sizeof(dir), "%s/%s", root, subs[k]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char from[2 * FOLDER_SUB_LEN], to[2 * FOLDER_SUB_LEN];
			snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
			snprintf(to, sizeof(to), "%s/%s/%s", dest, subs[k], e->d_name);
			if (rename(from, to) != 0 && errno != ENOENT) {
				snprintf(err, errsz, "cannot move %s: %s", from, strerror(errno));
				closedir(d);
				return STORE_TEMP;
			}
		}
		closedir(d);
		fileio_fsync_dir(dir);
	}
	return STORE_OK;
}

/* The folder directories whose names begin with prefix (".A." for A's children). */
static size_t child_dirs(const char *root, const char *prefix, char **out, size_t max)
{
	DIR *d = opendir(root);
	size_t n = 0, pl = strlen(prefix);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < max)
		if (strncmp(e->d_name, prefix, pl) == 0 && e->d_name[pl] && (out[n] = strdup(e->d_name)))
			n++;
	closedir(d);
	return n;
}

static enum store_result rename_children(const char *root, const char *from_dir, const char *to_dir, char *err,
	size_t errsz)
{
	char prefix[FOLDER_SUB_LEN];
	snprintf(prefix, sizeof(prefix), "%s.", from_dir);
	char **kids = calloc(RENAME_CHILDREN_MAX, sizeof(char *));
	if (!kids)
		return STORE_TEMP;
	size_t n = child_dirs(root, prefix, kids, RENAME_CHILDREN_MAX);
	enum store_result r = STORE_OK;
	for (size_t i = 0; i < n; i++) {
		char a[FOLDER_SUB_LEN], b[2 * FOLDER_SUB_LEN];
		snprintf(a, sizeof(a), "%s/%s", root, kids[i]);
		snprintf(b, sizeof(b), "%s/%s%s", root, to_dir, kids[i] + strlen(from_dir));
		if (r == STORE_OK && rename(a, b) != 0) {
			snprintf(err, errsz, "cannot rename %s: %s", a, strerror(errno));
			r = STORE_TEMP;
		}
		free(kids[i]);
	}
	free(kids);
	return r;
}

enum store_result folder_rename(const char *root, const char *from, const char *to, char *err, size_t errsz)
{
	char fp[FOLDER_PATH_LEN], tp[FOLDER_PATH_LEN];
	if (!folder_path(root, from, fp, sizeof(fp)) || !folder_path(root, to, tp, sizeof(tp)) || is_inbox(to)) {
		snprintf(err, errsz, "\"%s\" cannot be a folder name", is_inbox(to) ? to : from);
		return STORE_CANNOT;
	}
	size_t fl = strlen(from);
	if (strcmp(from, to) == 0 || (strncmp(to, from, fl) == 0 && to[fl] == '/')) {
		snprintf(err, errsz, "a folder cannot be renamed into itself");
		return STORE_CANNOT;
	}
	if (!folder_exists(root, from)) {
		snprintf(err, errsz, "no folder \"%s\"", from);
		return STORE_NONEXISTENT;
	}
	if (folder_exists(root, to)) {
		snprintf(err, errsz, "\"%s\" exists already", to);
		return STORE_EXISTS;
	}
	enum store_result r;
	if (is_inbox(from)) {
		/* RFC 3501 section 6.3.5: INBOX's messages move, INBOX stays (empty). */
		r = folder_create(root, to, err, errsz);
		if (r == STORE_OK)
			r = move_inbox(root, tp, err, errsz);
		folder_shared_bump(folder_shared_get(fp));
		return r;
	}
	if (rename(fp, tp) != 0) {
		snprintf(err, errsz, "cannot rename %s: %s", fp, strerror(errno));
		return STORE_TEMP;
	}
	r = rename_children(root, strrchr(fp, '/') + 1, strrchr(tp, '/') + 1, err, errsz);
	fileio_fsync_dir(root);
	folder_shared_bump(folder_shared_get(fp));
	return r;
}

void folder_ensure_special(const char *root)
{
	char err[256];
	for (size_t i = 0; folder_special_name(i); i++) {
		const char *name = folder_special_name(i);
		if (folder_create(root, name, err, sizeof(err)) == STORE_OK)
			folder_subscribe(root, name, true, err, sizeof(err));
	}
}

