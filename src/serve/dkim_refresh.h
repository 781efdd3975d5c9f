/* dkim_refresh.h - the signer's DKIM keys from the PostgreSQL directory: serve/ joins
 * the directory (where the keys live, table postern_dkim_keys) and mailauth/'s key
 * cache (which signs), which never see each other. */
#ifndef POSTERN_SERVE_DKIM_REFRESH_H
#define POSTERN_SERVE_DKIM_REFRESH_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct dkim_key_cache;
struct dkim_refresh;

/* With [directory] backend = postgresql: the cache signs from the directory's keys
 * only, read now (before the first message) and then again whenever their version
 * moves, asked every DKIM_REFRESH_MS on a thread of its own (never the event loop, never
 * the signing threads).  The database away: the last keys read go on signing, and the
 * log says so once a minute.  Other backends: *out = NULL, the files sign.  false only
 * when the thread cannot start. */
bool dkim_refresh_start(struct dkim_refresh **out, struct dkim_key_cache *cache, const struct conf *cf, char *err,
	size_t errsz);
void dkim_refresh_stop(struct dkim_refresh **r);

#endif
