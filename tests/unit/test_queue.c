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
	/* a different count is refused */
	unsigned char st3[3];
	assert_false(queue_state_load(fx->q, qid, st3, 3));
	unsigned char st7[7];
	assert_false(queue_state_load(fx->q, qid, st7, 7));
	/* garbage is refused */
	char path[1200];
	snprintf(path, sizeof(path), "%s/queue/state/%s", fx->dir, qid);
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "01x21\n", 6), 6);
	close(fd);
	assert_false(queue_state_load(fx->q, qid, st, 5));
	/* no temporary file is left behind */
	snprintf(path, sizeof(path), "%s/queue/state", fx->dir);
	assert_int_equal(count_files(path), 1);
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
		cmocka_unit_test(test_envelope_parse_table),
		cmocka_unit_test(test_envelope_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
