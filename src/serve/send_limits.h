/* send_limits.h - the outbound limits of the running server: the counters (policy/'s
 * struct policy_limits) read from data_dir/limits.state at the start, saved by a
 * chore on a thread of their own every LIMITS_SAVE_INTERVAL seconds and at the stop;
 * the count of each committed message (serve/smtp.c); the notices to the
 * administrator and the user, composed here and queued like delivery/notice.c's
 * (policy/ never writes the queue). */
#ifndef POSTERN_SERVE_SEND_LIMITS_H
#define POSTERN_SERVE_SEND_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

#define LIMITS_SAVE_INTERVAL 30       /* seconds between saves of the counters */
#define LIMITS_MAX_ENTRIES 50000      /* accounts and domains counted at once */

struct conf;
struct delivery;
struct event_base;
struct queue;
struct limits_service;

/* Reads the state file (a damaged one is logged and the counters start empty) and
 * starts the thread and the save timer.  NULL with err on failure. */
struct limits_service *limits_service_new(struct event_base *base, const struct conf *cf, struct queue *q,
	struct delivery *d, char *err, size_t errsz);
struct policy_limits *limits_service_counts(struct limits_service *ls);
/* The stages' notice hook (policy_limits_stage.notice): any thread. */
void limits_service_notice(void *ls, const struct policy_limit_notice *n);
/* A message was committed (loop thread): the login ("" none), the envelope sender's
 * domain ("" for <>) and its recipients. */
void limits_service_count(struct limits_service *ls, const char *login, const char *sender_domain, size_t rcpts);
/* Finishes the notices under way, saves the counters, frees.  After the decision
 * threads and the commit threads are gone; before delivery stops. */
void limits_service_free(struct limits_service **ls);

#endif
