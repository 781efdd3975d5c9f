/* edit.h - how the end-of-data stages change the message being received (the
 * policy_spool of policy.h, on the SMTP adapter's spool writer): the rewrite through
 * queue_writer_rewrite, and the SMTP parser's reading of the addresses a content
 * filter gives.  The writer is shared between the connection and the decision's
 * facts, which may outlive the connection's interest in it (a stage that timed out
 * finishes on its thread): the last to let go frees it. */
#ifndef POSTERN_SERVE_EDIT_H
#define POSTERN_SERVE_EDIT_H

#include <stdbool.h>

#include "policy/policy.h"

struct queue_writer;
struct spool_share;

/* Give the END_OF_DATA facts f a way to change the message w (f->spool; body_max:
 * [limits] message_size).  The share, or NULL on no memory (f->spool then stays
 * zero: every change is refused).  The connection keeps w until it calls
 * spool_share_release. */
struct spool_share *spool_share_new(struct queue_writer *w, unsigned long long conn_id, unsigned long long body_max,
	struct policy_facts *f);
/* The connection lets go of its share.  hand_writer: the connection drops the message,
 * and the share frees w when the facts are gone too (never while a stage may still be
 * writing it); otherwise the connection keeps w (the commit takes it).  Sets *s NULL. */
void spool_share_release(struct spool_share **s, bool hand_writer);

#endif
