/* queue.c - the durable spool (see queue.h for the file format).
 *
 * Envelope records are "key value" lines; values are percent-encoded (bytes outside
 * 0x21..0x7e and '%' become %XX) so a record is always one line whatever the
 * client sent.  Keys: qid, arrival, client-addr, client-name, helo, protocol,
 * smtputf8, eightbit, sender, rcpt (one per recipient, in order). */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/parse.h"

#define QUEUE_MAGIC "POSTERN-QUEUE 1\n"
#define WRITE_BUF (64u << 10)
#define HEADER_MAX (8u << 20)

/* The space watch (see queue.h); the loop and the commit threads report to it. */
struct space_watch {
	pthread_mutex_t lock;
	uint64_t min_free;
	time_t checked;         /* monotonic seconds of the last statvfs; 0: never */
	uint64_t free;          /* bytes available to us then */
	bool known;             /* the last statvfs worked */
	bool low;               /* the condition holds (logged) */
	time_t logged;          /* last queue_space_low line */
	time_t exhausted;       /* last write that failed for lack of space */
};

struct queue {
	char root[1024];        /* data_dir/queue */
	int active_dirfd;
	int state_dirfd;
	struct space_watch space;
	int failed_dirfd;
};

void (*queue_crash_point)(const char *step);

static void crash_point(const char *step)
{
	if (queue_crash_point)
		queue_crash_point(step);
}

struct queue_writer {
	struct queue *q;
	char qid[QUEUE_ID_LEN + 1];
	char path[1100];
	int fd;
	struct buf wbuf;
	uint64_t body_size;
	bool failed;
	bool no_space;          /* failed with ENOSPC or EDQUOT */
	bool committed;
};

static void space_exhausted(struct queue *q);

/* A write failed: remember whether for lack of space (logged by the space watch, once
 * a minute) or for another reason (logged here, it is rare and each one matters). */
static void writer_failed(struct queue_writer *w, const char *op)
{
	int e = errno;
	w->failed = true;
	if (e == ENOSPC || e == EDQUOT) {
		w->no_space = true;
		space_exhausted(w->q);
	} else {
		log_event(LOG_ERR, "spool_error", "qid=%s op=%s error=\"%s\"", w->qid, op, strerror(e));
	}
	errno = e;
}

/* Remove leftovers of messages that were never acknowledged. */
static void clean_incoming(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			log_event(LOG_INFO, "spool_cleanup", "file=%s reason=\"never acknowledged\"", e->d_name);
	}
	closedir(d);
}

static bool queue_open_mode(struct queue **qp, const char *data_dir, bool server, char *err, size_t errlen);

bool queue_open(struct queue **qp, const char *data_dir, char *err, size_t errlen)
{
	return queue_open_mode(qp, data_dir, true, err, errlen);
}

bool queue_attach(struct queue **qp, const char *data_dir, char *err, size_t errlen)
{
	return queue_open_mode(qp, data_dir, false, err, errlen);
}

static bool queue_open_mode(struct queue **qp, const char *data_dir, bool server, char *err, size_t errlen)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	q->active_dirfd = q->state_dirfd = q->failed_dirfd = -1;
	pthread_mutex_init(&q->space.lock, NULL);
	snprintf(q->root, sizeof(q->root), "%s/queue", data_dir);
	static const char *const subdirs[] = { "incoming", "active", "state", "failed" };
	for (size_t i = 0; i < 4; i++) {
		char p[1100];
		snprintf(p, sizeof(p), "%s/%s", q->root, subdirs[i]);
		if (!fileio_mkdir_p(p, 0700)) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			pthread_mutex_destroy(&q->space.lock);
			free(q);
			return false;
		}
	}
	char p[1100];
	snprintf(p, sizeof(p), "%s/incoming", q->root);
	if (server)
		clean_incoming(p);   /* only the server, at start: files there were never acknowledged */
	snprintf(p, sizeof(p), "%s/active", q->root);
	q->active_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/state", q->root);
	q->state_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->state_dirfd >= 0) {
		snprintf(p, sizeof(p), "%s/failed", q->root);
		q->failed_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (q->active_dirfd < 0 || q->state_dirfd < 0 || q->failed_dirfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno));
		queue_close(&q);
		return false;
	}
	*qp = q;
	return true;
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;
	if (!q)
		return;
	if (q->active_dirfd >= 0)
		close(q->active_dirfd);
	if (q->state_dirfd >= 0)
		close(q->state_dirfd);
	pthread_mutex_destroy(&q->space.lock);
	if (q->failed_dirfd >= 0)
		close(q->failed_dirfd);
	free(q);
	*qp = NULL;
}

const char *queue_dir(const struct queue *q)
{
	return q->root;
}

/* --- envelope encoding ---------------------------------------------------- */

static void put_record(struct buf *b, const char *key, const char *val)
{
	buf_appends(b, key);
	buf_appendc(b, ' ');
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (*p < 0x21 || *p > 0x7e || *p == '%')
			buf_printf(b, "%%%02X", *p);
		else
			buf_appendc(b, (char)*p);
	}
	buf_appendc(b, '\n');
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode a percent-encoded value into out (NUL-terminated); false if malformed or long. */
static bool get_value(const char *p, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (char)(h * 16 + l);
			if (c == '\0')
				return false;
			i += 2;
		} else if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
			return false;
		}
		if (o + 1 >= outsz)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

static bool envelope_encode(struct buf *b, const struct queue_envelope *env)
{
	char num[32];
	buf_appends(b, QUEUE_MAGIC);
	put_record(b, "qid", env->qid);
	snprintf(num, sizeof(num), "%lld", (long long)env->arrival);
	put_record(b, "arrival", num);
	put_record(b, "client-addr", env->client_addr);
	put_record(b, "client-name", env->client_name);
	put_record(b, "helo", env->helo);
	put_record(b, "protocol", env->protocol);
	put_record(b, "smtputf8", env->smtputf8 ? "1" : "0");
	put_record(b, "eightbit", env->eightbit ? "1" : "0");
	put_record(b, "sender", env->sender);
	if (env->envid[0])
		put_record(b, "envid", env->envid);
	if (env->ret)
		put_record(b, "ret", env->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
	for (size_t i = 0; i < env->n_rcpts; i++) {
		put_record(b, "rcpt", env->rcpts[i]);
		if (env->notify && env->notify[i]) {
			snprintf(num, sizeof(num), "%u", env->notify[i]);
			put_record(b, "notify", num);
		}
		if (env->orcpt && env->orcpt[i][0])
			put_record(b, "orcpt", env->orcpt[i]);
	}
	buf_appendc(b, '\n');
	return !b->truncated;
}

void queue_envelope_free(struct queue_envelope *env)
{
	free(env->rcpts);
	free(env->notify);
	free(env->orcpt);
	env->rcpts = NULL;
	env->notify = NULL;
	env->orcpt = NULL;
	env->n_rcpts = 0;
}

/* Arrays sized for `cap` recipients (the rcpts array's capacity). */
static bool dsn_arrays(struct queue_envelope *env, size_t cap, bool want_orcpt)
{
	if (!env->notify) {
		env->notify = calloc(cap ? cap : 1, 1);
		if (!env->notify)
			return false;
	}
	if (want_orcpt && !env->orcpt) {
		env->orcpt = calloc(cap ? cap : 1, QUEUE_ADDR_MAX);
		if (!env->orcpt)
			return false;
	}
	return true;
}

bool queue_envelope_set_dsn(struct queue_envelope *env, size_t i, unsigned char notify, const char *orcpt)
{
	if (i >= env->n_rcpts || !dsn_arrays(env, env->n_rcpts, orcpt && orcpt[0]))
		return false;
	env->notify[i] = notify;
	if (orcpt && orcpt[0])
		snprintf(env->orcpt[i], QUEUE_ADDR_MAX, "%s", orcpt);
	return true;
}

long queue_envelope_parse(const char *data, size_t len, struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	size_t ml = strlen(QUEUE_MAGIC);
	if (len < ml || memcmp(data, QUEUE_MAGIC, ml) != 0)
		return -1;
	size_t pos = ml, cap = 0;
	bool have_qid = false, have_sender = false;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl)
			goto bad;
		size_t n = (size_t)(nl - (data + pos));
		const char *line = data + pos;
		pos += n + 1;
		if (n == 0) {
			if (!have_qid || !have_sender || env->n_rcpts == 0)
				goto bad;
			return (long)pos;
		}
		const char *sp = memchr(line, ' ', n);
		if (!sp)
			goto bad;
		size_t kl = (size_t)(sp - line);
		const char *v = sp + 1;
		size_t vl = n - kl - 1;
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(line, k, kl) == 0)
		char tmp[32];
		if (KEY("qid")) {
			if (!get_value(v, vl, env->qid, sizeof(env->qid)) || !id_is_queue_id(env->qid))
				goto bad;
			have_qid = true;
		} else if (KEY("arrival")) {
			uint64_t t;
			if (!parse_u64(v, vl, &t) || t > INT64_MAX)
				goto bad;
			env->arrival = (time_t)t;
		} else if (KEY("client-addr")) {
			if (!get_value(v, vl, env->client_addr, sizeof(env->client_addr)))
				goto bad;
		} else if (KEY("client-name")) {
			if (!get_value(v, vl, env->client_name, sizeof(env->client_name)))
				goto bad;
		} else if (KEY("helo")) {
			if (!get_value(v, vl, env->helo, sizeof(env->helo)))
				goto bad;
		} else if (KEY("protocol")) {
			if (!get_value(v, vl, env->protocol, sizeof(env->protocol)))
				goto bad;
		} else if (KEY("smtputf8") || KEY("eightbit")) {
			if (!get_value(v, vl, tmp, sizeof(tmp)) || (strcmp(tmp, "0") && strcmp(tmp, "1")))
				goto bad;
			if (KEY("smtputf8"))
				env->smtputf8 = tmp[0] == '1';
			else
				env->eightbit = tmp[0] == '1';
		} else if (KEY("sender")) {
			if (!get_value(v, vl, env->sender, sizeof(env->sender)))
				goto bad;
			have_sender = true;
		} else if (KEY("rcpt")) {
			if (env->n_rcpts >= QUEUE_MAX_RCPTS)
				goto bad;
			if (env->n_rcpts == cap) {
				size_t nc = cap ? cap * 2 : 4;
				void *p = realloc(env->rcpts, nc * sizeof(*env->rcpts));
				if (!p)
					goto bad;
				env->rcpts = p;
				if (env->notify) {
					unsigned char *np = realloc(env->notify, nc);
					if (!np)
						goto bad;
					memset(np + cap, 0, nc - cap);
					env->notify = np;
				}
				if (env->orcpt) {
					char (*op)[QUEUE_ADDR_MAX] = realloc(env->orcpt, nc * sizeof(*env->orcpt));
					if (!op)
						goto bad;
					memset(op + cap, 0, (nc - cap) * sizeof(*op));
					env->orcpt = op;
				}
				cap = nc;
			}
			if (!get_value(v, vl, env->rcpts[env->n_rcpts], QUEUE_ADDR_MAX) || !env->rcpts[env->n_rcpts][0])
				goto bad;
			env->n_rcpts++;
		} else if (KEY("notify")) {
			uint64_t f;
			if (env->n_rcpts == 0 || !parse_u64(v, vl, &f) || f == 0 || f > 15 || !dsn_arrays(env, cap, false))
				goto bad;
			env->notify[env->n_rcpts - 1] = (unsigned char)f;
		} else if (KEY("orcpt")) {
			if (env->n_rcpts == 0 || !dsn_arrays(env, cap, true) ||
				!get_value(v, vl, env->orcpt[env->n_rcpts - 1], QUEUE_ADDR_MAX))
				goto bad;
		} else if (KEY("envid")) {
			if (!get_value(v, vl, env->envid, sizeof(env->envid)))
				goto bad;
		} else if (KEY("ret")) {
			if (!get_value(v, vl, tmp, sizeof(tmp)))
				goto bad;
			env->ret = strcmp(tmp, "FULL") == 0 ? QUEUE_RET_FULL : strcmp(tmp, "HDRS") == 0 ? QUEUE_RET_HDRS : -1;
			if (env->ret < 0)
				goto bad;
		}
		/* Unknown keys are skipped: newer versions may add records. */
#undef KEY
	}
bad:
	queue_envelope_free(env);
	return -1;
}

/* --- writing -------------------------------------------------------------- */

static bool writer_flush(struct queue_writer *w)
{
	if (w->failed)
		return false;
	if (w->wbuf.len && !fileio_write_all(w->fd, w->wbuf.data, w->wbuf.len))
		writer_failed(w, "write");
	buf_reset(&w->wbuf);
	return !w->failed;
}

struct queue_writer *queue_writer_open(struct queue *q, const struct queue_envelope *env,
	char *err, size_t errlen)
{
	struct queue_writer *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->q = q;
	w->fd = -1;
	snprintf(w->qid, sizeof(w->qid), "%s", env->qid);
	snprintf(w->path, sizeof(w->path), "%s/incoming/%s", q->root, env->qid);
	buf_init(&w->wbuf, HEADER_MAX);
	w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot create %s: %s", w->path, strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			space_exhausted(q);
		buf_free(&w->wbuf);
		free(w);
		errno = e;   /* the caller tells "out of space" from other failures */
		return NULL;
	}
	if (!envelope_encode(&w->wbuf, env) || !writer_flush(w)) {
		int e = w->no_space ? ENOSPC : EIO;
		snprintf(err, errlen, "cannot write the envelope of %s", env->qid);
		queue_writer_free(&w);
		errno = e;
		return NULL;
	}
	return w;
}

bool queue_writer_write(struct queue_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return false;
	w->body_size += n;
	if (w->wbuf.len + n > WRITE_BUF) {
		if (!writer_flush(w))
			return false;
		if (n >= WRITE_BUF) {
			if (!fileio_write_all(w->fd, p, n))
				writer_failed(w, "write");
			return !w->failed;
		}
	}
	buf_append(&w->wbuf, p, n);
	return true;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->body_size;
}

bool queue_writer_no_space(const struct queue_writer *w)
{
	return w->no_space;
}

bool queue_writer_commit(struct queue_writer *w, char *err, size_t errlen)
{
	char trailer[QUEUE_TRAILER_LEN + 1];
	snprintf(trailer, sizeof(trailer), "\nEND %020" PRIu64 " POSTERN\n", w->body_size);
	buf_append(&w->wbuf, trailer, QUEUE_TRAILER_LEN);
	if (!writer_flush(w)) {
		snprintf(err, errlen, "write failed: %s", strerror(errno));
		return false;
	}
	/* Invariant 1: data on disk, then the name, then the directory entry. */
	if (fsync(w->fd) != 0) {
		snprintf(err, errlen, "fsync failed: %s", strerror(errno));
		writer_failed(w, "fsync");
		return false;
	}
	close(w->fd);
	w->fd = -1;
	char dst[1100];
	snprintf(dst, sizeof(dst), "%s/active/%s", w->q->root, w->qid);
	if (rename(w->path, dst) != 0) {
		snprintf(err, errlen, "rename to %s failed: %s", dst, strerror(errno));
		w->failed = true;
		return false;
	}
	w->committed = true;
	if (fsync(w->q->active_dirfd) != 0) {
		/* The file is in place but its name may not be durable: refuse the 250; the
		 * client retries, and at worst the message is delivered twice, never lost. */
		snprintf(err, errlen, "directory fsync failed: %s", strerror(errno));
		return false;
	}
	return true;
}

void queue_writer_free(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed)
		unlink(w->path);
	buf_free(&w->wbuf);
	free(w);
	*wp = NULL;
}

/* --- reading -------------------------------------------------------------- */

static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISLNK(mode))
		return "a symbolic link";
	return "not a regular file";
}

/* Open dirfd/name for reading as a spool file: never follow a symbolic link (one in
 * active/ could point anywhere, and its target would be delivered), never block (a
 * FIFO would hold a delivery thread in open() for ever), and accept only a regular
 * file.  Returns the descriptor (blocking again) or -1 with the reason in err; a
 * missing file says strerror(ENOENT) and leaves errno ENOENT. */
static int open_spool_file(int dirfd, const char *name, char *err, size_t errlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			snprintf(err, errlen, "a symbolic link, not a queue file (refused: it could point outside the queue)");
		else
			snprintf(err, errlen, "cannot open: %s", strerror(e));
		errno = e;
		return -1;
	}
	struct stat sb;
	bool statted = fstat(fd, &sb) == 0;
	if (!statted || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s, not a queue file (refused)", statted ? file_kind(sb.st_mode) : "unreadable");
		close(fd);
		errno = EINVAL;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

static bool message_open_at(int dirfd, const char *qid, struct queue_message *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (!id_is_queue_id(qid)) {
		snprintf(err, errlen, "not a queue id");
		return false;
	}
	int fd = open_spool_file(dirfd, qid, err, errlen);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)QUEUE_TRAILER_LEN) {
		snprintf(err, errlen, "file too short to be complete");
		close(fd);
		return false;
	}
	/* Read the envelope: grow until the blank line that ends it. */
	size_t want = 4096, have = 0;
	char *hdr = NULL;
	long body = -1;
	for (;;) {
		if (want > HEADER_MAX)
			want = HEADER_MAX;
		char *p = realloc(hdr, want);
		if (!p)
			break;
		hdr = p;
		ssize_t r = pread(fd, hdr + have, want - have, (off_t)have);
		if (r <= 0)
			break;
		have += (size_t)r;
		if (memmem(hdr, have, "\n\n", 2)) {
			body = queue_envelope_parse(hdr, have, &m->env);
			break;
		}
		if (have < want || want == HEADER_MAX)
			break;
		want *= 2;
	}
	free(hdr);
	if (body < 0) {
		snprintf(err, errlen, "malformed envelope");
		close(fd);
		return false;
	}
	char trailer[QUEUE_TRAILER_LEN + 1] = { 0 };
	uint64_t size = 0;
	if (pread(fd, trailer, QUEUE_TRAILER_LEN, st.st_size - QUEUE_TRAILER_LEN) != QUEUE_TRAILER_LEN ||
		memcmp(trailer, "\nEND ", 5) != 0 || memcmp(trailer + 25, " POSTERN\n", 9) != 0 ||
		!parse_u64(trailer + 5, 20, &size) ||
		(uint64_t)st.st_size != (uint64_t)body + size + QUEUE_TRAILER_LEN) {
		snprintf(err, errlen, "incomplete file (no valid end record)");
		queue_envelope_free(&m->env);
		close(fd);
		return false;
	}
	m->fd = fd;
	m->body_offset = body;
	m->body_size = size;
	return true;
}

bool queue_message_open(struct queue *q, const char *qid, struct queue_message *m,
	char *err, size_t errlen)
{
	return message_open_at(q->active_dirfd, qid, m, err, errlen);
}

bool queue_failed_open(struct queue *q, const char *qid, struct queue_message *m, char *err, size_t errlen)
{
	return message_open_at(q->failed_dirfd, qid, m, err, errlen);
}

void queue_failed_describe(struct queue *q, const char *qid, char *out, size_t outsz)
{
	struct queue_message m;
	if (queue_failed_open(q, qid, &m, out, outsz)) {
		snprintf(out, outsz, "a complete queue file");
		queue_message_close(&m);
	}
}

void queue_message_close(struct queue_message *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	queue_envelope_free(&m->env);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static bool list_dir(struct queue *q, const char *sub, void (*cb)(void *arg, const char *qid), void *arg);

bool queue_list_active(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg)
{
	return list_dir(q, "active", cb, arg);
}

bool queue_list_failed(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg)
{
	return list_dir(q, "failed", cb, arg);
}

static bool list_dir(struct queue *q, const char *sub, void (*cb)(void *arg, const char *qid), void *arg)
{
	char p[1100];
	snprintf(p, sizeof(p), "%s/%s", q->root, sub);
	DIR *d = opendir(p);
	if (!d)
		return false;
	size_t n = 0, cap = 0;
	char (*ids)[QUEUE_ID_LEN + 1] = NULL;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!id_is_queue_id(e->d_name))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *np = realloc(ids, nc * sizeof(*ids));
			if (!np)
				break;
			ids = np;
			cap = nc;
		}
		memcpy(ids[n++], e->d_name, QUEUE_ID_LEN + 1);
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_str);
	for (size_t i = 0; i < n; i++)
		cb(arg, ids[i]);
	free(ids);
	return true;
}

/* --- recipient state ------------------------------------------------------ */
/* queue/state/<qid>:
 *   POSTERN-STATE 2\n
 *   held 0|1\n
 *   delay-notified 0|1\n
 *   r <index> <state> <attempts> <next_try> <last reply, percent-encoded, or ->\n ...
 * Written whole to a temporary file, fsync'd and renamed: never half updated. */

#define STATE_MAGIC "POSTERN-STATE 2\n"
#define STATE_MAX (QUEUE_MAX_RCPTS * (QUEUE_REPLY_MAX * 3 + 64) + 256)

void queue_state_free(struct queue_state *st)
{
	free(st->r);
	st->r = NULL;
	st->n = 0;
}

static bool state_alloc(struct queue_state *st, size_t n)
{
	memset(st, 0, sizeof(*st));
	st->r = calloc(n ? n : 1, sizeof(*st->r));
	st->n = n;
	return st->r != NULL;
}

bool queue_state_parse(const char *data, size_t len, size_t n, struct queue_state *st)
{
	if (!state_alloc(st, n))
		return false;
	size_t ml = strlen(STATE_MAGIC);
	if (len < ml || memcmp(data, STATE_MAGIC, ml) != 0)
		goto bad;
	size_t pos = ml, seen = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl)
			goto bad;
		size_t ll = (size_t)(nl - (data + pos));
		char line[QUEUE_REPLY_MAX * 3 + 128];
		if (ll >= sizeof(line))
			goto bad;
		memcpy(line, data + pos, ll);
		line[ll] = '\0';
		pos += ll + 1;
		unsigned long long idx, state, attempts;
		long long next;
		char reply[QUEUE_REPLY_MAX * 3 + 1];
		int consumed = 0;
		if (strcmp(line, "held 1") == 0 || strcmp(line, "held 0") == 0) {
			st->held = line[5] == '1';
		} else if (strcmp(line, "delay-notified 1") == 0 || strcmp(line, "delay-notified 0") == 0) {
			st->delay_notified = line[15] == '1';
		} else if (sscanf(line, "r %llu %llu %llu %lld %n", &idx, &state, &attempts, &next, &consumed) == 4 &&
			consumed > 0) {
			/* Every recipient once, in order: a file for another message is refused. */
			if (idx != seen || idx >= n || state > RCPT_FAILED || attempts > 1000000)
				goto bad;
			seen++;
			snprintf(reply, sizeof(reply), "%s", line + consumed);
			struct queue_rcpt_state *r = &st->r[idx];
			r->state = (unsigned char)state;
			r->attempts = (unsigned)attempts;
			r->next_try = next;
			if (strcmp(reply, "-") != 0 && !get_value(reply, strlen(reply), r->last_reply, sizeof(r->last_reply)))
				goto bad;
		} else {
			goto bad;
		}
	}
	if (seen != n)
		goto bad;
	return true;
bad:
	queue_state_free(st);
	return false;
}

/* What can be read of a damaged state file: every "r" record whose index, state
 * and the space after the state are intact, each recipient once; anything else
 * (garbage, a cut line, another message's records) is skipped.  A recipient with no
 * readable record stays pending: delivering it again is better than losing it. */
static void state_salvage(const char *data, size_t len, size_t n, struct queue_state *st)
{
	bool *seen = calloc(n ? n : 1, sizeof(bool));
	if (!seen)
		return;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (data + pos)) : len - pos;
		char line[QUEUE_REPLY_MAX * 3 + 128];
		bool fits = ll < sizeof(line);
		if (fits) {
			memcpy(line, data + pos, ll);
			line[ll] = '\0';
		}
		pos += ll + 1;
		unsigned long long idx, state, attempts = 0;
		long long next = 0;
		int after_state = 0, consumed = 0;
		if (!fits || sscanf(line, "r %llu %llu%n", &idx, &state, &after_state) != 2 || line[after_state] != ' ' ||
			idx >= n || seen[idx] || state > RCPT_FAILED)
			continue;
		seen[idx] = true;
		st->recovered++;
		struct queue_rcpt_state *r = &st->r[idx];
		r->state = (unsigned char)state;
		if (sscanf(line + after_state, " %llu %lld %n", &attempts, &next, &consumed) == 2 && consumed > 0 &&
			attempts <= 1000000) {
			r->attempts = (unsigned)attempts;
			r->next_try = next;
			const char *reply = line + after_state + consumed;
			if (strcmp(reply, "-") == 0 || !get_value(reply, strlen(reply), r->last_reply, sizeof(r->last_reply)))
				r->last_reply[0] = '\0';
		}
	}
	free(seen);
}

/* The whole file, if it is a regular file of a sane size; NULL with the reason. */
static char *state_slurp(struct queue *q, const char *qid, size_t *len, bool *missing, char *why, size_t whysz)
{
	*missing = false;
	int fd = open_spool_file(q->state_dirfd, qid, why, whysz);
	if (fd < 0) {
		*missing = errno == ENOENT;
		return NULL;
	}
	struct stat sb;
	char *buf = NULL;
	if (fstat(fd, &sb) != 0 || (size_t)sb.st_size > STATE_MAX)
		snprintf(why, whysz, "larger than any state file");
	else if (!(buf = malloc((size_t)sb.st_size + 1)))
		snprintf(why, whysz, "out of memory");
	else if (pread(fd, buf, (size_t)sb.st_size, 0) != sb.st_size) {
		snprintf(why, whysz, "read failed: %s", strerror(errno));
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = buf ? (size_t)sb.st_size : 0;
	return buf;
}

bool queue_state_read(struct queue *q, const char *qid, size_t n, struct queue_state *st)
{
	size_t len = 0;
	bool missing;
	char why[128] = "";
	char *buf = state_slurp(q, qid, &len, &missing, why, sizeof(why));
	if (!buf && missing)
		return state_alloc(st, n);   /* no state yet: all pending */
	if (buf && queue_state_parse(buf, len, n, st)) {
		free(buf);
		return true;
	}
	if (buf)
		snprintf(why, sizeof(why), "%s", len == 0 ? "empty" : "malformed, truncated or for another message");
	bool ok = queue_state_recover(buf ? buf : "", buf ? len : 0, n, st);
	if (ok)
		snprintf(st->damage, sizeof(st->damage), "%s", why);
	free(buf);
	return ok;
}

bool queue_state_recover(const char *data, size_t len, size_t n, struct queue_state *st)
{
	if (!state_alloc(st, n))
		return false;
	st->damaged = true;
	state_salvage(data, len, n, st);
	if (len >= strlen(STATE_MAGIC) && memcmp(data, STATE_MAGIC, strlen(STATE_MAGIC)) == 0) {
		st->held = memmem(data, len, "\nheld 1\n", 8) != NULL;
		st->delay_notified = memmem(data, len, "\ndelay-notified 1\n", 18) != NULL;
	}
	return true;
}

bool queue_state_write(struct queue *q, const char *qid, const struct queue_state *st)
{
	struct buf b;
	buf_init(&b, STATE_MAX);
	buf_appends(&b, STATE_MAGIC);
	buf_printf(&b, "held %d\ndelay-notified %d\n", st->held ? 1 : 0, st->delay_notified ? 1 : 0);
	for (size_t i = 0; i < st->n; i++) {
		const struct queue_rcpt_state *r = &st->r[i];
		buf_printf(&b, "r %zu %u %u %lld ", i, r->state, r->attempts, r->next_try);
		if (r->last_reply[0]) {
			struct buf v;
			buf_init(&v, QUEUE_REPLY_MAX * 3 + 16);
			put_record(&v, "", r->last_reply);   /* " value\n" */
			buf_append(&b, v.data + 1, v.len - 1);
			buf_free(&v);
		} else {
			buf_appends(&b, "-\n");
		}
	}
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", qid);
	bool ok = !b.truncated;
	/* A fresh file: whatever lies at the temporary name (a leftover, a FIFO, a link
	 * planted there) is removed, never opened. */
	unlinkat(q->state_dirfd, tmp, 0);
	int fd = ok ? openat(q->state_dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
	ok = fd >= 0 && fileio_write_all(fd, b.data, b.len) && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	ok = ok && renameat(q->state_dirfd, tmp, q->state_dirfd, qid) == 0 && fsync(q->state_dirfd) == 0;
	if (!ok)
		unlinkat(q->state_dirfd, tmp, 0);
	buf_free(&b);
	return ok;
}

/* The older byte-per-recipient interface, on top of the full state. */
bool queue_state_load(struct queue *q, const char *qid, unsigned char *state, size_t n)
{
	struct queue_state st;
	if (!queue_state_read(q, qid, n, &st))
		return false;
	for (size_t i = 0; i < n; i++)
		state[i] = st.r[i].state;
	queue_state_free(&st);
	return true;
}

bool queue_state_save(struct queue *q, const char *qid, const unsigned char *state, size_t n)
{
	struct queue_state st;
	if (!queue_state_read(q, qid, n, &st))
		return false;
	for (size_t i = 0; i < n; i++)
		st.r[i].state = state[i];
	bool ok = queue_state_write(q, qid, &st);
	queue_state_free(&st);
	return ok;
}

/* The order of removal.  The state file says which recipients are done; the queue
 * file is the message.  A crash between two unlinks leaves one of:
 *   - a queue file without its state (state removed first): at restart every
 *     recipient counts as pending and the message is delivered again to all of
 *     them.  Unsafe: that is the order this replaced.
 *   - a state file without its queue file (queue file removed first): nothing is
 *     delivered (there is no message), and the orphan state is removed by
 *     queue_clean.  Safe.
 * So: unlink the queue file, make that durable (fsync active/), and only then unlink
 * the state file and fsync state/.  queue_move_failed follows the same order. */
bool queue_remove(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (unlinkat(q->active_dirfd, qid, 0) != 0 && errno != ENOENT)
		return false;   /* the message stays, with its state: nothing is redelivered */
	bool ok = fsync(q->active_dirfd) == 0;
	crash_point("queue-file-removed");
	if (!ok)
		return false;   /* its removal may not be durable: keep the state for it */
	ok = unlinkat(q->state_dirfd, qid, 0) == 0 || errno == ENOENT;
	ok = fsync(q->state_dirfd) == 0 && ok;
	crash_point("state-removed");
	return ok;
}

#define WHY_MAX 400

static void why_name(const char *qid, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s.why", qid);
}

/* failed/<qid>.why: written before the move, so a crash leaves at worst a reason
 * without its message (harmless), never a failed message without a reason. */
static void write_why(struct queue *q, const char *qid, const char *why)
{
	char name[64], line[WHY_MAX + 1];
	why_name(qid, name, sizeof(name));
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)why; *p && n < WHY_MAX - 1; p++)
		line[n++] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
	line[n++] = '\n';
	unlinkat(q->failed_dirfd, name, 0);
	int fd = openat(q->failed_dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (fileio_write_all(fd, line, n))
		fsync(fd);
	close(fd);
}

void queue_failed_reason(struct queue *q, const char *qid, char *out, size_t outsz)
{
	char name[64], err[128];
	out[0] = '\0';
	if (!id_is_queue_id(qid) || outsz == 0)
		return;
	why_name(qid, name, sizeof(name));
	int e = errno;
	int fd = open_spool_file(q->failed_dirfd, name, err, sizeof(err));
	if (fd >= 0) {
		ssize_t r = pread(fd, out, outsz - 1, 0);
		out[r > 0 ? r : 0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		close(fd);
	}
	errno = e;
}

bool queue_move_failed(struct queue *q, const char *qid)
{
	return queue_move_failed_why(q, qid, NULL);
}

bool queue_move_failed_why(struct queue *q, const char *qid, const char *why)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (why)
		write_why(q, qid, why);
	/* renameat moves a symbolic link or a FIFO itself, never what it points to. */
	if (renameat(q->active_dirfd, qid, q->failed_dirfd, qid) != 0)
		return false;
	bool ok = fsync(q->failed_dirfd) == 0 && fsync(q->active_dirfd) == 0;
	crash_point("queue-file-moved");
	if (!ok)
		return false;
	ok = unlinkat(q->state_dirfd, qid, 0) == 0 || errno == ENOENT;
	return fsync(q->state_dirfd) == 0 && ok;
}

bool queue_requeue(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	char err[160];
	struct queue_message m;
	if (!queue_failed_open(q, qid, &m, err, sizeof(err))) {
		if (errno != ENOENT)
			errno = EINVAL;   /* a FIFO, a link, a damaged file: it cannot go back */
		return false;
	}
	queue_message_close(&m);
	/* A stale state (there should be none) must not mark recipients done. */
	unlinkat(q->state_dirfd, qid, 0);
	if (fsync(q->state_dirfd) != 0)
		return false;
	if (renameat(q->failed_dirfd, qid, q->active_dirfd, qid) != 0)
		return false;
	char name[64];
	why_name(qid, name, sizeof(name));
	unlinkat(q->failed_dirfd, name, 0);
	return fsync(q->active_dirfd) == 0 && fsync(q->failed_dirfd) == 0;
}

bool queue_remove_failed(struct queue *q, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		errno = EINVAL;
		return false;
	}
	if (unlinkat(q->failed_dirfd, qid, 0) != 0)
		return false;
	char name[64];
	why_name(qid, name, sizeof(name));
	unlinkat(q->failed_dirfd, name, 0);
	return fsync(q->failed_dirfd) == 0;
}

/* --- leftovers -------------------------------------------------------------- */

static bool old_enough(int dirfd, const char *name, time_t now, time_t min_age)
{
	struct stat sb;
	return fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode) &&
		now - sb.st_mtime >= min_age;
}

/* state/: "<qid>.tmp" left by a crash inside queue_state_write, and "<qid>" whose
 * queue file is gone (a crash inside queue_remove, see above).  A state file is only
 * written while its queue file exists in active/, so an old orphan is never needed
 * again; queue ids are never reused. */
static void clean_state(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	int fd = dup(q->state_dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	struct dirent *e;
	size_t seen = 0;
	bool removed = false;
	while (seen++ < max_entries && (e = readdir(d)) != NULL) {
		char id[QUEUE_ID_LEN + 1];
		size_t nl = strlen(e->d_name);
		bool tmp = nl == QUEUE_ID_LEN + 4 && strcmp(e->d_name + QUEUE_ID_LEN, ".tmp") == 0;
		if (tmp) {
			memcpy(id, e->d_name, QUEUE_ID_LEN);
			id[QUEUE_ID_LEN] = '\0';
			if (!id_is_queue_id(id))
				continue;
		} else if (!id_is_queue_id(e->d_name)) {
			continue;
		}
		struct stat sb;
		if (!tmp && (fstatat(q->active_dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT))
			continue;   /* its message is there (or cannot be told): keep */
		if (!old_enough(q->state_dirfd, e->d_name, now, min_age) || unlinkat(q->state_dirfd, e->d_name, 0) != 0)
			continue;
		removed = true;
		if (tmp)
			out->state_tmp++;
		else
			out->orphan_state++;
	}
	closedir(d);
	if (removed)
		fsync(q->state_dirfd);
}

/* active/: only "<qid>" files belong there (they are written in incoming/ and
 * renamed); anything else is junk left by hand or by another program. */
static void clean_active(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	int fd = dup(q->active_dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	struct dirent *e;
	size_t seen = 0;
	bool removed = false;
	while (seen++ < max_entries && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || id_is_queue_id(e->d_name))
			continue;
		if (!old_enough(q->active_dirfd, e->d_name, now, min_age) || unlinkat(q->active_dirfd, e->d_name, 0) != 0)
			continue;
		log_event(LOG_INFO, "spool_cleanup", "dir=active file=%s reason=\"not a queue file\"", e->d_name);
		removed = true;
		out->active_junk++;
	}
	closedir(d);
	if (removed)
		fsync(q->active_dirfd);
}

void queue_clean(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out)
{
	clean_state(q, now, min_age, max_entries, out);
	clean_active(q, now, min_age, max_entries, out);
}

/* --- space for new messages (see queue.h) ------------------------------------ */

#define SPACE_LOG_EVERY 60   /* seconds between two queue_space_low lines */

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1;   /* never 0: 0 means "never checked" */
}

static void space_stat(struct space_watch *sw, int dirfd, time_t now)
{
	struct statvfs vfs;
	sw->checked = now;
	sw->known = fstatvfs(dirfd, &vfs) == 0;
	if (sw->known)
		sw->free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

/* Lock held.  The condition holds: say so when it starts, then once a minute. */
static void space_log_low(struct queue *q, time_t now, const char *why)
{
	struct space_watch *sw = &q->space;
	if (sw->low && now - sw->logged < SPACE_LOG_EVERY)
		return;
	char f[32], m[32];
	log_event(LOG_ERR, "queue_space_low", "path=%s free=\"%s\" free_bytes=%llu min_free=\"%s\" reason=\"%s\" "
		"hint=\"new mail gets 452 4.3.1 until space is freed on this filesystem\"", q->root,
		sw->known ? format_size(sw->free, f, sizeof(f)) : "unknown", (unsigned long long)sw->free,
		format_size(sw->min_free, m, sizeof(m)), why);
	sw->low = true;
	sw->logged = now;
}

static void space_exhausted(struct queue *q)
{
	struct space_watch *sw = &q->space;
	time_t now = mono_now();
	pthread_mutex_lock(&sw->lock);
	sw->exhausted = now;
	space_stat(sw, q->active_dirfd, now);   /* for the log line */
	space_log_low(q, now, "a write failed: no space left on the filesystem");
	/* The failed message is about to be removed: MAIL looks again, not at this figure. */
	sw->checked = 0;
	pthread_mutex_unlock(&sw->lock);
}

void queue_set_min_free(struct queue *q, uint64_t bytes)
{
	pthread_mutex_lock(&q->space.lock);
	q->space.min_free = bytes;
	q->space.checked = 0;
	pthread_mutex_unlock(&q->space.lock);
}

uint64_t queue_space_room(struct queue *q)
{
	struct space_watch *sw = &q->space;
	time_t now = mono_now();
	pthread_mutex_lock(&sw->lock);
	if (sw->checked != now)
		space_stat(sw, q->active_dirfd, now);
	uint64_t room = !sw->known ? UINT64_MAX : sw->free > sw->min_free ? sw->free - sw->min_free : 0;
	if (room == 0) {
		space_log_low(q, now, "free space is at or below [queue] min_free");
	} else if (sw->low && now - sw->exhausted >= SPACE_LOG_EVERY) {
		/* Room again, and no write has failed for a minute: the condition is over. */
		char f[32];
		log_event(LOG_INFO, "queue_space_ok", "path=%s free=\"%s\" free_bytes=%llu", q->root,
			sw->known ? format_size(sw->free, f, sizeof(f)) : "unknown", (unsigned long long)sw->free);
		sw->low = false;
	}
	pthread_mutex_unlock(&sw->lock);
	return room;
}
