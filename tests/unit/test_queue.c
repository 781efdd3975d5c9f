/* test_queue.c - the durable spool in a temporary directory: write, commit, read
 * back, refuse incomplete files, recipient state, and the envelope parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "util/id.h"
#include "util/log.h"

struct fixture {
	char dir[64];
	struct queue *q;
};

static void rm_rf(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	int r = system(cmd);
	(void)r;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/postern-queue-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	char err[256];
	if (!queue_open(&fx->q, fx->dir, err, sizeof(err)))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	queue_close(&fx->q);
	assert_null(fx->q);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return (size_t)-1;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void sub(const struct fixture *fx, const char *name, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/queue/%s", fx->dir, name);
}

static char (*rcpt_list(const char *const *r, size_t n))[QUEUE_ADDR_MAX]
{
	char (*rc)[QUEUE_ADDR_MAX] = calloc(n, sizeof(*rc));
	for (size_t i = 0; i < n; i++)
		snprintf(rc[i], QUEUE_ADDR_MAX, "%s", r[i]);
	return rc;
}

static void fill_env(struct queue_envelope *env, const char *const *rcpts, size_t n)
{
	memset(env, 0, sizeof(*env));
	id_new_queue_id(env->qid);
	env->arrival = 1700000000;
	snprintf(env->client_addr, sizeof(env->client_addr), "2001:db8::1");
	snprintf(env->client_name, sizeof(env->client_name), "client name with spaces");
	snprintf(env->helo, sizeof(env->helo), "h\xc3\xa9lo %%25 \\ \"x\"\t");
	snprintf(env->protocol, sizeof(env->protocol), "UTF8SMTP");
	snprintf(env->sender, sizeof(env->sender), "\"j\xc3\xb6rg s\"@b\xc3\xbc.example");
	env->smtputf8 = true;
	env->eightbit = true;
	env->rcpts = rcpt_list(rcpts, n);
	env->n_rcpts = n;
}

static void test_round_trip(void **state)
{
	struct fixture *fx = *state;
	static const char *const rcpts[] = { "alice@example.test", "\"a b\"@example.test", "\xc3\xa9@example.test" };
	struct queue_envelope env;
	fill_env(&env, rcpts, 3);
	char err[256] = "";
	struct queue_writer *w = queue_writer_open(fx->q, &env, err, sizeof(err));
	if (!w)
		fail_msg("writer_open: %s", err);
	char path[1200];
	sub(fx, "incoming", path, sizeof(path));
	assert_int_equal(count_files(path), 1);
	const char body1[] = "Subject: x\r\n\r\nline\r\n";
	assert_true(queue_writer_write(w, body1, sizeof(body1) - 1));
	/* a large write, past the writer's buffer, with NUL bytes */
	size_t big = 200000;
	char *b = malloc(big);
	for (size_t i = 0; i < big; i++)
		b[i] = (char)(i * 7);
	assert_true(queue_writer_write(w, b, big));
	assert_true(queue_writer_write(w, "", 0));
	assert_int_equal(queue_writer_size(w), sizeof(body1) - 1 + big);
	if (!queue_writer_commit(w, err, sizeof(err)))
		fail_msg("commit: %s", err);
	queue_writer_free(&w);
	assert_null(w);
	assert_int_equal(count_files(path), 0);
	sub(fx, "active", path, sizeof(path));
	assert_int_equal(count_files(path), 1);

	struct queue_message m;
	if (!queue_message_open(fx->q, env.qid, &m, err, sizeof(err)))
		fail_msg("message_open: %s", err);
	assert_string_equal(m.env.qid, env.qid);
	assert_int_equal(m.env.arrival, env.arrival);
	assert_string_equal(m.env.client_addr, env.client_addr);
	assert_string_equal(m.env.client_name, env.client_name);
	assert_string_equal(m.env.helo, env.helo);
	assert_string_equal(m.env.protocol, env.protocol);
	assert_string_equal(m.env.sender, env.sender);
	assert_true(m.env.smtputf8);
	assert_true(m.env.eightbit);
	assert_int_equal(m.env.n_rcpts, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(m.env.rcpts[i], rcpts[i]);
	assert_int_equal(m.body_size, sizeof(body1) - 1 + big);
	char *rb = malloc(m.body_size);
	assert_int_equal(pread(m.fd, rb, m.body_size, m.body_offset), (ssize_t)m.body_size);
	assert_memory_equal(rb, body1, sizeof(body1) - 1);
	assert_memory_equal(rb + sizeof(body1) - 1, b, big);
	free(rb);
	free(b);
	queue_message_close(&m);
	assert_int_equal(m.fd, -1);
	queue_envelope_free(&env);
}

static void list_cb(void *arg, const char *qid)
{
	char (*ids)[QUEUE_ID_LEN + 1] = arg;
	for (int i = 0; i < 8; i++)
		if (!ids[i][0]) {
			snprintf(ids[i], QUEUE_ID_LEN + 1, "%s", qid);
			return;
		}
}

static void commit_one(struct fixture *fx, const char *body, char *qid_out)
{
	static const char *const rcpts[] = { "alice@example.test" };
	struct queue_envelope env;
	fill_env(&env, rcpts, 1);
	char err[256];
	struct queue_writer *w = queue_writer_open(fx->q, &env, err, sizeof(err));
	assert_non_null(w);
	assert_true(queue_writer_write(w, body, strlen(body)));
	assert_true(queue_writer_commit(w, err, sizeof(err)));
	queue_writer_free(&w);
	snprintf(qid_out, QUEUE_ID_LEN + 1, "%s", env.qid);
	queue_envelope_free(&env);
}

static void test_empty_body_and_list(void **state)
{
	struct fixture *fx = *state;
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];
	commit_one(fx, "", a);
	commit_one(fx, "x", b);
	char ids[8][QUEUE_ID_LEN + 1] = { { 0 } };
	assert_true(queue_list_active(fx->q, list_cb, ids));
	assert_string_equal(ids[0], a);
	assert_string_equal(ids[1], b);
	assert_string_equal(ids[2], "");
	struct queue_message m;
	char err[256];
	assert_true(queue_message_open(fx->q, a, &m, err, sizeof(err)));
	assert_int_equal(m.body_size, 0);
	queue_message_close(&m);
	assert_true(queue_remove(fx->q, a));
	assert_false(queue_message_open(fx->q, a, &m, err, sizeof(err)));
	assert_true(queue_move_failed(fx->q, b));
	char path[1200];
	sub(fx, "failed", path, sizeof(path));
	assert_int_equal(count_files(path), 1);
	sub(fx, "active", path, sizeof(path));
	assert_int_equal(count_files(path), 0);
	assert_false(queue_message_open(fx->q, "../../etc/passwd", &m, err, sizeof(err)));
}

static void test_free_without_commit(void **state)
{
	struct fixture *fx = *state;
	static const char *const rcpts[] = { "alice@example.test" };
	struct queue_envelope env;
	fill_env(&env, rcpts, 1);
	char err[256];
	struct queue_writer *w = queue_writer_open(fx->q, &env, err, sizeof(err));
	assert_non_null(w);
	assert_true(queue_writer_write(w, "abc", 3));
	queue_writer_free(&w);
	char path[1200];
	sub(fx, "incoming", path, sizeof(path));
	assert_int_equal(count_files(path), 0);
	sub(fx, "active", path, sizeof(path));
	assert_int_equal(count_files(path), 0);
	queue_writer_free(&w);   /* NULL: harmless */
	/* the same qid cannot be opened twice (O_EXCL) */
	struct queue_writer *w1 = queue_writer_open(fx->q, &env, err, sizeof(err));
	assert_non_null(w1);
	struct queue_writer *w2 = queue_writer_open(fx->q, &env, err, sizeof(err));
	assert_null(w2);
	queue_writer_free(&w1);
	queue_envelope_free(&env);
}

/* Leftovers in incoming/ are removed when the queue opens. */
static void test_incoming_cleanup(void **state)
{
	struct fixture *fx = *state;
	char path[1200];
	snprintf(path, sizeof(path), "%s/queue/incoming/0000000000000001", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct queue *q2;
	char err[256];
	assert_true(queue_open(&q2, fx->dir, err, sizeof(err)));
	sub(fx, "incoming", path, sizeof(path));
	assert_int_equal(count_files(path), 0);
	queue_close(&q2);
}

/* Corrupt a committed file in various ways: every one is refused. */
static void test_incomplete_files(void **state)
{
	struct fixture *fx = *state;
	char qid[QUEUE_ID_LEN + 1], path[1200], err[256];
	commit_one(fx, "hello world\r\n", qid);
	snprintf(path, sizeof(path), "%s/queue/active/%s", fx->dir, qid);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	char *orig = malloc((size_t)st.st_size);
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, orig, (size_t)st.st_size), st.st_size);
	close(fd);
	size_t n = (size_t)st.st_size;

	struct {
		const char *what;
		size_t cut;          /* new length (0: unchanged) */
		long patch_at;       /* offset from the end to overwrite, or 0 */
		const char *patch;
	} cases[] = {
		{ "no trailer", n - QUEUE_TRAILER_LEN, 0, NULL },
		{ "half a trailer", n - 10, 0, NULL },
		{ "one byte short", n - 1, 0, NULL },
		{ "size too small", 0, 21, "0000000000000000012" },
		{ "size too big", 0, 21, "0000000000000000014" },
		{ "size not digits", 0, 21, "00000000000000000x3" },
		{ "bad END word", 0, 33, "ENX" },
		{ "bad POSTERN word", 0, 8, "POSTERM" },
		{ "envelope only", 0, 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *copy = malloc(n);
		memcpy(copy, orig, n);
		size_t len = cases[i].cut ? cases[i].cut : n;
		if (cases[i].patch)
			memcpy(copy + n - cases[i].patch_at, cases[i].patch, strlen(cases[i].patch));
		if (i == sizeof(cases) / sizeof(cases[0]) - 1) {
			/* just the envelope, cut at its blank line */
			char *bl = memmem(copy, n, "\n\n", 2);
			len = (size_t)(bl - copy) + 2;
		}
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, copy, len), (ssize_t)len);
		close(fd);
		free(copy);
		struct queue_message m;
		if (queue_message_open(fx->q, qid, &m, err, sizeof(err))) {
			queue_message_close(&m);
			fail_msg("%s: accepted", cases[i].what);
		}
	}
	/* and the original is accepted again */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, orig, n), (ssize_t)n);
	close(fd);
	struct queue_message m;
	assert_true(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	queue_message_close(&m);
	free(orig);
	/* an empty file */
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	assert_false(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
}

static void test_state(void **state)
{
	struct fixture *fx = *state;
	const char *qid = "0123456789ABCDEF";
	unsigned char st[5];
	memset(st, 9, sizeof(st));
	assert_true(queue_state_load(fx->q, qid, st, 5));   /* none yet: all pending */
	for (int i = 0; i < 5; i++)
		assert_int_equal(st[i], RCPT_PENDING);
	unsigned char save[5] = { RCPT_DELIVERED, RCPT_PENDING, RCPT_FAILED, RCPT_DELIVERED, RCPT_PENDING };
	assert_true(queue_state_save(fx->q, qid, save, 5));
	assert_true(queue_state_load(fx->q, qid, st, 5));
	assert_memory_equal(st, save, 5);
	/* a file for another message (a different count) is damaged: what fits is kept */
	struct queue_state qs;
	assert_true(queue_state_read(fx->q, qid, 3, &qs));
	assert_true(qs.damaged);
	assert_int_equal(qs.recovered, 3);
	assert_int_equal(qs.r[0].state, RCPT_DELIVERED);
	assert_int_equal(qs.r[2].state, RCPT_FAILED);
	queue_state_free(&qs);
	assert_true(queue_state_read(fx->q, qid, 7, &qs));
	assert_true(qs.damaged);
	assert_int_equal(qs.recovered, 5);
	assert_int_equal(qs.r[6].state, RCPT_PENDING);
	queue_state_free(&qs);
	/* garbage: damaged, nothing recovered, every recipient pending (never refused) */
	char path[1200];
	snprintf(path, sizeof(path), "%s/queue/state/%s", fx->dir, qid);
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "01x21\n", 6), 6);
	close(fd);
	memset(st, 9, sizeof(st));
	assert_true(queue_state_load(fx->q, qid, st, 5));
	for (int i = 0; i < 5; i++)
		assert_int_equal(st[i], RCPT_PENDING);
	/* no temporary file is left behind */
	snprintf(path, sizeof(path), "%s/queue/state", fx->dir);
	assert_int_equal(count_files(path), 1);
}

/* --- hostile files in the spool -------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A FIFO named like a queue id used to block open() for ever; a symbolic link was
 * followed and its target delivered.  Both are refused at once, saying what they are. */
static void test_fifo_and_symlink_refused(void **state)
{
	struct fixture *fx = *state;
	char good[QUEUE_ID_LEN + 1], path[1200], target[1200], err[256];
	commit_one(fx, "Subject: x\r\n\r\nhello\r\n", good);
	const char *fifo_id = "00000000000000F1", *link_id = "00000000000000F2";
	snprintf(path, sizeof(path), "%s/queue/active/%s", fx->dir, fifo_id);
	assert_int_equal(mkfifo(path, 0600), 0);
	struct queue_message m;
	assert_false(queue_message_open(fx->q, fifo_id, &m, err, sizeof(err)));
	assert_non_null(strstr(err, "FIFO"));
	/* a link to a complete queue file outside active/ */
	snprintf(target, sizeof(target), "%s/outside", fx->dir);
	snprintf(path, sizeof(path), "%s/queue/active/%s", fx->dir, good);
	assert_int_equal(link(path, target), 0);
	snprintf(path, sizeof(path), "%s/queue/active/%s", fx->dir, link_id);
	assert_int_equal(symlink(target, path), 0);
	assert_false(queue_message_open(fx->q, link_id, &m, err, sizeof(err)));
	assert_non_null(strstr(err, "symbolic link"));
	/* the real message still opens */
	assert_true(queue_message_open(fx->q, good, &m, err, sizeof(err)));
	queue_message_close(&m);
	/* moved to failed/: the link itself, not its target */
	assert_true(queue_move_failed(fx->q, fifo_id));
	assert_true(queue_move_failed(fx->q, link_id));
	struct stat sb;
	snprintf(path, sizeof(path), "%s/queue/failed/%s", fx->dir, link_id);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	assert_int_equal(stat(target, &sb), 0);
	char desc[256];
	queue_failed_describe(fx->q, fifo_id, desc, sizeof(desc));
	assert_non_null(strstr(desc, "FIFO"));
	assert_false(queue_requeue(fx->q, fifo_id));
	/* a FIFO (or link) in state/ is damaged state, read without blocking */
	snprintf(path, sizeof(path), "%s/queue/state/%s", fx->dir, good);
	assert_int_equal(mkfifo(path, 0600), 0);
	struct queue_state qs;
	assert_true(queue_state_read(fx->q, good, 1, &qs));
	assert_true(qs.damaged);
	assert_int_equal(qs.r[0].state, RCPT_PENDING);
	assert_true(queue_state_write(fx->q, good, &qs));   /* replaces the FIFO */
	queue_state_free(&qs);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	/* a FIFO planted at the temporary name is not opened either */
	char tmp[1300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(mkfifo(tmp, 0600), 0);
	assert_true(queue_state_read(fx->q, good, 1, &qs));
	assert_true(queue_state_write(fx->q, good, &qs));
	queue_state_free(&qs);
}

/* A truncated state file keeps the records it still has. */
static void test_state_salvage(void **state)
{
	struct fixture *fx = *state;
	const char *qid = "0123456789ABCDE0";
	struct queue_state qs;
	assert_true(queue_state_read(fx->q, qid, 4, &qs));
	assert_false(qs.damaged);
	qs.r[0].state = RCPT_DELIVERED;
	qs.r[1].state = RCPT_FAILED;
	snprintf(qs.r[1].last_reply, sizeof(qs.r[1].last_reply), "550 5.1.1 no such user");
	qs.r[2].state = RCPT_DELIVERED;
	qs.r[2].attempts = 3;
	assert_true(queue_state_write(fx->q, qid, &qs));
	queue_state_free(&qs);
	char path[1200];
	snprintf(path, sizeof(path), "%s/queue/state/%s", fx->dir, qid);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	/* cut in the middle of recipient 2's record, after its state */
	FILE *f = fopen(path, "rb");
	char buf[4096];
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	buf[len] = '\0';
	char *r2 = strstr(buf, "r 2 1 3 ");
	assert_non_null(r2);
	assert_int_equal(truncate(path, (off_t)(r2 - buf) + 7), 0);
	assert_true(queue_state_read(fx->q, qid, 4, &qs));
	assert_true(qs.damaged);
	assert_int_equal(qs.recovered, 3);
	assert_int_equal(qs.r[0].state, RCPT_DELIVERED);
	assert_int_equal(qs.r[1].state, RCPT_FAILED);
	assert_string_equal(qs.r[1].last_reply, "550 5.1.1 no such user");
	assert_int_equal(qs.r[2].state, RCPT_DELIVERED);
	assert_int_equal(qs.r[3].state, RCPT_PENDING);
	queue_state_free(&qs);
	/* cut before recipient 2's state: it is pending again (a duplicate, not a loss) */
	assert_int_equal(truncate(path, (off_t)(r2 - buf) + 4), 0);
	assert_true(queue_state_read(fx->q, qid, 4, &qs));
	assert_int_equal(qs.recovered, 2);
	assert_int_equal(qs.r[2].state, RCPT_PENDING);
	queue_state_free(&qs);
	/* empty */
	assert_int_equal(truncate(path, 0), 0);
	assert_true(queue_state_read(fx->q, qid, 4, &qs));
	assert_true(qs.damaged);
	assert_int_equal(qs.recovered, 0);
	queue_state_free(&qs);
	/* garbage with a record for another index and a duplicate */
	write_file(path, "POSTERN-STATE 2\nheld 1\n\x01\x02zz\nr 9 1 0 0 -\nr 1 1 0 0 -\nr 1 0 0 0 -\n");
	assert_true(queue_state_read(fx->q, qid, 4, &qs));
	assert_true(qs.held);
	assert_int_equal(qs.recovered, 1);
	assert_int_equal(qs.r[1].state, RCPT_DELIVERED);
	queue_state_free(&qs);
}

/* What each step of queue_remove leaves on disk, seen from a crash at that point. */
static struct fixture *crash_fx;
static const char *crash_qid;
static unsigned crash_calls;

static bool exists(const char *dir, const char *name)
{
	char p[2400];
	snprintf(p, sizeof(p), "%s/queue/%s/%s", crash_fx->dir, dir, name);
	struct stat sb;
	return lstat(p, &sb) == 0;
}

static void on_crash_point(const char *step)
{
	crash_calls++;
	if (strcmp(step, "queue-file-removed") == 0) {
		/* A crash here must not leave a queue file without its state. */
		assert_false(exists("active", crash_qid));
		assert_true(exists("state", crash_qid));
	} else if (strcmp(step, "queue-file-moved") == 0) {
		assert_false(exists("active", crash_qid));
		assert_true(exists("failed", crash_qid));
	} else if (strcmp(step, "state-removed") == 0) {
		assert_false(exists("state", crash_qid));
	}
}

static void test_remove_order(void **state)
{
	struct fixture *fx = *state;
	char qid[QUEUE_ID_LEN + 1];
	commit_one(fx, "x", qid);
	unsigned char st[1] = { RCPT_DELIVERED };
	assert_true(queue_state_save(fx->q, qid, st, 1));
	crash_fx = fx;
	crash_qid = qid;
	crash_calls = 0;
	queue_crash_point = on_crash_point;
	assert_true(queue_remove(fx->q, qid));
	assert_int_equal(crash_calls, 2);
	assert_false(exists("active", qid));
	assert_false(exists("state", qid));
	/* the same order when a message is moved to failed/ */
	commit_one(fx, "y", qid);
	assert_true(queue_state_save(fx->q, qid, st, 1));
	crash_calls = 0;
	assert_true(queue_move_failed(fx->q, qid));
	assert_int_equal(crash_calls, 1);
	assert_false(exists("state", qid));
	queue_crash_point = NULL;
	/* back into active/ with a fresh state, and removed for good */
	assert_true(queue_requeue(fx->q, qid));
	assert_true(exists("active", qid));
	assert_false(exists("failed", qid));
	assert_true(queue_move_failed(fx->q, qid));
	assert_true(queue_remove_failed(fx->q, qid));
	assert_false(exists("failed", qid));
	assert_false(queue_requeue(fx->q, qid));
}

/* queue_done: the queue file goes at once; a state file only after the batch's one
 * fsync of active/ (queue_done_flush), never before its queue file is gone. */
#define DONE_BATCH 64
static unsigned done_state_removed;

static void on_done_point(const char *step)
{
	if (strcmp(step, "queue-file-removed") == 0) {
		assert_false(exists("active", crash_qid));
	} else if (strcmp(step, "state-removed") == 0) {
		done_state_removed++;
		assert_false(exists("state", crash_qid));
		assert_false(exists("active", crash_qid));
	}
}

static void test_done_batched(void **state)
{
	struct fixture *fx = *state;
	crash_fx = fx;   /* exists() looks there */
	char plain[QUEUE_ID_LEN + 1], kept[QUEUE_ID_LEN + 1], other[QUEUE_ID_LEN + 1];
	commit_one(fx, "x", plain);
	commit_one(fx, "y", kept);
	commit_one(fx, "z", other);
	unsigned char st[1] = { RCPT_DELIVERED };
	assert_true(queue_state_save(fx->q, kept, st, 1));
	assert_true(queue_state_save(fx->q, other, st, 1));
	struct queue_state qs;
	assert_true(queue_state_read(fx->q, kept, 1, &qs));
	assert_true(qs.on_disk);
	queue_state_free(&qs);
	assert_true(queue_state_read(fx->q, plain, 1, &qs));
	assert_false(qs.on_disk);   /* none: nothing for queue_done to remove */
	queue_state_free(&qs);
	assert_true(queue_state_fresh(&qs, 3));
	assert_int_equal(qs.n, 3);
	assert_false(qs.on_disk);
	assert_int_equal(qs.r[2].state, RCPT_PENDING);
	queue_state_free(&qs);
	/* finished in one attempt: only the queue file, nothing else touched */
	assert_true(queue_done(fx->q, plain, false));
	assert_false(exists("active", plain));
	assert_true(exists("state", other));
	/* with a state file: it stays until the flush, which removes it */
	crash_qid = kept;
	done_state_removed = 0;
	queue_crash_point = on_done_point;
	assert_true(queue_done(fx->q, kept, true));
	assert_false(exists("active", kept));
	assert_true(exists("state", kept));
	queue_done_flush(fx->q);
	assert_int_equal(done_state_removed, 1);
	assert_false(exists("state", kept));
	queue_done_flush(fx->q);   /* an empty batch: nothing */
	assert_int_equal(done_state_removed, 1);
	queue_crash_point = NULL;
	assert_true(exists("state", other));
	assert_true(exists("active", other));
	/* more than a batch holds (64, queue/internal.h): the full batch is flushed on the way */
	char ids[DONE_BATCH + 3][QUEUE_ID_LEN + 1];
	for (size_t i = 0; i < DONE_BATCH + 3; i++) {
		commit_one(fx, "w", ids[i]);
		assert_true(queue_state_save(fx->q, ids[i], st, 1));
		assert_true(queue_done(fx->q, ids[i], true));
	}
	assert_false(exists("state", ids[0]));
	assert_true(exists("state", ids[DONE_BATCH + 2]));
	queue_done_flush(fx->q);
	for (size_t i = 0; i < DONE_BATCH + 3; i++)
		assert_false(exists("state", ids[i]));
	assert_false(queue_done(fx->q, "../etc", false));
	assert_true(queue_done(fx->q, plain, false));   /* gone already: fine */
}

static void set_age(const char *path, time_t age)
{
	struct timespec ts[2] = { { .tv_sec = time(NULL) - age }, { .tv_sec = time(NULL) - age } };
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_clean_leftovers(void **state)
{
	struct fixture *fx = *state;
	char live[QUEUE_ID_LEN + 1], p[1200];
	commit_one(fx, "x", live);
	unsigned char st[1] = { RCPT_PENDING };
	assert_true(queue_state_save(fx->q, live, st, 1));
	snprintf(p, sizeof(p), "%s/queue/state/%s", fx->dir, live);
	set_age(p, 7200);   /* old, but its message is there: kept */
	static const char *const old_names[] = { "state/00000000000000A1", "state/00000000000000A2.tmp",
		"active/junk.txt", "active/.hidden" };
	static const char *const new_names[] = { "state/00000000000000B1", "state/00000000000000B2.tmp", "active/new-junk" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/queue/%s", fx->dir, old_names[i]);
		write_file(p, "x");
		set_age(p, 7200);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/queue/%s", fx->dir, new_names[i]);
		write_file(p, "x");
	}
	struct queue_clean_counts c = { 0 };
	queue_clean(fx->q, time(NULL), 3600, 1000, &c);
	assert_int_equal(c.orphan_state, 1);
	assert_int_equal(c.state_tmp, 1);
	assert_int_equal(c.active_junk, 2);
	struct stat sb;
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/queue/%s", fx->dir, old_names[i]);
		assert_int_not_equal(lstat(p, &sb), 0);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/queue/%s", fx->dir, new_names[i]);
		assert_int_equal(lstat(p, &sb), 0);
	}
	struct queue_message m;
	char err[256];
	assert_true(queue_message_open(fx->q, live, &m, err, sizeof(err)));
	queue_message_close(&m);
	snprintf(p, sizeof(p), "%s/queue/state/%s", fx->dir, live);
	assert_int_equal(lstat(p, &sb), 0);
}

/* --- the envelope parser ---------------------------------------------------- */

#define HDR "POSTERN-QUEUE 1\n"
#define QID "qid 0123456789ABCDEF\n"
#define SND "sender a@b.example\n"
#define RCP "rcpt c@d.example\n"

static const struct {
	const char *text;
	long want;     /* -1, or the body offset (0: strlen(text)) */
} env_table[] = {
	{ HDR QID SND RCP "\n", 0 },
	{ HDR QID "sender \n" RCP "\n", 0 },                       /* null sender */
	{ HDR QID SND RCP "x-future something\n\n", 0 },           /* unknown keys skipped */
	{ HDR QID SND RCP RCP "\n", 0 },
	{ HDR "arrival 1700000000\n" QID SND RCP "smtputf8 1\neightbit 0\n\n", 0 },
	{ "", -1 },
	{ "POSTERN-QUEUE 2\n" QID SND RCP "\n", -1 },
	{ "POSTERN-QUEUE 1", -1 },
	{ HDR, -1 },
	{ HDR "\n", -1 },
	{ HDR QID SND RCP, -1 },                                   /* no blank line */
	{ HDR QID SND "\n", -1 },                                  /* no recipient */
	{ HDR QID RCP "\n", -1 },                                  /* no sender */
	{ HDR SND RCP "\n", -1 },                                  /* no qid */
	{ HDR "qid 0123456789abcdef\n" SND RCP "\n", -1 },         /* lower-case qid */
	{ HDR "qid 0123\n" SND RCP "\n", -1 },
	{ HDR "qid ../../../etc/x\n" SND RCP "\n", -1 },
	{ HDR QID SND "rcpt \n\n", -1 },                           /* empty recipient */
	{ HDR QID SND RCP "noSpaceHere\n\n", -1 },
	{ HDR QID "sender a b\n" RCP "\n", -1 },                   /* raw space in a value */
	{ HDR QID "sender a%\n" RCP "\n", -1 },
	{ HDR QID "sender a%4\n" RCP "\n", -1 },
	{ HDR QID "sender a%4G\n" RCP "\n", -1 },
	{ HDR QID "sender a%00b\n" RCP "\n", -1 },                 /* NUL */
	{ HDR QID "sender a\x01\n" RCP "\n", -1 },
	{ HDR QID "sender a\xc3\xa9\n" RCP "\n", -1 },             /* raw 8-bit */
	{ HDR QID SND RCP "smtputf8 2\n\n", -1 },
	{ HDR QID SND RCP "eightbit yes\n\n", -1 },
	{ HDR QID SND RCP "arrival -1\n\n", -1 },
	{ HDR QID SND RCP "arrival 99999999999999999999\n\n", -1 },
	{ HDR QID SND RCP "arrival 18446744073709551615\n\n", -1 },
	{ HDR QID SND RCP "protocol 01234567890123456789\n\n", -1 },   /* longer than the field */
	{ HDR QID SND "rcpt a%20b\n" RCP "\n", 0 },
	{ HDR QID SND "rcpt a%2\n\n", -1 },                         /* a recipient allocated, then bad */
	{ HDR QID SND RCP RCP RCP RCP RCP "rcpt %zz\n\n", -1 },      /* after a realloc */
};

static void test_envelope_parse_table(void **state)
{
	(void)state;
	unsigned failures = 0;
	for (size_t i = 0; i < sizeof(env_table) / sizeof(env_table[0]); i++) {
		size_t len = strlen(env_table[i].text);
		char *copy = malloc(len ? len : 1);
		memcpy(copy, env_table[i].text, len);
		struct queue_envelope env;
		long r = queue_envelope_parse(copy, len, &env);
		long want = env_table[i].want == 0 ? (long)len : env_table[i].want;
		if (r != want) {
			failures++;
			print_error("row %zu: %ld, want %ld\n", i, r, want);
		}
		if (r < 0 && (env.rcpts != NULL || env.n_rcpts != 0)) {
			failures++;
			print_error("row %zu: failure left recipients behind\n", i);
		}
		queue_envelope_free(&env);
		free(copy);
	}
	if (failures)
		fail_msg("%u rows failed", failures);
}

static void test_envelope_values(void **state)
{
	(void)state;
	const char *t = HDR QID "sender %22a%20b%22@x.example\n" "rcpt a%25b@x\n" "rcpt %C3%A9@x\n" "helo a%0Ab\n\nBODY";
	struct queue_envelope env;
	long r = queue_envelope_parse(t, strlen(t), &env);
	assert_int_equal(r, (long)(strlen(t) - 4));
	assert_string_equal(env.sender, "\"a b\"@x.example");
	assert_int_equal(env.n_rcpts, 2);
	assert_string_equal(env.rcpts[0], "a%b@x");
	assert_string_equal(env.rcpts[1], "\xc3\xa9@x");
	assert_string_equal(env.helo, "a\nb");
	queue_envelope_free(&env);
	assert_null(env.rcpts);
	/* the parser stops at len: a body after the blank line is not read */
	assert_int_equal(queue_envelope_parse(t, strlen(t) - 6, &env), -1);
}

/* Spool files made ahead (queue_reserve_start): a writer opened without an id takes
 * one (its id names the message), and the files not taken are gone at queue_close. */
static void test_reserve(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "", path[1200];
	sub(fx, "incoming", path, sizeof(path));
	assert_true(queue_reserve_start(fx->q, 3, err, sizeof(err)));
	for (int i = 0; i < 400 && count_files(path) < 3; i++)
		usleep(5000);   /* the thread makes them: at most 2 s */
	assert_int_equal(count_files(path), 3);
	static const char *const rcpts[] = { "alice@example.test" };
	struct queue_envelope env;
	fill_env(&env, rcpts, 1);
	env.qid[0] = '\0';
	struct queue_writer *w = queue_writer_open(fx->q, &env, err, sizeof(err));
	if (!w)
		fail_msg("writer_open: %s", err);
	char qid[QUEUE_ID_LEN + 1];
	snprintf(qid, sizeof(qid), "%s", queue_writer_envelope(w)->qid);
	assert_true(id_is_queue_id(qid));
	assert_non_null(strstr(queue_writer_path(w), qid));
	for (int i = 0; i < 400 && count_files(path) < 4; i++)
		usleep(5000);   /* the thread makes the next one: 3 ahead + the writer's */
	assert_int_equal(count_files(path), 4);
	static const char body[] = "Subject: r\r\n\r\nbody\r\n";
	assert_true(queue_writer_write(w, body, sizeof(body) - 1));
	if (!queue_writer_commit(w, err, sizeof(err)))
		fail_msg("commit: %s", err);
	queue_writer_free(&w);
	struct queue_message m;
	if (!queue_message_open(fx->q, qid, &m, err, sizeof(err)))
		fail_msg("message_open: %s", err);
	assert_string_equal(m.env.qid, qid);
	assert_string_equal(m.env.rcpts[0], "alice@example.test");
	queue_message_close(&m);
	queue_envelope_free(&env);
	queue_close(&fx->q);
	assert_int_equal(count_files(path), 0);   /* the reserve's files removed */
}

int main(void)
{
	log_set_level(LOG_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_body_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_without_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incoming_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incomplete_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_and_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_salvage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
		cmocka_unit_test(test_envelope_parse_table),
		cmocka_unit_test(test_envelope_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
