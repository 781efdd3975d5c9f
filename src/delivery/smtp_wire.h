/* smtp_wire.h - a queued message re-framed for another server's wire (sans-I/O).
 *
 * The queue keeps a message as it came: its lines may be longer than 998 octets (the
 * receive side accepts up to [limits] message_line_length), and content that came by
 * BDAT, or was written by Postern itself, is not dot-stuffed and may hold a bare CR or
 * LF.  On the way out the SMTP client passes every octet through this encoder:
 *
 *   - every line ends in CR LF: a bare CR and a bare LF each become CR LF (RFC 5321
 *     §2.3.8: CR and LF never travel alone), so nothing the next hop reads as a line
 *     end, or as the end of data, differs from what Postern counts;
 *   - for DATA, a line that starts with "." gets another one (RFC 5321 §4.5.2), after
 *     the line ends are made canonical, so "\r.\r\n" cannot end the data early;
 *   - no line on the wire exceeds 1000 octets with its CR LF (RFC 5321 §4.5.3.1.6),
 *     the stuffing dot included.  A header line that is longer is folded (RFC 5322
 *     §2.2.3: CR LF inserted before a space or tab, which unfolding removes again) at
 *     the last space or tab that fits.  A body line that is longer, or a header line
 *     with nowhere to fold, stops the encoder: the message is returned to its sender
 *     with smtp_wire_describe()'s words (see smtp_client.c for why it is not
 *     re-encoded).
 *
 * Feed the message in pieces, then finish; a message that stops the encoder must not
 * be sent (run it once over the whole message before MAIL to know). */
#ifndef POSTERN_DELIVERY_SMTP_WIRE_H
#define POSTERN_DELIVERY_SMTP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_WIRE_LINE_MAX 998   /* octets of a line before its CR LF */
/* Room smtp_wire_feed may need for n input octets (each octet ends at most one line,
 * adds at most one stuffing dot and one fold; plus the line held back). */
#define SMTP_WIRE_OUT_MAX(n) (6 * (size_t)(n) + SMTP_WIRE_LINE_MAX + 16)

struct smtp_wire {
	bool stuff;               /* DATA: dot-stuff */
	bool in_body;             /* past the empty line that ends the header */
	bool cr;                  /* the last octet was a CR, not yet known to be bare */
	bool failed;              /* a line cannot be sent */
	bool bad_in_header;
	size_t len;               /* octets of the current line held in line[] */
	uint64_t in_len;          /* input octets of the current line (CR LF not counted) */
	uint64_t lineno;          /* 1-based number of the current input line */
	uint64_t bad_line;        /* the line that cannot be sent ... */
	uint64_t bad_len;         /* ... and its length (counted to its end) */
	bool bad_done;            /* bad_len is complete */
	uint64_t out_size;        /* octets produced so far */
	char line[SMTP_WIRE_LINE_MAX];
};

void smtp_wire_init(struct smtp_wire *w, bool dot_stuff);
/* Encode n octets into out (room: SMTP_WIRE_OUT_MAX(n)); returns the octets written.
 * Once w->failed, nothing more is written (the failed line is still measured). */
size_t smtp_wire_feed(struct smtp_wire *w, const char *in, size_t n, char *out);
/* End of the message: the last line's CR LF when it had none (room: SMTP_WIRE_OUT_MAX(0)). */
size_t smtp_wire_finish(struct smtp_wire *w, char *out);
/* Why the message cannot be sent, for the sender's report (w->failed). */
void smtp_wire_describe(const struct smtp_wire *w, char *out, size_t outsz);

#endif
