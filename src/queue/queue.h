/* queue.h - the durable spool.  Only this room opens spool files.
 *
 * A queue file is data_dir/queue/active/<qid>:
 *
 *   POSTERN-QUEUE 1\n
 *   <key> <value>\n ...          envelope records (see queue.c)
 *   \n
 *   <message, exactly as received after dot-unstuffing, CRLF line ends>
 *   [<added header fields>\nADDED <20-digit block size> POSTERN\n]   optional
 *   \nEND <20-digit message size> POSTERN\n     fixed-size trailer
 *
 * The trailer proves completeness: a file without it, or whose size disagrees, is
 * never delivered.  The added header fields are the block that the end-of-data
 * decision's stages asked to prepend (policy_facts_add_header: DKIM-Signature,
 * Authentication-Results): complete fields with CR LF line ends, written at the
 * commit after the message (it is never rewritten) under the same fsync, so a
 * message is never in active/ without them.  Every reader puts them first:
 * queue_message_pread() and queue_message_size() give the message as it must leave
 * (the fields, then the message as received).  Writing happens in queue/incoming/; queue_writer_commit() writes
 * the trailer, fsyncs the file, renames it into active/ and fsyncs the directory,
 * and only then may the server say 250 (RFC 5321 §4.5.2; DESIGN invariant 1).
 *
 * Group commit (commit.c): commits running at the same moment on their commit
 * threads share the directory fsync.  Each fsyncs its own file (in parallel with
 * the others) and renames it; then one of them, the leader, fsyncs active/ once for
 * every rename that had finished before that fsync began, and every commit it covered
 * returns.  So no commit returns true before its data fsync and a directory fsync
 * that began after its rename completed.  A lone commit leads at once; a leader waits
 * for company (at most [queue] commit_batch_wait, default 2 ms; 0: never) only while
 * other commits are still writing or fsyncing their files.  A held message's state
 * file is durable before its rename, as without batching.  A failed directory fsync
 * fails every commit it covered (no 250: the client retries; delivered twice at
 * worst, never lost).  postern_commit_batch_size counts the messages per fsync.
 * Per-recipient delivery state lives beside it in queue/state/<qid>, replaced
 * atomically (write, fsync, rename); a message finished in its first attempt never
 * has one.  Removal after delivery: queue_done below (which crash may deliver twice,
 * and why none loses a message). */
#ifndef POSTERN_QUEUE_QUEUE_H
#define POSTERN_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/id.h"

#define QUEUE_ADDR_MAX 520
#define QUEUE_MAX_RCPTS 10000
#define QUEUE_TRAILER_LEN 34   /* "\nEND " + 20 digits + " POSTERN\n" */
#define QUEUE_ADDED_REC_LEN 36 /* "\nADDED " + 20 digits + " POSTERN\n" */
#define QUEUE_ADDED_MAX (64u << 10)   /* added header fields, in total */

struct queue;
struct queue_message;

struct queue_envelope {
	char qid[QUEUE_ID_LEN + 1];
	time_t arrival;
	char client_addr[64];
	char client_name[256];
	char helo[256];
	char protocol[16];
	char sender[QUEUE_ADDR_MAX];     /* "" for the null sender */
	bool smtputf8;
	bool eightbit;                   /* BODY=8BITMIME or BINARYMIME */
	size_t n_rcpts;
	char (*rcpts)[QUEUE_ADDR_MAX];   /* malloc'd; queue_envelope_free() */
	/* DSN (RFC 3461); NULL arrays when no recipient had the parameter */
	unsigned char *notify;           /* per recipient: QUEUE_NOTIFY_* bits, 0 = not given */
	char (*orcpt)[QUEUE_ADDR_MAX];   /* per recipient: "rfc822;addr" as given, or "" */
	char envid[101];                 /* ENVID, "" if none (RFC 3461 §4.4: at most 100) */
	int ret;                         /* QUEUE_RET_* */
};

#define QUEUE_NOTIFY_NEVER 1
#define QUEUE_NOTIFY_SUCCESS 2
#define QUEUE_NOTIFY_FAILURE 4
#define QUEUE_NOTIFY_DELAY 8
enum { QUEUE_RET_DEFAULT = 0, QUEUE_RET_FULL, QUEUE_RET_HDRS };

/* A deep copy of src into dst (its own arrays); false on no memory (dst then empty). */
bool queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src);
/* Set DSN data for recipient i (allocating the arrays on first use). */
bool queue_envelope_set_dsn(struct queue_envelope *env, size_t i, unsigned char notify, const char *orcpt);

/* Per-recipient state in queue/state/<qid>. */
enum rcpt_state { RCPT_PENDING = 0, RCPT_DELIVERED = 1, RCPT_FAILED = 2 };

#define QUEUE_REPLY_MAX 600

struct queue_rcpt_state {
	unsigned char state;             /* enum rcpt_state */
	unsigned attempts;
	long long next_try;              /* unix time; 0 = now */
	char last_reply[QUEUE_REPLY_MAX];  /* "host: 450 4.2.0 ..." or a local reason */
};

#define QUEUE_HOLD_REASON_MAX 256

struct queue_state {
	bool held;                       /* the admin (or a content filter) holds it: no delivery */
	char hold_reason[QUEUE_HOLD_REASON_MAX];   /* why, when held at the commit ("quarantined by
	                                    the content filter (rspamd): ..."); "" for the admin's hold */
	bool delay_notified;             /* the delay notice went out */
	bool damaged;                    /* the file was unreadable or corrupt: salvaged */
	size_t recovered;                /* when damaged: recipients whose record was read */
	char damage[128];                /* when damaged: what was wrong, for the log */
	bool on_disk;                    /* queue_state_read found something in state/ (queue_done removes it) */
	size_t n;
	struct queue_rcpt_state *r;      /* n entries */
};

/* Read the state of a message with n recipients; a missing file means all pending.
 * A damaged file (truncated, garbage, another message's, not a regular file) is
 * salvaged, never refused: the records that can be read are kept, every other
 * recipient is pending (delivered again rather than lost), st->damaged is set and
 * the caller logs it and writes the state back.  False only when out of memory. */
bool queue_state_read(struct queue *q, const char *qid, size_t n, struct queue_state *st);
/* The state of a message no attempt has seen yet (the scheduler knows it was just
 * committed without one): every recipient pending, nothing read from disk.  False
 * only when out of memory. */
bool queue_state_fresh(struct queue_state *st, size_t n);
bool queue_state_write(struct queue *q, const char *qid, const struct queue_state *st);
void queue_state_free(struct queue_state *st);

bool queue_open(struct queue **q, const char *data_dir, char *err, size_t errlen);
/* For admin commands while the server may be running: no clean-up of incoming/. */
bool queue_attach(struct queue **q, const char *data_dir, char *err, size_t errlen);
/* Ids of messages kept in queue/failed/. */
bool queue_list_failed(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg);
/* A message in queue/failed/ (for `queue show`, `queue list --failed`). */
bool queue_failed_open(struct queue *q, const char *qid, struct queue_message *m, char *err, size_t errlen);
/* What is in failed/<qid> when it cannot be opened as a queue file (a FIFO, a
 * symbolic link, a damaged file): a short description, for the list. */
void queue_failed_describe(struct queue *q, const char *qid, char *out, size_t outsz);
/* Put failed/<qid> back into active/ with a fresh state (every recipient pending);
 * false with errno ENOENT when there is no such failed message. */
bool queue_requeue(struct queue *q, const char *qid);
/* Remove failed/<qid> for good. */
bool queue_remove_failed(struct queue *q, const char *qid);
void queue_close(struct queue **q);
/* Can a message be spooled now?  A nameless file is made and written in incoming/
 * (blocking: a worker thread's call; GET /healthz).  false: err says why. */
bool queue_writable(struct queue *q, char *err, size_t errlen);

/* Writing (event loop: plain writes only; commit runs on a worker thread).
 * env->qid is filled in by the caller (id_new_queue_id), or empty: then the queue
 * chooses it (queue_writer_envelope(w)->qid), taking a file made ahead when one is
 * ready (queue_reserve_start) so that the caller does not wait for the file's
 * creation, else making one as for a given id. */
struct queue_writer;
struct queue_writer *queue_writer_open(struct queue *q, const struct queue_envelope *env,
	char *err, size_t errlen);
/* The server's spool files made ahead: a thread of the queue's own keeps up to `files`
 * (at most 64; 0: none) empty files in incoming/ created and open, for writers opened
 * with an empty qid; the event loop never waits for a file's creation (the inode
 * allocation of a busy filesystem) unless the thread is behind.  queue_close stops it
 * and removes the files not taken.  False: err says why (no thread). */
bool queue_reserve_start(struct queue *q, unsigned files, char *err, size_t errlen);
bool queue_writer_write(struct queue_writer *w, const void *p, size_t n);
/* Header fields to put before the message (see above): one block of complete fields,
 * each ending in CR LF, at most QUEUE_ADDED_MAX octets; copied, written by the commit.
 * A second call replaces the first.  False (nothing kept) when it is too large, does
 * not end in CR LF, holds a NUL, or memory ran out. */
bool queue_writer_set_added(struct queue_writer *w, const char *block, size_t len);
bool queue_writer_commit(struct queue_writer *w, char *err, size_t errlen);   /* blocking */
/* [queue] commit_batch_wait: how long a leading commit may wait for commits still in
 * flight to join its directory fsync (microseconds; 0: never wait for company). */
#define QUEUE_COMMIT_BATCH_WAIT_DEFAULT_US 2000
void queue_set_commit_batch_wait(struct queue *q, uint64_t microseconds);
/* The envelope the file was opened (or last rewritten) with. */
const struct queue_envelope *queue_writer_envelope(const struct queue_writer *w);
/* One piece of a rewritten message: len octets from mem, or (mem NULL) from fd at off. */
struct queue_piece {
	const void *mem;
	int fd;
	uint64_t off, len;
};
/* Before the commit, replace the message being written (a content filter's changes,
 * policy_edits_apply): a new file incoming/<qid>.edit gets env's records (env->qid is
 * the writer's whatever env says) and the pieces in order, is written out (the commit
 * fsyncs it) and renamed over incoming/<qid>; the writer then writes that file
 * (queue_writer_message_offset and queue_writer_size tell where the new message is),
 * and the commit (the added fields, the trailer, fsync, rename into active/) works
 * unchanged.  A piece may read the old file itself: it stays open until the rename.
 * False, with err in words, the old file and the writer as they were, when a write
 * fails (lack of space is reported to the space watch) or memory runs out. */
bool queue_writer_rewrite(struct queue_writer *w, const struct queue_envelope *env,
	const struct queue_piece *pieces, size_t n, char *err, size_t errlen);
/* Commit the message held (policy_facts_hold): its state file (every recipient
 * pending, held, with reason) is written durably before the rename into active/, so
 * no delivery thread ever sees the message unheld.  NULL or "" reason: not held. */
bool queue_writer_set_hold(struct queue_writer *w, const char *reason);
/* Write out what is buffered, so the file holds every octet given so far (the
 * end-of-data decision reads it).  A plain write, as queue_writer_write. */
bool queue_writer_flush(struct queue_writer *w);
/* The file being written (queue/incoming/<qid>) and where the message begins in it
 * (after the envelope records), for readers of the message before the commit. */
const char *queue_writer_path(const struct queue_writer *w);
uint64_t queue_writer_message_offset(const struct queue_writer *w);
void queue_writer_free(struct queue_writer **w);   /* unlinks the incoming file unless committed */
uint64_t queue_writer_size(const struct queue_writer *w);
/* Did the writer (open, write or commit) fail for lack of space (ENOSPC, EDQUOT)?
 * Such failures are logged once a minute by the space watch below, not per message. */
bool queue_writer_no_space(const struct queue_writer *w);

/* Space for new messages (RFC 3463 X.3.1, mail system full).  The event loop asks
 * before MAIL; statvfs(2) of the queue's filesystem runs at most once a second.  The
 * condition (free space at or below min_free, or a write that failed for lack of
 * space) is logged with the free space when it starts and at most once a minute while
 * it lasts (event=queue_space_low), and once when it clears (event=queue_space_ok). */
void queue_set_min_free(struct queue *q, uint64_t bytes);
/* Bytes a new message may still take (free space above min_free; 0: none).  Unknown
 * (statvfs failed): UINT64_MAX, nothing is refused for it. */
uint64_t queue_space_room(struct queue *q);

/* Reading.  Queue and state files are opened without following a symbolic link
 * and without blocking (O_NOFOLLOW | O_NONBLOCK), and must be regular files: a
 * FIFO, device, directory or link named like a queue id is refused with an error
 * saying so (the queue runner moves it to failed/), never waited on or followed. */
struct queue_message {
	struct queue_envelope env;
	int fd;
	off_t body_offset;
	uint64_t body_size;              /* the message as received */
	char *added;                     /* the added header fields (NUL-terminated), or NULL */
	size_t added_len;
};
bool queue_message_open(struct queue *q, const char *qid, struct queue_message *m,
	char *err, size_t errlen);
void queue_message_close(struct queue_message *m);
/* The message as every reader must send, store or show it: the added header fields
 * first, then the message as received.  Its size, and up to n of its octets from off
 * (fewer only at its end); -1 on a read error. */
uint64_t queue_message_size(const struct queue_message *m);
ssize_t queue_message_pread(const struct queue_message *m, void *buf, size_t n, uint64_t off);
/* Parse the envelope part of a queue file held in memory (also the fuzz entry point).
 * Returns the offset of the message body, or -1. */
long queue_envelope_parse(const char *data, size_t len, struct queue_envelope *env);
void queue_envelope_free(struct queue_envelope *env);

/* Ids of committed messages, in arrival order. */
bool queue_list_active(struct queue *q, void (*cb)(void *arg, const char *qid), void *arg);

bool queue_state_load(struct queue *q, const char *qid, unsigned char *state, size_t n);
bool queue_state_save(struct queue *q, const char *qid, const unsigned char *state, size_t n);
/* Every recipient done: remove the message and its state (the queue file first;
 * see queue.c for why that order is the safe one). */
bool queue_remove(struct queue *q, const char *qid);
/* The delivery side's removal (queue.c), cheaper than queue_remove and safe only
 * when every outcome it forgets is durable elsewhere: each local copy's file and name
 * fsync'd in its Maildir, each remote recipient answered 250, each failure's report
 * committed to the queue.  The queue file leaves active/ at once (renamed into
 * incoming/ for reuse as a file made ahead, reserve.c, or unlinked) and NOT fsync'd:
 *
 *   had_state false (no state file was ever written: the message finished in its
 *   first attempt): nothing else to do, no fsync at all.
 *   had_state true: state/<qid> goes too, but only after the unlink of the queue file
 *   is durable: it joins a batch; queue_done_flush (on the delivery threads when they
 *   go idle, when 64 are waiting, and at queue_close) makes one fsync of active/ for
 *   the whole batch and then unlinks their state files (state/ not fsync'd: a state
 *   file left over by a crash has no queue file and is removed by queue_clean).
 *
 * The crash window, and why it delivers twice but never loses: until the filesystem
 * has committed the unlink (its next journal commit, the next fsync of active/ by a
 * commit or by a flush: on ext4 at most commit=5 s), a crash brings the queue file
 * back.  At the next start it is found in active/ and delivered again to every
 * recipient its state file does not record as done: for a message without a state
 * file, to all of them.  A local copy is then found under its Maildir name (local.h,
 * maildir.h) and not made twice; a remote recipient may get it a second time (RFC
 * 5321 §6.1 accepts a duplicate, never a loss).  Nothing is lost because the queue
 * file goes only after every outcome is durable (above), and a state file goes only
 * after its queue file's removal is (the reverse order would redeliver to every
 * recipient).  False (errno set) when the queue file could not be unlinked: the
 * message stays, with its state. */
bool queue_done(struct queue *q, const char *qid, bool had_state);
void queue_done_flush(struct queue *q);
/* Test hook: called between the steps of queue_remove/queue_move_failed and of
 * queue_writer_commit with the step just finished ("queue-file-removed",
 * "incoming-synced", "active-renamed", ...); NULL outside tests. */
extern void (*queue_crash_point)(const char *step);
/* Keep a message that failed for the admin: move to queue/failed/, with why it
 * failed in failed/<qid>.why (one line, control characters replaced) when given. */
bool queue_move_failed(struct queue *q, const char *qid);
bool queue_move_failed_why(struct queue *q, const char *qid, const char *why);
/* The recorded reason for failed/<qid>, or "" (out holds at most outsz-1 octets). */
void queue_failed_reason(struct queue *q, const char *qid, char *out, size_t outsz);
/* Parse a state file held in memory (fuzz entry point). */
bool queue_state_parse(const char *data, size_t len, size_t n, struct queue_state *st);
/* What queue_state_read keeps of a damaged file held in memory: every readable
 * recipient record, the rest pending; st->damaged set.  False only when out of
 * memory (fuzz entry point too). */
bool queue_state_recover(const char *data, size_t len, size_t n, struct queue_state *st);

/* --- the admin's view (view.c): `postern queue list/show`, the web's /admin/queue --- */
enum queue_view_state {
	QUEUE_VIEW_ACTIVE = 1,           /* waiting for its first try, or for a thread */
	QUEUE_VIEW_DEFERRED = 2,         /* tried; a recipient waits for its next try */
	QUEUE_VIEW_HELD = 4,             /* no delivery until released (the admin or a content filter) */
	QUEUE_VIEW_SENDING = 8,          /* a delivery thread is on it now (the server says so) */
	QUEUE_VIEW_FAILED = 16,          /* kept in queue/failed/ */
	QUEUE_VIEW_DAMAGED = 32,         /* in active/, but not readable as a queue file */
};
#define QUEUE_VIEW_IN_ACTIVE (QUEUE_VIEW_ACTIVE | QUEUE_VIEW_DEFERRED | QUEUE_VIEW_HELD | QUEUE_VIEW_SENDING | \
	QUEUE_VIEW_DAMAGED)
const char *queue_view_state_name(enum queue_view_state s);          /* "active", "deferred", ... */
bool queue_view_state_parse(const char *name, enum queue_view_state *out);
/* "delivered", "failed", "deferred" (tried, pending) or "pending" (not tried yet). */
const char *queue_view_rcpt_state(const struct queue_rcpt_state *r);
/* An age or a wait in the list's words: "42s", "5m", "3h", "2d". */
void queue_view_age(long long secs, char *out, size_t outsz);
/* Where delivery_control("inflight")'s answer says qid is being delivered, or NULL. */
const char *queue_view_inflight_where(const char *inflight, const char *qid, char *out, size_t outsz);

/* One message as shown; everything points into the caller's callback's lifetime only.
 * Text in it came from mail and from remote servers (HOSTILE): escape it when shown. */
struct queue_view_item {
	const char *qid;
	enum queue_view_state state;
	const struct queue_message *m;   /* NULL when the file cannot be read (error says why) */
	const struct queue_state *st;    /* active/ only: per-recipient state (NULL for failed/, damaged) */
	const char *error;
	const char *failed_reason;       /* failed/: why it was moved there ("" when not recorded) */
	const char *where;               /* SENDING: the server being talked to */
	size_t pending;                  /* recipients still pending ... */
	size_t first_pending;            /* ... the first of them ... */
	long long next_try;              /* ... and the soonest next try among them (0: now) */
};
struct queue_view_filter {
	const char *sender;              /* NULL or "": any (compared without case); damaged files in active/
	                                    never match, unreadable ones in failed/ always do */
	unsigned states;                 /* QUEUE_VIEW_* bits; 0: everything in active/ (QUEUE_VIEW_IN_ACTIVE) */
};
typedef void queue_view_fn(void *arg, const struct queue_view_item *it);
/* Every message matching f, active/ in arrival order, then (with QUEUE_VIEW_FAILED)
 * failed/; blocking file work.  inflight: delivery_control("inflight")'s answer or "". */
bool queue_view_list(struct queue *q, const struct queue_view_filter *f, const char *inflight, queue_view_fn *cb,
	void *arg);
/* One message, from active/ (perhaps DAMAGED) or else failed/; false with errno
 * ENOENT (in neither) or EINVAL (not a queue id), cb not called. */
bool queue_view_one(struct queue *q, const char *qid, const char *inflight, queue_view_fn *cb, void *arg);
/* The message's header block (the added fields first), at most bufsz-1 octets, NUL
 * ended; false when nothing could be read. */
bool queue_view_header(const struct queue_message *m, char *buf, size_t bufsz);

const char *queue_dir(const struct queue *q);

/* Leftovers (see queue.c): state/<qid>.tmp and orphan state files (no queue file)
 * older than min_age seconds are removed; files in active/ not named like a queue
 * id and older than min_age are removed.  At most max_entries directory entries
 * are examined per directory per call.  Counts are added to *out. */
struct queue_clean_counts {
	unsigned state_tmp;
	unsigned orphan_state;
	unsigned active_junk;
};
void queue_clean(struct queue *q, time_t now, time_t min_age, size_t max_entries, struct queue_clean_counts *out);

/* The maildrop (docs/operations.md, "sendmail and the local socket"): a file sendmail
 * leaves while the server is down begins with QUEUE_MAILDROP_MAGIC, then the lines
 * "sender ADDR", "rcpt ADDR" (one or more), "body 8BITMIME|7BIT", then an empty line
 * and the message.  Parse the first got octets of such a file (h has room for one
 * more, a NUL): env's sender, rcpts (malloc'd: free env->rcpts), n_rcpts and eightbit;
 * *off where the message begins.  false: why says what is wrong with it. */
#define QUEUE_MAILDROP_MAGIC "POSTERN-MAILDROP 1\n"
#define QUEUE_MAILDROP_HEADER_MAX (1u << 20)   /* the envelope lines of one file */
bool queue_maildrop_parse(char *h, size_t got, struct queue_envelope *env, off_t *off, char *why, size_t whysz);

#endif
