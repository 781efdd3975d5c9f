/* throttle.h - brute-force throttling of logins that never locks out a whole office.
 *
 * Three counters of recent failures, each forgotten `window` seconds after its last
 * failure:
 *   - per client address: past `ip_limit` failures the address may not try to log
 *     in at all until the block ends (421/454 4.7.0 with the end time);
 *   - per (address, account): past `pair_limit` the same;
 *   - per account, across addresses: never a block (a correct login from another
 *     address must always work), only a growing delay before a *failure* is
 *     answered, which slows guessing spread over many addresses.
 * Success clears the pair's counter.  Memory is bounded: the table holds at most
 * `max_entries`, dropping the oldest.  Pure: the caller passes the time. */
#ifndef POSTERN_AUTH_THROTTLE_H
#define POSTERN_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct throttle_limits {
	unsigned ip_limit;        /* failures from one address before it is blocked */
	unsigned pair_limit;      /* failures for one account from one address */
	unsigned account_delay_after; /* failures for an account before failures are delayed */
	unsigned max_delay_ms;    /* cap of that delay */
	time_t window;            /* seconds a failure is remembered */
	time_t block;             /* seconds a block lasts */
	size_t max_entries;
};

struct throttle;

struct throttle *throttle_new(const struct throttle_limits *l);
void throttle_free(struct throttle **t);

/* May this address try to log in as this account now?  0 = yes; otherwise the time
 * the block ends.  `account` may be NULL (before the user name is known). */
time_t throttle_blocked_until(struct throttle *t, const char *ip, const char *account, time_t now);
/* Record a failure; returns the delay in milliseconds to wait before answering. */
unsigned throttle_failure(struct throttle *t, const char *ip, const char *account, time_t now);
void throttle_success(struct throttle *t, const char *ip, const char *account);

#endif
