/* layout.c - where mailboxes live under data_dir (see layout.h). */
#include "store/layout.h"

#include <stdio.h>

bool store_mailbox_path(const char *data_dir, const char *domain, const char *local, char *path, size_t pathsz)
{
	int n = snprintf(path, pathsz, "%s/mail/%s/%s", data_dir, domain, local);
	return n >= 0 && (size_t)n < pathsz;
}
