/* test_deflate.c - net/deflate.c, the COMPRESS=DEFLATE filter (RFC 4978), against
 * zlib's own raw deflate on the other side: our bursts inflate at once (sync flush),
 * the client's window-15 stream inflates through a small bound a piece at a time
 * (nothing stays stuck inside zlib), garbage is refused with zlib's words, and the
 * memory a session holds is what the docs say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <zlib.h>

#include "net/internal.h"

static void test_output_flushes_every_burst(void **state)
{
	(void)state;
	char err[160];
	struct net_deflate *d = net_deflate_new(err, sizeof(err));
	assert_non_null(d);
	struct evbuffer *wire = evbuffer_new();
	z_stream in;
	memset(&in, 0, sizeof(in));
	assert_int_equal(inflateInit2(&in, -15), Z_OK);
	for (int burst = 0; burst < 50; burst++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "* %d EXISTS\r\n", burst);
		assert_true(net_deflate_write(d, line, (size_t)n, wire));
		/* the client inflates what arrived so far and sees the whole reply */
		size_t len = evbuffer_get_length(wire);
		unsigned char out[128];
		in.next_in = evbuffer_pullup(wire, (ev_ssize_t)len);
		in.avail_in = (uInt)len;
		in.next_out = out;
		in.avail_out = sizeof(out);
		int r = inflate(&in, Z_SYNC_FLUSH);
		assert_true(r == Z_OK || r == Z_BUF_ERROR);
		assert_int_equal(in.avail_in, 0);
		assert_int_equal(sizeof(out) - in.avail_out, (size_t)n);
		assert_memory_equal(out, line, (size_t)n);
		evbuffer_drain(wire, len);
	}
	inflateEnd(&in);
	evbuffer_free(wire);
	net_deflate_free(&d);
	assert_null(d);
}

/* The client's stream, inflated through a 1000-octet bound: every octet arrives. */
static void test_input_bounded_and_complete(void **state)
{
	(void)state;
	size_t total = 300000;
	unsigned char *plain = malloc(total);
	for (size_t i = 0; i < total; i++)
		plain[i] = (unsigned char)("a NOOP\r\n"[i % 8] + (i / 4096) % 3);
	z_stream out;
	memset(&out, 0, sizeof(out));
	assert_int_equal(deflateInit2(&out, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	unsigned char *z = malloc(total + 1024);
	out.next_in = plain;
	out.avail_in = (uInt)total;
	out.next_out = z;
	out.avail_out = (uInt)(total + 1024);
	assert_int_equal(deflate(&out, Z_SYNC_FLUSH), Z_OK);
	size_t zlen = (size_t)(out.next_out - z);
	deflateEnd(&out);

	char err[160];
	struct net_deflate *d = net_deflate_new(err, sizeof(err));
	struct evbuffer *from = evbuffer_new();
	evbuffer_add(from, z, zlen);
	unsigned char *got = malloc(total);
	size_t have = 0;
	for (int rounds = 0; rounds < 10000 && have < total; rounds++) {
		assert_true(net_deflate_read(d, from, 1000));
		struct evbuffer *p = net_deflate_plain(d);
		size_t n = evbuffer_get_length(p);
		assert_true(n <= 1000);
		assert_true(have + n <= total);
		evbuffer_remove(p, got + have, n);
		have += n;
	}
	assert_int_equal(have, total);
	assert_memory_equal(got, plain, total);
	/* zlib's state with the client's 32 KiB window in use: about 78 KiB (docs/architecture.md) */
	size_t mem = net_deflate_memory(d);
	print_message("memory of a compressing session after use: %zu octets\n", mem);
	assert_true(mem > 40000 && mem < 100000);
	free(got);
	free(z);
	free(plain);
	evbuffer_free(from);
	net_deflate_free(&d);
}

static void test_garbage_is_refused(void **state)
{
	(void)state;
	char err[160];
	struct net_deflate *d = net_deflate_new(err, sizeof(err));
	struct evbuffer *from = evbuffer_new();
	unsigned char junk[64];
	memset(junk, 0xff, sizeof(junk));   /* BFINAL=1, BTYPE=11: reserved (RFC 1951 §3.2.3) */
	evbuffer_add(from, junk, sizeof(junk));
	assert_false(net_deflate_read(d, from, 65536));
	assert_string_equal(net_deflate_error(d), "invalid block type");
	assert_false(net_deflate_read(d, from, 65536));   /* stays broken */
	evbuffer_free(from);
	net_deflate_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_flushes_every_burst),
		cmocka_unit_test(test_input_bounded_and_complete),
		cmocka_unit_test(test_garbage_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
