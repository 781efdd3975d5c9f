/* internal.h - shared by the session's files of the imap room only (session.c: life,
 * input, the command table and its gate, the any-state commands, IDLE and jobs;
 * cmd_auth.c: STARTTLS, LOGIN, AUTHENTICATE and the set-up after a login; mbox.c:
 * the mailbox commands; words.c: the catalogue of the session's refusals).  Other
 * rooms use imap/session.h. */
#ifndef POSTERN_IMAP_INTERNAL_H
#define POSTERN_IMAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/login.h"
#include "imap/exec.h"
#include "imap/parse.h"
#include "imap/reply.h"
#include "imap/session.h"
#include "util/buf.h"

#define OUTPUT_MAX (2u << 20)            /* hard bound on queued output (a job step is 256 KiB) */
#define OUTPUT_PAUSE (64u << 10)         /* stop reading commands while this much waits */
/* A job's output is handed to `out` IMAP_EXEC_OUTPUT_STEP at a time as the client
 * reads it (held).  Most jobs step themselves (FETCH, STORE, SEARCH) and write less than
 * a step; the untagged updates after another session's STORE 1:* of a 100,000-message
 * folder (UID, FLAGS, MODSEQ: ~80 octets each) are written at once, hence the bound. */
#define JOB_OUTPUT_MAX (64u << 20)
#define BUF_KEEP (16u << 10)             /* a buffer larger than this is freed when empty (idle sessions stay small) */
#define IMAP_QUOTE_SHOWN 40              /* client text quoted in a reply is cut here */
#define ROOT_MAX 1024

enum state {
	ST_NOAUTH,         /* not authenticated */
	ST_SASL,           /* inside an AUTHENTICATE exchange */
	ST_AUTH,           /* authenticated */
	ST_SELECTED,
	ST_IDLE,           /* inside IDLE (authenticated or selected underneath: s->x.sel) */
	ST_LOGOUT,
};

enum job_kind { JOB_NONE, JOB_LOGIN, JOB_COMMAND, JOB_IDLE_CHECK };

struct imap_session {
	struct imap_conn_info info;
	char *hostname, *client_addr, *listener;
	struct imap_limits limits;
	struct imap_hooks hooks;
	enum state state;
	struct buf out;
	struct imap_parser *parser;
	unsigned bad_commands, refs;
	bool close_after_output;
	/* TLS and login */
	bool secure, wants_tls;
	bool wants_compress, compressed;   /* COMPRESS=DEFLATE (RFC 4978): OK queued / on */
	char tls_desc[200];
	bool waiting_auth;                 /* a password check runs */
	bool proxied;                      /* the login went to the home node: the bytes are the transport's */
	char *login;
	char auth_tag[IMAP_TAG_MAX + 1];   /* the LOGIN / AUTHENTICATE being answered */
	struct login_exchange *lx;         /* only from LOGIN / AUTHENTICATE to its answer (1.2 KiB) */
	/* jobs (one at a time) */
	enum job_kind job;
	bool job_running;                  /* handed to the worker, job_done not yet called */
	bool job_more;                     /* the last step returned IMAP_EXEC_MORE: pump asks for more */
	struct imap_cmd *job_cmd;
	bool cmd_taken;                    /* the command being dispatched went to a job */
	struct buf job_out;
	struct buf held;                   /* job output not yet in out (held_off onwards) */
	size_t held_off;
	bool job_ok;                       /* JOB_LOGIN: set-up done */
	char job_alert[400];               /* JOB_LOGIN: [ALERT] words, or "" */
	/* the mailbox side */
	struct imap_exec x;
	char *root;                        /* the Maildir root, after login (malloc'd) */
	/* IDLE */
	char idle_tag[IMAP_TAG_MAX + 1];
	enum state idle_from;
	bool idle_done_seen;               /* DONE arrived while a check ran */
};

/* words.c: the session's own refusals, each with its RFC 5530 code and words;
 * every one carries a reference and is logged with it. */
enum wid {
	W_UNKNOWN, W_SYNTAX, W_WRONG_STATE_NOAUTH, W_WRONG_STATE_AUTH, W_WRONG_STATE_SELECTED, W_TOO_MANY_ERRORS,
	W_PRIVACY_STARTTLS, W_PRIVACY_TLS_PORT, W_AUTH_FAILED, W_AUTH_TEMPFAIL, W_THROTTLED_ACCOUNT,
	W_THROTTLED_ADDRESS, W_AUTH_UNAVAILABLE, W_AUTH_CANCELLED, W_AUTH_BAD_BASE64, W_AUTH_MALFORMED,
	W_AUTH_AUTHZID, W_AUTH_UNKNOWN_MECH, W_STARTTLS_UNAVAILABLE, W_ALREADY_TLS, W_ALREADY_LOGGED_IN,
	W_MAILDIR_TEMP, W_MAILDIR_PERM, W_ENABLE_SELECTED, W_COMPRESS_METHOD, W_COMPRESS_ACTIVE, W_IDLE_DONE, W_SETQUOTA, W_NOT_YET,
	W_LITERAL_TOO_BIG, W_XCLIENT_UNAVAILABLE, W_XCLIENT_REFUSED, W_PROXY_UNAVAILABLE, W_COUNT
};
void imap_refuse(struct imap_session *s, const char *tag, enum wid id, ...);
/* A parse error (imap/parse.h) answered BAD/NO with its words and a reference. */
void imap_refuse_parse(struct imap_session *s, const struct imap_parse_error *e);
/* "(ref R)" for a reply written elsewhere (a job's NO), logged as a refusal. */
const char *imap_next_ref(struct imap_session *s, char *out, size_t outsz);

/* session.c */
void imap_close(struct imap_session *s);            /* LOGOUT state: close after output */
void imap_bad_command(struct imap_session *s);      /* count it; too many: BYE and close */
void imap_start_job(struct imap_session *s, enum job_kind k, struct imap_cmd *c);   /* takes c */
void imap_capability_list(const struct imap_session *s, struct buf *out);          /* "IMAP4rev1 ..." */

/* cmd_auth.c */
void imap_cmd_starttls(struct imap_session *s, struct imap_cmd *c);
void imap_cmd_login(struct imap_session *s, struct imap_cmd *c);
void imap_cmd_authenticate(struct imap_session *s, struct imap_cmd *c);
void imap_cmd_xclient(struct imap_session *s, struct imap_cmd *c);
void imap_sasl_line(struct imap_session *s, const char *line, size_t n);
bool imap_login_offered(const struct imap_session *s);
void imap_login_job(struct imap_session *s);        /* worker: the set-up after a login */
void imap_login_finish(struct imap_session *s);     /* loop: the tagged OK (or NO) */
void imap_login_drop(struct imap_session *s);       /* the exchange cleared and freed */

/* mbox.c: the mailbox commands, run as jobs (worker thread); write into out */
void imap_mbox_run(struct imap_session *s, const struct imap_cmd *c, struct buf *out, enum imap_exec_status *st);
void imap_mbox_close_selected(struct imap_session *s);   /* the state follows at job_done */
void imap_mbox_login_setup(struct imap_session *s);      /* worker: Sent, Drafts, Trash, Junk, Archive */

#endif
