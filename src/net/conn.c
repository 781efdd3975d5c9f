/* conn.c - one client connection: its bufferevent (bounded input: a read
 * high-watermark; an idle timeout), feeding the protocol session through its
 * struct proto_ops, back-pressure, STARTTLS, the TLS handshake's outcome, closing
 * once the last reply has left, and the accessors a protocol adapter uses
 * (net/server.h).  Blocking work never runs here: jobs off the loop keep the
 * connection busy (conn_busy) and it is freed only when they return. */
#include "net/internal.h"
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "net/tls.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"

#define INPUT_HIGH_WATER (256u << 10)   /* stop reading when this much is unprocessed */
#define OUTPUT_HIGH_WATER (256u << 10)  /* stop reading while the client does not read */
#define FEED_MAX (64u << 10)

void conn_free(struct conn *c)
{
	struct net *net = c->net;
	deadline_stop(c);
	bridge_free(c);
	if (c->busy) {
		/* A job points at us; finish when it returns. */
		c->closed = true;
		if (c->closer) {
			event_free(c->closer);
			c->closer = NULL;
		}
		if (c->bev) {
			bufferevent_free(c->bev);
			c->bev = NULL;
		}
		return;
	}
	if (c->sniff) {
		evutil_closesocket(event_get_fd(c->sniff));
		event_free(c->sniff);
	}
	if (c->delay)
		event_free(c->delay);   /* only when the server stops: the job is freed with it */
	if (c->closer)
		event_free(c->closer);
	if (c->session)
		c->ops->disconnected(c->session);
	log_event(LOG_INFO, "disconnect", "conn=%llu client=%s", (unsigned long long)c->id, c->addr);
	if (c->session)
		c->ops->destroy(c->session);
	c->session = NULL;
	net_deflate_free(&c->deflate);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->refusing)
		net->n_refusing--;
	else
		limits_release(net, c->addr);
	if (c->prev)
		c->prev->next = c->next;
	else
		net->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (!c->refusing)
		net->n_conns--;
	free(c);
	if (net->shutting_down && net->n_conns == 0)
		event_base_loopexit(net->base, NULL);
}

/* Bytes not yet handed to the kernel: a TLS filter (after STARTTLS) keeps
 * encrypted bytes in the bufferevent underneath it. */
static size_t pending_output(struct conn *c)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void close_when_flushed(struct conn *c);

static void closer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	event_free(c->closer);
	c->closer = NULL;
	close_when_flushed(c);
}

/* Free the connection once its last reply has left; bounded by the write timeout. */
static void close_when_flushed(struct conn *c)
{
	if (!c->bev || pending_output(c) == 0 || ++c->close_checks > 500) {
		conn_free(c);
		return;
	}
	if (!c->closer) {
		struct timeval tv = { 0, 20000 };
		c->closer = evtimer_new(c->net->base, closer_cb, c);
		if (!c->closer || evtimer_add(c->closer, &tv) != 0)
			conn_free(c);
	}
}

/* Move replies to the socket; close or pause as the session asks. */
void conn_flush(struct conn *c)
{
	if (c->bridge)
		return;   /* the bytes are the bridge's now (bridge.c) */
	struct buf *out = c->ops->output(c->session);
	struct evbuffer *ob = bufferevent_get_output(c->bev);
	if (out->len) {
		bool sent = conn_output(c, ob, out->data, out->len);   /* compressed after COMPRESS (deflate.c) */
		buf_reset(out);
		if (!sent) {   /* zlib failed (memory): nothing more can be said; freed off the caller's stack */
			log_event(LOG_ERR, "compress_error", "conn=%llu error=\"cannot compress the output\"", (unsigned long long)c->id);
			bufferevent_disable(c->bev, EV_READ);
			c->tls_failed = true;   /* as after a failed handshake: no more input, any event frees */
			struct timeval now = { 0, 0 };
			if (!c->closer && (c->closer = evtimer_new(c->net->base, closer_cb, c)))
				evtimer_add(c->closer, &now);
			return;
		}
	}
	if (c->ops->wants_close(c->session)) {
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(ob) == 0)
			close_when_flushed(c);
		return;   /* write_cb frees once flushed */
	}
	if (evbuffer_get_length(ob) > OUTPUT_HIGH_WATER && !c->read_paused) {
		c->read_paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

static void start_tls(struct conn *c);

static bool streaming(const struct conn *c)
{
	return c->ops->streaming && c->ops->streaming(c->session);
}

void conn_process(struct conn *c)
{
	if (!c->session || c->tls_pending || c->tls_failed || c->bridge)
		return;
	while (!c->read_paused && !c->ops->waiting(c->session) && !c->ops->wants_close(c->session) &&
		!streaming(c)) {
		struct evbuffer *in = conn_input(c, INPUT_HIGH_WATER);   /* inflated after COMPRESS (deflate.c) */
		if (!in)
			return;   /* a broken compressed stream: the session says so and closes */
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			break;
		if (len > FEED_MAX)
			len = FEED_MAX;
		unsigned char *p = evbuffer_pullup(in, (ssize_t)len);
		bool in_data = c->ops->in_data && c->ops->in_data(c->session);
		size_t used = c->ops->feed(c->session, p, len);
		evbuffer_drain(in, used);
		deadline_fed(c, in_data, used);
		bool closing = c->ops->wants_close(c->session);
		conn_flush(c);   /* may free c when closing */
		if (closing)
			return;
		if (c->ops->wants_tls(c->session)) {
			conn_flush(c);
			start_tls(c);
			return;
		}
		if (used == 0)
			break;
	}
	deadline_update(c);   /* a line or message content may have begun */
	conn_flush(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (!c->got_data) {
		c->got_data = true;
		/* A TLS ClientHello (record type 22) on a plaintext port: the client was
		 * set to SSL/TLS where STARTTLS (or nothing) is spoken.  It cannot read a
		 * plaintext reply, so log the cause and close. */
		unsigned char *p = evbuffer_pullup(bufferevent_get_input(bev), 1);
		if (p && p[0] == 0x16 && !c->ssl) {
			log_event(LOG_WARN, "tls_mismatch", "conn=%llu client=%s listener=%s reason=\"the client started a TLS handshake on a port that expects plaintext %s%s\" hint=\"set the mail program's security to %s, or use the implicit-TLS port\"",
				(unsigned long long)c->id, c->addr, c->listener->name, c->ops->name,
				c->listener->tls == TLS_STARTTLS ? " with STARTTLS" : "",
				c->listener->tls == TLS_STARTTLS ? "STARTTLS" : "none");
			conn_free(c);
			return;
		}
	}
	conn_process(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *ob = bufferevent_get_output(bev);
	if (!c->session || c->ops->wants_close(c->session)) {
		if (evbuffer_get_length(ob) == 0)
			close_when_flushed(c);
		return;
	}
	/* A long POP3 answer (RETR, TOP, LIST) is produced as the client reads it. */
	if (streaming(c) && evbuffer_get_length(ob) < OUTPUT_HIGH_WATER / 4) {
		c->ops->pump(c->session);
		bool more = streaming(c);
		conn_flush(c);
		if (!more)
			conn_process(c);   /* pipelined commands waiting behind the answer */
		return;
	}
	if (c->read_paused && evbuffer_get_length(ob) < OUTPUT_HIGH_WATER / 4) {
		c->read_paused = false;
		bufferevent_enable(bev, EV_READ);
		conn_process(c);
	}
}

/* The protocol spoken on this listener (its operations were chosen at accept). */
void conn_start_session(struct conn *c, const char *tls_desc)
{
	if (c->ops->start(c, tls_desc))
		deadline_update(c);   /* the login deadline now applies */
}

static void tls_error_text(struct bufferevent *bev, char *out, size_t outsz)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (e)
		tls_last_error(e, out, outsz);
	else
		snprintf(out, outsz, "%s", EVUTIL_SOCKET_ERROR() ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()) : "connection closed");
}

/* The handshake of a refused connection finished: the refusal, then close. */
static void refuse_over_tls(struct conn *c)
{
	struct buf rb;
	buf_init(&rb, 1024);
	c->ops->refuse_busy(&rb, c->net->conf, c->refusal);
	evbuffer_add(bufferevent_get_output(c->bev), rb.data, rb.len);
	buf_free(&rb);
	bufferevent_disable(c->bev, EV_READ);
	close_when_flushed(c);
}

/* A failed handshake: OpenSSL has queued an alert (e.g. 70 protocol_version for a
 * TLS 1.0/1.1 ClientHello, RFC 8446 §6.2).  After STARTTLS the TLS filter keeps it
 * in the socket bufferevent underneath; freeing at once would drop it and the
 * client would see a bare hang-up.  Send it, then close (bounded: close_when_flushed). */
static void close_after_alert(struct conn *c)
{
	c->tls_pending = false;
	c->tls_failed = true;
	bufferevent_disable(c->bev, EV_READ);
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under)
		bufferevent_enable(under, EV_WRITE);
	close_when_flushed(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake finished (implicit TLS, or after STARTTLS). */
		char desc[200];
		tls_describe(c->ssl, desc, sizeof(desc));
		c->tls_pending = false;
		log_event(LOG_INFO, "tls", "conn=%llu client=%s %s", (unsigned long long)c->id, c->addr, desc);
		metrics_count(METRIC_TLS_HANDSHAKES, SSL_get_version(c->ssl), 1);
		if (c->refusing) {
			refuse_over_tls(c);
			return;
		}
		if (!c->session) {
			conn_start_session(c, desc);
		} else {
			c->ops->tls_started(c->session, desc);
			conn_process(c);
		}
		return;
	}
	if (c->tls_pending && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		char e[256];
		tls_error_text(bev, e, sizeof(e));
		const char *hint = strstr(e, "wrong version number") || strstr(e, "http request") || strstr(e, "unknown protocol")
			? "the client did not speak TLS: set the mail program's security to STARTTLS for this port, or use SSL/TLS on the implicit-TLS port"
			: "see the reason; an old client may lack TLS 1.2";
		log_event(LOG_WARN, "tls_handshake_failed", "conn=%llu client=%s listener=%s reason=\"%s\" hint=\"%s\"",
			(unsigned long long)c->id, c->addr, c->listener->name, e, hint);
		close_after_alert(c);
		return;
	}
	if (c->tls_failed) {   /* the client hung up after our alert, or the socket failed */
		conn_free(c);
		return;
	}
	if (!c->session) {
		conn_free(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		/* The client stopped reading our replies: nothing more can be said. */
		log_event(LOG_INFO, "timeout", "conn=%llu client=%s direction=write", (unsigned long long)c->id, c->addr);
		conn_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->ops->waiting(c->session) || c->busy) {
			bufferevent_enable(bev, EV_READ);   /* our own slowness, not the client's */
			return;
		}
		log_event(LOG_INFO, "timeout", "conn=%llu client=%s", (unsigned long long)c->id, c->addr);
		c->ops->timeout(c->session);
		conn_flush(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(c);
}

/* The session queued "220 Ready to start TLS": send it in plaintext, throw away
 * whatever plaintext the client pipelined after STARTTLS (RFC 3207 §4.2; the
 * CVE-2011-0411 injection), and put TLS under the session. */
static void start_tls(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t junk = evbuffer_get_length(in);
	if (junk) {
		evbuffer_drain(in, junk);
		log_event(LOG_WARN, "starttls_discarded", "conn=%llu client=%s bytes=%zu reason=\"plaintext pipelined after STARTTLS is never executed\"",
			(unsigned long long)c->id, c->addr, junk);
	}
	c->ssl = tls_new_ssl(c->net->tls);
	struct bufferevent *tb = c->ssl ? bufferevent_openssl_filter_new(c->net->base, c->bev, c->ssl,
		BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!tb) {
		if (c->ssl)
			SSL_free(c->ssl);
		c->ssl = NULL;
		log_event(LOG_ERR, "tls_error", "conn=%llu error=\"cannot start TLS\"", (unsigned long long)c->id);
		conn_free(c);
		return;
	}
	c->bev = tb;
	c->tls_pending = true;
	struct timeval idle = { .tv_sec = (time_t)c->net->conf->idle_timeout };
	bufferevent_set_timeouts(tb, &idle, &idle);
	bufferevent_setwatermark(tb, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_setcb(tb, read_cb, write_cb, event_cb, c);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	deadline_update(c);   /* the handshake deadline */
}

void conn_setup_bev(struct conn *c, struct bufferevent *bev)
{
	struct timeval idle = { .tv_sec = (time_t)c->net->conf->idle_timeout };
	c->bev = bev;
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_setwatermark(bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A deadline's timer fired (deadline.c): one that has passed ends the session in
 * the protocol's words; mid-handshake nothing can be said in plaintext. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	unsigned long long limit;
	enum deadline_kind k = deadline_passed(c, &limit);
	if (k == DEADLINE_NONE)
		return;
	if (k == DEADLINE_TLS || !c->session) {
		conn_free(c);
		return;
	}
	c->ops->deadline(c->session, k, limit);
	conn_flush(c);   /* frees c once the reply has left */
}

/* A connection record.  ipc NULL: a refusal delivered over TLS, counted apart
 * (n_refusing), not in the connection limits it enforces. */
struct conn *conn_new(struct listener_ctx *lc, const char *addr, struct ip_count *ipc)
{
	struct net *net = lc->net;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->net = net;
	c->listener = lc->conf;
	c->ops = lc->proto;
	c->ctx = lc->ctx;
	c->id = ++net->next_conn_id;
	c->trusted = conf_is_trusted(net->conf, addr);
	snprintf(c->addr, sizeof(c->addr), "%s", addr);   /* "local" on a unix socket: shorter than the field */
	c->next = net->conns;
	if (net->conns)
		net->conns->prev = c;
	net->conns = c;
	if (ipc) {
		ipc->count++;
		net->n_conns++;
	} else {
		c->refusing = true;
		net->n_refusing++;
	}
	if (!deadline_start(c, deadline_cb)) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* --- one connection, for its protocol adapter (net/server.h) ------------------------ */

void *conn_ctx(const struct conn *c) { return c->ctx; }
void conn_set_session(struct conn *c, void *session) { c->session = session; }
void *conn_session(const struct conn *c) { return c->session; }
const char *conn_protocol(const struct conn *c) { return c->ops->name; }
uint64_t conn_id(const struct conn *c) { return c->id; }
const char *conn_addr(const struct conn *c) { return c->addr; }
const struct conf_listener *conn_listener(const struct conn *c) { return c->listener; }
bool conn_trusted(const struct conn *c) { return c->trusted; }

bool conn_set_client_addr(struct conn *c, const char *addr)
{
	unsigned char bin[sizeof(struct in6_addr)];
	if (!addr || strlen(addr) >= sizeof(c->addr) ||
		(inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1))
		return false;
	if (!c->via[0])
		snprintf(c->via, sizeof(c->via), "%s", c->addr);
	log_event(LOG_INFO, "client_address", "conn=%llu client=%s via=%s", (unsigned long long)c->id, addr, c->via);
	if (!c->refusing)
		limits_move(c->net, c->addr, addr);
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->trusted = conf_is_trusted(c->net->conf, addr);
	return true;
}

bool conn_peer(const struct conn *c, struct conn_peer *peer)
{
	if (c->local)
		*peer = c->peer;
	return c->local;
}
bool conn_tls_active(const struct conn *c) { return c->ssl != NULL; }

bool conn_tls_params(const struct conn *c, char *version, size_t vsz, char *cipher, size_t csz, int *bits)
{
	if (!c->ssl)
		return false;
	snprintf(version, vsz, "%s", SSL_get_version(c->ssl));
	snprintf(cipher, csz, "%s", SSL_get_cipher_name(c->ssl));
	*bits = SSL_get_cipher_bits(c->ssl, NULL);
	return true;
}

unsigned conn_port(const struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}
bool conn_tls_available(const struct conn *c) { return c->net->tls != NULL; }
bool conn_closed(const struct conn *c) { return c->closed; }
void conn_close(struct conn *c) { conn_free(c); }
void conn_busy(struct conn *c) { c->busy++; }

void conn_set_idle_timeout(struct conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = (time_t)seconds };
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

bool conn_unbusy(struct conn *c)
{
	c->busy--;
	if (c->closed) {
		conn_free(c);
		return false;
	}
	return true;
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	event_free(c->delay);
	c->delay = NULL;
	c->delay_cb(c->delay_arg);
}

bool conn_after(struct conn *c, unsigned ms, void (*cb)(void *arg), void *arg)
{
	if (c->delay)
		return false;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	c->delay = evtimer_new(c->net->base, delay_cb, c);
	if (!c->delay || evtimer_add(c->delay, &tv) != 0) {
		if (c->delay)
			event_free(c->delay);
		c->delay = NULL;
		return false;
	}
	c->delay_cb = cb;
	c->delay_arg = arg;
	return true;
}
