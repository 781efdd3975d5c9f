/* client.h - the one outbound connection API, for the delivery threads and the
 * doctor: TCP with connect and I/O time-outs (optionally from a given source
 * address), line reading with a bound, a TLS client (STARTTLS or implicit) that
 * records whether the certificate verified or reports it in full, a transcript hook
 * and a stop switch.  Transport only: it knows lines and bytes, no protocol.
 * Blocking by design: it runs on delivery threads and in `postern doctor`, never on
 * the event loop. */
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

/* What a connection attempt or a read ended in. */
enum net_status {
	NET_OK,
	NET_REFUSED,       /* connection refused: nothing listens */
	NET_TIMEOUT,       /* no answer within the limit */
	NET_UNREACHABLE,   /* no route, network down, name or address not usable */
	NET_CLOSED,        /* the peer closed the connection */
	NET_GARBAGE,       /* bytes that never formed a line (e.g. a TLS record) */
	NET_ERROR,         /* anything else (the error text says) */
};

/* The transcript: each line read ("S"), each line written with net_client_write_line
 * ("C", or what it shows instead), and events ("--": connected, TLS). */
typedef void net_transcript_fn(void *arg, const char *who, const char *text);

struct net_client_opts {
	unsigned connect_timeout;   /* seconds */
	unsigned io_timeout;        /* seconds, per read or write */
	unsigned connect_ms;        /* when not 0: the limits in milliseconds instead */
	unsigned io_ms;
	const char *source;         /* local address to bind, or NULL */
	const struct net_cancel *cancel;   /* NULL: none */
	net_transcript_fn *transcript;     /* NULL: none */
	void *transcript_arg;
};

/* Resolve host (getaddrinfo); writes the addresses, space-separated.  Returns the
 * number found, 0 on failure (the reason in out). */
int net_resolve(const char *host, char *out, size_t outsz);

/* Connect to an IPv4/IPv6 literal (address) or a host name, port, trying each
 * address.  On failure NULL, with *st (when not NULL: a time-out on one address
 * says more than a refusal on another) and err set. */
struct net_client *net_client_open(const char *host, unsigned port, const struct net_client_opts *o,
	enum net_status *st, char *err, size_t errlen);
struct net_client *net_client_connect(const char *host, unsigned port, const struct net_client_opts *o,
	char *err, size_t errlen);
/* Connect to a unix-domain stream socket at path (a local content filter), with the
 * same connect and I/O time-outs and stop switch (o->source is not used).  A path
 * that does not fit sockaddr_un fails with NET_UNREACHABLE; a path with no socket,
 * or nobody behind it, with NET_REFUSED. */
struct net_client *net_client_open_unix(const char *path, const struct net_client_opts *o, enum net_status *st,
	char *err, size_t errlen);
/* A stream socket connected elsewhere (one end of a socketpair: the maildrop pickup
 * talking to its own server), with the same reads, writes and time-outs; peer names
 * it in words.  The client owns fd from now on (closed on failure too). */
struct net_client *net_client_adopt(int fd, const struct net_client_opts *o, const char *peer, char *err, size_t errlen);
/* Change the limit of each later read or write (milliseconds, at least 1): a
 * protocol whose steps have different time-outs (the milter's command and content
 * time-outs, a deadline that shrinks) sets it before each wait. */
void net_client_set_io_ms(struct net_client *c, unsigned ms);
void net_client_close(struct net_client **c);
/* The local address of the connection ("127.0.0.2"). */
const char *net_client_local(const struct net_client *c);

bool net_client_write(struct net_client *c, const void *p, size_t n, char *err, size_t errlen);
/* One line, CR LF added; the transcript shows `shown` instead when not NULL (a
 * masked password). */
bool net_client_write_line(struct net_client *c, const char *line, const char *shown, char *err, size_t errlen);
/* One line without its CRLF (at most linesz-1 octets; a longer line is cut and the
 * rest skipped).  Returns the length, or -1 on error/time-out/close (err says,
 * net_client_status tells which). */
long net_client_read_line(struct net_client *c, char *line, size_t linesz, char *err, size_t errlen);
/* How the last failed read ended. */
enum net_status net_client_status(const struct net_client *c);

/* Start TLS on the connection (after STARTTLS, or at once for implicit TLS).
 * The handshake fails only for protocol errors; certificate trouble is recorded:
 * verified tells whether the chain verified against the system CAs and the name
 * matched `name`.  With require_verified, an unverified certificate fails. */
bool net_client_tls(struct net_client *c, const char *name, bool require_verified, char *err, size_t errlen);

/* One TLSA record (RFC 6698 §2.1) as plain bytes, for DANE authentication. */
struct net_tlsa {
	unsigned char usage, selector, matching;
	const unsigned char *data;
	size_t len;
};

/* How a TLS client authenticates its peer, for the callers that need more than the
 * system CAs and one name (delivery's DANE and MTA-STS, the policy fetch):
 * - tlsa: DANE (RFC 7671, RFC 7672 §3): the peer is authenticated by these records
 *   only (usages 2 and 3; the caller leaves out what it does not use), with `name`
 *   and `more_names` as reference identifiers for DANE-TA; DANE-EE ignores names
 *   (RFC 7672 §3.1.1);
 * - otherwise WebPKI: the chain against the system CAs plus ca_file (when set) and
 *   `name` (or one of more_names) in the certificate (RFC 6125).
 * Outcome: auth_failed and auth_error say why authentication failed (the handshake
 * itself worked); dane_matched tells which TLSA record matched (-1: none). */
struct net_tls_params {
	const char *name;                  /* SNI and the first reference identifier */
	const char *const *more_names;
	size_t n_more_names;
	bool require_verified;             /* fail when authentication fails */
	const char *ca_file;               /* extra trusted CAs (PEM), or NULL */
	const struct net_tlsa *tlsa;       /* DANE when n_tlsa > 0 */
	size_t n_tlsa;
	/* filled in */
	bool auth_failed;
	char auth_error[160];
	int dane_matched;
};
bool net_client_tls_with(struct net_client *c, struct net_tls_params *p, char *err, size_t errlen);

/* Up to n octets as they come (after TLS: decrypted).  Returns the count, 0 when
 * the peer closed the connection, -1 on error or time-out (err says). */
long net_client_read(struct net_client *c, void *buf, size_t n, char *err, size_t errlen);
bool net_client_is_tls(const struct net_client *c);
/* "TLSv1.3 with cipher ..., certificate verified" or "... not verified (reason)". */
void net_client_tls_summary(const struct net_client *c, char *out, size_t outsz);
bool net_client_tls_verified(const struct net_client *c);

/* The certificate as a report (the doctor's TLS step). */
struct net_cert {
	bool present;
	bool chain_ok;           /* verified against the trusted CAs */
	bool self_signed;
	bool expired, not_yet_valid;
	bool name_ok;            /* X509_check_host / X509_check_ip_asc */
	long verify_code;        /* X509_V_* */
	char verify_error[128];
	char subject[256], issuer[256], not_after[64];
	int days_left;
	char protocol[32], cipher[64];
};
/* Start TLS and report: the handshake does not stop at an untrusted certificate,
 * `cert` says what is wrong with it.  ca_file adds trusted CAs (NULL: the system's
 * only).  *wrong_version is set when the peer answered the ClientHello with
 * plaintext. */
bool net_client_tls_report(struct net_client *c, const char *name, const char *ca_file, struct net_cert *cert,
	bool *wrong_version, char *err, size_t errlen);
/* The remote address actually connected to. */
const char *net_client_peer(const struct net_client *c);

/* TLS session resumption (RFC 8446 §2.2, RFC 5077): a session kept from one
 * connection and offered by the next one to the same server saves the full
 * handshake.  A session remembers the parameters (net_tls_params: names, CAs, TLSA
 * records, whether verification was required) and the outcome of the handshake
 * that authenticated the peer; it is offered only under the same parameters, and a
 * resumed connection carries that outcome, since the peer's certificate is not
 * checked again on resumption.  Reference-counted; thread-safe. */
struct net_tls_session;
/* The session of c's TLS connection, or NULL (no TLS, or nothing resumable yet). */
struct net_tls_session *net_client_tls_session(const struct net_client *c);
struct net_tls_session *net_tls_session_ref(struct net_tls_session *s);
void net_tls_session_free(struct net_tls_session **s);
/* Offer s (a reference is taken) at c's next TLS handshake. */
void net_client_offer_session(struct net_client *c, struct net_tls_session *s);
/* The handshake resumed an offered session. */
bool net_client_tls_resumed(const struct net_client *c);

/* For keeping idle connections (delivery's connection cache): the socket, to watch
 * for the peer closing it; and whether nothing read is left unconsumed (buffered
 * here or inside TLS), i.e. the dialogue is where the caller thinks it is. */
int net_client_fd(const struct net_client *c);
bool net_client_drained(const struct net_client *c);

#endif
