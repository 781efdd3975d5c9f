/* folder_index.c - the per-folder index: MODSEQs (RFC 7162), cached dates, sizes
 * and header blocks, the expunge log for QRESYNC's VANISHED.
 *
 * The index is never the truth: the Maildir (names) and dovecot-uidlist are.  It
 * says what the folder looked like when last seen, so a difference found by a sync
 * (a flag changed by Dovecot, a message gone) gets a new MODSEQ, and a message
 * already seen need not be opened again (date, size, header block).
 *
 * In this process the index of a folder lives once, in its folder_shared record
 * (under its mutex), so every session sees the same MODSEQs.  It is loaded from
 * <folder>/postern-index at first use and written back (temp file + rename) when
 * it changed, at most once a second while in use and when the last view closes.
 * Header blocks go to <folder>/postern-cache (appended; the index holds offsets).
 * A crash can lose the last second of index changes: the next sync finds those
 * flags different from the index and gives them MODSEQs again, above every one
 * handed out before (HIGHESTMODSEQ is written ahead by INDEX_MODSEQ_AHEAD, so a
 * value a client saw is never given to another change).  A file that does not
 * read back (torn, other UIDVALIDITY) is rebuilt from the Maildir. */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fileio.h"

#define INDEX_MAGIC "PSTIDX01"
#define CACHE_FILE "postern-cache"
#define INDEX_MODSEQ_AHEAD 1000        /* written ahead of the real HIGHESTMODSEQ */
#define INDEX_EXPUNGED_MAX 100000      /* expunge log entries kept */
#define CACHE_FILE_MAX (512ull << 20)  /* header blocks cached per folder at most */
#define CACHE_HEADER_MAX (64u << 10)   /* a larger header block is not cached */

#define HAVE_DATE 1u
#define HAVE_SIZE 2u
#define HAVE_HDR 4u

struct index_rec {
	uint32_t uid, flags;
	uint64_t keywords, modseq;
	int64_t date;
	uint64_t size, hdr_off;
	uint32_t hdr_len, have;
};

struct index_gone {
	uint32_t uid, pad;
	uint64_t modseq;
};

struct index_head {
	char magic[8];
	uint32_t uidvalidity, pad;
	uint64_t highestmodseq, gone_floor, n_recs, n_gone;
};

struct folder_index {
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	uint64_t written_ahead;        /* the HIGHESTMODSEQ the file promises */
	uint64_t gone_floor;           /* the log is complete for MODSEQs above this */
	struct index_rec *r;
	size_t n, cap;
	struct index_gone *g;
	size_t ng, capg;
	bool dirty;
	long long last_write;
	int cache_fd;
	uint64_t cache_len;
};

static long long now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

/* --- the file ------------------------------------------------------------------ */

static bool read_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c += r;
		n -= (size_t)r;
	}
	return true;
}

static void load(struct folder_index *x, const char *path, uint32_t uidvalidity)
{
	char p[FOLDER_SUB_LEN];
	snprintf(p, sizeof(p), "%s/%s", path, FOLDER_INDEX_FILE);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	struct index_head h;
	if (fd < 0)
		return;
	bool ok = read_all(fd, &h, sizeof(h)) && memcmp(h.magic, INDEX_MAGIC, 8) == 0 && h.n_recs <= 16000000 &&
		  h.n_gone <= INDEX_EXPUNGED_MAX;
	if (ok) {
		/* MODSEQs only grow, whatever else is thrown away. */
		x->highestmodseq = h.highestmodseq;
		x->written_ahead = h.highestmodseq;
		x->gone_floor = h.highestmodseq;
	}
	if (ok && h.uidvalidity == uidvalidity) {
		x->r = malloc((h.n_recs + 1) * sizeof(*x->r));
		x->g = malloc((h.n_gone + 1) * sizeof(*x->g));
		ok = x->r && x->g && read_all(fd, x->r, h.n_recs * sizeof(*x->r)) &&
		     read_all(fd, x->g, h.n_gone * sizeof(*x->g));
		for (size_t i = 1; ok && i < h.n_recs; i++)
			ok = x->r[i].uid > x->r[i - 1].uid;
		if (ok) {
			x->n = x->cap = h.n_recs;
			x->ng = x->capg = h.n_gone;
			x->gone_floor = h.gone_floor;
		} else {
			free(x->r), free(x->g);
			x->r = NULL, x->g = NULL;
		}
	}
	close(fd);
}

static void save(struct folder_index *x, const char *path)
{
	char p[FOLDER_SUB_LEN], tmp[FOLDER_SUB_LEN + 32];
	snprintf(p, sizeof(p), "%s/%s", path, FOLDER_INDEX_FILE);
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", p, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	struct index_head h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, INDEX_MAGIC, 8);
	h.uidvalidity = x->uidvalidity;
	if (x->written_ahead < x->highestmodseq + 1)
		x->written_ahead = x->highestmodseq + INDEX_MODSEQ_AHEAD;
	h.highestmodseq = x->written_ahead;
	h.gone_floor = x->gone_floor;
	h.n_recs = x->n;
	h.n_gone = x->ng;
	bool ok = fileio_write_all(fd, &h, sizeof(h)) && fileio_write_all(fd, x->r, x->n * sizeof(*x->r)) &&
		  fileio_write_all(fd, x->g, x->ng * sizeof(*x->g));
	close(fd);
	if (ok && rename(tmp, p) == 0) {
		x->dirty = false;
		x->last_write = now_mono();
	} else {
		unlink(tmp);
	}
}

/* The index of f's folder, loaded at first use; with f->shared->mu held. */
static struct folder_index *get(struct folder *f)
{
	struct folder_shared *s = f->shared;
	if (s->index && s->index->uidvalidity == f->uidvalidity)
		return s->index;
	struct folder_index *x = s->index;
	uint64_t keep = 0;
	if (x) {   /* UIDVALIDITY changed under us: start again, MODSEQs still growing */
		keep = x->highestmodseq;
		if (x->cache_fd >= 0)
			close(x->cache_fd);
		free(x->r), free(x->g), free(x);
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->cache_fd = -1;
	load(x, f->path, f->uidvalidity);
	if (x->highestmodseq < keep)
		x->highestmodseq = keep;
	if (x->highestmodseq == 0)
		x->highestmodseq = 1;
	if (x->n == 0) {   /* a new index: any cached header blocks are someone else's */
		char p[FOLDER_SUB_LEN];
		snprintf(p, sizeof(p), "%s/%s", f->path, CACHE_FILE);
		unlink(p);
	}
	x->uidvalidity = f->uidvalidity;
	s->index = x;
	s->index_gen++;
	return x;
}

static struct index_rec *find(struct folder_index *x, uint32_t uid)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->r[mid].uid == uid)
			return &x->r[mid];
		if (x->r[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void log_gone(struct folder_index *x, uint32_t uid, uint64_t modseq)
{
	if (x->ng == INDEX_EXPUNGED_MAX) {   /* the oldest half goes; the log says so */
		size_t drop = x->ng / 2;
		x->gone_floor = x->g[drop - 1].modseq;
		memmove(x->g, x->g + drop, (x->ng - drop) * sizeof(*x->g));
		x->ng -= drop;
	}
	if (x->ng == x->capg) {
		size_t cap = x->capg ? x->capg * 2 : 64;
		struct index_gone *g = realloc(x->g, cap * sizeof(*g));
		if (!g)
			return;
		x->g = g;
		x->capg = cap;
	}
	x->g[x->ng++] = (struct index_gone){ uid, 0, modseq };
}

/* Written now when due (once a second), or at once when the MODSEQs the file
 * promises are about to run out. */
static void maybe_save(struct folder_index *x, const char *path)
{
	if (x->dirty && (now_mono() - x->last_write >= 1 || x->highestmodseq >= x->written_ahead))
		save(x, path);
}

/* --- what the view asks ---------------------------------------------------------- */

/* Copy what the record knows into message m; a differing flag set is a change. */
static bool apply(struct index_rec *r, struct folder_msg *m, atomic_uchar *lazy, uint64_t modseq_now)
{
	bool changed = r->flags != (m->flags & FOLDER_STORABLE) || r->keywords != m->keywords;
	if (changed) {
		r->flags = m->flags & FOLDER_STORABLE;
		r->keywords = m->keywords;
		r->modseq = modseq_now;
	}
	m->modseq = r->modseq;
	if (r->have & HAVE_DATE) {
		m->internaldate = (time_t)r->date;
		*lazy &= (uint8_t)~LAZY_DATE;
	}
	if (r->have & HAVE_SIZE) {
		m->size = r->size;
		*lazy &= (uint8_t)~LAZY_SIZE;
	}
	return changed;
}

void folder_index_sync(struct folder *f, struct folder_msg *m, atomic_uchar *lazy, size_t n)
{
	struct folder_index *x = get(f);
	if (!x) {
		for (size_t i = 0; i < n; i++)
			m[i].modseq = 1;
		return;
	}
	uint64_t next = x->highestmodseq + 1;   /* one MODSEQ for everything this sync found */
	bool used = false;
	struct index_rec *out = malloc((n + 1) * sizeof(*out));
	if (!out)
		return;
	size_t j = 0, k = 0;
	for (size_t i = 0; i < n; i++) {
		for (; j < x->n && x->r[j].uid < m[i].uid; j++) {
			log_gone(x, x->r[j].uid, next);
			used = true;
		}
		if (j < x->n && x->r[j].uid == m[i].uid) {
			out[k] = x->r[j++];
			used |= apply(&out[k], &m[i], &lazy[i], next);
		} else {
			out[k] = (struct index_rec){ .uid = m[i].uid, .flags = m[i].flags & FOLDER_STORABLE,
				.keywords = m[i].keywords, .modseq = next };
			m[i].modseq = next;
			used = true;
		}
		k++;
	}
	for (; j < x->n; j++) {
		log_gone(x, x->r[j].uid, next);
		used = true;
	}
	free(x->r);
	x->r = out;
	x->n = x->cap = k;
	if (used) {
		x->highestmodseq = next;
		x->dirty = true;
		f->shared->index_gen++;
	}
	f->highestmodseq = x->highestmodseq;
	maybe_save(x, f->path);
}

uint64_t folder_index_store(struct folder *f, const struct folder_msg *m)
{
	struct folder_index *x = get(f);
	f->shared->index_gen++;   /* a base built before shows the old flags */
	if (!x)
		return ++f->highestmodseq;
	struct index_rec *r = find(x, m->uid);
	uint64_t modseq = ++x->highestmodseq;
	if (r) {
		r->flags = m->flags & FOLDER_STORABLE;
		r->keywords = m->keywords;
		r->modseq = modseq;
	}
	x->dirty = true;
	f->highestmodseq = modseq;
	maybe_save(x, f->path);
	return modseq;
}

void folder_index_note(struct folder *f, const struct folder_msg *m, uint8_t lazy)
{
	pthread_mutex_lock(&f->shared->mu);
	struct folder_index *x = get(f);
	struct index_rec *r = x ? find(x, m->uid) : NULL;
	if (r) {
		if (!(lazy & LAZY_DATE)) {
			r->date = (int64_t)m->internaldate;
			r->have |= HAVE_DATE;
		}
		if (!(lazy & LAZY_SIZE)) {
			r->size = m->size;
			r->have |= HAVE_SIZE;
		}
		x->dirty = true;
	}
	pthread_mutex_unlock(&f->shared->mu);
}

bool folder_index_header(struct folder *f, size_t i, char **hdr, size_t *len)
{
	pthread_mutex_lock(&f->shared->mu);
	struct folder_index *x = get(f);
	struct index_rec *r = x ? find(x, folder_msg_peek(f, i)->uid) : NULL;
	bool ok = false;
	if (r && (r->have & HAVE_HDR) && x->cache_fd < 0) {
		char p[FOLDER_SUB_LEN];
		snprintf(p, sizeof(p), "%s/%s", f->path, CACHE_FILE);
		x->cache_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		x->cache_len = x->cache_fd >= 0 ? (uint64_t)lseek(x->cache_fd, 0, SEEK_END) : 0;
	}
	if (r && (r->have & HAVE_HDR) && x->cache_fd >= 0 && r->hdr_off + r->hdr_len <= x->cache_len) {
		char *b = malloc(r->hdr_len + 1);
		if (b && pread(x->cache_fd, b, r->hdr_len, (off_t)r->hdr_off) == (ssize_t)r->hdr_len) {
			b[r->hdr_len] = '\0';
			*hdr = b;
			*len = r->hdr_len;
			ok = true;
		} else {
			free(b);
		}
	}
	pthread_mutex_unlock(&f->shared->mu);
	return ok;
}

void folder_index_cache_header(struct folder *f, size_t i, const char *hdr, size_t len)
{
	if (len > CACHE_HEADER_MAX)
		return;
	pthread_mutex_lock(&f->shared->mu);
	struct folder_index *x = get(f);
	struct index_rec *r = x ? find(x, folder_msg_peek(f, i)->uid) : NULL;
	if (r && x->cache_fd < 0) {
		char p[FOLDER_SUB_LEN];
		snprintf(p, sizeof(p), "%s/%s", f->path, CACHE_FILE);
		x->cache_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		x->cache_len = x->cache_fd >= 0 ? (uint64_t)lseek(x->cache_fd, 0, SEEK_END) : 0;
	}
	if (r && x->cache_fd >= 0 && x->cache_len + len <= CACHE_FILE_MAX &&
	    pwrite(x->cache_fd, hdr, len, (off_t)x->cache_len) == (ssize_t)len) {
		r->hdr_off = x->cache_len;
		r->hdr_len = (uint32_t)len;
		r->have |= HAVE_HDR;
		x->cache_len += len;
		x->dirty = true;
	}
	pthread_mutex_unlock(&f->shared->mu);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

bool folder_vanished_since(struct folder *f, uint64_t modseq, uint32_t **uids, size_t *n, bool *complete)
{
	*uids = NULL;
	*n = 0;
	pthread_mutex_lock(&f->shared->mu);
	struct folder_index *x = get(f);
	bool ok = x != NULL;
	if (x) {
		*complete = modseq >= x->gone_floor;
		size_t cnt = 0;
		for (size_t i = 0; i < x->ng; i++)
			cnt += x->g[i].modseq > modseq;
		*uids = malloc((cnt + 1) * sizeof(uint32_t));
		ok = *uids != NULL;
		for (size_t i = 0; ok && i < x->ng; i++)
			if (x->g[i].modseq > modseq)
				(*uids)[(*n)++] = x->g[i].uid;
	}
	pthread_mutex_unlock(&f->shared->mu);
	if (ok && *n > 1)   /* ascending: the log is in MODSEQ order, not UID order */
		qsort(*uids, *n, sizeof(uint32_t), cmp_u32);
	return ok;
}

void folder_index_open(struct folder *f)
{
	pthread_mutex_lock(&f->shared->mu);
	f->shared->views++;
	pthread_mutex_unlock(&f->shared->mu);
}

void folder_index_close(struct folder *f)
{
	if (!f->shared)
		return;
	pthread_mutex_lock(&f->shared->mu);
	struct folder_index *x = f->shared->index;
	if (f->shared->views)
		f->shared->views--;
	if (x && f->shared->views == 0) {   /* the last view: write and forget */
		if (x->dirty)
			save(x, f->path);
		if (x->cache_fd >= 0)
			close(x->cache_fd);
		free(x->r), free(x->g), free(x);
		f->shared->index = NULL;
	}
	if (f->shared->views == 0) {   /* no view left to share them with: the table and names go too */
		folder_base_release(&f->shared->base);
		folder_snap_release(&f->shared->snap);
	}
	pthread_mutex_unlock(&f->shared->mu);
}
