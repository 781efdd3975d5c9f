/* folder.h - the Maildir++ mailbox as IMAP sees it (RFC 3501), Dovecot-compatible.
 *
 * Layout (Dovecot's default Maildir++ layout, hierarchy separator "/" in IMAP):
 *   INBOX (any case)  the Maildir root itself
 *   "Sent"            <root>/.Sent          "A/B"  <root>/.A.B
 *   names are UTF-8 here; the directory name is modified UTF-7 (RFC 3501 §5.1.3)
 *   as Dovecot writes it, so "Entwürfe" is <root>/.Entw&APw-rfe.  A "." inside a
 *   name cannot be told from the hierarchy separator on disk and is refused.
 * In each folder directory:
 *   cur/ new/ tmp/       the messages; flags in the name: "<base>:2,<info>" with
 *                        the system flags D F R S T (RFC 3501 \Draft \Flagged
 *                        \Answered \Seen \Deleted) and keywords as letters a-z
 *   dovecot-uidlist      UIDs (version 3: "3 V<uidvalidity> N<nextuid> G<guid>",
 *                        then "<uid> [S<size> W<vsize> G<guid> ...] :<base>")
 *   dovecot-keywords     "<index> <name>" lines: letter a = index 0 (max 26)
 *   maildirfolder        the Maildir++ marker in every folder but INBOX
 *   postern-index        MODSEQs, cached header blocks, sizes, dates, the expunge
 *                        log: rebuildable from the Maildir + uidlist, never the truth
 * The root also holds `subscriptions` (one UTF-8 name a line, like Dovecot's).
 *
 * UIDs: assigned under dovecot-uidlist.lock (O_EXCL dotlock, as Dovecot's; the new
 * list is written into the lock file and renamed over dovecot-uidlist).  nextuid only
 * grows; a UID is never given twice.  UIDVALIDITY changes only when dovecot-uidlist
 * is lost (deleted or unreadable) and rebuilt: then every message gets a new UID.
 *
 * Threads: a struct folder is one session's view, touched by one thread at a time.
 * Different folders (and different views of one folder, which share their message
 * table: store/folder_view.c) may be used on different threads at once.  Every call is blocking file work (IMAP worker threads only).
 * The POP3 lock (postern-pop3.lock) is POP3's: IMAP never takes it, and tolerates
 * files POP3 removes (they are reported as expunged at the next sync). */
#ifndef POSTERN_STORE_FOLDER_H
#define POSTERN_STORE_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store/maildir.h"   /* enum store_result */

/* System flags (struct folder_msg.flags). */
#define FOLDER_SEEN      (1u << 0)
#define FOLDER_ANSWERED  (1u << 1)
#define FOLDER_FLAGGED   (1u << 2)
#define FOLDER_DELETED   (1u << 3)
#define FOLDER_DRAFT     (1u << 4)
#define FOLDER_RECENT    (1u << 5)   /* this session's view only; cannot be stored */
#define FOLDER_STORABLE  (FOLDER_SEEN | FOLDER_ANSWERED | FOLDER_FLAGGED | FOLDER_DELETED | FOLDER_DRAFT)

#define FOLDER_KEYWORDS_MAX 26       /* letters a-z, as Dovecot */
#define FOLDER_KEYWORD_LEN 100       /* longest keyword name accepted */
#define FOLDER_NAME_MAX 512          /* longest folder name (UTF-8 octets) */
#define FOLDER_INDEX_FILE "postern-index"

/* --- folders ------------------------------------------------------------------ */

enum folder_special { FOLDER_SPECIAL_NONE, FOLDER_SPECIAL_SENT, FOLDER_SPECIAL_DRAFTS, FOLDER_SPECIAL_TRASH,
	FOLDER_SPECIAL_JUNK, FOLDER_SPECIAL_ARCHIVE };

struct folder_info {
	char name[FOLDER_NAME_MAX + 1];  /* UTF-8, "/" separated; "INBOX" for the root */
	enum folder_special special;     /* from the name table: Sent, Drafts, Trash, Junk, Archive */
	bool has_children;               /* \HasChildren / \HasNoChildren (RFC 3348) */
	bool subscribed;                 /* in the subscriptions file */
	bool noselect;                   /* not selectable: a parent implied by its children, or ... */
	bool nonexistent;                /* ... a subscribed name with no folder (RFC 5258 \NonExistent;
	                                    LIST leaves it out, LSUB shows it) */
};

/* "\\Sent" ... for RFC 6154 LIST replies; NULL for FOLDER_SPECIAL_NONE. */
const char *folder_special_attr(enum folder_special s);

/* Every folder under root, INBOX first, then by name; *out is malloc'd (free()).
 * Subscribed names without a folder are listed too (nonexistent, subscribed: LSUB
 * needs them). */
bool folder_list(const char *root, struct folder_info **out, size_t *n, char *err, size_t errsz);

/* Does the folder exist (SELECT of a missing one: NO [NONEXISTENT])? */
bool folder_exists(const char *root, const char *name);

/* Results: STORE_OK; STORE_EXISTS ([ALREADYEXISTS]); STORE_NONEXISTENT
 * ([NONEXISTENT]); STORE_CANNOT ([CANNOT]: a bad name, deleting INBOX, renaming
 * onto itself); STORE_TEMP (I/O, err says what). */
enum store_result folder_create(const char *root, const char *name, char *err, size_t errsz);
/* Deletes the folder's messages and directory; children stay (RFC 3501 §6.3.4). */
enum store_result folder_delete(const char *root, const char *name, char *err, size_t errsz);
/* Renames the folder and its children.  Renaming INBOX moves its messages into a
 * new folder `to` and leaves INBOX empty (RFC 3501 §6.3.5). */
enum store_result folder_rename(const char *root, const char *from, const char *to, char *err, size_t errsz);
bool folder_subscribe(const char *root, const char *name, bool on, char *err, size_t errsz);
/* Sent, Drafts, Trash, Junk, Archive (created and subscribed when missing). */
void folder_ensure_special(const char *root);

/* The folder's directory for `name` into path; false for a name that cannot be a
 * folder (empty part, ".", control characters, too long). */
bool folder_path(const char *root, const char *name, char *path, size_t pathsz);

/* Modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8, NUL-terminated; false on a malformed
 * input or when out is too small. */
bool folder_mutf7_encode(const char *utf8, char *out, size_t outsz);
bool folder_mutf7_decode(const char *mutf7, char *out, size_t outsz);

/* --- an open folder ----------------------------------------------------------- */

struct folder;

struct folder_msg {          /* 48 octets: one per message, shared by the views of one moment */
	uint32_t uid;
	uint32_t flags;           /* FOLDER_SEEN ... FOLDER_RECENT */
	uint64_t modseq;          /* RFC 7162 */
	uint64_t keywords;        /* bit i = keyword i (folder_keyword_name) */
	time_t internaldate;      /* the file's mtime */
	uint64_t size;            /* RFC822.SIZE: octets with CRLF line ends (W=, else counted) */
	const char *filename;     /* in cur/ (valid until the next sync or close) */
};

/* Open `name` (UTF-8) and sync it once (folder_sync with no callbacks).  readonly
 * (EXAMINE): no \Recent is claimed and flags cannot be stored.  NULL on failure;
 * errno ENOENT when the folder does not exist. */
struct folder *folder_open(const char *root, const char *name, bool readonly, char *err, size_t errsz);
void folder_close(struct folder **f);

uint32_t folder_uidvalidity(const struct folder *f);
uint32_t folder_uidnext(const struct folder *f);
uint64_t folder_highestmodseq(const struct folder *f);
const char *folder_name(const struct folder *f);
bool folder_readonly(const struct folder *f);

size_t folder_count(const struct folder *f);
/* Message i (0-based: sequence number i + 1), ascending UID.  NULL past the end.
 * folder_msg has every field (the date costs a stat, and the size a read of the
 * file, the first time only when neither the name nor the index knows them);
 * folder_msg_peek is free and has uid, modseq, flags, keywords and filename only
 * (internaldate and size may be 0): for counting \Seen or \Recent at SELECT,
 * SEARCH of flags, FETCH FLAGS.  The pointer is valid until the view's next sync,
 * folder_store_flags or close (it may point into a table shared with other views:
 * never write through it). */
const struct folder_msg *folder_msg(const struct folder *f, size_t i);
const struct folder_msg *folder_msg_peek(const struct folder *f, size_t i);
/* The index of the message with this UID, or (size_t)-1. */
size_t folder_find_uid(const struct folder *f, uint32_t uid);

/* What a sync found, reported in IMAP order: first the expunges (as sequence
 * numbers of the old view, highest first, with their UIDs for VANISHED), then
 * flag changes (sequence numbers of the new view), then the new count when it grew.
 * Any callback may be NULL. */
struct folder_changes {
	void (*expunged)(void *arg, uint32_t seq, uint32_t uid);
	void (*exists)(void *arg, size_t n);
	void (*flags)(void *arg, size_t seq);
	void *arg;
};

/* Bring the view up to date with the disk: new/ moved to cur/ with ":2,", UIDs
 * given to new files, flag changes and expunges by others (this process or
 * another: Dovecot, POP3).  Cheap when nothing changed (stat of dovecot-uidlist,
 * cur/ and new/, and the in-process change counter).  false with errno ENOENT
 * when the folder was deleted or renamed away under the view (the session then
 * ends the selection: BYE or NO). */
bool folder_sync(struct folder *f, const struct folder_changes *ch, char *err, size_t errsz);

/* Has anything changed since this view's last sync?  An atomic read of the
 * in-process counter; changes by other processes are noticed by stat at most once
 * a second.  For IDLE: poll this, then folder_sync when true. */
bool folder_changed_since_sync(const struct folder *f);

/* Set message i's flags (FOLDER_STORABLE bits; \Recent is kept as it is) and
 * keywords to exactly these (the session computes +FLAGS/-FLAGS).  The file is
 * renamed first (atomic: once this returns true the change survives a crash),
 * then the index.  *modseq_out: the message's new MODSEQ (unchanged when nothing
 * changed).  false with err "" : the message is gone (expunged by another: not an
 * error to the client, RFC 3501 §7.4.1 lets the STORE succeed without it); false
 * with err set: I/O, or a read-only view. */
bool folder_store_flags(struct folder *f, size_t i, uint32_t flags, uint64_t keywords, uint64_t *modseq_out,
	char *err, size_t errsz);

/* Many stores in one command (STORE 1:*): between begin and end the renames are
 * not made durable one by one; folder_batch_end fsyncs cur/ once (call it before
 * the tagged OK; false: the fsync failed, answer NO).  Without a batch every
 * folder_store_flags is durable when it returns. */
void folder_batch_begin(struct folder *f);
bool folder_batch_end(struct folder *f);

/* The index of keyword `name` (case-insensitive), created in dovecot-keywords when
 * create is set and it is new.  -1: no such keyword, or 26 already exist, or an
 * invalid name (RFC 3501 atom). */
int folder_keyword_index(struct folder *f, const char *name, bool create);
/* Keyword i's name, NULL when unused.  folder_keyword_count: one past the highest. */
const char *folder_keyword_name(const struct folder *f, int i);
int folder_keyword_count(const struct folder *f);

/* Remove these UIDs' files when they have \Deleted; the view drops them at the
 * next folder_sync (which reports them like anyone else's expunges).  The quota
 * (maildirsize) is lowered.  *n_removed (may be NULL): how many were removed. */
bool folder_expunge(struct folder *f, const uint32_t *uids, size_t n, size_t *n_removed, char *err, size_t errsz);

/* Copy message i into folder dest_name (hard link when the flags allow, else a copy),
 * with its flags (keywords mapped by name, created in the destination).  *new_uid and
 * *dest_validity: for the UIDPLUS COPYUID code (RFC 4315).  STORE_NONEXISTENT: no
 * such destination ([TRYCREATE]); STORE_QUOTA: over quota; STORE_TEMP: I/O. */
enum store_result folder_copy(struct folder *src, size_t i, const char *dest_name, uint32_t *new_uid,
	uint32_t *dest_validity, char *err, size_t errsz);

/* What APPEND stores: the message from a file descriptor (read from its current
 * offset, `len` octets) or from memory (fd < 0: data/len).  CRLF becomes LF on disk. */
struct folder_append_src {
	int fd;
	const char *data;
	size_t len;
	uint32_t flags;           /* FOLDER_STORABLE bits */
	const char *const *keywords; size_t n_keywords;   /* names, created as needed */
	time_t date;              /* INTERNALDATE; 0: now */
};
/* Over quota: STORE_QUOTA with *quota filled (usage and limits, for NO [OVERQUOTA]
 * words); STORE_NONEXISTENT ([TRYCREATE]); STORE_TEMP. */
struct quota_state;
enum store_result folder_append(const char *root, const char *name, const struct folder_append_src *src,
	uint32_t *uid, uint32_t *validity, struct quota_state *quota, char *err, size_t errsz);

/* A read-only descriptor of message i's file (LF line ends on disk); -1 when it is
 * gone (expunged by another). */
int folder_msg_open(struct folder *f, size_t i);
/* The header block of message i (up to and including the empty line, LF line ends
 * as on disk), from the index when cached, else read from the file (and cached).
 * *hdr is malloc'd (free()).  false when the message is gone. */
bool folder_msg_header(struct folder *f, size_t i, char **hdr, size_t *len);

/* QRESYNC (RFC 7162 §3.2.5.1): the UIDs expunged with a MODSEQ above `modseq`
 * (from the expunge log), ascending, malloc'd into *uids.  *complete is false when
 * the log no longer reaches back that far (the caller then reports every UID not
 * in the view that the client may hold). */
bool folder_vanished_since(struct folder *f, uint64_t modseq, uint32_t **uids, size_t *n, bool *complete);

/* STATUS (RFC 3501 §6.3.10) without selecting: opens, syncs (no \Recent claimed)
 * and closes. */
struct folder_status {
	uint32_t messages, recent, uidnext, uidvalidity, unseen;
	uint64_t highestmodseq, size;
};
bool folder_status(const char *root, const char *name, struct folder_status *st, char *err, size_t errsz);

#endif
