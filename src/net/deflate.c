/* deflate.c - a raw-deflate (RFC 1951) filter on a connection's byte stream, for
 * a protocol that negotiates compression in band (IMAP COMPRESS=DEFLATE, RFC 4978).
 * It sits above TLS: it compresses the session's replies before they reach the
 * connection's bufferevent (the TLS filter, when there is one) and inflates what
 * that bufferevent received into a bounded buffer the session is fed from.
 *
 * Output: every burst (one conn_flush) ends with Z_SYNC_FLUSH, so the client can
 * decompress each reply as soon as it arrives (RFC 4978 §4: "the server MUST ...
 * flush ... at the end of each response").  Input: inflated at most up to the
 * connection's input bound (the caller's `limit`); what does not fit stays
 * compressed in the bufferevent, whose own read watermark bounds it, so an inflate
 * "bomb" costs CPU at the rate of plaintext input, never memory.
 *
 * Memory (RFC 4978 §4 lets the server pick its deflate window; its inflate must take
 * the client's window, up to 32 KiB): deflate with a 4 KiB window and memLevel 5
 * (16 KiB window + 16 KiB hash and pending buffers + zlib's state), inflate with
 * windowBits 15 (the 32 KiB window is allocated on the first input that needs it).
 * net_deflate_memory() tells what zlib holds: about 77 KiB per idle compressed
 * session (79,056 octets in test_deflate), counted by our own allocator. */
#include "net/internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/log.h"

#define DEFLATE_WINDOW_BITS 12   /* server-to-client: a 4 KiB window (RFC 4978 §4 allows any) */
#define DEFLATE_MEM_LEVEL 5
#define INFLATE_WINDOW_BITS 15   /* client-to-server: whatever window the client chose */
#define CHUNK (16u << 10)        /* octets moved through zlib per step */

struct net_deflate {
	z_stream out;            /* our replies */
	z_stream in;             /* the client's commands */
	bool out_ready, in_ready;
	bool in_full;            /* the last inflate filled its output: zlib may hold more */
	struct evbuffer *plain;  /* inflated input not yet handed to the session */
	size_t zlib_bytes;       /* what zlib allocated through us, still held */
	char error[160];         /* why the input stream broke */
};

/* zlib's allocations, counted (the size rides in front of each block). */
static void *count_alloc(void *opaque, unsigned items, unsigned size)
{
	struct net_deflate *d = opaque;
	size_t n = (size_t)items * size;
	if (size && n / size != items)
		return NULL;
	max_align_t *p = malloc(sizeof(max_align_t) + n);
	if (!p)
		return NULL;
	*(size_t *)(void *)p = n;
	d->zlib_bytes += n;
	return p + 1;
}

static void count_free(void *opaque, void *ptr)
{
	struct net_deflate *d = opaque;
	if (!ptr)
		return;
	max_align_t *p = (max_align_t *)ptr - 1;
	d->zlib_bytes -= *(size_t *)(void *)p;
	free(p);
}

struct net_deflate *net_deflate_new(char *err, size_t errlen)
{
	struct net_deflate *d = calloc(1, sizeof(*d));
	if (!d || !(d->plain = evbuffer_new())) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->out.zalloc = d->in.zalloc = count_alloc;
	d->out.zfree = d->in.zfree = count_free;
	d->out.opaque = d->in.opaque = d;
	/* Negative windowBits: raw deflate, no zlib header or checksum (RFC 4978 §4). */
	int r = deflateInit2(&d->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -DEFLATE_WINDOW_BITS, DEFLATE_MEM_LEVEL,
		Z_DEFAULT_STRATEGY);
	d->out_ready = r == Z_OK;
	if (r == Z_OK) {
		r = inflateInit2(&d->in, -INFLATE_WINDOW_BITS);
		d->in_ready = r == Z_OK;
	}
	if (r != Z_OK) {
		snprintf(err, errlen, "zlib could not start (%s)", r == Z_MEM_ERROR ? "out of memory" : zError(r));
		net_deflate_free(&d);
		return NULL;
	}
	return d;
}

void net_deflate_free(struct net_deflate **dp)
{
	struct net_deflate *d = *dp;
	if (!d)
		return;
	if (d->out_ready)
		deflateEnd(&d->out);
	if (d->in_ready)
		inflateEnd(&d->in);
	if (d->plain)
		evbuffer_free(d->plain);
	free(d);
	*dp = NULL;
}

size_t net_deflate_memory(const struct net_deflate *d)
{
	return d->zlib_bytes + sizeof(*d);
}

struct evbuffer *net_deflate_plain(struct net_deflate *d)
{
	return d->plain;
}

const char *net_deflate_error(const struct net_deflate *d)
{
	return d->error;
}

/* Compress n octets and end them with a sync flush (an empty deflate block that
 * byte-aligns the stream), appending to `to`.  false: zlib failed (no memory). */
bool net_deflate_write(struct net_deflate *d, const void *p, size_t n, struct evbuffer *to)
{
	unsigned char chunk[CHUNK];
	d->out.next_in = (Bytef *)(uintptr_t)p;
	d->out.avail_in = (uInt)n;   /* a session's output is far below 4 GiB */
	do {
		d->out.next_out = chunk;
		d->out.avail_out = sizeof(chunk);
		int r = deflate(&d->out, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return false;
		size_t made = sizeof(chunk) - d->out.avail_out;
		if (made && evbuffer_add(to, chunk, made) != 0)
			return false;
	} while (d->out.avail_out == 0 || d->out.avail_in > 0);
	return true;
}

/* One inflate step from `from` into the plain buffer, at most `room` octets out.
 * Returns the octets produced, 0 when nothing more can be done now, -1 on a broken
 * stream (d->error says why). */
static long inflate_step(struct net_deflate *d, struct evbuffer *from, size_t room)
{
	unsigned char chunk[CHUNK];
	size_t have = evbuffer_get_length(from);
	size_t take = have < CHUNK ? have : CHUNK;
	static unsigned char none;
	unsigned char *src = take ? evbuffer_pullup(from, (ev_ssize_t)take) : &none;
	if (!src)
		return 0;
	d->in.next_in = src;
	d->in.avail_in = (uInt)take;
	d->in.next_out = chunk;
	d->in.avail_out = (uInt)(room < sizeof(chunk) ? room : sizeof(chunk));
	int r = inflate(&d->in, Z_SYNC_FLUSH);
	size_t used = take - d->in.avail_in;
	size_t made = (size_t)(d->in.next_out - chunk);
	d->in_full = d->in.avail_out == 0;
	evbuffer_drain(from, used);
	if (made && evbuffer_add(d->plain, chunk, made) != 0) {
		snprintf(d->error, sizeof(d->error), "out of memory");
		return -1;
	}
	if (r == Z_STREAM_END) {
		snprintf(d->error, sizeof(d->error), "the client ended its compressed stream (a final deflate block)");
		return -1;
	}
	if (r == Z_DATA_ERROR || r == Z_NEED_DICT || r == Z_MEM_ERROR || r == Z_STREAM_ERROR) {
		snprintf(d->error, sizeof(d->error), "%s", d->in.msg ? d->in.msg : zError(r));
		return -1;
	}
	if (made == 0 && used == 0)
		return 0;   /* Z_BUF_ERROR: a partial block; wait for more */
	return made ? (long)made : (used ? 1 : 0);
}

/* Inflate what `from` holds until the plain buffer holds `limit` octets or the input
 * is used up.  false: the stream is broken (net_deflate_error() says why). */
bool net_deflate_read(struct net_deflate *d, struct evbuffer *from, size_t limit)
{
	if (d->error[0])
		return false;
	for (unsigned steps = 0; steps < 1024; steps++) {
		size_t held = evbuffer_get_length(d->plain);
		if (held >= limit || (evbuffer_get_length(from) == 0 && !d->in_full))
			return true;
		long r = inflate_step(d, from, limit - held);
		if (r < 0)
			return false;
		if (r == 0)
			return true;
	}
	return true;   /* bounded work per call; the caller comes back after feeding */
}

/* --- on a connection (net/server.h) ------------------------------------------- */

bool conn_start_deflate(struct conn *c, char *err, size_t errlen)
{
	if (c->deflate) {
		snprintf(err, errlen, "compression is already active");
		return false;
	}
	c->deflate = net_deflate_new(err, errlen);
	if (!c->deflate)
		return false;
	log_event(LOG_INFO, "compress", "conn=%llu client=%s method=deflate memory=%zu",
		(unsigned long long)c->id, c->addr, net_deflate_memory(c->deflate));
	return true;
}

/* conn.c: where the session's input comes from: the bufferevent's, or (compressed)
 * what it held inflated up to limit.  NULL: the stream broke; the session was told
 * (its words go out, then the connection closes) or c was freed: touch neither. */
struct evbuffer *conn_input(struct conn *c, size_t limit)
{
	struct evbuffer *raw = bufferevent_get_input(c->bev);
	if (!c->deflate)
		return raw;
	if (net_deflate_read(c->deflate, raw, limit))
		return net_deflate_plain(c->deflate);
	char why[200];
	log_quote(why, sizeof(why), net_deflate_error(c->deflate), strlen(net_deflate_error(c->deflate)), 160);
	log_event(LOG_WARN, "compress_broken", "conn=%llu client=%s reason=%s", (unsigned long long)c->id, c->addr, why);
	evbuffer_drain(raw, evbuffer_get_length(raw));
	if (!c->ops->input_broken) {
		conn_free(c);
		return NULL;
	}
	c->ops->input_broken(c->session, net_deflate_error(c->deflate));
	conn_flush(c);
	return NULL;
}

/* conn.c: a burst of the session's output onto the wire, compressed when on. */
bool conn_output(struct conn *c, struct evbuffer *ob, const void *p, size_t n)
{
	if (!c->deflate)
		return evbuffer_add(ob, p, n) == 0;
	return net_deflate_write(c->deflate, p, n, ob);
}
