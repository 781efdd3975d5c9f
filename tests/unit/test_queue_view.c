/* test_queue_view.c - the admin's view of the queue (queue/view.c), which `postern
 * queue list/show` and the web's /admin/queue both print: the state of each message
 * (active, deferred, held, sending, failed, damaged), the pending recipients summed
 * up, the filters by sender and state, one message by id, and the "inflight" answer
 * of the queue runner read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue.h"
#include "util/id.h"

static char dir[] = "/tmp/postern-queue-view-XXXXXX";
static struct queue *q;
static char plain[QUEUE_ID_LEN + 1], held[QUEUE_ID_LEN + 1], deferred[QUEUE_ID_LEN + 1], failed[QUEUE_ID_LEN + 1];
static const char damaged[] = "00000000000000AA";

static void commit(const char *sender, char *qid_out)
{
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	id_new_queue_id(env.qid);
	env.arrival = 1700000000;
	snprintf(env.sender, sizeof(env.sender), "%s", sender);
	env.rcpts = calloc(2, sizeof(*env.rcpts));
	snprintf(env.rcpts[0], QUEUE_ADDR_MAX, "one@remote.example");
	snprintf(env.rcpts[1], QUEUE_ADDR_MAX, "two@remote.example");
	env.n_rcpts = 2;
	char err[256];
	struct queue_writer *w = queue_writer_open(q, &env, err, sizeof(err));
	assert_non_null(w);
	assert_true(queue_writer_write(w, "Subject: hi\r\n\r\nbody\r\n", 21));
	assert_true(queue_writer_commit(w, err, sizeof(err)));
	queue_writer_free(&w);
	snprintf(qid_out, QUEUE_ID_LEN + 1, "%s", env.qid);
	queue_envelope_free(&env);
}

static void set_state(const char *qid, bool hold, unsigned attempts, long long next_try)
{
	struct queue_state st;
	assert_true(queue_state_read(q, qid, 2, &st));
	st.held = hold;
	st.r[0].state = RCPT_DELIVERED;
	st.r[1].attempts = attempts;
	st.r[1].next_try = next_try;
	snprintf(st.r[1].last_reply, sizeof(st.r[1].last_reply), "mx.remote.example: 451 4.3.0 <try later>");
	assert_true(queue_state_write(q, qid, &st));
	queue_state_free(&st);
}

static int setup(void **state)
{
	(void)state;
	char err[256];
	if (!mkdtemp(dir) || !queue_open(&q, dir, err, sizeof(err)))
		return -1;
	commit("alice@example.test", plain);
	commit("Bob@example.test", held);
	set_state(held, true, 0, 0);
	commit("bob@example.test", deferred);
	set_state(deferred, false, 2, 1900000000);
	commit("carol@example.test", failed);
	assert_true(queue_move_failed_why(q, failed, "5.1.1 no such user"));
	char path[256];
	snprintf(path, sizeof(path), "%s/queue/active/%s", dir, damaged);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "garbage", 7), 7);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	queue_close(&q);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct seen {
	char qid[8][QUEUE_ID_LEN + 1];
	enum queue_view_state state[8];
	size_t pending[8], first[8];
	char where[8][64];
	size_t n;
};

static void collect(void *arg, const struct queue_view_item *it)
{
	struct seen *s = arg;
	assert_true(s->n < 8);
	snprintf(s->qid[s->n], sizeof(s->qid[0]), "%s", it->qid);
	s->state[s->n] = it->state;
	s->pending[s->n] = it->pending;
	s->first[s->n] = it->first_pending;
	snprintf(s->where[s->n], sizeof(s->where[0]), "%s", it->where ? it->where : "");
	if (it->state == QUEUE_VIEW_DAMAGED)
		assert_null(it->m);
	if (it->state == QUEUE_VIEW_FAILED)
		assert_string_equal(it->failed_reason, "5.1.1 no such user");
	s->n++;
}

static enum queue_view_state state_of(const struct seen *s, const char *qid)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->qid[i], qid) == 0)
			return s->state[i];
	return 0;
}

static void test_states_and_filters(void **state)
{
	(void)state;
	char inflight[128];
	snprintf(inflight, sizeof(inflight), "delivering %s mx1.remote.example[192.0.2.25]:25", plain);
	struct seen s = { 0 };
	struct queue_view_filter all = { 0 };
	assert_true(queue_view_list(q, &all, inflight, collect, &s));
	assert_int_equal(s.n, 4);   /* active/ only: not failed/ */
	assert_int_equal(state_of(&s, plain), QUEUE_VIEW_SENDING);
	assert_int_equal(state_of(&s, held), QUEUE_VIEW_HELD);
	assert_int_equal(state_of(&s, deferred), QUEUE_VIEW_DEFERRED);
	assert_int_equal(state_of(&s, damaged), QUEUE_VIEW_DAMAGED);
	for (size_t i = 0; i < s.n; i++)
		if (strcmp(s.qid[i], plain) == 0)
			assert_string_equal(s.where[i], "mx1.remote.example[192.0.2.25]:25");
		else if (strcmp(s.qid[i], deferred) == 0)
			assert_true(s.pending[i] == 1 && s.first[i] == 1);
	/* by sender, without regard to case; damaged files never match a sender */
	memset(&s, 0, sizeof(s));
	struct queue_view_filter bob = { .sender = "BOB@example.test" };
	assert_true(queue_view_list(q, &bob, "", collect, &s));
	assert_int_equal(s.n, 2);
	/* by state, failed/ included when asked */
	memset(&s, 0, sizeof(s));
	struct queue_view_filter some = { .states = QUEUE_VIEW_HELD | QUEUE_VIEW_FAILED };
	assert_true(queue_view_list(q, &some, "", collect, &s));
	assert_int_equal(s.n, 2);
	assert_int_equal(state_of(&s, held), QUEUE_VIEW_HELD);
	assert_int_equal(state_of(&s, failed), QUEUE_VIEW_FAILED);
}

static void test_one(void **state)
{
	(void)state;
	struct seen s = { 0 };
	assert_true(queue_view_one(q, failed, "", collect, &s));
	assert_true(queue_view_one(q, deferred, "", collect, &s));
	assert_true(queue_view_one(q, damaged, "", collect, &s));
	assert_int_equal(s.state[0], QUEUE_VIEW_FAILED);
	assert_int_equal(s.state[1], QUEUE_VIEW_DEFERRED);
	assert_int_equal(s.state[2], QUEUE_VIEW_DAMAGED);
	assert_false(queue_view_one(q, "0123456789ABCDEF", "", collect, &s));
	assert_false(queue_view_one(q, "../../etc/passwd", "", collect, &s));
	assert_int_equal(s.n, 3);
}

static void test_words(void **state)
{
	(void)state;
	enum queue_view_state st;
	assert_true(queue_view_state_parse("held", &st));
	assert_int_equal(st, QUEUE_VIEW_HELD);
	assert_string_equal(queue_view_state_name(QUEUE_VIEW_DEFERRED), "deferred");
	assert_false(queue_view_state_parse("Held", &st));
	char age[16], where[64];
	queue_view_age(90, age, sizeof(age));
	assert_string_equal(age, "90s");
	queue_view_age(3 * 86400, age, sizeof(age));
	assert_string_equal(age, "3d");
	/* one token per field: a qid that is only a prefix of another is not matched */
	const char *inflight = "delivering 0123456789ABCDEF0 x 0123456789ABCDEF local+mailbox";
	assert_string_equal(queue_view_inflight_where(inflight, "0123456789ABCDEF", where, sizeof(where)), "local mailbox");
	assert_null(queue_view_inflight_where("delivering", "0123456789ABCDEF", where, sizeof(where)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states_and_filters),
		cmocka_unit_test(test_one),
		cmocka_unit_test(test_words),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
