/* test_group_commit.c - the queue's group commit (queue/commit.c) on a real
 * filesystem: concurrent commits share directory fsyncs (counted by fileio and by
 * postern_commit_batch_size, not timed), every one is committed, and a lone commit
 * never waits for company however long commit_batch_wait is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"
#include "util/fileio.h"
#include "util/id.h"
#include "util/metrics.h"

#define THREADS 16
#define ROUNDS 4

struct fixture {
	char dir[64];
	struct queue *q;
	pthread_barrier_t start;
	int failures;
	pthread_mutex_t lock;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/postern-group-XXXXXX");
	char err[256];
	if (!mkdtemp(fx->dir) || !queue_open(&fx->q, fx->dir, err, sizeof(err)))
		return -1;
	pthread_mutex_init(&fx->lock, NULL);
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
	pthread_mutex_destroy(&fx->lock);
	free(fx);
	return 0;
}

static size_t count_active(const struct fixture *fx)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/queue/active", fx->dir);
	DIR *d = opendir(path);
	size_t n = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* One message written and committed; false when any step failed. */
static bool commit_message(struct queue *q)
{
	char rcpt[1][QUEUE_ADDR_MAX] = { "alice@example.test" };
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	id_new_queue_id(env.qid);
	env.arrival = time(NULL);
	snprintf(env.sender, sizeof(env.sender), "bob@example.test");
	env.rcpts = rcpt;
	env.n_rcpts = 1;
	char err[256];
	struct queue_writer *w = queue_writer_open(q, &env, err, sizeof(err));
	static const char body[] = "Subject: group\r\n\r\nbody\r\n";
	bool ok = w && queue_writer_write(w, body, sizeof(body) - 1) && queue_writer_commit(w, err, sizeof(err));
	queue_writer_free(&w);
	return ok;
}

static void *committer(void *arg)
{
	struct fixture *fx = arg;
	pthread_barrier_wait(&fx->start);
	bool ok = commit_message(fx->q);
	pthread_mutex_lock(&fx->lock);
	fx->failures += !ok;
	pthread_mutex_unlock(&fx->lock);
	return NULL;
}

/* THREADS commits released together, ROUNDS times: every one lands in active/, each
 * costs its own file fsync, and the directory fsyncs are fewer than the commits. */
static void test_concurrent_commits_share_directory_fsyncs(void **state)
{
	struct fixture *fx = *state;
	metrics_reset();
	uint64_t f0 = fileio_fsync_count();
	for (int r = 0; r < ROUNDS; r++) {
		pthread_t t[THREADS];
		pthread_barrier_init(&fx->start, NULL, THREADS);
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, committer, fx), 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&fx->start);
	}
	assert_int_equal(fx->failures, 0);
	assert_int_equal(count_active(fx), THREADS * ROUNDS);
	uint64_t dir_syncs = metrics_histogram_count(METRIC_COMMIT_BATCH_SIZE, NULL);
	uint64_t fsyncs = fileio_fsync_count() - f0;
	/* one file fsync per message, plus the shared directory fsyncs: nothing else */
	assert_int_equal(fsyncs, THREADS * ROUNDS + dir_syncs);
	assert_true(dir_syncs >= 1);
	if (dir_syncs >= THREADS * ROUNDS)
		fail_msg("%u concurrent commits made %u directory fsyncs: none was shared",
			THREADS * ROUNDS, (unsigned)dir_syncs);
}

/* Alone, a commit leads at once: with a 30 s batch wait, 5 commits one after the
 * other finish long before one wait would have, each its own batch of 1. */
static void test_lone_commit_never_waits(void **state)
{
	struct fixture *fx = *state;
	queue_set_commit_batch_wait(fx->q, 30u * 1000 * 1000);
	metrics_reset();
	uint64_t f0 = fileio_fsync_count();
	time_t t0 = time(NULL);
	for (int i = 0; i < 5; i++)
		assert_true(commit_message(fx->q));
	assert_true(time(NULL) - t0 < 30);
	assert_int_equal(metrics_histogram_count(METRIC_COMMIT_BATCH_SIZE, NULL), 5);
	assert_int_equal(fileio_fsync_count() - f0, 10);
	assert_int_equal(count_active(fx), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_commits_share_directory_fsyncs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lone_commit_never_waits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
