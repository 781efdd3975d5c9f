/* mailbox.h - a Maildir opened for one POP3 session (RFC 1939 "maildrop").
 *
 * mailbox_open() takes an exclusive flock(2) on <maildir>/postern-pop3.lock (a
 * second session gets MAILBOX_IN_USE; the lock goes with the process or the close),
 * moves every new/ entry to cur/<name>:2, (keeping the base name, as Dovecot does),
 * and lists cur/ once: mail delivered later is seen by the next session.  The list
 * is in a stable order (delivery time from the name, then the name), so message
 * numbers are the same for an unchanged Maildir.
 *
 * For each message:
 *   uid   the UIDL (RFC 1939 §7): the Maildir base name, i.e. the file name without
 *         ":2,<flags>" and without ",S=...,W=..." fields - stable for the message's
 *         lifetime, across sessions and restarts, whoever renames its flags.  A base
 *         name that is longer than 70 octets or holds bytes outside 0x21-0x7E (or
 *         repeats another's) is replaced by "H" + 40 hex digits of its SHA-256.
 *   size  octets in the CRLF form POP3 sends: W= from the name, else counted (every
 *         LF not preceded by CR adds one octet).
 *   file_size  octets on disk (S= or stat), for quota accounting.
 *
 * All calls are blocking file-system work; the session calls them from the loop
 * (reads are bounded chunks), the network layer may run mailbox_open on a thread. */
#ifndef POSTERN_STORE_MAILBOX_H
#define POSTERN_STORE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAILBOX_LOCK_FILE "postern-pop3.lock"
#define MAILBOX_UID_MAX 70   /* RFC 1939 §7: 1 to 70 characters 0x21-0x7E */

enum mailbox_status {
	MAILBOX_OK,
	MAILBOX_IN_USE,      /* another session holds the lock: -ERR [IN-USE] */
	MAILBOX_TEMP,        /* I/O error: -ERR [SYS/TEMP] */
};

struct mailbox_msg {
	char uid[MAILBOX_UID_MAX + 1];
	uint64_t size;       /* POP3 octets (CRLF line ends) */
	uint64_t file_size;  /* on disk */
	char *name;          /* file name in cur/ (owned) */
};

struct mailbox;

/* Open and lock the Maildir at path (created if missing).  err says why on failure. */
enum mailbox_status mailbox_open(const char *path, struct mailbox **out, char *err, size_t errlen);
/* Release the lock without deleting anything.  Sets *mb to NULL. */
void mailbox_close(struct mailbox **mb);

size_t mailbox_count(const struct mailbox *mb);
/* Message i (0-based, i < count). */
const struct mailbox_msg *mailbox_msg(const struct mailbox *mb, size_t i);
const char *mailbox_path(const struct mailbox *mb);

/* Reading message i as stored (LF line ends; the POP3 session turns them into CRLF,
 * byte-stuffs, and cuts TOP's body lines).  A file renamed by another program (an
 * IMAP server changing flags) is found again by its uid.  NULL when the file is
 * gone (expunged by another program) or unreadable. */
struct mailbox_reader;
struct mailbox_reader *mailbox_reader_open(struct mailbox *mb, size_t i);
/* Up to n bytes into p; 0 at the end; -1 on a read error. */
ssize_t mailbox_reader_read(struct mailbox_reader *r, void *p, size_t n);
void mailbox_reader_close(struct mailbox_reader **r);

/* UPDATE state (RFC 1939 §6): unlink every message i with deleted[i], then append
 * the negative sizes to maildirsize (quota_add).  *removed counts the files
 * unlinked (a file already gone counts as removed, but not for the quota).  false
 * when some could not be removed (-ERR [SYS/TEMP] some deleted messages not
 * removed). */
bool mailbox_expunge(struct mailbox *mb, const bool *deleted, size_t *removed, char *err, size_t errlen);

/* Exposed for tests: the UIDL of a Maildir file name (NULL-terminated into uid,
 * MAILBOX_UID_MAX + 1 bytes). */
void mailbox_uid_from_name(const char *name, char *uid);

#endif
