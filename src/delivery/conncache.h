/* conncache.h - outbound connections kept idle for the next message to the same
 * destination, shared by every delivery thread (as Postfix's scache(8) does).
 *
 * A connection is kept after a transaction that left it clean (the end of data
 * ended the transaction, RFC 5321 §4.1.1.4, or an RSET was answered with 250)
 * under a destination key (conncache_key: route, host, port, TLS policy, AUTH
 * identity), so that it is never taken for a destination with other credentials or
 * stricter TLS requirements.  The next delivery to that key takes the most recently
 * kept one (LIFO: the rest expire) instead of DNS, connect, EHLO, STARTTLS and AUTH.
 *
 * Bounds: at most per_destination idle connections under one key (one more is
 * closed) and max_total in all (the oldest idle one anywhere makes room).  A reaper
 * thread owns every close: it watches the idle sockets (poll) and closes one when
 * its idle time passes (QUIT), when the peer closes it or says something unasked
 * (a 421, RFC 5321 §3.8), and everything at conncache_free (QUIT, with one short
 * deadline for all).  Delivery threads hand connections over and never wait for a
 * QUIT reply themselves.
 *
 * The cache also keeps one TLS session per key (net/client.h) for resumption,
 * bounded and aged out.
 *
 * The cache knows sockets and keys, not SMTP: the connections are the caller's,
 * behind conncache_ops.  Thread-safe. */
#ifndef POSTERN_DELIVERY_CONNCACHE_H
#define POSTERN_DELIVERY_CONNCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_tls_session;

#define CONNCACHE_KEY_MAX 400
#define CONNCACHE_SESSION_AGE 3600   /* seconds a TLS session is offered at most */

struct conncache_ops {
	int (*fd)(void *conn);                           /* the socket watched while idle */
	/* polite: say goodbye (QUIT), waiting at most ms for the reply; else just close */
	void (*close)(void *conn, bool polite, unsigned ms);
};

struct conncache_opts {
	const struct conncache_ops *ops;
	unsigned idle_ms;           /* how long a connection is kept idle; 0: never kept */
	unsigned per_destination;   /* idle connections under one key */
	unsigned max_total;         /* idle connections in all */
	unsigned sessions_max;      /* TLS sessions kept (one per key) */
	unsigned quit_ms;           /* the wait for QUIT's reply when the idle time passes */
};

struct conncache;

struct conncache *conncache_new(const struct conncache_opts *o, char *err, size_t errlen);
/* Stops the reaper, then closes every idle connection (QUIT, 1 s for all). */
void conncache_free(struct conncache **cc);

/* What a destination key is made of.  auth_user/auth_pass NULL: no AUTH; the
 * password enters the key only as part of a SHA-256, never as text. */
struct conncache_dest {
	const char *route;          /* "mx" (host: the next-hop domain) or "relay" (host: the smarthost) */
	const char *host;
	unsigned port;
	const char *tls;            /* the TLS policy that applied, e.g. "starttls,verify" */
	const char *auth_user;
	const char *auth_pass;
};
void conncache_key(const struct conncache_dest *d, char *out, size_t outsz);

/* An idle connection kept under key (now the caller's), or NULL.  One whose peer
 * has closed it or spoken meanwhile is closed, not returned. */
void *conncache_take(struct conncache *cc, const char *key);
/* Keep conn (clean, healthy) under key; the cache owns it from now on, and may
 * close it at once (idle time 0, per-destination bound). */
void conncache_put(struct conncache *cc, const char *key, void *conn);
/* Close conn on the reaper's thread (polite: QUIT); the cache owns it now. */
void conncache_discard(struct conncache *cc, void *conn, bool polite);

/* TLS sessions: put takes over the reference (s may be NULL: nothing); get returns
 * a new reference or NULL. */
void conncache_session_put(struct conncache *cc, const char *key, struct net_tls_session *s);
struct net_tls_session *conncache_session_get(struct conncache *cc, const char *key);

struct conncache_stats {
	unsigned idle;              /* connections idle now */
	uint64_t kept, taken;       /* put into the cache / taken from it */
	uint64_t expired;           /* closed by the reaper when their idle time passed */
	uint64_t peer_closed;       /* closed because the peer closed (or spoke) */
	uint64_t evicted;           /* closed to stay within the bounds */
};
void conncache_stats(struct conncache *cc, struct conncache_stats *st);

#endif
