/* bridge.c - a byte bridge between a client connection and an outbound one: once a
 * protocol has finished with a connection (a POP3 or IMAP login proxied to the
 * mailbox's home node), everything the client sends is carried to the peer and
 * everything the peer sends to the client, unread and unchanged.  Transport only: it
 * knows no protocol words.
 *
 * Bounded both ways (DESIGN invariant 4): each side reads at most BRIDGE_HIGH_WATER
 * ahead; when the other side's output holds more than that, reading stops until it
 * has drained below a quarter (back-pressure: a client that does not read a long
 * RETR slows the home node's sending, never our memory).  Idle: no byte either way
 * for the protocol's idle time-out closes both (a read time-out on one side while
 * the other is busy is not idleness).  Either side closing: what is still buffered
 * for the other is sent (bounded by the write time-out), then both close.  The
 * event loop never waits: the peer's socket is non-blocking, its TLS is libevent's. */
#include "net/internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/client_int.h"
#include "util/log.h"

#define BRIDGE_HIGH_WATER (256u << 10)

struct net_bridge {
	struct bufferevent *peer;       /* the outbound side (owns its socket and TLS) */
	char peer_name[64];
	unsigned idle_seconds;
	uint64_t last_ms;               /* monotonic: a byte moved either way */
	bool client_gone, peer_gone;    /* that side closed: drain to the other, then end */
	uint64_t to_peer, to_client;    /* octets carried, for the log line */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void bridge_free(struct conn *c)
{
	struct net_bridge *b = c->bridge;
	if (!b)
		return;
	log_event(LOG_INFO, "bridge_end", "conn=%llu client=%s peer=%s to_peer=%llu to_client=%llu",
		(unsigned long long)c->id, c->addr, b->peer_name, (unsigned long long)b->to_peer,
		(unsigned long long)b->to_client);
	if (b->peer)
		bufferevent_free(b->peer);   /* BEV_OPT_CLOSE_ON_FREE: the socket and the SSL go with it */
	free(b);
	c->bridge = NULL;
}

static size_t out_len(struct bufferevent *bev)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(bev));
	struct bufferevent *under = bufferevent_get_underlying(bev);
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* A side closed and the other has been told everything: end. */
static bool finished(struct conn *c)
{
	struct net_bridge *b = c->bridge;
	if (b->peer_gone && (!c->bev || out_len(c->bev) == 0))
		return true;
	if (b->client_gone && (!b->peer || out_len(b->peer) == 0))
		return true;
	return false;
}

/* Move what `from` has read to `to`; stop reading `from` while `to` is backed up. */
static void carry(struct bufferevent *from, struct bufferevent *to, uint64_t *count)
{
	struct evbuffer *in = bufferevent_get_input(from);
	size_t n = evbuffer_get_length(in);
	*count += n;
	evbuffer_add_buffer(bufferevent_get_output(to), in);
	if (out_len(to) > BRIDGE_HIGH_WATER)
		bufferevent_disable(from, EV_READ);
}

static void client_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct net_bridge *b = c->bridge;
	b->last_ms = now_ms();
	if (b->peer && !b->peer_gone)
		carry(bev, b->peer, &b->to_peer);
	else
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void peer_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct net_bridge *b = c->bridge;
	b->last_ms = now_ms();
	if (!b->client_gone)
		carry(bev, c->bev, &b->to_client);
	else
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

/* `bev` drained some output: resume reading the side that feeds it. */
static void drained(struct conn *c, struct bufferevent *bev, struct bufferevent *feeder, bool feeder_gone)
{
	if (finished(c)) {
		conn_free(c);
		return;
	}
	if (!feeder_gone && out_len(bev) < BRIDGE_HIGH_WATER / 4)
		bufferevent_enable(feeder, EV_READ);
}

static void client_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	drained(c, bev, c->bridge->peer, c->bridge->peer_gone);
}

static void peer_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	drained(c, bev, c->bev, c->bridge->client_gone);
}

/* A time-out on one side: idle only when nothing moved either way for the limit. */
static bool still_busy(struct conn *c, struct bufferevent *bev, short what)
{
	struct net_bridge *b = c->bridge;
	if (!(what & BEV_EVENT_TIMEOUT))
		return false;
	if ((what & BEV_EVENT_READING) && now_ms() - b->last_ms < (uint64_t)b->idle_seconds * 1000u) {
		bufferevent_enable(bev, EV_READ);
		return true;
	}
	return false;
}

static void side_event(struct conn *c, struct bufferevent *bev, short what, bool is_peer)
{
	struct net_bridge *b = c->bridge;
	if (still_busy(c, bev, what))
		return;
	const char *side = is_peer ? "peer" : "client";
	if (what & BEV_EVENT_TIMEOUT) {
		log_event(LOG_INFO, "timeout", "conn=%llu client=%s bridge=%s side=%s idle=%u", (unsigned long long)c->id, c->addr,
			b->peer_name, side, b->idle_seconds);
		conn_free(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* A TLS bufferevent may tell of the close before the read callback has seen the
	 * last records (a POP3 QUIT's +OK and the close_notify in one read). */
	if (evbuffer_get_length(bufferevent_get_input(bev)))
		(is_peer ? peer_read : client_read)(bev, c);
	bufferevent_disable(bev, EV_READ);
	if (is_peer)
		b->peer_gone = true;
	else
		b->client_gone = true;
	if (finished(c))   /* else once what is buffered for the other side has gone (or its write times out) */
		conn_free(c);
}

static void client_event(struct bufferevent *bev, short what, void *arg) { side_event(arg, bev, what, false); }
static void peer_event(struct bufferevent *bev, short what, void *arg) { side_event(arg, bev, what, true); }

/* The outbound connection as a bufferevent: its socket and TLS handed over, and the
 * bytes it had already read (buffered here, or decrypted inside OpenSSL) queued for
 * the client first. */
static struct bufferevent *peer_bev(struct conn *c, struct net_client *nc, char *err, size_t errlen)
{
	struct evbuffer *to_client = bufferevent_get_output(c->bev);
	if (nc->rpos < nc->rlen)
		evbuffer_add(to_client, nc->rbuf + nc->rpos, nc->rlen - nc->rpos);
	nc->rpos = nc->rlen = 0;
	char chunk[4096];
	int got;
	while (nc->ssl && SSL_pending(nc->ssl) > 0 && (got = SSL_read(nc->ssl, chunk, sizeof(chunk))) > 0)
		evbuffer_add(to_client, chunk, (size_t)got);
	struct bufferevent *bev = nc->ssl
		? bufferevent_openssl_socket_new(c->net->base, nc->fd, nc->ssl, BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE)
		: bufferevent_socket_new(c->net->base, nc->fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		snprintf(err, errlen, "cannot make a buffer for the connection to %s", nc->peer);
		return NULL;
	}
	if (nc->ssl)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	nc->fd = -1;      /* the bufferevent owns them now */
	nc->ssl = NULL;
	return bev;
}

bool conn_bridge(struct conn *c, struct net_client **peer, unsigned idle_seconds, char *err, size_t errlen)
{
	struct net_client *nc = *peer;
	if (c->closed || !c->bev || c->deflate || c->bridge || c->tls_pending) {
		snprintf(err, errlen, "the connection cannot be bridged now (closed, compressed or mid-handshake)");
		net_client_close(peer);
		return false;
	}
	struct net_bridge *b = calloc(1, sizeof(*b));
	struct bufferevent *pb = b ? peer_bev(c, nc, err, errlen) : NULL;
	if (!pb) {
		if (!b)
			snprintf(err, errlen, "out of memory");
		free(b);
		net_client_close(peer);
		return false;
	}
	snprintf(b->peer_name, sizeof(b->peer_name), "%s", nc->peer);
	net_client_close(peer);   /* its SSL_CTX reference only: the socket and SSL are pb's */
	b->peer = pb;
	b->idle_seconds = idle_seconds ? idle_seconds : 600;
	b->last_ms = now_ms();
	c->bridge = b;
	c->read_paused = false;
	deadline_stop(c);   /* the login and line deadlines belong to the protocol, now elsewhere */
	struct timeval idle = { .tv_sec = (time_t)b->idle_seconds };
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_set_timeouts(pb, &idle, &idle);
	bufferevent_setwatermark(c->bev, EV_READ, 0, BRIDGE_HIGH_WATER);
	bufferevent_setwatermark(pb, EV_READ, 0, BRIDGE_HIGH_WATER);
	bufferevent_setcb(c->bev, client_read, client_write, client_event, c);
	bufferevent_setcb(pb, peer_read, peer_write, peer_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	bufferevent_enable(pb, EV_READ | EV_WRITE);
	log_event(LOG_INFO, "bridge", "conn=%llu client=%s peer=%s idle=%u", (unsigned long long)c->id, c->addr,
		b->peer_name, b->idle_seconds);
	/* What the client pipelined after its login is already here: send it on. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		client_read(c->bev, c);
	return true;
}

bool conn_bridged(const struct conn *c)
{
	return c->bridge != NULL;
}
