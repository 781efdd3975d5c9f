/* user.h - the user's own pages of the account service (contracts14.md §C), built on
 * the web application core (web/app.h):
 *   outgoing.c  "My outgoing mail": GET /mail, GET /mail/<qid or event id> — what became
 *               of each message the account sent and each attempt the server refused,
 *               from the event store (events/events.h), with the explain knowledge
 *               base's words and fixes;
 *   setup.c     "Set up a device": GET /setup, GET/POST /setup/<program> (the running
 *               server's settings, the steps for that program, an app password made for
 *               the device and shown once as a QR code), POST /setup/apple/profile (the
 *               signed Apple profile, optionally with a new app password in it);
 *   selftest.c  "Test my settings": GET/POST /test — the doctor's checks (diag/doctor.h)
 *               run from the server against its own listener;
 *   qr.c        the QR code drawing (web/qr.h).
 * Everything that came from mail (subjects, addresses, remote replies) reaches a page
 * only through the escaping template engine. */
#ifndef POSTERN_WEB_USER_H
#define POSTERN_WEB_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "events/events.h"
#include "web/web.h"

/* --- outgoing.c: grouping the events of one account ------------------------------ */

#define OUTGOING_LIST_MAX 500       /* records read for one page */
#define OUTGOING_RCPTS_MAX 32       /* recipients shown per message */
#define OUTGOING_SENDERS_MAX 64     /* addresses an account may send as, in the query */

enum outgoing_state { OUT_REFUSED, OUT_QUEUED, OUT_WAITING, OUT_DELIVERED, OUT_RETURNED, OUT_HELD, OUT_DELETED };

/* One recipient of a message, its newest event. */
struct outgoing_rcpt {
	const struct events_record *last;    /* the newest delivery event for it (NULL: none yet) */
	const char *address;
	enum outgoing_state state;
	bool delay_notice;                   /* a delay notice was sent to the sender */
};

/* One line of "My outgoing mail": a message (every event of one qid) or one refusal
 * before a message was accepted (no qid). */
struct outgoing_item {
	const struct events_record *head;    /* the newest record of the item */
	const struct events_record *queued;  /* the message's EVENTS_QUEUED (NULL: refusal, or older than kept) */
	char qid[32];
	enum outgoing_state state;           /* the worst of its recipients: returned > waiting > queued > delivered */
	struct outgoing_rcpt rcpts[OUTGOING_RCPTS_MAX];
	size_t n_rcpts;
	size_t n_events;
};

/* Group records (newest first, as events_list returns them) into items, newest
 * first; returns the number written (<= max).  The items point into recs. */
size_t outgoing_group(const struct events_record *recs, size_t n, struct outgoing_item *items, size_t max);
/* "refused", "waiting", "delivered", "returned", ...: words for the state. */
const char *outgoing_state_name(enum outgoing_state s);

/* --- setup.c: the mail programs the setup page knows ------------------------------ */

struct setup_program {
	const char *id;           /* the URL's /setup/<id> and the template setup_<id>.html */
	const char *name;         /* "Outlook" */
	const char *fix_keyword;  /* how explain.ini's fixes for it start ("Outlook:"), for /mail */
	bool apple;               /* the signed profile sets it up */
};
extern const struct setup_program setup_programs[];
extern const size_t setup_n_programs;
const struct setup_program *setup_program_find(const char *id);   /* NULL: not one of them */

/* --- the handlers ---------------------------------------------------------------- */
web_handler_fn web_outgoing_list, web_outgoing_show;
web_handler_fn web_setup_index, web_setup_program, web_setup_password, web_setup_profile;
web_handler_fn web_selftest_page, web_selftest_run;

#endif
