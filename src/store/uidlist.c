/* uidlist.c - dovecot-uidlist and dovecot-keywords, read and written as Dovecot
 * does (see uidlist.h), and the dotlock guarding them. */
#include "store/uidlist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fileio.h"

#define PATH_LEN 1200

/* --- parsing helpers ------------------------------------------------------- */

/* Digits at *p (up to end) into *out; false when none or on overflow past max. */
static bool parse_num(const char **p, const char *end, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;
	while (s < end && *s >= '0' && *s <= '9') {
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	*out = v;
	return true;
}

static char *dup_n(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* A base name may not hold "/", NUL, or control bytes; 1..UIDLIST_NAME_MAX octets. */
static bool name_ok(const char *p, size_t n)
{
	if (n == 0 || n > UIDLIST_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == '/' || c == 0x7f)
			return false;
	}
	return !(n == 1 && p[0] == '.') && !(n == 2 && p[0] == '.' && p[1] == '.');
}

bool uidlist_add(struct uidlist *ul, uint32_t uid, const char *name, size_t name_len, uint64_t vsize)
{
	if (uid == 0 || (ul->n && ul->recs[ul->n - 1].uid >= uid) || ul->n >= UIDLIST_RECORDS_MAX)
		return false;
	if (ul->n == ul->cap) {
		size_t cap = ul->cap ? ul->cap * 2 : 64;
		struct uidlist_rec *r = realloc(ul->recs, cap * sizeof(*r));
		if (!r)
			return false;
		ul->recs = r;
		ul->cap = cap;
	}
	struct uidlist_rec *r = &ul->recs[ul->n];
	memset(r, 0, sizeof(*r));
	r->uid = uid;
	r->vsize = vsize;
	r->name = dup_n(name, name_len);
	if (!r->name)
		return false;
	ul->n++;
	if (ul->nextuid <= uid)
		ul->nextuid = uid == UINT32_MAX ? UINT32_MAX : uid + 1;
	return true;
}

/* Only printable ASCII is kept verbatim (it is written back as text). */
static bool printable(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] >= 0x7f)
			return false;
	return true;
}

/* The extensions of a v3 record: "S123 W125 G..." (each one token). */
static void parse_ext(struct uidlist_rec *r, const char *p, const char *end)
{
	while (p < end) {
		const char *tok = p;
		while (p < end && *p != ' ')
			p++;
		const char *s = tok + 1;
		uint64_t v;
		if (*tok == 'W' && parse_num(&s, p, UINT64_MAX, &v) && s == p)
			r->vsize = v;
		else if (*tok == 'S' && parse_num(&s, p, UINT64_MAX, &v) && s == p)
			r->psize = v;
		while (p < end && *p == ' ')
			p++;
	}
}

/* One record line (without its LF).  false: skipped. */
static bool parse_record(struct uidlist *ul, const char *p, const char *end)
{
	uint64_t uid;
	if (!parse_num(&p, end, UINT32_MAX, &uid) || uid == 0 || p == end || *p != ' ')
		return false;
	p++;
	const char *name = p, *ext = NULL, *ext_end = NULL;
	if (ul->version != 1) {
		/* Extensions, then ":" (first, or after a space) and the name to the line end. */
		const char *colon = NULL;
		for (const char *s = p; s < end && !colon; s++)
			if (*s == ':' && (s == p || s[-1] == ' '))
				colon = s;
		if (!colon)
			return false;
		name = colon + 1;
		ext = p;
		ext_end = colon;
		while (ext_end > ext && ext_end[-1] == ' ')
			ext_end--;
		if (ext_end == ext)
			ext = NULL;
	}
	size_t name_len = (size_t)(end - name);
	if (!name_ok(name, name_len) || !uidlist_add(ul, (uint32_t)uid, name, name_len, 0))
		return false;
	if (ext) {
		struct uidlist_rec *r = &ul->recs[ul->n - 1];
		parse_ext(r, ext, ext_end);
		if (printable(ext, (size_t)(ext_end - ext)))
			r->ext = dup_n(ext, (size_t)(ext_end - ext));
	}
	return true;
}

/* The header line.  v3: "3 V<n> N<n> G<hex> ..." in any order; v1: "1 <v> <n>". */
static bool parse_header(struct uidlist *ul, const char *p, const char *end)
{
	uint64_t v;
	if (!parse_num(&p, end, 10, &v) || (v != 1 && v != 3) || (p < end && *p != ' '))
		return false;
	ul->version = (unsigned)v;
	uint64_t validity = 0, next = 0;
	if (v == 1) {
		if (p >= end || *p++ != ' ' || !parse_num(&p, end, UINT32_MAX, &validity) || p >= end ||
		    *p++ != ' ' || !parse_num(&p, end, UINT32_MAX, &next))
			return false;
	} else {
		size_t ext_len = 0;
		char ext[512];
		while (p < end) {
			while (p < end && *p == ' ')
				p++;
			const char *tok = p;
			while (p < end && *p != ' ')
				p++;
			if (tok == p)
				break;
			const char *s = tok + 1;
			size_t tl = (size_t)(p - tok);
			uint64_t num;
			if ((*tok == 'V' || *tok == 'N') && parse_num(&s, p, UINT32_MAX, &num) && s == p) {
				*(*tok == 'V' ? &validity : &next) = num;
				continue;
			}
			if (*tok == 'G') {   /* the mailbox GUID: 32 hex digits, else made anew */
				bool hex = tl == 33;
				for (size_t k = 1; hex && k < tl; k++)
					hex = strchr("0123456789abcdefABCDEF", tok[k]) != NULL && tok[k];
				if (hex) {
					memcpy(ul->guid, tok + 1, 32);
					ul->guid[32] = '\0';
				}
				continue;
			}
			if (ext_len + tl + 1 < sizeof(ext) && printable(tok, tl)) {   /* unknown fields, kept (bounded) */
				if (ext_len)
					ext[ext_len++] = ' ';
				memcpy(ext + ext_len, tok, tl);
				ext_len += tl;
			}
		}
		if (ext_len)
			ul->hdr_ext = dup_n(ext, ext_len);
	}
	if (validity == 0)
		return false;
	ul->uidvalidity = (uint32_t)validity;
	ul->nextuid = next ? (uint32_t)next : 1;
	return true;
}

bool uidlist_parse(const char *text, size_t len, struct uidlist *out, size_t *bad_lines)
{
	memset(out, 0, sizeof(*out));
	size_t bad = 0;
	const char *p = text, *end = text + len;
	bool header = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (!header) {
			if (!parse_header(out, p, le)) {
				uidlist_free(out);
				if (bad_lines)
					*bad_lines = 1;
				return false;
			}
			header = true;
		} else if (le > p && !parse_record(out, p, le)) {
			bad++;
		}
		p = nl ? nl + 1 : end;
	}
	if (bad_lines)
		*bad_lines = bad;
	if (!header)
		return false;
	return true;
}

void uidlist_free(struct uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++) {
		free(ul->recs[i].name);
		free(ul->recs[i].ext);
	}
	free(ul->recs);
	free(ul->hdr_ext);
	memset(ul, 0, sizeof(*ul));
}

char *uidlist_format(const struct uidlist *ul, size_t *len)
{
	size_t cap = 128 + (ul->hdr_ext ? strlen(ul->hdr_ext) : 0);
	for (size_t i = 0; i < ul->n; i++)
		cap += 40 + strlen(ul->recs[i].name) + (ul->recs[i].ext ? strlen(ul->recs[i].ext) : 0);
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t n = (size_t)snprintf(s, cap, "3 V%u N%u G%s%s%s\n", (unsigned)ul->uidvalidity, (unsigned)ul->nextuid,
		ul->guid, ul->hdr_ext ? " " : "", ul->hdr_ext ? ul->hdr_ext : "");
	for (size_t i = 0; i < ul->n && n < cap; i++) {
		const struct uidlist_rec *r = &ul->recs[i];
		if (r->ext)
			n += (size_t)snprintf(s + n, cap - n, "%u %s :%s\n", (unsigned)r->uid, r->ext, r->name);
		else if (r->vsize)
			n += (size_t)snprintf(s + n, cap - n, "%u W%llu :%s\n", (unsigned)r->uid,
				(unsigned long long)r->vsize, r->name);
		else
			n += (size_t)snprintf(s + n, cap - n, "%u :%s\n", (unsigned)r->uid, r->name);
	}
	*len = n < cap ? n : cap - 1;
	return s;
}

/* --- files ------------------------------------------------------------------- */

/* The whole of <dir>/<file> (bounded); NULL with *missing when absent. */
static char *read_small(const char *dir, const char *file, size_t max, size_t *len, bool *missing, char *err,
	size_t errsz)
{
	char path[PATH_LEN];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	*missing = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*missing = errno == ENOENT;
		if (!*missing)
			snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > max) {
		snprintf(err, errsz, "%s: unreadable or larger than %zu bytes", path, max);
		goto out;
	}
	/* The file may grow while read (Dovecot appends records): read to EOF, bounded. */
	size_t cap = (size_t)st.st_size + 4096, n = 0;
	buf = malloc(cap + 1);
	while (buf) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errsz, "cannot read %s: %s", path, strerror(errno));
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			char *nb = cap * 2 <= max ? realloc(buf, cap * 2 + 1) : NULL;
			if (!nb) {
				snprintf(err, errsz, "%s: larger than %zu bytes", path, max);
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
out:
	close(fd);
	return buf;
}

bool uidlist_read(const char *dir, struct uidlist *out, bool *exists, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	size_t len = 0;
	bool missing;
	char *text = read_small(dir, UIDLIST_FILE, UIDLIST_FILE_MAX, &len, &missing, err, errsz);
	*exists = !missing;
	if (!text)
		return missing;
	bool ok = uidlist_parse(text, len, out, NULL);
	free(text);
	if (!ok) {
		*exists = false;   /* an unusable header: rebuilt like a lost file */
		return true;
	}
	return true;
}

/* --- dotlock ---------------------------------------------------------------- */

/* Remove a lock nobody has touched for UIDLIST_LOCK_STALE seconds: its writer died.
 * The inode is compared so a lock just re-created by a live writer stays. */
static void remove_if_stale(const char *lock, time_t now)
{
	struct stat st;
	if (stat(lock, &st) != 0 || now - st.st_mtime < UIDLIST_LOCK_STALE)
		return;
	struct stat again;
	if (stat(lock, &again) == 0 && again.st_ino == st.st_ino && again.st_mtime == st.st_mtime)
		unlink(lock);
}

int dotlock_open(const char *dir, const char *file, char *err, size_t errsz)
{
	char lock[PATH_LEN];
	snprintf(lock, sizeof(lock), "%s/%s.lock", dir, file);
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	long delay_us = 1000;
	for (;;) {
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			snprintf(err, errsz, "cannot create %s: %s", lock, strerror(errno));
			return -1;
		}
		remove_if_stale(lock, time(NULL));
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= UIDLIST_LOCK_WAIT) {
			snprintf(err, errsz, "%s is held by another program for more than %d seconds", lock,
				UIDLIST_LOCK_WAIT);
			return -1;
		}
		usleep((useconds_t)delay_us);
		if (delay_us < 100000)
			delay_us *= 2;
	}
}

bool dotlock_commit(int fd, const char *dir, const char *file, const char *data, size_t len, char *err,
	size_t errsz)
{
	char lock[PATH_LEN], path[PATH_LEN];
	snprintf(lock, sizeof(lock), "%s/%s.lock", dir, file);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!fileio_write_all(fd, data, len) || fileio_fsync(fd) != 0) {
		snprintf(err, errsz, "cannot write %s: %s", lock, strerror(errno));
		dotlock_abandon(fd, dir, file);
		return false;
	}
	/* Dovecot opens these files for reading as the mail user: 0600 is enough for the
	 * lock while written, the published file gets the usual 0600 too. */
	close(fd);
	if (rename(lock, path) != 0) {
		snprintf(err, errsz, "cannot rename %s: %s", lock, strerror(errno));
		unlink(lock);
		return false;
	}
	fileio_fsync_dir(dir);
	return true;
}

void dotlock_abandon(int fd, const char *dir, const char *file)
{
	char lock[PATH_LEN];
	snprintf(lock, sizeof(lock), "%s/%s.lock", dir, file);
	if (fd >= 0)
		close(fd);
	unlink(lock);
}

/* --- dovecot-keywords --------------------------------------------------------- */

bool keywords_valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 100)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		/* atom-specials (RFC 3501 §9): ( ) { SP CTL % * " \ ] */
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c))
			return false;
	}
	return true;
}

void keywords_parse(const char *text, size_t len, struct keywords *out)
{
	memset(out, 0, sizeof(*out));
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		uint64_t idx;
		const char *s = p;
		if (parse_num(&s, le, 1000, &idx) && idx < 26 && s < le && *s == ' ' && !out->names[idx]) {
			char *name = dup_n(s + 1, (size_t)(le - s - 1));
			bool dup = false;
			for (int i = 0; name && i < 26; i++)
				if (out->names[i] && strcasecmp(out->names[i], name) == 0)
					dup = true;
			if (name && !dup && keywords_valid_name(name))
				out->names[idx] = name;
			else
				free(name);
		}
		p = nl ? nl + 1 : end;
	}
}

char *keywords_format(const struct keywords *kw, size_t *len)
{
	size_t cap = 26 * 110 + 1, n = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	for (int i = 0; i < 26; i++)
		if (kw->names[i])
			n += (size_t)snprintf(s + n, cap - n, "%d %s\n", i, kw->names[i]);
	*len = n;
	return s;
}

void keywords_free(struct keywords *kw)
{
	for (int i = 0; i < 26; i++)
		free(kw->names[i]);
	memset(kw, 0, sizeof(*kw));
}
