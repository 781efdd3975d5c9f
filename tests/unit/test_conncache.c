/* test_conncache.c - the outbound connection cache (delivery/conncache.h) over real
 * sockets (socketpairs): keys keep destinations and credentials apart, the bounds
 * per destination and in all, the reaper closing an expired connection politely and
 * one whose peer closed it at once, a take that skips a connection the peer closed,
 * and the end closing everything politely. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "delivery/conncache.h"

struct fake {
	int fd, peer;      /* our end, the server's end */
	int id;
};

static atomic_int closed_polite, closed_rude;

static int fake_fd(void *p)
{
	return ((struct fake *)p)->fd;
}

static void fake_close(void *p, bool polite, unsigned ms)
{
	(void)ms;
	struct fake *f = p;
	atomic_fetch_add(polite ? &closed_polite : &closed_rude, 1);
	close(f->fd);
	if (f->peer >= 0)
		close(f->peer);
	free(f);
}

static const struct conncache_ops ops = { .fd = fake_fd, .close = fake_close };

static struct fake *fake_new(int id)
{
	struct fake *f = calloc(1, sizeof(*f));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->fd = sv[0];
	f->peer = sv[1];
	f->id = id;
	return f;
}

static struct conncache *cache(unsigned idle_ms, unsigned per_dest, unsigned total)
{
	atomic_store(&closed_polite, 0);
	atomic_store(&closed_rude, 0);
	struct conncache_opts o = { .ops = &ops, .idle_ms = idle_ms, .per_destination = per_dest, .max_total = total,
		.sessions_max = 4, .quit_ms = 100 };
	char err[128];
	struct conncache *cc = conncache_new(&o, err, sizeof(err));
	assert_non_null(cc);
	return cc;
}

/* Poll a counter until it reaches want (5 s at most). */
static int wait_count(atomic_int *v, int want)
{
	for (int i = 0; i < 500 && atomic_load(v) < want; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return atomic_load(v);
}

static void test_keys(void **state)
{
	(void)state;
	char a[CONNCACHE_KEY_MAX], b[CONNCACHE_KEY_MAX], c[CONNCACHE_KEY_MAX], d[CONNCACHE_KEY_MAX];
	struct conncache_dest x = { .route = "relay", .host = "smart.example", .port = 587, .tls = "starttls,verify",
		.auth_user = "u1", .auth_pass = "secret-one" };
	conncache_key(&x, a, sizeof(a));
	x.auth_pass = "secret-two";
	conncache_key(&x, b, sizeof(b));
	x.auth_user = NULL;
	x.auth_pass = NULL;
	conncache_key(&x, c, sizeof(c));
	x.tls = "starttls,noverify";
	conncache_key(&x, d, sizeof(d));
	assert_string_not_equal(a, b);   /* other credentials: another destination */
	assert_string_not_equal(a, c);
	assert_string_not_equal(c, d);   /* other TLS requirements too */
	assert_null(strstr(a, "secret"));
	assert_null(strstr(a, "u1"));
	assert_non_null(strstr(a, "smart.example|587"));
}

static void test_take_by_key(void **state)
{
	(void)state;
	struct conncache *cc = cache(60000, 4, 8);
	conncache_put(cc, "relay|a|cred1", fake_new(1));
	assert_null(conncache_take(cc, "relay|a|cred2"));
	struct fake *f = conncache_take(cc, "relay|a|cred1");
	assert_non_null(f);
	assert_int_equal(f->id, 1);
	assert_null(conncache_take(cc, "relay|a|cred1"));
	/* LIFO: the most recently kept comes back first */
	conncache_put(cc, "k", f);
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	conncache_put(cc, "k", fake_new(2));
	struct fake *g = conncache_take(cc, "k");
	assert_int_equal(g->id, 2);
	fake_close(g, true, 0);
	conncache_free(&cc);
	assert_null(cc);
	assert_int_equal(atomic_load(&closed_polite), 2);   /* g, and f at the end */
}

static void test_bounds(void **state)
{
	(void)state;
	struct conncache *cc = cache(60000, 2, 3);
	for (int i = 0; i < 3; i++)
		conncache_put(cc, "one", fake_new(i));   /* the third pushes the oldest out */
	assert_int_equal(wait_count(&closed_polite, 1), 1);
	conncache_put(cc, "two", fake_new(10));
	conncache_put(cc, "three", fake_new(20));     /* 4 > 3 in all: the oldest anywhere goes */
	assert_int_equal(wait_count(&closed_polite, 2), 2);
	struct conncache_stats st;
	conncache_stats(cc, &st);
	assert_int_equal(st.idle, 3);
	assert_int_equal(st.evicted, 2);
	struct fake *f = conncache_take(cc, "one");
	assert_non_null(f);
	assert_int_equal(f->id, 2);
	assert_null(conncache_take(cc, "one"));
	fake_close(f, true, 0);
	conncache_free(&cc);
}

static void test_expiry_and_peer_close(void **state)
{
	(void)state;
	struct conncache *cc = cache(150, 4, 8);
	struct fake *f = fake_new(1), *g = fake_new(2);
	conncache_put(cc, "k", f);
	conncache_put(cc, "other", g);
	close(g->peer);            /* the server hangs up an idle connection */
	g->peer = -1;
	assert_int_equal(wait_count(&closed_rude, 1), 1);
	assert_int_equal(atomic_load(&closed_polite), 0);
	assert_int_equal(wait_count(&closed_polite, 1), 1);   /* f: its idle time passed */
	struct conncache_stats st;
	conncache_stats(cc, &st);
	assert_int_equal(st.idle, 0);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.peer_closed, 1);
	conncache_free(&cc);
}

static void test_take_skips_closed(void **state)
{
	(void)state;
	struct conncache *cc = cache(60000, 4, 8);
	struct fake *f = fake_new(1);
	conncache_put(cc, "k", f);
	/* the peer says something unasked (a 421 before closing) */
	assert_int_equal(write(f->peer, "421 bye\r\n", 9), 9);
	assert_null(conncache_take(cc, "k"));
	assert_int_equal(wait_count(&closed_rude, 1), 1);
	conncache_free(&cc);
}

static void test_off(void **state)
{
	(void)state;
	struct conncache *cc = cache(0, 4, 8);
	conncache_put(cc, "k", fake_new(1));
	assert_null(conncache_take(cc, "k"));
	assert_int_equal(wait_count(&closed_polite, 1), 1);
	conncache_free(&cc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_take_by_key),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_expiry_and_peer_close),
		cmocka_unit_test(test_take_skips_closed),
		cmocka_unit_test(test_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
