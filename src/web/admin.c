/* admin.c - what every admin page shares (admin.h): the gate (signed in, and an
 * administrator in the directory now, not only when the session began) and the
 * path segment after a page's prefix. */
#include "web/admin.h"

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"

/* The directory's word on the account, read on every admin request. */
static enum dir_result account_admin(struct web_worker *w, const char *address, bool *admin)
{
	const char *at = strrchr(address, '@');
	char local[DIR_ADDRESS_MAX];
	*admin = false;
	if (!w->dir || !at || (size_t)(at - address) >= sizeof(local))
		return DIR_NOT_FOUND;
	snprintf(local, sizeof(local), "%.*s", (int)(at - address), address);
	struct dir_user du;
	enum dir_result r = directory_user_lookup(w->dir, local, at + 1, &du);
	*admin = r == DIR_OK && du.admin;
	return r;
}

const struct web_user *web_admin_user(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp, struct web_user *storage)
{
	const struct web_user *u = web_app_user(site, w, req, resp, storage);
	if (!u)
		return NULL;
	bool admin;
	enum dir_result r = account_admin(w, u->address, &admin);
	if (r == DIR_ERROR) {
		web_words_page(site, u, resp, 503, "Try again in a moment", "The directory could not be read just now.",
			"Whether your account is an administrator is checked on every request.",
			"Reload the page in a moment; if it goes on, look at the server's log (event=http).");
		return NULL;
	}
	if (!admin) {
		char why[512];
		snprintf(why, sizeof(why), "Your account %s is not an administrator of this server.", u->address);
		web_words_page(site, u, resp, 403, "Administrators only", "This page is for the mail administrators only.", why,
			"If you should have it, ask an administrator to run: postern user admin YOUR-ADDRESS yes");
		return NULL;
	}
	storage->admin = true;   /* the session may predate `postern user admin`: the nav shows the admin pages */
	return storage;
}

const char *web_admin_path_tail(const struct http_request *req, const char *prefix, char *out, size_t outsz)
{
	size_t n = strlen(prefix);
	if (strncmp(req->path, prefix, n) != 0)
		return NULL;
	const char *tail = req->path + n;
	size_t len = strlen(tail);
	if (!len || len >= outsz || strchr(tail, '/'))
		return NULL;
	memcpy(out, tail, len + 1);
	return out;
}
