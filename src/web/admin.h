/* admin.h - the administrator's pages of the account service (contracts14.md §C):
 * the queue with its actions (admin_queue.c, admin_actions.c), refusals by cause,
 * account and client with the explanation of each cause (admin_stats.c), and the
 * logins the throttle blocks now, with unblock (admin_throttle.c).  Every page is
 * for a signed-in account whose directory record says admin (checked on every
 * request, so `postern user admin ADDRESS no` takes effect at once); every action is
 * a POST with the session's CSRF token, confirmed in words on the next page and
 * logged as event=admin_action by=<admin>.  Text from mail is hostile: it reaches
 * the page only through the escaping template engine. */
#ifndef POSTERN_WEB_ADMIN_H
#define POSTERN_WEB_ADMIN_H

#include "web/app.h"

/* The signed-in administrator of this request, or NULL after writing the answer:
 * 303 to /login when signed out (web_app_user), 403 in words for an account that is
 * not an administrator. */
const struct web_user *web_admin_user(const struct web_site *, struct web_worker *, const struct http_request *,
	struct http_response *, struct web_user *storage);

/* The path's last segment after prefix ("/admin/queue/" -> the id), or NULL when it
 * is empty, holds another '/', or is longer than outsz - 1. */
const char *web_admin_path_tail(const struct http_request *, const char *prefix, char *out, size_t outsz);

web_handler_fn web_admin_queue;          /* GET /admin/queue?sender=&state= */
web_handler_fn web_admin_message;        /* GET /admin/queue/<qid> */
web_handler_fn web_admin_queue_action;   /* POST /admin/queue/action: flush, retry, hold, release, delete, bounce, requeue */
web_handler_fn web_admin_refusals;       /* GET /admin/refusals */
web_handler_fn web_admin_explain;        /* GET /admin/explain/<cause-id> */
web_handler_fn web_admin_throttled;      /* GET /admin/throttled */
web_handler_fn web_admin_unblock;        /* POST /admin/throttled/unblock */

#endif
