/* proxy.c - POP3 and IMAP logins of a node of a cluster for a user whose mailbox
 * lives on another node (contracts §O): after the password was checked here (the
 * same directory, the same throttle), a proxy thread finds the user's home node
 * (dir_user.home_node) and its POP3 or IMAP address in the registry, connects there
 * (TLS: implicit, or STLS/STARTTLS when the registered port speaks plaintext first;
 * every step with a deadline), and hands the session over with XCLIENT and a node
 * token bound to the client's address and the login (auth/node_token.h).  The home
 * node's answer goes back to the adapter on the loop, which tells the client and has
 * net/ bridge the two connections (conn_bridge).  The event loop never waits: the
 * lookups and the dialogue run here, on threads of their own with their own
 * directory handle.
 *
 * The other side, XCLIENT on the home node, is the adapters' xclient hook:
 * proxy_xclient_check below checks the token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/node_token.h"
#include "conf/conf.h"
#include "directory/directory.h"
#include "net/client.h"
#include "net/server.h"
#include "serve/loopq.h"
#include "serve/service.h"
#include "util/log.h"
#include "util/workq.h"

#define PROXY_THREADS 2
#define PROXY_CONNECT_MS 5000
#define PROXY_IO_MS 15000   /* the home node opens the maildrop before it answers XCLIENT */
#define PROXY_LINE_MAX 1100

struct proxy_service {
	struct workq *q;
	struct event *ev;
	struct directory *dir;
	const struct conf *conf;
	const struct service *svc;   /* its node secret (read as root at start-up) */
};

struct proxy_job {
	struct proxy_service *ps;
	struct conn *conn;
	enum proxy_proto proto;
	char login[DIR_ADDRESS_MAX];
	char client[64];
	proxy_done_fn *done;
	void *arg;
	struct proxy_outcome out;
};

struct proxy_service *proxy_service_new(struct event_base *base, const struct service *svc, char *err, size_t errsz)
{
	struct proxy_service *ps = calloc(1, sizeof(*ps));
	if (!ps) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	ps->conf = svc->conf;
	ps->svc = svc;
	if (!directory_open(&ps->dir, ps->conf->data_dir, err, errsz)) {
		free(ps);
		return NULL;
	}
	if (!loopq_start(base, PROXY_THREADS, &ps->q, &ps->ev)) {
		snprintf(err, errsz, "cannot start the proxy threads");
		proxy_service_free(&ps);
		return NULL;
	}
	return ps;
}

void proxy_service_free(struct proxy_service **psp)
{
	struct proxy_service *ps = *psp;
	if (!ps)
		return;
	loopq_stop(&ps->q, &ps->ev);   /* running dialogues finish (bounded) and are answered */
	directory_close(&ps->dir);
	free(ps);
	*psp = NULL;
}

/* --- the home node's side: XCLIENT ------------------------------------------- */

bool proxy_xclient_check(const struct service *svc, struct conn *c, const char *proto, const char *token,
	const char *addr, const char *login, char *why, size_t whysz)
{
	char purpose[DIR_ADDRESS_MAX + 100], signer[DIR_NODE_NAME_MAX] = "";
	snprintf(purpose, sizeof(purpose), "%s|%s|%s", proto, addr, login);
	if (!node_token_check(svc->node_secret, svc->node_secret_len, purpose, token, time(NULL), signer)) {
		snprintf(why, whysz, "the node token%s%s is not valid for this address and login (another [cluster] secret, "
			"or the nodes' clocks differ by more than %d seconds)", signer[0] ? " of node " : "", signer,
			NODE_TOKEN_SKEW);
		return false;
	}
	if (!conn_set_client_addr(c, addr)) {
		snprintf(why, whysz, "the client address is not an IP address");
		return false;
	}
	return true;
}

/* --- the proxy's side: the dialogue with the home node (proxy thread) --------- */

static bool split_host_port(const char *hp, char *host, size_t hostsz, unsigned *port)
{
	const char *colon = strrchr(hp, ':');
	if (!colon || colon == hp || (size_t)(colon - hp) >= hostsz)
		return false;
	const char *h = hp;
	size_t n = (size_t)(colon - hp);
	if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {   /* [IPv6]:port */
		h++;
		n -= 2;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || p == 0 || p > 65535)
		return false;
	*port = (unsigned)p;
	return true;
}

static bool read_line(struct net_client *nc, char *line, char *err, size_t errsz)
{
	return net_client_read_line(nc, line, PROXY_LINE_MAX, err, errsz) >= 0;
}

/* Connect and bring up TLS: implicit TLS first; when the port speaks plaintext
 * first (its greeting is no TLS record), again with STLS / STARTTLS.  On success
 * the greeting has been read. */
static struct net_client *connect_tls(enum proxy_proto p, const char *host, unsigned port, char *err, size_t errsz)
{
	struct net_client_opts o = { .connect_ms = PROXY_CONNECT_MS, .io_ms = PROXY_IO_MS };
	enum net_status st;
	char line[PROXY_LINE_MAX], e2[200];
	struct net_client *nc = net_client_open(host, port, &o, &st, err, errsz);
	if (!nc)
		return NULL;
	bool pop3 = p == PROXY_POP3;
	if (net_client_tls(nc, host, false, e2, sizeof(e2)) && read_line(nc, line, err, errsz)) {
		if (strncmp(line, pop3 ? "+OK" : "* OK", pop3 ? 3 : 4) == 0)
			return nc;
		snprintf(err, errsz, "it greeted with \"%.200s\"", line);   /* busy, shutting down: its own words */
		net_client_close(&nc);
		return NULL;
	}
	net_client_close(&nc);
	if (!(nc = net_client_open(host, port, &o, &st, err, errsz)))
		return NULL;
	bool ok = read_line(nc, line, err, errsz) && strncmp(line, pop3 ? "+OK" : "* OK", pop3 ? 3 : 4) == 0 &&
		net_client_write_line(nc, pop3 ? "STLS" : "s1 STARTTLS", NULL, err, errsz) &&
		read_line(nc, line, err, errsz) && strncmp(line, pop3 ? "+OK" : "s1 OK", pop3 ? 3 : 5) == 0;
	if (!ok) {
		if (!err[0] || strstr(err, "closed"))
			snprintf(err, errsz, "TLS failed (%s), and the port offers no %s", e2, pop3 ? "STLS" : "STARTTLS");
		net_client_close(&nc);
		return NULL;
	}
	if (!net_client_tls(nc, host, false, err, errsz)) {
		net_client_close(&nc);
		return NULL;
	}
	return nc;
}

/* IMAP quoted string (RFC 3501 §4.3): the login may hold anything a user name may. */
static void imap_quote(const char *s, char *out, size_t outsz)
{
	size_t o = 0;
	if (outsz < 3)
		return;
	out[o++] = '"';
	for (; *s && o + 3 < outsz; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* XCLIENT and the home node's answer: POP3 one status line; IMAP untagged lines,
 * then the tagged one. */
static void hand_over(struct proxy_job *j, struct net_client *nc, const char *token)
{
	struct proxy_outcome *o = &j->out;
	char cmd[PROXY_LINE_MAX + 600], line[PROXY_LINE_MAX], err[200] = "";
	bool pop3 = j->proto == PROXY_POP3;
	if (pop3) {
		snprintf(cmd, sizeof(cmd), "XCLIENT %s %s %s", token, j->client, j->login);
	} else {
		char q[DIR_ADDRESS_MAX * 2 + 3];
		imap_quote(j->login, q, sizeof(q));
		snprintf(cmd, sizeof(cmd), "x1 XCLIENT %s %s %s", token, j->client, q);
	}
	if (!net_client_write_line(nc, cmd, "XCLIENT (token hidden)", err, sizeof(err)))
		goto failed;
	for (unsigned lines = 0; lines < 50; lines++) {
		if (!read_line(nc, line, err, sizeof(err)))
			goto failed;
		if (pop3 || strncmp(line, "x1 ", 3) == 0) {
			const char *text = pop3 ? line : line + 3;
			bool ok = strncmp(text, pop3 ? "+OK" : "OK", pop3 ? 3 : 2) == 0;
			snprintf(o->text, sizeof(o->text), "%s", text);
			o->kind = ok ? PROXY_CONNECTED : PROXY_REFUSED;
			return;
		}
		size_t u = strlen(o->untagged);
		if (u + strlen(line) + 3 < sizeof(o->untagged))
			snprintf(o->untagged + u, sizeof(o->untagged) - u, "%s\r\n", line);
	}
	snprintf(err, sizeof(err), "no answer to XCLIENT");
failed:
	o->kind = PROXY_UNAVAILABLE;
	snprintf(o->text, sizeof(o->text), "%s", err);
}

/* Why the node cannot be reached, with when it was last seen when that is long ago. */
static void unreachable(struct proxy_job *j, const struct dir_node *n, const char *why)
{
	struct proxy_outcome *o = &j->out;
	o->kind = PROXY_UNAVAILABLE;
	long long now = (long long)time(NULL);
	if (n && n->last_seen && now - n->last_seen > (long long)j->ps->conf->cluster_down_after) {
		char when[32];
		time_t t = (time_t)n->last_seen;
		strftime(when, sizeof(when), "%H:%M:%S UTC", gmtime(&t));
		snprintf(o->text, sizeof(o->text), "%s; it has not been seen since %s, %lld min ago", why, when,
			(now - n->last_seen) / 60);
	} else {
		snprintf(o->text, sizeof(o->text), "%s", why);
	}
}

static void proxy_work(void *arg)
{
	struct proxy_job *j = arg;
	struct proxy_service *ps = j->ps;
	struct proxy_outcome *o = &j->out;
	struct dir_user u;
	char local[DIR_ADDRESS_MAX], err[DIR_ERROR_MAX] = "";
	const char *at = strrchr(j->login, '@');
	snprintf(local, sizeof(local), "%.*s", at ? (int)(at - j->login) : 0, j->login);
	o->kind = PROXY_LOCAL;
	if (!at || directory_user_lookup(ps->dir, local, at + 1, &u) != DIR_OK || !u.home_node[0] ||
		strcmp(u.home_node, ps->conf->cluster_node) == 0)
		return;   /* not found now (it was a moment ago): the local path says what it finds */
	snprintf(o->node, sizeof(o->node), "%s", u.home_node);
	struct dir_node n;
	memset(&n, 0, sizeof(n));
	if (directory_node_get(ps->dir, u.home_node, &n, err) != DIR_OK) {
		unreachable(j, NULL, err[0] ? err : "it is not in the registry of nodes");
		return;
	}
	const char *addr = j->proto == PROXY_POP3 ? n.pop3 : n.imap;
	char host[DIR_NODE_ADDR_MAX], why[sizeof(o->text) + DIR_NODE_ADDR_MAX + 4];
	unsigned port;
	if (!addr[0] || !split_host_port(addr, host, sizeof(host), &port)) {
		snprintf(why, sizeof(why), "it has no %s listener in the registry", j->proto == PROXY_POP3 ? "POP3" : "IMAP");
		unreachable(j, &n, why);
		return;
	}
	struct net_client *nc = connect_tls(j->proto, host, port, err, sizeof(err));
	if (!nc) {
		snprintf(why, sizeof(why), "%s: %s", addr, err);
		unreachable(j, &n, why);
		return;
	}
	char purpose[DIR_ADDRESS_MAX + 100], token[NODE_TOKEN_MAX];
	snprintf(purpose, sizeof(purpose), "%s|%s|%s", j->proto == PROXY_POP3 ? "pop3" : "imap", j->client, j->login);
	node_token_make(ps->svc->node_secret, ps->svc->node_secret_len, purpose, ps->conf->cluster_node, time(NULL), token);
	hand_over(j, nc, token);
	if (o->kind == PROXY_CONNECTED)
		o->peer = nc;
	else
		net_client_close(&nc);
	if (o->kind == PROXY_UNAVAILABLE) {
		snprintf(why, sizeof(why), "%s: %.900s", addr, o->text);
		unreachable(j, &n, why);
	}
}

static void proxy_finished(void *arg)
{
	struct proxy_job *j = arg;
	struct conn *c = j->conn;
	if (j->out.kind != PROXY_LOCAL)
		log_event(j->out.kind == PROXY_CONNECTED ? LOG_INFO : LOG_WARN, "proxy", "conn=%llu client=%s user=%s node=%s "
			"result=%s%s%s%s", (unsigned long long)conn_id(c), j->client, j->login, j->out.node,
			j->out.kind == PROXY_CONNECTED ? "connected" : j->out.kind == PROXY_REFUSED ? "refused" : "unavailable",
			j->out.kind == PROXY_CONNECTED ? "" : " reason=\"", j->out.kind == PROXY_CONNECTED ? "" : j->out.text,
			j->out.kind == PROXY_CONNECTED ? "" : "\"");
	if (!conn_unbusy(c)) {   /* the client went away meanwhile */
		net_client_close(&j->out.peer);
		free(j);
		return;
	}
	bool alive = j->done(j->arg, &j->out);
	net_client_close(&j->out.peer);   /* NULL once bridged */
	free(j);
	if (alive && !conn_bridged(c))
		conn_process(c);
}

bool proxy_login(struct service *svc, struct conn *c, enum proxy_proto proto, const char *login, proxy_done_fn *done,
	void *arg)
{
	struct proxy_service *ps = svc->proxy;
	struct proxy_job *j = ps && svc->node_secret_len && login && login[0] ? calloc(1, sizeof(*j)) : NULL;
	if (!j)
		return false;
	j->ps = ps;
	j->conn = c;
	j->proto = proto;
	j->done = done;
	j->arg = arg;
	snprintf(j->login, sizeof(j->login), "%s", login);
	snprintf(j->client, sizeof(j->client), "%s", conn_addr(c));
	conn_busy(c);
	workq_push(ps->q, proxy_work, proxy_finished, j);
	return true;
}
