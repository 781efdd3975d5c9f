/* deadline.c - how long a client may take, whatever it sends.
 *
 * The idle timeout (a bufferevent timeout) restarts with every byte, so a client
 * that trickles one byte every few seconds would hold its connection slot for ever.
 * These deadlines do not restart:
 *
 *   line        a command line, from its first byte to its end     [limits] line_timeout
 *   data rate   DATA / a BDAT chunk: after data_rate_grace, the average since the
 *               content began must reach data_min_rate octets per second
 *   login       submission and POP3: from connecting to logging in   login_timeout
 *               (clients in trusted_networks need not log in and are exempt)
 *   session     the whole connection                                 session_timeout
 *   handshake   a TLS handshake (implicit, or after STARTTLS/STLS)   tls_handshake_timeout
 *
 * One timer per connection is set to the earliest deadline after each batch of
 * input (deadline_update).  When it fires the deadline is checked again; one that
 * has passed ends the session with the protocol's own words (SMTP 421 4.4.2,
 * POP3 -ERR) and a log line; a handshake cannot be answered in plaintext and is
 * just closed (conn.c acts on what deadline_passed returns).  While the server
 * itself keeps the client waiting (a commit, a login check, a mailbox being
 * opened) nothing expires: the check is retried. */
#include "net/internal.h"

#include <event2/event.h>
#include <time.h>

#include "util/log.h"

#define RETRY_MS 1000   /* our own work in progress: look again after this */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *kind_name(enum deadline_kind k)
{
	switch (k) {
	case DEADLINE_LINE: return "line";
	case DEADLINE_DATA_RATE: return "data_rate";
	case DEADLINE_LOGIN: return "login";
	case DEADLINE_SESSION: return "session";
	case DEADLINE_TLS: return "tls_handshake";
	case DEADLINE_NONE: break;
	}
	return "none";
}

/* The limit quoted to the client and in the log: seconds, or octets per second. */
static unsigned long long kind_limit(const struct conf *cf, enum deadline_kind k)
{
	switch (k) {
	case DEADLINE_LINE: return cf->line_timeout;
	case DEADLINE_DATA_RATE: return cf->data_min_rate;
	case DEADLINE_LOGIN: return cf->login_timeout;
	case DEADLINE_SESSION: return cf->session_timeout;
	case DEADLINE_TLS: return cf->tls_handshake_timeout;
	case DEADLINE_NONE: break;
	}
	return 0;
}

static bool login_expected(const struct conn *c)
{
	return c->listener->role != ROLE_MX && c->listener->role != ROLE_LMTP && !c->trusted;   /* lmtp: a node token, no login */
}

/* Content so far must average data_min_rate: with b octets received, the rate
 * falls below it at b / rate seconds after the start, never before the grace. */
static uint64_t data_due(const struct conn *c, const struct conf *cf)
{
	uint64_t grace = cf->data_rate_grace * 1000u;
	uint64_t need = c->data_bytes * 1000u / cf->data_min_rate;
	return c->data_since + (need > grace ? need : grace);
}

static void consider(enum deadline_kind k, uint64_t due, enum deadline_kind *best, uint64_t *best_due)
{
	if (due < *best_due) {
		*best_due = due;
		*best = k;
	}
}

/* The earliest deadline that applies now, and when it falls. */
static enum deadline_kind earliest(struct conn *c, uint64_t now, uint64_t *due)
{
	const struct conf *cf = c->net->conf;
	enum deadline_kind best = DEADLINE_SESSION;
	*due = c->since + cf->session_timeout * 1000u;
	if (c->tls_pending) {
		if (!c->tls_since)
			c->tls_since = now;
		consider(DEADLINE_TLS, c->tls_since + cf->tls_handshake_timeout * 1000u, &best, due);
	} else {
		c->tls_since = 0;
	}
	if (!c->session)
		return best;
	if (login_expected(c) && !c->ops->login(c->session))
		consider(DEADLINE_LOGIN, c->since + cf->login_timeout * 1000u, &best, due);
	if (c->ops->line_pending(c->session)) {
		if (!c->line_since)
			c->line_since = now;
		consider(DEADLINE_LINE, c->line_since + cf->line_timeout * 1000u, &best, due);
	} else {
		c->line_since = 0;
	}
	if (c->ops->in_data && c->ops->in_data(c->session) && cf->data_min_rate) {
		if (!c->data_since) {
			c->data_since = now;
			c->data_bytes = 0;
		}
		consider(DEADLINE_DATA_RATE, data_due(c, cf), &best, due);
	} else {
		c->data_since = 0;
	}
	return best;
}

static void arm(struct conn *c, uint64_t now, uint64_t due)
{
	uint64_t ms = due > now ? due - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };
	evtimer_add(c->deadline, &tv);
}

/* The server itself keeps the client waiting, or the session is ending anyway.  (A
 * client that does not read our replies is not waited for: the session deadline
 * also bounds a slow reader.) */
static bool not_the_clients_turn(const struct conn *c)
{
	return c->busy || c->ops->waiting(c->session) || c->ops->wants_close(c->session);
}

/* Log the deadline that passed; the caller (conn.c) ends the session. */
static void expired(struct conn *c, enum deadline_kind k, unsigned long long limit)
{
	log_event(LOG_WARN, "deadline", "conn=%llu client=%s listener=%s kind=%s limit=%llu%s",
		(unsigned long long)c->id, c->addr, c->listener->name, kind_name(k), limit,
		k == DEADLINE_DATA_RATE ? " unit=octets_per_second" : " unit=seconds");
}

enum deadline_kind deadline_passed(struct conn *c, unsigned long long *limit)
{
	if (c->closed || c->tls_failed)
		return DEADLINE_NONE;
	uint64_t now = now_ms(), due;
	enum deadline_kind k = earliest(c, now, &due);
	if (due > now) {
		arm(c, now, due);
		return DEADLINE_NONE;
	}
	if (c->session && not_the_clients_turn(c)) {
		arm(c, now, now + RETRY_MS);
		return DEADLINE_NONE;
	}
	*limit = kind_limit(c->net->conf, k);
	expired(c, k, *limit);
	return k;
}

bool deadline_start(struct conn *c, event_callback_fn fired)
{
	c->since = now_ms();
	c->deadline = evtimer_new(c->net->base, fired, c);
	if (!c->deadline)
		return false;
	deadline_update(c);
	return true;
}

void deadline_update(struct conn *c)
{
	if (!c->deadline || c->closed)
		return;
	uint64_t now = now_ms(), due;
	earliest(c, now, &due);
	arm(c, now, due);
}

void deadline_fed(struct conn *c, bool in_data, size_t n)
{
	if (in_data)
		c->data_bytes += n;
}

void deadline_stop(struct conn *c)
{
	if (c->deadline) {
		event_free(c->deadline);
		c->deadline = NULL;
	}
}
