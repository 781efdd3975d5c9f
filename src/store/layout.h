/* layout.h - where mailboxes live under data_dir.
 *
 * The directory knows accounts (a domain and a local part); only store/ knows that
 * the Maildir++ of local@domain is data_dir/mail/DOMAIN/LOCAL/.  Delivery, POP3, the
 * quota check at RCPT and the admin commands all ask here, so the layout can change
 * (or move to another node) in one place. */
#ifndef POSTERN_STORE_LAYOUT_H
#define POSTERN_STORE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

/* The Maildir of the mailbox `local` of `domain` (both lower case, as the directory
 * keeps them), written into path.  False when it does not fit. */
bool store_mailbox_path(const char *data_dir, const char *domain, const char *local, char *path, size_t pathsz);

#endif
