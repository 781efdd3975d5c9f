/* reason.h - what became of one recipient in a delivery attempt.  The client keeps
 * the deciding reply apart (code, enhanced code, words, who said it) or Postern's own
 * reason with its status; rcpt_result_reason() writes the one text that the queue
 * state, the log, `queue list` and the report show, and reason_status() is the one
 * reading of that text back (the report's Status field, RFC 3464 §2.3.4). */
#ifndef POSTERN_DELIVERY_REASON_H
#define POSTERN_DELIVERY_REASON_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/wire.h"

enum rcpt_outcome { OUT_DELIVERED, OUT_DEFER, OUT_FAIL };

#define RCPT_REASON_MAX 600   /* the recorded text (queue.h QUEUE_REPLY_MAX) */

struct rcpt_result {
	enum rcpt_outcome outcome;
	char enh[WIRE_ENH_MAX];        /* the status for the report: the reply's, or its class's default */
	int code;                      /* the remote reply that decided it; 0: Postern decided */
	bool reply_had_enh;            /* the reply carried enh itself (RFC 2034) */
	char said[96];                 /* who answered, to what: "192.0.2.1 said", "... said to MAIL FROM" */
	char text[RCPT_REASON_MAX];    /* the reply's words (no code, no enh), or Postern's reason */
};

/* Nothing recorded yet (an accepted RCPT waits for the end of data). */
bool rcpt_result_known(const struct rcpt_result *x);
/* Postern's own reason, with the status it gives it. */
void rcpt_result_set(struct rcpt_result *x, enum rcpt_outcome o, const char *enh, const char *why);
/* A remote reply decides: 2xx delivered, 4xx deferred, 5xx failed. */
void rcpt_result_from_reply(struct rcpt_result *x, const struct wire_reply *r, const char *said);
/* The recorded text: "192.0.2.1 said: 550 5.1.1 words", or Postern's reason.  A
 * recipient not delivered whose text would not start with its status (Postern's
 * words, a reply without an enhanced code) gets the status in front, so the report's
 * Status field is right. */
void rcpt_result_reason(const struct rcpt_result *x, char *out, size_t outsz);

/* The status in a recorded text: at its start ("5.6.3 line 3 ..."), or at the start
 * of what follows an attribution ending in ": " ("192.0.2.1 said: 550 5.1.1 ...",
 * "gave up ...; last: 4.4.1 ..."), after the reply code when there is one.  Never a
 * number inside the words ("RFC 5321 4.5.3.1.6").  False when there is none. */
bool reason_status(const char *reason, char *enh, size_t enhsz);

#endif
