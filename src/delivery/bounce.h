/* bounce.h - delivery status notifications (RFC 3464, multipart/report): a
 * failure report (the message is returned) or a delay notice (still trying).  The
 * first part says in plain words what the remote server answered and what it means;
 * the second is the machine-readable message/delivery-status; the third returns the
 * message (RET=FULL, the default) or its headers (RET=HDRS).  Never sent for a
 * message with the null sender (RFC 5321 §6.1: no bounce loops). */
#ifndef POSTERN_DELIVERY_BOUNCE_H
#define POSTERN_DELIVERY_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct queue;
struct queue_message;
struct queue_rcpt_state;

enum bounce_kind { BOUNCE_FAILED, BOUNCE_DELAYED };

/* Does the sender want to hear about recipient i (NOTIFY, RFC 3461 §4.1)? */
bool bounce_wanted(const struct queue_message *m, size_t i, enum bounce_kind kind);

/* Queue a report about recipients idx[0..n) of m, whose states carry the reasons.
 * Writes the new message's id into qid (17 octets). */
bool bounce_send(struct queue *q, const struct conf *c, const struct queue_message *m, enum bounce_kind kind,
	const size_t *idx, size_t n, const struct queue_rcpt_state *states, char *qid, char *err, size_t errlen);

/* Queue a report Postern wrote (bounce, delay notice, postmaster notice) from the null
 * sender to `to`; takes and frees `body`.  qid has room for QUEUE_ID_LEN + 1. */
struct buf;
bool bounce_queue_report(struct queue *q, const struct conf *c, const char *protocol, const char *to,
	bool eightbit, struct buf *body, char *qid, char *err, size_t errlen);

/* Plain words for an enhanced status code (and reply text): what it means and what
 * to do.  Static text. */
const char *bounce_meaning(const char *enh, const char *reply);

/* When a big receiver refused because it could not authenticate the sender's domain
 * (SPF, DKIM, DMARC, reverse DNS: Gmail 5.7.26, Microsoft 5.7.515, Yahoo 5.7.9, ...):
 * words the user can forward to the administrator, naming `postern dns check DOMAIN`
 * (auth_refusal.c).  False for any other reply. */
bool bounce_auth_advice(const char *enh, const char *reply, const char *sender_domain, const char *hostname,
	char *out, size_t outsz);

/* "5 days", "4 hours", "90 minutes", "6 seconds" for report texts. */
void bounce_duration(unsigned long long seconds, char *out, size_t outsz);

#endif
