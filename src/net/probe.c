/* probe.c - the doctor's blocking client connection (see probe.h).
 * Connect: non-blocking connect(2) + poll(2) with a limit per address.  Reads: poll(2)
 * with a deadline per reply, and SO_RCVTIMEO/SO_SNDTIMEO so no read or write inside
 * OpenSSL can block longer.  Replies: RFC 5321 §4.2 (multi-line "CODE-text"). */
#include "net/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wire/wire.h"

#define READ_BUF_MAX   8192
#define REPLY_LINES_MAX 64

struct probe {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int reply_ms;
	FILE *transcript;
	char local[INET6_ADDRSTRLEN];
	char buf[READ_BUF_MAX];
	size_t len;
};

int probe_resolve(const char *host, char *out, size_t outsz)
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
		if (getnameinfo(a->ai_addr, a->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		if (strstr(out, ip))
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

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_io_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool bind_source(int fd, const char *source, int family)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *res;
	if (getaddrinfo(source, NULL, &hints, &res) != 0)
		return false;
	bool ok = bind(fd, res->ai_addr, res->ai_addrlen) == 0;
	freeaddrinfo(res);
	return ok;
}

static enum probe_status status_of(int e)
{
	if (e == ECONNREFUSED)
		return PROBE_REFUSED;
	if (e == ETIMEDOUT)
		return PROBE_TIMEOUT;
	if (e == ENETUNREACH || e == EHOSTUNREACH || e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
		return PROBE_UNREACHABLE;
	return PROBE_ERROR;
}

/* One address: a non-blocking connect bounded by connect_ms. */
static int connect_one(const struct addrinfo *a, const struct probe_opts *o, enum probe_status *st, int *err)
{
	int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
	if (fd < 0 || (o->source && !bind_source(fd, o->source, a->ai_family))) {
		*err = errno ? errno : EADDRNOTAVAIL;
		*st = PROBE_UNREACHABLE;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int rc = connect(fd, a->ai_addr, a->ai_addrlen);
	if (rc != 0 && errno == EINPROGRESS) {
		struct pollfd pfd = { fd, POLLOUT, 0 };
		rc = poll(&pfd, 1, o->connect_ms);
		if (rc == 0) {
			*st = PROBE_TIMEOUT;
			*err = ETIMEDOUT;
			close(fd);
			return -1;
		}
		socklen_t len = sizeof(*err);
		*err = 0;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len);
		rc = *err ? -1 : 0;
		errno = *err;
	}
	if (rc != 0) {
		*err = errno;
		*st = status_of(errno);
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fl);
	set_io_timeouts(fd, o->reply_ms);
	*st = PROBE_OK;
	return fd;
}

struct probe *probe_connect(const char *host, unsigned port, const struct probe_opts *o,
	enum probe_status *st, char *err, size_t errsz)
{
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		*st = PROBE_UNREACHABLE;
		snprintf(err, errsz, "%s: %s", host, gai_strerror(rc));
		return NULL;
	}
	int fd = -1, e = 0;
	*st = PROBE_UNREACHABLE;
	enum probe_status worst = PROBE_UNREACHABLE;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = connect_one(a, o, st, &e);
		if (fd < 0 && (*st == PROBE_TIMEOUT || (*st == PROBE_REFUSED && worst != PROBE_TIMEOUT)))
			worst = *st;     /* a time-out says more than a refusal on another address */
	}
	freeaddrinfo(res);
	if (fd < 0) {
		*st = worst;
		snprintf(err, errsz, "%s", *st == PROBE_TIMEOUT ? "no answer (connection timed out)" : strerror(e));
		return NULL;
	}
	struct probe *p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		*st = PROBE_ERROR;
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	p->fd = fd;
	p->reply_ms = o->reply_ms;
	p->transcript = o->transcript;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, p->local, sizeof(p->local), NULL, 0, NI_NUMERICHOST);
	if (p->transcript)
		fprintf(p->transcript, "-- connected to %s port %u from %s\n", host, port, p->local);
	return p;
}

void probe_close(struct probe **pp)
{
	struct probe *p = *pp;
	if (!p)
		return;
	if (p->ssl) {
		SSL_shutdown(p->ssl);
		SSL_free(p->ssl);
	}
	SSL_CTX_free(p->ctx);
	close(p->fd);
	free(p);
	*pp = NULL;
}

const char *probe_local_address(const struct probe *p)
{
	return p->local;
}

/* Read more bytes within the deadline; <0 error/closed/timeout as a status. */
static enum probe_status fill(struct probe *p, long long deadline)
{
	if (p->len >= sizeof(p->buf) - 1)
		return PROBE_GARBAGE;
	if (!p->ssl || SSL_pending(p->ssl) == 0) {
		long long left = deadline - now_ms();
		struct pollfd pfd = { p->fd, POLLIN, 0 };
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return PROBE_TIMEOUT;
	}
	size_t room = sizeof(p->buf) - 1 - p->len;
	ssize_t n;
	if (p->ssl) {
		int r = SSL_read(p->ssl, p->buf + p->len, (int)room);
		n = r > 0 ? r : (SSL_get_error(p->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
	} else
		n = recv(p->fd, p->buf + p->len, room, 0);
	if (n == 0)
		return PROBE_CLOSED;
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? PROBE_TIMEOUT : PROBE_CLOSED;
	p->len += (size_t)n;
	return PROBE_OK;
}

/* Take one line (without CR LF) from the buffer into line; false if none yet. */
static bool take_line(struct probe *p, char *line, size_t linesz)
{
	char *nl = memchr(p->buf, '\n', p->len);
	if (!nl)
		return false;
	size_t n = (size_t)(nl - p->buf);
	size_t keep = n > 0 && p->buf[n - 1] == '\r' ? n - 1 : n;
	if (keep >= linesz)
		keep = linesz - 1;
	memcpy(line, p->buf, keep);
	line[keep] = '\0';
	memmove(p->buf, nl + 1, p->len - n - 1);
	p->len -= n + 1;
	return true;
}

/* RFC 3463: the enhanced code of the first line that has one, of the reply's class. */
static void note_enh(struct probe_reply *r, const char *text)
{
	char enh[sizeof(r->enh)];
	if (!r->enh[0] && wire_enh_lead(text, enh, sizeof(enh)) && enh[0] - '0' == r->code / 100)
		memcpy(r->enh, enh, sizeof(enh));
}

static void append_text(struct probe_reply *r, const char *l)
{
	size_t used = strlen(r->text);
	snprintf(r->text + used, sizeof(r->text) - used, "%s%s", used ? "\n" : "", l);
}

enum probe_status probe_read_reply(struct probe *p, struct probe_reply *r, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	long long deadline = now_ms() + p->reply_ms;
	char line[1024];
	for (;;) {
		while (!take_line(p, line, sizeof(line))) {
			enum probe_status st = fill(p, deadline);
			if (st != PROBE_OK) {
				/* Bytes that never form a line (e.g. a TLS alert) are not a reply. */
				if (st == PROBE_CLOSED && p->len > 0)
					st = PROBE_GARBAGE;
				snprintf(err, errsz, "%s", st == PROBE_TIMEOUT ? "no reply within the time limit"
					: st == PROBE_GARBAGE ? "the server sent bytes that are not an SMTP reply"
					: "the server closed the connection");
				return st;
			}
		}
		if (p->transcript)
			fprintf(p->transcript, "S: %s\n", line);
		int code;
		bool more;
		const char *text;
		if (!wire_reply_line(line, &code, &more, &text) || ++r->lines > REPLY_LINES_MAX) {
			snprintf(err, errsz, "not an SMTP reply: \"%.60s\"", line);
			append_text(r, line);
			return PROBE_GARBAGE;
		}
		r->code = code;
		note_enh(r, text);
		append_text(r, line);
		if (!more)
			return PROBE_OK;
	}
}

enum probe_status probe_read_line(struct probe *p, char *line, size_t linesz, char *err, size_t errsz)
{
	long long deadline = now_ms() + p->reply_ms;
	while (!take_line(p, line, linesz)) {
		enum probe_status st = fill(p, deadline);
		if (st == PROBE_GARBAGE && p->len >= sizeof(p->buf) - 1) {
			snprintf(err, errsz, "a line longer than %zu bytes", sizeof(p->buf) - 1);
			return st;
		}
		if (st != PROBE_OK) {
			if (st == PROBE_CLOSED && p->len > 0)
				st = PROBE_GARBAGE;
			snprintf(err, errsz, "%s", st == PROBE_TIMEOUT ? "no reply within the time limit"
				: st == PROBE_GARBAGE ? "the server sent bytes that are not a line of text"
				: "the server closed the connection");
			return st;
		}
	}
	if (p->transcript)
		fprintf(p->transcript, "S: %s\n", line);
	return PROBE_OK;
}

bool probe_write(struct probe *p, const void *data, size_t len)
{
	const char *d = data;
	while (len > 0) {
		ssize_t n = p->ssl ? SSL_write(p->ssl, d, (int)len) : send(p->fd, d, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		d += n;
		len -= (size_t)n;
	}
	return true;
}

bool probe_send(struct probe *p, const char *line, const char *shown)
{
	if (p->transcript)
		fprintf(p->transcript, "C: %s\n", shown ? shown : line);
	return probe_write(p, line, strlen(line)) && probe_write(p, "\r\n", 2);
}

/* --- TLS ------------------------------------------------------------------------- */

static void describe_cert(SSL *ssl, const char *name, struct probe_cert *c)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	snprintf(c->protocol, sizeof(c->protocol), "%s", SSL_get_version(ssl));
	snprintf(c->cipher, sizeof(c->cipher), "%s", SSL_get_cipher_name(ssl));
	if (!x)
		return;
	c->present = true;
	c->verify_code = SSL_get_verify_result(ssl);
	c->chain_ok = c->verify_code == X509_V_OK;
	snprintf(c->verify_error, sizeof(c->verify_error), "%s", X509_verify_cert_error_string(c->verify_code));
	c->self_signed = X509_check_issued(x, x) == X509_V_OK;
	c->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
	c->not_yet_valid = X509_cmp_current_time(X509_get0_notBefore(x)) > 0;
	unsigned char tmp[16];
	bool is_ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	c->name_ok = is_ip ? X509_check_ip_asc(x, name, 0) == 1 : X509_check_host(x, name, 0, 0, NULL) == 1;
	X509_NAME_oneline(X509_get_subject_name(x), c->subject, sizeof(c->subject));
	X509_NAME_oneline(X509_get_issuer_name(x), c->issuer, sizeof(c->issuer));
	BIO *b = BIO_new(BIO_s_mem());
	if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) > 0) {
		int n = BIO_read(b, c->not_after, sizeof(c->not_after) - 1);
		c->not_after[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	int days = 0, secs = 0;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
		c->days_left = days;
	X509_free(x);
}

static SSL_CTX *client_ctx(const char *ca_file, char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errsz, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_default_verify_paths(ctx);
	if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		snprintf(err, errsz, "cannot read the CA file %s", ca_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Verify, but finish the handshake anyway: the doctor reports what is wrong. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

bool probe_start_tls(struct probe *p, const char *name, const char *ca_file, struct probe_cert *cert,
	bool *wrong_version, char *err, size_t errsz)
{
	memset(cert, 0, sizeof(*cert));
	*wrong_version = false;
	p->ctx = client_ctx(ca_file, err, errsz);
	if (!p->ctx)
		return false;
	p->ssl = SSL_new(p->ctx);
	if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1) {
		snprintf(err, errsz, "cannot start TLS");
		return false;
	}
	SSL_set_tlsext_host_name(p->ssl, name);
	ERR_clear_error();
	errno = 0;
	int rc = SSL_connect(p->ssl);
	if (rc != 1) {
		unsigned long e = ERR_peek_error();
		*wrong_version = ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
			|| ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG;
		if (e)
			ERR_error_string_n(e, err, errsz);
		else
			snprintf(err, errsz, "%s", errno == EAGAIN || errno == EWOULDBLOCK ? "TLS handshake timed out"
				: "the server closed the connection during the TLS handshake");
		ERR_clear_error();
		SSL_free(p->ssl);
		p->ssl = NULL;
		if (p->transcript)
			fprintf(p->transcript, "-- TLS handshake failed: %s\n", err);
		return false;
	}
	p->len = 0;   /* RFC 3207 §4.2: nothing read before TLS counts after it */
	describe_cert(p->ssl, name, cert);
	if (p->transcript)
		fprintf(p->transcript, "-- TLS %s %s, certificate %s (%s)\n", cert->protocol, cert->cipher,
			cert->subject, cert->chain_ok ? "trusted" : cert->verify_error);
	return true;
}
