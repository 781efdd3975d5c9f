/* folder_append.c - new messages in a folder: APPEND (RFC 3501 §6.3.11) and COPY
 * (§6.4.7), with the UIDs UIDPLUS reports (RFC 4315).
 *
 * A new file is written into tmp/ (CRLF -> LF, as delivery stores mail), fsync'd,
 * its mtime set to the INTERNALDATE, and renamed into cur/ with its flags: after
 * the rename and the fsync of cur/ it survives a crash.  A copy is a hard link
 * under a new name where the file system allows (Dovecot's default), else written
 * like an APPEND.  The UID is given at once, under the uidlist dotlock; the quota
 * (maildirsize at the mailbox root, all folders together) is checked before the
 * rename and raised after it. */
#include "store/folder_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "store/quota.h"
#include "util/fileio.h"

#define APPEND_CHUNK 16384

static atomic_uint append_counter;

/* "<sec>.M<usec>P<pid>I<n>.<host>" ("I" for IMAP: delivery's names use "Q"). */
static void new_base(char *out, size_t outsz)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	char host[128];
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':' || *p == ',')
			*p = '_';
	snprintf(out, outsz, "%lld.M%06ldP%ldI%u.%s", (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
		atomic_fetch_add(&append_counter, 1), host);
}

/* Give the file cur/<name> its UID now: one record added under the dotlock.  A
 * folder without a uidlist yet is synced once instead (that writes the first list). */
static bool uid_for_file(const char *root, const char *fname, const char *path, const char *name,
	uint32_t *uid, uint32_t *validity, char *err, size_t errsz)
{
	struct folder_shared *sh = folder_shared_get(path);
	pthread_mutex_lock(&sh->mu);
	struct uidlist ul;
	bool exists = false, ok = false;
	int lock = dotlock_open(path, UIDLIST_FILE, err, errsz);
	if (lock >= 0 && uidlist_read(path, &ul, &exists, err, errsz) && exists && ul.guid[0]) {
		*uid = ul.nextuid;
		*validity = ul.uidvalidity;
		/* A sync (ours in another view, or Dovecot's) may have numbered the file
		 * between its rename into cur/ and this lock: then that is its UID. */
		size_t ml = folder_name_main_len(name);
		for (size_t r = ul.n; r-- > 0;)
			if (strlen(ul.recs[r].name) == ml && memcmp(ul.recs[r].name, name, ml) == 0) {
				*uid = ul.recs[r].uid;
				ok = true;
				break;
			}
		size_t len = 0;
		char *text = NULL;
		uint64_t w = 0;
		folder_name_field(name, 'W', &w);
		if (!ok && ul.nextuid < UINT32_MAX && uidlist_add(&ul, ul.nextuid, name, ml, w))
			text = uidlist_format(&ul, &len);
		if (!ok)
			ok = text && dotlock_commit(lock, path, UIDLIST_FILE, text, len, err, errsz);
		else
			dotlock_abandon(lock, path, UIDLIST_FILE);
		if (!text && !ok)
			dotlock_abandon(lock, path, UIDLIST_FILE);
		free(text);
		uidlist_free(&ul);
		lock = -1;
	} else if (lock >= 0) {
		uidlist_free(&ul);
		dotlock_abandon(lock, path, UIDLIST_FILE);
		lock = -1;
	}
	pthread_mutex_unlock(&sh->mu);
	if (ok) {
		folder_shared_bump(sh);
		return true;
	}
	if (exists || err[0])
		return false;
	struct folder *f = folder_open(root, fname, true, err, errsz);
	if (!f)
		return false;
	size_t ml = folder_name_main_len(name);
	for (size_t i = 0; i < f->n && !ok; i++) {
		const struct folder_msg *m = folder_msg_peek(f, i);
		if (strncmp(m->filename, name, ml) == 0 && folder_name_main_len(m->filename) == ml) {
			*uid = m->uid;
			ok = true;
		}
	}
	*validity = f->uidvalidity;
	folder_close(&f);
	if (!ok)
		snprintf(err, errsz, "the new message vanished from %s", path);
	return ok;
}

/* Write src (CRLF -> LF) into fd; *size on disk, *vsize with CRLF line ends. */
static bool write_lf(int fd, const struct folder_append_src *src, uint64_t *size, uint64_t *vsize)
{
	char in[APPEND_CHUNK], out[2 * APPEND_CHUNK];   /* a bare CR costs two */
	size_t done = 0;
	bool cr = false;
	*size = *vsize = 0;
	while (done < src->len) {
		size_t want = src->len - done < sizeof(in) ? src->len - done : sizeof(in);
		const char *p = in;
		ssize_t got;
		if (src->fd >= 0) {
			got = read(src->fd, in, want);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return false;
		} else {
			p = src->data + done;
			got = (ssize_t)want;
		}
		size_t n = 0;
		for (ssize_t i = 0; i < got; i++) {
			char c = p[i];
			if (cr && c != '\n') {   /* a bare CR stays */
				out[n++] = '\r';
				(*vsize)++;
				(*size)++;
			}
			cr = c == '\r';
			if (cr)
				continue;
			out[n++] = c;
			*vsize += c == '\n' ? 2 : 1;
		}
		if (!fileio_write_all(fd, out, n))
			return false;
		for (size_t k = 0; k < n; k++)
			*size += out[k] != '\r';   /* bare CRs were counted above */
		done += (size_t)got;
	}
	if (cr) {   /* a CR at the very end stays too */
		if (!fileio_write_all(fd, "\r", 1))
			return false;
		++*size;
		++*vsize;
	}
	return true;
}

/* The keyword bits of names in the folder at path (created there as needed). */
static uint64_t keyword_bits(const char *path, const char *const *names, size_t n)
{
	uint64_t bits = 0;
	for (size_t i = 0; i < n; i++) {
		int k = folder_keywords_file_index(path, names[i], true);
		if (k >= 0)
			bits |= 1ull << k;
	}
	return bits;
}

/* tmp/<base> -> cur/<base>,S=,W=:2,<flags>; quota checked in between. */
static enum store_result publish(const char *root, const char *path, const char *tmp, const char *base,
	uint64_t size, uint64_t vsize, uint32_t flags, uint64_t kw, struct quota_state *quota, char *name,
	size_t namesz, char *err, size_t errsz)
{
	struct quota_state st;
	if (quota_check(root, size, &st, err, errsz) == QUOTA_FULL) {
		if (quota)
			*quota = st;
		unlink(tmp);
		snprintf(err, errsz, "the mailbox is full: %llu of %llu bytes, %llu of %llu messages used",
			(unsigned long long)st.used_bytes, (unsigned long long)st.limit_bytes,
			(unsigned long long)st.used_count, (unsigned long long)st.limit_count);
		return STORE_QUOTA;
	}
	char plain[FOLDER_PATH_LEN];
	snprintf(plain, sizeof(plain), "%s,S=%llu,W=%llu", base, (unsigned long long)size, (unsigned long long)vsize);
	if (!folder_name_with_flags(plain, flags & FOLDER_STORABLE, kw, name, namesz)) {
		unlink(tmp);
		snprintf(err, errsz, "file name too long");
		return STORE_TEMP;
	}
	char dst[FOLDER_SUB_LEN * 2], cur[FOLDER_SUB_LEN];
	snprintf(dst, sizeof(dst), "%s/cur/%s", path, name);
	snprintf(cur, sizeof(cur), "%s/cur", path);
	if (rename(tmp, dst) != 0 || !fileio_fsync_dir(cur)) {
		snprintf(err, errsz, "cannot store %s: %s", dst, strerror(errno));
		unlink(tmp);
		return STORE_TEMP;
	}
	quota_add(root, (int64_t)size, 1);
	return STORE_OK;
}

static enum store_result write_new(const char *root, const char *path, const struct folder_append_src *src,
	uint64_t kw, time_t mtime, char *name, size_t namesz, struct quota_state *quota, char *err, size_t errsz)
{
	char base[256], tmp[FOLDER_SUB_LEN];
	new_base(base, sizeof(base));
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", path, base);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		return STORE_TEMP;
	}
	uint64_t size, vsize;
	struct timespec times[2] = { { mtime, 0 }, { mtime, 0 } };
	bool ok = write_lf(fd, src, &size, &vsize) && fileio_fsync(fd) == 0 && futimens(fd, times) == 0;
	int e = errno;
	close(fd);
	if (!ok) {
		unlink(tmp);
		snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(e));
		return STORE_TEMP;
	}
	return publish(root, path, tmp, base, size, vsize, src->flags, kw, quota, name, namesz, err, errsz);
}

enum store_result folder_append(const char *root, const char *fname, const struct folder_append_src *src,
	uint32_t *uid, uint32_t *validity, struct quota_state *quota, char *err, size_t errsz)
{
	char path[FOLDER_PATH_LEN], name[FOLDER_PATH_LEN];
	err[0] = '\0';
	*uid = *validity = 0;
	if (!folder_path(root, fname, path, sizeof(path)) || !folder_exists(root, fname)) {
		snprintf(err, errsz, "no folder \"%s\"", fname);
		return STORE_NONEXISTENT;
	}
	uint64_t kw = keyword_bits(path, src->keywords, src->n_keywords);
	enum store_result r = write_new(root, path, src, kw, src->date ? src->date : time(NULL), name, sizeof(name),
		quota, err, errsz);
	if (r != STORE_OK)
		return r;
	return uid_for_file(root, fname, path, name, uid, validity, err, errsz) ? STORE_OK : STORE_TEMP;
}

/* A hard link of the source under a new name in the destination's cur/. */
static bool link_copy(const char *from, const char *root, const char *dpath, const struct folder_msg *m,
	uint64_t kw, char *name, size_t namesz)
{
	struct stat st;
	if (stat(from, &st) != 0)
		return false;
	uint64_t size = (uint64_t)st.st_size, w = m->size;
	struct quota_state qs;
	char err[256], base[256], plain[FOLDER_PATH_LEN];
	if (quota_check(root, size, &qs, err, sizeof(err)) == QUOTA_FULL)
		return false;   /* written out by the copy path, which reports it */
	new_base(base, sizeof(base));
	snprintf(plain, sizeof(plain), "%s,S=%llu,W=%llu", base, (unsigned long long)size, (unsigned long long)w);
	if (!folder_name_with_flags(plain, m->flags & FOLDER_STORABLE, kw, name, namesz))
		return false;
	char dst[FOLDER_SUB_LEN * 2], cur[FOLDER_SUB_LEN];
	snprintf(dst, sizeof(dst), "%s/cur/%s", dpath, name);
	snprintf(cur, sizeof(cur), "%s/cur", dpath);
	if (link(from, dst) != 0)
		return false;   /* EXDEV, EPERM, EMLINK...: copy the bytes instead */
	fileio_fsync_dir(cur);
	quota_add(root, (int64_t)size, 1);
	return true;
}

enum store_result folder_copy(struct folder *f, size_t i, const char *dest_name, uint32_t *new_uid,
	uint32_t *dest_validity, char *err, size_t errsz)
{
	char dpath[FOLDER_PATH_LEN], name[FOLDER_PATH_LEN], from[FOLDER_SUB_LEN];
	err[0] = '\0';
	*new_uid = *dest_validity = 0;
	if (!folder_path(f->root, dest_name, dpath, sizeof(dpath)) || !folder_exists(f->root, dest_name)) {
		snprintf(err, errsz, "no folder \"%s\"", dest_name);
		return STORE_NONEXISTENT;
	}
	const struct folder_msg *m = folder_msg(f, i);
	if (!m) {
		snprintf(err, errsz, "no such message");
		return STORE_NONEXISTENT;
	}
	const char *names[FOLDER_KEYWORDS_MAX];
	size_t nk = 0;
	for (int k = 0; k < FOLDER_KEYWORDS_MAX; k++)
		if ((m->keywords & (1ull << k)) && f->kw.names[k])
			names[nk++] = f->kw.names[k];
	uint64_t kw = keyword_bits(dpath, names, nk);
	snprintf(from, sizeof(from), "%s/cur/%s", f->path, m->filename);
	if (!link_copy(from, f->root, dpath, m, kw, name, sizeof(name))) {
		int fd = folder_msg_open(f, i);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			snprintf(err, errsz, "the message is gone");
			return STORE_NONEXISTENT;
		}
		struct folder_append_src src = { .fd = fd, .len = (size_t)st.st_size, .flags = m->flags };
		enum store_result r = write_new(f->root, dpath, &src, kw, st.st_mtime, name, sizeof(name), NULL, err,
			errsz);
		close(fd);
		if (r != STORE_OK)
			return r;
	}
	return uid_for_file(f->root, dest_name, dpath, name, new_uid, dest_validity, err, errsz) ? STORE_OK : STORE_TEMP;
}
