/* mta_sts.c - GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt: the MTA-STS policy
 * file of a local DOMAIN (RFC 8461 §3.3), text/plain with CR LF lines, exactly the text
 * conf_mta_sts_policy() makes, whose id `postern dns DOMAIN` prints in the _mta-sts TXT
 * record.  Senders fetch it from the host mta-sts.DOMAIN only, so any other Host gets a
 * 404 that says where the policy is; so does every host when nothing is published
 * ([mta-sts] mode = off, or no mx listener with STARTTLS). */
#include "web/web.h"

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"

static void reply_text(struct http_response *resp, int status, const char *note, const char *text)
{
	http_response_set(resp, status, status == 200 ? "text/plain" : "text/plain; charset=utf-8", text, strlen(text));
	snprintf(resp->log_note, sizeof(resp->log_note), "mta-sts %s", note);
}

void web_mta_sts(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	char policy[CONF_MTA_STS_POLICY_MAX], id[CONF_MTA_STS_ID_MAX], words[700];
	if (!conf_mta_sts_policy(site->conf, policy, sizeof(policy), id, sizeof(id))) {
		reply_text(resp, 404, "none", "No MTA-STS policy: this server publishes none ([mta-sts] mode = off, or no mx "
			"listener offers STARTTLS).\n");
		return;
	}
	/* §3.3: the policy host is mta-sts.<the mail domain>, nothing else. */
	static const char prefix[] = "mta-sts.";
	const char *domain = strncmp(req->host, prefix, sizeof(prefix) - 1) == 0 ? req->host + sizeof(prefix) - 1 : "";
	enum dir_result local = !domain[0] ? DIR_NOT_FOUND : conf_is_local_domain(site->conf, domain) ? DIR_OK
		: w->dir ? directory_domain_exists(w->dir, domain) : DIR_ERROR;
	if (local == DIR_ERROR) {
		reply_text(resp, 503, "directory error", "Temporary failure: the list of this server's domains could not be "
			"read; try again in a minute.\n");
		return;
	}
	if (local != DIR_OK) {
		snprintf(words, sizeof(words), "No MTA-STS policy for the host \"%.253s\": each mail domain of this server has "
			"its policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 section 3.3); postern dns DOMAIN "
			"prints the records.\n", req->host[0] ? req->host : "(none given)");
		reply_text(resp, 404, "not a policy host", words);
		return;
	}
	http_response_set(resp, 200, "text/plain", policy, strlen(policy));
	http_response_header(resp, "Cache-Control", "max-age=300");
	snprintf(resp->log_note, sizeof(resp->log_note), "mta-sts domain=%.120s id=%s", domain, id);
}
