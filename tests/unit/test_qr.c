/* test_qr.c - web/qr.c: the SVG draws exactly libqrencode's matrix (parsed back from
 * the path), inside a quiet zone, with the three finder patterns ISO/IEC 18004 §6.3.3
 * puts in the corners, the label escaped, and bounds on the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/qr.h"

/* Paint the runs of the path "M x y h n v1h-n z ..." into a size x size grid. */
static unsigned char *parse_path(const char *svg, int size)
{
	unsigned char *g = calloc((size_t)size * (size_t)size, 1);
	assert_non_null(g);
	const char *d = strstr(svg, " d=\"");
	assert_non_null(d);
	d += 4;
	while (*d == 'M') {
		int x, y, n, n2, used = 0;
		assert_int_equal(sscanf(d, "M%d %dh%dv1h-%dz%n", &x, &y, &n, &n2, &used), 4);
		assert_int_equal(n, n2);
		assert_true(x >= 0 && y >= 0 && x + n <= size && y < size && n > 0);
		for (int i = 0; i < n; i++)
			g[y * size + x + i] = 1;
		d += used;
	}
	assert_int_equal(*d, '"');
	return g;
}

static void check_finder(const unsigned char *m, int w, int x0, int y0)
{
	for (int y = 0; y < 7; y++)
		for (int x = 0; x < 7; x++) {
			bool ring = x == 0 || y == 0 || x == 6 || y == 6;
			bool core = x >= 2 && x <= 4 && y >= 2 && y <= 4;
			assert_int_equal(m[(y0 + y) * w + x0 + x], ring || core);
		}
}

static void test_svg_is_the_matrix(void **state)
{
	(void)state;
	const char *text = "abcd efgh ijkl mnop";
	QRcode *q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
	assert_non_null(q);
	struct buf b;
	buf_init(&b, QR_SVG_MAX);
	assert_true(qr_svg(text, 6, "App password", &b));
	int size = q->width + 2 * QR_QUIET_ZONE;
	char vb[64];
	snprintf(vb, sizeof(vb), "viewBox=\"0 0 %d %d\" width=\"%d\"", size, size, size * 6);
	assert_non_null(strstr(buf_cstr(&b), vb));
	unsigned char *g = parse_path(buf_cstr(&b), size);
	for (int y = 0; y < size; y++)
		for (int x = 0; x < size; x++) {
			int mx = x - QR_QUIET_ZONE, my = y - QR_QUIET_ZONE;
			bool inside = mx >= 0 && my >= 0 && mx < q->width && my < q->width;
			int want = inside ? q->data[my * q->width + mx] & 1 : 0;
			assert_int_equal(g[y * size + x], want);
		}
	free(g);
	QRcode_free(q);
	buf_free(&b);
}

static void test_matrix_shape(void **state)
{
	(void)state;
	unsigned char *m;
	int w;
	assert_true(qr_matrix("hello", &m, &w));
	assert_int_equal(w, 21);   /* version 1 holds 14 bytes at level M */
	check_finder(m, w, 0, 0);
	check_finder(m, w, w - 7, 0);
	check_finder(m, w, 0, w - 7);
	free(m);
	char big[QR_TEXT_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(qr_matrix(big, &m, &w));
	assert_null(m);
	assert_false(qr_matrix("", &m, &w));
	big[QR_TEXT_MAX] = '\0';
	assert_true(qr_matrix(big, &m, &w));   /* the limit itself fits (version 26 or so) */
	assert_true(w > 100);
	free(m);
}

static void test_label_escaped(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, QR_SVG_MAX);
	assert_true(qr_svg("x", 4, "<script>\"&", &b));
	assert_non_null(strstr(buf_cstr(&b), "aria-label=\"&lt;script&gt;&quot;&amp;\""));
	assert_null(strstr(buf_cstr(&b), "<script"));
	buf_reset(&b);
	assert_false(qr_svg("x", 0, NULL, &b));
	assert_false(qr_svg("x", 33, NULL, &b));
	buf_free(&b);
	struct buf small;
	buf_init(&small, 64);
	assert_false(qr_svg("hello", 4, NULL, &small));   /* cut: never a half symbol */
	buf_free(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_svg_is_the_matrix),
		cmocka_unit_test(test_matrix_shape),
		cmocka_unit_test(test_label_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
