/* client.h - an outbound connection for the delivery threads (and, later, the
 * doctor): TCP with connect and I/O time-outs, line reading with a bound, and a
 * TLS client (STARTTLS or implicit) that records whether the certificate verified.
 * Blocking by design: it runs on delivery threads, never on the event loop. */
#ifndef POSTERN_NET_CLIENT_H
#define POSTERN_NET_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct net_client;

/* A stop switch for blocking connections: once fired, every wait of a connection
 * made with it (connect, read, write, TLS handshake) returns at once with an error
 * ("stopped: the server is shutting down"), so a shutdown does not sit out a slow
 * peer's time-out.  Thread-safe; fired from any thread. */
struct net_cancel;
struct net_cancel *net_cancel_new(void);
void net_cancel_fire(struct net_cancel *k);
void net_cancel_free(struct net_cancel **k);

struct net_client_opts {
	unsigned connect_timeout;   /* seconds */
	unsigned io_timeout;        /* seconds, per read or write */
	const char *source;         /* local address to bind, or NULL */
	const struct net_cancel *cancel;   /* NULL: none */
};

/* Connect to an IPv4/IPv6 literal (address) or a host name, port. */
struct net_client *net_client_connect(const char *host, unsigned port, const struct net_client_opts *o,
	char *err, size_t errlen);
void net_client_close(struct net_client **c);

bool net_client_write(struct net_client *c, const void *p, size_t n, char *err, size_t errlen);
/* One line without its CRLF (at most linesz-1 octets; a longer line is cut and the
 * rest skipped).  Returns the length, or -1 on error/time-out/close (err says). */
long net_client_read_line(struct net_client *c, char *line, size_t linesz, char *err, size_t errlen);

/* Start TLS on the connection (after STARTTLS, or at once for implicit TLS).
 * The handshake fails only for protocol errors; certificate trouble is recorded:
 * verified tells whether the chain verified against the system CAs and the name
 * matched `name`.  With require_verified, an unverified certificate fails. */
bool net_client_tls(struct net_client *c, const char *name, bool require_verified, char *err, size_t errlen);
bool net_client_is_tls(const struct net_client *c);
/* "TLSv1.3 with cipher ..., certificate verified" or "... not verified (reason)". */
void net_client_tls_summary(const struct net_client *c, char *out, size_t outsz);
bool net_client_tls_verified(const struct net_client *c);
/* The remote address actually connected to. */
const char *net_client_peer(const struct net_client *c);

#endif
