/* admin_actions.c - POST /admin/queue/action: the queue page's buttons (flush,
 * retry, hold, release, delete, bounce, requeue), each a form with the session's
 * CSRF token (checked by web_app_user).  They run through the queue runner's own
 * admin commands (the queue_control hook: delivery_control, the same as `postern
 * queue ...` over the control socket), blocking this web thread as long as they
 * take; deleting a message kept in queue/failed/ acts on the file, as the CLI does
 * (the runner never looks there).  Each one is logged (event=admin_action
 * by=ADMIN) and confirmed in words on the page the browser is sent to next. */
#include "web/admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "queue/queue.h"
#include "util/log.h"

struct queue_action {
	const char *name;
	bool needs_qid;
	bool gone_after;            /* done: the message is no longer in the queue */
	const char *done;           /* the confirmation, after the queue id */
};

static const struct queue_action actions[] = {
	{ "flush", false, false, "the whole queue: every deferred message is tried now" },
	{ "retry", true, false, "is tried now: every pending recipient gets an attempt" },
	{ "hold", true, false, "is held: it will not be delivered until you release it" },
	{ "release", true, false, "is released: every pending recipient is tried now" },
	{ "delete", true, true, "is deleted: it is gone, and neither its sender nor its recipients were told" },
	{ "bounce", true, true, "is bounced: it was returned to its sender with a report and removed from the queue" },
	{ "requeue", true, false, "is back in the queue from queue/failed/: every recipient is tried now" },
};

static const struct queue_action *action_named(const char *name)
{
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcmp(actions[i].name, name) == 0)
			return &actions[i];
	return NULL;
}

/* Is qid kept in queue/failed/ (readable or not)? */
static bool in_failed(struct queue *q, const char *qid)
{
	struct queue_message m;
	char err[64];
	errno = 0;   /* a damaged file fails without setting it */
	if (queue_failed_open(q, qid, &m, err, sizeof(err))) {
		queue_message_close(&m);
		return true;
	}
	return errno != ENOENT;
}

/* Run the action; 0 done, else refused, with the runner's words in reply. */
static int run_action(const struct web_site *site, const struct queue_action *a, const char *qid, char *reply,
	size_t replysz)
{
	if (strcmp(a->name, "delete") == 0 && site->queue && in_failed(site->queue, qid)) {
		bool ok = queue_remove_failed(site->queue, qid);
		snprintf(reply, replysz, ok ? "%s deleted from queue/failed/" : "cannot delete %s from queue/failed/: %s", qid,
			strerror(errno));
		return ok ? 0 : 1;
	}
	if (!site->hooks.queue_control) {
		snprintf(reply, replysz, "the queue runner cannot be reached from the web site");
		return 1;
	}
	char command[64];
	snprintf(command, sizeof(command), "%s%s%s", a->name, a->needs_qid ? " " : "", a->needs_qid ? qid : "");
	return site->hooks.queue_control(site->hooks.ctx, command, reply, replysz);
}

void web_admin_queue_action(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char name[16] = "", qid[QUEUE_ID_LEN + 2] = "";
	const struct queue_action *a = web_form_field(req, "action", name, sizeof(name)) ? action_named(name) : NULL;
	if (a && a->needs_qid && (!web_form_field(req, "qid", qid, sizeof(qid)) || !id_is_queue_id(qid)))
		a = NULL;
	if (!a) {
		web_words_page(site, u, resp, 400, "Queue", "The queue page sent an action this server does not know.",
			"The actions are flush, retry, hold, release, delete, bounce and requeue, each for one queue id.",
			"Reload the queue page and use its buttons.");
		return;
	}
	char reply[600] = "", words[800];
	int status = run_action(site, a, qid, reply, sizeof(reply));
	char q[700];
	log_quote(q, sizeof(q), reply, strlen(reply), 300);
	log_event(LOG_WARN, "admin_action", "by=%s action=%s qid=%s status=%s reply=%s", u->address, a->name,
		qid[0] ? qid : "-", status == 0 ? "done" : "refused", q);
	if (status == 0 && !a->needs_qid)
		snprintf(words, sizeof(words), "Flushing the queue: %s.", reply);
	else if (status == 0)
		snprintf(words, sizeof(words), "%s %s.", qid, a->done);
	else
		snprintf(words, sizeof(words), "Could not %s %s: %s.", a->name, qid[0] ? qid : "the queue", reply);
	web_flash(site, u, words);
	char next[64];
	snprintf(next, sizeof(next), "/admin/queue%s%s", qid[0] && !(status == 0 && a->gone_after) ? "/" : "",
		qid[0] && !(status == 0 && a->gone_after) ? qid : "");
	web_redirect(resp, next);
}
