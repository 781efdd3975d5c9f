/* remote.h - delivery to other domains: by MX (RFC 5321 §5.1: each MX in
 * preference order, each of its addresses, the next one when a server cannot be
 * reached or refuses the connection) or through the configured smarthost, with
 * opportunistic STARTTLS, idle connections reused from the shared cache
 * (conncache.h) and TLS sessions resumed.  One remote_ctx per delivery thread. */
#ifndef POSTERN_DELIVERY_REMOTE_H
#define POSTERN_DELIVERY_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery/smtp_client.h"

struct conf;
struct queue_message;
struct remote_ctx;

struct relay_credentials {
	char user[320];
	char pass[512];
	bool set;
};

/* Read "user password" from the smarthost credentials file (before dropping root);
 * refuses a file that others may read. */
bool relay_credentials_load(const char *path, struct relay_credentials *rc, char *err, size_t errlen);

struct net_cancel;
struct dnssec_gate;
/* cancel (may be NULL): when fired, a transaction in progress stops at once.
 * dnssec (may be NULL: the configured anchor as is) says whether the resolver
 * validates; asking it may probe the resolver path first (delivery/dnssec.h). */
struct remote_ctx *remote_ctx_new(const struct conf *c, const struct relay_credentials *creds,
	const struct net_cancel *cancel, struct dnssec_gate *dnssec, char *err, size_t errlen);
/* The DNSSEC gate changed its mind (or wants to ask again): make a new context. */
bool remote_ctx_stale(const struct remote_ctx *rc);
void remote_ctx_free(struct remote_ctx **rc);
/* Deliver m to recipients idx[0..n), all in `domain`.  results[k] for idx[k]. */
void remote_deliver(struct remote_ctx *rc, const struct queue_message *m, const char *domain,
	const size_t *idx, size_t n, struct rcpt_result *results);
/* cb(arg, "mx1.example.org[192.0.2.25]:25") each time a message goes to a server
 * (a new connection or a kept one), from the delivering thread. */
void remote_ctx_on_host(struct remote_ctx *rc, void (*cb)(void *arg, const char *host), void *arg);
/* The thread is going idle (kept for callers: idle connections are the shared
 * cache's, closed when their idle time passes, so nothing is left to do). */
void remote_idle(struct remote_ctx *rc);

/* The connection cache every delivery thread shares (conncache.h), sized by
 * [delivery] connection_cache_*; NULL on failure (err says): then none is kept. */
struct conncache;
struct conncache *remote_conncache_new(const struct conf *c, char *err, size_t errlen);
/* Keep connections in cache (NULL: close each after its message). */
void remote_ctx_set_cache(struct remote_ctx *rc, struct conncache *cache);

#endif
