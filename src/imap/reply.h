/* reply.h - the one writer of IMAP status responses (RFC 3501 §7.1: tagged and
 * untagged OK/NO/BAD, BYE, PREAUTH) with RFC 5530 response codes, and of the
 * strings that responses carry (quoted when possible, else a literal; mailbox names
 * in modified UTF-7 unless UTF8=ACCEPT).  Every tagged completion of the imap room
 * goes through imap_reply_tagged(): one line, bounded, no control characters. */
#ifndef POSTERN_IMAP_REPLY_H
#define POSTERN_IMAP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

enum imap_status { IMAP_OK, IMAP_NO, IMAP_BAD };

/* Longest response text written (the line is cut there, never silently: "..."). */
#define IMAP_REPLY_TEXT_MAX 900

/* "<tag> OK|NO|BAD [code] text\r\n".  code: NULL or the code with its arguments
 * ("OVERQUOTA", "APPENDUID 38505 3955", "SERVERBUG"); tag "" or NULL writes "*". */
void imap_reply_tagged(struct buf *out, const char *tag, enum imap_status st, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* "* <word> [code] text\r\n"; word is "OK", "NO", "BAD", "BYE" or "PREAUTH". */
void imap_reply_untagged(struct buf *out, const char *word, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *imap_status_word(enum imap_status st);

/* A string (RFC 3501 §4.3): quoted when it holds only safe characters (TEXT-CHAR,
 * no NUL/CR/LF, 8-bit only when eight_bit) and is short, else a literal {N}. */
void imap_write_string(struct buf *out, const char *s, size_t n, bool eight_bit);
/* nstring: NULL is NIL. */
void imap_write_nstring(struct buf *out, const char *s, size_t n, bool eight_bit);
/* astring: an atom when it is one, else imap_write_string(). */
void imap_write_astring(struct buf *out, const char *s, size_t n, bool eight_bit);
/* A mailbox name given in UTF-8: modified UTF-7 (RFC 3501 §5.1.3) unless utf8_accept
 * (RFC 6855 §3); false when the name is not valid UTF-8 (nothing written). */
bool imap_write_mailbox(struct buf *out, const char *name, bool utf8_accept);

#endif
