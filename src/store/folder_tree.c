/* folder_tree.c - the folders of a mailbox: list, create, delete, rename,
 * subscriptions, the special-use folders (Maildir++ layout, see folder.h). */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"

#define MARKER_FILE "maildirfolder"

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

static enum store_result not_yet(char *err, size_t errsz)
{
	snprintf(err, errsz, "not implemented yet");
	return STORE_TEMP;
}

enum store_result folder_delete(const char *root, const char *name, char *err, size_t errsz)
{
	(void)root;
	(void)name;
	return not_yet(err, errsz);
}

enum store_result folder_rename(const char *root, const char *from, const char *to, char *err, size_t errsz)
{
	(void)root;
	(void)from;
	(void)to;
	return not_yet(err, errsz);
}

bool folder_subscribe(const char *root, const char *name, bool on, char *err, size_t errsz)
{
	(void)root;
	(void)name;
	(void)on;
	not_yet(err, errsz);
	return false;
}

void folder_ensure_special(const char *root)
{
	char err[256];
	for (size_t i = 0; folder_special_name(i); i++)
		folder_create(root, folder_special_name(i), err, sizeof(err));
}

bool folder_list(const char *root, struct folder_info **out, size_t *n, char *err, size_t errsz)
{
	(void)root;
	*out = NULL;
	*n = 0;
	not_yet(err, errsz);
	return false;
}

enum store_result folder_copy(struct folder *src, size_t i, const char *dest_name, uint32_t *new_uid,
	uint32_t *dest_validity, char *err, size_t errsz)
{
	(void)src;
	(void)i;
	(void)dest_name;
	*new_uid = *dest_validity = 0;
	return not_yet(err, errsz);
}

enum store_result folder_append(const char *root, const char *name, const struct folder_append_src *s,
	uint32_t *uid, uint32_t *validity, struct quota_state *quota, char *err, size_t errsz)
{
	(void)root;
	(void)name;
	(void)s;
	(void)quota;
	*uid = *validity = 0;
	return not_yet(err, errsz);
}
