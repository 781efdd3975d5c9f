/* exec.h - running the IMAP commands that touch a mailbox (contracts §H).
 *
 * The session (imap/session.h) is sans-I/O: every command that touches the disk
 * becomes a job the caller runs on an IMAP worker thread (serve/imap.c, [imap]
 * threads), one job per session at a time, so the session's folder view is only ever
 * touched by one thread.  A job writes its responses, tagged completion included,
 * into a struct buf through imap/reply.h; the loop then sends them.  A job that would
 * produce much (FETCH 1:* of a large folder) returns IMAP_EXEC_MORE after about
 * IMAP_EXEC_OUTPUT_STEP octets and is called again with the same command once that
 * output has gone (it keeps its place in x->cursor / x->cursor_state), so memory
 * stays bounded and other sessions are served in between.
 *
 * The message commands (FETCH SEARCH STORE COPY MOVE EXPUNGE and their UID forms)
 * and the untagged updates are imap-commands' (src/imap/cmd_*.c, sync.c); the
 * session's own mailbox commands are in src/imap/mbox*.c. */
#ifndef POSTERN_IMAP_EXEC_H
#define POSTERN_IMAP_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/parse.h"

struct buf;
struct folder;

#define IMAP_EXEC_OUTPUT_STEP (256u << 10)

/* [imap] settings (conf/), as the session and the jobs see them. */
struct imap_settings {
	unsigned threads;              /* worker threads, default 4 */
	unsigned autologout;           /* seconds of inactivity before BYE, >= 1800 (RFC 3501 §5.4) */
	unsigned idle_poll_ms;         /* how often an IDLE checks its folder, default 1000 */
	uint64_t append_max;           /* largest APPEND, octets (<= IMAP_APPEND_LITERAL_MAX) */
};

enum imap_exec_status { IMAP_EXEC_DONE, IMAP_EXEC_MORE };

struct imap_exec {                 /* one per session, owned by the session; only its current job touches it */
	const char *user, *maildir_root;          /* after login */
	struct folder *sel; bool sel_readonly;    /* the selected folder, NULL in the AUTHENTICATED state */
	bool condstore, qresync, utf8_accept;     /* ENABLEd / implied (RFC 7162 §3.1) */
	uint64_t cursor; void *cursor_state;      /* for IMAP_EXEC_MORE; 0 / NULL when a command starts */
	/* Freed by the session when it ends with a job unfinished (a dropped connection). */
	void (*cursor_free)(void *cursor_state);
	/* SEARCHRES (RFC 5182): the UIDs of SEARCH RETURN (SAVE), for "$". */
	uint32_t *saved_uids; size_t n_saved; bool saved_valid;
	const struct imap_settings *cfg;          /* limits */
	/* Untagged updates this session owes the client (EXPUNGE/VANISHED, EXISTS, FETCH
	 * FLAGS) are written by imap_exec_sync(x, out, allow_expunge): called by the
	 * session before a tagged OK as RFC 3501 §7 allows (no EXPUNGE during FETCH,
	 * STORE, SEARCH: RFC 3501 §7.4.1) and by IDLE every time the folder changes. */
};

typedef enum imap_exec_status imap_exec_fn(struct imap_exec *x, const struct imap_cmd *c, struct buf *out);

/* imap-commands: src/imap/cmd_*.c */
imap_exec_fn imap_exec_fetch, imap_exec_search, imap_exec_store, imap_exec_copy, imap_exec_move,
	imap_exec_expunge;   /* EXPUNGE and UID EXPUNGE */
void imap_exec_sync(struct imap_exec *x, struct buf *out, bool allow_expunge);
/* CLOSE (RFC 3501 §6.4.2): remove \Deleted messages without untagged EXPUNGE. */
bool imap_exec_expunge_silent(struct imap_exec *x, char *err, size_t errsz);

#endif
