/* folder_impl.h - what the files of the folder module (folder*.c) share: the view's
 * structure, the process-wide per-folder record, Maildir name helpers.  Private to
 * src/store/folder*.c; everyone else uses folder.h. */
#ifndef POSTERN_STORE_FOLDER_IMPL_H
#define POSTERN_STORE_FOLDER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "store/folder.h"
#include "store/uidlist.h"

#define FOLDER_PATH_LEN 1200
#define FOLDER_SUB_LEN (FOLDER_PATH_LEN + 600)   /* a path inside a folder directory */

/* What a stat says about a file or directory: if any of it moved, look again. */
struct folder_stamp {
	bool exists;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

/* folder_snap.c: a full sync's result, shared by the views built from it. */
struct folder_snap_msg {
	uint32_t uid;
	uint64_t vsize;               /* W= from the uidlist, 0: unknown */
	const char *name;             /* in names */
};
struct folder_snap {
	atomic_uint refs;
	struct folder_stamp st[3];    /* uidlist, cur/, new/ before the listing */
	uint64_t counter;             /* folder_shared.counter before the listing */
	bool trusted;                 /* no stamp too fresh, nothing moved or assigned: reusable */
	uint32_t uidvalidity, nextuid;
	size_t n;
	struct folder_snap_msg *msgs; /* ascending UID */
	char *names;                  /* NUL-separated */
};
struct folder_snap *folder_snap_new(const struct uidlist *ul, char **names, const long *rec_file);
struct folder_snap *folder_snap_ref(struct folder_snap *s);
void folder_snap_release(struct folder_snap **s);
/* The snapshot may be used instead of a listing (trusted, and the same stamps and counter). */
bool folder_snap_matches(const struct folder_snap *s, const struct folder_stamp st[3], uint64_t counter);
/* The same stamps and counter, trusted or not: only for a view that looks again at its next sync. */
bool folder_snap_same_moment(const struct folder_snap *s, const struct folder_stamp st[3], uint64_t counter);

/* One per folder path in this process, never freed (bounded table): the change
 * counter sessions poll, and the \Recent floor (RFC 3501 §2.3.2: a message is
 * recent in exactly one session: the first to see it claims every UID above the
 * floor and raises it).  mu also serialises this process's writers of the folder's
 * files (uidlist, keywords, index), the dotlocks serialise us with Dovecot. */
struct folder_shared {
	char path[FOLDER_PATH_LEN];
	atomic_uint_fast64_t counter;
	pthread_mutex_t mu;
	uint32_t recent_floor;
	bool recent_known;
	uint32_t last_validity;       /* the highest UIDVALIDITY seen: a rebuild goes above */
	struct folder_index *index;   /* folder_index.c's, while views are open */
	struct folder_snap *snap;     /* the last full sync (a reference; snap->trusted: reusable later) */
	struct folder_base *base;     /* the messages of snap as views show them (a reference) */
	uint64_t index_gen;           /* moves whenever the index's flags or MODSEQs change */
	unsigned views;
};

/* folder_view.c: the messages of one snapshot as every view of it shows them (flags
 * from the names, MODSEQs, dates and sizes from the index), built once and shared by
 * the views of that moment, never changed after it is published except that a date or
 * size still to find (lazy[i]) is filled in under fill_mu and then lazy[i] cleared with
 * release order (readers load lazy[i] with acquire before they trust those fields). */
struct folder_base {
	atomic_uint refs;
	struct folder_snap *snap;     /* the names point into it (a reference) */
	uint64_t index_gen;           /* folder_shared.index_gen it was built against */
	uint64_t kwmask;              /* the keywords known when it was built */
	uint64_t highestmodseq;
	size_t n;
	struct folder_msg *msgs;      /* ascending UID; never FOLDER_RECENT */
	atomic_uchar *lazy;           /* LAZY_* bits still to fill in */
	pthread_mutex_t fill_mu;
};

/* A message one view holds differently from its base: \Recent to this session
 * (RFC 3501 §2.3.2), or flags this session stored since its last sync (with the file's
 * new name, owned: VIEW_OWN_NAME).  A view keeps them sorted by i; they go at its next
 * sync (the new base has the stored flags; \Recent ones are made again). */
struct folder_own {
	size_t i;
	struct folder_msg m;
	uint8_t lazy;                 /* LAZY_* still to fill in, VIEW_OWN_NAME */
};

struct folder {
	char *root, *name;
	char *path;                   /* the folder's directory (shorter than FOLDER_PATH_LEN) */
	bool readonly;
	struct folder_base *base;     /* shared (a reference); NULL before the first sync */
	struct folder_own *own;       /* sorted by i */
	size_t n_own, cap_own;
	size_t n;                     /* base->n */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct keywords kw;
	struct folder_stamp st_uidlist, st_cur, st_new, st_kw;
	bool rescan;                  /* a stamp was too recent to trust: look next time */
	struct folder_shared *shared;
	uint64_t counter_seen;
	atomic_llong last_poll;       /* folder_changed_since_sync's last stat (monotonic s) */
	bool batch, batch_renamed;    /* folder_batch_begin: one fsync of cur/ at the end */
};

#define LAZY_DATE 1u
#define LAZY_SIZE 2u
#define VIEW_OWN_NAME 0x80u           /* in lazy[]: msgs[i].filename is malloc'd by the view */

/* folder_view.c: building and sharing bases, the views' own entries. */
/* The base for snap: the shared one when it was built from the same snapshot, index
 * and keywords, else a new one (MODSEQs from folder_index_sync), published in the
 * shared record when snap is the shared snapshot.  With f->shared->mu held. */
struct folder_base *folder_base_get(struct folder *f, struct folder_snap *snap);
void folder_base_release(struct folder_base **b);
/* Message i's own entry, or NULL. */
struct folder_own *folder_own_find(const struct folder *f, size_t i);
/* Message i's own entry, made from the base when there is none (NULL: no memory).
 * Invalidates pointers into f->own. */
struct folder_own *folder_own_get(struct folder *f, size_t i);
void folder_own_free(struct folder_own *own, size_t n);
/* Message i's file name is now `name` (taken: malloc'd); false: no memory (freed). */
bool folder_set_name(struct folder *f, size_t i, char *name);
/* Report the differences between f's view and (base, own) as folder.h's callbacks
 * say, then install them (the old base released, the old own entries freed). */
void folder_view_install(struct folder *f, struct folder_base *base, struct folder_own *own, size_t n_own,
	const struct folder_changes *ch);
/* \Recent (RFC 3501 §2.3.2) for the new base: this view's own \Recent UIDs still
 * there, and (not read-only) every UID above the floor, claimed.  *own: malloc'd. */
bool folder_view_recent(struct folder *f, struct folder_base *base, uint32_t uidnext_before,
	struct folder_own **own, size_t *n_own);

/* folder_shared.c */
struct folder_shared *folder_shared_get(const char *path);
void folder_shared_bump(struct folder_shared *s);

struct folder_index;

/* folder_index.c: the postern-index.  sync: give the new view (before it is
 * installed) its MODSEQs, cached dates and sizes, raise f->highestmodseq for what
 * changed since the index last saw it, log expunges; note: message i's lazily
 * found date/size; close: forget the view's index state. */
void folder_index_sync(struct folder *f, struct folder_msg *m, atomic_uchar *lazy, size_t n);
void folder_index_note(struct folder *f, const struct folder_msg *m, uint8_t lazy);
/* Message m's flags changed (m holds the new flags); returns its new MODSEQ. */
uint64_t folder_index_store(struct folder *f, const struct folder_msg *m);
void folder_index_open(struct folder *f);                  /* one more view */
/* The cached header block of message i (malloc'd copy), or false. */
bool folder_index_header(struct folder *f, size_t i, char **hdr, size_t *len);
void folder_index_cache_header(struct folder *f, size_t i, const char *hdr, size_t len);
void folder_index_close(struct folder *f);

/* folder_view.c: fill in message i's LAZY_* bits in want. */
void folder_msg_fill(struct folder *f, size_t i, uint8_t want);
/* folder.c: the LF file's size with CRLF line ends. */
bool folder_count_crlf_size(int fd, uint64_t *out);
/* folder.c: re-read dovecot-keywords (when its stamp moved, or always). */
void folder_reload_keywords(struct folder *f, bool force);
/* folder_ops.c: keyword `name`'s index in the dovecot-keywords of the folder at
 * path, created there when asked and there is room; -1 otherwise. */
int folder_keywords_file_index(const char *path, const char *name, bool create);

/* folder_names.c: the special-use table (exact names Sent, Drafts, Trash, Junk,
 * Archive); folder_special_name(i) walks it (NULL past the end). */
enum folder_special folder_special_of(const char *name);
const char *folder_special_name(size_t i);

/* folder_scan.c: names and directories. */
size_t folder_name_main_len(const char *name);        /* before ":" */
/* Flags and keyword bits from a name's ":2,<info>". */
void folder_info_flags(const char *name, uint32_t *flags, uint64_t *keywords);
/* The name with its info replaced for these flags/keywords (other letters kept). */
bool folder_name_with_flags(const char *name, uint32_t flags, uint64_t keywords, char *out, size_t outsz);
/* ",W=<n>" in the main part of a name. */
bool folder_name_field(const char *name, char key, uint64_t *out);
void folder_stamp_of(const char *path, struct folder_stamp *st);
bool folder_stamp_same(const struct folder_stamp *a, const struct folder_stamp *b);
/* Move new/ entries into cur/ (":2," added when the name has no info).  Returns how many. */
size_t folder_move_new(const char *path);
/* The names in <path>/cur, malloc'd array of malloc'd strings, sorted by main part. */
bool folder_list_cur(const char *path, char ***names, size_t *n, char *err, size_t errsz);
void folder_free_names(char **names, size_t n);
/* Delivery order of two names (leading seconds, ".M<usec>", then the name). */
int folder_name_order(const char *a, const char *b);

#endif
