/* data.c - DATA content decoder (see data.h).
 *
 * States track where we are relative to the last CR LF, the only line end that
 * counts (RFC 5321 §2.3.8):
 *   BOL        just after CR LF (or at the start of the data)
 *   BOL_DOT    BOL then "."            the dot is stuffing or the start of the end
 *   BOL_DOT_CR BOL then "." CR         one LF away from the end of data
 *   MID        inside a line
 *   MID_CR     inside a line, after a CR that may start CR LF
 * A CR is held back until we know whether LF follows it. */
#include "smtp/data.h"

#include "util/buf.h"

enum { BOL, BOL_DOT, BOL_DOT_CR, MID, MID_CR };

void data_decoder_init(struct data_decoder *d)
{
	*d = (struct data_decoder){ .state = BOL };
}

/* The line in progress counts as soon as it is longer than any before, so an
 * unterminated last line (BDAT) is measured too. */
static void line_byte(struct data_decoder *d)
{
	if (++d->cur_line > d->longest_line) {
		d->longest_line = d->cur_line;
		d->longest_line_no = d->lines + 1;
	}
}

static void line_end(struct data_decoder *d)
{
	d->cur_line = 0;
	d->lines++;
}

/* A content byte in the middle of a line (state MID afterwards, or MID_CR). */
static void mid_byte(struct data_decoder *d, char c, struct buf *out)
{
	unsigned char u = (unsigned char)c;
	if (c == '\r') {
		d->state = MID_CR;
		return;
	}
	if (c == '\n')
		d->bare_lf++;
	if (u >= 0x80)
		d->has_8bit = true;
	if (u == 0)
		d->has_nul = true;
	buf_appendc(out, c);
	line_byte(d);
	d->state = MID;
}

size_t data_decoder_feed(struct data_decoder *d, const char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	while (i < len && !d->done) {
		char c = in[i++];
		switch (d->state) {
		case BOL:
			if (c == '.')
				d->state = BOL_DOT;
			else
				mid_byte(d, c, out);
			break;
		case BOL_DOT:
			if (c == '\r')
				d->state = BOL_DOT_CR;
			else
				mid_byte(d, c, out);   /* the leading dot was stuffing: dropped */
			break;
		case BOL_DOT_CR:
			if (c == '\n') {
				d->done = true;
			} else {
				/* ".<CR>x": the dot was stuffing, the CR is bare. */
				d->bare_cr++;
				buf_appendc(out, '\r');
				line_byte(d);
				d->state = MID;
				if (c == '\r')
					d->state = MID_CR;
				else
					mid_byte(d, c, out);
			}
			break;
		case MID:
			mid_byte(d, c, out);
			break;
		case MID_CR:
			if (c == '\n') {
				buf_append(out, "\r\n", 2);
				line_end(d);
				d->state = BOL;
			} else {
				d->bare_cr++;
				buf_appendc(out, '\r');
				line_byte(d);
				if (c == '\r')
					d->state = MID_CR;
				else
					mid_byte(d, c, out);
			}
			break;
		}
	}
	return i;
}

/* BDAT: only MID and MID_CR matter (a dot at the start of a line is content). */
static void scan_byte(struct data_decoder *d, char c)
{
	unsigned char u = (unsigned char)c;
	if (c == '\n')
		d->bare_lf++;
	if (u >= 0x80)
		d->has_8bit = true;
	if (u == 0)
		d->has_nul = true;
	line_byte(d);
}

void data_scan_feed(struct data_decoder *d, const char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (d->state == MID_CR) {
			d->state = MID;
			if (c == '\n') {
				line_end(d);
				continue;
			}
			d->bare_cr++;
			line_byte(d);
		}
		if (c == '\r')
			d->state = MID_CR;
		else
			scan_byte(d, c);
	}
}

void data_scan_end(struct data_decoder *d)
{
	if (d->state == MID_CR) {
		d->bare_cr++;
		line_byte(d);
		d->state = MID;
	}
}
