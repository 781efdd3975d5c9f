/* uidlist.h - Dovecot's per-folder files: dovecot-uidlist, dovecot-keywords, and
 * the dotlock that guards them (folder.c is their only user; exposed for the unit
 * tests and the fuzz harnesses).
 *
 * dovecot-uidlist, version 3 (what Dovecot 2.x writes):
 *   3 V<uidvalidity> N<nextuid> G<128-bit mailbox GUID in hex> [other header fields]
 *   <uid> [<ext>...] :<base name>          ext: S<file size> W<vsize> G<guid> P<pop3 uidl> ...
 * version 1 (old Dovecot): "1 <uidvalidity> <nextuid>" then "<uid> <name>".
 * Reading is tolerant: a bad record line is skipped, UIDs must ascend (a record
 * that does not is dropped), unknown extensions are kept and written back.  Dovecot
 * leaves N stale while appending records (it keeps the truth in its index), so the
 * next UID is max(N, highest UID + 1).
 *
 * dovecot-keywords: "<index> <name>" lines, index 0..25 = letters a..z in names.
 *
 * The lock: <file>.lock created with O_CREAT|O_EXCL (Dovecot's dotlock); the new
 * content is written into the lock file, fsync'd, and renamed over the file, so a
 * reader sees the old or the new list, never a part.  A lock whose mtime has not
 * moved for UIDLIST_LOCK_STALE seconds is stale (its writer died) and is removed;
 * a live one is waited for at most UIDLIST_LOCK_WAIT seconds. */
#ifndef POSTERN_STORE_UIDLIST_H
#define POSTERN_STORE_UIDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UIDLIST_FILE "dovecot-uidlist"
#define KEYWORDS_FILE "dovecot-keywords"
#define UIDLIST_FILE_MAX (256u << 20)     /* refuse larger files */
#define UIDLIST_RECORDS_MAX 4000000u
#define UIDLIST_NAME_MAX 255              /* a Maildir base name (NAME_MAX) */
#define UIDLIST_LOCK_STALE 120            /* seconds, Dovecot's uidlist stale timeout */
#define UIDLIST_LOCK_WAIT 10              /* seconds a worker waits for a live lock */

struct uidlist_rec {
	uint32_t uid;
	char *name;        /* base name: the file name before ":" (owned) */
	char *ext;         /* the extension fields as read, space separated, or NULL (owned) */
	uint64_t vsize;    /* W<vsize>, 0 when absent */
	uint64_t psize;    /* S<size>, 0 when absent */
};

struct uidlist {
	unsigned version;          /* 3 (written) or 1 (read only) */
	uint32_t uidvalidity;
	uint32_t nextuid;          /* max(N, highest UID + 1) */
	char guid[33];             /* hex, "" when absent */
	char *hdr_ext;             /* other header fields, verbatim, or NULL */
	struct uidlist_rec *recs;  /* ascending UID */
	size_t n, cap;
};

/* Parse a whole file.  false only when the header is unusable (then the caller
 * rebuilds with a new UIDVALIDITY); bad records are skipped and counted. */
bool uidlist_parse(const char *text, size_t len, struct uidlist *out, size_t *bad_lines);
/* The file's text (version 3), malloc'd; NULL on allocation failure. */
char *uidlist_format(const struct uidlist *ul, size_t *len);
void uidlist_free(struct uidlist *ul);
/* Append a record (uid must exceed every present one); takes a copy of name. */
bool uidlist_add(struct uidlist *ul, uint32_t uid, const char *name, size_t name_len, uint64_t vsize);

/* Read <dir>/dovecot-uidlist.  *exists false (and true returned) when missing. */
bool uidlist_read(const char *dir, struct uidlist *out, bool *exists, char *err, size_t errsz);

/* The dotlock on <dir>/<file>.lock.  lock_open returns the lock file's fd (-1 with
 * err on timeout or error); lock_commit writes data into it, fsyncs and renames it
 * over <dir>/<file> (and fsyncs dir); lock_abandon removes it unchanged. */
int dotlock_open(const char *dir, const char *file, char *err, size_t errsz);
bool dotlock_commit(int fd, const char *dir, const char *file, const char *data, size_t len, char *err,
	size_t errsz);
void dotlock_abandon(int fd, const char *dir, const char *file);

/* dovecot-keywords: names[i] for index i (malloc'd, NULL when unused).  Bad lines,
 * indexes past 25 and duplicate names are skipped. */
struct keywords {
	char *names[26];
};
void keywords_parse(const char *text, size_t len, struct keywords *out);
char *keywords_format(const struct keywords *kw, size_t *len);
void keywords_free(struct keywords *kw);
/* A keyword name IMAP allows (RFC 3501 atom, no "\\"), 1..100 octets. */
bool keywords_valid_name(const char *name);

#endif
