/* scheduler_int.h - what the parts of the queue runner share (private to delivery/):
 * the runner's state (lists, per-domain counts, per-thread records, chores), and
 * the functions one part calls in another.  lists.c the lists and the per-domain
 * limits; scheduler.c the threads, start and stop; attempt.c one attempt at one
 * message; chores.c the leftovers, the rescan and the postmaster notice; admin.c
 * `postern queue ...` through the control socket. */
#ifndef POSTERN_DELIVERY_SCHEDULER_INT_H
#define POSTERN_DELIVERY_SCHEDULER_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "delivery/bounce.h"
#include "delivery/conncache.h"
#include "delivery/delivery.h"
#include "delivery/dnssec.h"
#include "delivery/local.h"
#include "delivery/notice.h"
#include "delivery/remote.h"
#include "directory/directory.h"
#include "events/events.h"
#include "net/client.h"
#include "queue/queue.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "util/id.h"
#include "util/log.h"

#define MAX_DOMAINS_ACTIVE 1024
#define BUSY_DOMAIN_WAIT 5      /* seconds before trying a domain at its limit again */
#define WHERE_MAX 300           /* "MX of example.org", "relay host:port", "local mailbox" */
#define NOTICE_BATCH_MAX 50     /* failed messages named in one postmaster notice */
#define NOTICE_GATHER 5         /* seconds to gather a batch before the notice goes */
#define LEFTOVER_AGE 3600       /* queue leftovers this old are removed */
#define CLEAN_ENTRIES 100000    /* directory entries examined per queue directory per pass */
#define CLEAN_MAILBOXES 2000    /* mailboxes whose tmp/ is cleaned per pass */
#define RESCAN_RACE_SECONDS 60  /* after a rescan found files, new messages are not taken as fresh */

struct item {
	char qid[QUEUE_ID_LEN + 1];
	time_t due;
	bool force;                 /* flush/retry: ignore the recipients' next_try */
	bool fresh;                 /* just committed, never tried: cannot repeat a delivery */
	time_t arrival;             /* the message's (unix time); 0 until an attempt read its envelope */
	struct item *next;
};

/* finish.c: the group fsync of Maildir directories (see there). */
#define FINISH_DIR_MAX 1500
struct finish_dir {
	char path[FINISH_DIR_MAX];      /* "<maildir>/new" (or /cur) */
	bool failed;                    /* its fsync failed (set by finish_sync) */
};
struct finish_group {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_cond_t arrived;         /* CLOCK_MONOTONIC: a delivery under way settled */
	bool syncing;                   /* a thread is syncing a batch (or waiting for company) now */
	struct finish_req *waiting;     /* the next batch */
	unsigned writing;               /* local deliveries under way (finish_begin, not yet settled) */
	uint64_t begun, settled;        /* of those, counted so far */
	unsigned long batches, requests, fsyncs;   /* for tests and the log */
};
void finish_init(struct finish_group *g);
void finish_destroy(struct finish_group *g);
/* A thread starts writing local copies whose directories it will sync (so that a
 * leader waits for it: finish.c); it ends with finish_sync(.., begun true) or, with
 * nothing to sync, finish_abandon. */
void finish_begin(struct finish_group *g);
void finish_abandon(struct finish_group *g);
/* Blocking: fsync each of dirs (distinct within the batch), sharing the fsyncs with
 * other threads' requests that arrive meanwhile.  True when every one worked; the
 * failed ones are marked.  n 0: true at once.  begun: this thread called
 * finish_begin (settled here, whatever n). */
bool finish_sync(struct finish_group *g, struct finish_dir *dirs, size_t n, bool begun);

struct domain_slot {
	char name[256];
	unsigned active;
};

struct delivery {
	const struct conf *conf;
	struct queue *queue;
	const struct relay_credentials *creds;
	struct events *events;          /* outcomes are recorded there (events/events.h); NULL: not */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *ready_head, *ready_tail;
	struct item *deferred;          /* unsorted; scanned for the earliest */
	char (*busy)[QUEUE_ID_LEN + 1]; /* messages being worked on, one per thread */
	char (*where)[WHERE_MAX];       /* per thread: where busy[] is being delivered now */
	/* chores (run by whichever delivery thread finds them due) */
	bool chores_running;
	time_t next_clean;
	size_t mail_cursor;             /* maildir_clean_all's place */
	time_t rescan_found;            /* when the last rescan scheduled files nobody knew (0: never) */
	struct finish_group finish;     /* Maildir directory syncs shared by the threads (finish.c) */
	struct failed_item batch[NOTICE_BATCH_MAX];
	size_t n_batch, batch_more;     /* newly failed messages not yet told to the postmaster */
	time_t batch_due;
	struct domain_slot domains[MAX_DOMAINS_ACTIVE];
	size_t n_items;                 /* messages in the lists or being worked on: the queue gauge */
	time_t oldest_arrival;          /* the oldest of their known arrivals (0: none) */
	bool stopping;                  /* no new attempt starts */
	bool cancelled;                 /* the stop deadline passed: transactions were cut off */
	struct timespec deadline;       /* CLOCK_MONOTONIC: when a stop cuts deliveries off */
	struct net_cancel *cancel;      /* fired at the deadline: wakes blocked connections */
	unsigned running;               /* threads not yet finished */
	pthread_cond_t exited;          /* CLOCK_MONOTONIC; signalled as each thread ends */
	unsigned nthreads;
	struct dnssec_gate *dnssec;     /* NULL with a smarthost (no DNS) */
	unsigned char node_secret[256]; /* [cluster]: the node token's secret (delivery_set_node_secret) */
	size_t node_secret_len;
	struct conncache *conns;        /* idle remote connections, every thread's (remote.h); NULL: none */
	pthread_t *threads;
	bool *started;
	struct worker *workers;
};

struct worker {
	struct delivery *d;
	unsigned index;
	struct directory *dir;
	struct remote_ctx *remote;
	time_t arrival;                 /* of the message being worked on, as known (lock held) */
	time_t envelope_arrival;        /* this thread's own: what sched_process read (0: nothing) */
};

void sched_push_ready(struct delivery *d, struct item *it);
/* Take the item after prev (or the head) out of the ready list. */
struct item *sched_ready_unlink(struct delivery *d, struct item **p, struct item *prev);
bool sched_unlist(struct delivery *d, const char *qid);
bool sched_is_busy(struct delivery *d, const char *qid);
void sched_add_item(struct delivery *d, const char *qid, time_t due, bool force, bool fresh);
bool sched_stop_state(struct delivery *d, bool *cancelled);
bool sched_domain_acquire(struct delivery *d, const char *domain);
void sched_domain_release(struct delivery *d, const char *domain);
/* The queue gauges (size, oldest arrival) after items came or went (lock held);
 * gone: the arrival of an item just freed (0: none), which may need a rescan. */
void sched_queue_gauges(struct delivery *d, time_t gone);
/* After an attempt at it (lock held): deferred until again, or freed when 0. */
void sched_attempt_done(struct worker *w, struct item *it, time_t again);
/* remote.c says which server a thread is trying now (for `queue list`). */
void sched_where_host(void *arg, const char *host);
/* One attempt at qid; returns when it is due again (0: done with it). */
time_t sched_process(struct worker *w, const char *qid, bool force, bool fresh);
/* `postern queue bounce`: return the pending recipients to the sender now. */
bool sched_bounce_now(struct delivery *d, const char *qid, char *reply, size_t replysz);
void sched_run_chores(struct delivery *d);
/* A record for the event store about qid (rcpt "": the whole message), proto "queue";
 * the caller adds what it knows and calls events_append(d->events, e). */
void sched_event_init(struct events_record *e, enum events_kind kind, const char *qid, const char *sender,
	const char *rcpt, const char *text);
time_t sched_chores_due(const struct delivery *d);

#endif
