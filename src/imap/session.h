/* session.h - one IMAP server conversation as a sans-I/O state machine (RFC 3501
 * §3 states: not authenticated, authenticated, selected, logout), with STARTTLS
 * (RFC 3501 §6.2.1, RFC 8314 implicit TLS), LOGIN and AUTHENTICATE through the
 * shared login exchange (auth/login.h; RFC 4959 SASL-IR), ID (RFC 2971), ENABLE
 * (RFC 5161), NAMESPACE (RFC 2342), IDLE (RFC 2177), the mailbox commands, and the
 * message commands of imap/exec.h.
 *
 * The network layer feeds received bytes with imap_session_feed() and sends what
 * appears in imap_session_output(); it removes what it sent with buf_consume().
 * Everything else comes through hooks:
 *
 *   login   auth_blocked / auth_verify, as POP3's (the same throttle, the same
 *           login service, app passwords); the answer: imap_session_auth_done().
 *   job     a command that touches the disk (every mailbox and message command,
 *           and the set-up after a login) is a job: the caller runs
 *           imap_session_job_run() on one of its IMAP worker threads, then
 *           imap_session_job_done() on the loop.  One job per session at a time;
 *           while it runs, the session takes no input and its output is not
 *           touched by the job (the job writes into its own buffer, handed over
 *           at job_done).  A job that stopped after IMAP_EXEC_OUTPUT_STEP octets
 *           (IMAP_EXEC_MORE) makes imap_session_streaming() true: the caller calls
 *           imap_session_pump() when its output runs low, which asks for the next
 *           step through the job hook.
 *   maildir_root  (worker thread) the Maildir of a logged-in user.
 *   login_alert   (worker thread, optional) words for an [ALERT] at login (the
 *           account's recent outgoing mail failing), or false.
 *
 * IDLE (RFC 2177): the session asks for a timer (imap_session_timer_ms() > 0):
 * the caller calls imap_session_tick() when it fires, which runs a job that checks
 * the selected folder (folder_changed_since_sync, then imap_exec_sync). */
#ifndef POSTERN_IMAP_SESSION_H
#define POSTERN_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/login.h"
#include "imap/exec.h"

struct buf;

struct imap_conn_info {
	uint64_t conn_id;
	const char *run_id;        /* references are RUN.CONN.N (util/id.h); NULL: CONN.N */
	const char *hostname;
	const char *client_addr;
	const char *listener;
	bool tls_offered;          /* STARTTLS may be offered */
	bool tls_active;           /* implicit TLS (port 993, RFC 8314) */
	const char *tls_description;
	bool allow_plaintext_auth; /* LOGIN/AUTHENTICATE before TLS (discouraged) */
};

struct imap_limits {
	unsigned max_bad_commands; /* then BYE and close */
	struct imap_settings settings;
};

struct imap_hooks {
	void *ctx;
	struct throttle_verdict (*auth_blocked)(void *ctx, const char *user);
	void (*auth_verify)(void *ctx, const char *mech, const char *user, const char *pass);
	void (*job)(void *ctx);
	bool (*maildir_root)(void *ctx, const char *user, char *path, size_t pathsz, char *err, size_t errsz);
	bool (*login_alert)(void *ctx, const char *user, char *text, size_t textsz);
	/* Optional (a node of a cluster): XCLIENT's node token (docs/architecture.md) -
	 * true when it vouches for exactly this client address and login; then the
	 * caller has taken addr as the connection's client address.  false: why says
	 * so in words.  NULL: XCLIENT is refused. */
	bool (*xclient)(void *ctx, const char *token, const char *addr, const char *login, char *why, size_t whysz);
};

struct imap_session;

struct imap_session *imap_session_new(const struct imap_conn_info *info, const struct imap_limits *limits,
	const struct imap_hooks *hooks);
void imap_session_free(struct imap_session **s);   /* closes the selected folder */

void imap_session_start(struct imap_session *s);   /* the greeting */
/* Consume input; less than len while waiting for a login or job, streaming, STARTTLS
 * pending, output backed up, or closing. */
size_t imap_session_feed(struct imap_session *s, const void *data, size_t len);

void imap_session_auth_done(struct imap_session *s, enum login_result r, const char *login, time_t blocked_until);

/* Worker thread: run the pending job (only the job touches the session meanwhile). */
void imap_session_job_run(struct imap_session *s);
/* Loop thread, after job_run returned. */
void imap_session_job_done(struct imap_session *s);

bool imap_session_streaming(const struct imap_session *s);
void imap_session_pump(struct imap_session *s);

/* IDLE: milliseconds until imap_session_tick() is wanted; 0: none. */
unsigned imap_session_timer_ms(const struct imap_session *s);
void imap_session_tick(struct imap_session *s);

bool imap_session_wants_tls(const struct imap_session *s);
void imap_session_tls_started(struct imap_session *s, const char *description);

/* COMPRESS (RFC 4978): its tagged OK is queued and no input is taken until the
 * caller has sent it uncompressed, switched the connection to deflate, and said
 * so (started false: it could not; the session ends). */
bool imap_session_wants_compress(const struct imap_session *s);
void imap_session_compress_started(struct imap_session *s, bool started);
/* The client's compressed stream cannot be inflated (why): BYE, then close. */
void imap_session_input_broken(struct imap_session *s, const char *why);

/* Instead of imap_session_auth_done(LOGIN_OK): the login was right but the mailbox
 * lives on another node, and the caller asked that node to take the session over
 * (XCLIENT).  OK: untagged is what the home node sent before its tagged answer
 * (whole lines with CRLF, or ""), text its tagged answer without the tag ("OK
 * [CAPABILITY ...] Logged in"): both passed on under the client's tag, and the
 * session then waits for ever (the transport carries the bytes from now on).
 * REFUSED: the same, passed on, the client may try again.  UNAVAILABLE: text says
 * why node could not be reached; NO [UNAVAILABLE] naming the node and what to do. */
enum imap_proxy_result { IMAP_PROXY_OK, IMAP_PROXY_REFUSED, IMAP_PROXY_UNAVAILABLE };
void imap_session_proxy_done(struct imap_session *s, enum imap_proxy_result r, const char *node, const char *untagged,
	const char *text);
bool imap_session_proxied(const struct imap_session *s);
const char *imap_session_login(const struct imap_session *s);   /* once authenticated, or NULL */
bool imap_session_waiting(const struct imap_session *s);        /* login or job running */
bool imap_session_line_pending(const struct imap_session *s);
bool imap_session_idling(const struct imap_session *s);
bool imap_session_in_literal(const struct imap_session *s);      /* receiving literal octets (APPEND) */          /* in IDLE: exempt from the line deadline */

void imap_session_timeout(struct imap_session *s);               /* autologout: BYE */
enum imap_deadline { IMAP_DEADLINE_LINE, IMAP_DEADLINE_LOGIN, IMAP_DEADLINE_SESSION };
void imap_session_deadline(struct imap_session *s, enum imap_deadline which, unsigned long long limit);
void imap_session_shutdown(struct imap_session *s);              /* BYE, server shutting down */
void imap_session_disconnected(struct imap_session *s);

/* Refusals of a whole connection, before any session exists: "* BYE ..." */
enum imap_refusal { IMAP_REFUSE_BUSY, IMAP_REFUSE_ADDRESS_BUSY, IMAP_REFUSE_RESERVED, IMAP_REFUSE_TLS_EXPECTED };
void imap_refusal_line(struct buf *out, enum imap_refusal why, const char *hostname, unsigned long long limit);

struct buf *imap_session_output(struct imap_session *s);
bool imap_session_wants_close(const struct imap_session *s);

#endif
