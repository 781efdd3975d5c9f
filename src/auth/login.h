/* login.h - the one login front end for every protocol (SMTP AUTH, POP3 USER/PASS
 * and AUTH; IMAP next).
 *
 * The exchange is sans-I/O: a protocol session hands over the mechanism and the
 * initial response (or each answer line, or a USER/PASS pair) and gets back a step
 * to render in its own words:
 *
 *   LOGIN_SEND_CHALLENGE  send login_challenge() ("334 ..." in SMTP, "+ ..." in
 *                         POP3) and feed the client's next line to login_answer();
 *   LOGIN_CHECK           the credentials are complete and the throttle lets this
 *                         client try: enter the waiting state, then call
 *                         login_submit(), which hands them to the verify hook
 *                         (which may answer at once) and wipes the password; the
 *                         answer comes back as an enum login_result;
 *   LOGIN_THROTTLED       the throttle refuses: x->verdict says which block and
 *                         until when (a THROTTLE_ACCOUNT block concerns x->user);
 *   LOGIN_CANCELLED ...   the exchange ended in a client error (RFC 4954 §4,
 *                         RFC 5034 §4): say so; nothing was checked.
 *
 * The hooks are the protocol's view of the rest of the server: the throttle's
 * question for this peer and the password check off the event loop.
 *
 * The check itself is the login service below: the directory lookup and the (slow,
 * by design) hash verification run on its own threads (auth/credentials.c: one hash
 * per attempt, a dummy hash for unknown users, the cache of recent successes);
 * every outcome is counted by the throttle and logged; the answer comes back on the
 * loop thread through a callback, with the delay the throttle asks for before a
 * failure is told (the caller holds it with a timer, never a sleeping thread).
 * Hashes never leave auth/ and directory/. */
#ifndef POSTERN_AUTH_LOGIN_H
#define POSTERN_AUTH_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/sasl.h"
#include "auth/throttle.h"

/* How a password check ended (the verify hook's answer). */
enum login_result { LOGIN_OK, LOGIN_FAILED, LOGIN_TEMPFAIL, LOGIN_BLOCKED };

struct login_hooks {
	void *ctx;
	/* May this peer log in as user now?  user NULL: not known yet.  NULL hook:
	 * never blocked. */
	struct throttle_verdict (*blocked)(void *ctx, const char *user);
	/* Check the credentials (off the loop); mech is "USER" for POP3 USER/PASS,
	 * else the SASL mechanism's name. */
	void (*verify)(void *ctx, const char *mech, const char *user, const char *pass);
};

enum login_step {
	LOGIN_SEND_CHALLENGE,
	LOGIN_CHECK,
	LOGIN_THROTTLED,
	LOGIN_CANCELLED,       /* the client sent "*" */
	LOGIN_BAD_BASE64,
	LOGIN_MALFORMED,       /* decoded, but not what the mechanism expects */
	LOGIN_AUTHZID,         /* PLAIN asked to act as someone else: not supported */
};

#define LOGIN_MECH_MAX 8

struct login_exchange {
	struct sasl_exchange sasl;
	struct throttle_verdict verdict;      /* with LOGIN_THROTTLED */
	char mech[LOGIN_MECH_MAX];            /* "PLAIN", "LOGIN", "USER" */
	char user[SASL_USER_MAX + 1];         /* kept after login_submit(), for the answer's words */
	bool ready;                           /* credentials complete, not yet submitted */
};

/* May a password be sent on this connection now?  RFC 4954 §4 and RFC 2595 §6:
 * not in plaintext unless the listener allows it (discouraged); and where it may
 * not, logins are not advertised either, or a client would send its password in
 * the clear before it learnt the refusal.  The two refusals differ in their hint:
 * STARTTLS first, or another port. */
struct login_listener {
	bool secure;                          /* TLS is up on this connection */
	bool tls_offered;                     /* STARTTLS / STLS may still be used */
	bool allow_plaintext;                 /* the listener's allow_plaintext_auth */
};
enum login_transport { LOGIN_TRANSPORT_OK, LOGIN_NEEDS_STARTTLS, LOGIN_NEEDS_TLS_PORT };
enum login_transport login_transport_check(const struct login_listener *l);

/* The throttle's verdict for this peer before a user name is known (an address
 * blocked for spraying is refused before the exchange starts). */
struct throttle_verdict login_precheck(const struct login_hooks *h);

/* AUTH <mech> [initial-response]; has_initial: one was given ("=" is an empty one). */
enum login_step login_start(struct login_exchange *x, const struct login_hooks *h, enum sasl_mech m,
	bool has_initial, const char *initial, size_t n);
/* The client's answer to the last challenge. */
enum login_step login_answer(struct login_exchange *x, const struct login_hooks *h, const char *line, size_t n);
/* A user name and password given as such (POP3 USER/PASS, IMAP LOGIN); mech names
 * the command for logs.  The lengths are the caller's to bound (SASL_*_MAX). */
enum login_step login_password(struct login_exchange *x, const struct login_hooks *h, const char *mech,
	const char *user, const char *pass, size_t passlen);
/* The base64 challenge after LOGIN_SEND_CHALLENGE ("" for PLAIN's empty one). */
const char *login_challenge(const struct login_exchange *x);
/* After LOGIN_CHECK, once the session waits: hand the credentials to h->verify. */
void login_submit(struct login_exchange *x, const struct login_hooks *h);
/* Forget everything (the user name too). */
void login_clear(struct login_exchange *x);
/* When a block ends, as the refusals of every protocol say it: "14:05 UTC". */
void login_block_end(time_t until, char *out, size_t outsz);

/* --- the login service: password checks off the event loop ------------------- */

struct directory;

/* What the login service tells the other nodes of (login_service_config.recorded). */
enum login_record { LOGIN_RECORD_FAILED, LOGIN_RECORD_OK, LOGIN_RECORD_UNBLOCK };

struct login_service_config {
	struct directory *dir;              /* for the login threads only (not owned) */
	struct throttle_limits throttle;
	unsigned threads;
	unsigned cache_ttl;                 /* seconds (auth/password.h) */
	bool legacy_app_passwords;          /* auth/credentials.h */
	/* Called from a login thread when an answer is ready (thread-safe, e.g.
	 * event_active): the loop thread then calls login_service_run_answers(). */
	void (*notify)(void *arg);
	void *notify_arg;
	/* Each outcome the throttle counted, and each unblock (addr "", user the key), for
	 * the other nodes (serve/state_feed.h).  Any thread; must not wait.  NULL: none. */
	void (*recorded)(void *arg, enum login_record what, const char *addr, const char *user, time_t at);
	void *recorded_arg;
};

/* Who asks, for the throttle and the log line. */
struct login_peer {
	uint64_t conn_id;
	const char *addr;                   /* the client's address */
	const char *proto;                  /* "smtp", "pop3", "http" */
	bool tls;
	bool primary_only;                  /* the account's own password only, never an app password (the web page) */
};

struct login_answer {
	enum login_result result;           /* LOGIN_OK, LOGIN_FAILED or LOGIN_TEMPFAIL */
	const char *login;                  /* the canonical user on success ("" if unknown) */
	unsigned delay_ms;                  /* hold a failure's answer this long before telling it */
};

typedef void login_answer_fn(void *arg, const struct login_answer *a);

struct login_service;

/* Starts the threads and makes the dummy hash; NULL when that fails. */
struct login_service *login_service_new(const struct login_service_config *cfg);
/* Waits for running checks and answers them, stops the threads.  Sets *ls to NULL. */
void login_service_free(struct login_service **ls);
/* Loop thread, after notify: run the callbacks of finished checks. */
void login_service_run_answers(struct login_service *ls);

/* The throttle's verdict for this peer and user (NULL: not known yet). */
struct throttle_verdict login_service_blocked(struct login_service *ls, const char *addr, const char *user);
/* For the administrator (any thread): the blocks running now, newest first, and
 * lifting those of an address or an account (auth/throttle.h); both are logged by
 * the caller, who knows who asked. */
size_t login_service_blocks(struct login_service *ls, struct throttle_block_info *out, size_t max);
size_t login_service_unblock(struct login_service *ls, const char *key);
/* Are outcomes and unblocks shared with other nodes (a recorded hook is set)? */
bool login_service_shared(const struct login_service *ls);
/* The throttle itself, for applying what other nodes counted (serve/state_feed.c). */
struct throttle *login_service_throttle(struct login_service *ls);
/* Check the credentials on a login thread; answered(arg, a) runs later on the loop
 * thread (never inside this call).  False: out of memory, nothing will be answered. */
bool login_service_check(struct login_service *ls, const struct login_peer *peer, const char *mech,
	const char *user, const char *pass, login_answer_fn *answered, void *arg);

#endif
