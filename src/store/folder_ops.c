/* folder_ops.c - what IMAP does to messages of an open folder: flags (renaming the
 * file: the rename is the commit), keywords (dovecot-keywords, created on demand),
 * expunge, the header block, STATUS. */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store/quota.h"
#include "util/fileio.h"

#define HEADER_MAX (1u << 20)   /* a header block longer than this is cut (and not cached) */

/* --- keywords ------------------------------------------------------------------------ */

static void read_keywords(const char *path, struct keywords *kw)
{
	char p[FOLDER_SUB_LEN], buf[26 * 120];
	snprintf(p, sizeof(p), "%s/%s", path, KEYWORDS_FILE);
	size_t len = 0;
	FILE *fp = fopen(p, "re");
	if (fp) {
		len = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
	}
	keywords_parse(buf, len, kw);
}

int folder_keywords_file_index(const char *path, const char *name, bool create)
{
	if (!keywords_valid_name(name))
		return -1;
	struct folder_shared *sh = folder_shared_get(path);
	char err[256];
	pthread_mutex_lock(&sh->mu);
	struct keywords kw;
	read_keywords(path, &kw);
	int found = -1, free_slot = -1;
	for (int i = 0; i < FOLDER_KEYWORDS_MAX && found < 0; i++) {
		if (kw.names[i] && strcasecmp(kw.names[i], name) == 0)
			found = i;
		else if (!kw.names[i] && free_slot < 0)
			free_slot = i;
	}
	keywords_free(&kw);
	int fd = found < 0 && create && free_slot >= 0 ? dotlock_open(path, KEYWORDS_FILE, err, sizeof(err)) : -1;
	if (fd >= 0) {
		/* Again under the lock: another writer (Dovecot) may have added names. */
		read_keywords(path, &kw);
		free_slot = -1;
		for (int i = 0; i < FOLDER_KEYWORDS_MAX && found < 0; i++) {
			if (kw.names[i] && strcasecmp(kw.names[i], name) == 0)
				found = i;
			else if (!kw.names[i] && free_slot < 0)
				free_slot = i;
		}
		size_t len = 0;
		char *text = NULL;
		if (found < 0 && free_slot >= 0 && (kw.names[free_slot] = strdup(name)) != NULL)
			text = keywords_format(&kw, &len);
		if (text && dotlock_commit(fd, path, KEYWORDS_FILE, text, len, err, sizeof(err))) {
			found = free_slot;
			folder_shared_bump(sh);
		} else if (!text) {
			dotlock_abandon(fd, path, KEYWORDS_FILE);
		}
		free(text);
		keywords_free(&kw);
	}
	pthread_mutex_unlock(&sh->mu);
	return found;
}

int folder_keyword_index(struct folder *f, const char *name, bool create)
{
	if (!keywords_valid_name(name))
		return -1;
	for (int i = 0; i < FOLDER_KEYWORDS_MAX; i++)
		if (f->kw.names[i] && strcasecmp(f->kw.names[i], name) == 0)
			return i;
	int k = folder_keywords_file_index(f->path, name, create && !f->readonly);
	if (k >= 0)
		folder_reload_keywords(f, true);
	return k;
}

/* --- flags ------------------------------------------------------------------------------- */

static bool fsync_cur(struct folder *f)
{
	char cur[FOLDER_SUB_LEN];
	snprintf(cur, sizeof(cur), "%s/cur", f->path);
	return fileio_fsync_dir(cur);
}

void folder_batch_begin(struct folder *f)
{
	f->batch = true;
	f->batch_renamed = false;
}

bool folder_batch_end(struct folder *f)
{
	bool ok = !f->batch_renamed || fsync_cur(f);
	f->batch = f->batch_renamed = false;
	return ok;
}

/* Another session renamed the file since our sync: it changed flags we have not seen.
 * Apply our change (what we add and what we take away, against our view) to the flags
 * its name holds now, not our view's whole set: two sessions storing on one message at
 * once must not undo each other (one +FLAGS (\Deleted), the other -FLAGS (\Seen)). */
static void merge_change(const struct folder_msg *m, const char *current, uint32_t *flags, uint64_t *keywords)
{
	uint32_t had = m->flags & FOLDER_STORABLE, add = *flags & ~had, del = had & ~*flags;
	uint64_t kadd = *keywords & ~m->keywords, kdel = m->keywords & ~*keywords;
	uint32_t now;
	uint64_t know;
	folder_info_flags(current, &now, &know);
	*flags = ((now & FOLDER_STORABLE) | add) & ~del;
	*keywords = (know | kadd) & ~kdel;
}

bool folder_store_flags(struct folder *f, size_t i, uint32_t flags, uint64_t keywords, uint64_t *modseq_out,
	char *err, size_t errsz)
{
	err[0] = '\0';
	if (i >= f->n || f->readonly) {
		snprintf(err, errsz, f->readonly ? "the folder is read-only" : "no such message");
		return false;
	}
	const struct folder_msg *m = folder_msg_peek(f, i);
	flags &= FOLDER_STORABLE;
	keywords &= (1ull << FOLDER_KEYWORDS_MAX) - 1;
	if (modseq_out)
		*modseq_out = m->modseq;
	if ((m->flags & FOLDER_STORABLE) == flags && m->keywords == keywords)
		return true;
	char to_name[FOLDER_PATH_LEN], from[FOLDER_SUB_LEN], to[2 * FOLDER_SUB_LEN];
	if (!folder_name_with_flags(m->filename, flags, keywords, to_name, sizeof(to_name))) {
		snprintf(err, errsz, "file name too long");
		return false;
	}
	/* The view's own entry first (other views share the base and keep the old flags
	 * until their sync tells them): with no memory for it, nothing is renamed. */
	struct folder_own *own = folder_own_get(f, i);
	if (!own) {
		snprintf(err, errsz, "out of memory");
		return false;
	}
	struct folder_msg *om = &own->m;
	m = om;
	pthread_mutex_lock(&f->shared->mu);
	snprintf(from, sizeof(from), "%s/cur/%s", f->path, m->filename);
	snprintf(to, sizeof(to), "%s/cur/%s", f->path, to_name);
	int r = rename(from, to);
	if (r != 0 && errno == ENOENT) {
		/* Renamed by someone else since our sync: find it by its base name. */
		int fd = folder_msg_open(f, i);
		if (fd >= 0) {
			char link[64], real[2 * FOLDER_SUB_LEN];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(link, real, sizeof(real) - 1);
			close(fd);
			if (n > 0) {
				real[n] = '\0';
				const char *base = strrchr(real, '/');
				if (base)
					merge_change(m, base + 1, &flags, &keywords);
				if (base && folder_name_with_flags(base + 1, flags, keywords, to_name, sizeof(to_name))) {
					snprintf(to, sizeof(to), "%s/cur/%s", f->path, to_name);
					r = rename(real, to);
				}
			}
		}
		if (r != 0)
			errno = ENOENT;
	}
	if (r != 0) {
		int e = errno;
		pthread_mutex_unlock(&f->shared->mu);
		if (e != ENOENT)
			snprintf(err, errsz, "cannot rename %s: %s", from, strerror(e));
		return false;
	}
	/* The rename is the commit (atomic; the directory fsync makes it survive a
	 * power cut before the OK is sent). */
	if (f->batch)
		f->batch_renamed = true;
	else
		fsync_cur(f);
	char *dup = strdup(to_name);
	if (dup)
		folder_set_name(f, i, dup);   /* own already exists: cannot fail */
	om->flags = (om->flags & FOLDER_RECENT) | flags;
	om->keywords = keywords;
	om->modseq = folder_index_store(f, om);
	pthread_mutex_unlock(&f->shared->mu);
	folder_shared_bump(f->shared);
	if (modseq_out)
		*modseq_out = om->modseq;
	return true;
}

/* --- expunge ------------------------------------------------------------------------------- */

/* The message was renamed by another program since our sync: remove it under
 * its new name if that still says \Deleted (else it is kept: someone undid it). */
static int unlink_renamed(struct folder *f, size_t i)
{
	int fd = folder_msg_open(f, i);
	if (fd < 0)
		return -1;
	char link[64], real[2 * FOLDER_SUB_LEN];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, real, sizeof(real) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	real[n] = '\0';
	uint32_t flags;
	uint64_t kw;
	const char *base = strrchr(real, '/');
	folder_info_flags(base ? base + 1 : real, &flags, &kw);
	if (!(flags & FOLDER_DELETED)) {
		errno = ENOENT;
		return -1;
	}
	return unlink(real);
}

bool folder_expunge(struct folder *f, const uint32_t *uids, size_t n, size_t *n_removed, char *err, size_t errsz)
{
	err[0] = '\0';
	size_t removed = 0;
	int64_t bytes = 0;
	bool ok = true;
	if (f->readonly) {
		snprintf(err, errsz, "the folder is read-only");
		return false;
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = folder_find_uid(f, uids[k]);
		const struct folder_msg *m = i == (size_t)-1 ? NULL : folder_msg_peek(f, i);
		if (!m || !(m->flags & FOLDER_DELETED))
			continue;
		char p[FOLDER_SUB_LEN];
		snprintf(p, sizeof(p), "%s/cur/%s", f->path, m->filename);
		struct stat st;
		uint64_t size = 0;
		bool have = folder_name_field(m->filename, 'S', &size) || (stat(p, &st) == 0 &&
			(size = (uint64_t)st.st_size, true));
		int r = unlink(p);
		if (r != 0 && errno == ENOENT)
			r = unlink_renamed(f, i);
		if (r == 0) {
			removed++;
			if (have && !quota_name_is_warning(m->filename))
				bytes += (int64_t)size;
		} else if (errno != ENOENT) {
			snprintf(err, errsz, "cannot remove %s: %s", p, strerror(errno));
			ok = false;
		}
	}
	if (removed) {
		char cur[FOLDER_SUB_LEN];
		snprintf(cur, sizeof(cur), "%s/cur", f->path);
		fileio_fsync_dir(cur);
		quota_add(f->root, -bytes, -(int64_t)removed);
		folder_shared_bump(f->shared);
	}
	if (n_removed)
		*n_removed = removed;
	return ok;
}

/* --- headers ------------------------------------------------------------------------------- */

/* Read up to the empty line that ends the header (LF or CRLF). */
static bool read_header(int fd, char **hdr, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *b = malloc(cap + 1);
	while (b) {
		if (n == cap) {
			if (cap >= HEADER_MAX)
				break;
			char *nb = realloc(b, cap * 2 + 1);
			if (!nb) {
				free(b);
				return false;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t from = n > 3 ? n - 3 : 0;
		n += (size_t)r;
		for (size_t k = from; k < n; k++) {
			if (b[k] != '\n')
				continue;
			if ((k == 0) || (k >= 1 && b[k - 1] == '\n') || (k >= 2 && b[k - 1] == '\r' && b[k - 2] == '\n')) {
				n = k + 1;
				goto done;
			}
		}
	}
	if (!b)
		return false;
done:
	b[n] = '\0';
	*hdr = b;
	*len = n;
	return true;
}

bool folder_msg_header(struct folder *f, size_t i, char **hdr, size_t *len)
{
	if (i >= f->n)
		return false;
	if (folder_index_header(f, i, hdr, len))
		return true;
	int fd = folder_msg_open(f, i);
	if (fd < 0)
		return false;
	bool ok = read_header(fd, hdr, len);
	close(fd);
	if (ok)
		folder_index_cache_header(f, i, *hdr, *len);
	return ok;
}

/* --- STATUS ------------------------------------------------------------------------------- */

bool folder_status(const char *root, const char *name, struct folder_status *st, char *err, size_t errsz)
{
	memset(st, 0, sizeof(*st));
	struct folder *f = folder_open(root, name, true, err, errsz);
	if (!f)
		return false;
	st->messages = (uint32_t)f->n;
	st->uidnext = f->uidnext;
	st->uidvalidity = f->uidvalidity;
	st->highestmodseq = f->highestmodseq;
	pthread_mutex_lock(&f->shared->mu);
	uint32_t floor = f->shared->recent_floor;
	pthread_mutex_unlock(&f->shared->mu);
	for (size_t i = 0; i < f->n; i++) {
		folder_msg_fill(f, i, LAZY_SIZE);   /* known from W= or the index almost always */
		const struct folder_msg *m = folder_msg_peek(f, i);
		st->unseen += !(m->flags & FOLDER_SEEN);
		st->recent += m->uid > floor;
		st->size += m->size;
	}
	folder_close(&f);
	return true;
}
