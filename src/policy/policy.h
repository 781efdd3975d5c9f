/* policy.h - who may send what to whom.  Pure functions: the caller gathers the facts
 * (is the domain local, does the user exist, is the client logged in or trusted) and
 * gets back a verdict that the protocol renders.  No I/O here. */
#ifndef POSTERN_POLICY_POLICY_H
#define POSTERN_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

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
	CAUSE_COUNT
};

#define VERDICT_REASON_MAX 256
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
};

void policy_check_rcpt(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v);

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

void verdict_set(struct verdict *v, enum verdict_kind k, int code, const char *enh,
	enum refusal_cause cause, const char *reason, const char *hint);

#endif
