/* throttle.h - brute-force throttling of logins that never locks out a whole office.
 *
 * An office shares one public address: a phone with a stale saved password must not
 * lock out its colleagues, yet one address trying many accounts (password spraying)
 * must be stopped.  So, for failures remembered `window` seconds after the last one:
 *   - per (address, account): past `pair_limit` failures that account may not log in
 *     from that address until the block ends; the device is told which account;
 *   - per address: failures to `ip_accounts` distinct accounts (existing or not, and
 *     not since logged in successfully from there) block the address for every
 *     account, except accounts that logged in successfully from that address within
 *     `known_for`: the colleagues whose devices work keep working; `ip_failures`
 *     failures over all accounts (a high ceiling) block the address the same way;
 *   - per account, across addresses: never a block (a correct login from another
 *     address must always work), only a growing delay before a *failure* is
 *     answered, which slows guessing spread over many addresses.
 * A success clears the pair's failures and takes the account out of the address's
 * distinct set.  Memory is fixed at throttle_new: four tables (pairs, addresses,
 * known pairs, accounts) of `max_entries` slots each, 8-way set-associative, keyed
 * by a SipHash of the key under a per-process random key (no strings kept, so an
 * attacker can neither grow memory nor aim collisions); a full set evicts its
 * expired entries first, then the least recently used.  Pure apart from the random
 * key: the caller passes the time.
 *
 * For the administrator (the web site's /admin/throttled, `postern user unblock`),
 * the names of the blocks running now are kept apart, in a fixed table of
 * THROTTLE_BLOCKS_MAX rows (only a block takes a row, so failures cannot grow it;
 * when it is full the block ending soonest gives its row up and is no longer listed,
 * though it still holds).  Every function may be called from any thread (one mutex). */
#ifndef POSTERN_AUTH_THROTTLE_H
#define POSTERN_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define THROTTLE_ACCOUNTS_MAX 32   /* upper bound of ip_accounts */
#define THROTTLE_BLOCKS_MAX 256    /* running blocks whose names are kept for listing */
#define THROTTLE_IP_MAX 64
#define THROTTLE_ACCOUNT_MAX 321

struct throttle_limits {
	unsigned pair_limit;      /* failures for one account from one address before that pair is blocked */
	unsigned ip_accounts;     /* distinct failing accounts from one address before the address is blocked */
	unsigned ip_failures;     /* failures from one address, all accounts together, before the same */
	unsigned account_delay_after; /* failures for an account before failures are delayed */
	unsigned max_delay_ms;    /* cap of that delay */
	time_t window;            /* seconds a failure is remembered */
	time_t block;             /* seconds a block lasts */
	time_t known_for;         /* seconds a success exempts the pair from the address's block */
	size_t max_entries;       /* slots per table (rounded up to a multiple of 8) */
};

enum throttle_block {
	THROTTLE_OPEN,            /* may try */
	THROTTLE_ACCOUNT,         /* this account from this address: too many failures of its own */
	THROTTLE_ADDRESS,         /* this address: failures to several accounts (spraying) */
};

struct throttle_verdict {
	enum throttle_block block;
	time_t until;             /* end of the block (0 when open) */
};

/* One running block, as the administrator sees it. */
struct throttle_block_info {
	enum throttle_block kind;             /* THROTTLE_ACCOUNT: account from ip; THROTTLE_ADDRESS: ip, all accounts */
	char ip[THROTTLE_IP_MAX];
	char account[THROTTLE_ACCOUNT_MAX];   /* as the client typed it (HOSTILE); "" for THROTTLE_ADDRESS */
	time_t since, until;
	unsigned failures;                    /* counted when the block began */
};

struct throttle;

struct throttle *throttle_new(const struct throttle_limits *l);
void throttle_free(struct throttle **t);

/* May this address try to log in as this account now?  Without an account (the
 * user name is not known yet) the answer is always open: whether the address's
 * block applies depends on the account. */
struct throttle_verdict throttle_check(struct throttle *t, const char *ip, const char *account, time_t now);
/* Record a failure; returns the delay in milliseconds to wait before answering. */
unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, time_t now);
void throttle_success(struct throttle *t, const char *ip, const char *account, time_t now);
/* The blocks running at `now`, the newest first; returns how many were written. */
size_t throttle_blocks(struct throttle *t, time_t now, struct throttle_block_info *out, size_t max);
/* Lift the blocks of `key`: an address (its own block and every account's from it,
 * its failures forgotten) or an account, compared case-insensitively (its blocks from
 * every listed address, its failures and delay forgotten).  Returns how many blocks
 * were lifted (0: nothing blocked under that name). */
size_t throttle_unblock(struct throttle *t, const char *key, time_t now);
/* Slots in use over all tables (never more than 4 * the rounded max_entries). */
size_t throttle_entries(const struct throttle *t);

#endif
