/* http.c - the HTTP transport (see http.h) on libevent's evhttp: one evhttp per
 * listener of role http, bound on the socket serve/startup.c bound, its connections
 * made by us (evhttp_set_bevcb) so that implicit TLS uses the mail listeners' TLS
 * contexts (same certificates, same SNI) and so that every connection is known here:
 *
 *   - the [limits] connection limits (total and per address, shared with the mail
 *     listeners through limits.c) are applied when a connection arrives; a refused
 *     client is answered 503 with the reason, then closed;
 *   - a request must arrive whole within [http] request_timeout of its first byte
 *     (evhttp's own timeout is one of inactivity: a client trickling one byte a
 *     second would never meet it); the tick below closes the connection past it.
 *
 * evhttp frees a connection whenever it likes; a reference we hold on its
 * bufferevent keeps our record's pointer valid until we notice (the close callback,
 * or the tick seeing the bufferevent's event callback cleared).  A request handed to the
 * handler owns copies of everything it shows (struct http_request), so worker
 * threads never touch evhttp; evhttp reads nothing from the connection meanwhile,
 * and an answer to a client that has gone is freed by evhttp_send_reply. */
#include "net/http.h"
#include "net/internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "net/tls.h"
#include "util/log.h"
#include "util/metrics.h"

#define HTTP_PATH_MAX 4096
#define HTTP_REFUSING_MAX 32   /* refused connections being told why at once */
#define HTTP_CONN_BUCKETS 256

struct http_conn {
	struct http_listener *hl;
	struct bufferevent *bev;     /* we hold a reference (bufferevent_incref) */
	char addr[INET6_ADDRSTRLEN];
	bool admitted;               /* the admission ran */
	bool counted;                /* in the limits (n_http_conns, the address's count) */
	bool refused;                /* over a limit: answered 503, then closed */
	bool killed;                 /* past its deadline: shut down, evhttp frees it */
	bool doomed;                 /* TLS could not start on it: never served, closed once its socket is set */
	bool gone;                   /* evhttp freed the connection; freed with the last exchange */
	bool watched;                /* our close callback is set on evhttp's connection */
	bool replying;               /* our answer is being written (else evhttp's own) */
	struct evbuffer_cb_entry *out_watch;   /* sees evhttp's own answers (out_cb) */
	unsigned in_handler;         /* requests being answered (0 or 1: evhttp reads one at a time) */
	uint64_t since;              /* ms: the current request (or the wait for one) began */
	struct event *admit;         /* the admission, once evhttp has set the socket */
	struct http_conn *prev, *next;   /* the listener's list */
	struct http_conn *hnext;     /* bucket by bufferevent */
};

struct http_listener {
	struct net *net;
	const struct conf_listener *conf;
	struct evhttp *http;
	struct evconnlistener *lev;   /* freed by evhttp_free */
	http_handler_fn *handler;
	void *ctx;
	struct event *tick;
	struct http_conn *conns;
	struct http_conn *buckets[HTTP_CONN_BUCKETS];
	unsigned n_refusing;
	unsigned long long next_id;
};

struct http_exchange {
	struct http_listener *hl;
	struct evhttp_request *req;
	struct http_conn *hc;
	struct http_request view;
	uint64_t started;            /* ms */
	char *body;
	struct http_header *headers;
	char strings[];              /* method, path, query, host, addr and the header text */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- the connections we know ------------------------------------------------- */

static unsigned bucket_of(const struct bufferevent *bev)
{
	return (unsigned)(((uintptr_t)bev >> 4) % HTTP_CONN_BUCKETS);
}

static struct http_conn *conn_of_bev(struct http_listener *hl, const struct bufferevent *bev)
{
	for (struct http_conn *hc = hl->buckets[bucket_of(bev)]; hc; hc = hc->hnext)
		if (hc->bev == bev)
			return hc;
	return NULL;
}

static struct http_conn *conn_of_request(struct http_listener *hl, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	return evcon ? conn_of_bev(hl, evhttp_connection_get_bufferevent(evcon)) : NULL;
}

static void conn_release(struct http_conn *hc)
{
	if (!hc->counted)
		return;
	hc->counted = false;
	limits_release(hc->hl->net, hc->addr);
	hc->hl->net->n_http_conns--;
}

/* Our record goes (evhttp has freed, or is freeing, the connection). */
static void conn_forget(struct http_conn *hc)
{
	struct http_listener *hl = hc->hl;
	conn_release(hc);
	if (hc->refused)
		hl->n_refusing--;
	hc->refused = false;
	if (hc->admit) {
		event_free(hc->admit);
		hc->admit = NULL;
	}
	if (hc->out_watch) {
		evbuffer_remove_cb_entry(bufferevent_get_output(hc->bev), hc->out_watch);
		hc->out_watch = NULL;
	}
	if (hc->in_handler) {
		hc->gone = true;   /* an exchange points at us: freed when it is answered */
		return;
	}
	for (struct http_conn **p = &hl->buckets[bucket_of(hc->bev)]; *p; p = &(*p)->hnext)
		if (*p == hc) {
			*p = hc->hnext;
			break;
		}
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		hl->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	bufferevent_decref(hc->bev);   /* the last reference: the socket closes */
	free(hc);
}

/* Has evhttp not freed the connection yet?  While it lives its bufferevent always
 * has evhttp's event callback (the read callback is cleared while an answer is
 * written); bufferevent_free clears them all. */
static bool conn_alive(const struct http_conn *hc)
{
	bufferevent_event_cb eventcb = NULL;
	bufferevent_getcb(hc->bev, NULL, NULL, &eventcb, NULL);
	return eventcb != NULL;
}

#define PLAIN_ON_TLS_WORDS "Bad request: this port speaks https (TLS); ask for https://, not http://, on this port.\n"

/* An implicit-TLS connection that never finished its handshake: say why in the log,
 * and a client that spoke plain HTTP (OpenSSL saw a request line where a ClientHello
 * belongs) gets a plain answer saying what to change, instead of a bare close.  The
 * socket is still open here (evhttp shuts it after this callback). */
static void tls_failure(struct http_conn *hc)
{
	SSL *ssl = hc->hl->conf->tls == TLS_IMPLICIT ? bufferevent_openssl_get_ssl(hc->bev) : NULL;
	if (!ssl || SSL_is_init_finished(ssl))
		return;
	unsigned long e = bufferevent_get_openssl_error(hc->bev);
	bool plain = e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST;
	char why[256] = "closed before the TLS handshake completed";
	if (e)
		tls_last_error(e, why, sizeof(why));
	log_event(LOG_INFO, "tls_failed", "listener=%s client=%s reason=\"%s\"%s", hc->hl->conf->name, hc->addr, why,
		plain ? " hint=\"the client spoke plain HTTP to an https port: use https:// for this port\"" : "");
	evutil_socket_t fd = bufferevent_getfd(hc->bev);
	if (plain && fd >= 0) {
		char answer[512];
		int n = snprintf(answer, sizeof(answer), "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
			"Connection: close\r\nContent-Length: %zu\r\n\r\n%s", sizeof(PLAIN_ON_TLS_WORDS) - 1, PLAIN_ON_TLS_WORDS);
		ssize_t w = n > 0 ? send(fd, answer, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
		(void)w;
	}
}

static void close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	tls_failure(arg);
	conn_forget(arg);
}

/* Make evhttp drop the connection: it reads end-of-file and frees it itself. */
static void conn_kill(struct http_conn *hc)
{
	hc->killed = true;
	evutil_socket_t fd = bufferevent_getfd(hc->bev);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

/* The client's address, from the socket (evhttp's text form differs for IPv4 on
 * a dual-stack socket). */
static void peer_address(evutil_socket_t fd, char *out, size_t outsz)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	snprintf(out, outsz, "unknown");
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	const void *a = ss.ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)&ss)->sin_addr;
	if (!inet_ntop(ss.ss_family, a, out, (socklen_t)outsz))
		snprintf(out, outsz, "unknown");
	if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* The [limits] connection limits, once the socket is known (evhttp sets it after
 * the bufferevent callback).  A refused client is told why in its first answer
 * (a few at a time: past that, the socket is just closed). */
static void close_cb(struct evhttp_connection *evcon, void *arg);

/* evhttp's connection is the argument of its bufferevent callbacks: set our close
 * callback on it, so that the limits and the socket are given back the moment
 * evhttp drops the connection. */
static void conn_watch(struct http_conn *hc)
{
	void *evcon = NULL;
	bufferevent_getcb(hc->bev, NULL, NULL, NULL, &evcon);
	if (hc->watched || !evcon)
		return;
	hc->watched = true;
	evhttp_connection_set_closecb(evcon, close_cb, hc);
}

static void conn_admit(struct http_conn *hc)
{
	if (hc->admitted)
		return;
	hc->admitted = true;
	conn_watch(hc);
	struct http_listener *hl = hc->hl;
	peer_address(bufferevent_getfd(hc->bev), hc->addr, sizeof(hc->addr));
	if (hc->doomed) {
		conn_kill(hc);
		return;
	}
	struct ip_count *ipc = NULL;
	enum conn_refusal why;
	if (limits_admit(hl->net, hc->addr, &ipc, &why)) {
		ipc->count++;
		hl->net->n_http_conns++;
		hc->counted = true;
		metrics_count(METRIC_CONNECTIONS, hl->conf->name, 1);
		return;
	}
	if (hl->n_refusing >= HTTP_REFUSING_MAX) {
		conn_kill(hc);
		return;
	}
	hl->n_refusing++;
	hc->refused = true;
}

/* The admission once evhttp has set the socket (or our record goes, when evhttp has
 * already freed the connection). */
static void admit_now(struct http_conn *hc)
{
	if (!conn_alive(hc) && !hc->in_handler) {
		conn_forget(hc);
		return;
	}
	conn_admit(hc);
}

static void admit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct http_conn *hc = arg;
	event_free(hc->admit);
	hc->admit = NULL;
	admit_now(hc);
}

static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

/* evhttp asks for a connection's bufferevent: TLS on an implicit-TLS listener
 * (evhttp sets the socket on it next). */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
	struct http_listener *hl = arg;
	struct bufferevent *bev = NULL;
	bool tls_failed = false;
	if (hl->conf->tls == TLS_IMPLICIT) {
		SSL *ssl = hl->net->tls ? tls_new_ssl(hl->net->tls) : NULL;
		bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (!bev && ssl)
			SSL_free(ssl);
		tls_failed = bev == NULL;
	}
	if (!bev)   /* never NULL: evhttp would make a plaintext one itself */
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct http_conn *hc = bev ? calloc(1, sizeof(*hc)) : NULL;
	if (!hc)
		return bev;   /* untracked; evhttp's own timeout still bounds it */
	hc->hl = hl;
	hc->bev = bev;
	hc->since = now_ms();
	bufferevent_incref(bev);
	hc->out_watch = evbuffer_add_cb(bufferevent_get_output(bev), out_cb, hc);
	hc->next = hl->conns;
	if (hl->conns)
		hl->conns->prev = hc;
	hl->conns = hc;
	unsigned b = bucket_of(bev);
	hc->hnext = hl->buckets[b];
	hl->buckets[b] = hc;
	struct timeval zero = { 0, 0 };
	hc->admit = evtimer_new(base, admit_cb, hc);
	if (hc->admit)
		event_priority_set(hc->admit, 0);   /* before evhttp's first read (net_new) */
	if (!hc->admit || evtimer_add(hc->admit, &zero) != 0) {
		if (hc->admit)
			event_free(hc->admit);
		hc->admit = NULL;   /* the tick admits it */
	}
	if (tls_failed) {
		log_event(LOG_ERR, "http_error", "listener=%s error=\"cannot start TLS on a connection\"", hl->conf->name);
		hc->doomed = true;
	}
	return bev;
}

/* Once a second: connections evhttp has freed, and requests past their deadline. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct http_listener *hl = arg;
	uint64_t now = now_ms(), limit = hl->net->conf->http_request_timeout * 1000u;
	struct http_conn *next;
	for (struct http_conn *hc = hl->conns; hc; hc = next) {
		next = hc->next;
		if (!hc->admitted) {
			if (!hc->admit)
				admit_now(hc);   /* its admission event could not be set */
			continue;   /* else admit_cb comes first */
		}
		if (!conn_alive(hc) && !hc->in_handler) {
			conn_forget(hc);
			continue;
		}
		if (hc->in_handler || hc->killed || now - hc->since <= limit)
			continue;
		log_event(LOG_INFO, "http_timeout", "listener=%s client=%s limit=%llus reason=\"no whole request within [http] request_timeout\"",
			hl->conf->name, hc->addr, (unsigned long long)hl->net->conf->http_request_timeout);
		conn_kill(hc);
	}
}

/* --- requests ------------------------------------------------------------------ */

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "UNKNOWN";
}

static char *arena_put(char **at, const char *s)
{
	char *p = *at;
	size_t n = strlen(s) + 1;
	memcpy(p, s, n);
	*at += n;
	return p;
}

/* The request as the handler sees it, every byte copied (the worker thread never
 * touches evhttp).  NULL: out of memory. */
static struct http_exchange *exchange_new(struct http_listener *hl, struct http_conn *hc, struct evhttp_request *req,
	const char *path, const char *query)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	size_t n_headers = 0, text = 0;
	for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next) {
		n_headers++;
		text += strlen(h->key) + strlen(h->value) + 2;
	}
	char host[256];
	http_host_normalise(evhttp_find_header(in, "Host"), host, sizeof(host));
	const char *method = method_name(evhttp_request_get_command(req));
	text += strlen(method) + strlen(path) + strlen(query) + strlen(host) + sizeof(hc->addr) + 5;
	struct http_exchange *x = calloc(1, sizeof(*x) + text);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t blen = evbuffer_get_length(body);
	if (x) {
		x->headers = calloc(n_headers ? n_headers : 1, sizeof(*x->headers));
		x->body = malloc(blen + 1);
	}
	if (!x || !x->headers || !x->body) {
		if (x) {
			free(x->headers);
			free(x->body);
		}
		free(x);
		return NULL;
	}
	evbuffer_copyout(body, x->body, blen);
	x->body[blen] = '\0';
	char *at = x->strings;
	size_t i = 0;
	for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next, i++) {
		x->headers[i].name = arena_put(&at, h->key);
		x->headers[i].value = arena_put(&at, h->value);
	}
	x->hl = hl;
	x->hc = hc;
	x->req = req;
	x->started = now_ms();
	x->view = (struct http_request){
		.method = arena_put(&at, method), .path = arena_put(&at, path), .query = arena_put(&at, query),
		.host = arena_put(&at, host), .client_addr = arena_put(&at, hc->addr), .listener = hl->conf->name,
		.tls = hl->conf->tls == TLS_IMPLICIT, .body = x->body, .body_len = blen,
		.headers = x->headers, .n_headers = n_headers, .id = ++hl->next_id,
	};
	return x;
}

static void exchange_free(struct http_exchange *x)
{
	free(x->headers);
	free(x->body);
	free(x);
}

static void free_body(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/* One line per request (and postern_http_requests_total{status}).  Never the query (it may carry an address or a password),
 * never a header (Authorization), never the body. */
static void log_request(struct http_listener *hl, const char *client, const char *method, const char *path, int status,
	size_t bytes, uint64_t ms, const char *note, bool gone)
{
	char qpath[HTTP_PATH_MAX / 4 + 8], qnote[512];
	log_quote(qpath, sizeof(qpath), path, strlen(path), 512);
	log_quote(qnote, sizeof(qnote), note, strlen(note), 192);
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	metrics_count(METRIC_HTTP_REQUESTS, code, 1);
	log_event(status >= 500 ? LOG_WARN : LOG_INFO, "http", "listener=%s client=%s method=%s path=%s status=%d bytes=%zu ms=%llu%s%s%s",
		hl->conf->name, client, method, qpath, status, bytes, (unsigned long long)ms, note[0] ? " note=" : "",
		note[0] ? qnote : "", gone ? " client_gone=yes" : "");
}

/* Answer on evhttp's request: headers, then the body (not for HEAD: only its length). */
static void send_response(struct evhttp_request *req, struct http_response *r, bool head)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (r->content_type[0])
		evhttp_add_header(out, "Content-Type", r->content_type);
	for (size_t i = 0; i < r->n_headers && i < HTTP_RESPONSE_HEADERS; i++) {
		evhttp_remove_header(out, r->headers[i].name);
		evhttp_add_header(out, r->headers[i].name, r->headers[i].value);
	}
	if (!evhttp_find_header(out, "X-Content-Type-Options"))
		evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	if (!evhttp_find_header(out, "Cache-Control"))
		evhttp_add_header(out, "Cache-Control", "no-store");
	struct evbuffer *buf = evbuffer_new();
	if (head) {
		char len[32];
		snprintf(len, sizeof(len), "%zu", r->body_len);
		evhttp_remove_header(out, "Content-Length");
		evhttp_add_header(out, "Content-Length", len);
		free(r->body);
	} else if (buf && r->body && r->body_len) {
		if (evbuffer_add_reference(buf, r->body, r->body_len, free_body, NULL) != 0)
			free(r->body);
	} else {
		free(r->body);
	}
	r->body = NULL;
	evhttp_send_reply(req, r->status, http_status_phrase(r->status), buf);
	if (buf)
		evbuffer_free(buf);
}

void http_exchange_reply(struct http_exchange *x, struct http_response *r)
{
	struct http_conn *hc = x->hc;
	bool gone = evhttp_request_get_connection(x->req) == NULL || hc->gone;
	if (r->status < 100 || r->status > 599)
		r->status = 500;
	const struct http_request *v = &x->view;
	size_t bytes = strcmp(v->method, "HEAD") == 0 ? 0 : r->body_len;
	log_request(x->hl, v->client_addr, v->method, v->path, r->status, bytes, now_ms() - x->started, r->log_note, gone);
	if (hc->refused || r->status >= 400)
		evhttp_add_header(evhttp_request_get_output_headers(x->req), "Connection", "close");
	hc->replying = true;
	send_response(x->req, r, strcmp(v->method, "HEAD") == 0);   /* frees the request when the client left */
	hc->replying = false;
	hc->in_handler--;
	hc->since = now_ms();
	if (hc->gone && !hc->in_handler)
		conn_forget(hc);
	exchange_free(x);
}

const struct http_request *http_exchange_request(const struct http_exchange *x)
{
	return &x->view;
}

/* Answer here, without the handler (a refusal of the transport's own). */
static void reply_now(struct http_listener *hl, struct http_conn *hc, struct evhttp_request *req, const char *path,
	int status, const char *words, const char *note)
{
	struct http_response r = { 0 };
	http_response_printf(&r, status, "text/plain; charset=utf-8", "%s\n", words);
	const char *method = method_name(evhttp_request_get_command(req));
	bool head = strcmp(method, "HEAD") == 0;
	log_request(hl, hc->addr, method, path, r.status, head ? 0 : r.body_len, 0, note, false);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	hc->replying = true;
	send_response(req, &r, head);
	hc->replying = false;
	hc->since = now_ms();
}

/* The target's path, as sent (before '?' and '#'), into raw. */
static void split_target(const char *uri, char *raw, size_t rawsz, const char **query)
{
	size_t n = strcspn(uri, "?#");
	snprintf(raw, rawsz, "%.*s", (int)(n < rawsz ? n : rawsz - 1), uri);
	*query = uri[n] == '?' ? uri + n + 1 : "";
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct http_listener *hl = arg;
	struct http_conn *hc = conn_of_request(hl, req);
	if (!hc) {   /* untracked (out of memory at its start): refuse rather than serve unbounded */
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	conn_admit(hc);
	conn_watch(hc);
	const char *uri = evhttp_request_get_uri(req);
	char raw[HTTP_PATH_MAX], path[HTTP_PATH_MAX];
	const char *query = "";
	split_target(uri ? uri : "", raw, sizeof(raw), &query);
	char qbuf[HTTP_PATH_MAX];
	snprintf(qbuf, sizeof(qbuf), "%.*s", (int)strcspn(query, "#"), query);
	if (hc->doomed) {   /* a plaintext answer on an implicit-TLS port: never; the socket is shut */
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	if (hc->refused) {
		reply_now(hl, hc, req, raw, 503, "Service unavailable: this server has as many connections as its [limits] allow "
			"(in total, or from your address). Try again in a moment.", "over the connection limits");
		return;
	}
	const char *why = strlen(uri ? uri : "") >= HTTP_PATH_MAX ? "the request target is too long" :
		http_path_normalise(raw, strlen(raw), path, sizeof(path));
	if (why) {
		char words[512];
		snprintf(words, sizeof(words), "Bad request: %s. Ask for a path such as /healthz; Postern serves no files.", why);
		reply_now(hl, hc, req, raw, 400, words, why);
		return;
	}
	struct http_exchange *x = exchange_new(hl, hc, req, path, qbuf);
	if (!x) {
		reply_now(hl, hc, req, path, 503, "Service unavailable: the server is short of memory. Try again in a moment.", "out of memory");
		return;
	}
	hc->in_handler++;
	hl->handler(hl->ctx, x);
}

/* evhttp answers some requests itself, before any request callback: a malformed
 * request line or header, header fields over [http] header_max (400), a body over
 * body_max (413).  Those answers are seen here, as they are written, and logged
 * like every other. */
static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *hc = arg;
	if (hc->replying || info->n_added < 12)
		return;
	char head[13] = "";
	struct evbuffer_ptr at;
	size_t len = evbuffer_get_length(buf);
	if (evbuffer_ptr_set(buf, &at, len - info->n_added, EVBUFFER_PTR_SET) != 0 ||
		evbuffer_copyout_from(buf, &at, head, 12) != 12 || strncmp(head, "HTTP/1.", 7) != 0)
		return;
	int status = atoi(head + 9);
	conn_admit(hc);
	const char *note = status == 413 ? "the body is larger than [http] body_max" :
		status == 400 ? "refused by the HTTP parser: a malformed request, or header fields over [http] header_max" :
		"answered by the HTTP parser";
	log_request(hc->hl, hc->addr, "-", "-", status, 0, now_ms() - hc->since, note, false);
}

/* --- listeners ------------------------------------------------------------------ */

bool net_http_listen(struct net *net, const struct conf_listener *cl, http_handler_fn *handler, void *ctx, int fd)
{
	struct http_listener *hl = net->n_http < CONF_MAX_LISTENERS ? calloc(1, sizeof(*hl)) : NULL;
	if (hl) {
		hl->net = net;
		hl->conf = cl;
		hl->handler = handler;
		hl->ctx = ctx;
		hl->http = evhttp_new(net->base);
		hl->tick = event_new(net->base, -1, EV_PERSIST, tick_cb, hl);
	}
	struct timeval second = { 1, 0 };
	if (!hl || !hl->http || !hl->tick || event_add(hl->tick, &second) != 0) {
		close(fd);
		log_event(LOG_ERR, "listen_error", "listener=%s address=%s port=%u error=\"out of memory\"", cl->name, cl->address, cl->port);
		http_listener_free(hl);
		return false;
	}
	evhttp_set_max_headers_size(hl->http, (ev_ssize_t)net->conf->http_header_max);
	evhttp_set_max_body_size(hl->http, (ev_ssize_t)net->conf->http_body_max);
	evhttp_set_timeout(hl->http, (int)net->conf->http_request_timeout);
	evhttp_set_allowed_methods(hl->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
		EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(hl->http, "text/plain; charset=utf-8");
	evhttp_set_bevcb(hl->http, bev_cb, hl);
	evhttp_set_gencb(hl->http, request_cb, hl);
	hl->lev = evconnlistener_new(net->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!hl->lev || !evhttp_bind_listener(hl->http, hl->lev)) {
		if (hl->lev)
			evconnlistener_free(hl->lev);
		else
			close(fd);
		hl->lev = NULL;
		log_event(LOG_ERR, "listen_error", "listener=%s address=%s port=%u error=\"cannot watch the socket\"", cl->name,
			cl->address, cl->port);
		http_listener_free(hl);
		return false;
	}
	net->http[net->n_http++] = hl;
	struct sockaddr_storage bound;
	socklen_t bl = sizeof(bound);
	unsigned port = cl->port;
	if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
		port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
			: ((struct sockaddr_in *)&bound)->sin_port);
	log_event(LOG_INFO, "listening", "listener=%s address=%s port=%u role=%s tls=%s", cl->name, cl->address,
		port, conf_role_name(cl->role), conf_tls_name(cl->tls));
	return true;
}

void http_listener_stop(struct http_listener *hl)
{
	if (hl->lev)
		evconnlistener_disable(hl->lev);
}

/* evhttp frees its connections (their close callbacks forget our records), its
 * bound socket and the listener; the records evhttp had already dropped go next. */
void http_listener_free(struct http_listener *hl)
{
	if (!hl)
		return;
	if (hl->http)
		evhttp_free(hl->http);
	while (hl->conns) {
		hl->conns->in_handler = 0;
		conn_forget(hl->conns);
	}
	if (hl->tick)
		event_free(hl->tick);
	free(hl);
}
