/* decide.h - the decision route of the running server: the policy pipeline with the
 * local rules (policy/), its own worker threads and directory handle, and the
 * executor that puts I/O stages on those threads and their timeouts on the event
 * loop.  The SMTP adapter (serve/smtp.c) sends every decision of a session here. */
#ifndef POSTERN_SERVE_DECIDE_H
#define POSTERN_SERVE_DECIDE_H

#include <stddef.h>

#include "policy/policy.h"

struct conf;
struct event_base;
struct decider;

struct limits_service;

/* pop_login_age: POP-before-SMTP, seconds since an address last logged in to POP3
 * or -1 (called on the loop thread).  limits: the outbound limits' counters and
 * notices (serve/send_limits.h), outliving the decider.  NULL with err set on failure. */
struct decider *decider_new(struct event_base *base, const struct conf *cf,
	long long (*pop_login_age)(void *ctx, const char *addr), void *pop_ctx, struct limits_service *limits,
	char *err, size_t errsz);
/* policy_decide() on the server's pipeline (see policy.h for the contract). */
struct policy_run *decider_decide(struct decider *d, struct policy_facts *facts, policy_done_fn done, void *arg);
/* The conversations of one SMTP connection with listener l's content filters (NULL:
 * none), and their end when the connection goes (on the filters' threads; inline when
 * the decider is gone, at the stop).  d may be NULL for the end. */
struct conf_listener;
struct policy_milter_session *decider_milter_session(struct decider *d, const struct conf_listener *l);
void decider_milter_session_end(struct decider *d, struct policy_milter_session **ms);
/* Finishes the stages still running (their done callbacks run here, on the calling
 * thread), then frees.  Sets *d to NULL. */
void decider_free(struct decider **d);

#endif
