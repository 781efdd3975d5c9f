/* test_conf.c - configuration defaults, parsing and the error messages' file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

static void test_defaults(void **state)
{
	(void)state;
	struct conf c;
	memset(&c, 0x5a, sizeof(c));
	conf_defaults(&c);
	assert_string_equal(c.hostname, "localhost");
	assert_string_equal(c.data_dir, "./var");
	assert_string_equal(c.user, "");
	assert_int_equal(c.n_local_domains, 0);
	assert_int_equal(c.n_listeners, 0);
	/* the documented defaults, each inside its bounds */
	assert_int_equal(c.message_size, 25ull << 20);
	assert_true(c.message_size >= 1024 && c.message_size <= (2ull << 30));
	assert_int_equal(c.recipients, 100);
	assert_int_equal(c.line_length, 1000);
	assert_true(c.line_length >= 512 && c.line_length <= 65536);
	assert_int_equal(c.idle_timeout, 300);
	assert_true(c.idle_timeout >= 10 && c.idle_timeout <= 3600);
	assert_int_equal(c.connections, 1000);
	assert_int_equal(c.connections_per_ip, 20);
	assert_true(c.connections_per_ip <= c.connections);
	assert_int_equal(c.bad_commands, 10);
	assert_int_equal(c.commit_threads, 16);
	assert_int_equal(c.commit_batch_wait, 2);   /* milliseconds */
	assert_true(c.delivery_threads >= 1 && c.delivery_threads <= 64);
	assert_int_equal(c.retry_min, 300);
	assert_int_equal(c.retry_max, 3600);
	assert_true(c.retry_min <= c.retry_max);
	/* [mailauth] SPF: checked, nothing refused, 20 s (RFC 7208 §4.6.4) */
	assert_int_equal(c.mailauth_spf, CONF_SPF_CHECK);
	assert_false(c.mailauth_spf_fail_refuse);
	assert_int_equal(c.mailauth_spf_timeout, 20);
}

static void test_embedded_default(void **state)
{
	(void)state;
	struct conf c;
	char err[512] = "";
	if (!conf_load_string(&c, conf_embedded_default, "(embedded)", err, sizeof(err)))
		fail_msg("embedded default refused: %s", err);
	assert_string_equal(c.path, "(embedded)");
	assert_true(c.n_listeners >= 1);
	for (size_t i = 0; i < c.n_listeners; i++)
		assert_true(c.listeners[i].port_set);
	assert_true(conf_is_local_domain(&c, "example.test"));
}

static const char good[] =
	"; a comment\n"
	"[server]\n"
	"hostname = mx.example.org\n"
	"data_dir = /var/lib/postern\n"
	"local_domains = Example.ORG, example.net  other.example\n"
	"postmaster = admin@example.org\n"
	"\n"
	"[limits]\n"
	"message_size = 10M\n"
	"recipients = 50\n"
	"line_length = 2000\n"
	"idle_timeout = 2m\n"
	"bad_commands = 3\n"
	"\n"
	"[queue]\n"
	"commit_threads = 8\n"
	"commit_batch_wait = 0\n"
	"retry_min = 60\n"
	"retry_max = 1d\n"
	"\n"
	"[listener smtp]\n"
	"address = 0.0.0.0\n"
	"port = 25\n"
	"role = mx\n"
	"\n"
	"[listener submission]\n"
	"address = ::1\n"
	"port = 587\n"
	"role = submission\n"
	"tls = none\n";

static void test_good(void **state)
{
	(void)state;
	struct conf c;
	char err[512] = "";
	if (!conf_load_string(&c, good, "good.conf", err, sizeof(err)))
		fail_msg("refused: %s", err);
	assert_string_equal(c.hostname, "mx.example.org");
	assert_string_equal(c.data_dir, "/var/lib/postern");
	assert_string_equal(c.postmaster, "admin@example.org");
	assert_int_equal(c.n_local_domains, 3);
	assert_string_equal(c.local_domains[0], "example.org");
	assert_string_equal(c.local_domains[1], "example.net");
	assert_string_equal(c.local_domains[2], "other.example");
	assert_true(conf_is_local_domain(&c, "example.org"));
	assert_true(conf_is_local_domain(&c, "EXAMPLE.net"));
	assert_false(conf_is_local_domain(&c, "example.com"));
	assert_false(conf_is_local_domain(&c, "org"));
	assert_false(conf_is_local_domain(&c, "xexample.org"));
	assert_int_equal(c.message_size, 10u << 20);
	assert_int_equal(c.recipients, 50);
	assert_int_equal(c.line_length, 2000);
	assert_int_equal(c.idle_timeout, 120);
	assert_int_equal(c.bad_commands, 3);
	assert_int_equal(c.commit_threads, 8);
	assert_int_equal(c.commit_batch_wait, 0);
	assert_int_equal(c.retry_min, 60);
	assert_int_equal(c.retry_max, 86400);
	assert_int_equal(c.connections, 1000);   /* untouched: default */
	assert_int_equal(c.n_listeners, 2);
	assert_string_equal(c.listeners[0].name, "smtp");
	assert_string_equal(c.listeners[0].address, "0.0.0.0");
	assert_int_equal(c.listeners[0].port, 25);
	assert_int_equal(c.listeners[0].role, ROLE_MX);
	assert_string_equal(c.listeners[1].name, "submission");
	assert_string_equal(c.listeners[1].address, "::1");
	assert_int_equal(c.listeners[1].port, 587);
	assert_int_equal(c.listeners[1].role, ROLE_SUBMISSION);
	assert_int_equal(c.listeners[1].tls, TLS_NONE);
	assert_string_equal(conf_role_name(ROLE_SUBMISSION), "submission");
	assert_string_equal(conf_role_name(ROLE_MX), "mx");
	assert_string_equal(conf_tls_name(TLS_NONE), "none");

	/* the same from a file */
	char path[] = "/tmp/postern-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)(sizeof(good) - 1));
	close(fd);
	struct conf c2;
	if (!conf_load_file(&c2, path, err, sizeof(err)))
		fail_msg("file refused: %s", err);
	assert_string_equal(c2.path, path);
	assert_int_equal(c2.n_listeners, 2);
	assert_int_equal(c2.retry_max, 86400);
	unlink(path);
	assert_false(conf_load_file(&c2, path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

#define LST "[listener smtp]\nport = 25\n"

static const struct {
	const char *text;
	const char *prefix;       /* "name:LINE:" */
	const char *has[5];       /* substrings */
} bad[] = {
	{ "[limits]\nmessage_size = 12X\n" LST, "t.conf:2:", { "message_size", "12X", "size" } },
	{ "[limits]\nmessage_size = 100\n" LST, "t.conf:2:", { "message_size", "out of range" } },
	{ "[limits]\nmessage_size = 3G\n" LST, "t.conf:2:", { "message_size", "out of range" } },
	{ "[limits]\nrecipients = 0\n" LST, "t.conf:2:", { "recipients", "out of range" } },
	{ "[limits]\nrecipients = -1\n" LST, "t.conf:2:", { "recipients", "whole number" } },
	{ "[limits]\nline_length = 100\n" LST, "t.conf:2:", { "line_length", "out of range" } },
	{ "[limits]\n\nidle_timeout = 5x\n" LST, "t.conf:3:", { "idle_timeout", "duration" } },
	{ "[limits]\nidle_timeout = 5\n" LST, "t.conf:2:", { "idle_timeout", "out of range" } },
	{ "[limits]\nbad_commands = 99999999999999999999999\n" LST, "t.conf:2:", { "bad_commands" } },
	{ "[server]\nhostname = a\nfrobnicate = yes\n" LST, "t.conf:3:", { "frobnicate", "unknown setting" } },
	{ "[server]\nhostname = a\n[bogus]\nkey = 1\n" LST, "t.conf:4:", { "bogus", "unknown section", " imap,", " web,", " events," } },
	{ "[server]\nhostname =\n" LST, "t.conf:", { "hostname", "empty" } },
	{ "[server]\nlocal_domains = example.org.\n" LST, "t.conf:2:", { "local_domains", "dot" } },
	{ "[server]\nlocal_domains = ex_ample.org\n" LST, "t.conf:2:", { "local_domains" } },
	{ "[queue]\nretry_min = 2h\nretry_max = 1h\n" LST, "t.conf:", { "retry_min", "retry_max" } },
	{ "[server]\nhostname = a\n", "t.conf:", { "listener" } },
	{ "[listener smtp]\naddress = 127.0.0.1\n", "t.conf:", { "listener smtp", "port", "missing" } },
	{ "[listener smtp]\nport = 25\n\n[listener sub]\nrole = submission\n", "t.conf:", { "listener sub", "port", "missing" } },
	{ "[listener smtp]\nport = 25\nrole = relay\n", "t.conf:3:", { "role", "relay" } },
	{ "[listener smtp]\nport = 65536\n", "t.conf:2:", { "port", "65536" } },
	{ "[listener smtp]\nport = x\n", "t.conf:2:", { "port" } },
	{ "[listener smtp]\nport = 25\naddress = 999.1.1.1\n", "t.conf:3:", { "address", "999.1.1.1" } },
	{ "[listener smtp]\nport = 25\naddress = localhost\n", "t.conf:3:", { "address", "localhost" } },
	{ "[listener smtp]\nport = 25\ntls = maybe\n", "t.conf:3:", { "tls", "maybe" } },
	{ "[listener smtp]\nport = 25\ncolour = blue\n", "t.conf:3:", { "colour", "unknown" } },
	{ "[listener]\nport = 25\n", "t.conf:2:", { "listener", "name" } },
	{ "[server]\nthis line is not ini\n" LST, "t.conf:2:", { "syntax" } },
	{ "[server\nhostname = a\n" LST, "t.conf:1:", { "syntax" } },
	/* a repeated section or key is refused, naming both lines and the fix */
	{ LST "role = mx\n\n[listener smtp]\nport = 2525\n", "t.conf:5:", { "[listener smtp] appears twice", "first at t.conf:1", "own name" } },
	{ LST "\n[listener  smtp ]\nport = 2525\n", "t.conf:4:", { "appears twice", "t.conf:1" } },
	{ "[server]\nhostname = a\n[limits]\nrecipients = 5\n[server]\ndata_dir = /x\n" LST, "t.conf:5:", { "[server] appears twice", "t.conf:1" } },
	{ LST "port = 26\n", "t.conf:3:", { "port", "set twice, first at t.conf:2", "delete one" } },
	{ "[server]\nhostname = a\nhostname = b\n" LST, "t.conf:3:", { "hostname", "first at t.conf:2" } },
	{ "[server]\nlocal_domains = a.example\n  b.example\n" LST, "t.conf:3:", { "continues the line before", "t.conf:2" } },
	/* trusted_networks that make an open relay */
	{ "[server]\ntrusted_networks = 0.0.0.0/0\n" LST, "t.conf:2:", { "trusted_networks", "open relay", "allow_open_relay = yes" } },
	{ "[server]\ntrusted_networks = ::/0\n" LST, "t.conf:2:", { "IPv6", "open relay" } },
	{ "[server]\nhostname = a\ntrusted_networks = 0.0.0.0/1, 128.0.0.0/1\n" LST, "t.conf:3:", { "IPv4", "open relay" } },
	{ "[server]\ntrusted_networks = 192.0.2.1, 64.0.0.0/7\n" LST, "t.conf:2:", { "more than a /8" } },
	{ "[server]\ntrusted_networks = 2001::/31\n" LST, "t.conf:2:", { "more than a /32" } },
	{ "[server]\ntrusted_networks = 2001:db8::/32 2001:db9::/32\n" LST, "t.conf:2:", { "IPv6" } },
	{ "[certificate a]\nnames = x.example\nnames = y.example\n" LST, "t.conf:3:", { "names", "set twice" } },
	/* a choice names the words it takes */
	{ "[mailauth]\nspf = maybe\n" LST, "t.conf:2:", { "spf", "is not one of off|check" } },
	{ "[mailauth]\nspf_timeout = 0\n" LST, "t.conf:2:", { "spf_timeout", "out of range" } },
	/* a duration in milliseconds wants its unit (a bare 5 would be seconds elsewhere) */
	{ "[queue]\ncommit_batch_wait = 5\n" LST, "t.conf:2:", { "commit_batch_wait", "milliseconds", "2ms" } },
	{ "[queue]\ncommit_batch_wait = 1s\n" LST, "t.conf:2:", { "commit_batch_wait", "out of range", "0 to 100" } },
	/* [mailauth] */
	{ "[mailauth]\ndmarc = maybe\n" LST, "t.conf:2:", { "[mailauth] dmarc", "off|check" } },
	{ "[mailauth]\n\ndmarc_quarantine_header = X-Bad: yes\n" LST, "t.conf:3:", { "dmarc_quarantine_header", "header field name" } },
};

static void test_errors(void **state)
{
	(void)state;
	unsigned failures = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf c;
		char err[512];
		memset(err, 0, sizeof(err));
		bool ok = conf_load_string(&c, bad[i].text, "t.conf", err, sizeof(err));
		bool good_msg = !ok && strncmp(err, bad[i].prefix, strlen(bad[i].prefix)) == 0;
		/* a prefix ending in ':' without a line number must still carry one */
		if (good_msg && strcmp(bad[i].prefix, "t.conf:") == 0)
			good_msg = err[7] >= '0' && err[7] <= '9';
		for (size_t k = 0; k < sizeof bad[i].has / sizeof bad[i].has[0] && bad[i].has[k] && good_msg; k++)
			if (!strstr(err, bad[i].has[k]))
				good_msg = false;
		if (!good_msg) {
			failures++;
			print_error("row %zu: ok=%d err=\"%s\" (want %s ... %s)\n", i, ok, err, bad[i].prefix, bad[i].has[0]);
		}
	}
	if (failures)
		fail_msg("%u rows failed", failures);
}

/* A small error buffer is filled, terminated, never overrun. */
static void test_small_error_buffer(void **state)
{
	(void)state;
	struct conf c;
	char err[16];
	memset(err, 'Z', sizeof(err));
	assert_false(conf_load_string(&c, "[limits]\nmessage_size = 12X\n", "a-rather-long-name.conf", err, 10));
	assert_non_null(memchr(err, '\0', 10));
	for (size_t i = 10; i < sizeof(err); i++)
		assert_int_equal(err[i], 'Z');
}

/* Long lines: the line numbers of later errors stay right. */
static void test_long_lines(void **state)
{
	(void)state;
	char text[2048];
	char comment[600];
	memset(comment, 'c', sizeof(comment) - 1);
	comment[0] = ';';
	comment[sizeof(comment) - 1] = '\0';
	snprintf(text, sizeof(text), "%s\n[limits]\nrecipients = 0\n" LST, comment);
	struct conf c;
	char err[512] = "";
	assert_false(conf_load_string(&c, text, "t.conf", err, sizeof(err)));
	if (strncmp(err, "t.conf:3:", 9) != 0)
		fail_msg("after a 600-octet comment line: \"%s\"", err);
}

/* local_domains takes a list of up to 64 names (4096 octets): a long line must not be
 * cut into a shorter list or a syntax error. */
static void test_long_domain_list(void **state)
{
	(void)state;
	char text[4096];
	int o = snprintf(text, sizeof(text), "[server]\nlocal_domains = ");
	for (int i = 0; i < 30; i++)
		o += snprintf(text + o, sizeof(text) - (size_t)o, "domain%02d.example ", i);
	snprintf(text + o, sizeof(text) - (size_t)o, "\n" LST);
	static struct conf c;
	char err[512] = "";
	if (!conf_load_string(&c, text, "t.conf", err, sizeof(err)))
		fail_msg("a %d-octet local_domains line: \"%s\" (%zu domains kept, the last \"%s\")", o, err,
			c.n_local_domains, c.n_local_domains ? c.local_domains[c.n_local_domains - 1] : "");
	assert_int_equal(c.n_local_domains, 30);
	assert_true(conf_is_local_domain(&c, "domain29.example"));
}

/* Wide private ranges, one public /8, or a /32 of IPv6 are not an open relay; the
 * explicit setting accepts even 0.0.0.0/0. */
static void test_trusted_networks_allowed(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, 100.64.0.0/10",
		"8.0.0.0/8", "8.0.0.0/8 8.1.0.0/16 8.0.0.0/8", "fc00::/7 fe80::/10 ::1", "2001:db8::/32", "192.0.2.0/24",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[512], err[1024] = "";
		snprintf(text, sizeof(text), "[server]\ntrusted_networks = %s\n" LST, ok[i]);
		struct conf c;
		if (!conf_load_string(&c, text, "t.conf", err, sizeof(err)))
			fail_msg("%s refused: %s", ok[i], err);
	}
	struct conf c;
	char err[1024] = "";
	if (!conf_load_string(&c, "[server]\ntrusted_networks = 0.0.0.0/0 ::/0\nallow_open_relay = yes\n" LST, "t.conf", err, sizeof(err)))
		fail_msg("allow_open_relay = yes refused: %s", err);
	assert_true(conf_is_trusted(&c, "198.51.100.7"));
	/* where a setting comes from */
	char where[256];
	assert_string_equal(conf_where(&c, "server", "trusted_networks", where, sizeof(where)), "t.conf:2: [server] trusted_networks");
	assert_string_equal(conf_where(&c, "tls", "certificate", where, sizeof(where)), "t.conf: [tls] certificate (default)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_embedded_default),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_long_domain_list),
		cmocka_unit_test(test_trusted_networks_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
