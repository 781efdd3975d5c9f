/* conncache.c - idle outbound connections and TLS sessions per destination (see
 * conncache.h).  Entries live in two fixed arrays sized at creation (max_total
 * connections, sessions_max sessions), scanned under one mutex: the bounds are small
 * (tens) and a scan of them costs less than the system calls it saves.  Closing is
 * the reaper's job: entries to close go on a list, and the reaper closes them
 * outside the lock.  The reaper waits on an epoll set that holds exactly the idle
 * sockets (added at put, removed at take, by the thread doing it), so a connection in
 * use never wakes it, and a put needs no wake-up: every connection is kept equally
 * long, so the newest expires last and the reaper, awake for an older one, sees it
 * in time; only a reaper with nothing to wait for is woken. */
#include "delivery/conncache.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "net/client.h"

#define FINAL_QUIT_MS 1000   /* at conncache_free: one deadline for every QUIT */

struct idle {
	char key[CONNCACHE_KEY_MAX];
	void *conn;                 /* NULL: a free slot */
	int fd;
	uint64_t since_ms;          /* kept at (monotonic) */
	uint64_t seq;               /* order of keeping (LIFO take, oldest out) */
};

struct kept_session {
	char key[CONNCACHE_KEY_MAX];
	struct net_tls_session *s;  /* NULL: a free slot */
	uint64_t since_ms;
};

struct closing {
	void *conn;
	bool polite;
	struct closing *next;
};

struct conncache {
	struct conncache_opts o;
	pthread_mutex_t lock;
	struct idle *idle;          /* o.max_total slots */
	struct kept_session *sessions;
	struct closing *to_close;
	struct conncache_stats st;
	uint64_t seq;
	uint64_t reaper_wakes_at;   /* when the reaper's poll ends by itself (UINT64_MAX: never) */
	int wake;                   /* eventfd: the reaper looks again */
	int ep;                     /* epoll: the idle sockets and wake (the reaper waits on it) */
	bool stopping;
	bool reaper_started;
	pthread_t reaper;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake_reaper(struct conncache *cc)
{
	uint64_t one = 1;
	if (write(cc->wake, &one, sizeof(one)) < 0)
		return;   /* the counter is full: the reaper is awake anyway */
}

/* Hand conn to the reaper for closing (lock held).  Without memory for the list
 * node it is closed here, without QUIT (a close never blocks). */
static void schedule_close(struct conncache *cc, void *conn, bool polite)
{
	struct closing *c = malloc(sizeof(*c));
	if (!c) {
		cc->o.ops->close(conn, false, 0);
		return;
	}
	*c = (struct closing){ .conn = conn, .polite = polite, .next = cc->to_close };
	cc->to_close = c;
}

static void unwatch(struct conncache *cc, int fd)
{
	epoll_ctl(cc->ep, EPOLL_CTL_DEL, fd, NULL);
}

static void drop_slot(struct conncache *cc, struct idle *e, bool polite)
{
	unwatch(cc, e->fd);
	schedule_close(cc, e->conn, polite);
	e->conn = NULL;
	cc->st.idle--;
}

/* Readable while idle: the peer closed the connection or said something unasked
 * (a 421 before closing, RFC 5321 §3.8). */
static bool peer_spoke(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) != 0;
}

/* --- the reaper ---------------------------------------------------------------- */

/* Close what is on the list, QUIT for the polite ones, all within one deadline
 * (ms from now), outside the lock. */
static void close_list(const struct conncache_ops *ops, struct closing *list, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;
	while (list) {
		struct closing *next = list->next;
		uint64_t now = now_ms();
		unsigned left = now < deadline ? (unsigned)(deadline - now) : 1;
		ops->close(list->conn, list->polite, left);
		free(list);
		list = next;
	}
}

/* Expired entries and those the peer spoke on (fds[0..n): epoll said readable) go
 * to the close list (lock held); returns the milliseconds until the next expiry
 * (-1: nothing idle). */
static int sweep(struct conncache *cc, const int *fds, size_t n)
{
	uint64_t now = now_ms();
	for (size_t i = 0; i < n; i++) {
		/* The fd may have been taken, used, and kept again since the wait began:
		 * ask again now that the entry is idle under the lock. */
		for (unsigned k = 0; k < cc->o.max_total; k++) {
			struct idle *e = &cc->idle[k];
			if (e->conn && e->fd == fds[i] && peer_spoke(e->fd)) {
				drop_slot(cc, e, false);
				cc->st.peer_closed++;
			}
		}
	}
	int next = -1;
	for (unsigned k = 0; k < cc->o.max_total; k++) {
		struct idle *e = &cc->idle[k];
		if (!e->conn)
			continue;
		uint64_t due = e->since_ms + cc->o.idle_ms;
		if (due <= now) {
			drop_slot(cc, e, true);
			cc->st.expired++;
		} else if (next < 0 || due - now < (uint64_t)next) {
			next = (int)(due - now);
		}
	}
	return next;
}

#define REAPER_EVENTS 64

static void *reaper_main(void *arg)
{
	struct conncache *cc = arg;
	int fds[REAPER_EVENTS];
	size_t n = 0;
	pthread_mutex_lock(&cc->lock);
	while (!cc->stopping) {
		int timeout = sweep(cc, fds, n);
		struct closing *list = cc->to_close;
		cc->to_close = NULL;
		cc->reaper_wakes_at = list ? 0 : timeout < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout;
		pthread_mutex_unlock(&cc->lock);
		close_list(cc->o.ops, list, cc->o.quit_ms);
		struct epoll_event ev[REAPER_EVENTS];
		int r = list ? 0 : epoll_wait(cc->ep, ev, REAPER_EVENTS, timeout);   /* after closing: look again at once */
		n = 0;
		for (int i = 0; i < r; i++) {
			if (ev[i].data.fd != cc->wake) {
				fds[n++] = ev[i].data.fd;
				continue;
			}
			uint64_t v;
			if (read(cc->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return NULL;
		}
		pthread_mutex_lock(&cc->lock);
	}
	pthread_mutex_unlock(&cc->lock);
	return NULL;
}

/* --- life ------------------------------------------------------------------------ */

struct conncache *conncache_new(const struct conncache_opts *o, char *err, size_t errlen)
{
	struct conncache *cc = calloc(1, sizeof(*cc));
	if (!cc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cc->o = *o;
	if (cc->o.max_total == 0)
		cc->o.max_total = 1;
	if (cc->o.per_destination == 0)
		cc->o.per_destination = 1;
	cc->idle = calloc(cc->o.max_total, sizeof(*cc->idle));
	cc->sessions = calloc(cc->o.sessions_max ? cc->o.sessions_max : 1, sizeof(*cc->sessions));
	cc->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cc->ep = epoll_create1(EPOLL_CLOEXEC);
	cc->reaper_wakes_at = UINT64_MAX;
	struct epoll_event wev = { .events = EPOLLIN, .data.fd = cc->wake };
	if (!cc->idle || !cc->sessions || cc->wake < 0 || cc->ep < 0 || epoll_ctl(cc->ep, EPOLL_CTL_ADD, cc->wake, &wev) != 0) {
		snprintf(err, errlen, "cannot make the connection cache: %s", !cc->idle || !cc->sessions ? "out of memory"
			: strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&cc->lock, NULL);
	if (pthread_create(&cc->reaper, NULL, reaper_main, cc) != 0) {
		snprintf(err, errlen, "cannot start the connection cache's thread");
		pthread_mutex_destroy(&cc->lock);
		goto fail;
	}
	cc->reaper_started = true;
	return cc;
fail:
	if (cc->wake >= 0)
		close(cc->wake);
	if (cc->ep >= 0)
		close(cc->ep);
	free(cc->idle);
	free(cc->sessions);
	free(cc);
	return NULL;
}

void conncache_free(struct conncache **ccp)
{
	struct conncache *cc = *ccp;
	if (!cc)
		return;
	pthread_mutex_lock(&cc->lock);
	cc->stopping = true;
	pthread_mutex_unlock(&cc->lock);
	wake_reaper(cc);
	if (cc->reaper_started)
		pthread_join(cc->reaper, NULL);
	for (unsigned k = 0; k < cc->o.max_total; k++)
		if (cc->idle[k].conn)
			drop_slot(cc, &cc->idle[k], true);
	close_list(cc->o.ops, cc->to_close, FINAL_QUIT_MS);
	for (unsigned k = 0; k < cc->o.sessions_max; k++)
		net_tls_session_free(&cc->sessions[k].s);
	pthread_mutex_destroy(&cc->lock);
	close(cc->wake);
	close(cc->ep);
	free(cc->idle);
	free(cc->sessions);
	free(cc);
	*ccp = NULL;
}

/* --- keys -------------------------------------------------------------------------- */

void conncache_key(const struct conncache_dest *d, char *out, size_t outsz)
{
	char auth[40] = "-";
	if (d->auth_user) {
		/* The identity and the secret both: a changed password (a reload) must
		 * not reuse a connection logged in with the old one.  Only a digest. */
		unsigned char md[32];
		unsigned mdlen = 0;
		EVP_MD_CTX *x = EVP_MD_CTX_new();
		if (x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) == 1) {
			EVP_DigestUpdate(x, d->auth_user, strlen(d->auth_user) + 1);
			if (d->auth_pass)
				EVP_DigestUpdate(x, d->auth_pass, strlen(d->auth_pass));
			EVP_DigestFinal_ex(x, md, &mdlen);
		}
		EVP_MD_CTX_free(x);
		for (unsigned i = 0; i < 16 && i < mdlen; i++)
			snprintf(auth + 2 * i, sizeof(auth) - 2 * i, "%02x", md[i]);
	}
	snprintf(out, outsz, "%s|%.255s|%u|%s|%s", d->route, d->host, d->port, d->tls ? d->tls : "", auth);
}

/* --- connections --------------------------------------------------------------------- */

void *conncache_take(struct conncache *cc, const char *key)
{
	pthread_mutex_lock(&cc->lock);
	void *conn = NULL;
	bool dropped = false;
	while (!conn) {
		struct idle *best = NULL;
		for (unsigned k = 0; k < cc->o.max_total; k++) {
			struct idle *e = &cc->idle[k];
			if (e->conn && strcmp(e->key, key) == 0 && (!best || e->seq > best->seq))
				best = e;
		}
		if (!best)
			break;
		if (peer_spoke(best->fd)) {
			drop_slot(cc, best, false);
			cc->st.peer_closed++;
			dropped = true;
			continue;
		}
		conn = best->conn;
		best->conn = NULL;
		unwatch(cc, best->fd);
		cc->st.idle--;
		cc->st.taken++;
	}
	pthread_mutex_unlock(&cc->lock);
	if (dropped)
		wake_reaper(cc);
	return conn;
}

/* The oldest idle entry, under key (NULL: any). */
static struct idle *oldest(struct conncache *cc, const char *key, unsigned *count)
{
	struct idle *old = NULL;
	*count = 0;
	for (unsigned k = 0; k < cc->o.max_total; k++) {
		struct idle *e = &cc->idle[k];
		if (!e->conn || (key && strcmp(e->key, key) != 0))
			continue;
		(*count)++;
		if (!old || e->seq < old->seq)
			old = e;
	}
	return old;
}

void conncache_put(struct conncache *cc, const char *key, void *conn)
{
	pthread_mutex_lock(&cc->lock);
	unsigned same = 0, all = 0;
	struct idle *old_same = oldest(cc, key, &same);
	if (cc->o.idle_ms == 0 || cc->stopping) {
		schedule_close(cc, conn, true);
	} else {
		struct idle *slot = NULL;
		if (same >= cc->o.per_destination) {
			slot = old_same;   /* the newest stays: it has the longest to live */
			drop_slot(cc, slot, true);
			cc->st.evicted++;
		}
		for (unsigned k = 0; !slot && k < cc->o.max_total; k++)
			if (!cc->idle[k].conn)
				slot = &cc->idle[k];
		if (!slot) {
			slot = oldest(cc, NULL, &all);
			drop_slot(cc, slot, true);
			cc->st.evicted++;
		}
		snprintf(slot->key, sizeof(slot->key), "%s", key);
		slot->conn = conn;
		slot->fd = cc->o.ops->fd(conn);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = slot->fd };
		epoll_ctl(cc->ep, EPOLL_CTL_ADD, slot->fd, &ev);   /* failing: found at the take or expiry */
		slot->since_ms = now_ms();
		slot->seq = ++cc->seq;
		cc->st.idle++;
		cc->st.kept++;
	}
	/* the newest expires last: only a reaper with nothing to wait for needs waking */
	bool wake = cc->to_close || cc->reaper_wakes_at == UINT64_MAX;
	pthread_mutex_unlock(&cc->lock);
	if (wake)
		wake_reaper(cc);
}

void conncache_discard(struct conncache *cc, void *conn, bool polite)
{
	pthread_mutex_lock(&cc->lock);
	schedule_close(cc, conn, polite);
	pthread_mutex_unlock(&cc->lock);
	wake_reaper(cc);
}

void conncache_stats(struct conncache *cc, struct conncache_stats *st)
{
	pthread_mutex_lock(&cc->lock);
	*st = cc->st;
	pthread_mutex_unlock(&cc->lock);
}

/* --- TLS sessions ---------------------------------------------------------------------- */

void conncache_session_put(struct conncache *cc, const char *key, struct net_tls_session *s)
{
	if (!s)
		return;
	if (cc->o.sessions_max == 0) {
		net_tls_session_free(&s);
		return;
	}
	pthread_mutex_lock(&cc->lock);
	/* the same key's slot (the newer session replaces the older), else a free one,
	 * else the oldest */
	struct kept_session *slot = NULL, *free_slot = NULL, *old = NULL;
	for (unsigned k = 0; k < cc->o.sessions_max && !slot; k++) {
		struct kept_session *e = &cc->sessions[k];
		if (e->s && strcmp(e->key, key) == 0)
			slot = e;
		else if (!e->s && !free_slot)
			free_slot = e;
		else if (e->s && (!old || e->since_ms < old->since_ms))
			old = e;
	}
	if (!slot)
		slot = free_slot ? free_slot : old;
	struct net_tls_session *gone = slot->s;
	snprintf(slot->key, sizeof(slot->key), "%s", key);
	slot->s = s;
	slot->since_ms = now_ms();
	pthread_mutex_unlock(&cc->lock);
	net_tls_session_free(&gone);
}

struct net_tls_session *conncache_session_get(struct conncache *cc, const char *key)
{
	struct net_tls_session *s = NULL, *gone = NULL;
	pthread_mutex_lock(&cc->lock);
	uint64_t now = now_ms();
	for (unsigned k = 0; k < cc->o.sessions_max; k++) {
		struct kept_session *e = &cc->sessions[k];
		if (!e->s || strcmp(e->key, key) != 0)
			continue;
		if (now - e->since_ms > (uint64_t)CONNCACHE_SESSION_AGE * 1000u) {
			gone = e->s;   /* aged out (OpenSSL also refuses one past its own lifetime) */
			e->s = NULL;
		} else {
			s = net_tls_session_ref(e->s);
		}
		break;
	}
	pthread_mutex_unlock(&cc->lock);
	net_tls_session_free(&gone);
	return s;
}
