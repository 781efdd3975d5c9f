/* maildir.h - Maildir++ mailboxes as Dovecot reads them.
 *
 * Delivery writes tmp/<unique>, fsyncs it, renames it to
 * new/<unique>,S=<size>,W=<vsize> (without replacing: RENAME_NOREPLACE or link) and
 * fsyncs new/ (Dovecot's maildir-save does the same); a failed fsync of new/ is a
 * failed delivery.  A queued message's copy may leave that fsync to the caller (see
 * maildir_deliver_copy), which shares it among the copies delivered together.  Directories it creates are
 * made durable (their parents fsync'd) before anything is put in them.  Files use LF line ends; S= is the file size, W= the size with CRLF line
 * ends (what POP3 reports). */
#ifndef POSTERN_STORE_MAILDIR_H
#define POSTERN_STORE_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* STORE_DUPLICATE: maildir_deliver_copy found this very copy already in new/.
 * The last four are folder.h's (IMAP): [ALREADYEXISTS], [NONEXISTENT], [CANNOT],
 * [OVERQUOTA] (RFC 5530). */
enum store_result { STORE_OK, STORE_TEMP, STORE_PERM, STORE_DUPLICATE,
	STORE_EXISTS, STORE_NONEXISTENT, STORE_CANNOT, STORE_QUOTA };

/* Create path/{cur,new,tmp} (and path itself, and missing parents). */
bool maildir_create(const char *path, char *err, size_t errlen);

/* Deliver: `prefix` (LF-terminated header lines such as Return-Path and Delivered-To)
 * followed by `size` bytes read from fd at `offset`, with CRLF turned into LF.
 * Writes the new file's name (relative to path) into name_out. */
enum store_result maildir_deliver(const char *path, const char *prefix, int fd, off_t offset,
	uint64_t size, char *name_out, size_t name_outsz, char *err, size_t errlen);

/* One recipient's copy of a queued message: its name depends on these alone (see
 * maildir.c), so a second delivery of the same copy is recognised. */
struct maildir_copy_id {
	long long arrival;     /* the message's arrival time (unix seconds) */
	const char *qid;       /* queue id: [0-9A-F] only */
	size_t rcpt_index;     /* which recipient of the message */
};

/* Like maildir_deliver, under the copy's own name; STORE_DUPLICATE (nothing written)
 * when that name is already in new/.  sync_new false: the file is fsync'd but new/
 * is not, so the name is not yet durable: the caller fsyncs that directory
 * (maildir_copy_dir names it) before anything may rely on the copy (the queue
 * forgetting the message), and may share one fsync among several copies put there
 * meanwhile (delivery/finish.c). */
enum store_result maildir_deliver_copy(const char *path, const struct maildir_copy_id *id, const char *prefix,
	int fd, off_t offset, uint64_t size, bool sync_new, char *name_out, size_t name_outsz, char *err,
	size_t errlen);
/* The directory holding a copy named name ("new/..." or "cur/...", as the functions
 * here give it) in the Maildir at path; false when name is neither or out is short. */
bool maildir_copy_dir(const char *path, const char *name, char *out, size_t outsz);

/* Was this copy delivered already (in new/ or, moved by a mail program, in cur/)?
 * Lists both directories: for a delivery that may repeat an earlier one. */
enum maildir_copy { MAILDIR_COPY_ABSENT, MAILDIR_COPY_PRESENT, MAILDIR_COPY_UNKNOWN };
enum maildir_copy maildir_find_copy(const char *path, const struct maildir_copy_id *id, char *name_out,
	size_t name_outsz, char *err, size_t errlen);
/* Leftovers in tmp/: a delivery that crashed between creating tmp/<unique> and its
 * rename into new/.  The Maildir convention (maildir(5), Dovecot) removes files in
 * tmp/ not touched for 36 hours; nothing still being written is that old. */
#define MAILDIR_TMP_MAX_AGE (36 * 3600)

/* Remove files in path/tmp/ (and in each Maildir++ folder's tmp/, path/.NAME/tmp/)
 * older than max_age seconds; at most max_entries directory entries examined.
 * Returns how many were removed. */
unsigned maildir_clean_tmp(const char *path, time_t now, time_t max_age, size_t max_entries);

/* Every mailbox under mail_root (mail_root/<domain>/<local>), a bounded number per
 * call: *cursor says where the previous call stopped (0 at first) and is moved on,
 * back to 0 after the last mailbox.  Counts are added to *mailboxes and *removed. */
void maildir_clean_all(const char *mail_root, time_t now, time_t max_age, size_t *cursor, size_t max_mailboxes,
	unsigned *mailboxes, unsigned *removed);

#endif
