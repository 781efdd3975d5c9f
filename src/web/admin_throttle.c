/* admin_throttle.c - GET /admin/throttled: the addresses and accounts the login
 * throttle blocks right now (auth/throttle.h: the login service owns it; the
 * throttle_blocks hook lists them, at most THROTTLE_BLOCKS_MAX), each with an
 * unblock button; POST /admin/throttled/unblock lifts one through the
 * throttle_unblock hook, logged and confirmed in words.  An account name is what a
 * client typed (HOSTILE): shown through the escaping templates only. */
#include "web/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/throttle.h"
#include "util/log.h"

static void hhmm(time_t t, char *out, size_t outsz)
{
	struct tm tm;
	strftime(out, outsz, "%H:%M UTC", gmtime_r(&t, &tm));
}

static void add_block(struct web_view *v, const struct throttle_block_info *b, time_t now)
{
	struct web_view *it = web_view_add_item(v, "blocks");
	char since[32], until[32];
	hhmm(b->since, since, sizeof(since));
	hhmm(b->until, until, sizeof(until));
	web_view_set(it, "ip", b->ip);
	web_view_set(it, "since", since);
	web_view_set(it, "until", until);
	web_view_setf(it, "minutes_left", "%lld", (long long)((b->until - now + 59) / 60));
	web_view_setf(it, "failures", "%u", b->failures);
	if (b->kind == THROTTLE_ACCOUNT) {
		web_view_set(it, "account", b->account);
		web_view_set(it, "what", "this account from this address: too many failed logins of its own "
			"(a device with an old saved password, most often)");
		web_view_set(it, "key", b->account);
	} else {
		web_view_set(it, "what", "this address, for every account that has not logged in from it before: "
			"failed logins to several different accounts (password guessing)");
		web_view_set(it, "key", b->ip);
	}
}

void web_admin_throttled(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	struct throttle_block_info *b = calloc(THROTTLE_BLOCKS_MAX, sizeof(*b));
	struct web_view *v = web_view_new();
	size_t n = 0;
	if (!site->hooks.throttle_blocks)
		web_view_set(v, "list_error", "the login service cannot be reached from the web site");
	else if (!b)
		web_view_set(v, "list_error", "out of memory");
	else
		n = site->hooks.throttle_blocks(site->hooks.ctx, b, THROTTLE_BLOCKS_MAX);
	time_t now = time(NULL);
	for (size_t i = 0; i < n; i++)
		add_block(v, &b[i], now);
	free(b);
	web_view_setf(v, "count", "%zu", n);
	web_view_setf(v, "max", "%d", THROTTLE_BLOCKS_MAX);
	web_page(site, u, "admin_throttled", "Throttled logins", v, resp);
	web_view_free(&v);
}

void web_admin_unblock(const struct web_site *site, struct web_worker *w, const struct http_request *req,
	struct http_response *resp)
{
	struct web_user storage;
	const struct web_user *u = web_admin_user(site, w, req, resp, &storage);
	if (!u)
		return;
	char key[THROTTLE_ACCOUNT_MAX];
	if (!web_form_field(req, "key", key, sizeof(key)) || !key[0]) {
		web_words_page(site, u, resp, 400, "Throttled logins", "The form named no address or account to unblock.",
			"Each block on the page has its own Unblock button.", "Reload the page and use the button of the block.");
		return;
	}
	bool lifted = site->hooks.throttle_unblock && site->hooks.throttle_unblock(site->hooks.ctx, key);
	char q[400], words[800];
	log_quote(q, sizeof(q), key, strlen(key), 200);
	log_event(LOG_WARN, "admin_action", "by=%s action=unblock key=%s status=%s", u->address, q,
		lifted ? "done" : "not_blocked");
	if (lifted)
		snprintf(words, sizeof(words), "%s is unblocked: it may log in again now, and the failed logins behind the "
			"block are forgotten.", key);
	else if (!site->hooks.throttle_unblock)
		snprintf(words, sizeof(words), "Could not unblock %s: the login service cannot be reached from the web site.",
			key);
	else
		snprintf(words, sizeof(words), "%s was not blocked (the block may have ended meanwhile): nothing to lift.", key);
	web_flash(site, u, words);
	web_redirect(resp, "/admin/throttled");
}
