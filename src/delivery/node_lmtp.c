/* node_lmtp.c - mail for a user whose home is another node goes there by LMTP (see
 * node_lmtp.h).  The home node commits it into its own queue before it answers each
 * recipient (its invariant 1), and delivers it into the Maildir from there.  A crash
 * of this node between the home node's 250 and the state file recording it gives a
 * second copy at the next attempt, never a lost one (docs/operations.md). */
#include "delivery/node_lmtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/node_token.h"
#include "conf/conf.h"
#include "delivery/smtp_client.h"
#include "directory/directory.h"
#include "net/client.h"
#include "queue/queue.h"
#include "util/log.h"
#include "wire/enh.h"

static void defer_all(struct rcpt_result *res, size_t n, const char *enh, const char *why)
{
	for (size_t i = 0; i < n; i++)
		rcpt_result_set(&res[i], OUT_DEFER, enh, why);
}

static void span_words(long long secs, char *out, size_t outsz)
{
	if (secs < 120)
		snprintf(out, outsz, "%lld s", secs < 0 ? 0 : secs);
	else if (secs < 7200)
		snprintf(out, outsz, "%lld min", secs / 60);
	else if (secs < 2 * 86400)
		snprintf(out, outsz, "%lld h", secs / 3600);
	else
		snprintf(out, outsz, "%lld days", secs / 86400);
}

void node_lmtp_down_words(const char *node, long long last_seen, long long now, char *out, size_t outsz)
{
	if (!last_seen) {
		snprintf(out, outsz, "home node %s has never answered", node);
		return;
	}
	time_t t = (time_t)last_seen;
	struct tm tm;
	gmtime_r(&t, &tm);
	char span[32];
	span_words(now - last_seen, span, sizeof(span));
	snprintf(out, outsz, "home node %s has not answered since %02d:%02d:%02d UTC (%s)", node, tm.tm_hour, tm.tm_min,
		tm.tm_sec, span);
}

/* "host:port" or "[v6]:port" into host and port; false when it is neither. */
static bool split_host_port(const char *hp, char *host, size_t hostsz, unsigned *port)
{
	const char *colon = strrchr(hp, ':');
	if (!colon || colon == hp)
		return false;
	const char *h = hp;
	size_t hl = (size_t)(colon - hp);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= hostsz)
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	*port = (unsigned)p;
	return *end == '\0' && p > 0 && p < 65536;
}

/* The registry's row of node, if the node counts as up; else every result deferred. */
static bool node_reachable(const struct node_lmtp *x, const char *node, struct dir_node *row, struct rcpt_result *res,
	size_t n)
{
	char err[DIR_ERROR_MAX] = "", why[RCPT_REASON_MAX];
	enum dir_result r = directory_node_get(x->dir, node, row, err);
	if (r == DIR_ERROR) {
		snprintf(why, sizeof(why), "the node registry could not be read to reach home node %s: %.300s", node, err);
		defer_all(res, n, ENH_TEMP_DIRECTORY_SERVER, why);
		return false;
	}
	if (r == DIR_NOT_FOUND) {
		snprintf(why, sizeof(why), "home node %s is not in the node registry: it has never started (check the user's "
			"home node with postern user show, and [cluster] node on that machine)", node);
		defer_all(res, n, ENH_TEMP_NO_ANSWER, why);
		return false;
	}
	long long now = (long long)time(NULL);
	if (now - row->last_seen > (long long)x->conf->cluster_down_after) {
		node_lmtp_down_words(node, row->last_seen, now, why, sizeof(why));
		defer_all(res, n, ENH_TEMP_NO_ANSWER, why);
		return false;
	}
	if (!row->lmtp[0]) {
		snprintf(why, sizeof(why), "home node %s has no listener of role lmtp, so no other node can hand it mail: "
			"add one to its configuration", node);
		defer_all(res, n, ENH_TEMP_NO_ANSWER, why);
		return false;
	}
	return true;
}

/* Connected, TLS up, LHLO and XNODE answered: the LMTP session, or NULL (results deferred). */
static struct smtp_client *node_session(const struct node_lmtp *x, const char *node, const struct dir_node *row,
	struct rcpt_result *res, size_t n)
{
	const struct conf *c = x->conf;
	char host[DIR_NODE_ADDR_MAX], err[600], why[RCPT_REASON_MAX];
	unsigned port;
	if (!split_host_port(row->lmtp, host, sizeof(host), &port)) {
		snprintf(why, sizeof(why), "home node %s registered \"%.100s\" as its lmtp address, which is not host:port", node,
			row->lmtp);
		defer_all(res, n, ENH_TEMP_NO_ANSWER, why);
		return NULL;
	}
	struct net_client_opts no = { .connect_timeout = (unsigned)c->connect_timeout,
		.io_timeout = (unsigned)c->command_timeout, .cancel = x->cancel };
	struct net_client *conn = net_client_connect(host, port, &no, err, sizeof(err));
	/* The peer is the node the registry names; this node proves itself with the token.
	 * Its certificate is not checked (self-signed ones are usual inside a cluster). */
	if (conn && !net_client_tls(conn, node, false, err, sizeof(err)))
		net_client_close(&conn);
	struct smtp_client *cl = NULL;
	if (conn) {
		char token[NODE_TOKEN_MAX];
		node_token_make(x->secret, x->secret_len, "lmtp", c->cluster_node, time(NULL), token);
		struct smtp_client_opts o = { .helo = c->hostname, .peer_name = node, .tls = SMTP_TLS_IMPLICIT, .lmtp = true,
			.node_token = token };
		bool permanent;
		cl = smtp_client_open(conn, &o, err, sizeof(err), &permanent);
		if (!cl)
			net_client_close(&conn);
	}
	if (!cl) {
		snprintf(why, sizeof(why), "home node %s (lmtp %s) did not take the mail: %.380s", node, row->lmtp, err);
		defer_all(res, n, ENH_TEMP_NO_ANSWER, why);
	}
	return cl;
}

void node_lmtp_deliver(const struct node_lmtp *x, const struct queue_message *m, const char *node, const size_t *idx,
	size_t n, struct rcpt_result *res)
{
	memset(res, 0, n * sizeof(*res));
	struct dir_node row;
	if (!node_reachable(x, node, &row, res, n))
		return;
	struct smtp_client *cl = node_session(x, node, &row, res, n);
	if (!cl)
		return;
	struct smtp_client_msg msg = { .env = &m->env, .rcpts = idx, .n = n, .prefix = m->added,
		.prefix_len = m->added_len, .fd = m->fd, .off = m->body_offset, .size = queue_message_size(m) };
	bool ok = smtp_client_send(cl, &msg, res);
	log_event(LOG_INFO, "node_lmtp", "qid=%s node=%s lmtp=%s recipients=%zu connection=%s", m->env.qid, node, row.lmtp,
		n, ok ? "kept to the end" : "broke");
	if (ok)
		smtp_client_close(&cl);
	else
		smtp_client_drop(&cl);
}
