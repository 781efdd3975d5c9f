/* state.c - per-recipient delivery state (queue/state/<qid>): reading, writing whole
 * and durably, and salvaging what can be read of a damaged file. */
#include "queue/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/buf.h"
#include "util/fileio.h"

/* queue/state/<qid>:
 *   POSTERN-STATE 2\n
 *   held 0|1\n
 *   [hold-reason <why, percent-encoded>\n]      when held at the commit (a content filter)
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
		} else if (strncmp(line, "hold-reason ", 12) == 0) {
			if (!queue_value_decode(line + 12, strlen(line + 12), st->hold_reason, sizeof(st->hold_reason)))
				goto bad;
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
			if (strcmp(reply, "-") != 0 && !queue_value_decode(reply, strlen(reply), r->last_reply, sizeof(r->last_reply)))
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
			if (strcmp(reply, "-") == 0 || !queue_value_decode(reply, strlen(reply), r->last_reply, sizeof(r->last_reply)))
				r->last_reply[0] = '\0';
		}
	}
	free(seen);
}

/* The whole file, if it is a regular file of a sane size; NULL with the reason. */
static char *state_slurp(struct queue *q, const char *qid, size_t *len, bool *missing, char *why, size_t whysz)
{
	*missing = false;
	int fd = queue_spool_open(q->state_dirfd, qid, why, whysz);
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

bool queue_state_fresh(struct queue_state *st, size_t n)
{
	return state_alloc(st, n);
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
		st->on_disk = true;
		return true;
	}
	if (buf)
		snprintf(why, sizeof(why), "%s", len == 0 ? "empty" : "malformed, truncated or for another message");
	bool ok = queue_state_recover(buf ? buf : "", buf ? len : 0, n, st);
	if (ok) {
		snprintf(st->damage, sizeof(st->damage), "%s", why);
		st->on_disk = true;   /* something is there (perhaps not a file): queue_done removes it */
	}
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
		const char *why = memmem(data, len, "\nhold-reason ", 13);
		const char *end = why ? memchr(why + 13, '\n', len - (size_t)(why + 13 - data)) : NULL;
		if (st->held && end && !queue_value_decode(why + 13, (size_t)(end - (why + 13)), st->hold_reason,
			sizeof(st->hold_reason)))
			st->hold_reason[0] = '\0';
		st->delay_notified = memmem(data, len, "\ndelay-notified 1\n", 18) != NULL;
	}
	return true;
}

bool queue_state_write(struct queue *q, const char *qid, const struct queue_state *st)
{
	struct buf b;
	buf_init(&b, STATE_MAX);
	buf_appends(&b, STATE_MAGIC);
	buf_printf(&b, "held %d\n", st->held ? 1 : 0);
	if (st->held && st->hold_reason[0])
		queue_record_put(&b, "hold-reason", st->hold_reason);
	buf_printf(&b, "delay-notified %d\n", st->delay_notified ? 1 : 0);
	for (size_t i = 0; i < st->n; i++) {
		const struct queue_rcpt_state *r = &st->r[i];
		buf_printf(&b, "r %zu %u %u %lld ", i, r->state, r->attempts, r->next_try);
		if (r->last_reply[0]) {
			struct buf v;
			buf_init(&v, QUEUE_REPLY_MAX * 3 + 16);
			queue_record_put(&v, "", r->last_reply);   /* " value\n" */
			buf_append(&b, v.data + 1, v.len - 1);
			buf_free(&v);
		} else {
			buf_appends(&b, "-\n");
		}
	}
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", qid);
	bool ok = !b.truncated;
	/* A fresh file: whatever lies at the temporary name (a leftover of a crash, a
	 * FIFO, a link planted there) is removed, never opened.  O_EXCL finds it; only
	 * then is it unlinked (no failing unlink before every write). */
	int fd = ok ? openat(q->state_dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
	if (fd < 0 && ok && errno == EEXIST && unlinkat(q->state_dirfd, tmp, 0) == 0)
		fd = openat(q->state_dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	ok = fd >= 0 && fileio_write_all(fd, b.data, b.len) && fileio_fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	ok = ok && renameat(q->state_dirfd, tmp, q->state_dirfd, qid) == 0 && fileio_fsync(q->state_dirfd) == 0;
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
