/* qr.c - QR codes as inline SVG (see qr.h).
 *
 * libqrencode makes the symbol (QRcode_encodeString8bit: the text as bytes, so an
 * app password or a URI is encoded exactly as given); bit 0 of each of its module
 * bytes says dark.  The drawing is one path of horizontal runs ("M x y h n v 1 h -n
 * z" per run of dark modules in a row), in module units with the quiet zone added,
 * scaled by the viewBox, so its size grows with the number of runs, not pixels. */
#include "web/qr.h"

#include <qrencode.h>
#include <stdlib.h>
#include <string.h>

#include "web/autoconfig.h"

bool qr_matrix(const char *text, unsigned char **modules, int *width)
{
	*modules = NULL;
	*width = 0;
	size_t n = text ? strlen(text) : 0;
	if (n == 0 || n > QR_TEXT_MAX)
		return false;
	/* version 0: the smallest that holds it; level M recovers ~15% of a smudged code */
	QRcode *q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
	if (!q)
		return false;
	size_t cells = (size_t)q->width * (size_t)q->width;
	unsigned char *m = malloc(cells);
	if (m) {
		for (size_t i = 0; i < cells; i++)
			m[i] = q->data[i] & 1;
		*modules = m;
		*width = q->width;
	}
	QRcode_free(q);
	return m != NULL;
}

/* The dark runs of row y, as path segments. */
static void row_runs(struct buf *out, const unsigned char *m, int width, int y)
{
	const unsigned char *row = m + (size_t)y * (size_t)width;
	for (int x = 0; x < width;) {
		if (!row[x]) {
			x++;
			continue;
		}
		int start = x;
		while (x < width && row[x])
			x++;
		buf_printf(out, "M%d %dh%dv1h-%dz", start + QR_QUIET_ZONE, y + QR_QUIET_ZONE, x - start, x - start);
	}
}

bool qr_svg(const char *text, unsigned module_px, const char *label, struct buf *out)
{
	if (module_px < 1 || module_px > 32)
		return false;
	unsigned char *m;
	int width;
	if (!qr_matrix(text, &m, &width))
		return false;
	int size = width + 2 * QR_QUIET_ZONE;
	unsigned px = (unsigned)size * module_px;
	buf_printf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"qr\" viewBox=\"0 0 %d %d\" width=\"%u\" "
		"height=\"%u\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"", size, size, px, px);
	autoconfig_xml_escape(out, label ? label : "QR code");
	buf_printf(out, "\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"", size, size);
	for (int y = 0; y < width; y++)
		row_runs(out, m, width, y);
	buf_appends(out, "\"/></svg>");
	free(m);
	return !out->truncated;
}
