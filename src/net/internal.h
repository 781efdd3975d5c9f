/* internal.h - the transport's records, shared by the files of net/ only
 * (server.c: listeners; conn.c: connections; limits.c: the connection limits;
 * deadline.c: the deadlines; deflate.c: the COMPRESS filter; bridge.c: the byte bridge).  Other rooms use net/server.h, net/tls.h and
 * net/client.h. */
#ifndef POSTERN_NET_INTERNAL_H
#define POSTERN_NET_INTERNAL_H

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "net/server.h"

#define IP_BUCKETS 1024

struct tls;
struct http_listener;

struct ip_count {
	char addr[INET6_ADDRSTRLEN];
	unsigned count;
	struct ip_count *next;
};

struct listener_ctx {
	struct net *net;
	const struct conf_listener *conf;
	const struct proto_ops *proto;   /* the protocol spoken there */
	void *ctx;                       /* handed to its connections */
};

struct net {
	const struct conf *conf;
	struct event_base *base;
	struct evconnlistener *listeners[CONF_MAX_LISTENERS];
	struct listener_ctx lctx[CONF_MAX_LISTENERS];
	size_t n_listeners;
	struct tls *tls;
	bool shutting_down;
	uint64_t next_conn_id;
	unsigned n_conns;
	unsigned n_refusing;             /* refused connections told so over TLS (not in n_conns) */
	struct http_listener *http[CONF_MAX_LISTENERS];   /* http.c */
	size_t n_http;
	unsigned n_http_conns;           /* HTTP connections (in the limits, not in n_conns) */
	struct conn *conns;              /* doubly linked, for shutdown */
	struct ip_count *ips[IP_BUCKETS];
};

struct conn {
	struct net *net;
	const struct conf_listener *listener;
	struct bufferevent *bev;
	void *session;
	const struct proto_ops *ops;
	void *ctx;                       /* the listener's: the protocol adapter's service */
	uint64_t id;
	char addr[INET6_ADDRSTRLEN];
	char via[INET6_ADDRSTRLEN];      /* conn_set_client_addr: who connected (for the logs); "" */
	unsigned busy;                   /* jobs (commit, login check, mailbox) that point at us */
	bool closed;                     /* socket gone; freed when the jobs return */
	bool read_paused;
	bool trusted;                    /* client inside trusted_networks, or local */
	bool local;                      /* on a unix socket: peer says who (SO_PEERCRED) */
	struct conn_peer peer;           /* with local */
	bool refusing;                   /* refused: TLS handshake, then the refusal, then close */
	enum conn_refusal refusal;       /* with refusing */
	bool got_data;                   /* any byte received yet */
	bool tls_pending;                /* handshake running */
	bool tls_failed;                 /* handshake failed: sending the alert, then closing */
	SSL *ssl;                        /* owned by the TLS bufferevent */
	struct event *sniff;             /* implicit TLS: waiting for the ClientHello */
	struct event *delay;             /* conn_after: an answer held back */
	void (*delay_cb)(void *arg);
	void *delay_arg;
	struct event *closer;            /* waiting for the last bytes to leave */
	unsigned close_checks;
	struct event *deadline;          /* the earliest deadline (deadline.c) */
	uint64_t since;                  /* ms, monotonic: accepted */
	uint64_t line_since;             /* a command line began (0: none pending) */
	uint64_t data_since;             /* message content began (0: not in DATA/BDAT) */
	uint64_t data_bytes;             /* content octets since data_since */
	uint64_t tls_since;              /* the handshake began (0: none running) */
	struct net_deflate *deflate;     /* compression on (conn_start_deflate), or NULL */
	struct net_bridge *bridge;       /* bytes carried to a peer (conn_bridge, bridge.c), or NULL */
	struct conn *prev, *next;
};

/* conn.c */
/* A connection record.  ipc NULL: a refusal delivered over TLS, counted apart
 * (n_refusing), not in the connection limits it enforces. */
struct conn *conn_new(struct listener_ctx *lc, const char *addr, struct ip_count *ipc);
void conn_setup_bev(struct conn *c, struct bufferevent *bev);
void conn_start_session(struct conn *c, const char *tls_desc);
void conn_free(struct conn *c);

/* limits.c */
/* May this address have another connection?  false: *why says which limit. */
bool limits_admit(struct net *net, const char *addr, struct ip_count **ipc, enum conn_refusal *why);
void limits_release(struct net *net, const char *addr);   /* a connection from addr closed */
void limits_move(struct net *net, const char *from, const char *to);   /* its address changed */
void limits_free(struct net *net);

/* http.c */
void http_listener_stop(struct http_listener *hl);   /* accept no more */
void http_listener_free(struct http_listener *hl);   /* its connections too */

/* bridge.c */
void bridge_free(struct conn *c);   /* the peer side closed and freed; NULL bridge: nothing */

/* deadline.c */
bool deadline_start(struct conn *c, event_callback_fn fired);   /* at accept; false: out of memory */
/* The deadline timer fired: the deadline that passed (logged), or DEADLINE_NONE
 * (re-armed: not yet, or the server itself keeps the client waiting). */
enum deadline_kind deadline_passed(struct conn *c, unsigned long long *limit);
void deadline_update(struct conn *c);    /* after input, TLS or login progress */
void deadline_fed(struct conn *c, bool in_data, size_t n);   /* n octets fed to the session */
void deadline_stop(struct conn *c);

/* deflate.c: raw deflate both ways (RFC 1951; IMAP COMPRESS=DEFLATE, RFC 4978). */
struct evbuffer;
struct net_deflate;
struct net_deflate *net_deflate_new(char *err, size_t errlen);
void net_deflate_free(struct net_deflate **d);
/* Compress n octets, ending with a sync flush, onto `to`.  false: zlib failed. */
bool net_deflate_write(struct net_deflate *d, const void *p, size_t n, struct evbuffer *to);
/* Inflate `from` into the plain buffer while it holds less than limit octets.
 * false: a broken stream (net_deflate_error). */
bool net_deflate_read(struct net_deflate *d, struct evbuffer *from, size_t limit);
struct evbuffer *net_deflate_plain(struct net_deflate *d);   /* inflated, not yet fed */
const char *net_deflate_error(const struct net_deflate *d);
size_t net_deflate_memory(const struct net_deflate *d);     /* zlib's state and ours, octets */
/* The connection's input for the session (inflated when compressing), or NULL: the
 * stream broke (the session was told, or c was freed).  Its output, compressed
 * when compressing; false: zlib failed. */
struct evbuffer *conn_input(struct conn *c, size_t limit);
bool conn_output(struct conn *c, struct evbuffer *ob, const void *p, size_t n);

#endif
