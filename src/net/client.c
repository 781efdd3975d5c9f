/* client.c - blocking outbound connections with time-outs and TLS (see client.h). */
#include "net/client.h"
#include "net/client_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct net_cancel {
	int fd;   /* an eventfd that becomes readable, for good, when fired */
};


struct net_cancel *net_cancel_new(void)
{
	struct net_cancel *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->fd < 0) {
		free(k);
		return NULL;
	}
	return k;
}

void net_cancel_fire(struct net_cancel *k)
{
	uint64_t one = 1;
	if (k && write(k->fd, &one, sizeof(one)) < 0)
		return;   /* the counter is already non-zero: fired before */
}

void net_cancel_free(struct net_cancel **kp)
{
	struct net_cancel *k = *kp;
	if (!k)
		return;
	close(k->fd);
	free(k);
	*kp = NULL;
}

static bool cancelled(const struct net_cancel *k)
{
	struct pollfd p = { .fd = k ? k->fd : -1, .events = POLLIN };
	return k && poll(&p, 1, 0) > 0;
}

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_CANCELLED };

/* Wait for fd, bounded by the time-out, waking at once when the cancel fires (the
 * eventfd is never read, so once fired every later wait returns at once too). */
static enum wait_result wait_fd(const struct net_cancel *k, int fd, short events, unsigned ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = k ? k->fd : -1, .events = POLLIN } };
	int r;
	do
		r = poll(p, 2, (int)ms);
	while (r < 0 && errno == EINTR);
	if (r > 0 && (p[1].revents & POLLIN))
		return WAIT_CANCELLED;
	return r > 0 ? WAIT_READY : WAIT_TIMEOUT;
}

#define CANCELLED_TEXT "stopped: the server is shutting down"

/* "read: no answer within 300s" or "read: stopped: ..." */
static void wait_failed(char *err, size_t errlen, const char *what, enum wait_result w, unsigned seconds)
{
	if (w == WAIT_CANCELLED)
		snprintf(err, errlen, "%s: " CANCELLED_TEXT, what);
	else
		snprintf(err, errlen, "%s: no answer within %us", what, seconds);
}

static enum net_status status_of(int e)
{
	/* ENOENT: a unix socket path with no socket behind it, nothing listens. */
	if (e == ECONNREFUSED || e == ENOENT)
		return NET_REFUSED;
	if (e == ETIMEDOUT)
		return NET_TIMEOUT;
	if (e == ENETUNREACH || e == EHOSTUNREACH || e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
		return NET_UNREACHABLE;
	return NET_ERROR;
}

static unsigned connect_ms(const struct net_client_opts *o)
{
	return o->connect_ms ? o->connect_ms : o->connect_timeout * 1000u;
}

/* Non-blocking connect bounded by the time-out. */
static int connect_one(const struct addrinfo *ai, const struct net_client_opts *o, enum net_status *st,
	char *err, size_t errlen)
{
	*st = NET_UNREACHABLE;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		*st = status_of(errno) == NET_ERROR ? NET_UNREACHABLE : status_of(errno);
		return -1;
	}
	if (o->source && o->source[0]) {
		struct addrinfo hints = { .ai_family = ai->ai_family, .ai_flags = AI_NUMERICHOST }, *src = NULL;
		if (getaddrinfo(o->source, NULL, &hints, &src) != 0 || bind(fd, src->ai_addr, src->ai_addrlen) != 0) {
			snprintf(err, errlen, "cannot bind to source address %s", o->source);
			if (src)
				freeaddrinfo(src);
			close(fd);
			return -1;
		}
		freeaddrinfo(src);
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		*st = status_of(errno);
		close(fd);
		return -1;
	}
	enum wait_result w = wait_fd(o->cancel, fd, POLLOUT, connect_ms(o));
	if (w != WAIT_READY) {
		if (w == WAIT_CANCELLED)
			snprintf(err, errlen, "connect: " CANCELLED_TEXT);
		else
			snprintf(err, errlen, "connect: timed out after %us", (connect_ms(o) + 999) / 1000);
		*st = w == WAIT_CANCELLED ? NET_ERROR : NET_TIMEOUT;
		close(fd);
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		snprintf(err, errlen, "connect: %s", strerror(soerr));
		*st = status_of(soerr);
		close(fd);
		return -1;
	}
	*st = NET_OK;
	return fd;
}

int net_resolve(const char *host, char *out, size_t outsz)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(out, outsz, "%s", gai_strerror(rc));
		return 0;
	}
	int n = 0;
	size_t used = 0;
	out[0] = '\0';
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		if (getnameinfo(a->ai_addr, a->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0 || strstr(out, ip))
			continue;
		int w = snprintf(out + used, outsz - used, "%s%s", n ? " " : "", ip);
		if (w < 0 || (size_t)w >= outsz - used)
			break;
		used += (size_t)w;
		n++;
	}
	freeaddrinfo(res);
	return n;
}

static void transcribe(const struct net_client *c, const char *who, const char *text)
{
	if (c->transcript)
		c->transcript(c->transcript_arg, who, text);
}

/* Each address in turn; the status that says most: a time-out, then a refusal. */
static int connect_any(struct addrinfo *res, const struct net_client_opts *o, enum net_status *st, char *peer,
	size_t peersz, char *err, size_t errlen)
{
	int fd = -1;
	enum net_status worst = NET_UNREACHABLE, one = NET_UNREACHABLE;
	for (struct addrinfo *ai = res; ai && fd < 0 && !cancelled(o->cancel); ai = ai->ai_next) {
		fd = connect_one(ai, o, &one, err, errlen);
		if (fd < 0 && (one == NET_TIMEOUT || (one == NET_REFUSED && worst != NET_TIMEOUT) ||
			(one == NET_ERROR && worst == NET_UNREACHABLE)))
			worst = one;
		if (fd >= 0) {
			/* SMTP is a dialogue of short writes: without this, Nagle and delayed
			 * ACKs add ~40 ms to every message. */
			int yes = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
			getnameinfo(ai->ai_addr, ai->ai_addrlen, peer, (socklen_t)peersz, NULL, 0, NI_NUMERICHOST);
		}
	}
	*st = fd >= 0 ? NET_OK : worst;
	return fd;
}

static struct net_client *client_new(int fd, const struct net_client_opts *o, const char *peer,
	enum net_status *st, char *err, size_t errlen);

struct net_client *net_client_open(const char *host, unsigned port, const struct net_client_opts *o,
	enum net_status *stp, char *err, size_t errlen)
{
	enum net_status st_local;
	enum net_status *st = stp ? stp : &st_local;
	char ports[8];
	snprintf(ports, sizeof(ports), "%u", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int gai = getaddrinfo(host, ports, &hints, &res);
	if (gai != 0) {
		*st = NET_UNREACHABLE;
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
		return NULL;
	}
	char peer[64] = "";
	int fd = connect_any(res, o, st, peer, sizeof(peer), err, errlen);
	freeaddrinfo(res);
	if (fd < 0) {
		if (cancelled(o->cancel))
			snprintf(err, errlen, "connect: " CANCELLED_TEXT);
		return NULL;
	}
	struct net_client *c = client_new(fd, o, peer, st, err, errlen);
	if (c && c->transcript) {
		char ev[400];
		snprintf(ev, sizeof(ev), "connected to %.255s port %u from %s", host, port, c->local);
		transcribe(c, "--", ev);
	}
	return c;
}

/* The connection around a connected socket. */
static struct net_client *client_new(int fd, const struct net_client_opts *o, const char *peer,
	enum net_status *st, char *err, size_t errlen)
{
	struct net_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		*st = NET_ERROR;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = fd;
	c->dane_matched = -1;
	c->io_timeout = o->io_ms ? (o->io_ms + 999) / 1000 : o->io_timeout ? o->io_timeout : 60;
	c->io_ms = o->io_ms ? o->io_ms : c->io_timeout * 1000u;
	c->cancel = o->cancel;
	c->transcript = o->transcript;
	c->transcript_arg = o->transcript_arg;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family != AF_UNIX)
		getnameinfo((struct sockaddr *)&ss, sl, c->local, sizeof(c->local), NULL, 0, NI_NUMERICHOST);
	return c;
}

struct net_client *net_client_open_unix(const char *path, const struct net_client_opts *o,
	enum net_status *stp, char *err, size_t errlen)
{
	enum net_status st_local;
	enum net_status *st = stp ? stp : &st_local;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!path[0] || strlen(path) >= sizeof(sun.sun_path)) {
		*st = NET_UNREACHABLE;
		snprintf(err, errlen, "unix socket path %s%.100s", path[0] ? "too long: " : "empty", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	struct addrinfo ai = { .ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM, .ai_addr = (struct sockaddr *)&sun,
		.ai_addrlen = (socklen_t)sizeof(sun) };
	struct net_client_opts uo = *o;
	uo.source = NULL;
	if (cancelled(o->cancel)) {
		*st = NET_ERROR;
		snprintf(err, errlen, "connect: " CANCELLED_TEXT);
		return NULL;
	}
	int fd = connect_one(&ai, &uo, st, err, errlen);
	if (fd < 0)
		return NULL;
	struct net_client *c = client_new(fd, o, path, st, err, errlen);
	if (c && c->transcript) {
		char ev[400];
		snprintf(ev, sizeof(ev), "connected to unix:%.255s", path);
		transcribe(c, "--", ev);
	}
	return c;
}

struct net_client *net_client_adopt(int fd, const struct net_client_opts *o, const char *peer, char *err, size_t errlen)
{
	enum net_status st;
	return client_new(fd, o, peer, &st, err, errlen);
}

void net_client_set_io_ms(struct net_client *c, unsigned ms)
{
	c->io_ms = ms ? ms : 1;
	c->io_timeout = (c->io_ms + 999) / 1000;
}

struct net_client *net_client_connect(const char *host, unsigned port, const struct net_client_opts *o,
	char *err, size_t errlen)
{
	return net_client_open(host, port, o, NULL, err, errlen);
}

const char *net_client_local(const struct net_client *c)
{
	return c->local;
}

enum net_status net_client_status(const struct net_client *c)
{
	return c->status;
}

void net_client_close(struct net_client **cp)
{
	struct net_client *c = *cp;
	if (!c)
		return;
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	net_tls_session_free(&c->offer);
	if (c->fd >= 0)   /* -1: handed to a bridge (bridge.c) */
		close(c->fd);
	free(c);
	*cp = NULL;
}

const char *net_client_peer(const struct net_client *c)
{
	return c->peer;
}

static void ssl_err(char *err, size_t errlen, const char *what)
{
	char e[200];
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, e, sizeof(e));
	else
		snprintf(e, sizeof(e), "%s", errno ? strerror(errno) : "connection closed");
	snprintf(err, errlen, "%s: %s", what, e);
	ERR_clear_error();
}

/* Wait as an SSL call asks, bounded by the I/O time-out; *w tells a silent peer
 * (or a shutdown) from a broken connection (WAIT_READY with false). */
static bool ssl_wait(struct net_client *c, int r, enum wait_result *w)
{
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		*w = wait_fd(c->cancel, c->fd, POLLIN, c->io_ms);
	else if (e == SSL_ERROR_WANT_WRITE)
		*w = wait_fd(c->cancel, c->fd, POLLOUT, c->io_ms);
	else {
		*w = WAIT_READY;
		return false;
	}
	return *w == WAIT_READY;
}

static void tls_fail(struct net_client *c, enum wait_result w, const char *what, char *err, size_t errlen)
{
	if (w != WAIT_READY)
		wait_failed(err, errlen, what, w, c->io_timeout);
	else
		ssl_err(err, errlen, what);
}

bool net_client_write(struct net_client *c, const void *buf, size_t n, char *err, size_t errlen)
{
	const char *p = buf;
	while (n > 0) {
		if (c->ssl) {
			int r = SSL_write(c->ssl, p, n > (1u << 30) ? 1 << 30 : (int)n);
			if (r > 0) {
				p += r;
				n -= (size_t)r;
				continue;
			}
			enum wait_result to;
			if (!ssl_wait(c, r, &to)) {
				tls_fail(c, to, "write", err, errlen);
				return false;
			}
			continue;
		}
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			enum wait_result wr = wait_fd(c->cancel, c->fd, POLLOUT, c->io_ms);
			if (wr != WAIT_READY) {
				if (wr == WAIT_CANCELLED)
					snprintf(err, errlen, "write: " CANCELLED_TEXT);
				else
					snprintf(err, errlen, "write: timed out after %us", c->io_timeout);
				return false;
			}
		} else {
			snprintf(err, errlen, "write: %s", strerror(errno));
			return false;
		}
	}
	return true;
}

/* Refill the read buffer; false on error, close or time-out (c->status says which). */
static bool fill(struct net_client *c, char *err, size_t errlen)
{
	c->rlen = c->rpos = 0;
	for (;;) {
		if (c->ssl) {
			int r = SSL_read(c->ssl, c->rbuf, sizeof(c->rbuf));
			if (r > 0) {
				c->rlen = (size_t)r;
				return true;
			}
			if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
				snprintf(err, errlen, "read: connection closed by the server");
				c->status = NET_CLOSED;
				return false;
			}
			enum wait_result to;
			if (!ssl_wait(c, r, &to)) {
				tls_fail(c, to, "read", err, errlen);
				c->status = to == WAIT_TIMEOUT ? NET_TIMEOUT : to == WAIT_READY ? NET_CLOSED : NET_ERROR;
				return false;
			}
			continue;
		}
		ssize_t r = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
		if (r > 0) {
			c->rlen = (size_t)r;
			return true;
		}
		if (r == 0) {
			snprintf(err, errlen, "read: connection closed by the server");
			c->status = NET_CLOSED;
			return false;
		}
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			c->status = NET_CLOSED;
			return false;
		}
		enum wait_result wr = wait_fd(c->cancel, c->fd, POLLIN, c->io_ms);
		if (wr != WAIT_READY) {
			wait_failed(err, errlen, "read", wr, c->io_timeout);
			c->status = wr == WAIT_TIMEOUT ? NET_TIMEOUT : NET_ERROR;
			return false;
		}
	}
}

long net_client_read_line(struct net_client *c, char *line, size_t linesz, char *err, size_t errlen)
{
	size_t o = 0;
	bool any = false;
	for (;;) {
		if (c->rpos >= c->rlen && !fill(c, err, errlen)) {
			/* Bytes that never form a line (e.g. a TLS alert) are not a line. */
			if (any && c->status == NET_CLOSED)
				c->status = NET_GARBAGE;
			return -1;
		}
		char ch = c->rbuf[c->rpos++];
		any = true;
		if (ch == '\n')
			break;
		if (o + 1 < linesz)
			line[o++] = ch;
	}
	if (o > 0 && line[o - 1] == '\r')
		o--;
	line[o] = '\0';
	transcribe(c, "S", line);
	return (long)o;
}

bool net_client_write_line(struct net_client *c, const char *line, const char *shown, char *err, size_t errlen)
{
	transcribe(c, "C", shown ? shown : line);
	char buf[4096];
	size_t n = strlen(line);
	if (n + 2 > sizeof(buf))
		return net_client_write(c, line, n, err, errlen) && net_client_write(c, "\r\n", 2, err, errlen);
	memcpy(buf, line, n);
	memcpy(buf + n, "\r\n", 2);   /* one write: one segment for a short command */
	bool ok = net_client_write(c, buf, n + 2, err, errlen);
	explicit_bzero(buf, n + 2);      /* it may have held a password */
	return ok;
}

static SSL_CTX *client_ctx(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		ssl_err(err, errlen, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_default_verify_paths(ctx);
	if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		snprintf(err, errlen, "cannot read the CA file %s", ca_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Finish the handshake whatever the certificate, then judge it. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* The handshake itself, bounded by the I/O limit; *wrong_version when the peer
 * answered the ClientHello with plaintext. */
static bool handshake(struct net_client *c, bool *wrong_version, char *err, size_t errlen)
{
	*wrong_version = false;
	ERR_clear_error();
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		unsigned long e = ERR_peek_error();
		*wrong_version = ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG;
		enum wait_result to;
		if (!ssl_wait(c, r, &to)) {
			tls_fail(c, to, "TLS handshake", err, errlen);
			SSL_free(c->ssl);
			c->ssl = NULL;
			return false;
		}
	}
	/* RFC 3207 §4.2: leftover plaintext read before the handshake is never trusted. */
	c->rlen = c->rpos = 0;
	return true;
}

/* DANE (RFC 7671): the records that OpenSSL can use; false when none is. */
static bool dane_setup(struct net_client *c, struct net_tls_params *p)
{
	if (SSL_CTX_dane_enable(c->ctx) <= 0 || SSL_dane_enable(c->ssl, p->name) <= 0)
		return false;
	/* RFC 7672 §3.1.1: a DANE-EE match authenticates the key itself, whatever names
	 * the certificate holds. */
	SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	int usable = 0;
	for (size_t i = 0; i < p->n_tlsa; i++) {
		const struct net_tlsa *t = &p->tlsa[i];
		if (SSL_dane_tlsa_add(c->ssl, t->usage, t->selector, t->matching, t->data, t->len) > 0)
			usable++;
	}
	ERR_clear_error();   /* unusable records leave errors behind */
	return usable > 0;
}

/* Which of p->tlsa matched (the one OpenSSL reports), or -1. */
static int dane_which(SSL *ssl, const struct net_tls_params *p)
{
	uint8_t u, s, m;
	const unsigned char *d;
	size_t dl;
	if (SSL_get0_dane_authority(ssl, NULL, NULL) < 0 || SSL_get0_dane_tlsa(ssl, &u, &s, &m, &d, &dl) < 0)
		return -1;
	for (size_t i = 0; i < p->n_tlsa; i++) {
		const struct net_tlsa *t = &p->tlsa[i];
		if (t->usage == u && t->selector == s && t->matching == m && t->len == dl && memcmp(t->data, d, dl) == 0)
			return (int)i;
	}
	return -1;
}

/* The names the certificate must carry (WebPKI and DANE-TA). */
static void set_names(SSL *ssl, const struct net_tls_params *p)
{
	if (!p->name || !p->name[0] || isdigit((unsigned char)p->name[0]))
		return;
	SSL_set_tlsext_host_name(ssl, p->name);
	if (p->n_tlsa == 0)
		SSL_set1_host(ssl, p->name);   /* SSL_dane_enable set it already */
	for (size_t i = 0; i < p->n_more_names; i++)
		SSL_add1_host(ssl, p->more_names[i]);
}

/* After the handshake: did the peer authenticate as p asked? */
static void judge_peer(struct net_client *c, struct net_tls_params *p, bool dane_usable)
{
	long v = SSL_get_verify_result(c->ssl);
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (p->n_tlsa > 0) {
		p->dane_matched = dane_usable && cert && v == X509_V_OK ? dane_which(c->ssl, p) : -1;
		c->verified = p->dane_matched >= 0;
		c->dane_matched = p->dane_matched;
	} else {
		c->verified = cert && v == X509_V_OK;
	}
	if (!cert)
		snprintf(c->verify_note, sizeof(c->verify_note), "no certificate");
	else if (p->n_tlsa > 0 && !dane_usable)
		snprintf(c->verify_note, sizeof(c->verify_note), "none of the TLSA records can be used");
	else if (!c->verified)
		snprintf(c->verify_note, sizeof(c->verify_note), "%s",
			v != X509_V_OK ? X509_verify_cert_error_string(v) : "no TLSA record matched");
	else if (p->n_tlsa > 0)
		snprintf(c->verify_note, sizeof(c->verify_note), "DANE TLSA record %d matched", p->dane_matched + 1);
	X509_free(cert);
	p->auth_failed = !c->verified;
	if (p->auth_failed)
		snprintf(p->auth_error, sizeof(p->auth_error), "%s", c->verify_note);
}

bool net_client_tls_with(struct net_client *c, struct net_tls_params *p, char *err, size_t errlen)
{
	p->auth_failed = false;
	p->auth_error[0] = '\0';
	p->dane_matched = -1;
	c->ctx = client_ctx(p->ca_file && p->ca_file[0] ? p->ca_file : NULL, err, errlen);
	if (!c->ctx)
		return false;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		ssl_err(err, errlen, "TLS setup");
		return false;
	}
	bool dane_usable = p->n_tlsa > 0 && dane_setup(c, p);
	set_names(c->ssl, p);
	client_session_offer(c, p);
	bool wrong;
	if (!handshake(c, &wrong, err, errlen))
		return false;
	if (!client_session_resumed(c, p))
		judge_peer(c, p, dane_usable);
	if (p->require_verified && !c->verified) {
		snprintf(err, errlen, "TLS certificate not verified: %s", c->verify_note);
		return false;
	}
	return true;
}

bool net_client_tls(struct net_client *c, const char *name, bool require_verified, char *err, size_t errlen)
{
	struct net_tls_params p = { .name = name, .require_verified = require_verified };
	return net_client_tls_with(c, &p, err, errlen);
}

long net_client_read(struct net_client *c, void *buf, size_t n, char *err, size_t errlen)
{
	if (c->rpos >= c->rlen && !fill(c, err, errlen))
		return c->status == NET_CLOSED ? 0 : -1;
	size_t k = c->rlen - c->rpos < n ? c->rlen - c->rpos : n;
	memcpy(buf, c->rbuf + c->rpos, k);
	c->rpos += k;
	return (long)k;
}

static void cert_dates(X509 *x, struct net_cert *cert)
{
	cert->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
	cert->not_yet_valid = X509_cmp_current_time(X509_get0_notBefore(x)) > 0;
	BIO *b = BIO_new(BIO_s_mem());
	if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) > 0) {
		int n = BIO_read(b, cert->not_after, sizeof(cert->not_after) - 1);
		cert->not_after[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	int days = 0, secs = 0;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
		cert->days_left = days;
}

static void describe_cert(SSL *ssl, const char *name, struct net_cert *cert)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	snprintf(cert->protocol, sizeof(cert->protocol), "%s", SSL_get_version(ssl));
	snprintf(cert->cipher, sizeof(cert->cipher), "%s", SSL_get_cipher_name(ssl));
	if (!x)
		return;
	cert->present = true;
	cert->verify_code = SSL_get_verify_result(ssl);
	cert->chain_ok = cert->verify_code == X509_V_OK;
	snprintf(cert->verify_error, sizeof(cert->verify_error), "%s", X509_verify_cert_error_string(cert->verify_code));
	cert->self_signed = X509_check_issued(x, x) == X509_V_OK;
	unsigned char tmp[16];
	bool is_ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	cert->name_ok = is_ip ? X509_check_ip_asc(x, name, 0) == 1 : X509_check_host(x, name, 0, 0, NULL) == 1;
	X509_NAME_oneline(X509_get_subject_name(x), cert->subject, sizeof(cert->subject));
	X509_NAME_oneline(X509_get_issuer_name(x), cert->issuer, sizeof(cert->issuer));
	cert_dates(x, cert);
	X509_free(x);
}

bool net_client_tls_report(struct net_client *c, const char *name, const char *ca_file, struct net_cert *cert,
	bool *wrong_version, char *err, size_t errlen)
{
	memset(cert, 0, sizeof(*cert));
	*wrong_version = false;
	c->ctx = client_ctx(ca_file, err, errlen);
	if (!c->ctx)
		return false;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		snprintf(err, errlen, "cannot start TLS");
		return false;
	}
	SSL_set_tlsext_host_name(c->ssl, name);
	char ev[600];
	if (!handshake(c, wrong_version, err, errlen)) {
		snprintf(ev, sizeof(ev), "TLS handshake failed: %.500s", err);
		transcribe(c, "--", ev);
		return false;
	}
	describe_cert(c->ssl, name, cert);
	long v = SSL_get_verify_result(c->ssl);
	c->verified = cert->present && v == X509_V_OK;
	snprintf(ev, sizeof(ev), "TLS %s %s, certificate %.256s (%s)", cert->protocol, cert->cipher, cert->subject,
		cert->chain_ok ? "trusted" : cert->verify_error);
	transcribe(c, "--", ev);
	return true;
}

bool net_client_is_tls(const struct net_client *c)
{
	return c->ssl != NULL;
}

int net_client_fd(const struct net_client *c)
{
	return c->fd;
}

bool net_client_drained(const struct net_client *c)
{
	return c->rpos >= c->rlen && (!c->ssl || SSL_pending(c->ssl) == 0);
}

bool net_client_tls_verified(const struct net_client *c)
{
	return c->verified;
}

void net_client_tls_summary(const struct net_client *c, char *out, size_t outsz)
{
	if (!c->ssl) {
		snprintf(out, outsz, "no TLS");
		return;
	}
	bool note = c->verify_note[0] != '\0';
	snprintf(out, outsz, "%s with cipher %s%s, certificate %s%s%s%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
		c->resumed ? " (session resumed)" : "", c->verified ? "verified" : "not verified", note ? " (" : "", note ? c->verify_note : "", note ? ")" : "");
}
