/* test_dns_live.c - dns/ against a real server: a dnsmasq started here on loopback
 * (as tests/integration/delivery_support.py does) serves MX, A/AAAA, TXT of several
 * strings (--txt-record), TLSA (--dns-rr, type 52) and PTR; the blocking and the
 * asynchronous forms ask it.  A socket that never answers gives DNS_TIMEOUT.
 * Skipped when dnsmasq is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns/dns.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
/* the SHA2-256 digest published as TLSA 3 1 1 */
#define TLSA_HEX "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"

static pid_t dnsmasq_pid;
static char forwarder[64];

/* A UDP port free on 127.0.0.1 (bound and kept when keep != NULL). */
static int free_udp_port(int *keep)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s, (struct sockaddr *)&a, &l) != 0)
		return -1;
	if (keep)
		*keep = s;
	else
		close(s);
	return ntohs(a.sin_port);
}

static struct dns_resolver *resolver_for(const char *fwd, unsigned timeout_ms)
{
	struct dns_options o = { .forwarder = fwd, .timeout_ms = timeout_ms };
	char err[256];
	struct dns_resolver *r = dns_resolver_new(&o, err, sizeof(err));
	if (!r)
		fail_msg("resolver: %s", err);
	return r;
}

/* A UDP and TCP port free on 127.0.0.1: dnsmasq listens on both. */
static int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int port = free_udp_port(NULL);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		bool ok = port > 0 && t >= 0 && bind(t, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (t >= 0)
			close(t);
		if (ok)
			return port;
	}
	return -1;
}

static pid_t spawn_dnsmasq(int port)
{
	char portarg[32];
	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1), dup2(devnull, 2);
		execl(DNSMASQ, DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
			"--pid-file=", "--user=root", portarg, "--listen-address=127.0.0.1", "--bind-interfaces",
			"--mx-host=m.test,mx.m.test,10", "--host-record=mx.m.test,127.0.0.2,::2",
			"--txt-record=spf.test,v=spf1 ip4:192.0.2.0/24 ,-all",
			"--dns-rr=_25._tcp.mx.m.test,52,030101" TLSA_HEX,
			"--ptr-record=4.3.2.1.in-addr.arpa,mx.m.test",
			"--local=/test/", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Ready once it answers; each try with a fresh resolver, since unbound remembers a
 * server that did not answer and would wait before asking it again. */
static bool answers(void)
{
	struct dns_resolver *r = resolver_for(forwarder, 300);
	struct dns_result res;
	dns_lookup(r, DNS_A, "mx.m.test", &res);
	bool up = res.rcode == DNS_NOERROR;
	dns_result_free(&res);
	dns_resolver_free(&r);
	return up;
}

static int start_dnsmasq(void **state)
{
	(void)state;
	if (access(DNSMASQ, X_OK) != 0)
		return 0;
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = free_port();
		snprintf(forwarder, sizeof(forwarder), "127.0.0.1@%d", port);
		dnsmasq_pid = spawn_dnsmasq(port);
		pid_t gone = 0;
		for (int i = 0; i < 50 && (gone = waitpid(dnsmasq_pid, NULL, WNOHANG)) == 0; i++) {
			if (answers())
				return 0;
			usleep(50000);
		}
		if (gone == 0) {   /* running but silent: stop it and try another port */
			kill(dnsmasq_pid, SIGTERM);
			waitpid(dnsmasq_pid, NULL, 0);
		}
		dnsmasq_pid = 0;   /* exited (port taken meanwhile?) */
	}
	fprintf(stderr, "dnsmasq did not start\n");
	return -1;
}

static int stop_dnsmasq(void **state)
{
	(void)state;
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
	return 0;
}

static void need_dnsmasq(void)
{
	if (dnsmasq_pid <= 0)
		skip();
}

static void test_blocking_records(void **state)
{
	(void)state;
	need_dnsmasq();
	struct dns_resolver *r = resolver_for(forwarder, 5000);
	struct dns_result res;

	dns_lookup(r, DNS_MX, "m.test", &res);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.rr[0].u.mx.preference, 10);
	assert_string_equal(res.rr[0].u.mx.exchange, "mx.m.test");
	assert_int_equal(res.security, DNS_INSECURE);   /* no trust anchor */
	dns_result_free(&res);

	dns_lookup(r, DNS_AAAA, "mx.m.test", &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.rr[0].u.addr.text, "::2");
	dns_result_free(&res);

	/* two character-strings, joined (RFC 7208 §3.3) */
	dns_lookup(r, DNS_TXT, "spf.test", &res);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.rr[0].u.txt.text, "v=spf1 ip4:192.0.2.0/24 -all");
	dns_result_free(&res);

	dns_lookup(r, DNS_TLSA, "_25._tcp.mx.m.test", &res);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n, 1);
	const struct dns_tlsa *t = &res.rr[0].u.tlsa;
	assert_int_equal(t->usage, 3);
	assert_int_equal(t->selector, 1);
	assert_int_equal(t->matching, 1);
	assert_int_equal(t->len, 32);
	assert_int_equal(t->data[0], 1);
	assert_int_equal(t->data[31], 0x20);
	dns_result_free(&res);

	/* not under 127.in-addr.arpa: unbound serves RFC 6303 zones itself */
	dns_lookup(r, DNS_PTR, "4.3.2.1.in-addr.arpa", &res);
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.rr[0].u.name, "mx.m.test");
	dns_result_free(&res);

	dns_lookup(r, DNS_MX, "nx.test", &res);
	assert_int_equal(res.rcode, DNS_NXDOMAIN);
	dns_result_free(&res);

	dns_lookup(r, DNS_TXT, "m.test", &res);   /* NODATA */
	assert_int_equal(res.rcode, DNS_NOERROR);
	assert_int_equal(res.n, 0);
	dns_result_free(&res);
	dns_resolver_free(&r);
}

struct answers {
	int calls;
	enum dns_rcode rc[4];
	size_t n[4];
};

static void collect(void *arg, struct dns_result *res)
{
	struct answers *a = arg;
	if (a->calls < 4) {
		a->rc[a->calls] = res->rcode;
		a->n[a->calls] = res->n;
	}
	a->calls++;
	dns_result_free(res);
}

/* What an event loop would do with the descriptor and the timer. */
static void run_loop(struct dns_resolver *r, int max_ms)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (dns_resolver_pending(r) > 0) {
		struct pollfd p = { .fd = dns_resolver_fd(r), .events = POLLIN };
		if (poll(&p, 1, dns_resolver_next_timeout(r)) > 0)
			dns_resolver_process(r);
		dns_resolver_expire(r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > max_ms)
			fail_msg("async queries still pending after %d ms", max_ms);
	}
}

static void test_async(void **state)
{
	(void)state;
	need_dnsmasq();
	struct dns_resolver *r = resolver_for(forwarder, 5000);
	struct answers txt = { 0 }, tlsa = { 0 }, nx = { 0 }, cancelled = { 0 };
	char err[128];
	assert_non_null(dns_query_start(r, DNS_TXT, "spf.test", collect, &txt, err, sizeof(err)));
	assert_non_null(dns_query_start(r, DNS_TLSA, "_25._tcp.mx.m.test", collect, &tlsa, err, sizeof(err)));
	assert_non_null(dns_query_start(r, DNS_A, "nx.test", collect, &nx, err, sizeof(err)));
	struct dns_query *q = dns_query_start(r, DNS_MX, "m.test", collect, &cancelled, err, sizeof(err));
	assert_non_null(q);
	assert_int_equal(dns_resolver_pending(r), 4);
	assert_true(dns_resolver_fd(r) >= 0);
	dns_query_cancel(r, &q);
	assert_null(q);
	assert_int_equal(dns_resolver_pending(r), 3);
	run_loop(r, 5000);
	assert_int_equal(txt.calls, 1);
	assert_int_equal(txt.rc[0], DNS_NOERROR);
	assert_int_equal(txt.n[0], 1);
	assert_int_equal(tlsa.calls, 1);
	assert_int_equal(tlsa.n[0], 1);
	assert_int_equal(nx.calls, 1);
	assert_int_equal(nx.rc[0], DNS_NXDOMAIN);
	assert_int_equal(cancelled.calls, 0);
	dns_resolver_free(&r);
}

/* A server that receives and never answers: the deadline, not unbound, ends the wait. */
static void test_timeouts(void **state)
{
	(void)state;
	int silent = -1;
	int port = free_udp_port(&silent);
	assert_true(port > 0);
	char fwd[64];
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", port);
	struct dns_resolver *r = resolver_for(fwd, 400);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct dns_result res;
	dns_lookup(r, DNS_MX, "m.test", &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(res.rcode, DNS_TIMEOUT);
	assert_string_equal(res.error, "no answer within 1 s");
	assert_true(ms >= 350 && ms < 3000);
	dns_result_free(&res);

	struct answers a = { 0 };
	char err[128];
	assert_non_null(dns_query_start(r, DNS_TXT, "spf.test", collect, &a, err, sizeof(err)));
	int left = dns_resolver_next_timeout(r);
	assert_true(left > 0 && left <= 400);
	run_loop(r, 3000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc[0], DNS_TIMEOUT);
	assert_int_equal(dns_resolver_next_timeout(r), -1);
	dns_resolver_free(&r);
	close(silent);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocking_records),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_timeouts),
	};
	return cmocka_run_group_tests(tests, start_dnsmasq, stop_dnsmasq);
}
