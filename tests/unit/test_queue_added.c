/* test_queue_added.c - the header fields the end-of-data stages add, as the queue
 * keeps them (queue.h): stored at the commit after the message, under the same fsync
 * (never rewritten), read back first by every reader (queue_message_pread), seen from
 * a crash at each step of the commit, and refused when the file is damaged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue.h"
#include "util/id.h"

struct fixture {
	char dir[64];
	struct queue *q;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/postern-qadd-XXXXXX");
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
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	int r = system(cmd);
	(void)r;
	free(fx);
	return 0;
}

static const char block[] = "DKIM-Signature: v=1; a=rsa-sha256; d=example.test;\r\n\tb=abc\r\n"
	"Authentication-Results: mx.example.test; spf=pass\r\n";
static const char body[] = "Received: from c (unknown [192.0.2.1])\r\n\tby mx.example.test (Postern)\r\n"
	"Subject: hello\r\n\r\nline one\r\n.dot line\r\n";

static struct queue_writer *open_writer(struct fixture *fx, struct queue_envelope *env, char (*rcpt)[QUEUE_ADDR_MAX])
{
	memset(env, 0, sizeof(*env));
	id_new_queue_id(env->qid);
	env->arrival = 1700000000;
	snprintf(rcpt[0], QUEUE_ADDR_MAX, "alice@example.test");
	env->rcpts = rcpt;
	env->n_rcpts = 1;
	char err[256] = "";
	struct queue_writer *w = queue_writer_open(fx->q, env, err, sizeof(err));
	if (!w)
		fail_msg("writer_open: %s", err);
	assert_true(queue_writer_write(w, body, sizeof(body) - 1));
	return w;
}

static void commit_with(struct fixture *fx, const char *added, size_t added_len, char *qid)
{
	struct queue_envelope env;
	char rcpt[1][QUEUE_ADDR_MAX];
	struct queue_writer *w = open_writer(fx, &env, rcpt);
	assert_true(queue_writer_set_added(w, added, added_len));
	char err[256] = "";
	if (!queue_writer_commit(w, err, sizeof(err)))
		fail_msg("commit: %s", err);
	queue_writer_free(&w);
	memcpy(qid, env.qid, QUEUE_ID_LEN + 1);
}

/* The whole message as a reader gets it, in pieces of `step` octets. */
static size_t read_all(const struct queue_message *m, char *out, size_t outsz, size_t step)
{
	size_t got = 0;
	for (;;) {
		size_t want = step < outsz - got ? step : outsz - got;
		ssize_t r = queue_message_pread(m, out + got, want, got);
		assert_true(r >= 0);
		if (r == 0)
			return got;
		got += (size_t)r;
	}
}

static void test_round_trip(void **state)
{
	struct fixture *fx = *state;
	char qid[QUEUE_ID_LEN + 1], err[256];
	commit_with(fx, block, sizeof(block) - 1, qid);
	struct queue_message m;
	if (!queue_message_open(fx->q, qid, &m, err, sizeof(err)))
		fail_msg("message_open: %s", err);
	assert_int_equal(m.body_size, sizeof(body) - 1);   /* the message as received */
	assert_int_equal(m.added_len, sizeof(block) - 1);
	assert_string_equal(m.added, block);
	assert_int_equal(queue_message_size(&m), sizeof(block) - 1 + sizeof(body) - 1);
	char want[1024], got[1024];
	snprintf(want, sizeof(want), "%s%s", block, body);
	/* whole, and in odd pieces that cross from the fields into the message */
	static const size_t steps[] = { sizeof(got), 1, 7, sizeof(block) - 2, sizeof(block) };
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(got, 0, sizeof(got));
		assert_int_equal(read_all(&m, got, sizeof(got), steps[i]), strlen(want));
		assert_memory_equal(got, want, strlen(want));
	}
	/* the message itself is where it always was: the readers that copy it by offset */
	char raw[sizeof(body)];
	assert_int_equal(pread(m.fd, raw, sizeof(body) - 1, m.body_offset), (ssize_t)sizeof(body) - 1);
	assert_memory_equal(raw, body, sizeof(body) - 1);
	assert_int_equal(queue_message_pread(&m, got, 10, queue_message_size(&m)), 0);
	queue_message_close(&m);
	assert_null(m.added);
	/* no fields: the file is as it always was, and reads the same way */
	commit_with(fx, NULL, 0, qid);
	assert_true(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	assert_null(m.added);
	assert_int_equal(queue_message_size(&m), sizeof(body) - 1);
	assert_int_equal(read_all(&m, got, sizeof(got), 5), sizeof(body) - 1);
	assert_memory_equal(got, body, sizeof(body) - 1);
	queue_message_close(&m);
}

static void test_set_added_refuses(void **state)
{
	struct fixture *fx = *state;
	struct queue_envelope env;
	char rcpt[1][QUEUE_ADDR_MAX];
	struct queue_writer *w = open_writer(fx, &env, rcpt);
	assert_false(queue_writer_set_added(w, "X-A: no line end", 16));
	assert_false(queue_writer_set_added(w, "X-A: a\0b\r\n", 10));
	assert_false(queue_writer_set_added(w, "\n", 1));
	char *big = malloc(QUEUE_ADDED_MAX + 2);
	memset(big, 'x', QUEUE_ADDED_MAX + 2);
	memcpy(big + QUEUE_ADDED_MAX - 1, "\r\n", 2);
	assert_false(queue_writer_set_added(w, big, QUEUE_ADDED_MAX + 1));
	assert_true(queue_writer_set_added(w, big + 1, QUEUE_ADDED_MAX));   /* exactly the bound */
	free(big);
	assert_true(queue_writer_set_added(w, block, sizeof(block) - 1));   /* replaces */
	char err[256];
	assert_true(queue_writer_commit(w, err, sizeof(err)));
	queue_writer_free(&w);
	struct queue_message m;
	assert_true(queue_message_open(fx->q, env.qid, &m, err, sizeof(err)));
	assert_string_equal(m.added, block);
	queue_message_close(&m);
}

/* A crash at each step of the commit: before the rename the message is only in
 * incoming/ (no 250 was given: nothing accepted is lost, and queue_open removes it);
 * once it is in active/, it is complete with its fields, whatever comes after. */
static struct fixture *crash_fx;
static const char *crash_qid;
static unsigned crash_seen;

static bool in_dir(const char *dir, const char *qid)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/queue/%s/%s", crash_fx->dir, dir, qid);
	struct stat sb;
	return stat(p, &sb) == 0;
}

static void on_crash_point(const char *step)
{
	char err[256];
	struct queue_message m;
	if (strcmp(step, "incoming-synced") == 0) {
		crash_seen |= 1;
		assert_true(in_dir("incoming", crash_qid));
		assert_false(in_dir("active", crash_qid));
		assert_false(queue_message_open(crash_fx->q, crash_qid, &m, err, sizeof(err)));
	} else if (strcmp(step, "active-renamed") == 0) {
		crash_seen |= 2;
		assert_false(in_dir("incoming", crash_qid));
		if (!queue_message_open(crash_fx->q, crash_qid, &m, err, sizeof(err)))
			fail_msg("renamed but unreadable: %s", err);
		assert_string_equal(m.added, block);
		assert_int_equal(m.body_size, sizeof(body) - 1);
		queue_message_close(&m);
	}
}

static void test_crash_points(void **state)
{
	struct fixture *fx = *state;
	struct queue_envelope env;
	char rcpt[1][QUEUE_ADDR_MAX], err[256];
	struct queue_writer *w = open_writer(fx, &env, rcpt);
	assert_true(queue_writer_set_added(w, block, sizeof(block) - 1));
	crash_fx = fx;
	crash_qid = env.qid;
	crash_seen = 0;
	queue_crash_point = on_crash_point;
	bool ok = queue_writer_commit(w, err, sizeof(err));
	queue_crash_point = NULL;
	assert_true(ok);
	assert_int_equal(crash_seen, 3);
	queue_writer_free(&w);
	/* A restart after a crash before the rename: the incoming file is cleaned away
	 * (the client was never told 250 and sends again), nothing reaches active/. */
	w = open_writer(fx, &env, rcpt);
	assert_true(queue_writer_set_added(w, block, sizeof(block) - 1));
	assert_true(queue_writer_flush(w));
	assert_true(in_dir("incoming", env.qid));
	queue_close(&fx->q);   /* the writer is abandoned, as by a crash */
	assert_true(queue_open(&fx->q, fx->dir, err, sizeof(err)));
	crash_fx = fx;
	assert_false(in_dir("incoming", env.qid));
	assert_false(in_dir("active", env.qid));
	queue_writer_free(&w);
}

/* Before the commit the end-of-data stages read the message from the file being
 * written: every octet given so far is there once flushed, at the given offset. */
static void test_flushed_message_readable(void **state)
{
	struct fixture *fx = *state;
	struct queue_envelope env;
	char rcpt[1][QUEUE_ADDR_MAX];
	struct queue_writer *w = open_writer(fx, &env, rcpt);
	assert_true(queue_writer_flush(w));
	int fd = open(queue_writer_path(w), O_RDONLY);
	assert_true(fd >= 0);
	char got[sizeof(body)];
	assert_int_equal(pread(fd, got, sizeof(body) - 1, (off_t)queue_writer_message_offset(w)), (ssize_t)sizeof(body) - 1);
	assert_memory_equal(got, body, sizeof(body) - 1);
	assert_int_equal(queue_writer_size(w), sizeof(body) - 1);
	close(fd);
	queue_writer_free(&w);
}

/* A damaged tail is never delivered: the block's record must match exactly. */
static void damage(struct fixture *fx, const char *qid, long from_end, const char *bytes, bool truncate_there)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/queue/active/%s", fx->dir, qid);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	if (truncate_there)
		assert_int_equal(ftruncate(fd, sb.st_size - from_end), 0);
	else
		assert_int_equal(pwrite(fd, bytes, strlen(bytes), sb.st_size - from_end), (ssize_t)strlen(bytes));
	close(fd);
}

static void test_damaged_tail_refused(void **state)
{
	struct fixture *fx = *state;
	char qid[QUEUE_ID_LEN + 1], err[256];
	struct queue_message m;
	long rec = QUEUE_TRAILER_LEN + QUEUE_ADDED_REC_LEN;
	/* the block's length one off */
	commit_with(fx, block, sizeof(block) - 1, qid);
	damage(fx, qid, rec - 7 - 19, "9", false);
	assert_false(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	assert_non_null(strstr(err, "incomplete"));
	/* the record's word */
	commit_with(fx, block, sizeof(block) - 1, qid);
	damage(fx, qid, rec - 1, "X", false);
	assert_false(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	/* the block no longer ends its last field */
	commit_with(fx, block, sizeof(block) - 1, qid);
	damage(fx, qid, rec + 1, "X", false);
	assert_false(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	/* the end record gone (a crash mid-write could not leave this in active/, but a
	 * disk could) */
	commit_with(fx, block, sizeof(block) - 1, qid);
	damage(fx, qid, QUEUE_TRAILER_LEN, NULL, true);
	assert_false(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	/* intact, for comparison */
	commit_with(fx, block, sizeof(block) - 1, qid);
	assert_true(queue_message_open(fx->q, qid, &m, err, sizeof(err)));
	queue_message_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_added_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flushed_message_readable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tail_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
