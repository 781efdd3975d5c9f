/* fuzz_data.c - the DATA decoder fed in pieces whose sizes come from the input's
 * first bytes; checks its invariants and that the result does not depend on the split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	const uint8_t *sizes = data;
	size_t nsizes = 4;
	const char *in = (const char *)data + nsizes;
	size_t len = size - nsizes;

	/* reference: one feed */
	struct data_decoder ref;
	data_decoder_init(&ref);
	struct buf rout;
	buf_init(&rout, len + 16);
	size_t rused = data_decoder_feed(&ref, in, len, &rout);
	if (rused > len || (!ref.done && rused != len) || rout.len > len + 2 || rout.truncated)
		abort();

	struct data_decoder d;
	data_decoder_init(&d);
	struct buf out;
	buf_init(&out, len + 16);
	size_t pos = 0, used = 0, k = 0;
	bool was_done = false;
	while (pos < len) {
		size_t piece = (size_t)sizes[k++ % nsizes] % 17;
		if (piece > len - pos)
			piece = len - pos;
		char *copy = malloc(piece ? piece : 1);
		memcpy(copy, in + pos, piece);
		size_t before = out.len;
		size_t n = data_decoder_feed(&d, copy, piece, &out);
		free(copy);
		if (n > piece || out.len - before > piece + 2)
			abort();
		if (was_done && n != 0)
			abort();                     /* once done, stays done */
		if (!d.done && n != piece)
			abort();
		if (was_done && !d.done)
			abort();
		was_done = d.done;
		used += n;
		pos += piece;
		if (piece == 0 && sizes[0] % 17 == 0 && sizes[1] % 17 == 0 && sizes[2] % 17 == 0 && sizes[3] % 17 == 0)
			break;                       /* all-zero pieces: nothing to do */
	}
	if (pos >= len) {
		if (used != rused || d.done != ref.done || out.len != rout.len ||
			(out.len && memcmp(out.data, rout.data, out.len) != 0) ||
			d.bare_lf != ref.bare_lf || d.bare_cr != ref.bare_cr || d.has_8bit != ref.has_8bit ||
			d.has_nul != ref.has_nul || d.lines != ref.lines || d.longest_line != ref.longest_line)
			abort();
	}
	/* a message without bare CR/LF never has a lone CR or LF in its output */
	if (ref.done && ref.bare_lf == 0 && ref.bare_cr == 0) {
		for (size_t i = 0; i < rout.len; i++) {
			if (rout.data[i] == '\n' && (i == 0 || rout.data[i - 1] != '\r'))
				abort();
			if (rout.data[i] == '\r' && (i + 1 >= rout.len || rout.data[i + 1] != '\n'))
				abort();
		}
	}
	/* BDAT's scanner: the same facts whatever the split, and a scan with no bare
	 * CR/LF means every CR is followed by LF and every LF preceded by CR. */
	struct data_decoder sref, sd;
	data_decoder_init(&sref);
	data_scan_feed(&sref, in, len);
	data_scan_end(&sref);
	data_decoder_init(&sd);
	for (size_t p = 0, j = 0; p < len; j++) {
		size_t piece = 1 + (size_t)sizes[j % nsizes] % 17;
		if (piece > len - p)
			piece = len - p;
		data_scan_feed(&sd, in + p, piece);
		p += piece;
	}
	data_scan_end(&sd);
	if (sd.bare_lf != sref.bare_lf || sd.bare_cr != sref.bare_cr || sd.has_nul != sref.has_nul ||
		sd.has_8bit != sref.has_8bit || sd.lines != sref.lines || sd.longest_line != sref.longest_line ||
		sd.longest_line_no != sref.longest_line_no || sref.longest_line > len)
		abort();
	if (sref.bare_lf == 0 && sref.bare_cr == 0) {
		for (size_t i = 0; i < len; i++) {
			if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
				abort();
			if (in[i] == '\r' && (i + 1 >= len || in[i + 1] != '\n'))
				abort();
		}
	}
	bool nul = memchr(in, 0, len) != NULL;
	if (nul != sref.has_nul)
		abort();
	buf_free(&out);
	buf_free(&rout);
	return 0;
}
