/* quota.h - Maildir++ quotas kept in <maildir>/maildirsize, as Courier and Dovecot
 * read and write them (Courier's README.maildirquota; Dovecot's quota=maildir).
 *
 * The file's first line holds the limits, "<bytes>S,<count>C" (0: no limit); every
 * later line is "<bytes> <count>", signed: the first one is the total found by the
 * last recalculation, the rest are deltas appended (O_APPEND, one write) after each
 * delivery or expunge.  Usage is the sum of those lines.  A missing file means no
 * quota.  The file is recalculated (every message in the Maildir and its folders
 * counted, written to tmp/ and renamed over the old one) when it has grown past
 * 5120 bytes, when a line is malformed, or when it says the mailbox is over quota
 * and was last written more than 15 minutes ago (Maildir++: old deltas may be
 * stale).  Sizes are file sizes (S= in the name when present), as Dovecot counts
 * them by default.
 *
 * Used by SMTP (RCPT: quota_check), delivery (quota_check again, then quota_add
 * and quota_warning_due), POP3 (quota_add with negative figures at expunge, via
 * mailbox.c), and the CLI (quota_set, quota_read). */
#ifndef POSTERN_STORE_QUOTA_H
#define POSTERN_STORE_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUOTA_FILE "maildirsize"
#define QUOTA_WARNING_MARKER "postern-quota-warned"   /* exists while the warning stands */
/* The warning message's file name carries this field (Maildir++ ",X=..." info before
 * ":2,", which Dovecot ignores): it is not counted against the quota, so it can never
 * push a mailbox over its limit nor leave less room for real mail. */
#define QUOTA_WARNING_TAG ",Q=postern-warning"
#define QUOTA_FILE_MAX 5120                           /* recalculate past this size */
#define QUOTA_STALE_SECONDS (15 * 60)

struct quota_state {
	bool defined;          /* a maildirsize file exists (a quota applies) */
	uint64_t limit_bytes;  /* 0: no limit on bytes */
	uint64_t limit_count;  /* 0: no limit on messages */
	uint64_t used_bytes;   /* never negative (a negative sum reads as 0) */
	uint64_t used_count;
};

enum quota_verdict {
	QUOTA_FITS,            /* no quota, or room for the message */
	QUOTA_FULL,            /* the message would go over a limit: 452 4.2.2 / 552 5.2.2 */
	QUOTA_ERROR,           /* maildirsize unreadable: treat as a temporary failure */
};

/* Set the limits (0: none for that part), recalculating usage and rewriting the
 * file; with both 0 the file still exists (usage is tracked, nothing enforced).
 * quota_remove() deletes the file (no quota at all, as before).  The Maildir must
 * exist (maildir_create). */
bool quota_set(const char *maildir, uint64_t limit_bytes, uint64_t limit_count, char *err, size_t errlen);
bool quota_remove(const char *maildir, char *err, size_t errlen);

/* Read limits and usage, recalculating when the rules above say so.  Without a
 * maildirsize file: defined = false, limits 0, and usage counted from the Maildir
 * (nothing is written).  false on an I/O error (err says which). */
bool quota_read(const char *maildir, struct quota_state *st, char *err, size_t errlen);

/* Would a message of msg_bytes fit?  Fills st (when not NULL) with the limits and
 * usage for the reply words.  Without a maildirsize file: QUOTA_FITS at once, no
 * scan (st->defined = false, usage 0).  A message fits while usage + msg_bytes stays
 * within the byte limit and usage + 1 within the count limit. */
enum quota_verdict quota_check(const char *maildir, uint64_t msg_bytes, struct quota_state *st,
	char *err, size_t errlen);

/* Append "<bytes> <count>" (signed) after a delivery (+size, +1) or an expunge
 * (-sizes, -n).  Does nothing (true) when the Maildir has no maildirsize file.
 * Recalculates instead when the file has grown past QUOTA_FILE_MAX. */
bool quota_add(const char *maildir, int64_t bytes, int64_t count);

/* Count every message in the Maildir and its Maildir++ folders (".Name/"): cur/
 * and new/, sizes from ",S=" in the name or stat(2), the quota warning excepted.
 * Nothing is written. */
bool quota_scan(const char *maildir, uint64_t *bytes, uint64_t *count, char *err, size_t errlen);

/* Is this Maildir file name (with or without "new/" or ":2,...") the quota warning?
 * quota_scan skips it, delivery does not add it, and an expunge does not subtract it. */
bool quota_name_is_warning(const char *name);

/* Usage in percent of the tighter limit (0 without limits). */
unsigned quota_percent(const struct quota_state *st);

/* The one-time warning: true exactly once when usage is at or above `percent` of a
 * limit (the caller then delivers the warning message); the marker file
 * QUOTA_WARNING_MARKER remembers it was sent, and is removed when usage drops
 * below the threshold again, so the next crossing warns again.  Safe against two
 * deliveries racing (the marker is created with O_EXCL).  percent 0 disables. */
bool quota_warning_due(const char *maildir, const struct quota_state *st, unsigned percent);

/* Parse the limits line ("<bytes>S,<count>C"; either part may be missing, in any
 * order; 0 or absent: none).  Exposed for tests. */
bool quota_parse_limits(const char *line, size_t n, uint64_t *bytes, uint64_t *count);

#endif
