/* directory.h - the one interface to domains, users, aliases, sender grants, app
 * passwords, quotas and recipient resolution.
 *
 * Callers (cli/, auth/, the server, delivery) see only this header.  directory.c
 * validates and normalises addresses and passes the rest to a backend
 * (directory/backend.h): SQLite in data_dir/directory.db today (WAL mode: the server
 * reads while the admin commands write), PostgreSQL later behind the same table.
 * Password hashes go in and out here and in auth/ only.  A handle may be shared by
 * threads (each call's error is kept per thread, directory_error). */
#ifndef POSTERN_DIRECTORY_DIRECTORY_H
#define POSTERN_DIRECTORY_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DIR_ADDRESS_MAX 320
#define DIR_ERROR_MAX 256                /* directory_error(), dir_recipient.error */
#define DIR_NODE_NAME_MAX 33             /* a [cluster] node name, [a-z0-9-]{1,32} */
#define DIR_NODE_ADDR_MAX 128            /* "host:port" of a node's listener */

enum dir_result { DIR_OK, DIR_NOT_FOUND, DIR_EXISTS, DIR_INVALID, DIR_ERROR };

struct directory;

struct dir_user {
	char address[DIR_ADDRESS_MAX];   /* lower case local@domain */
	char local[DIR_ADDRESS_MAX];
	char domain[DIR_ADDRESS_MAX];
	uint64_t quota;                  /* bytes, 0 = none */
	/* Outbound limits of this account (postern user limit): -1 = the [limits]
	 * default, 0 = no limit, else the limit. */
	int64_t limit_messages_per_hour;
	int64_t limit_recipients_per_day;
	bool admin;                      /* may use the web site's /admin/ pages (postern user admin) */
	char home_node[DIR_NODE_NAME_MAX];   /* "" = none: delivered by the node that accepted it */
};

/* Which backend the process's handles use, set once before the first directory_open
 * (serve/ and cli/ copy it from [directory]); without a call: SQLite.  One backend per
 * process, as every handle of a server must see the same users. */
enum directory_backend_kind { DIRECTORY_SQLITE, DIRECTORY_POSTGRESQL };
struct directory_config {
	enum directory_backend_kind backend;
	char connection[1024];           /* PostgreSQL: a libpq connection string */
	unsigned pool;                   /* PostgreSQL: connections per handle (>= 1) */
	unsigned timeout_ms;             /* PostgreSQL: a call's deadline, connecting included */
};
void directory_configure(const struct directory_config *c);
/* Requests that wait in a queue for a thread before they reach the directory (logins,
 * recipient lookups): the caller takes directory_request_deadline() when the request
 * arrives, and the thread that runs it calls directory_thread_deadline(that) before
 * its calls (0 after).  The wait for a pooled connection and the query then end within
 * [directory] timeout of the arrival, and a request that already waited that long
 * fails at once with words instead of holding a connection.  PostgreSQL only: for
 * SQLite the deadline is 0 (its own busy wait stands).  CLOCK_MONOTONIC milliseconds. */
long long directory_request_deadline(void);
void directory_thread_deadline(long long deadline_ms);
long long directory_thread_deadline_get(void);
long long directory_clock_ms(void);
/* "sqlite" or "postgresql" (for logs and the doctor). */
const char *directory_backend_name(void);
/* SQLite: creates data_dir (0750) and directory.db if missing; the database and its
 * -wal and -shm files are made mode 0600 (they hold password hashes).  PostgreSQL:
 * connects lazily (the first call), so a database that is down at start gives
 * temporary refusals, not a server that will not start; the schema is created or
 * brought up to date by `postern directory migrate` (and by the first connection). */
bool directory_open(struct directory **d, const char *data_dir, char *err, size_t errlen);
/* PostgreSQL: create or bring up to date the schema now, with the versions before and
 * after (SQLite: its schema is always current; both 0).  false: err says why. */
bool directory_migrate(struct directory *d, int *from, int *to, char *err, size_t errlen);
/* Can users other than the owner and group enter or list data_dir?  Then `warn`
 * says so and how to fix it. */
bool directory_data_dir_exposed(const char *data_dir, char *warn, size_t warnsz);
void directory_close(struct directory **d);
/* The reason of this thread's last failed call, for messages ("" when none said). */
const char *directory_error(const struct directory *d);

enum dir_result directory_domain_add(struct directory *d, const char *domain);
enum dir_result directory_domain_del(struct directory *d, const char *domain);
enum dir_result directory_domain_exists(struct directory *d, const char *domain);
enum dir_result directory_domain_list(struct directory *d,
	void (*cb)(void *arg, const char *domain), void *arg);

/* address must be local@domain with an existing domain; the hash comes from auth/. */
enum dir_result directory_user_add(struct directory *d, const char *address, const char *hash);
enum dir_result directory_user_del(struct directory *d, const char *address);
/* Case-insensitive lookup. */
enum dir_result directory_user_lookup(struct directory *d, const char *local,
	const char *domain, struct dir_user *out);
enum dir_result directory_user_list(struct directory *d,
	void (*cb)(void *arg, const struct dir_user *u), void *arg);
/* The quota recorded for the account (bytes, 0 = none; dir_user.quota).  What is
 * enforced is the mailbox's own maildirsize (store/quota.h), which `postern user
 * quota` sets together with this record. */
enum dir_result directory_user_quota_set(struct directory *d, const char *address, uint64_t bytes);
/* The account's own outbound limits (dir_user.limit_*: -1 the [limits] default, 0 none). */
enum dir_result directory_user_limits_set(struct directory *d, const char *address, int64_t messages_per_hour,
	int64_t recipients_per_day);

/* Make the account an administrator of the web site (/admin/ pages) or not. */
enum dir_result directory_user_admin_set(struct directory *d, const char *address, bool admin);

/* The node whose disk holds the account's mailbox ([cluster] node; "" none: the
 * mailbox is wherever mail for it is accepted).  The Maildir is not moved. */
enum dir_result directory_user_home_set(struct directory *d, const char *address, const char *node);

/* --- the node registry (PostgreSQL only; SQLite: DIR_ERROR "only with the postgresql
 * directory backend") ---------------------------------------------------------------
 * One row per node of a cluster (table postern_nodes), refreshed by each node's
 * heartbeat thread.  Addresses are "host:port" where peers reach that node's listener
 * of the role ("" when none).  Up or down is the caller's to decide: a node is down
 * when now - last_seen > [cluster] down_after. */
struct dir_node {
	char name[DIR_NODE_NAME_MAX];
	long long started, last_seen;    /* unix seconds */
	char lmtp[DIR_NODE_ADDR_MAX], control[DIR_NODE_ADDR_MAX], pop3[DIR_NODE_ADDR_MAX], imap[DIR_NODE_ADDR_MAX];
	long long queue_size, oldest_queued;   /* messages in the queue; unix seconds of the oldest (0: empty) */
};
/* Insert or refresh self's row (last_seen is taken from self). */
enum dir_result directory_node_heartbeat(struct directory *d, const struct dir_node *self, char *err);
enum dir_result directory_node_get(struct directory *d, const char *name, struct dir_node *out, char *err);
/* Every node, by name. */
enum dir_result directory_node_list(struct directory *d, void (*cb)(void *arg, const struct dir_node *n), void *arg,
	char *err);

/* Aliases: alias address -> a user's address.  Recipients and sender ownership
 * both follow them. */
enum dir_result directory_alias_add(struct directory *d, const char *alias, const char *target);
enum dir_result directory_alias_del(struct directory *d, const char *alias);
/* The user an alias points to (lower case), written into target. */
enum dir_result directory_alias_lookup(struct directory *d, const char *local, const char *domain,
	char *target, size_t targetsz);
enum dir_result directory_alias_list(struct directory *d,
	void (*cb)(void *arg, const char *alias, const char *target), void *arg);

/* Sender grants: `user` may use `address` as MAIL FROM / From: (postern sender allow). */
enum dir_result directory_sender_allow(struct directory *d, const char *user, const char *address);
enum dir_result directory_sender_deny(struct directory *d, const char *user, const char *address);
enum dir_result directory_sender_list(struct directory *d, const char *user,
	void (*cb)(void *arg, const char *address), void *arg);
/* Does `user` own `address`: the same address, an alias pointing to the user, or a
 * grant?  DIR_OK yes, DIR_NOT_FOUND no, DIR_ERROR unknown. */
enum dir_result directory_sender_owned(struct directory *d, const char *user, const char *address);

/* App passwords: extra passwords for one user, each with a name and a selector (the
 * leading group of the password, auth/password.h) that picks its one hash at login.
 * Rows made before selectors existed have none ("legacy"). */
enum dir_result directory_app_password_add(struct directory *d, const char *user, const char *name,
	const char *selector, const char *hash);
/* DIR_OK when no app password of user has this selector yet, DIR_EXISTS otherwise. */
enum dir_result directory_app_password_selector_free(struct directory *d, const char *user, const char *selector);
enum dir_result directory_app_password_revoke(struct directory *d, const char *user, const char *name);
enum dir_result directory_app_password_list(struct directory *d, const char *user,
	void (*cb)(void *arg, const char *name, long long created, long long last_used, bool legacy), void *arg);
enum dir_result directory_app_password_used(struct directory *d, const char *user, const char *name);

/* The one hash a login attempt is checked against (never a walk over all of them, so
 * the work does not tell whether an account has app passwords): with `selector`, the
 * app password of `user` that carries it (app_name its name); otherwise, or when none
 * carries it, the account's own hash (app_name "").  The user is matched
 * case-insensitively; canonical receives the stored form.  DIR_NOT_FOUND: no such user. */
struct dir_login_hash {
	char canonical[DIR_ADDRESS_MAX];
	char app_name[80];
	char hash[512];
};
enum dir_result directory_login_hash(struct directory *d, const char *user, const char *selector,
	struct dir_login_hash *out);
/* The legacy app passwords of user (no selector): the callback returns true to stop. */
enum dir_result directory_legacy_app_hashes(struct directory *d, const char *user,
	bool (*cb)(void *arg, const char *name, const char *hash), void *arg);
/* How many legacy app passwords there are in all (-1: unknown). */
long long directory_legacy_app_password_count(struct directory *d);

/* Moving a directory between backends (transfer.c): export writes every domain, user
 * (with its hash, quota, limits and admin flag), alias, sender grant and app password
 * (with its hash and selector) to out as text, one record a line; import adds them to
 * this directory (records already there are counted and left as they are).  The file
 * holds password hashes: the caller makes it 0600.  Creation and last-use times of app
 * passwords are not carried over.  false: err says why (import: the line). */
struct dir_transfer_counts {
	unsigned domains, users, aliases, grants, app_passwords;
	unsigned existing;            /* import: records already present */
};
bool directory_export(struct directory *d, FILE *out, struct dir_transfer_counts *n, char *err, size_t errlen);
bool directory_import(struct directory *d, FILE *in, struct dir_transfer_counts *n, char *err, size_t errlen);
enum dir_result directory_grant_dump(struct directory *d,
	void (*cb)(void *arg, const char *user, const char *address), void *arg);
enum dir_result directory_app_password_dump(struct directory *d,
	void (*cb)(void *arg, const char *user, const char *name, const char *selector, const char *hash), void *arg);

/* DKIM keys in the directory: PostgreSQL only (table postern_dkim_keys), so that every
 * node signs with the same keys; with SQLite they stay files in data_dir/dkim
 * (mailauth/dkim.h) and these give DIR_ERROR "only with the postgresql directory
 * backend".  The private key is a secret like a password hash: it leaves the
 * directory only for the signer (serve/) and `postern dkim`. */
#define DIR_DKIM_PEM_MAX 8192
struct dir_dkim_key {
	char domain[256];
	char selector[64];
	char algorithm[16];              /* "rsa" | "ed25519" */
	bool active;                     /* false: retired (listed, published, does not sign) */
	long long created;               /* unix seconds */
	char pem[DIR_DKIM_PEM_MAX];      /* PKCS#8 PEM private key */
};
/* DIR_EXISTS: that selector of that domain is taken (a key is never overwritten). */
enum dir_result directory_dkim_key_add(struct directory *d, const struct dir_dkim_key *k);
/* DIR_NOT_FOUND: no such key. */
enum dir_result directory_dkim_key_retire(struct directory *d, const char *domain, const char *selector);
/* Every key (domain NULL) or a domain's, sorted by domain then selector. */
enum dir_result directory_dkim_key_list(struct directory *d, const char *domain,
	void (*cb)(void *arg, const struct dir_dkim_key *k), void *arg);
/* A value that changes whenever a key is added or retired (the signer's refresh asks
 * this every few seconds and reads the keys only when it moved). */
enum dir_result directory_dkim_keys_version(struct directory *d, char *version, size_t versionsz);
/* --- state shared by the nodes (postgres_state.c; PostgreSQL only) ----------------
 * A feed of what happened on each node that the others apply into their own in-memory
 * tables (serve/state_feed.h): login failures and successes, unblocks, POP3 logins
 * (POP-before-SMTP) and sent mail (the outbound limits).  One table, postern_state_feed,
 * rows in insertion order (id); the text fields are stored %XX-escaped (bytes outside
 * printable ASCII, space and '%'), so any client-typed name fits and reads back
 * unchanged.  SQLite: DIR_ERROR "only with the postgresql directory backend". */
#define DIR_STATE_NAME_MAX 330       /* account, domain: SASL_USER_MAX and more */
#define DIR_STATE_IP_MAX 64
#define DIR_STATE_ORIGIN_MAX 64      /* node name, run id */
#define DIR_STATE_BATCH_MAX 256      /* rows per publish */
enum dir_state_kind {
	DIR_STATE_LOGIN_FAILED,    /* ip, account: a wrong password or an unknown user */
	DIR_STATE_LOGIN_OK,        /* ip, account: a successful login */
	DIR_STATE_UNBLOCK,         /* account: the key given to `postern user unblock` */
	DIR_STATE_POP_LOGIN,       /* ip: a POP3 login (POP-before-SMTP) */
	DIR_STATE_SENT,            /* account (login, "" none), domain, n recipients: a message committed */
	DIR_STATE_KIND_COUNT
};
struct dir_state_row {
	long long id;                          /* the feed's order (set by reads) */
	long long at;                          /* unix seconds where it happened */
	enum dir_state_kind kind;
	long long n;
	char ip[DIR_STATE_IP_MAX];
	char account[DIR_STATE_NAME_MAX];      /* as the client typed it (HOSTILE) */
	char domain[DIR_STATE_NAME_MAX];
	char node[DIR_STATE_ORIGIN_MAX];       /* who published it (set by reads) */
};
/* Append rows (at most DIR_STATE_BATCH_MAX) in one statement, marked with the node's
 * name and its run id. */
enum dir_result directory_state_publish(struct directory *d, const char *node, const char *run,
	const struct dir_state_row *rows, size_t n);
/* Rows with id > after_id and at >= since, not published by run skip_run, in id order, at
 * most max: cb for each; *count says how many came. */
enum dir_result directory_state_read(struct directory *d, long long after_id, long long since, const char *skip_run,
	unsigned max, void (*cb)(void *arg, const struct dir_state_row *r), void *arg, unsigned *count);
/* Delete the rows older than before (unix seconds). */
enum dir_result directory_state_expire(struct directory *d, long long before);
/* The text stored for a name and back (%XX escapes); false when it does not fit. */
bool directory_state_escape(const char *in, char *out, size_t outsz);
bool directory_state_unescape(const char *in, char *out, size_t outsz);

/* Is this a local part we will create a mailbox directory for?  ASCII letters,
 * digits and . _ + - only, not starting with '.' or '-', at most 64 octets. */
bool directory_local_part_valid(const char *local);
/* A domain name: LDH labels, dots between, at most 253 octets, lower-cased in place. */
bool directory_domain_valid(char *domain);

/* --- recipient resolution (resolve.c) -------------------------------------
 * What becomes of mail to an address: the one answer RCPT, local delivery, POP3
 * and the admin commands share.  The result names an account and its mailbox (a
 * domain and a local part; store/layout.h says where that lives), never a path. */
struct conf;

enum dir_rcpt_kind {
	DIR_RCPT_USER,         /* a user of one of our domains */
	DIR_RCPT_ALIAS,        /* an alias, expanded to the user it points to */
	DIR_RCPT_POSTMASTER,   /* postmaster of one of our domains that has no such user or
	                        * alias: the configured postmaster's mailbox, or the domain's
	                        * own postmaster mailbox (RFC 5321 §4.5.1: never refused) */
	DIR_RCPT_UNKNOWN,      /* one of our domains, but no such user or alias */
	DIR_RCPT_NOT_LOCAL,    /* not a domain of ours */
	DIR_RCPT_TEMPFAIL,     /* the directory could not be read: error says why */
};

/* A mailbox as the directory names it (lower case). */
struct dir_mailbox {
	char domain[DIR_ADDRESS_MAX];
	char local[DIR_ADDRESS_MAX];
};

struct dir_recipient {
	enum dir_rcpt_kind kind;
	/* USER, ALIAS, POSTMASTER: the mailbox mail goes to. */
	struct dir_mailbox mailbox;
	/* The account owning the mailbox (local@domain); "" for a domain's own
	 * postmaster mailbox, which belongs to no user. */
	char user[DIR_ADDRESS_MAX];
	uint64_t quota;        /* the account's quota in the directory, bytes, 0 = none */
	char error[DIR_ERROR_MAX];   /* TEMPFAIL */
	char home_node[DIR_NODE_NAME_MAX];   /* the account's home node ([cluster]); "": none */
};

/* Resolve address ("local@domain", or a bare "postmaster") with the local domains,
 * host name and postmaster of c: aliases followed, case folded.  Fills out and
 * returns out->kind.  Uses only d and c (read-only), so it may run on any thread
 * that owns d or shares a handle opened for it. */
enum dir_rcpt_kind directory_resolve_recipient(struct directory *d, const struct conf *c, const char *address,
	struct dir_recipient *out);
/* Does mail to r go into a local mailbox (USER, ALIAS or POSTMASTER)? */
bool directory_recipient_has_mailbox(const struct dir_recipient *r);

#endif
