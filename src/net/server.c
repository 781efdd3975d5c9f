/* server.c - the transport's listeners (see server.h): accepting, the connection
 * limits' refusals in the listener's protocol, implicit TLS (telling a TLS client
 * from a plaintext one by its first byte), and the transport's life: created,
 * listening, stopping, freed.  The connections themselves are conn.c's. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"
#include "net/tls.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"

/* Refuse a connection before a session exists: one reply, then close. */
static void refuse_socket(evutil_socket_t fd, const char *text)
{
	ssize_t w = send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w;
	evutil_closesocket(fd);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t outsz)
{
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (!inet_ntop(sa->sa_family, a, out, (socklen_t)outsz))
		snprintf(out, outsz, "unknown");
	/* An IPv4 client on a dual-stack socket: show the plain IPv4 form. */
	if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* A refusal line in the listener's protocol, then close: the client is told why
 * instead of seeing a bare hang-up (invariant 3: in the client's own protocol). */
static void refuse_busy(evutil_socket_t fd, const struct listener_ctx *lc, enum conn_refusal why)
{
	struct buf rb;
	buf_init(&rb, 1024);
	lc->proto->refuse_busy(&rb, lc->net->conf, why);
	refuse_socket(fd, buf_cstr(&rb));
	buf_free(&rb);
}

static void refuse_socket_busy(evutil_socket_t fd, struct conn *c)
{
	struct buf rb;
	buf_init(&rb, 1024);
	c->ops->refuse_busy(&rb, c->net->conf, c->refusal);
	refuse_socket(fd, buf_cstr(&rb));
	buf_free(&rb);
}

static void refuse_plaintext(evutil_socket_t fd, struct conn *c)
{
	struct buf rb;
	buf_init(&rb, 1024);
	c->ops->refuse_plaintext(&rb, c->net->conf);
	refuse_socket(fd, buf_cstr(&rb));
	buf_free(&rb);
}

#define TLS_SNIFF_SECONDS 5
#define REFUSING_MAX 32   /* refusals being said over TLS at once */

/* Implicit TLS (RFC 8314): the first byte tells a TLS client (a handshake record)
 * from a plain SMTP client, which would wait for our greeting.  A plain client gets
 * a plaintext reply saying what to change, instead of a silent hang. */
static void sniff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct net *net = c->net;
	unsigned char first = 0;
	ssize_t r = (what & EV_READ) ? recv(fd, &first, 1, MSG_PEEK) : -1;
	event_free(c->sniff);
	c->sniff = NULL;
	if (r == 1 && first == 0x16) {
		c->ssl = tls_new_ssl(net->tls);
		struct bufferevent *bev = c->ssl ? bufferevent_openssl_socket_new(net->base, fd, c->ssl,
			BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (!bev) {
			if (c->ssl)
				SSL_free(c->ssl);
			c->ssl = NULL;
			evutil_closesocket(fd);
			conn_free(c);
			return;
		}
		c->tls_pending = true;
		conn_setup_bev(c, bev);
		deadline_update(c);   /* the handshake deadline */
		return;
	}
	if (r == 0) {   /* closed without a word */
		evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	if (c->refusing) {   /* not TLS after all: the refusal in plaintext */
		refuse_socket_busy(fd, c);
		conn_free(c);
		return;
	}
	log_event(LOG_WARN, "tls_mismatch", "conn=%llu client=%s listener=%s reason=\"%s\" hint=\"set the mail program's security to SSL/TLS for this port, or use the STARTTLS port\"",
		(unsigned long long)c->id, c->addr, c->listener->name,
		r == 1 ? "the client spoke plaintext to an implicit-TLS port" : "no TLS handshake: the client waits for a plaintext greeting on an implicit-TLS port");
	refuse_plaintext(fd, c);
	conn_free(c);
}

/* Implicit TLS: wait for the first byte (sniff_cb). */
static void await_client_hello(struct conn *c, evutil_socket_t fd)
{
	struct timeval tv = { TLS_SNIFF_SECONDS, 0 };
	c->sniff = event_new(c->net->base, fd, EV_READ, sniff_cb, c);
	if (!c->sniff || event_add(c->sniff, &tv) != 0) {
		if (c->sniff) {
			event_free(c->sniff);
			c->sniff = NULL;
		}
		evutil_closesocket(fd);
		conn_free(c);
	}
}

/* On an implicit-TLS port a refusal written in plaintext is noise to the client,
 * which is in the middle of its handshake: so complete the handshake and say it
 * over TLS (event_cb).  A few at a time only: a handshake costs more than a line,
 * and a flood of refused connections must not buy it; past that, plaintext. */
static void refuse_connection(evutil_socket_t fd, struct listener_ctx *lc, const char *addr, enum conn_refusal why)
{
	struct net *net = lc->net;
	if (lc->conf->tls != TLS_IMPLICIT || !net->tls || net->n_refusing >= REFUSING_MAX) {
		refuse_busy(fd, lc, why);
		return;
	}
	struct conn *c = conn_new(lc, addr, NULL);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->refusal = why;
	await_client_hello(c, fd);
}

/* A connection accepted (or adopted: net_adopt) on listener lc, from addr; peer:
 * on a unix socket, who runs the client (SO_PEERCRED), else NULL. */
static void serve_accepted(struct listener_ctx *lc, evutil_socket_t fd, const char *addr, const struct conn_peer *peer)
{
	struct net *net = lc->net;
	struct ip_count *ipc = NULL;
	enum conn_refusal why;
	if (!limits_admit(net, addr, &ipc, &why)) {
		refuse_connection(fd, lc, addr, why);
		return;
	}
	struct conn *c = conn_new(lc, addr, ipc);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	if (peer) {   /* a local process: the kernel vouches for its uid */
		c->local = true;
		c->trusted = true;
		c->peer = *peer;
		log_event(LOG_INFO, "connect", "conn=%llu client=local listener=%s uid=%u gid=%u pid=%d", (unsigned long long)c->id,
			lc->conf->name, peer->uid, peer->gid, peer->pid);
	} else
		log_event(LOG_INFO, "connect", "conn=%llu client=%s listener=%s%s", (unsigned long long)c->id, addr,
			lc->conf->name, c->trusted ? " trusted=yes" : "");
	metrics_count(METRIC_CONNECTIONS, lc->conf->name, 1);
	/* Replies are small and the client waits for each: do not let Nagle hold them. */
	int one = 1;
	if (!peer)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (lc->conf->tls == TLS_IMPLICIT) {
		await_client_hello(c, fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(net->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	conn_setup_bev(c, bev);
	conn_start_session(c, NULL);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	struct listener_ctx *lc = arg;
	if (sa->sa_family == AF_UNIX) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
			log_event(LOG_ERR, "accept_error", "listener=%s error=\"no peer credentials (SO_PEERCRED)\"", lc->conf->name);
			evutil_closesocket(fd);
			return;
		}
		struct conn_peer peer = { .uid = (unsigned)cred.uid, .gid = (unsigned)cred.gid, .pid = (int)cred.pid };
		serve_accepted(lc, fd, "local", &peer);
		return;
	}
	char addr[INET6_ADDRSTRLEN];
	format_addr(sa, addr, sizeof(addr));
	serve_accepted(lc, fd, addr, NULL);
}

bool net_adopt(struct net *net, const struct conf_listener *cl, int fd, const struct conn_peer *peer)
{
	for (size_t i = 0; i < net->n_listeners; i++)
		if (net->lctx[i].conf == cl && !net->shutting_down) {
			evutil_make_socket_nonblocking(fd);
			serve_accepted(&net->lctx[i], fd, "local", peer);
			return true;
		}
	close(fd);
	return false;
}

static void resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	(void)arg;
	int e = EVUTIL_SOCKET_ERROR();
	log_event(LOG_ERR, "accept_error", "error=\"%s\"", evutil_socket_error_to_string(e));
	/* Out of descriptors: pause accepting for a moment rather than spin. */
	evconnlistener_disable(l);
	struct timeval tv = { 1, 0 };
	event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, resume_accept_cb, l, &tv);
}

/* --- the transport (serve/server.c builds it and drives these) --------------- */

struct net *net_new(const struct conf *cf)
{
	struct net *net = calloc(1, sizeof(*net));
	if (!net)
		return NULL;
	net->conf = cf;
	net->base = event_base_new();
	/* Two priorities: everything runs at the default (1) but the HTTP admission
	 * (http.c), which must run before evhttp reads a new connection's first bytes. */
	if (!net->base || event_base_priority_init(net->base, 2) != 0) {
		if (net->base)
			event_base_free(net->base);
		free(net);
		return NULL;
	}
	return net;
}

struct event_base *net_base(struct net *net)
{
	return net->base;
}

void net_set_tls(struct net *net, struct tls *tls)
{
	net->tls = tls;
}

bool net_listen(struct net *net, const struct conf_listener *cl, const struct proto_ops *ops, void *ctx, int fd)
{
	struct listener_ctx *lc = &net->lctx[net->n_listeners];
	lc->net = net;
	lc->conf = cl;
	lc->proto = ops;
	lc->ctx = ctx;
	/* backlog 0: startup_listen has called listen() already */
	struct evconnlistener *l = evconnlistener_new(net->base, accept_cb, lc, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!l) {
		close(fd);
		log_event(LOG_ERR, "listen_error", "listener=%s address=%s port=%u error=\"cannot watch the socket\"", cl->name,
			cl->address, cl->port);
		return false;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	unsigned port = cl->port;
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl) == 0 && bound.ss_family != AF_UNIX)
		port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
			: ((struct sockaddr_in *)&bound)->sin_port);
	net->listeners[net->n_listeners++] = l;
	log_event(LOG_INFO, "listening", "listener=%s address=%s port=%u role=%s tls=%s", cl->name, cl->address,
		port, conf_role_name(cl->role), conf_tls_name(cl->tls));
	return true;
}

/* A commit in progress finishes and gets its reply; idle clients are told now. */
bool net_stop_accepting(struct net *net)
{
	net->shutting_down = true;
	for (size_t i = 0; i < net->n_listeners; i++)
		evconnlistener_disable(net->listeners[i]);
	for (size_t i = 0; i < net->n_http; i++)
		http_listener_stop(net->http[i]);
	struct conn *next;
	for (struct conn *c = net->conns; c; c = next) {
		next = c->next;
		if (c->bridge && !c->closed) {
			conn_free(c);   /* a proxied session: its state is the peer's, nothing to say here */
			continue;
		}
		if (c->closed || !c->session || c->ops->waiting(c->session))
			continue;
		c->ops->shutdown(c->session);
		conn_flush(c);
	}
	if (net->n_conns == 0) {
		event_base_loopexit(net->base, NULL);
		return true;
	}
	return false;
}

unsigned net_open_connections(const struct net *net)
{
	return net->n_conns;
}

void net_close_all(struct net *net)
{
	while (net->conns) {
		struct conn *c = net->conns;
		c->busy = 0;
		conn_free(c);
	}
	for (size_t i = 0; i < net->n_listeners; i++)
		evconnlistener_free(net->listeners[i]);
	net->n_listeners = 0;
	for (size_t i = 0; i < net->n_http; i++)
		http_listener_free(net->http[i]);
	net->n_http = 0;
	limits_free(net);
}

void net_free(struct net **np)
{
	struct net *net = *np;
	if (!net)
		return;
	net_close_all(net);
	tls_free(&net->tls);
	event_base_free(net->base);
	free(net);
	*np = NULL;
}
