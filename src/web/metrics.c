/* metrics.c - GET /metrics (service `metrics`): the registry of util/metrics.h in the
 * Prometheus text exposition format 0.0.4, for a Prometheus server's scrape.  Only on
 * http listeners whose `services` lists `metrics`: the numbers describe traffic and
 * refusals, so the service belongs on a loopback or internal listener
 * (docs/operations.md, "Metrics").  The render reads atomics only: a scrape never
 * holds up a session or a delivery. */
#include "web/web.h"

#include <stdio.h>

#include "util/buf.h"
#include "util/metrics.h"

/* Far above what the registry renders (about 16 metrics, at most 65 label values each). */
#define METRICS_BODY_MAX (4u << 20)

void web_metrics(const struct web_site *site, struct web_worker *w, const struct http_request *req, struct http_response *resp)
{
	(void)site;
	(void)w;
	(void)req;
	struct buf out;
	buf_init(&out, METRICS_BODY_MAX);
	if (!metrics_render(&out)) {
		http_response_printf(resp, 500, "text/plain; charset=utf-8",
			"The metrics do not fit in %u bytes; this is a bug to report.\n", METRICS_BODY_MAX);
		snprintf(resp->log_note, sizeof(resp->log_note), "metrics too large");
		buf_free(&out);
		return;
	}
	http_response_set(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&out), out.len);
	snprintf(resp->log_note, sizeof(resp->log_note), "metrics bytes=%zu", out.len);
	buf_free(&out);
}
