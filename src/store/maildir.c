/* maildir.c - Maildir++ delivery (see maildir.h).
 *
 * Unique names follow the Maildir convention Dovecot uses:
 *   <seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>,W=<vsize>
 * ("/" and ":" in the host name are replaced, as the Maildir spec asks).
 *
 * A copy of a queued message gets a name that depends only on the message and the
 * recipient, not on the moment of delivery:
 *   <arrival>.M<qid>_R<recipient index>.<host>,S=<size>,W=<vsize>
 * The queue id is unique (and its arrival second is part of it anyway), the index
 * tells the recipients of one message apart (two aliases of one mailbox keep their
 * two copies, as before), and the same content gives the same S= and W=, so a
 * second delivery of the same copy makes the very same name.  Dovecot reads the
 * part before the first "," as an opaque unique base, so the name stays compatible.
 *
 * Why a deterministic name and not a log of deliveries: the queue writes a
 * recipient's state after its delivery, and a crash in between used to give the
 * user the message twice.  With this name the file itself is the record:
 *   - link(tmp, new/<name>) instead of rename() refuses to replace an existing
 *     file (EEXIST), so a repeat while the copy is still in new/ costs nothing;
 *   - a copy a mail program already moved to cur/ (its name then ends in ":2,<flags>")
 *     needs a scan of cur/; that scan runs only when the caller says this delivery
 *     may be a repeat (a retry, or a message found in the queue at start), never on
 *     the first attempt of a message just accepted, so the common path stays one
 *     link() with no directory listing. */
#include "store/maildir.h"

#include "util/fileio.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define COPY_BUF (64u << 10)

static atomic_uint delivery_counter;

bool maildir_create(const char *path, char *err, size_t errlen)
{
	static const char *const sub[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		char p[1100];
		snprintf(p, sizeof(p), "%s/%s", path, sub[i]);
		/* Durable: a message renamed into a new/ whose own name was never synced
		 * into its parent would vanish with it in a crash. */
		if (!fileio_mkdir_p_durable(p, 0700)) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			return false;
		}
	}
	return true;
}

static void host_part(char *host, size_t hostsz)
{
	if (gethostname(host, hostsz) != 0)
		snprintf(host, hostsz, "localhost");
	host[hostsz - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':' || *p == ',')
			*p = '_';
}

static void unique_base(char *out, size_t outsz)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	char host[256];
	host_part(host, sizeof(host));
	unsigned q = atomic_fetch_add(&delivery_counter, 1);
	snprintf(out, outsz, "%lld.M%06ldP%ldQ%u.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		(long)getpid(), q, host);
}

/* "<arrival>.M<qid>_R<index>." : everything of a copy's name but host and sizes. */
static void copy_stem(const struct maildir_copy_id *id, char *out, size_t outsz)
{
	snprintf(out, outsz, "%lld.M%s_R%zu.", (long long)id->arrival, id->qid, id->rcpt_index);
}

/* The queue id goes into a file name: letters and digits only (id.h), never "/". */
static bool plain_id(const char *qid)
{
	if (!qid[0] || strlen(qid) > 64)
		return false;
	for (const char *p = qid; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
			return false;
	return true;
}

static bool copy_base(const struct maildir_copy_id *id, char *out, size_t outsz)
{
	if (!plain_id(id->qid))
		return false;
	char host[256];
	host_part(host, sizeof(host));
	copy_stem(id, out, outsz);
	size_t n = strlen(out);
	return snprintf(out + n, outsz - n, "%s", host) < (int)(outsz - n);
}

/* Is a file whose name starts with stem in path/sub?  -1 when it cannot be read. */
static int dir_has_stem(const char *path, const char *sub, const char *stem, char *found, size_t foundsz)
{
	char d[1200];
	snprintf(d, sizeof(d), "%s/%s", path, sub);
	DIR *dir = opendir(d);
	if (!dir)
		return errno == ENOENT ? 0 : -1;
	size_t sl = strlen(stem);
	int hit = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, stem, sl) == 0) {
			snprintf(found, foundsz, "%s/%s", sub, e->d_name);
			hit = 1;
			break;
		}
	closedir(dir);
	return hit;
}

enum maildir_copy maildir_find_copy(const char *path, const struct maildir_copy_id *id, char *name_out,
	size_t name_outsz, char *err, size_t errlen)
{
	char stem[200];
	if (!plain_id(id->qid)) {
		snprintf(err, errlen, "queue id unfit for a file name");
		return MAILDIR_COPY_UNKNOWN;
	}
	copy_stem(id, stem, sizeof(stem));
	/* The host part is not compared: a copy made before a change of host name counts. */
	static const char *const subs[] = { "new", "cur" };
	for (size_t i = 0; i < 2; i++) {
		int r = dir_has_stem(path, subs[i], stem, name_out, name_outsz);
		if (r < 0) {
			snprintf(err, errlen, "cannot read %s/%s: %s", path, subs[i], strerror(errno));
			return MAILDIR_COPY_UNKNOWN;
		}
		if (r)
			return MAILDIR_COPY_PRESENT;
	}
	return MAILDIR_COPY_ABSENT;
}

/* Copy the message, CRLF -> LF, counting octets and line ends. */
static bool copy_body(int out, int in, off_t off, uint64_t size, uint64_t *written, uint64_t *lfs)
{
	char *ib = malloc(COPY_BUF), *ob = malloc(COPY_BUF);
	bool ok = ib && ob;
	bool pending_cr = false;
	while (ok && size > 0) {
		size_t want = size < COPY_BUF ? (size_t)size : COPY_BUF;
		ssize_t r = pread(in, ib, want, off);
		if (r <= 0) {
			ok = false;
			break;
		}
		off += r;
		size -= (uint64_t)r;
		size_t o = 0;
		for (ssize_t i = 0; i < r; i++) {
			char c = ib[i];
			if (pending_cr) {
				pending_cr = false;
				if (c != '\n')
					ob[o++] = '\r';
			}
			if (c == '\r') {
				pending_cr = true;
				continue;
			}
			if (c == '\n')
				(*lfs)++;
			ob[o++] = c;
			if (o >= COPY_BUF - 1) {
				ok = fileio_write_all(out, ob, o);
				*written += o;
				o = 0;
				if (!ok)
					break;
			}
		}
		if (ok && o) {
			ok = fileio_write_all(out, ob, o);
			*written += o;
		}
	}
	if (ok && pending_cr) {
		ok = fileio_write_all(out, "\r", 1);
		*written += 1;
	}
	free(ib);
	free(ob);
	return ok;
}

/* Move tmp to dst without replacing anything there: renameat2(RENAME_NOREPLACE)
 * fails with EEXIST where rename() would overwrite, in one call; where the
 * filesystem does not offer it (EINVAL), link() does the same and tmp is unlinked
 * after.  Filesystems without hard links fall back to a check and rename (the check
 * and the rename are not atomic there; one delivery thread works on a message at a
 * time, so nothing else creates this name meanwhile). */
static int move_noreplace(const char *tmp, const char *dst, bool *linked)
{
	*linked = false;
	int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE);
	if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
		rc = link(tmp, dst);
		*linked = true;
	}
	return rc;
}

static enum store_result publish(const char *path, const char *tmp, const char *dst, char *err, size_t errlen)
{
	bool linked;
	int rc = move_noreplace(tmp, dst, &linked);
	if (rc != 0 && errno == ENOENT && maildir_create(path, err, errlen))
		rc = move_noreplace(tmp, dst, &linked);   /* new/ was removed after tmp/ was checked: made again */
	if (rc == 0) {
		if (linked)
			unlink(tmp);
		return STORE_OK;
	}
	int e = errno;
	if (e == EEXIST) {
		unlink(tmp);
		return STORE_DUPLICATE;
	}
	struct stat sb;
	if ((e == EPERM || e == EOPNOTSUPP || e == ENOSYS) && stat(dst, &sb) != 0 && errno == ENOENT &&
		rename(tmp, dst) == 0)
		return STORE_OK;
	snprintf(err, errlen, "rename to %s failed: %s", dst, strerror(e));
	unlink(tmp);
	return STORE_TEMP;
}

static enum store_result deliver_as(const char *path, const char *base, const char *prefix, int fd, off_t offset,
	uint64_t size, bool sync_new, char *name_out, size_t name_outsz, char *err, size_t errlen)
{
	char tmp[1400], dst[1500], newdir[1200];
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", path, base);
	/* The Maildir is made on the first delivery only: trying the file first costs
	 * nothing when the directories are there (every delivery but the first), where
	 * making them each time cost a dozen failing mkdir calls per message. */
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0 && errno == ENOENT) {
		if (!maildir_create(path, err, errlen))
			return STORE_TEMP;
		out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (out < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return STORE_TEMP;
	}
	uint64_t written = 0, lfs = 0;
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < plen; i++)
		if (prefix[i] == '\n')
			lfs++;
	bool ok = fileio_write_all(out, prefix, plen);
	written += plen;
	ok = ok && copy_body(out, fd, offset, size, &written, &lfs);
	if (!ok) {
		snprintf(err, errlen, "write to %s failed: %s", tmp, errno ? strerror(errno) : "short read");
	} else if (fileio_fsync(out) != 0) {
		snprintf(err, errlen, "fsync of %s failed: %s", tmp, strerror(errno));
		ok = false;
	}
	close(out);
	if (!ok) {
		unlink(tmp);
		return STORE_TEMP;
	}
	snprintf(name_out, name_outsz, "new/%s,S=%" PRIu64 ",W=%" PRIu64, base, written, written + lfs);
	snprintf(dst, sizeof(dst), "%s/%s", path, name_out);
	enum store_result r = publish(path, tmp, dst, err, errlen);
	if (r != STORE_OK || !sync_new)
		return r;
	snprintf(newdir, sizeof(newdir), "%s/new", path);
	if (!fileio_fsync_dir(newdir)) {
		/* The name may not survive a crash: not delivered.  Take the file back so
		 * the retry neither finds a copy that may vanish nor leaves a second one. */
		snprintf(err, errlen, "fsync of %s failed: %s", newdir, strerror(errno));
		unlink(dst);
		return STORE_TEMP;
	}
	return STORE_OK;
}

enum store_result maildir_deliver(const char *path, const char *prefix, int fd, off_t offset,
	uint64_t size, char *name_out, size_t name_outsz, char *err, size_t errlen)
{
	char base[512];
	unique_base(base, sizeof(base));
	return deliver_as(path, base, prefix, fd, offset, size, true, name_out, name_outsz, err, errlen);
}

enum store_result maildir_deliver_copy(const char *path, const struct maildir_copy_id *id, const char *prefix,
	int fd, off_t offset, uint64_t size, bool sync_new, char *name_out, size_t name_outsz, char *err, size_t errlen)
{
	char base[512];
	if (!copy_base(id, base, sizeof(base))) {
		snprintf(err, errlen, "queue id or host name unfit for a Maildir file name");
		return STORE_TEMP;
	}
	return deliver_as(path, base, prefix, fd, offset, size, sync_new, name_out, name_outsz, err, errlen);
}

bool maildir_copy_dir(const char *path, const char *name, char *out, size_t outsz)
{
	const char *slash = strchr(name, '/');
	if (!slash || (slash - name != 3) || (strncmp(name, "new", 3) != 0 && strncmp(name, "cur", 3) != 0))
		return false;
	return snprintf(out, outsz, "%s/%.3s", path, name) < (int)outsz;
}

/* --- leftovers in tmp/ -------------------------------------------------------- */

static unsigned clean_one_tmp(const char *tmpdir, time_t now, time_t max_age, size_t *budget)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return 0;
	unsigned removed = 0;
	struct dirent *e;
	while (*budget > 0 && (e = readdir(d)) != NULL) {
		(*budget)--;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(sb.st_mode) ||
			now - sb.st_mtime < max_age)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

unsigned maildir_clean_tmp(const char *path, time_t now, time_t max_age, size_t max_entries)
{
	size_t budget = max_entries;
	char p[1200];
	snprintf(p, sizeof(p), "%s/tmp", path);
	unsigned removed = clean_one_tmp(p, now, max_age, &budget);
	DIR *d = opendir(path);
	if (!d)
		return removed;
	struct dirent *e;
	/* Maildir++ folders: path/.Name/ with their own tmp/. */
	while (budget > 0 && (e = readdir(d)) != NULL) {
		budget--;
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(p, sizeof(p), "%s/%s/tmp", path, e->d_name) < (int)sizeof(p))
			removed += clean_one_tmp(p, now, max_age, &budget);
	}
	closedir(d);
	return removed;
}

#define CLEAN_ENTRIES_PER_MAILBOX 10000

void maildir_clean_all(const char *mail_root, time_t now, time_t max_age, size_t *cursor, size_t max_mailboxes,
	unsigned *mailboxes, unsigned *removed)
{
	DIR *dd = opendir(mail_root);
	if (!dd) {
		*cursor = 0;
		return;
	}
	size_t k = 0, done = 0;
	bool stopped = false;
	struct dirent *de;
	while (!stopped && (de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char dom[1100];
		if (snprintf(dom, sizeof(dom), "%s/%s", mail_root, de->d_name) >= (int)sizeof(dom))
			continue;
		DIR *ud = opendir(dom);
		if (!ud)
			continue;
		struct dirent *ue;
		while ((ue = readdir(ud)) != NULL) {
			if (ue->d_name[0] == '.')
				continue;
			if (k++ < *cursor)
				continue;
			if (done == max_mailboxes) {
				stopped = true;
				break;
			}
			char box[1200];
			if (snprintf(box, sizeof(box), "%s/%s", dom, ue->d_name) >= (int)sizeof(box))
				continue;
			done++;
			*removed += maildir_clean_tmp(box, now, max_age, CLEAN_ENTRIES_PER_MAILBOX);
		}
		closedir(ud);
	}
	closedir(dd);
	*mailboxes += (unsigned)done;
	*cursor = stopped ? *cursor + done : 0;
}
