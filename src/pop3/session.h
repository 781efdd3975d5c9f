/* session.h - one POP3 server conversation as a sans-I/O state machine
 * (RFC 1939, RFC 2449 CAPA and response codes, RFC 2595 STLS, RFC 5034 AUTH,
 * RFC 3206 [SYS/TEMP], [SYS/PERM] and [AUTH]).
 *
 * The network layer feeds received bytes with pop3_session_feed() and sends what
 * appears in pop3_session_output(); it removes what it sent with buf_consume().
 * Everything else comes through hooks:
 *
 *   login     auth_blocked / auth_verify, the hooks of the login exchange shared
 *             with SMTP AUTH (auth/login.h: the same throttle, the same login
 *             service, app passwords); the caller answers later with
 *             pop3_session_auth_done().
 *   maildrop  mailbox_open(user): the caller opens the user's Maildir (on a thread
 *             if it likes) and answers with pop3_session_mailbox_done(), handing
 *             over an opened maildrop: ops + handle (pop3_maildir_ops with a
 *             struct mailbox * from store/mailbox.h, or a fake in tests).
 *
 * Both answers may also be given from inside the hook call.
 *
 * Large multi-line responses (RETR, TOP, LIST and UIDL without argument) stream:
 * the session queues at most about POP3_PUMP_TARGET octets, then
 * pop3_session_streaming() is true and the caller calls pop3_session_pump()
 * whenever its own output buffer runs low (libevent: from the write callback,
 * below a low-water mark).  Meanwhile pop3_session_feed() consumes no input
 * (pipelined commands wait in the caller's buffer); when the response is complete
 * the caller feeds the rest again.  Message bodies are read from the maildrop in
 * bounded chunks, LF turned into CRLF (so the octet count equals W=), lines
 * starting with "." byte-stuffed, ".\r\n" at the end.
 *
 * DELE marks; only QUIT in the TRANSACTION state expunges (the UPDATE state).  A
 * timeout, a shutdown, or a dropped connection closes the maildrop with nothing
 * deleted (RFC 1939 §6). */
#ifndef POSTERN_POP3_SESSION_H
#define POSTERN_POP3_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "auth/login.h"

struct buf;

#define POP3_PUMP_TARGET (32u << 10)   /* octets queued per pump step */

struct pop3_limits {
	size_t max_line;           /* command line, CRLF included; at least 255 (RFC 2449 §4) */
	unsigned max_bad_commands; /* then -ERR and close */
	unsigned idle_timeout;     /* seconds; only quoted (the caller times; RFC 1939 §3: >= 600) */
};

struct pop3_conn_info {
	uint64_t conn_id;
	const char *run_id;        /* references are RUN.CONN.N (util/id.h); NULL: CONN.N */
	const char *hostname;      /* ours */
	const char *client_addr;
	const char *listener;      /* listener name, for logs */
	bool tls_offered;          /* STLS may be offered (RFC 2595) */
	bool tls_active;           /* implicit TLS (port 995, RFC 8314) */
	const char *tls_description;
	bool allow_plaintext_auth; /* USER/PASS/AUTH before TLS (discouraged) */
};

enum pop3_mailbox_result {
	POP3_MAILBOX_OK,
	POP3_MAILBOX_IN_USE,       /* -ERR [IN-USE] (another session has it) */
	POP3_MAILBOX_TEMP,         /* -ERR [SYS/TEMP] */
	POP3_MAILBOX_PERM,         /* -ERR [SYS/PERM] (e.g. no mailbox for this login) */
};

/* An opened maildrop.  Message indexes are 0-based; the session never asks for
 * more than one open message at a time.  All calls are synchronous. */
struct pop3_maildrop_ops {
	size_t (*count)(void *mb);
	uint64_t (*size)(void *mb, size_t i);          /* octets in CRLF form (W=) */
	const char *(*uid)(void *mb, size_t i);        /* 1-70 chars 0x21-0x7E, unique */
	void *(*msg_open)(void *mb, size_t i);         /* NULL: cannot be read */
	ssize_t (*msg_read)(void *msg, void *p, size_t n);   /* stored bytes; 0 end, -1 error */
	void (*msg_close)(void *msg);
	/* UPDATE: remove every i with deleted[i]; *removed says how many went. */
	bool (*expunge)(void *mb, const bool *deleted, size_t *removed, char *err, size_t errlen);
	void (*close)(void *mb);                       /* unlock, nothing deleted */
};

/* The store's Maildir (handle: struct mailbox * from mailbox_open()). */
extern const struct pop3_maildrop_ops pop3_maildir_ops;

struct pop3_hooks {
	void *ctx;
	/* Optional: without auth_verify, USER/PASS and AUTH are not offered. */
	/* May this client log in as user now; if not, why and until when?  user may be
	 * NULL (not known yet). */
	struct throttle_verdict (*auth_blocked)(void *ctx, const char *user);
	/* Check credentials; the caller later calls pop3_session_auth_done().  mech is
	 * "USER" for USER/PASS, else the SASL mechanism. */
	void (*auth_verify)(void *ctx, const char *mech, const char *user, const char *pass);
	/* Open the canonical user's maildrop; the caller later calls
	 * pop3_session_mailbox_done(). */
	void (*mailbox_open)(void *ctx, const char *user);
	/* Optional (a node of a cluster): XCLIENT's node token (docs/architecture.md) -
	 * true when it vouches for exactly this client address and login; then the
	 * caller has taken addr as the connection's client address.  false: why says
	 * so in words.  NULL: XCLIENT is refused. */
	bool (*xclient)(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz);
};

struct pop3_session;

struct pop3_session *pop3_session_new(const struct pop3_conn_info *info, const struct pop3_limits *limits,
	const struct pop3_hooks *hooks);
/* Closes an open maildrop without deleting anything.  Sets *s to NULL. */
void pop3_session_free(struct pop3_session **s);

/* Queue the +OK greeting. */
void pop3_session_start(struct pop3_session *s);
/* Consume input; returns bytes consumed.  Less than len: waiting for a hook answer,
 * streaming a response, STLS pending, output backed up, or closing. */
size_t pop3_session_feed(struct pop3_session *s, const void *data, size_t len);

/* A streamed response is in progress: call pop3_session_pump() when output is low. */
bool pop3_session_streaming(const struct pop3_session *s);
/* Queue up to about POP3_PUMP_TARGET more octets of the streamed response (nothing
 * when the output already holds that much).  When it completes, feed pending input
 * again.  A read error mid-message closes the connection without the final "."
 * (the client must not take a cut message for a whole one). */
void pop3_session_pump(struct pop3_session *s);

/* The login check finished: login is the canonical user name on success,
 * blocked_until the end of the block for LOGIN_BLOCKED.  On success the
 * session calls hooks->mailbox_open(login). */
void pop3_session_auth_done(struct pop3_session *s, enum login_result r, const char *login,
	time_t blocked_until);
/* Instead of pop3_session_auth_done(LOGIN_OK): the login was right but the mailbox
 * lives on another node of the cluster, and the caller asked that node to take the
 * session over (XCLIENT).  OK: text is the home node's +OK line, passed on; the
 * session then waits for ever (the transport carries the bytes from now on:
 * pop3_session_proxied).  REFUSED: text is its -ERR line, passed on; the client may
 * try again.  UNAVAILABLE: text says why node could not be reached; -ERR
 * [SYS/TEMP] naming the node and what to do. */
enum pop3_proxy_result { POP3_PROXY_OK, POP3_PROXY_REFUSED, POP3_PROXY_UNAVAILABLE };
void pop3_session_proxy_done(struct pop3_session *s, enum pop3_proxy_result r, const char *node, const char *text);
bool pop3_session_proxied(const struct pop3_session *s);
/* The maildrop is open (r == POP3_MAILBOX_OK: the session owns mb and closes it
 * with ops->close) or could not be.  If the session is no longer waiting (it was
 * disconnected), an OK maildrop is closed at once. */
void pop3_session_mailbox_done(struct pop3_session *s, enum pop3_mailbox_result r,
	const struct pop3_maildrop_ops *ops, void *mb);

/* "+OK Begin TLS negotiation" was queued: flush it, discard buffered input, start
 * TLS, then call pop3_session_tls_started(). */
bool pop3_session_wants_tls(const struct pop3_session *s);
/* TLS is up (RFC 2595 §4: forget what the client said before, e.g. USER). */
void pop3_session_tls_started(struct pop3_session *s, const char *description);

/* The canonical user once the maildrop is open (TRANSACTION state), or NULL. */
const char *pop3_session_login(const struct pop3_session *s);
/* Waiting for auth_done or mailbox_done. */
bool pop3_session_waiting(const struct pop3_session *s);

/* The client was idle too long: -ERR and close, nothing deleted. */
void pop3_session_timeout(struct pop3_session *s);
/* A deadline of the transport passed (net/deadline.c): -ERR saying which, with its
 * limit in seconds, and close, nothing deleted. */
enum pop3_deadline { POP3_DEADLINE_LINE, POP3_DEADLINE_LOGIN, POP3_DEADLINE_SESSION };
void pop3_session_deadline(struct pop3_session *s, enum pop3_deadline which, unsigned long long limit);
/* A command line (or AUTH answer) is partly received. */
bool pop3_session_line_pending(const struct pop3_session *s);
/* The server is shutting down: -ERR [SYS/TEMP] and close, nothing deleted. */
void pop3_session_shutdown(struct pop3_session *s);
/* The connection dropped: close the maildrop, nothing deleted. */
void pop3_session_disconnected(struct pop3_session *s);

/* Refusals of a whole connection, before any session exists (the transport writes
 * the line and closes): RFC 2449 §8 / RFC 3206 response codes, a reason and a hint,
 * no reference (nothing is logged here; the transport logs the refusal). */
enum pop3_refusal {
	POP3_REFUSE_BUSY,          /* the server's connection limit: [SYS/TEMP] */
	POP3_REFUSE_ADDRESS_BUSY,  /* the per-address limit (quoted): [SYS/TEMP] */
	POP3_REFUSE_RESERVED,      /* the last slots are kept for new addresses: [SYS/TEMP] */
	POP3_REFUSE_TLS_EXPECTED,  /* plaintext on an implicit-TLS port: [SYS/PERM] */
};
void pop3_refusal_line(struct buf *out, enum pop3_refusal why, const char *hostname, unsigned long long limit);

struct buf *pop3_session_output(struct pop3_session *s);
bool pop3_session_wants_close(const struct pop3_session *s);   /* after output is flushed */

#endif
