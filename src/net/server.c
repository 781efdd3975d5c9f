/* server.c - listeners and connections: the transport (see server.h).
 *
 * One libevent loop serves every connection.  Each connection is a bufferevent with
 * bounded input (a read high-watermark), an idle timeout, and a protocol session
 * (through its struct proto_ops) fed with whatever arrived.  Blocking work never
 * runs here: the fsync-heavy commit of an accepted message runs on the commit work
 * queue, delivery on its own threads (both built by serve/server.c). */
#include "net/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "net/tls.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"

#define INPUT_HIGH_WATER (256u << 10)   /* stop reading when this much is unprocessed */
#define OUTPUT_HIGH_WATER (256u << 10)  /* stop reading while the client does not read */
#define FEED_MAX (64u << 10)



/* --- per-IP connection counts ---------------------------------------------- */

static unsigned ip_hash(const char *s)
{
	return hash_fnv1a(s) % IP_BUCKETS;
}

static struct ip_count *ip_find(struct net *net, const char *addr, bool create)
{
	unsigned h = ip_hash(addr);
	for (struct ip_count *e = net->ips[h]; e; e = e->next)
		if (strcmp(e->addr, addr) == 0)
			return e;
	if (!create)
		return NULL;
	struct ip_count *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->next = net->ips[h];
	net->ips[h] = e;
	return e;
}

static void ip_release(struct net *net, const char *addr)
{
	unsigned h = ip_hash(addr);
	for (struct ip_count **p = &net->ips[h]; *p; p = &(*p)->next) {
		if (strcmp((*p)->addr, addr) == 0) {
			if (--(*p)->count == 0) {
				struct ip_count *dead = *p;
				*p = dead->next;
				free(dead);
			}
			return;
		}
	}
}

/* --- connections ----------------------------------------------------------- */

void conn_free(struct conn *c)
{
	struct net *net = c->net;
	deadline_stop(c);
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
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->refusing)
		net->n_refusing--;
	else
		ip_release(net, c->addr);
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
	struct buf *out = c->ops->output(c->session);
	struct evbuffer *ob = bufferevent_get_output(c->bev);
	if (out->len) {
		evbuffer_add(ob, out->data, out->len);
		buf_reset(out);
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
	if (!c->session || c->tls_pending || c->tls_failed)
		return;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->read_paused && !c->ops->waiting(c->session) && !c->ops->wants_close(c->session) &&
		!streaming(c)) {
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
static void start_session(struct conn *c, const char *tls_desc)
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
		if (c->refusing) {
			refuse_over_tls(c);
			return;
		}
		if (!c->session) {
			start_session(c, desc);
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

/* --- accepting ------------------------------------------------------------- */

static void setup_bev(struct conn *c, struct bufferevent *bev)
{
	struct timeval idle = { .tv_sec = (time_t)c->net->conf->idle_timeout };
	c->bev = bev;
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_setwatermark(bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
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
		setup_bev(c, bev);
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

/* Room for new clients when many connections are slow or hostile: the last
 * connections_reserved percent of the slots go only to addresses that have no
 * connection open, so no address (nor a few) can take every slot. */
static unsigned long long reserved_slots(const struct conf *cf)
{
	return cf->connections * cf->connections_reserved / 100;
}

/* May this address have another connection?  false: *why says which limit. */
static bool admit(struct net *net, const char *addr, struct ip_count **ipc, enum conn_refusal *why)
{
	const struct conf *cf = net->conf;
	if (net->n_conns >= cf->connections) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"total limit\" limit=%llu", addr,
			(unsigned long long)cf->connections);
		*why = CONN_REFUSE_TOTAL;
		return false;
	}
	*ipc = ip_find(net, addr, true);
	if (!*ipc || (*ipc)->count >= cf->connections_per_ip) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"per-address limit\" limit=%llu", addr,
			(unsigned long long)cf->connections_per_ip);
		*why = CONN_REFUSE_ADDRESS;
		return false;
	}
	if ((*ipc)->count > 0 && net->n_conns >= cf->connections - reserved_slots(cf) && !conf_is_trusted(cf, addr)) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"reserved for new addresses\" open=%u from_address=%u reserved=%llu",
			addr, net->n_conns, (*ipc)->count, reserved_slots(cf));
		*why = CONN_REFUSE_RESERVED;
		return false;
	}
	return true;
}

/* A connection record.  ipc NULL: a refusal delivered over TLS, counted apart
 * (n_refusing), not in the connection limits it enforces. */
static struct conn *conn_new(struct listener_ctx *lc, const char *addr, struct ip_count *ipc)
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
	memcpy(c->addr, addr, sizeof(c->addr));
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
	if (!deadline_start(c)) {
		conn_free(c);
		return NULL;
	}
	return c;
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
static void refuse(evutil_socket_t fd, struct listener_ctx *lc, const char *addr, enum conn_refusal why)
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

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	struct listener_ctx *lc = arg;
	struct net *net = lc->net;
	char addr[INET6_ADDRSTRLEN];
	format_addr(sa, addr, sizeof(addr));
	struct ip_count *ipc = NULL;
	enum conn_refusal why;
	if (!admit(net, addr, &ipc, &why)) {
		refuse(fd, lc, addr, why);
		return;
	}
	struct conn *c = conn_new(lc, addr, ipc);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	log_event(LOG_INFO, "connect", "conn=%llu client=%s listener=%s%s", (unsigned long long)c->id, addr,
		lc->conf->name, c->trusted ? " trusted=yes" : "");
	/* Replies are small and the client waits for each: do not let Nagle hold them. */
	int one = 1;
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
	setup_bev(c, bev);
	start_session(c, NULL);
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
	if (!net->base) {
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
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl) == 0)
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
	struct conn *next;
	for (struct conn *c = net->conns; c; c = next) {
		next = c->next;
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
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (net->ips[i]) {
			struct ip_count *n = net->ips[i]->next;
			free(net->ips[i]);
			net->ips[i] = n;
		}
	}
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

/* --- one connection, for its protocol adapter ------------------------------------ */

void *conn_ctx(const struct conn *c) { return c->ctx; }
void conn_set_session(struct conn *c, void *session) { c->session = session; }
void *conn_session(const struct conn *c) { return c->session; }
const char *conn_protocol(const struct conn *c) { return c->ops->name; }
uint64_t conn_id(const struct conn *c) { return c->id; }
const char *conn_addr(const struct conn *c) { return c->addr; }
const struct conf_listener *conn_listener(const struct conn *c) { return c->listener; }
bool conn_trusted(const struct conn *c) { return c->trusted; }
bool conn_tls_active(const struct conn *c) { return c->ssl != NULL; }
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
