/* folder.c - an open folder: one session's view of a Maildir++ folder, brought up
 * to date by folder_sync (see folder.h).
 *
 * A sync lists cur/ once (after moving new/ there) and reads dovecot-uidlist; it
 * never opens a message.  Files the uidlist does not know get UIDs under the
 * dotlock (the list re-read under it, so two writers never hand out one UID).
 * INTERNALDATE (stat) and RFC822.SIZE (W= in the name or the uidlist, else counted)
 * are filled in when a message is first asked for, or come from the index. */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static long long mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

/* --- matching the uidlist with cur/ ------------------------------------------------ */

static int cmp_name_main(const void *key, const void *elem)
{
	/* Old (version 1) records hold whole names, ":2,<flags>" included. */
	const char *k = key, *e = *(const char *const *)elem;
	size_t kl = folder_name_main_len(k), el = folder_name_main_len(e);
	int c = memcmp(k, e, kl < el ? kl : el);
	return c ? c : (kl < el ? -1 : kl > el);
}

/* rec_file[r] = index into names of record r's file, or -1.  Returns how many of
 * the names no record claims (marked in used[] = false). */
static size_t match_files(const struct uidlist *ul, char **names, size_t n, long *rec_file, bool *used)
{
	memset(used, 0, n * sizeof(bool));
	for (size_t r = 0; r < ul->n; r++) {
		char **hit = n ? bsearch(ul->recs[r].name, names, n, sizeof(char *), cmp_name_main) : NULL;   /* no files: names may be NULL */
		rec_file[r] = -1;
		if (hit && !used[hit - names]) {
			rec_file[r] = hit - names;
			used[hit - names] = true;
		}
	}
	size_t unknown = 0;
	for (size_t i = 0; i < n; i++)
		unknown += !used[i];
	return unknown;
}

static void new_guid(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)(rand() & 0xff);
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

struct unknown_file { const char *name; };
static int cmp_unknown(const void *a, const void *b)
{
	return folder_name_order(((const struct unknown_file *)a)->name, ((const struct unknown_file *)b)->name);
}

/* The records that still have files (the header as it was): a gone file's UID is
 * never reused because nextuid only grows. */
static bool keep_present(const struct uidlist *ul, const long *rf, struct uidlist *kept)
{
	*kept = *ul;
	kept->recs = NULL;
	kept->n = kept->cap = 0;
	kept->hdr_ext = ul->hdr_ext;
	bool ok = true;
	for (size_t r = 0; r < ul->n && ok; r++) {
		if (rf[r] < 0)
			continue;
		const struct uidlist_rec *src = &ul->recs[r];
		ok = uidlist_add(kept, src->uid, src->name, strlen(src->name), src->vsize);
		if (ok && src->ext)
			ok = (kept->recs[kept->n - 1].ext = strdup(src->ext)) != NULL;
		if (ok)
			kept->recs[kept->n - 1].psize = src->psize;
	}
	return ok;
}

/* Under the dotlock: re-read the list, give every unknown file a UID (delivery
 * order), drop records whose file is gone, write it back. */
static bool assign_uids(struct folder *f, char **names, size_t n, struct uidlist *ul, long **rec_file,
	bool *used, char *err, size_t errsz)
{
	int lock = dotlock_open(f->path, UIDLIST_FILE, err, errsz);
	if (lock < 0)
		return false;
	uidlist_free(ul);
	bool exists;
	if (!uidlist_read(f->path, ul, &exists, err, errsz) || !exists) {
		uidlist_free(ul);
		/* Lost or never written: a new UIDVALIDITY (RFC 3501 §2.3.1.1), never the old. */
		ul->version = 3;
		ul->uidvalidity = (uint32_t)time(NULL);
		uint32_t prev = f->shared->last_validity > f->uidvalidity ? f->shared->last_validity : f->uidvalidity;
		if (prev && ul->uidvalidity <= prev)
			ul->uidvalidity = prev + 1;
		ul->nextuid = 1;
	}
	if (!ul->guid[0])
		new_guid(ul->guid);
	long *rf = realloc(*rec_file, (ul->n + n + 1) * sizeof(long));
	struct unknown_file *unk = malloc((n + 1) * sizeof(*unk));
	if (!rf || !unk) {
		free(unk);
		if (rf)
			*rec_file = rf;
		dotlock_abandon(lock, f->path, UIDLIST_FILE);
		snprintf(err, errsz, "out of memory");
		return false;
	}
	*rec_file = rf;
	size_t n_unk = 0;
	match_files(ul, names, n, rf, used);
	for (size_t i = 0; i < n; i++)
		if (!used[i])
			unk[n_unk++].name = names[i];
	qsort(unk, n_unk, sizeof(*unk), cmp_unknown);
	struct uidlist kept;
	bool ok = keep_present(ul, rf, &kept);
	for (size_t k = 0; k < n_unk && ok; k++) {
		const char *nm = unk[k].name;
		uint64_t w = 0;
		folder_name_field(nm, 'W', &w);
		if (kept.nextuid == UINT32_MAX) {
			snprintf(err, errsz, "%s: UIDs exhausted", f->path);
			ok = false;
			break;
		}
		ok = uidlist_add(&kept, kept.nextuid, nm, folder_name_main_len(nm), w);
	}
	free(unk);
	size_t len = 0;
	char *text = ok ? uidlist_format(&kept, &len) : NULL;
	ul->hdr_ext = NULL;
	uidlist_free(ul);
	*ul = kept;
	if (!text) {
		dotlock_abandon(lock, f->path, UIDLIST_FILE);
		if (!err[0])
			snprintf(err, errsz, "out of memory");
		return false;
	}
	ok = dotlock_commit(lock, f->path, UIDLIST_FILE, text, len, err, errsz);
	free(text);
	if (ok) {
		rf = realloc(*rec_file, (ul->n + 1) * sizeof(long));
		if (rf)
			*rec_file = rf;
		match_files(ul, names, n, *rec_file, used);
	}
	return ok;
}

/* --- building the view ---------------------------------------------------------- */

void folder_reload_keywords(struct folder *f, bool force)
{
	char p[FOLDER_SUB_LEN];
	snprintf(p, sizeof(p), "%s/%s", f->path, KEYWORDS_FILE);
	struct folder_stamp st;
	folder_stamp_of(p, &st);
	if (!force && folder_stamp_same(&st, &f->st_kw) && f->st_kw.exists)
		return;
	f->st_kw = st;
	keywords_free(&f->kw);
	FILE *fp = fopen(p, "re");
	if (!fp)
		return;
	char buf[26 * 120];
	size_t len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	keywords_parse(buf, len, &f->kw);
}

/* The stamps now; rescan next time too when one is too fresh to trust (a change in
 * the same clock tick would not move it again). */
static bool take_stamps(struct folder *f, struct folder_stamp st[3])
{
	char p[FOLDER_SUB_LEN];
	snprintf(p, sizeof(p), "%s/%s", f->path, UIDLIST_FILE);
	folder_stamp_of(p, &st[0]);
	snprintf(p, sizeof(p), "%s/cur", f->path);
	folder_stamp_of(p, &st[1]);
	snprintf(p, sizeof(p), "%s/new", f->path);
	folder_stamp_of(p, &st[2]);
	time_t now = time(NULL);
	bool fresh = false;
	for (int i = 0; i < 3; i++)
		fresh |= st[i].exists && now - st[i].mtim.tv_sec <= 1;
	return fresh;
}

static bool stamps_unchanged(const struct folder *f, const struct folder_stamp st[3])
{
	return folder_stamp_same(&st[0], &f->st_uidlist) && folder_stamp_same(&st[1], &f->st_cur) &&
	       folder_stamp_same(&st[2], &f->st_new);
}

/* The full look: new/ moved to cur/, cur/ listed, the uidlist read, unknown files
 * given UIDs.  A new snapshot (the caller's reference), also kept in the shared
 * record, trusted by later views when no stamp was too fresh and nothing was moved or
 * assigned (which would have moved the stamps).  With f->shared->mu held. */
static struct folder_snap *scan(struct folder *f, const struct folder_stamp st[3], uint64_t counter, bool fresh,
	uint32_t *uidnext_before, bool *moved_out, char *err, size_t errsz)
{
	size_t moved = folder_move_new(f->path);
	char **names = NULL;
	size_t n = 0;
	struct uidlist ul = { 0 };
	long *rec_file = NULL;
	bool *used = NULL, exists = false, assigned = false;
	struct folder_snap *snap = NULL;
	if (!folder_list_cur(f->path, &names, &n, err, errsz) || !uidlist_read(f->path, &ul, &exists, err, errsz))
		goto out;
	rec_file = malloc((ul.n + 1) * sizeof(long));
	used = malloc(n + 1);
	if (!rec_file || !used) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	/* UIDs from here on arrived since the last writer: \Recent to the first view. */
	*uidnext_before = exists ? ul.nextuid : 1;
	if (match_files(&ul, names, n, rec_file, used) > 0 || !exists) {
		assigned = true;
		if (!assign_uids(f, names, n, &ul, &rec_file, used, err, errsz))
			goto out;
	}
	if (!(snap = folder_snap_new(&ul, names, rec_file))) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	memcpy(snap->st, st, sizeof(snap->st));
	snap->counter = counter;
	snap->trusted = !fresh && moved == 0 && !assigned;
	/* Kept even when not to be trusted later: a view syncing in this same second to the
	 * same stamps may use it (folder_sync), rather than each of a thousand IDLE sessions
	 * listing cur/ and holding a table of its own after every new message. */
	folder_snap_release(&f->shared->snap);
	f->shared->snap = folder_snap_ref(snap);
	*moved_out = moved > 0;
out:
	free(rec_file);
	free(used);
	folder_free_names(names, n);
	uidlist_free(&ul);
	return snap;
}

bool folder_sync(struct folder *f, const struct folder_changes *ch, char *err, size_t errsz)
{
	err[0] = '\0';
	uint64_t counter = atomic_load(&f->shared->counter);
	struct folder_stamp st[3];
	bool fresh = take_stamps(f, st);
	atomic_store(&f->last_poll, mono_seconds());
	if (!f->rescan && counter == f->counter_seen && stamps_unchanged(f, st))
		return true;
	if (!st[1].exists) {
		snprintf(err, errsz, "%s/cur is gone", f->path);
		errno = ENOENT;
		return false;
	}
	pthread_mutex_lock(&f->shared->mu);
	struct folder_snap *snap = NULL;
	uint32_t uidnext_before = 1;
	bool moved = false;
	if (folder_snap_matches(f->shared->snap, st, counter) ||
	    (fresh && folder_snap_same_moment(f->shared->snap, st, counter))) {
		/* Nothing changed since: no listing, no reading.  A listing of this same second
		 * is as good as ours would be now, and like ours it is looked at again at the
		 * next sync (f->rescan: a change within the stamps' tick would not move them). */
		snap = folder_snap_ref(f->shared->snap);
		uidnext_before = snap->nextuid;
	} else if (!(snap = scan(f, st, counter, fresh, &uidnext_before, &moved, err, errsz))) {
		pthread_mutex_unlock(&f->shared->mu);
		return false;
	}
	folder_reload_keywords(f, false);
	uint32_t validity_was = f->uidvalidity;
	f->uidvalidity = snap->uidvalidity;   /* the index is found by it */
	struct folder_base *base = folder_base_get(f, snap);
	folder_snap_release(&snap);   /* the base holds it */
	pthread_mutex_unlock(&f->shared->mu);
	struct folder_own *own = NULL;
	size_t n_own = 0;
	if (!base || !folder_view_recent(f, base, uidnext_before, &own, &n_own)) {
		folder_base_release(&base);
		f->uidvalidity = validity_was;
		snprintf(err, errsz, "out of memory");
		return false;
	}
	pthread_mutex_lock(&f->shared->mu);
	f->uidnext = base->snap->nextuid;
	if (f->uidvalidity > f->shared->last_validity)
		f->shared->last_validity = f->uidvalidity;
	folder_view_install(f, base, own, n_own, ch);
	f->st_uidlist = st[0];
	f->st_cur = st[1];
	f->st_new = st[2];
	f->rescan = fresh;
	f->counter_seen = counter;
	if (moved)
		folder_shared_bump(f->shared);
	pthread_mutex_unlock(&f->shared->mu);
	return true;
}

/* --- open, close, accessors ------------------------------------------------------ */

struct folder *folder_open(const char *root, const char *name, bool readonly, char *err, size_t errsz)
{
	struct folder *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	char path[FOLDER_PATH_LEN];
	if (!folder_path(root, name, path, sizeof(path))) {
		snprintf(err, errsz, "\"%s\" cannot be a folder name", name);
		free(f);
		errno = ENOENT;
		return NULL;
	}
	if (!(f->path = strdup(path))) {   /* held, not a FOLDER_PATH_LEN array: every IDLE session has one */
		snprintf(err, errsz, "out of memory");
		free(f);
		errno = ENOMEM;
		return NULL;
	}
	f->root = strdup(root);
	f->name = strdup(name);
	f->readonly = readonly;
	f->shared = folder_shared_get(path);
	folder_index_open(f);
	f->rescan = true;
	if (!f->root || !f->name || !folder_exists(root, name)) {
		int e = f->root && f->name ? ENOENT : ENOMEM;
		snprintf(err, errsz, e == ENOENT ? "no folder \"%s\"" : "out of memory", name);
		folder_close(&f);
		errno = e;
		return NULL;
	}
	if (!folder_sync(f, NULL, err, errsz)) {
		int e = errno;
		folder_close(&f);
		errno = e == ENOENT ? ENOENT : EIO;
		return NULL;
	}
	return f;
}

void folder_close(struct folder **fp)
{
	struct folder *f = *fp;
	if (!f)
		return;
	folder_own_free(f->own, f->n_own);
	f->own = NULL;
	f->n_own = 0;
	folder_base_release(&f->base);
	keywords_free(&f->kw);
	folder_index_close(f);
	free(f->path);
	free(f->root);
	free(f->name);
	free(f);
	*fp = NULL;
}

uint32_t folder_uidvalidity(const struct folder *f) { return f->uidvalidity; }
uint32_t folder_uidnext(const struct folder *f) { return f->uidnext; }
uint64_t folder_highestmodseq(const struct folder *f) { return f->highestmodseq; }
const char *folder_name(const struct folder *f) { return f->name; }
bool folder_readonly(const struct folder *f) { return f->readonly; }
size_t folder_count(const struct folder *f) { return f->n; }

/* CRLF size of an LF file: every LF not after a CR adds one. */
bool folder_count_crlf_size(int fd, uint64_t *out)
{
	char buf[65536];
	uint64_t n = 0;
	char prev = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			n += (buf[i] == '\n' && prev != '\r') ? 2 : 1;
			prev = buf[i];
		}
	}
	*out = n;
	return true;
}

size_t folder_find_uid(const struct folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->base->msgs[mid].uid == uid)
			return mid;
		if (f->base->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

int folder_msg_open(struct folder *f, size_t i)
{
	if (i >= f->n)
		return -1;
	const char *filename = folder_msg_peek(f, i)->filename;
	char p[FOLDER_SUB_LEN];
	snprintf(p, sizeof(p), "%s/cur/%s", f->path, filename);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	/* Renamed by another program (flags): find it again by its base name. */
	char **names;
	size_t n;
	char err[256];
	if (!folder_list_cur(f->path, &names, &n, err, sizeof(err)))
		return -1;
	char base[FOLDER_SUB_LEN];
	size_t bl = folder_name_main_len(filename);
	snprintf(base, sizeof(base), "%.*s", (int)bl, filename);
	char **hit = bsearch(base, names, n, sizeof(char *), cmp_name_main);
	if (hit) {
		snprintf(p, sizeof(p), "%s/cur/%s", f->path, *hit);
		fd = open(p, O_RDONLY | O_CLOEXEC);
	}
	folder_free_names(names, n);
	return fd;
}

bool folder_changed_since_sync(const struct folder *f)
{
	if (atomic_load(&f->shared->counter) != f->counter_seen)
		return true;
	long long now = mono_seconds();
	if (now - atomic_load(&((struct folder *)f)->last_poll) < 1)
		return false;
	atomic_store(&((struct folder *)f)->last_poll, now);
	struct folder_stamp st[3];
	take_stamps((struct folder *)f, st);
	return f->rescan || !stamps_unchanged(f, st);
}

const char *folder_keyword_name(const struct folder *f, int i)
{
	return i >= 0 && i < FOLDER_KEYWORDS_MAX ? f->kw.names[i] : NULL;
}

int folder_keyword_count(const struct folder *f)
{
	int n = 0;
	for (int i = 0; i < FOLDER_KEYWORDS_MAX; i++)
		if (f->kw.names[i])
			n = i + 1;
	return n;
}
