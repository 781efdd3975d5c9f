/* session_int.h - what the files of the SMTP session share (session.c, cmd_*.c,
 * explain503.c), and nothing outside src/smtp/ may include: the session and
 * transaction structures, the reply and refusal writers, and the command handlers
 * that the table in session.c points at.  The room's public header is session.h. */
#ifndef POSTERN_SMTP_SESSION_INT_H
#define POSTERN_SMTP_SESSION_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/login.h"
#include "policy/policy.h"
#include "util/id.h"
#include "smtp/address.h"
#include "smtp/data.h"
#include "smtp/reply.h"
#include "smtp/session.h"
#include "util/buf.h"
#include "util/linebuf.h"

struct smtp_command;

#define OUTPUT_MAX (1u << 20)          /* hard bound on queued replies */
#define OUTPUT_PAUSE (64u << 10)       /* stop reading commands while this much waits */
#define FEED_CHUNK (16u << 10)         /* data bytes decoded per step */
#define REFUSALS_LISTED 8              /* refusals named in the 503 at DATA */
#define ORPHANS_NAMED 4                /* recipients named after a refused MAIL */
#define ORPHAN_ADDR_MAX 72             /* an escaped address, cut at 64 octets + "..." */
#define HELO_MAX 255

enum state { ST_CMD, ST_DATA, ST_BDAT, ST_BDAT_DISCARD, ST_AUTH, ST_WAIT, ST_TLS_PENDING, ST_CLOSED };

/* What the session waits for in ST_WAIT: one state, one resume call each. */
enum smtp_wait {
	WAIT_DECISION,   /* hooks->decide: smtp_session_decided() */
	WAIT_COMMIT,     /* hooks->spool_commit: smtp_session_commit_done() / _refused() */
	WAIT_LOGIN,      /* hooks->auth_verify: smtp_session_auth_done() */
	WAIT_HOLD,       /* hooks->hold: smtp_session_hold_done() */
};

#define REFUSAL_REASON_MAX 256         /* a remembered refusal's reason, for the 503 list */

struct refusal {
	char addr[SMTP_ADDR_MAX + 1];
	char reason[REFUSAL_REASON_MAX];
	char ref[32];
};

/* What the RCPT decision found about an accepted recipient, for the end of data. */
struct rcpt_found {
	bool local;    /* in one of our domains */
	bool quota;    /* its mailbox has a quota */
};

struct smtp_tx {
	struct smtp_path sender;
	struct smtp_mail_params params;
	struct smtp_path *rcpts;
	struct smtp_rcpt_params *rcpt_params;
	struct rcpt_found *rcpt_found;     /* parallel to rcpts: what the RCPT decision found */
	size_t n_rcpts;
	size_t cap_rcpts;
	unsigned rcpt_commands;            /* RCPT commands seen, accepted or not */
	struct refusal refused[REFUSALS_LISTED];
	unsigned n_refused;                /* all refusals, listed or not */
	unsigned cause_counts[CAUSE_COUNT];
	struct policy_txn txn;             /* the decisions' findings (policy.h), kept from MAIL */
	bool spool_open;
	struct msg_field_scan *from_scan;  /* the From: fields, for the check (logged-in users) */
	struct msg_field_drop *ar_drop;    /* removes Authentication-Results claiming our id */
	char qid[QUEUE_ID_LEN + 1];
	uint64_t size;                     /* message octets accepted so far */
	bool too_big;
	bool spool_failed;
	struct data_decoder dec;
	/* BDAT (RFC 3030) */
	bool used_bdat;
	bool bdat_failed;                  /* an earlier chunk failed: refuse the rest */
	uint64_t bdat_remaining;
	uint64_t bdat_chunk;
	bool bdat_last;
};

/* Why a BDAT chunk is read and dropped (ST_BDAT_DISCARD). */
enum bdat_refusal { BDAT_NEED_MAIL, BDAT_NO_RCPT, BDAT_AFTER_FAILURE };

struct smtp_session {
	struct smtp_conn_info info;        /* strings below are owned copies */
	char *hostname, *client_addr, *client_name, *listener, *authserv_id;
	struct smtp_limits limits;
	struct smtp_hooks hooks;
	enum state state;
	enum smtp_wait wait;               /* in ST_WAIT */
	enum policy_point deciding;        /* the decision asked for last */
	struct smtp_path rcpt_asked;       /* RCPT being decided, and its DSN parameters */
	struct smtp_rcpt_params rcpt_asked_params;
	struct rcpt_found rcpt_asked_found; /* what its decision found (smtp_session_findings) */
	struct buf out;
	struct linebuf line;
	bool helo_seen;
	bool node_peer;                    /* LMTP: XNODE proved the peer a node of the cluster */
	bool esmtp;
	char helo[HELO_MAX + 1];
	unsigned bad_commands;
	unsigned refused_rcpts;            /* unknown / not ours, whole session (harvesting) */
	struct buf held;                   /* a reply held back (WAIT_HOLD) */
	unsigned refs;
	bool close_after_output;
	struct smtp_tx *tx;
	struct buf scratch;                /* decoded DATA bytes on their way to the spool */
	/* TLS and login */
	bool secure;
	bool wants_tls;
	char tls_desc[200];
	char *login;                       /* canonical user name once logged in */
	char auth_mech[32];                /* its SASL mechanism ("PLAIN"), for the content filters */
	/* AUTH (auth/login.h): made at AUTH, wiped and freed when the exchange ends
	 * (lx_end), so an idle connection does not carry its 1.2 KiB. */
	struct login_exchange *lx;
	char *local_user;                  /* a local submission: who (smtp_session_local_user); NULL: none */
	unsigned local_uid;
	/* Refusals outside a transaction, so a later 503 can name them. */
	unsigned causes[CAUSE_COUNT];
	bool have_mail_refusal;
	struct refusal mail_refusal;
	enum refusal_cause mail_cause;
	/* Recipients given after that refusal (no transaction to take them), so the 503
	 * at DATA can say whose message was not sent: the first few, escaped, and a count. */
	char orphans[ORPHANS_NAMED][ORPHAN_ADDR_MAX];
	unsigned n_orphans;                /* all of them, named or not */
	/* RFC 2920 §3.1: the command just dispatched ends a pipelined group (its name). */
	const char *group_ender;
	const char *cmd_name;              /* the command being answered, for the log */
	const char *refusing_rcpt;         /* the recipient being refused (hooks->refused), or NULL */
	bool pipelining_noted;             /* a client that did not wait was logged once */
	bool wrong_port_seen;              /* the port-25 trap refused something (wrong_port.c) */
	/* A refused BDAT chunk (ST_BDAT_DISCARD): its octets are read and dropped, since
	 * they follow the command whatever the reply (RFC 3030 §2), and the one reply
	 * comes once they are all read.  No transaction is made up for it. */
	uint64_t discard_remaining;
	enum bdat_refusal discard_why;
};

/* cmd_auth.c: end the login exchange, if one runs (wiped, freed). */
void lx_end(struct smtp_session *s);

/* --- respond.c: replies, refusals, errors, the end of the session ----------- */

/* The next refusal reference, RUN.CONN.N (util/id.h). */
void next_ref(struct smtp_session *s, char *out, size_t outsz);
/* Free the transaction (aborting an open spool file); no-op without one. */
void tx_free(struct smtp_session *s);
/* Drop the transaction and close once the output is flushed. */
void session_close(struct smtp_session *s);
/* A catalogue reply that is not a refusal. */
void say(struct smtp_session *s, enum reply_id id, ...);
/* Count a protocol error; past the limit the session ends. */
void bad_command(struct smtp_session *s);

/* Refusals, all written by refusal_write(): with a reference on the last line and an
 * event=refused log line.  refuse: a catalogue entry; refuse_counted: the same, and
 * the cause is counted for the 503 at DATA (a refused login explains what follows);
 * refuse_verdict: "what: reason" and hint from a verdict (policy's, or reply_verdict's),
 * the reference into ref_out. */
#define REFUSAL_TEXT_MAX 8192
void refuse(struct smtp_session *s, enum reply_id id, ...);
void refuse_counted(struct smtp_session *s, enum refusal_cause cause, enum reply_id id, ...);
/* refuse() with a va_list; cause (a name for the log) may be NULL. */
void refuse_v(struct smtp_session *s, const char *cause, enum reply_id id, va_list ap);
void refuse_verdict(struct smtp_session *s, const char *what, const struct verdict *v, char *ref_out, size_t ref_outsz);
/* refuse_verdict with the cause id that labels the refusals metric (NULL: the verdict's cause's). */
void refuse_verdict_id(struct smtp_session *s, const char *what, const struct verdict *v, const char *cause_id,
	char *ref_out, size_t ref_outsz);
void refusal_write(struct smtp_session *s, const char *cause, int code, const char *enh, const char *text,
	char *ref_out, size_t ref_outsz);
/* refusal_write with the cause id (data/explain.ini's list) that labels the refusals
 * metric; refusal_write counts it as "unknown". */
void refusal_write_id(struct smtp_session *s, const char *cause, const char *cause_id, int code, const char *enh,
	const char *text, char *ref_out, size_t ref_outsz);
/* Client text quoted in a reply (util/text.h's quote_for_reply) is cut after this many octets. */
#define SMTP_QUOTE_SHOWN 64

/* --- session.c: the one waiting state, and decisions ------------------------- */

/* Enter the waiting state for `what`; is the session in it for `what`? */
void wait_for(struct smtp_session *s, enum smtp_wait what);
bool waiting_for(const struct smtp_session *s, enum smtp_wait what);
/* A decision at `point`, with the facts every decision has (connection, client,
 * login) filled in; NULL on no memory (session_decide answers that). */
struct policy_facts *decision_facts(const struct smtp_session *s, enum policy_point point);
/* Ask hooks->decide; the verdict reaches the point's resume function (below) now or
 * after the wait.  Takes f; with f NULL (no memory) the decision at `point` gets a
 * temporary refusal. */
void session_decide(struct smtp_session *s, enum policy_point point, struct policy_facts *f);
void mail_decided(struct smtp_session *s, const struct verdict *v);        /* cmd_mail.c */
void rcpt_decided(struct smtp_session *s, const struct verdict *v);        /* cmd_rcpt.c */
void from_header_decided(struct smtp_session *s, const struct verdict *v); /* cmd_data.c */
void end_of_data_decided(struct smtp_session *s, const struct verdict *v); /* cmd_data.c */

/* --- explain503.c: the refusals remembered, and the 503 that names them ----- */

char *bare_path(char *arg);
void remember_refusal(struct smtp_tx *tx, const char *addr, const struct verdict *v, const char *ref);
void remember_mail_refusal(struct smtp_session *s, const char *what, const struct verdict *v);
void forget_mail_refusal(struct smtp_session *s);
void reply_no_recipients(struct smtp_session *s, const char *verb);
/* The gate's answer to RCPT or DATA outside a transaction. */
void explain_no_transaction(struct smtp_session *s, const struct smtp_command *c);

/* --- cmd_data.c: message content ------------------------------------------ */

void reply_spool_failure(struct smtp_session *s, enum reply_id id);
size_t feed_data(struct smtp_session *s, const char *p, size_t len);
size_t feed_bdat(struct smtp_session *s, const char *p, size_t len);
void bdat_chunk_done(struct smtp_session *s);
size_t feed_bdat_discard(struct smtp_session *s, const char *p, size_t len);
void bdat_discard_done(struct smtp_session *s);

/* --- cmd_auth.c: logging in ----------------------------------------------- */

/* A line of the SASL exchange. */
void auth_line(struct smtp_session *s, const char *line, size_t len);
/* May a password be sent here now (auth/login.h)?  The gate's F_NEED_TLS, and EHLO. */
enum login_transport smtp_login_transport(const struct smtp_session *s);

/* --- wrong_port.c: the port-25 trap -------------------------------------- */

/* Is this listener one where mail programs do not belong (role mx)? */
bool wrong_port_applies(const struct smtp_session *s);
/* Is AUTH offered here: a login front end, on a submission listener only. */
bool smtp_auth_offered(const struct smtp_session *s);
/* AUTH on an mx listener: 502 5.5.1 naming the submission ports, event=wrong_port. */
void wrong_port_refuse_auth(struct smtp_session *s);
/* A relay refusal on an mx listener: its hint names the submission ports; then,
 * once it was written with reference ref, the event=wrong_port line. */
void wrong_port_relay_verdict(const struct smtp_session *s, struct verdict *v);
void wrong_port_relay_refused(struct smtp_session *s, const char *ref);
/* The 503 at DATA after either: a line naming the ports (nothing otherwise). */
void wrong_port_503_line(const struct smtp_session *s, struct buf *text);

/* --- the handlers of the command table ------------------------------------ */

typedef void smtp_cmd_handler(struct smtp_session *s, const struct smtp_command *c);
smtp_cmd_handler cmd_helo, cmd_ehlo, cmd_rset, cmd_noop, cmd_quit, cmd_help, cmd_vrfy, cmd_expn;  /* cmd_hello.c */
smtp_cmd_handler cmd_mail;                                                                     /* cmd_mail.c */
smtp_cmd_handler cmd_rcpt;                                                                     /* cmd_rcpt.c */
smtp_cmd_handler cmd_data, cmd_bdat;                                                           /* cmd_data.c */
smtp_cmd_handler cmd_starttls, cmd_auth;                                                       /* cmd_auth.c */
smtp_cmd_handler cmd_lhlo, cmd_xnode;                                            /* cmd_hello.c: LMTP */

#endif
