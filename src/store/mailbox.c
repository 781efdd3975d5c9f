/* mailbox.c - a locked, listed Maildir for POP3 (see mailbox.h).
 *
 * Names follow the Maildir convention (cr.yp.to/proto/maildir.html) with Dovecot's
 * extensions: "<base>[,S=<size>][,W=<vsize>][:2,<flags>]". */
#include "store/mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/maildir.h"
#include "store/quota.h"
#include "util/fileio.h"
#include "util/log.h"

#define PATH_LEN 1200
#define COUNT_BUF (64u << 10)

struct mailbox {
	char *path;
	int lock_fd;
	int cur_fd;            /* cur/ directory */
	struct mailbox_msg *msgs;
	size_t n, cap;
};

struct mailbox_reader {
	int fd;
	bool done;
};

/* --- names ------------------------------------------------------------------ */

/* The part of a name before ":2,<flags>". */
static size_t name_main_len(const char *name)
{
	const char *colon = strchr(name, ':');
	return colon ? (size_t)(colon - name) : strlen(name);
}

/* ",<key>=<digits>" in the main part of the name. */
static bool name_field(const char *name, char key, uint64_t *out)
{
	size_t end = name_main_len(name);
	for (size_t i = 0; i + 2 < end; i++) {
		if (name[i] != ',' || name[i + 1] != key || name[i + 2] != '=')
			continue;
		size_t j = i + 3;
		uint64_t v = 0;
		bool any = false;
		while (j < end && name[j] >= '0' && name[j] <= '9') {
			uint64_t d = (uint64_t)(name[j] - '0');
			if (v > (UINT64_MAX - d) / 10)
				return false;
			v = v * 10 + d;
			j++;
			any = true;
		}
		if (any && (j == end || name[j] == ',')) {
			*out = v;
			return true;
		}
	}
	return false;
}

static void hash_uid(const char *p, size_t n, char *uid)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen < 20) {
		/* Cannot happen with a working libcrypto; still give something unique-ish. */
		memset(md, 0, sizeof(md));
		for (size_t i = 0; i < n; i++)
			md[i % 20] = (unsigned char)(md[i % 20] * 31 + (unsigned char)p[i]);
	}
	uid[0] = 'H';
	for (unsigned i = 0; i < 20; i++)
		snprintf(uid + 1 + 2 * i, 3, "%02x", md[i]);
}

void mailbox_uid_from_name(const char *name, char *uid)
{
	size_t end = name_main_len(name);
	/* The base name ends where the ",S=", ",W=" (or any other ",X=") fields begin. */
	size_t base = end;
	const char *comma = memchr(name, ',', end);
	if (comma)
		base = (size_t)(comma - name);
	bool ok = base > 0 && base <= MAILBOX_UID_MAX;
	for (size_t i = 0; ok && i < base; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e)
			ok = false;
	}
	if (!ok) {
		hash_uid(name, base ? base : end, uid);
		return;
	}
	memcpy(uid, name, base);
	uid[base] = '\0';
}

/* Delivery order: leading seconds, then ".M<microseconds>", then the uid. */
static void order_key(const char *name, uint64_t *sec, uint64_t *usec)
{
	*sec = *usec = 0;
	const char *p = name;
	while (*p >= '0' && *p <= '9' && *sec < UINT64_MAX / 10)
		*sec = *sec * 10 + (uint64_t)(*p++ - '0');
	if (p[0] == '.' && p[1] == 'M') {
		p += 2;
		while (*p >= '0' && *p <= '9' && *usec < UINT64_MAX / 10)
			*usec = *usec * 10 + (uint64_t)(*p++ - '0');
	}
}

static int cmp_msgs(const void *a, const void *b)
{
	const struct mailbox_msg *x = a, *y = b;
	uint64_t xs, xu, ys, yu;
	order_key(x->name, &xs, &xu);
	order_key(y->name, &ys, &yu);
	if (xs != ys)
		return xs < ys ? -1 : 1;
	if (xu != yu)
		return xu < yu ? -1 : 1;
	int c = strcmp(x->uid, y->uid);
	return c ? c : strcmp(x->name, y->name);
}

static int cmp_uid_ptr(const void *a, const void *b)
{
	const struct mailbox_msg *const *x = a, *const *y = b;
	int c = strcmp((*x)->uid, (*y)->uid);
	if (c)
		return c;
	return strcmp((*x)->name, (*y)->name);
}

/* RFC 1939 §7: unique-ids are unique within the maildrop.  Two files with one base
 * name (a copy made by hand) keep the first; the other gets a hash of its full name. */
static void make_uids_unique(struct mailbox *mb)
{
	if (mb->n < 2)
		return;
	struct mailbox_msg **v = malloc(mb->n * sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < mb->n; i++)
		v[i] = &mb->msgs[i];
	qsort(v, mb->n, sizeof(*v), cmp_uid_ptr);
	for (size_t i = 1; i < mb->n; i++)
		if (strcmp(v[i]->uid, v[i - 1]->uid) == 0)
			hash_uid(v[i]->name, strlen(v[i]->name), v[i]->uid);
	free(v);
}

/* --- sizes ------------------------------------------------------------------ */

/* Octets with CRLF line ends: every LF not preceded by CR counts twice. */
static bool count_vsize(int dirfd, const char *name, uint64_t *vsize, uint64_t *fsize)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char *b = malloc(COUNT_BUF);
	if (!b) {
		close(fd);
		return false;
	}
	uint64_t total = 0, extra = 0;
	bool prev_cr = false;
	ssize_t r;
	while ((r = read(fd, b, COUNT_BUF)) > 0) {
		for (ssize_t i = 0; i < r; i++) {
			if (b[i] == '\n' && !prev_cr)
				extra++;
			prev_cr = b[i] == '\r';
		}
		total += (uint64_t)r;
	}
	free(b);
	close(fd);
	if (r < 0)
		return false;
	*vsize = total + extra;
	*fsize = total;
	return true;
}

/* --- opening ---------------------------------------------------------------- */

static bool add_msg(struct mailbox *mb, const char *name)
{
	if (mb->n == mb->cap) {
		size_t cap = mb->cap ? mb->cap * 2 : 64;
		struct mailbox_msg *m = realloc(mb->msgs, cap * sizeof(*m));
		if (!m)
			return false;
		mb->msgs = m;
		mb->cap = cap;
	}
	struct mailbox_msg *m = &mb->msgs[mb->n];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	if (!m->name)
		return false;
	uint64_t w, s;
	bool have_w = name_field(name, 'W', &w), have_s = name_field(name, 'S', &s);
	if (have_w && have_s) {
		m->size = w;
		m->file_size = s;
	} else {
		uint64_t vs, fs;
		if (!count_vsize(mb->cur_fd, name, &vs, &fs)) {
			free(m->name);
			return errno == ENOENT;   /* gone meanwhile: not listed */
		}
		m->size = have_w ? w : vs;
		m->file_size = have_s ? s : fs;
	}
	mailbox_uid_from_name(name, m->uid);
	mb->n++;
	return true;
}

/* new/<name> -> cur/<name>:2, (Maildir: a message seen by a reader moves to cur/). */
static bool move_new(const char *path, int cur_fd)
{
	char p[PATH_LEN];
	snprintf(p, sizeof(p), "%s/new", path);
	DIR *d = opendir(p);
	if (!d)
		return errno == ENOENT;
	struct dirent *e;
	bool moved = false;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char to[NAME_MAX + 8];
		if (strchr(e->d_name, ':'))
			snprintf(to, sizeof(to), "%s", e->d_name);
		else
			snprintf(to, sizeof(to), "%s:2,", e->d_name);
		if (renameat(dirfd(d), e->d_name, cur_fd, to) == 0)
			moved = true;
		else if (errno != ENOENT)
			log_event(LOG_WARN, "maildir_move_failed", "maildir=%s name=%s error=\"%s\"", path, e->d_name,
				strerror(errno));
	}
	closedir(d);
	if (moved) {
		/* Best effort: losing the rename in a crash only leaves the message in new/. */
		fileio_fsync(cur_fd);
	}
	return true;
}

static bool list_cur(struct mailbox *mb)
{
	int fd = dup(mb->cur_fd);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	struct dirent *e;
	bool ok = true;
	while (ok && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
			continue;
		ok = add_msg(mb, e->d_name);
	}
	closedir(d);
	if (!ok)
		return false;
	if (mb->n > 1)   /* qsort with a NULL array is undefined even for 0 elements */
		qsort(mb->msgs, mb->n, sizeof(*mb->msgs), cmp_msgs);
	make_uids_unique(mb);
	return true;
}

enum mailbox_status mailbox_open(const char *path, struct mailbox **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!maildir_create(path, err, errlen))
		return MAILBOX_TEMP;
	struct mailbox *mb = calloc(1, sizeof(*mb));
	if (!mb || !(mb->path = strdup(path))) {
		free(mb);
		snprintf(err, errlen, "out of memory");
		return MAILBOX_TEMP;
	}
	mb->cur_fd = -1;
	char p[PATH_LEN];
	snprintf(p, sizeof(p), "%s/" MAILBOX_LOCK_FILE, path);
	mb->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (mb->lock_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
		mailbox_close(&mb);
		return MAILBOX_TEMP;
	}
	while (flock(mb->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		bool busy = errno == EWOULDBLOCK;
		snprintf(err, errlen, busy ? "the mailbox is in use by another session" : "cannot lock %s: %s", p,
			strerror(errno));
		mailbox_close(&mb);
		return busy ? MAILBOX_IN_USE : MAILBOX_TEMP;
	}
	snprintf(p, sizeof(p), "%s/cur", path);
	mb->cur_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mb->cur_fd < 0 || !move_new(path, mb->cur_fd) || !list_cur(mb)) {
		snprintf(err, errlen, "cannot read %s: %s", p, strerror(errno));
		mailbox_close(&mb);
		return MAILBOX_TEMP;
	}
	*out = mb;
	return MAILBOX_OK;
}

void mailbox_close(struct mailbox **mbp)
{
	struct mailbox *mb = *mbp;
	if (!mb)
		return;
	for (size_t i = 0; i < mb->n; i++)
		free(mb->msgs[i].name);
	free(mb->msgs);
	if (mb->cur_fd >= 0)
		close(mb->cur_fd);
	if (mb->lock_fd >= 0)
		close(mb->lock_fd);   /* releases the flock */
	free(mb->path);
	free(mb);
	*mbp = NULL;
}

size_t mailbox_count(const struct mailbox *mb)
{
	return mb->n;
}

const struct mailbox_msg *mailbox_msg(const struct mailbox *mb, size_t i)
{
	return i < mb->n ? &mb->msgs[i] : NULL;
}

const char *mailbox_path(const struct mailbox *mb)
{
	return mb->path;
}

/* Another program (an IMAP server setting flags) may have renamed the file: find
 * it again by its uid.  Updates the stored name. */
static bool refind(struct mailbox *mb, struct mailbox_msg *m)
{
	int fd = dup(mb->cur_fd);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	rewinddir(d);
	struct dirent *e;
	bool found = false;
	char uid[MAILBOX_UID_MAX + 1];
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		mailbox_uid_from_name(e->d_name, uid);
		if (strcmp(uid, m->uid) == 0) {
			char *n = strdup(e->d_name);
			if (n) {
				free(m->name);
				m->name = n;
				found = true;
			}
			break;
		}
	}
	closedir(d);
	return found;
}

/* --- reading ---------------------------------------------------------------- */

struct mailbox_reader *mailbox_reader_open(struct mailbox *mb, size_t i)
{
	if (i >= mb->n)
		return NULL;
	struct mailbox_msg *m = &mb->msgs[i];
	int fd = openat(mb->cur_fd, m->name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && refind(mb, m))
		fd = openat(mb->cur_fd, m->name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct mailbox_reader *r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return NULL;
	}
	r->fd = fd;
	return r;
}

ssize_t mailbox_reader_read(struct mailbox_reader *r, void *p, size_t n)
{
	if (r->done || n == 0)
		return 0;
	ssize_t got;
	do
		got = read(r->fd, p, n);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		r->done = true;
		return got;
	}
	return got;
}

void mailbox_reader_close(struct mailbox_reader **rp)
{
	struct mailbox_reader *r = *rp;
	if (!r)
		return;
	close(r->fd);
	free(r);
	*rp = NULL;
}

/* --- UPDATE ----------------------------------------------------------------- */

bool mailbox_expunge(struct mailbox *mb, const bool *deleted, size_t *removed, char *err, size_t errlen)
{
	*removed = 0;
	uint64_t bytes = 0, count = 0;
	size_t failed = 0;
	bool unlinked = false;
	for (size_t i = 0; i < mb->n; i++) {
		if (!deleted[i])
			continue;
		struct mailbox_msg *m = &mb->msgs[i];
		int r = unlinkat(mb->cur_fd, m->name, 0);
		if (r != 0 && errno == ENOENT && refind(mb, m))
			r = unlinkat(mb->cur_fd, m->name, 0);
		if (r == 0) {
			if (!quota_name_is_warning(m->name)) {   /* never counted: see quota.h */
				bytes += m->file_size;
				count++;
			}
			unlinked = true;
			(*removed)++;
		} else if (errno == ENOENT) {
			(*removed)++;   /* already gone (another program expunged it) */
		} else {
			if (!failed)
				snprintf(err, errlen, "cannot remove %s/cur/%s: %s", mb->path, m->name, strerror(errno));
			failed++;
		}
	}
	if (unlinked)
		fileio_fsync(mb->cur_fd);
	if (count)
		quota_add(mb->path, -(int64_t)bytes, -(int64_t)count);
	return failed == 0;
}
