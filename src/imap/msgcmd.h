/* msgcmd.h - shared by the message commands of the imap room only (cmd_fetch.c,
 * cmd_search.c, cmd_store.c, cmd_copy.c, cmd_expunge.c, sync.c, msgview.c): a lazily
 * loaded view of one message (flags and sizes from the store's view, the header block
 * from the store's index, the whole file mapped only when asked), sequence-set
 * membership, and the renderings every command shares (flag lists, UID sets).
 * The session and other rooms use imap/exec.h. */
#ifndef POSTERN_IMAP_MSGCMD_H
#define POSTERN_IMAP_MSGCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/exec.h"
#include "imap/parse.h"
#include "msg/mime.h"
#include "store/folder.h"
#include "util/buf.h"

/* Output a job writes before it returns IMAP_EXEC_MORE: IMAP_EXEC_OUTPUT_STEP (exec.h). */
/* A search yields its worker thread after this much work (milliseconds), looking at
 * the clock every IMAP_SEARCH_CLOCK_EVERY messages. */
#define IMAP_SEARCH_SLICE_MS 20
#define IMAP_SEARCH_CLOCK_EVERY 16u
/* Largest message file mapped for FETCH or SEARCH (the store limits APPEND to 64 MiB). */
#define IMAP_MSG_MAP_MAX ((size_t)256 << 20)

/* One message as a command sees it.  `f` NULL (unit tests): `m` and `raw` are given,
 * the header is taken from `raw`. */
struct imap_msgview {
	struct folder *f;
	size_t i;                       /* 0-based index in the folder's view */
	const struct folder_msg *m;
	/* loaded on demand */
	char *hdr; size_t hdr_len; bool hdr_owned, hdr_tried;
	const char *raw; size_t raw_len; void *map; size_t map_len; bool raw_tried;
	struct mime_tree *hdr_tree;     /* of the header block alone */
	struct mime_tree *tree;         /* of the whole message */
	bool dated;                     /* m has INTERNALDATE and RFC822.SIZE filled in */
};

/* v->m has the UID, flags, keywords and MODSEQ only (the store's folder_msg_peek:
 * no stat, no read); imap_msgview_dated() fills in INTERNALDATE and RFC822.SIZE. */
void imap_msgview_init(struct imap_msgview *v, struct folder *f, size_t i);
const struct folder_msg *imap_msgview_dated(struct imap_msgview *v);
/* The header block (ends with its empty line); false when the message is gone. */
bool imap_msgview_header(struct imap_msgview *v, const char **hdr, size_t *len);
/* The whole message as stored (LF or CRLF); false when gone or unreadable. */
bool imap_msgview_raw(struct imap_msgview *v, const char **raw, size_t *len);
/* MIME trees: of the header block only (ENVELOPE, header searches), of the whole. */
const struct mime_tree *imap_msgview_header_tree(struct imap_msgview *v);
const struct mime_tree *imap_msgview_tree(struct imap_msgview *v);
void imap_msgview_release(struct imap_msgview *v);

/* Sequence sets: membership is imap_seq_contains() (parse.h). */
/* The largest number the set names outside '*' (0: none), for "no such message". */
uint32_t imap_seqset_max_literal(const struct imap_seqset *s);
/* Is message i of the selected folder named by the set (sequence numbers, or UIDs when
 * uid)?  "$" (RFC 5182 §2.1) names the UIDs the last SEARCH RETURN (SAVE) saved. */
bool imap_set_selects(const struct imap_exec *x, const struct imap_seqset *s, bool uid, size_t i);
bool imap_saved_contains(const struct imap_exec *x, uint32_t uid);

/* "(\Seen \Flagged $Label1)" (RFC 3501 §7.4.2 FLAGS). */
void imap_flags_render(struct folder *f, uint32_t flags, uint64_t keywords, struct buf *out);
/* Compact UID set "1:3,7" from ascending or unordered UIDs (sorted here in place). */
void imap_uidset_render(uint32_t *uids, size_t n, struct buf *out);

/* A growing list of UIDs (bounded by the folder's size). */
struct imap_uidlist { uint32_t *v; size_t n, cap; };
bool imap_uidlist_add(struct imap_uidlist *l, uint32_t uid);
void imap_uidlist_free(struct imap_uidlist *l);

/* Search evaluation (cmd_search.c), exposed for tests: does message v match key? */
struct imap_search_env { uint32_t seq, max_seq, max_uid; const struct imap_exec *x; /* "$"; may be NULL */ };
bool imap_search_match(const struct imap_search_key *k, struct imap_msgview *v, struct imap_search_env *env);

/* FETCH rendering of one message (cmd_fetch.c), exposed for tests: appends
 * "* n FETCH (...)\r\n".  set_seen: the items set \Seen (already stored by the caller). */
struct imap_fetch_req {
	const struct imap_fetch_item *items; size_t n_items;
	bool uid;                       /* UID FETCH: UID always included */
	bool modseq;                    /* CONDSTORE: MODSEQ included (CHANGEDSINCE, or asked) */
	bool flags_too;                 /* \Seen was just set: FLAGS included */
};
bool imap_fetch_render(const struct imap_fetch_req *r, struct imap_msgview *v, uint32_t seq, struct buf *out);
bool imap_fetch_needs_body(const struct imap_fetch_item *items, size_t n);
bool imap_fetch_sets_seen(const struct imap_fetch_item *items, size_t n);

#endif
