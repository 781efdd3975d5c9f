/* mbox.h - shared by the mailbox-command files of the imap room only (mbox.c,
 * mbox_list.c, mbox_append.c): what they need of each other on store/folder.h. */
#ifndef POSTERN_IMAP_MBOX_H
#define POSTERN_IMAP_MBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "imap/internal.h"
#include "store/folder.h"

void imap_mbox_store_no(struct imap_session *s, struct buf *out, const char *tag, enum store_result r,
	const char *name, const char *err);
void imap_mbox_quote_name(const char *name, char *out, size_t outsz);   /* "name", escaped, cut */
bool imap_mbox_status_line(struct imap_session *s, const char *name, unsigned items, struct buf *out, char *err,
	size_t errsz);
void imap_mbox_idle_check(struct imap_session *s, struct buf *out);
void imap_mbox_list(struct imap_session *s, const struct imap_cmd *c, struct buf *out);     /* LIST, LSUB */
void imap_mbox_append(struct imap_session *s, const struct imap_cmd *c, struct buf *out);
void imap_mbox_quota(struct imap_session *s, const struct imap_cmd *c, struct buf *out);    /* GETQUOTA(ROOT) */

#endif
