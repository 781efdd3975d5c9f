/* service.h - what the composition root built, shared by the files of serve/ only
 * (server.c builds it; the protocol adapters smtp.c and pop3.c and the transport
 * side of logins, login.c, use it).  The transport's own records stay in net/. */
#ifndef POSTERN_SERVE_SERVICE_H
#define POSTERN_SERVE_SERVICE_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <time.h>

#include "delivery/remote.h"
#include "util/id.h"

#define POP_LOGIN_BUCKETS 1024

struct conf;
struct conn;
struct control;
struct decider;
struct delivery;
struct directory;
struct event;
struct login_service;
struct net;
struct queue;
struct workq;

/* POP-before-SMTP: when an address last logged in to POP3. */
struct pop_login {
	char addr[INET6_ADDRSTRLEN];
	time_t when;
	struct pop_login *next;
};

struct service {
	const struct conf *conf;
	struct net *net;                 /* the transport: loop, listeners, connections, TLS */
	struct queue *queue;
	struct directory *dir;
	struct delivery *delivery;
	struct workq *commitq;
	struct event *commit_ev;
	struct login_service *logins;    /* password checks, the throttle (auth/login.h) */
	struct event *auth_ev;           /* a login check is answered */
	struct directory *auth_dir;      /* shared by the login and mailbox threads (SQLite serialises) */
	struct decider *decider;         /* SMTP decisions: the policy pipeline (serve/decide.h) */
	struct relay_credentials relay_creds;   /* read before dropping root */
	struct control *control;
	struct event *sig_term, *sig_int, *shutdown_timer;
	bool shutting_down;
	char run_id[RUN_ID_MAX];              /* first part of every log reference (util/id.h) */
	struct pop_login *pop_logins[POP_LOGIN_BUCKETS];
};

/* smtp.c / pop3.c: each protocol's operations (net/server.h). */
extern const struct proto_ops smtp_proto_ops;
extern const struct proto_ops pop3_proto_ops;
/* POP-before-SMTP: seconds since addr last logged in to POP3, or -1. */
long long pop3_login_age(struct service *svc, const char *addr);
void pop3_forget_logins(struct service *svc);

#endif
