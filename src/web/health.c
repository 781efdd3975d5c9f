/* health.c - GET /healthz: 200 "ok" when a message could be spooled now (a file can
 * be made and written in the queue's incoming/) and the directory answers a trivial
 * query on this worker's handle; else 503 naming what failed, for a load balancer or
 * a monitoring check (and the administrator reading its output). */
#include "web/web.h"

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"
#include "queue/queue.h"

void web_health(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	(void)req;
	char queue_err[512] = "", dir_err[512] = "";
	if (!site->queue)
		snprintf(queue_err, sizeof(queue_err), "the queue is not open");
	else if (!queue_writable(site->queue, queue_err, sizeof(queue_err)) && !queue_err[0])
		snprintf(queue_err, sizeof(queue_err), "cannot write in the queue");
	/* Any answer but an error will do: the name is reserved (RFC 2606) and never local. */
	if (!w->dir)
		snprintf(dir_err, sizeof(dir_err), "no directory handle");
	else if (directory_domain_exists(w->dir, "healthz.invalid") == DIR_ERROR)
		snprintf(dir_err, sizeof(dir_err), "%s", directory_error(w->dir));
	if (!queue_err[0] && !dir_err[0]) {
		http_response_set(resp, 200, "text/plain; charset=utf-8", "ok\n", 3);
		snprintf(resp->log_note, sizeof(resp->log_note), "health ok");
		return;
	}
	http_response_printf(resp, 503, "text/plain; charset=utf-8", "unhealthy\n%s%s%s%s%s%s",
		queue_err[0] ? "queue: " : "", queue_err, queue_err[0] ? "\n" : "",
		dir_err[0] ? "directory: " : "", dir_err, dir_err[0] ? "\n" : "");
	snprintf(resp->log_note, sizeof(resp->log_note), "health failed:%s%s", queue_err[0] ? " queue" : "", dir_err[0] ? " directory" : "");
}
