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
 * is searched too, and a copy found anywhere counts as delivered. */
enum local_result local_deliver(const struct conf *c, const struct queue_message *m, size_t i, const char *path,
	bool may_repeat, char *why, size_t whysz);

#endif
