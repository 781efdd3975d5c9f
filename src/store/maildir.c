/* maildir.c - Maildir++ delivery (see maildir.h).
 *
 * Unique names follow the Maildir convention Dovecot uses:
 *   <seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>,W=<vsize>
 * ("/" and ":" in the host name are replaced, as the Maildir spec asks). */
#include "store/maildir.h"

#include "util/fileio.h"
#include "util/log.h"

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
		if (!fileio_mkdir_p(p, 0700)) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			return false;
		}
	}
	return true;
}

static void unique_base(char *out, size_t outsz)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	char host[256];
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':' || *p == ',')
			*p = '_';
	unsigned q = atomic_fetch_add(&delivery_counter, 1);
	snprintf(out, outsz, "%lld.M%06ldP%ldQ%u.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		(long)getpid(), q, host);
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

enum store_result maildir_deliver(const char *path, const char *prefix, int fd, off_t offset,
	uint64_t size, char *name_out, size_t name_outsz, char *err, size_t errlen)
{
	if (!maildir_create(path, err, errlen))
		return STORE_TEMP;
	char base[512], tmp[1400], dst[1500], newdir[1200];
	unique_base(base, sizeof(base));
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", path, base);
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
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
	} else if (fsync(out) != 0) {
		snprintf(err, errlen, "fsync of %s failed: %s", tmp, strerror(errno));
		ok = false;
	}
	close(out);
	if (!ok) {
		unlink(tmp);
		return errno == EDQUOT || errno == ENOSPC ? STORE_TEMP : STORE_TEMP;
	}
	snprintf(name_out, name_outsz, "new/%s,S=%" PRIu64 ",W=%" PRIu64, base, written, written + lfs);
	snprintf(dst, sizeof(dst), "%s/%s", path, name_out);
	if (rename(tmp, dst) != 0) {
		snprintf(err, errlen, "rename to %s failed: %s", dst, strerror(errno));
		unlink(tmp);
		return STORE_TEMP;
	}
	snprintf(newdir, sizeof(newdir), "%s/new", path);
	if (!fileio_fsync_dir(newdir))
		log_event(LOG_WARN, "maildir_fsync", "dir=%s error=\"%s\"", newdir, strerror(errno));
	return STORE_OK;
}
