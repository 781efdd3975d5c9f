/* data.h - the DATA content decoder (RFC 5321 §4.1.1.4, §4.5.2).
 *
 * Takes wire bytes, undoes dot-stuffing and finds the end of data, which is only
 * CR LF "." CR LF (the CR LF before the dot belongs to the last line; an empty
 * message is "." CR LF at the very start).  A bare LF or a bare CR never ends a line
 * here: "\n.\n", "\r.\n", "\n.\r\n" and friends are message content, so one DATA
 * yields at most one message (the 2023 "SMTP smuggling" attacks).  Their presence
 * is recorded so the session can refuse such a message.  8-bit bytes and NULs pass
 * untouched.  Pure: no I/O. */
#ifndef POSTERN_SMTP_DATA_H
#define POSTERN_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

struct data_decoder {
	int state;
	bool done;
	uint64_t bare_lf;        /* count of LF not preceded by CR */
	uint64_t bare_cr;        /* count of CR not followed by LF */
	uint64_t lines;
	uint64_t longest_line;   /* octets, CRLF excluded */
	uint64_t longest_line_no; /* its line number, from 1 */
	uint64_t cur_line;
	bool has_8bit;
	bool has_nul;
};

void data_decoder_init(struct data_decoder *d);
/* Decode up to len bytes, appending message bytes to out (which must have room: out
 * grows by at most len + 2).  Returns the number of input bytes consumed; fewer than
 * len only when the end of data was found (d->done), and the rest is the next
 * command.  */
size_t data_decoder_feed(struct data_decoder *d, const char *in, size_t len, struct buf *out);

/* BDAT content (RFC 3030): no dot-stuffing and no end marker, but the same facts
 * (bare CR/LF, NUL, 8-bit, longest line) so that a message gets the same refusals
 * whichever way it came.  Chunks may split CR LF; call data_scan_end() after the
 * last chunk (a CR that ends the message is bare). */
void data_scan_feed(struct data_decoder *d, const char *in, size_t len);
void data_scan_end(struct data_decoder *d);

#endif
