/* smtp_client.h - the SMTP client side of delivery (RFC 5321 §4, RFC 2920
 * PIPELINING, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 1870 SIZE, RFC 6152 8BITMIME,
 * RFC 6531 SMTPUTF8, RFC 3030 CHUNKING, RFC 3461 DSN).  Replies and EHLO keywords
 * are read by wire/; the dialogue runs over a net/client connection. */
#ifndef POSTERN_DELIVERY_SMTP_CLIENT_H
#define POSTERN_DELIVERY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "delivery/reason.h"
#include "wire/wire.h"

struct net_client;
struct queue_envelope;

enum smtp_tls_policy {
	SMTP_TLS_OPPORTUNISTIC,   /* STARTTLS when offered; plaintext if not */
	SMTP_TLS_REQUIRE,         /* STARTTLS must work (a smarthost set to starttls) */
	SMTP_TLS_IMPLICIT,        /* already TLS (port 465 style) */
	SMTP_TLS_NEVER,
};

/* Where smtp_client_open stopped (for words that name the step). */
enum smtp_open_step {
	SMTP_STEP_NONE,
	SMTP_STEP_GREETING,
	SMTP_STEP_EHLO,
	SMTP_STEP_NO_STARTTLS,      /* TLS required, the server does not offer STARTTLS */
	SMTP_STEP_STARTTLS,         /* STARTTLS refused, or the handshake failed */
	SMTP_STEP_TLS_AUTH,         /* the peer did not authenticate (tls_params->auth_error) */
	SMTP_STEP_AUTH,
};

struct net_tls_params;

struct smtp_client_opts {
	const char *helo;                 /* our host name */
	const char *peer_name;            /* for SNI and certificate checks */
	enum smtp_tls_policy tls;
	bool tls_verify;                  /* refuse an unverified certificate */
	struct net_tls_params *tls_params;   /* when set: how to authenticate (DANE, CAs); overrides tls_verify */
	const char *auth_user;            /* NULL: no AUTH */
	const char *auth_pass;
	enum smtp_open_step *failed_step; /* when set: where opening failed */
	/* LMTP (RFC 2033) to another node of the cluster: LHLO instead of EHLO (no HELO
	 * fallback), then "XNODE <node_token>" (auth/node_token.h) when set, and after the
	 * final dot one reply per accepted recipient (§4.2). */
	bool lmtp;
	const char *node_token;
};

/* The message to send: the envelope, the recipients (indexes into env->rcpts) and
 * the message bytes (CRLF line ends) in fd at off, size octets. */
/* The message: prefix_len octets at prefix (the header fields added at the end of
 * data, queue.h; may be NULL), then the octets [off, off + size - prefix_len) of fd.
 * size is the whole, as SIZE= declares it (RFC 1870). */
struct smtp_client_msg {
	const struct queue_envelope *env;
	const size_t *rcpts;
	size_t n;
	const char *prefix;
	size_t prefix_len;
	int fd;
	off_t off;
	uint64_t size;
};

struct smtp_client;

/* One reply (RFC 5321 §4.2, multi-line "CODE-text") from conn: false on a read
 * failure or a line that is not a reply line (err says; r->lines keeps what came).
 * The transcript (net_client_opts) shows each line.  The doctor drives its own
 * dialogue with it and net_client_write_line. */
bool smtp_read_reply(struct net_client *conn, struct wire_reply *r, char *err, size_t errlen);

/* Greeting, EHLO, STARTTLS, AUTH (o is used during the call only).  NULL on failure, with the reason in err and
 * *permanent telling whether retrying elsewhere is pointless (e.g. AUTH refused is
 * not: it is a setting the admin must change, so it is temporary). */
struct smtp_client *smtp_client_open(struct net_client *conn, const struct smtp_client_opts *o,
	char *err, size_t errlen, bool *permanent);
/* One transaction.  Fills results[i] for each msg->rcpts[i].  Returns false when the
 * connection broke (results then say DEFER for those not decided). */
bool smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg, struct rcpt_result *results);
/* QUIT and close (frees the connection too). */
void smtp_client_close(struct smtp_client **c);
/* Close without QUIT (the connection is broken, or the peer already closed it). */
void smtp_client_drop(struct smtp_client **c);
/* May carry another transaction: not broken, the last transaction left the session
 * clean (ended by the reply to the end of data, or an RSET answered 250), nothing
 * unread waiting. */
bool smtp_client_reusable(const struct smtp_client *c);
/* The last smtp_client_send broke before the server answered anything of it: the
 * peer had closed the connection (a kept connection gone stale), so nothing of the
 * message can have been taken and it may go again at once on another connection. */
bool smtp_client_broke_unanswered(const struct smtp_client *c);
const struct wire_caps *smtp_client_caps(const struct smtp_client *c);
struct net_client *smtp_client_conn(struct smtp_client *c);

#endif
