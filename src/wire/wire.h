/* wire.h - SMTP as it appears on the wire, the words both sides read (sans-I/O):
 * reply lines (RFC 5321 §4.2: "CODE-text" ... "CODE text"), RFC 3463 enhanced status
 * codes (class.subject.detail) and EHLO keywords (RFC 5321 §4.1.1.1).  Shared by the
 * server's reply writer (smtp/reply.c), the SMTP client (delivery/), the doctor and
 * explain (diag/), the scheduler and bounces.  Imports only util/. */
#ifndef POSTERN_WIRE_WIRE_H
#define POSTERN_WIRE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_ENH_MAX 16
#define WIRE_REPLY_TEXT_MAX 1024
#define WIRE_REPLY_LINES_MAX 4096

/* --- enhanced status codes (RFC 3463 §2) ------------------------------------------ */

/* Length of the enhanced status code that starts at p (at most n octets): class 2, 4
 * or 5, "." subject "." detail, subject and detail of 1 to 3 digits, and not followed
 * by another digit or by "." and a digit (so "4.5.3.1.6" is not one).  0 if none. */
size_t wire_enh_len(const char *p, size_t n);
/* Is s exactly one enhanced status code ("5.1.1")?  False for NULL. */
bool wire_enh_valid(const char *s);
/* RFC 2034 §4 / RFC 3463 §2: the code stands first in a reply's text, before the
 * words.  If text starts with one, followed by a space or the end, copy it into enh
 * (when it fits) and return its length; else 0 and enh untouched.  A code anywhere
 * else in the text ("see RFC 5321 4.5.3.1.6") is never taken. */
size_t wire_enh_lead(const char *text, char *enh, size_t enhsz);
/* The same for a whole reply "CODE[ -]ENH text" (the enhanced code after the reply
 * code), or for text that starts with the enhanced code itself (a reason Postern
 * wrote: "5.6.3 line 3 ...").  True when found, with the code in enh. */
bool wire_reply_enh(const char *reply, char *enh, size_t enhsz);

/* --- replies ----------------------------------------------------------------------- */

/* One reply line (CR LF removed): three digits, the first 2 to 5, then a space,
 * "-" or the end.  Sets *code, *more ("-": lines follow) and *text (after the
 * separator, "" when none).  False when the line is not a reply line. */
bool wire_reply_line(const char *line, int *code, bool *more, const char **text);

struct wire_reply {
	int code;                          /* 0 until the first line */
	char enh[WIRE_ENH_MAX];            /* "5.1.1" or "" (from the first line that has one) */
	char text[WIRE_REPLY_TEXT_MAX];    /* all lines' text without code and enh, joined by " " */
	char lines[WIRE_REPLY_LINES_MAX];  /* the lines as they came, '\n' between (the doctor shows them) */
	int n_lines;
	bool done;
};

void wire_reply_reset(struct wire_reply *r);
/* Feed one reply line (no CRLF).  Returns 1 when the reply is complete, 0 when more
 * lines follow, -1 when the line is not a reply line (or the code changes); lines
 * keeps it either way. */
int wire_reply_feed(struct wire_reply *r, const char *line);
/* "550 5.1.1 text" for logs and bounces. */
void wire_reply_format(const struct wire_reply *r, char *out, size_t outsz);

/* --- EHLO keywords (RFC 5321 §4.1.1.1, one per line of the 250 reply) --------------- */

struct wire_caps {
	bool esmtp, pipelining, starttls, eightbitmime, smtputf8, chunking, dsn, auth_plain, auth_login;
	uint64_t size;                     /* RFC 1870; 0: not announced */
	char auth[160];                    /* the mechanisms as offered ("PLAIN LOGIN"), last AUTH line */
};
/* One EHLO reply line's text ("SIZE 1000", "AUTH PLAIN LOGIN"; also the pre-standard
 * "AUTH=PLAIN LOGIN" some servers still send: it fills auth, not the flags, which
 * delivery trusts only from the standard form). */
void wire_caps_line(struct wire_caps *caps, const char *text);

#endif
