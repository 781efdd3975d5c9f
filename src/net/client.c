/* client.c - blocking outbound connections with time-outs and TLS (see client.h). */
#include "net/client.h"

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
#include <unistd.h>

#define READ_BUF 8192

struct net_cancel {
	int fd;   /* an eventfd that becomes readable, for good, when fired */
};

struct net_client {
	int fd;
	unsigned io_timeout;
	const struct net_cancel *cancel;
	SSL_CTX *ctx;
	SSL *ssl;
	bool verified;
	char verify_note[160];
	char peer[64];
	char rbuf[READ_BUF];
	size_t rlen, rpos;
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
static enum wait_result wait_fd(const struct net_cancel *k, int fd, short events, unsigned seconds)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = k ? k->fd : -1, .events = POLLIN } };
	int r;
	do
		r = poll(p, 2, (int)seconds * 1000);
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

/* Non-blocking connect bounded by the time-out. */
static int connect_one(const struct addrinfo *ai, const struct net_client_opts *o, char *err, size_t errlen)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
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
		close(fd);
		return -1;
	}
	enum wait_result w = wait_fd(o->cancel, fd, POLLOUT, o->connect_timeout);
	if (w != WAIT_READY) {
		if (w == WAIT_CANCELLED)
			snprintf(err, errlen, "connect: " CANCELLED_TEXT);
		else
			snprintf(err, errlen, "connect: timed out after %us", o->connect_timeout);
		close(fd);
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		snprintf(err, errlen, "connect: %s", strerror(soerr));
		close(fd);
		return -1;
	}
	return fd;
}

struct net_client *net_client_connect(const char *host, unsigned port, const struct net_client_opts *o,
	char *err, size_t errlen)
{
	char ports[8];
	snprintf(ports, sizeof(ports), "%u", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int gai = getaddrinfo(host, ports, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
		return NULL;
	}
	int fd = -1;
	char peer[64] = "";
	for (struct addrinfo *ai = res; ai && fd < 0 && !cancelled(o->cancel); ai = ai->ai_next) {
		fd = connect_one(ai, o, err, errlen);
		if (fd >= 0) {
			/* SMTP is a dialogue of short writes: without this, Nagle and delayed
			 * ACKs add ~40 ms to every message. */
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		if (fd >= 0) {
			const void *a = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
				: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
			inet_ntop(ai->ai_family, a, peer, sizeof(peer));
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (cancelled(o->cancel))
			snprintf(err, errlen, "connect: " CANCELLED_TEXT);
		return NULL;
	}
	struct net_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = fd;
	c->io_timeout = o->io_timeout ? o->io_timeout : 60;
	c->cancel = o->cancel;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	return c;
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
		*w = wait_fd(c->cancel, c->fd, POLLIN, c->io_timeout);
	else if (e == SSL_ERROR_WANT_WRITE)
		*w = wait_fd(c->cancel, c->fd, POLLOUT, c->io_timeout);
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
			enum wait_result wr = wait_fd(c->cancel, c->fd, POLLOUT, c->io_timeout);
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

/* Refill the read buffer; false on error, close or time-out. */
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
				return false;
			}
			enum wait_result to;
			if (!ssl_wait(c, r, &to)) {
				tls_fail(c, to, "read", err, errlen);
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
			return false;
		}
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return false;
		}
		enum wait_result wr = wait_fd(c->cancel, c->fd, POLLIN, c->io_timeout);
		if (wr != WAIT_READY) {
			wait_failed(err, errlen, "read", wr, c->io_timeout);
			return false;
		}
	}
}

long net_client_read_line(struct net_client *c, char *line, size_t linesz, char *err, size_t errlen)
{
	size_t o = 0;
	for (;;) {
		if (c->rpos >= c->rlen && !fill(c, err, errlen))
			return -1;
		char ch = c->rbuf[c->rpos++];
		if (ch == '\n')
			break;
		if (o + 1 < linesz)
			line[o++] = ch;
	}
	if (o > 0 && line[o - 1] == '\r')
		o--;
	line[o] = '\0';
	return (long)o;
}

bool net_client_tls(struct net_client *c, const char *name, bool require_verified, char *err, size_t errlen)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) {
		ssl_err(err, errlen, "TLS context");
		return false;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_default_verify_paths(c->ctx);
	/* Opportunistic: finish the handshake whatever the certificate, then judge it. */
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		ssl_err(err, errlen, "TLS setup");
		return false;
	}
	if (name && name[0] && !isdigit((unsigned char)name[0])) {
		SSL_set_tlsext_host_name(c->ssl, name);
		SSL_set1_host(c->ssl, name);
	}
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		enum wait_result to;
		if (!ssl_wait(c, r, &to)) {
			tls_fail(c, to, "TLS handshake", err, errlen);
			SSL_free(c->ssl);
			c->ssl = NULL;
			return false;
		}
	}
	/* Leftover plaintext read before the handshake is never trusted. */
	c->rlen = c->rpos = 0;
	long v = SSL_get_verify_result(c->ssl);
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	c->verified = cert && v == X509_V_OK;
	if (!cert)
		snprintf(c->verify_note, sizeof(c->verify_note), "no certificate");
	else if (v != X509_V_OK)
		snprintf(c->verify_note, sizeof(c->verify_note), "%s", X509_verify_cert_error_string(v));
	X509_free(cert);
	if (require_verified && !c->verified) {
		snprintf(err, errlen, "TLS certificate not verified: %s", c->verify_note);
		return false;
	}
	return true;
}

bool net_client_is_tls(const struct net_client *c)
{
	return c->ssl != NULL;
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
	snprintf(out, outsz, "%s with cipher %s, certificate %s%s%s%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
		c->verified ? "verified" : "not verified", c->verified ? "" : " (", c->verified ? "" : c->verify_note,
		c->verified ? "" : ")");
}
