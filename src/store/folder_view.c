/* folder_view.c - what a view of a folder holds, and what it shares with the other
 * views of the same folder in this process.
 *
 * A thousand sessions IDLE on one 10,000-message INBOX must not hold a thousand copies
 * of its message table (48 octets a message).  So the table (struct folder_base: UID,
 * flags, MODSEQ, keywords, date, size and file name of every message) is built once
 * for a snapshot of the folder (folder_snap.c), published in the folder's shared record
 * and shared, read-only, by every view synced to that snapshot; a view holds only a
 * reference and a short sorted list of its own entries (struct folder_own) where it
 * differs from the base:
 *   - \Recent (RFC 3501 §2.3.2): a message is recent in exactly one session, so the
 *     flag cannot live in a shared table; the session that claimed it holds a copy;
 *   - flags this session stored since its last sync: the file was renamed (the new
 *     name owned by the entry), the index already has the new MODSEQ, and the other
 *     sessions still show the old flags until they sync and are told (FETCH FLAGS).
 * A sync finds (or builds) the base for the folder as it is now, makes the view's
 * \Recent entries again and reports the differences between the old view (old base +
 * own entries) and the new one in IMAP order, exactly as when every view had its own
 * table.  Sequence numbers are positions in the base, so an expunge the session has not
 * been told of stays in its view (its old base) until its next sync.
 *
 * A date or size not known at build time (no W=, nothing in the index) is filled in on
 * first use: into the base under its fill_mu (every view may use it; the lazy bit is
 * cleared after the fields are written, with release order), or into the own entry. */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- bases ------------------------------------------------------------------------ */

static uint64_t known_keywords(const struct folder *f)
{
	uint64_t m = 0;
	for (int i = 0; i < FOLDER_KEYWORDS_MAX; i++)
		if (f->kw.names[i])
			m |= 1ull << i;
	return m;
}

static void base_free(struct folder_base *b)
{
	folder_snap_release(&b->snap);
	pthread_mutex_destroy(&b->fill_mu);
	free(b->msgs);
	free(b->lazy);
	free(b);
}

void folder_base_release(struct folder_base **bp)
{
	struct folder_base *b = *bp;
	*bp = NULL;
	if (b && atomic_fetch_sub(&b->refs, 1) == 1)
		base_free(b);
}

/* The table of snap's messages: flags and keywords from the names, sizes from the
 * uidlist or the name (W=); MODSEQs and the rest from the index (the caller). */
static struct folder_base *base_build(struct folder_snap *snap, uint64_t kwmask)
{
	size_t n = snap->n;
	struct folder_base *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->msgs = calloc(n + 1, sizeof(*b->msgs));
	b->lazy = calloc(n + 1, sizeof(*b->lazy));
	if (!b->msgs || !b->lazy) {
		free(b->msgs);
		free(b->lazy);
		free(b);
		return NULL;
	}
	atomic_init(&b->refs, 1);
	pthread_mutex_init(&b->fill_mu, NULL);
	b->snap = folder_snap_ref(snap);
	b->kwmask = kwmask;
	b->n = n;
	for (size_t k = 0; k < n; k++) {
		struct folder_msg *m = &b->msgs[k];
		const char *nm = snap->msgs[k].name;
		uint8_t lazy = LAZY_DATE;
		m->uid = snap->msgs[k].uid;
		folder_info_flags(nm, &m->flags, &m->keywords);
		m->flags &= ~FOLDER_RECENT;
		m->keywords &= kwmask;
		m->filename = nm;
		uint64_t w = snap->msgs[k].vsize;
		if (w || folder_name_field(nm, 'W', &w))
			m->size = w;
		else
			lazy |= LAZY_SIZE;
		atomic_init(&b->lazy[k], lazy);
	}
	return b;
}

struct folder_base *folder_base_get(struct folder *f, struct folder_snap *snap)
{
	struct folder_shared *sh = f->shared;
	uint64_t kwmask = known_keywords(f);
	struct folder_base *b = sh->base;
	if (b && b->snap == snap && b->index_gen == sh->index_gen && b->kwmask == kwmask) {
		/* nothing changed since it was built: no table, no index walk */
		atomic_fetch_add(&b->refs, 1);
		f->highestmodseq = b->highestmodseq;
		return b;
	}
	if (!(b = base_build(snap, kwmask)))
		return NULL;
	folder_index_sync(f, b->msgs, b->lazy, b->n);
	b->highestmodseq = f->highestmodseq;
	b->index_gen = sh->index_gen;
	if (snap == sh->snap) {
		folder_base_release(&sh->base);
		atomic_fetch_add(&b->refs, 1);
		sh->base = b;
	}
	return b;
}

/* --- own entries ------------------------------------------------------------------ */

struct folder_own *folder_own_find(const struct folder *f, size_t i)
{
	size_t lo = 0, hi = f->n_own;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->own[mid].i == i)
			return &f->own[mid];
		if (f->own[mid].i < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A copy of base message i as an own entry (the name still the base's). */
static struct folder_own own_from_base(struct folder_base *b, size_t i)
{
	struct folder_own o = { .i = i };
	pthread_mutex_lock(&b->fill_mu);   /* a date or size being filled in by another view */
	o.m = b->msgs[i];
	o.lazy = atomic_load_explicit(&b->lazy[i], memory_order_relaxed);
	pthread_mutex_unlock(&b->fill_mu);
	return o;
}

struct folder_own *folder_own_get(struct folder *f, size_t i)
{
	struct folder_own *o = folder_own_find(f, i);
	if (o || i >= f->n)
		return o;
	if (f->n_own == f->cap_own) {
		size_t cap = f->cap_own ? f->cap_own * 2 : 8;
		struct folder_own *v = realloc(f->own, cap * sizeof(*v));
		if (!v)
			return NULL;
		f->own = v;
		f->cap_own = cap;
	}
	size_t at = f->n_own;   /* STORE walks up: almost always the end */
	while (at > 0 && f->own[at - 1].i > i)
		at--;
	memmove(&f->own[at + 1], &f->own[at], (f->n_own - at) * sizeof(*f->own));
	f->own[at] = own_from_base(f->base, i);
	f->n_own++;
	return &f->own[at];
}

void folder_own_free(struct folder_own *own, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (own[k].lazy & VIEW_OWN_NAME)
			free((char *)own[k].m.filename);
	free(own);
}

bool folder_set_name(struct folder *f, size_t i, char *name)
{
	struct folder_own *o = folder_own_get(f, i);
	if (!o) {
		free(name);
		return false;
	}
	if (o->lazy & VIEW_OWN_NAME)
		free((char *)o->m.filename);
	o->m.filename = name;
	o->lazy |= VIEW_OWN_NAME;
	return true;
}

/* --- the message as a view shows it -------------------------------------------------- */

const struct folder_msg *folder_msg_peek(const struct folder *f, size_t i)
{
	if (i >= f->n)
		return NULL;
	if (f->n_own) {
		const struct folder_own *o = folder_own_find(f, i);
		if (o)
			return &o->m;
	}
	return &f->base->msgs[i];
}

const struct folder_msg *folder_msg(const struct folder *cf, size_t i)
{
	if (i >= cf->n)
		return NULL;
	/* Logically const: one thread per view, and the base is filled under its lock. */
	folder_msg_fill((struct folder *)cf, i, LAZY_DATE | LAZY_SIZE);
	return folder_msg_peek(cf, i);
}

/* Date by stat (no message opened for it), size by counting only when neither the
 * name, the uidlist nor the index knew it.  Returns the LAZY_* bits found. */
static uint8_t find_lazy(struct folder *f, size_t i, const char *filename, uint8_t lazy, time_t *date,
	uint64_t *size)
{
	char p[FOLDER_SUB_LEN];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/cur/%s", f->path, filename);
	bool have = stat(p, &sb) == 0;
	int fd = -1;
	uint8_t got = 0;
	if (!have || (lazy & LAZY_SIZE)) {
		fd = folder_msg_open(f, i);   /* also finds a file renamed by another program */
		have = fd >= 0 && fstat(fd, &sb) == 0;
	}
	if (have) {
		*date = sb.st_mtime;
		got |= LAZY_DATE;
		if (fd >= 0 && (lazy & LAZY_SIZE) && folder_count_crlf_size(fd, size))
			got |= LAZY_SIZE;
	}
	if (fd >= 0)
		close(fd);
	return got & lazy;
}

void folder_msg_fill(struct folder *f, size_t i, uint8_t want)
{
	if (i >= f->n)
		return;
	struct folder_own *o = f->n_own ? folder_own_find(f, i) : NULL;
	struct folder_base *b = f->base;
	uint8_t lazy = o ? o->lazy : atomic_load_explicit(&b->lazy[i], memory_order_acquire);
	lazy &= LAZY_DATE | LAZY_SIZE;
	if (!(lazy & want))
		return;
	time_t date = 0;
	uint64_t size = 0;
	uint8_t got = find_lazy(f, i, o ? o->m.filename : b->msgs[i].filename, lazy, &date, &size);
	if (!got)
		return;
	struct folder_msg *m = o ? &o->m : &b->msgs[i];
	if (!o) {
		pthread_mutex_lock(&b->fill_mu);
		got &= atomic_load_explicit(&b->lazy[i], memory_order_relaxed);   /* another view may have been first */
	}
	if (got & LAZY_DATE)
		m->internaldate = date;
	if (got & LAZY_SIZE)
		m->size = size;
	if (o) {
		o->lazy &= (uint8_t)~got;
		lazy = o->lazy;
	} else {
		lazy = (uint8_t)(atomic_load_explicit(&b->lazy[i], memory_order_relaxed) & ~got);
		atomic_store_explicit(&b->lazy[i], lazy, memory_order_release);
		pthread_mutex_unlock(&b->fill_mu);
	}
	if (got)
		folder_index_note(f, m, lazy);
}

/* --- a sync's new view -------------------------------------------------------------- */

static size_t base_find_uid(const struct folder_base *b, uint32_t uid)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->msgs[mid].uid == uid)
			return mid;
		if (b->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

/* The first index whose UID is above uid. */
static size_t base_above(const struct folder_base *b, uint32_t uid)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->msgs[mid].uid <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t claim_floor(struct folder *f, struct folder_base *base, uint32_t uidnext_before)
{
	pthread_mutex_lock(&f->shared->mu);
	if (!f->shared->recent_known) {
		/* First view in this process: what was new before this sync's arrivals is
		 * not recent to anyone any more (a restart forgets who saw what). */
		f->shared->recent_floor = uidnext_before ? uidnext_before - 1 : 0;
		f->shared->recent_known = true;
	}
	uint32_t floor = f->shared->recent_floor;
	if (!f->readonly && base->n && base->msgs[base->n - 1].uid > floor)
		f->shared->recent_floor = base->msgs[base->n - 1].uid;
	pthread_mutex_unlock(&f->shared->mu);
	return floor;
}

bool folder_view_recent(struct folder *f, struct folder_base *base, uint32_t uidnext_before,
	struct folder_own **own_out, size_t *n_out)
{
	uint32_t floor = claim_floor(f, base, uidnext_before);
	size_t from = f->readonly ? base->n : base_above(base, floor);
	size_t kept = 0;
	for (size_t k = 0; k < f->n_own; k++)
		kept += (f->own[k].m.flags & FOLDER_RECENT) != 0;
	size_t cap = kept + (base->n - from);
	struct folder_own *own = malloc((cap + 1) * sizeof(*own));
	if (!own)
		return false;
	size_t n = 0;
	/* Ours from before are at or below the floor (we raised it past them), the newly
	 * claimed above it: the list stays sorted. */
	for (size_t k = 0; k < f->n_own; k++) {
		if (!(f->own[k].m.flags & FOLDER_RECENT))
			continue;
		size_t j = base_find_uid(base, f->own[k].m.uid);
		if (j != (size_t)-1 && j < from && (n == 0 || own[n - 1].i < j))
			own[n++] = own_from_base(base, j);
	}
	for (size_t j = from; j < base->n; j++)
		if (n == 0 || own[n - 1].i < j)
			own[n++] = own_from_base(base, j);
	for (size_t k = 0; k < n; k++)
		own[k].m.flags |= FOLDER_RECENT;
	*own_out = own;
	*n_out = n;
	return true;
}

struct view_state {
	const struct folder_base *base;
	const struct folder_own *own;
	size_t n_own;
};

static const struct folder_msg *state_msg(const struct view_state *v, size_t i)
{
	size_t lo = 0, hi = v->n_own;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->own[mid].i == i)
			return &v->own[mid].m;
		if (v->own[mid].i < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &v->base->msgs[i];
}

void folder_view_install(struct folder *f, struct folder_base *base, struct folder_own *own, size_t n_own,
	const struct folder_changes *ch)
{
	size_t on = f->n, n = base->n;
	const struct folder_msg *om = f->base ? f->base->msgs : NULL, *nm = base->msgs;
	struct view_state ov = { f->base, f->own, f->n_own }, nv = { base, own, n_own };
	/* Expunges, highest sequence number first so each number is still right. */
	size_t j = n;
	for (size_t i = on; i-- > 0;) {
		while (j > 0 && nm[j - 1].uid > om[i].uid)
			j--;
		if (!(j > 0 && nm[j - 1].uid == om[i].uid) && ch && ch->expunged)
			ch->expunged(ch->arg, (uint32_t)(i + 1), om[i].uid);
	}
	bool grew = false;
	j = 0;
	for (size_t i = 0; i < n; i++) {
		while (j < on && om[j].uid < nm[i].uid)
			j++;
		if (j < on && om[j].uid == nm[i].uid) {
			if (ch && ch->flags && (om != nm || f->n_own || n_own)) {
				const struct folder_msg *a = state_msg(&ov, j), *b = state_msg(&nv, i);
				if (a->flags != b->flags || a->keywords != b->keywords)
					ch->flags(ch->arg, i + 1);
			}
		} else {
			grew = true;
		}
	}
	if (grew && ch && ch->exists)
		ch->exists(ch->arg, n);
	folder_own_free(f->own, f->n_own);
	folder_base_release(&f->base);
	f->base = base;
	f->own = own;
	f->n_own = f->cap_own = n_own;
	f->n = n;
}
