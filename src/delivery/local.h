/* local.h - delivery of one recipient into its local Maildir. */
#ifndef POSTERN_DELIVERY_LOCAL_H
#define POSTERN_DELIVERY_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct queue_message;

enum local_result { LOCAL_DELIVERED, LOCAL_TEMP, LOCAL_PERM };

/* Deliver message m to recipient i at path, checking the quota again (a race at
 * RCPT time cannot overfill a mailbox) and warning the owner, once, when usage
 * crosses the configured threshold.  The reason for a failure goes into why.
 * The copy's Maildir name derives from the queue id and i, so a copy already in
 * new/ is never made twice; with may_repeat (a retry, or a message found in the
 * queue at start, which a crash may have interrupted after this delivery) cur/
 * is searched too, and a copy found anywhere counts as delivered.
 *
 * LOCAL_DELIVERED does not yet mean durable: the copy's file is fsync'd, but the
 * directory holding its name (sync_dir: "<path>/new", or "<path>/cur" for a copy
 * found there) is left for the caller to fsync, once for all the copies delivered
 * together (delivery/finish.c), before the queue may forget the message or record
 * the recipient as delivered.  If that fsync fails the recipient is pending again;
 * the next attempt finds the copy by its name and syncs again. */
enum local_result local_deliver(const struct conf *c, const struct queue_message *m, size_t i, const char *path,
	bool may_repeat, char *sync_dir, size_t sync_dirsz, char *why, size_t whysz);

#endif
