/* session.h - one SMTP server conversation as a sans-I/O state machine.
 *
 * The network layer feeds received bytes with smtp_session_feed() and sends whatever
 * appears in smtp_session_output().  Everything the session needs from the rest of
 * the server comes through struct smtp_hooks: decisions and the spool.  Whatever is
 * decided or done off the event loop puts the session in its one waiting state
 * (smtp_session_waiting) until the matching resume call, and pipelined commands that
 * follow stay in the caller's buffer meanwhile:
 *   - a decision (MAIL, RCPT, the From: of a logged-in user's message, the end of
 *     data): the decide hook, resumed with smtp_session_decided() and the verdict
 *     (policy/), after smtp_session_findings() with what the stages found;
 *   - the durable commit at the end of DATA/BDAT LAST, once the end-of-data decision
 *     said OK: spool_commit, resumed with
 *     smtp_session_commit_done() (RFC 5321 §4.5.2 / STYLE "commit, then acknowledge");
 *   - a login check: auth_verify, resumed with smtp_session_auth_done();
 *   - a reply held back (directory harvesting): hold, resumed with
 *     smtp_session_hold_done(). */
#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/login.h"
#include "policy/policy.h"
#include "smtp/address.h"

struct buf;

struct smtp_limits {
	uint64_t max_message;      /* octets, advertised with SIZE */
	unsigned max_recipients;
	size_t max_line;           /* command line, CRLF included */
	unsigned max_bad_commands;
	unsigned idle_timeout;     /* seconds; only quoted in the 421 (the caller times) */
	uint64_t max_message_line; /* longest message line, CRLF excluded; 0: SMTP_MESSAGE_LINE_DEFAULT */
	/* Directory harvesting: recipients refused as unknown (or not ours) in one session.
	 * Past refused_rcpt_delay_after, each such refusal is held back refused_rcpt_delay_ms
	 * times the excess (at most SMTP_REFUSED_DELAY_MAX_MS, through hooks->hold); at
	 * max_refused_rcpts the session ends with 421 4.7.0.  0: no limit / no delay. */
	unsigned max_refused_rcpts;
	unsigned refused_rcpt_delay_after;
	unsigned refused_rcpt_delay_ms;
};

#define SMTP_REFUSED_DELAY_MAX_MS 5000

#define SMTP_MESSAGE_LINE_DEFAULT 10000

struct smtp_conn_info {
	uint64_t conn_id;
	const char *run_id;        /* references are RUN.CONN.N (util/id.h); NULL: CONN.N */
	const char *hostname;      /* ours */
	const char *client_addr;   /* "192.0.2.1" or "2001:db8::1" */
	const char *client_name;   /* verified reverse name, or NULL */
	const char *listener;      /* listener name, for logs */
	bool submission;           /* role = submission */
	unsigned port;             /* the port this listener is bound to (for the words) */
	/* This server's submission listeners, as bound (RFC 8314 §3.3 / RFC 6409): the
	 * first with implicit TLS (465 style) and the first with STARTTLS (587 style), 0
	 * when there is none.  On an mx listener the port-25 trap names them
	 * (wrong_port.c). */
	unsigned submissions_port;
	unsigned submission_port;
	bool trusted_network;
	bool tls_offered;          /* STARTTLS may be offered (RFC 3207) */
	bool tls_active;           /* implicit TLS: secure from the first byte (RFC 8314) */
	const char *tls_description; /* with tls_active: "TLSv1.3 with cipher ..." */
	bool allow_plaintext_auth; /* AUTH before TLS (discouraged) */
	bool check_from_header;    /* From: of submitted mail must be owned by the login */
	const char *authserv_id;   /* Authentication-Results fields claiming it are removed
	                            * from incoming mail (RFC 8601 §5); NULL or "": none */
	/* Role lmtp: LMTP from another node of the cluster (RFC 2033): LHLO instead of
	 * EHLO/HELO, "XNODE <token>" (hooks->node_check) before MAIL, no AUTH, STARTTLS
	 * or CHUNKING, and one reply per accepted recipient after the final dot. */
	bool lmtp;
};

/* What the spool and the Received header need to know of a transaction. */
struct smtp_envelope {
	const struct smtp_path *sender;
	const struct smtp_mail_params *params;
	const struct smtp_path *rcpts;
	const struct smtp_rcpt_params *rcpt_params;   /* DSN, parallel to rcpts */
	size_t n_rcpts;
	const char *helo;
	const char *protocol;      /* SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP... */
};

/* A refusal the session just wrote (hooks->refused), for the event store: the
 * adapter records it; the session never touches the store.  Strings are the
 * session's, valid during the call only; NULL when not known. */
struct smtp_refusal_note {
	const char *cmd;           /* "MAIL", "RCPT", "DATA", "AUTH"...; NULL outside a command */
	int code;
	const char *enh;
	const char *cause_id;      /* explain's cause id (data/explain.ini), NULL: unknown */
	const char *ref;           /* the reference on the reply's last line */
	const char *text;          /* the reply's first paragraph (reason, hint), without the reference */
	size_t text_len;
	const char *login;         /* the canonical login, NULL: not logged in */
	const char *mail_from;     /* MAIL FROM of the transaction ("" null sender), NULL: none */
	const char *rcpt;          /* a RCPT refusal: the recipient refused */
};

struct smtp_hooks {
	void *ctx;
	/* Optional: told of every refusal the session writes, after it is queued. */
	void (*refused)(void *ctx, const struct smtp_refusal_note *n);
	/* A decision on facts the session filled in (the hook takes them: free them with
	 * policy_facts_free).  True: decided at once, the verdict is in *now.  False: the
	 * session waits for smtp_session_decided(). */
	bool (*decide)(void *ctx, struct policy_facts *facts, struct verdict *now);
	/* Open a spool file; writes the queue id (16 chars + NUL) into qid.  false: 451 4.3.0. */
	bool (*spool_open)(void *ctx, const struct smtp_envelope *env, char *qid);
	bool (*spool_write)(void *ctx, const void *p, size_t n);
	void (*spool_abort)(void *ctx);
	/* Optional: write out what spool_write buffered, before the end-of-data decision
	 * (its stages read the spooled file).  false: as a failed spool_write. */
	bool (*spool_flush)(void *ctx);
	/* Begin the durable commit; the caller later calls smtp_session_commit_done(). */
	void (*spool_commit)(void *ctx);
	/* Optional: without auth_verify, AUTH is not offered. */
	/* May this client log in as user now; if not, why and until when?  user may be
	 * NULL (not known yet). */
	struct throttle_verdict (*auth_blocked)(void *ctx, const char *user);
	/* Check credentials off the loop; the caller later calls smtp_session_auth_done(). */
	void (*auth_verify)(void *ctx, const char *mech, const char *user, const char *pass);
	/* Optional: at MAIL, is there storage for a message of `size` octets (0: not
	 * declared)?  false: 452 4.3.1 (RFC 3463 X.3.1, RFC 1870 §6.1). */
	bool (*spool_room)(void *ctx, uint64_t size);
	/* Optional: did the last spool failure (open, write, commit) come from a full
	 * disk?  Then 452 4.3.1 instead of 451 4.3.0. */
	bool (*spool_no_space)(void *ctx);
	/* Optional: hold the session for ms milliseconds (a timer, never a sleep), then call
	 * smtp_session_hold_done().  NULL: replies are never held back. */
	void (*hold)(void *ctx, unsigned ms);
	/* LMTP: is this node token valid (purpose "lmtp")?  peer gets the signing node's
	 * name; on false why says what is wrong. */
	bool (*node_check)(void *ctx, const char *token, char *peer, size_t peersz, char *why, size_t whysz);
};

struct smtp_session;

struct smtp_session *smtp_session_new(const struct smtp_conn_info *info,
	const struct smtp_limits *limits, const struct smtp_hooks *hooks);
/* Aborts an open spool file.  Sets *s to NULL. */
void smtp_session_free(struct smtp_session **s);

/* Queue the 220 greeting. */
void smtp_session_start(struct smtp_session *s);
/* Consume input; returns bytes consumed.  Less than len means: waiting for a commit,
 * or the session is closing.  Feed the rest again after smtp_session_commit_done(). */
size_t smtp_session_feed(struct smtp_session *s, const void *data, size_t len);
/* The decision asked for with hooks->decide: the reply is queued, input is consumed
 * again.  Ignored unless the session waits for a decision. */
void smtp_session_decided(struct smtp_session *s, const struct verdict *v);
/* What the stages of the decision being asked found (the run's facts, before its
 * verdict: inside hooks->decide when it answers at once, else before
 * smtp_session_decided): the session keeps the transaction's findings written at
 * MAIL (f->txn, policy.h) and whether a recipient's domain is local.  Ignored
 * for any other decision, or without a transaction. */
void smtp_session_findings(struct smtp_session *s, const struct policy_facts *f);
/* The commit finished: ok with the queue id, or not (then 451 4.3.0). */
void smtp_session_commit_done(struct smtp_session *s, bool ok);
/* The hold asked for with hooks->hold is over: the held reply is queued and input is
 * consumed again. */
void smtp_session_hold_done(struct smtp_session *s);
/* The login check finished (enum login_result: auth/login.h).  login is the
 * canonical user name on success; blocked_until the end of a block for
 * LOGIN_BLOCKED. */
void smtp_session_auth_done(struct smtp_session *s, enum login_result r, const char *login,
	time_t blocked_until);
/* "220 Ready to start TLS" was queued: flush it, discard buffered input, start TLS,
 * then call smtp_session_tls_started(). */
bool smtp_session_wants_tls(const struct smtp_session *s);
/* TLS is up (RFC 3207 §4.2: the session starts again from scratch). */
void smtp_session_tls_started(struct smtp_session *s, const char *description);
/* The size declared with MAIL ... SIZE= in the current transaction (RFC 1870), or 0
 * when none was declared (the decision facts carry it to the quota check). */
uint64_t smtp_session_declared_size(const struct smtp_session *s);
/* A local submission (the local socket, sendmail): the user the kernel named, for
 * the Received: field ("from local user NAME (uid N)"). */
void smtp_session_local_user(struct smtp_session *s, const char *name, unsigned uid);
/* The user logged in, or NULL. */
const char *smtp_session_login(const struct smtp_session *s);
/* The client was idle too long: queue 421 4.4.2 and close. */
void smtp_session_timeout(struct smtp_session *s);
/* A deadline of the transport passed (net/deadline.c): 421 4.4.2 saying which,
 * with its limit (seconds, or octets per second for the data rate), then close.
 * An open transaction is abandoned (nothing was acknowledged). */
enum smtp_deadline { SMTP_DEADLINE_LINE, SMTP_DEADLINE_DATA_RATE, SMTP_DEADLINE_LOGIN, SMTP_DEADLINE_SESSION };
void smtp_session_deadline(struct smtp_session *s, enum smtp_deadline which, unsigned long long limit);
/* A command line (or AUTH answer) is partly received. */
bool smtp_session_line_pending(const struct smtp_session *s);
/* Message content is being received (DATA or a BDAT chunk). */
bool smtp_session_in_data(const struct smtp_session *s);
/* The server is shutting down: 421 4.3.2. */
void smtp_session_shutdown(struct smtp_session *s);
/* The connection dropped: abort any open spool file.  */
void smtp_session_disconnected(struct smtp_session *s);

/* Replies ready to send; the caller removes what it sent with buf_consume(). */
struct buf *smtp_session_output(struct smtp_session *s);
bool smtp_session_wants_close(const struct smtp_session *s);   /* after output is flushed */
/* Waiting for a decision, a commit or a hold.  (A login check is waited for too, but
 * is not reported here: the login code keeps the connection busy itself.) */
bool smtp_session_waiting(const struct smtp_session *s);

#endif
