/* policy.h - who may send what to whom.  Two layers:
 *
 *  - pure verdicts: the caller gathers the facts (is the domain local, does the user
 *    exist, is the client logged in or trusted) and gets back a verdict that the
 *    protocol renders (policy_check_*);
 *  - the decision pipeline: an ordered list of stages, each a function from facts to a
 *    verdict, run by one runner where the first verdict that is not OK wins.  Stages
 *    that do I/O (directory, quota files, later DNS and milters) run off the event
 *    loop through an executor, each under a timeout that turns into a temporary
 *    refusal naming the stage (DESIGN invariant 5). */
#ifndef POSTERN_POLICY_POLICY_H
#define POSTERN_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/spf.h"

enum verdict_kind { VERDICT_OK, VERDICT_TEMP, VERDICT_PERM };

/* Why a recipient (or sender) was refused.  The session keeps these so that the 503
 * at DATA can name every refusal and pick the single most useful fix. */
enum refusal_cause {
	CAUSE_NONE = 0,
	CAUSE_RELAY_NOT_LOGGED_IN,   /* another domain, client neither logged in nor trusted */
	CAUSE_UNKNOWN_USER,          /* local domain, no such mailbox */
	CAUSE_LOOKUP_FAILED,         /* directory unavailable: temporary */
	CAUSE_BAD_ADDRESS,           /* syntax */
	CAUSE_NON_ASCII_ADDRESS,     /* UTF-8 address without SMTPUTF8 */
	CAUSE_TOO_MANY_RECIPIENTS,
	CAUSE_AUTH_REQUIRED,         /* submission port, not logged in (MAIL) */
	CAUSE_SENDER_NOT_OWNED,      /* logged in, MAIL FROM / From: is someone else's */
	CAUSE_TLS_REQUIRED,          /* AUTH tried before STARTTLS */
	CAUSE_AUTH_FAILED,           /* wrong user name or password */
	CAUSE_THROTTLED,             /* too many failed logins from this address */
	CAUSE_MAILBOX_FULL,          /* the recipient's quota is used up */
	CAUSE_POP_EXPIRED,           /* POP-before-SMTP window passed */
	CAUSE_STAGE_TIMEOUT,         /* a decision stage did not answer in time: temporary */
	CAUSE_SPF_FAIL,              /* the sender's domain's SPF record refuses the client (-all) */
	CAUSE_SENDER_UNAUTHENTICATED, /* the From: domain's DMARC policy rejects the message */
	CAUSE_AUTH_CHECK_TEMPFAIL,   /* DKIM/DMARC could not finish (the DNS): temporary */
	CAUSE_EDIT_FAILED,           /* a content filter's changes could not be stored (the disk): temporary */
	CAUSE_CONTENT_FILTER,        /* a content filter (milter) refused: its own words */
	CAUSE_FILTER_UNAVAILABLE,    /* a content filter did not answer: temporary, the server's fault */
	CAUSE_SENDING_LIMIT,         /* the account's or domain's outbound limit is reached: temporary */
	CAUSE_COUNT
};

/* Long enough for the end-of-data quota refusal naming several mailboxes: a reply
 * line holds 500 octets of text (RFC 5321 §4.5.3.1.5), the reason goes on it whole. */
#define VERDICT_REASON_MAX 512
#define VERDICT_HINT_MAX 384

struct verdict {
	enum verdict_kind kind;
	int code;                         /* 250, 4xx, 5xx */
	const char *enh;                  /* static "5.1.1" etc */
	enum refusal_cause cause;
	char reason[VERDICT_REASON_MAX];  /* what happened, without the address */
	char hint[VERDICT_HINT_MAX];      /* what to change; "" if nothing useful */
};

enum user_lookup { USER_FOUND, USER_MISSING, USER_LOOKUP_FAILED };

struct policy_client {
	bool submission_port;   /* listener role is submission */
	bool authenticated;
	bool trusted_network;
	unsigned long long pop_window;   /* POP-before-SMTP window in seconds; 0: off */
	long long pop_login_age;         /* seconds since this address logged in to POP3; -1: never */
	bool node_peer;                  /* LMTP from another node of the cluster (token checked) */
};

struct rcpt_facts {
	const char *local;      /* unquoted local part */
	const char *domain;     /* lower case */
	bool domain_local;
	bool is_postmaster;     /* postmaster@<local domain> or bare <postmaster> */
	enum user_lookup user;  /* meaningful only when domain_local */
	bool mailbox_full;      /* no room: the quota is used up, or the declared size does not fit */
	bool full_is_permanent; /* 552 5.2.2 rather than 452 4.2.2 */
	unsigned long long quota_used, quota_limit;   /* bytes, for the words */
	unsigned long long message_size;   /* MAIL ... SIZE= (RFC 1870), 0: none declared */
	/* LMTP from another node ([cluster]): a user is taken only where its home is. */
	bool via_node;
	const char *home_node;  /* the user's home node ("" none); NULL: not looked up */
	const char *this_node;  /* [cluster] node */
};

/* A recipient: the three rules below in order, the first refusal wins. */
void policy_check_rcpt(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v);
/* Another domain, the client neither logged in nor trusted, but it checked mail
 * over POP3 before the window (pop_window) ran out: 554 5.7.1 saying when. */
void policy_check_pop_before_smtp(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v);
/* Never an open relay (DESIGN invariant 2): another domain only for a client logged
 * in, trusted, or within the POP-before-SMTP window; otherwise 554 5.7.1. */
void policy_check_relay(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v);
/* One of our domains: the mailbox must exist (550 5.1.1; 451 4.3.0 when the
 * directory could not say) and have room (452 4.2.2 / 552 5.2.2).  Postmaster is
 * always accepted (RFC 5321 §4.5.1). */
void policy_check_mailbox(const struct rcpt_facts *f, struct verdict *v);

/* The end of DATA/BDAT: does the message, now that its real size is known, fit at
 * least one of its recipients?  One entry per local recipient whose quota was read. */
struct mailbox_room {
	const char *address;
	bool fits;
	unsigned long long used, limit;   /* bytes; limit 0: only a message count limit */
};

struct message_quota_facts {
	unsigned long long size;          /* the message as queued */
	const struct mailbox_room *mailboxes;
	size_t n_mailboxes;
	size_t n_other;                   /* recipients not checked: other domains, postmaster, unreadable quota */
	bool full_is_permanent;
};

enum message_quota {
	MQ_ACCEPT,          /* some recipient can take it (those that cannot get a prompt bounce) */
	MQ_FULL,            /* 452 4.2.2 */
	MQ_FULL_PERMANENT,  /* 552 5.2.2: full_is_permanent */
	MQ_LARGER,          /* 552 5.2.2: larger than every recipient's whole quota */
};

/* Refused only when no recipient can take the message: every recipient is local and
 * none has room.  detail says whose mailbox has how much room ("the mailbox of a@b has
 * 40.0 KB left (60.0 KB of 100.0 KB used)", several named when there are several). */
enum message_quota policy_check_message_quota(const struct message_quota_facts *f, char *detail, size_t detailsz);
/* The end-of-data verdict for that answer (RFC 3463 X.2.2, RFC 5321 §4.2.2): 452 4.2.2
 * or 552 5.2.2, reason "it is <size>, and <detail>" (the session puts "Message not
 * accepted: " before it); OK for MQ_ACCEPT. */
void policy_message_quota_verdict(enum message_quota mq, unsigned long long size, const char *detail,
	struct verdict *v);
/* MAIL FROM on a submission port without login: 530 5.7.0 (RFC 6409 §4.3). */
void policy_check_mail(const struct policy_client *c, struct verdict *v);
/* A logged-in user sending as `address`; owned tells whether the directory says the
 * user owns it.  `where` is "MAIL FROM" or "From: header". */
void policy_check_sender(const char *login, const char *address, bool owned, const char *where, struct verdict *v);

/* The one fix to print at the end of a 503 at DATA, given the causes seen (counts
 * indexed by enum refusal_cause).  Returns a static sentence. */
const char *policy_best_fix(const unsigned counts[CAUSE_COUNT]);
/* Does a permanent refusal for this cause say "that address is not ours to take"
 * (no such user, relaying denied)?  Many of them on one connection look like directory
 * harvesting: the session slows its answers, then ends the session. */
bool policy_cause_is_guess(enum refusal_cause c);
/* Short words for a cause, for logs and the 503 list ("not logged in"). */
const char *policy_cause_name(enum refusal_cause c);
/* The cause id (data/explain.ini's list, as `postern explain` names it); "unknown" when none. */
const char *policy_cause_id(enum refusal_cause c);

void verdict_set(struct verdict *v, enum verdict_kind k, int code, const char *enh,
	enum refusal_cause cause, const char *reason, const char *hint);


/* --- the decision pipeline (pipeline.c) --------------------------------------- */

/* Where in a transaction a decision is asked for. */
enum policy_point {
	POLICY_AT_MAIL,          /* MAIL FROM: may this client send as this sender? */
	POLICY_AT_RCPT,          /* RCPT TO: is this recipient accepted? */
	POLICY_AT_FROM_HEADER,   /* end of headers: may the login send with this From:? */
	POLICY_AT_END_OF_DATA,   /* the whole message is spooled: quota, content checks,
	                          * signing; stages may add header fields */
	POLICY_POINT_COUNT
};
#define POLICY_AT(p) (1u << (p))

#define POLICY_ADDR_MAX 400   /* formatted address, as in replies */
#define POLICY_LOCAL_MAX 129
#define POLICY_DOMAIN_MAX 256
#define POLICY_LOGIN_MAX 256
#define POLICY_PATH_MAX 1400

/* Per-transaction findings: what a decision learnt that a later decision of the same
 * transaction needs (SPF at MAIL, judged with DKIM and DMARC at the end of data).  The
 * SMTP session owns one per transaction: zero at MAIL, gone at RSET and at the end of
 * the transaction.  Every decision of the transaction gets a copy in its facts
 * (f->txn); what a MAIL stage writes there is kept by the session (the SMTP adapter
 * hands it back with smtp_session_findings) for every later decision.  Stages of
 * other points may read f->txn; what they write is dropped.  Add a finding as a
 * plain-data member (no pointers: it is copied), with the room whose stage fills it. */
struct policy_txn_limits {
	bool checked;                      /* MAIL's limits stage ran: the rest is set */
	char domain[POLICY_DOMAIN_MAX];    /* the sending domain counted ("": none) */
	unsigned long long messages_per_hour, recipients_per_day;   /* the account's, its override applied; 0: off */
	bool messages_override, recipients_override;   /* set by postern user limit (for the words) */
};

struct policy_txn {
	struct spf_outcome spf;   /* MAIL, stage "spf": RFC 7208 result, words (mailauth/spf.h) */
	bool spf_done;            /* the spf stage ran */
	unsigned long long milter_txn;   /* MAIL, stage "milter": the filters' transaction (0: none) */
	struct policy_txn_limits limits;   /* MAIL, stage "limits": what RCPT checks (limits_stage.c) */
};

/* One recipient of the message, at END_OF_DATA. */
struct policy_rcpt {
	char address[POLICY_ADDR_MAX];   /* formatted, as in replies ("postmaster" for <postmaster>) */
	bool domain_local;               /* one of our domains (the RCPT decision's finding) */
	bool quota;                      /* its mailbox had a quota at RCPT (the RCPT finding) */
};

/* Header fields the END_OF_DATA stages add, in total (folded lines included). */
#define POLICY_ADDED_MAX (32u * 1024)

struct policy_edits;     /* the changes asked for at the end of data (edits.c) */
struct policy_rewrite;   /* what the spooled message becomes (edits.c, below) */

/* END_OF_DATA: an envelope address as MAIL FROM or RCPT TO would give it (the SMTP
 * parser's reading of it), with the ESMTP parameters the queue keeps. */
struct policy_path {
	char address[POLICY_ADDR_MAX];   /* formatted, as in replies; "" for <> */
	char local[POLICY_LOCAL_MAX];    /* unquoted */
	char domain[POLICY_DOMAIN_MAX];  /* lower case */
	bool null;                       /* <> */
	/* MAIL parameters (RFC 6152, RFC 6531, RFC 3461 §4.3-4.4); unset: unchanged */
	bool body_set, eightbit, smtputf8;
	int ret;                         /* 0: not given, 1: FULL, 2: HDRS */
	char envid[101];
	/* RCPT parameters (RFC 3461 §4.1-4.2) */
	unsigned char notify;            /* 0: not given */
	char orcpt[POLICY_ADDR_MAX + 16];   /* "rfc822;addr", or "" */
};

/* END_OF_DATA: how the asker lets stages change the spooled message (set by serve/
 * when it builds the facts; a zeroed one: no change can be made, policy_edits_apply
 * refuses with 451 4.3.0).  Called on the stage's thread; the session waits meanwhile,
 * so nothing else writes the spool file. */
struct policy_spool {
	/* Replace the spooled message and its envelope (policy_edits_apply builds rw):
	 * true with where the message now is in the same file (*offset, *size); false,
	 * the old file untouched, with what failed in err. */
	bool (*rewrite)(void *ctx, const struct policy_rewrite *rw, unsigned long long *offset,
		unsigned long long *size, char *err, size_t errsz);
	/* Read address ("a@b", "<a@b>", "<>") and its ESMTP arguments (NULL or "" for none)
	 * as MAIL FROM / RCPT TO would, with the same parser: false with the parser's
	 * words in err. */
	bool (*parse_sender)(void *ctx, const char *address, const char *args, struct policy_path *out,
		char *err, size_t errsz);
	bool (*parse_rcpt)(void *ctx, const char *address, const char *args, struct policy_path *out,
		char *err, size_t errsz);
	/* policy_facts_free lets go of ctx (it may outlive the session: a stage that timed
	 * out finishes on its thread). */
	void (*release)(void *ctx);
	void *ctx;
	unsigned long long body_max;     /* a replacement body's bound ([limits] message_size) */
};

/* END_OF_DATA: what becomes of a message that passes (policy_facts_hold/discard). */
enum policy_disposition { POLICY_QUEUE = 0, POLICY_HOLD, POLICY_DISCARD };
#define POLICY_REASON_MAX 256

/* Everything a decision is made on.  The asker fills in the request; stages may add
 * findings for the stages after them (a lookup stage records what it found, a later
 * pure stage judges it).  Owned by the run: self-contained, so that a stage on a worker
 * thread never reads the asker's memory. */
struct policy_facts {
	enum policy_point point;
	unsigned long long conn_id;                /* for logs */
	struct policy_client client;
	char client_addr[64];
	char login[POLICY_LOGIN_MAX];              /* "": not logged in */
	/* MAIL: the sender ("" for <>); RCPT: the recipient. */
	char address[POLICY_ADDR_MAX];
	char local[POLICY_LOCAL_MAX];              /* unquoted local part */
	char domain[POLICY_DOMAIN_MAX];            /* lower case; "" for <postmaster> */
	bool null_sender;                          /* MAIL FROM:<> */
	bool bare_postmaster;                      /* RCPT TO:<postmaster> (RFC 5321 §4.1.1.3) */
	bool domain_literal;                       /* [192.0.2.1] */
	char helo[POLICY_DOMAIN_MAX];              /* the HELO/EHLO name; "" before one */
	unsigned long long declared_size;          /* MAIL ... SIZE= (RFC 1870); 0: none */
	size_t txn_rcpts;                          /* RCPT: recipients accepted so far in the transaction */
	/* FROM_HEADER: the mailboxes of the one From: field (RFC 5322 §3.6.2). */
	char (*from)[POLICY_ADDR_MAX];
	size_t n_from;
	/* Findings. */
	struct rcpt_facts rcpt;                    /* RCPT: local, domain point into this struct */
	char maildir[POLICY_PATH_MAX];             /* RCPT, local user: the Maildir, for the quota */
	char home_node[40];                        /* RCPT, local user: its home node ([cluster]; "": none) */
	bool maildir_quota;                        /* RCPT: that Maildir has a quota (or it could not be read) */
	struct policy_txn txn;                     /* the transaction's findings (see above) */
	/* END_OF_DATA: the whole message is spooled (written and flushed, not committed).
	 * address/local/domain/null_sender are the envelope sender, as at MAIL; client
	 * has the listener role (submission_port: submission, else mx), authenticated and
	 * trusted_network.  The message is the octets [message_offset, message_offset +
	 * message_size) of the file message_path (the queue file being written: its
	 * envelope records come first); it begins with Postern's own Received: field, has
	 * CR LF line ends and is not dot-stuffed.  Read it only: open, pread within those
	 * bounds, close; the file goes away when the transaction ends. */
	char message_path[POLICY_PATH_MAX];
	unsigned long long message_offset;
	unsigned long long message_size;
	struct policy_rcpt *rcpts;                 /* END_OF_DATA: every accepted recipient */
	size_t n_rcpts;
	/* END_OF_DATA: header fields the stages so far added (policy_facts_add_header):
	 * complete fields, each ending in CR LF, in the order added; added_len octets
	 * (no NUL counted; the block is NUL-terminated).  NULL until the first. */
	char *added;
	size_t added_len;
	/* END_OF_DATA: the changes asked for and not yet applied (policy_edit_*; NULL:
	 * none), how to apply them (set by the asker), and the message's fate. */
	struct policy_edits *edits;
	struct policy_spool spool;
	enum policy_disposition disposition;
	char disposition_reason[POLICY_REASON_MAX];
	/* What the content filters are told of the connection (the milter macros Postfix
	 * sends, milter_stage.c): filled by serve/ (transport facts) and smtp/ (login). */
	unsigned client_port;
	char client_name[POLICY_DOMAIN_MAX];       /* verified reverse name; "": unknown */
	char listener[64];                         /* {daemon_name} */
	char daemon_addr[64];                      /* {daemon_addr}: the listener's address */
	char tls_version[32];                      /* "TLSv1.3"; "": no TLS */
	char tls_cipher[64];                       /* "TLS_AES_256_GCM_SHA384" */
	int tls_cipher_bits;
	char auth_mech[32];                        /* the SASL mechanism of the login ("PLAIN") */
	char queue_id[32];                         /* END_OF_DATA: the message's queue id */
	/* The connection's conversations with its listener's content filters (owned by
	 * serve/'s connection, outlives the run: reference-counted); NULL: no filter. */
	struct policy_milter_session *milters;
};

/* A new, zeroed facts record for a decision at `point`; NULL on no memory. */
struct policy_facts *policy_facts_new(enum policy_point point);
/* Room for n From: mailboxes (facts->from, n_from = n).  False on no memory. */
bool policy_facts_set_from(struct policy_facts *f, const char *const *addrs, size_t n);
/* Room for n recipients (facts->rcpts, n_rcpts = n, zeroed).  False on no memory. */
bool policy_facts_set_rcpts(struct policy_facts *f, size_t n);
void policy_facts_free(struct policy_facts **f);

/* END_OF_DATA: prepend a header field to the message.  field is one complete field,
 * "Name: value", folded lines allowed (CR LF or LF followed by a space or tab), no
 * trailing line end needed; every line end is stored as CR LF and one is added at the
 * end.  Fields come out in the order added, before the message (above Postern's
 * Received:), to every reader of the queued message: remote delivery, the Maildir,
 * the original attached to a bounce, `postern queue show`.  The queue stores them
 * with the message at the commit, as durably (queue_writer_commit).  Only a stage
 * that passes gets its fields kept: when any later stage refuses, the message is not
 * queued and every field is dropped.  A later stage sees what earlier ones added in
 * f->added (the signing stage, last, does not sign Authentication-Results).  False,
 * and nothing added, when the field is empty, is not "Name: value" (RFC 5322 §2.2:
 * printable ASCII name, then a colon), holds a NUL or a bare CR, or would take the
 * block past POLICY_ADDED_MAX octets.  Call it from the stage's decide() only (on
 * its worker thread, if does_io: the facts belong to the run). */
bool policy_facts_add_header(struct policy_facts *f, const char *field);

/* --- changes, holds and discards at the end of data (edits.c) ------------------- */

#define POLICY_EDITS_MAX 512                 /* changes one message may ask for */
#define POLICY_EDIT_TEXT_MAX (256u << 10)    /* their header fields, in total, as stored */
#define POLICY_EDIT_FIELD_MAX (16u << 10)    /* one header field as stored */
#define POLICY_EDIT_NAME_MAX 128             /* a header field name */
#define POLICY_EDIT_HEADER_MAX (1u << 20)    /* the message header the edits can reach */
#define POLICY_EDIT_BODY_DEFAULT (64ull << 20)   /* a replacement body's bound when spool.body_max is 0 */

/* END_OF_DATA: changes a stage asks for (a content filter's milter modifications).
 * Each is checked when asked (false: refused, nothing recorded: bad name or value,
 * over a bound, an address the SMTP parser refuses) and applied, in the order asked,
 * by policy_edits_apply.  The header sequence the indices count is H = the fields in
 * f->added (in order) followed by the spooled message's fields (Postern's Received:
 * first); that is also what a milter is sent.  A field is a whole field: its folded
 * lines (CR LF then space or tab) go with it.  Each edit counts over H as the edits
 * before it left it.  Values are as a milter sends them: without the space after the
 * colon (one is put there unless the value begins with a space or tab), folded lines
 * with LF or CR LF (stored as CR LF); a line end not followed by a space or tab, a
 * bare CR or a control character other than tab is refused. */
bool policy_edit_header_add(struct policy_facts *f, const char *name, const char *value);   /* end of H */
/* Before field number index of H (0: first); past the end: at the end. */
bool policy_edit_header_insert(struct policy_facts *f, unsigned index, const char *name, const char *value);
/* Field name's nth occurrence (1-based, name case-insensitive; 0 counts as 1) gets
 * value, keeping its place; value "" deletes it.  Fewer occurrences: a value is added
 * at the end of H (as libmilter's smfi_chgheader), a deletion does nothing. */
bool policy_edit_header_change(struct policy_facts *f, const char *name, unsigned nth, const char *value);
/* The replacement body, in pieces: the first call starts it (an O_TMPFILE beside
 * f->message_path), later calls append; line ends become CR LF (LF and CR alone
 * included), a NUL or more than spool.body_max octets refuses the piece and spoils the
 * replacement (policy_edits_apply then refuses the message 451 4.3.0).  It replaces
 * everything after the header's blank line. */
bool policy_edit_body_append(struct policy_facts *f, const void *p, size_t n);
/* The envelope sender becomes address (with MAIL FROM's ESMTP arguments, or NULL). */
bool policy_edit_sender(struct policy_facts *f, const char *address, const char *esmtp_args);
/* A recipient is added (with RCPT TO's ESMTP arguments, NULL for none; one already
 * there is not added twice) or deleted (every recipient of that address, compared
 * case-insensitively; none: nothing). */
bool policy_edit_rcpt_add(struct policy_facts *f, const char *address, const char *esmtp_args);
bool policy_edit_rcpt_del(struct policy_facts *f, const char *address);
/* Have changes been asked for and not applied yet? */
bool policy_edits_pending(const struct policy_facts *f);
/* What policy_edits_apply hands to f->spool.rewrite: the new message is head (the
 * header fields as edited, the added fields folded in) followed by rest_len octets
 * of rest_fd from rest_off (the rest of the spooled message, or the blank line and
 * the replacement body); the envelope is sender (NULL: unchanged) and rcpts, in order. */
struct policy_rewrite_rcpt {
	const char *address;             /* formatted */
	long old_index;                  /* its index in the envelope as spooled (f->rcpts); -1: added */
	const struct policy_path *path;  /* added: the address and its parameters; else NULL */
};
struct policy_rewrite {
	const char *head;
	size_t head_len;
	int rest_fd;
	unsigned long long rest_off, rest_len;
	const struct policy_path *sender;
	const struct policy_rewrite_rcpt *rcpts;
	size_t n_rcpts;
	/* For the log line: what changed. */
	size_t n_header_edits;
	bool body_replaced;
	size_t n_rcpts_added, n_rcpts_deleted;
};
/* Apply every change asked so far to the spooled message now, on the stage's thread:
 * a new spool file replaces the old one (f->spool.rewrite); f->message_offset/size,
 * f->address/local/domain/null_sender and f->rcpts/n_rcpts are updated (an added
 * recipient has domain_local and quota false: delivery resolves it), f->added is
 * folded into the message and emptied, the changes are cleared.  Nothing asked: true,
 * nothing done.  Every recipient deleted: the message is discarded
 * (policy_facts_discard).  False, with the verdict 451 4.3.0 in words and the old
 * file intact, when the disk or memory fails or the message's header is larger than
 * POLICY_EDIT_HEADER_MAX.  The milter stage calls it after its last filter; the
 * signing stage (last) then signs the edited message. */
bool policy_edits_apply(struct policy_facts *f, struct verdict *v);
/* END_OF_DATA: the message is accepted (250) but held in the queue: every recipient
 * held, the reason kept in its state file (written with the commit, before the message
 * enters active/, so no delivery ever sees it unheld), shown by `postern queue list`,
 * `list --held` and `show`, released with `postern queue release ID`.  Logged
 * event=held with the reason.  reason: "quarantined by the content filter (rspamd):
 * ...", truncated to POLICY_REASON_MAX. */
void policy_facts_hold(struct policy_facts *f, const char *reason);
/* END_OF_DATA: the message is accepted (250) and dropped, logged event=discarded with
 * the reason and the queue id (the reference).  Wins over a hold. */
void policy_facts_discard(struct policy_facts *f, const char *reason);
/* Frees f->edits (policy_facts_free does). */
void policy_edits_free(struct policy_edits **e);

/* How an END_OF_DATA stage is written (DKIM signing, DMARC checking, later milters):
 *   - points = POLICY_AT(POLICY_AT_END_OF_DATA), does_io = true (it reads the file and
 *     asks DNS), timeout_ms its own (its words then say what did not answer: "the DKIM
 *     key lookup"), wanted() to skip it on the loop when the facts already say no (the
 *     inbound checks: !f->client.submission_port && !f->client.authenticated &&
 *     !f->client.trusted_network; signing: the opposite);
 *   - decide() reads the message: open(f->message_path, O_RDONLY), pread within
 *     [f->message_offset, f->message_offset + f->message_size), close; never past it
 *     (the queue writes its records after it at the commit);
 *   - it adds what the message should carry with policy_facts_add_header(f, "Name:
 *     value") (false: the block is full; log it and go on, or refuse temporarily), and
 *     reads what earlier stages added in f->added (the signer does not sign
 *     Authentication-Results);
 *   - it refuses with verdict_set (an ENH_ id from wire/enh.h; the session writes
 *     "Message refused: <reason>" or, for a temporary refusal, "Message not accepted:
 *     <reason>", then the hint); a refusal drops every field added;
 *   - it reads f->txn for what MAIL found (SPF).
 * serve/decide.c appends the stages after policy_add_local_stages(), in the order
 * quota, inbound checks, signing (contracts: signing last, after any content change). */

/* One stage.  decide() gets a verdict preset to OK and changes it to refuse; it may
 * also add findings to the facts.  A stage with does_io runs on a worker thread (so it
 * must touch nothing but its ctx, which must be thread-safe, and the facts), and gets
 * timeout_ms: past that, the asker gets a temporary refusal naming the stage and the
 * stage's late verdict is dropped. */
struct policy_executor;

struct policy_stage {
	const char *name;        /* for logs: "directory", "relay" */
	const char *words;       /* for clients, in a timeout refusal: "the user directory" */
	unsigned points;         /* POLICY_AT() of the decisions it takes part in */
	bool does_io;
	unsigned timeout_ms;     /* does_io; 0: no timeout (the session deadlines still hold) */
	void (*decide)(void *ctx, struct policy_facts *f, struct verdict *v);
	/* Optional, on the loop thread: does this decision need the stage at all?  Spares
	 * a worker thread for what the facts already answer (no login: no ownership). */
 	bool (*wanted)(void *ctx, const struct policy_facts *f);
	void *ctx;               /* outlives every run (the pipeline's owner frees it last) */
	/* Optional, on the loop thread: the words of a timeout for these facts ("the SPF
	 * check of example.com"), written into out; reads only request fields. */
	const char *(*describe)(void *ctx, const struct policy_facts *f, char *out, size_t outsz);
	/* Optional: the threads a does_io stage runs on (its submit only; timers stay the
	 * pipeline's).  NULL: the executor of the run. */
	const struct policy_executor *executor;
};

#define POLICY_STAGES_MAX 24

/* The ordered list of stages.  Built once at start-up, then read-only: runs on worker
 * threads read it, so it must outlive them (free it after the work queue). */
struct policy_pipeline {
	struct policy_stage stages[POLICY_STAGES_MAX];
	size_t n;
};

/* Append a stage (copied); false when the list is full. */
bool policy_pipeline_add(struct policy_pipeline *p, const struct policy_stage *st);

/* How the runner gets off the event loop and keeps time; the composition root wraps
 * util/workq.h and an event timer, tests a fake that runs jobs when told. */
struct policy_executor {
	void *ctx;
	/* Run work(arg) on a worker thread, then done(arg) on the loop thread. */
	void (*submit)(void *ctx, void (*work)(void *arg), void (*done)(void *arg), void *arg);
	/* Call fire(arg) on the loop thread after ms milliseconds unless cancelled; returns
	 * a handle, or NULL when no timer could be set (the stage is then waited for). */
	void *(*timer_start)(void *ctx, unsigned ms, void (*fire)(void *arg), void *arg);
	/* Cancel a timer that has not fired. */
	void (*timer_cancel)(void *ctx, void *timer);
};

/* The verdict of a decision, on the loop thread.  v is valid during the call only;
 * so is f, the run's facts with every finding of the stages that ran (f->txn, and at
 * END_OF_DATA f->added: the asker may take f->added, setting it NULL), or NULL when
 * they cannot be read: a stage timed out (its worker thread may still write them) or
 * nothing could be allocated.  A refusal's findings are for logs only. */
typedef void (*policy_done_fn)(void *arg, const struct verdict *v, struct policy_facts *f);

struct policy_run;

/* Run the stages of p that take part in facts->point, in order, until one refuses;
 * takes facts.  done is called exactly once (unless the run is cancelled first) with
 * the first verdict that is not OK, or OK when every stage passed.  Returns the run,
 * valid until done is called, or NULL when the verdict was given at once (done has
 * been called: every stage was pure) or nothing could be allocated (done was called
 * with a temporary refusal). */
struct policy_run *policy_decide(const struct policy_pipeline *p, const struct policy_executor *ex,
	struct policy_facts *facts, policy_done_fn done, void *arg);
/* The asker went away before its verdict: done is never called; a stage still on a
 * worker thread finishes there and its result is dropped.  Sets *r to NULL. */
void policy_run_cancel(struct policy_run **r);

/* --- the local rules as stages (local.c) ------------------------------------------ */

struct conf;
struct directory;
struct dir_recipient;

#define POLICY_LOOKUP_TIMEOUT_MS 10000   /* above the directory's own 5 s busy wait */

/* What the local stages read.  Outlives the pipeline; dir is a handle of its own,
 * used by the decision threads only. */
struct policy_local {
	const struct conf *conf;
	struct directory *dir;
	unsigned lookup_timeout_ms;      /* 0: POLICY_LOOKUP_TIMEOUT_MS */
	/* POP-before-SMTP (on the loop thread): seconds since addr last logged in to
	 * POP3, or -1.  NULL: never. */
	long long (*pop_login_age)(void *ctx, const char *addr);
	void *pop_ctx;
};

/* Append the local rules, in order: at MAIL "submission" (login required on a
 * submission port) and "sender" (the login owns MAIL FROM; directory); at RCPT
 * "recipient" (directory and quota file: findings only), "pop-before-smtp", "relay"
 * and "mailbox"; at the From: check "from-header" (the login owns every From:
 * mailbox; directory); at the end of data "quota" (some recipient's mailbox has room
 * for the message at its real size; directory and quota files).  Add them first: at
 * the end of data the quota comes before the inbound checks and signing (a message
 * no mailbox can take is refused before any work on it).  False when the list is
 * full. */
bool policy_add_local_stages(struct policy_pipeline *p, struct policy_local *l);

/* Resolve address with the directory (aliases followed, postmaster placed): true
 * when its mail goes into a local Maildir, whose path is then in path.  A path that
 * does not fit counts as a directory failure (dr->kind DIR_RCPT_TEMPFAIL).  Blocking:
 * decision or commit threads only. */
bool policy_recipient_maildir(const struct conf *c, struct directory *dir, const char *address,
	struct dir_recipient *dr, char *path, size_t pathsz);

/* --- SPF at MAIL FROM (spf_stage.c) ------------------------------------------------ */

struct dns_pool;

/* What the SPF stage reads; outlives the pipeline.  pool gives each decision thread
 * a resolver ([delivery] resolver). */
struct policy_spf {
	const struct conf *conf;
	struct dns_pool *pool;
	const struct policy_executor *executor;   /* threads for DNS stages; NULL: the pipeline's */
	unsigned timeout_ms;     /* set by policy_add_spf_stage from [mailauth] spf_timeout */
};

/* Append the stage "spf" (MAIL; mx listeners, client neither logged in nor trusted,
 * [mailauth] spf = check): spf_check() of the sender (postmaster@HELO for <>) and the
 * HELO name into facts->txn.spf (kept for the transaction), logged as event=spf; refused (550 5.7.23) only with
 * [mailauth] spf_fail_refuse = yes, for a fail of a record that has -all.  Before it
 * the stage "mailauth_skip" (on the loop) logs event=spf result=skipped for a client
 * in [mailauth] skip_networks, which neither SPF nor the inbound stage checks. */
bool policy_add_spf_stage(struct policy_pipeline *p, struct policy_spf *s);
/* The stage is wanted at MAIL only with spf_fail_refuse = yes or dmarc = off;
 * otherwise the inbound stage calls this at the end of data.  The check of
 * policy_add_spf_stage with resolver r (NULL: a temperror naming err) within
 * timeout_ms, into f->txn.spf (spf_done set), logged as event=spf. */
struct dns_resolver;
void policy_spf_check(const struct conf *c, struct dns_resolver *r, const char *err, unsigned timeout_ms,
	struct policy_facts *f);

/* --- DKIM signing at the end of data (signing.c) ------------------------------------ */

/* The signing stage, last at the end of data (after any content change): mail that a
 * logged-in user or a trusted network sends to another domain gets a DKIM-Signature
 * for each active key of its From: domain (mailauth/dkim.h: the oldest rsa and the
 * oldest ed25519 key), unless [mailauth] dkim_signing = no.  The keys are kept in
 * memory between messages and reread when their directory changes.  init before
 * adding; free after the decision threads are gone. */
struct dkim_key_cache;
struct policy_signing {
	const struct conf *conf;
	struct dkim_key_cache *keys;
	/* Threads of its own for the signatures (about 1 ms of CPU each for rsa-2048), so
	 * that the recipient lookups of other sessions never queue behind them.  NULL:
	 * the pipeline's. */
	const struct policy_executor *executor;
};
bool policy_signing_init(struct policy_signing *s, const struct conf *c);
void policy_signing_free(struct policy_signing *s);
bool policy_add_signing_stage(struct policy_pipeline *p, struct policy_signing *s);

/* The temporary refusal for a stage that did not answer within timeout_ms
 * (RFC 3463 X.4.3: a directory or other server the decision needs did not answer). */
void policy_stage_timeout_verdict(const struct policy_stage *st, struct verdict *v);

/* --- the inbound checks at the end of data (inbound.c) ----------------------------- */

struct policy_inbound;
struct dns_pool;

/* What the inbound stage needs ([mailauth] dmarc, dmarc_reject, dmarc_quarantine_header,
 * dmarc_timeout, authserv_id); conf, the resolvers and the executor of the DNS threads
 * (both shared with the SPF stage; executor NULL: the pipeline's) outlive it.  NULL on
 * no memory. */
struct policy_inbound *policy_inbound_new(const struct conf *c, struct dns_pool *pool,
	const struct policy_executor *executor);
/* After the decision threads are gone. */
void policy_inbound_free(struct policy_inbound **in);
/* Append the stage "inbound" (END_OF_DATA, does I/O; timeout words "the DKIM and DMARC
 * checks"): for mx listeners and clients neither logged in nor trusted, DKIM
 * verification of the spooled message, DMARC (RFC 7489) with the SPF result of MAIL
 * (f->txn.spf), one Authentication-Results field; p=reject -> 550 5.7.1, p=quarantine
 * -> the quarantine field, a check that could not finish -> 451 4.4.3.  Add it after
 * the local stages and before DKIM signing.  False when the list is full. */
bool policy_add_inbound_stage(struct policy_pipeline *p, struct policy_inbound *in);

/* --- content filters: milters (milter_stage.c, milter_session.c) ------------------- */

/* The listener's filters (`milters =`, [milter NAME]) as stages: at MAIL (the
 * connection, HELO and MAIL FROM on the first use of a session, then MAIL FROM), at
 * each RCPT (that recipient only) and at the end of data (data, every header field of
 * the message with the fields stages added first, end of headers, the body from the
 * spool file in chunks of at most 64 KiB, end of message), each filter in order, on
 * the threads of `executor`, under the filter's own time-outs.  A refusal passes the
 * filter's words on ("The content filter (rspamd) refused this message: ..."); a
 * filter down, slow or answering garbage gets its default action (tempfail: 451 4.7.1
 * "... not answering; this is the server's fault ..."; logged event=milter_failed).
 * The changes filters ask for are applied before the signing stage. */
struct policy_milters {
	const struct conf *conf;
	const struct policy_executor *executor;   /* the filters' threads; NULL: the pipeline's */
};
/* Append the stage "milter" (MAIL, RCPT, END_OF_DATA): after the local, SPF and
 * inbound stages, before signing.  False when the list is full. */
bool policy_add_milter_stage(struct policy_pipeline *p, struct policy_milters *m);

struct conf_listener;
/* One connection's conversations with the filters of listener l, none open yet (they
 * open at the first MAIL); NULL when l has no filter or on no memory.  Loop thread. */
struct policy_milter_session *policy_milter_session_new(const struct conf *c, const struct conf_listener *l);
/* The connection is gone: each conversation is ended (abort, QUIT) on a thread of
 * ex, never on the loop; one a late stage still holds is ended by that stage when it
 * returns.  Sets *ms to NULL. */
void policy_milter_session_end(struct policy_milter_session **ms, const struct policy_executor *ex);

/* --- outbound limits (limits_window.c, limits.c, limits_stage.c) -------------------- */

/* A sliding window of n buckets, each `width` seconds wide and tagged with the bucket
 * number it counts for (time / width), so that a bucket left from an earlier turn of
 * the ring reads as empty and a clock that jumps never counts old mail as new.  The
 * window at time t is the buckets t/width - n + 1 .. t/width: the last hour is 60
 * buckets of a minute, the last day 24 of an hour. */
struct limit_bucket {
	uint32_t index;   /* time / width */
	uint32_t count;
};
void limit_window_add(struct limit_bucket *b, unsigned n, unsigned width, long long now, uint32_t k);
unsigned long long limit_window_sum(const struct limit_bucket *b, unsigned n, unsigned width, long long now);
/* The first time >= now at which sum + extra <= limit: now when it already is, the
 * moment the bucket that tips it leaves the window otherwise; -1 when never (extra
 * alone is over the limit). */
long long limit_window_resume(const struct limit_bucket *b, unsigned n, unsigned width, long long now,
	unsigned long long limit, unsigned long long extra);
/* The account's usual hourly volume for the burst check: the messages of the days
 * before today (day buckets, width 86400) over the hours it has been known in them
 * (since first_seen, at most n - 1 days), never below floor. */
double limit_window_hourly_baseline(const struct limit_bucket *days, unsigned n, long long now, long long first_seen,
	double floor);

/* The counters: per account (the login) and per sending domain, messages per minute
 * over the last hour, recipients per hour over the last day, messages per day over a
 * week (the burst baseline).  In memory under one mutex (a check is a few hundred
 * additions); saved to a state file by a chore off the loop and at the stop, read at
 * the start, so a restart does not reset them. */
struct policy_limits;

enum limit_kind { LIMIT_ACCOUNT, LIMIT_DOMAIN };

struct policy_limits *policy_limits_new(size_t max_entries);
void policy_limits_free(struct policy_limits **l);
/* A committed message: `account` ("" for none: a trusted network without login) and
 * `domain` ("" for none) each get one message and `rcpts` recipients at `now`. */
void policy_limits_count(struct policy_limits *l, const char *account, const char *domain, unsigned rcpts,
	long long now);
/* The counts of one key at `now` (zero for a key never seen). */
struct limit_usage {
	unsigned long long messages_hour, recipients_day;
	long long messages_resume;     /* when one more message fits `messages_limit` (see limit_window_resume) */
	long long recipients_resume;   /* when `extra` more recipients fit `recipients_limit` */
	double baseline;               /* usual hourly volume, floor applied */
};
void policy_limits_usage(struct policy_limits *l, enum limit_kind kind, const char *key, long long now,
	unsigned long long messages_limit, unsigned long long recipients_limit, unsigned long long extra,
	double burst_floor, struct limit_usage *out);
/* Once per key, kind of notice and UTC day: true the first time (and marks it). */
enum limit_notice_kind { LIMIT_NOTICE_REACHED, LIMIT_NOTICE_BURST };
bool policy_limits_notice_due(struct policy_limits *l, enum limit_kind kind, const char *key,
	enum limit_notice_kind notice, long long now);
/* The sending domain counted for a message: the envelope sender's domain, or the
 * login's for <> (and "" when neither has one).  Lower case. */
void policy_limits_sending_domain(const char *login, const char *sender_domain, char *out, size_t outsz);
/* The state file (data_dir/limits.state): written to a temporary file, fsync'd and
 * renamed, the directory fsync'd; what is live at `now` is written.  Blocking: a
 * worker thread or the stop.  load
 * reads what save wrote (a missing file is an empty state; a damaged line is
 * skipped and counted in *skipped). */
bool policy_limits_save(struct policy_limits *l, const char *path, long long now, char *err, size_t errsz);
bool policy_limits_load(struct policy_limits *l, const char *path, long long now, size_t *skipped, char *err,
	size_t errsz);

/* What the administrator (and, for a burst, the user) is told: composed and queued by
 * serve/ (policy/ never writes the queue). */
struct policy_limit_notice {
	enum limit_notice_kind kind;
	enum limit_kind scope;
	char key[POLICY_LOGIN_MAX];        /* the account or the domain */
	char limit_name[64];               /* "messages_per_hour", "recipients_per_day", ... */
	unsigned long long limit, count;
	long long resume;                  /* -1: none */
	double baseline;                   /* burst: the usual hourly volume */
	bool held;                         /* burst: the mail is held */
	char client_addr[64];
};

/* The stages: at MAIL "limits" (a logged-in or trusted client; reads the login's
 * override, postern user limit, on a decision thread; refuses 451 4.7.1 once the
 * account or its sending domain has sent its messages_per_hour), at RCPT
 * "limits_rcpt" (on the loop: recipients_per_day, the transaction's recipients
 * counted), at the end of data "burst" (on the loop: a logged-in account sending
 * burst_factor times its usual hourly volume; held with [limits] burst_hold, through
 * policy_facts_hold).  notice
 * is called (on any thread; copy what it needs) once per key and day when a limit is
 * reached or a burst seen. */
struct policy_limits_stage {
	const struct conf *conf;
	struct directory *dir;             /* the decision threads' handle */
	struct policy_limits *counts;
	void (*notice)(void *ctx, const struct policy_limit_notice *n);
	void *notice_ctx;
};
bool policy_add_limits_stages(struct policy_pipeline *p, struct policy_limits_stage *s);
/* The words of a refusal, for the stage and the tests: reason and hint of v. */
void policy_limit_verdict(enum limit_kind scope, const char *key, bool messages, bool override,
	unsigned long long limit, unsigned long long count, size_t txn_rcpts, long long resume, long long now,
	struct verdict *v);

#endif
