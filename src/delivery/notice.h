/* notice.h - the one message to the postmaster about messages that were moved to
 * queue/failed/ (undeliverable reports, unreadable or hostile queue files): which
 * files, why, and the `postern queue` commands that retry or remove them.  Sent
 * with the null sender (RFC 5321 §6.1: never answered by another report) to
 * postmaster@<first local domain>, which local delivery routes to the postmaster
 * user, the [server] postmaster address, or mail/<domain>/postmaster/. */
#ifndef POSTERN_DELIVERY_NOTICE_H
#define POSTERN_DELIVERY_NOTICE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/id.h"

struct conf;
struct queue;

#define NOTICE_REASON_MAX 300

struct failed_item {
	char qid[QUEUE_ID_LEN + 1];
	char why[NOTICE_REASON_MAX];
};

/* The envelope protocol of a notice: a notice that itself fails is not reported
 * again (no loop). */
#define NOTICE_PROTOCOL "notice"

/* Queue one notice about items[0..n), plus `more` not listed; the new message's id
 * goes into qid (17 octets). */
bool notice_failed_send(struct queue *q, const struct conf *c, const struct failed_item *items, size_t n,
	size_t more, char *qid, char *err, size_t errlen);

/* Where the notice goes: "postmaster@<first local domain>" (or @hostname). */
void notice_recipient(const struct conf *c, char *out, size_t outsz);

#endif
