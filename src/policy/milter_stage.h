/* milter_stage.h - what the content-filter stage's files share (private to policy/):
 * one connection's conversations with its filters (milter_session.c: their life,
 * the claim that keeps a late thread and the next stage apart) and the stage's words
 * (milter_words.c).  The public side is policy.h "content filters". */
#ifndef POSTERN_POLICY_MILTER_STAGE_H
#define POSTERN_POLICY_MILTER_STAGE_H

#include <pthread.h>
#include <stdbool.h>

#include "milter/milter.h"
#include "policy/policy.h"

/* One filter of the connection: its conversation and where it is in it. */
struct milter_peer {
	struct milter_filter_conf fc;
	char display[64];            /* the name refusals and logs use */
	struct milter_conn *mc;      /* NULL: not open (yet, or since it failed) */
	bool busy;                   /* a stage's thread holds mc (under the session's lock) */
	bool greeted;                /* connect (and helo) sent on mc */
	char helo[POLICY_DOMAIN_MAX];   /* the HELO name the filter was told */
	bool in_txn;                 /* MAIL sent and no end of message: abort before the next */
	unsigned long long txn;      /* the transaction it takes part in (0: none) */
	bool done;                   /* accepted, or failed with default accept: nothing more this transaction */
	bool failed;                 /* failed in this transaction: its default action answers every later step */
	bool discard;                /* asked to discard the message (accepted, then dropped) */
	bool quarantine;             /* asked to hold it in the queue */
	char quarantine_reason[256];
	char failure[256];           /* with failed: what happened */
	/* connect or helo refused: every transaction of the session is refused so */
	enum milter_verdict session_refusal;   /* MILTER_CONTINUE: none */
	char session_reply[1024];
};

struct policy_milter_session {
	pthread_mutex_t mu;
	unsigned refs;               /* the connection's, and one per stage running */
	bool ended;                  /* the connection is gone: a returning stage closes its peer */
	unsigned long long last_txn;
	size_t n;
	struct milter_peer peers[];
};

/* A stage takes a reference for its run and gives it back. */
void milter_session_hold(struct policy_milter_session *ms);
void milter_session_release(struct policy_milter_session *ms);
/* The next transaction's number (MAIL). */
unsigned long long milter_session_new_txn(struct policy_milter_session *ms);
/* The connection has gone (a stage that timed out came back after it). */
bool milter_session_ended(struct policy_milter_session *ms);
/* The peer for this thread, or NULL when a stage that timed out still holds it (that
 * filter has then failed for this decision) or the connection has gone. */
struct milter_peer *milter_peer_claim(struct policy_milter_session *ms, size_t i);
/* Give it back; closes its conversation when the connection has gone meanwhile. */
void milter_peer_unclaim(struct policy_milter_session *ms, struct milter_peer *p);
/* The conversation is broken (failed, or the filter is done with the session): closed
 * now, reopened at the next transaction.  On the claiming thread. */
void milter_peer_drop(struct milter_peer *p);

/* milter_message.c: the message at the end of data as the filters are sent it. */
struct milter_field { char *name; char *value; };   /* value: the octets after the colon, CR LF inside as LF */
struct milter_message {
	int fd;                                 /* the spool file, read only */
	struct milter_field *fields;            /* H: the fields stages added, then the message's */
	size_t n_fields;
	unsigned long long body_off, body_end;  /* the body's octets in the file */
};
/* Split a header block (CR LF line ends) into fields appended to m->fields: each a
 * name and the octets after its colon, CR LF inside folded values as LF; lines that
 * are no field are skipped.  False on no memory (fuzzed: fuzz_milter_stage). */
bool milter_message_split(struct milter_message *m, const char *p, size_t n);
/* Read H and find the body; false (nothing to free) when the file cannot be read. */
bool milter_message_open(struct milter_message *m, const struct policy_facts *f);
void milter_message_close(struct milter_message *m);
/* data, H, end of headers, body, end of message to one filter; its changes noted. */
void milter_message_send(struct milter_peer *p, struct policy_facts *f, const struct milter_message *m,
	struct verdict *v);
/* After the last filter passed: discard, quarantine, and the changes made.  asked[i]:
 * this decision held peer i (a peer a late stage still holds is not read). */
void milter_message_finish(struct policy_milter_session *ms, struct policy_facts *f, const bool *asked,
	struct verdict *v);
/* The answer to one step: true to go on with this filter (milter_stage.c). */
bool milter_judge(struct milter_peer *p, const struct policy_facts *f, enum milter_verdict mv,
	const struct milter_outcome *out, struct verdict *v);

/* milter_words.c: the verdicts, in the words diagnostics.md lists. */
/* A refusal of the filter (REJECT, TEMPFAIL, or its own reply for REPLYCODE). */
void milter_refusal_verdict(const struct milter_peer *p, enum policy_point point, enum milter_verdict mv,
	const char *reply, struct verdict *v);
/* The filter failed (down, slow, closed, garbage): its default action's verdict (OK
 * for accept); logs event=milter_failed. */
void milter_failure_verdict(const struct milter_peer *p, const struct policy_facts *f, const char *what,
	struct verdict *v);

#endif
