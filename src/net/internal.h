/* internal.h - the server and connection records, shared by net/ (server.c:
 * listeners and connections; deadline.c) and, until the transport/service split
 * is done, by the composition root serve/ (server.c, login.c, and the protocol
 * adapters smtp.c and pop3.c).  Other rooms use
 * net/server.h, net/tls.h and net/client.h. */
#ifndef POSTERN_NET_INTERNAL_H
#define POSTERN_NET_INTERNAL_H

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/conf.h"
#include "delivery/remote.h"
#include "queue/queue.h"
#include "util/id.h"

#define IP_BUCKETS 1024
#define POP_LOGIN_BUCKETS 1024

struct buf;
struct directory;
struct delivery;
struct workq;
struct login_service;
struct tls;
struct control;
struct conn;

struct ip_count {
	char addr[INET6_ADDRSTRLEN];
	unsigned count;
	struct ip_count *next;
};

/* POP-before-SMTP: when an address last logged in to POP3. */
struct pop_login {
	char addr[INET6_ADDRSTRLEN];
	time_t when;
	struct pop_login *next;
};

struct server {
	const struct conf *conf;
	struct event_base *base;
	struct evconnlistener *listeners[CONF_MAX_LISTENERS];
	size_t n_listeners;
	struct queue *queue;
	struct directory *dir;
	struct delivery *delivery;
	struct workq *commitq;
	struct event *commit_ev;
	struct login_service *logins;    /* password checks, the throttle (auth/login.h) */
	struct event *auth_ev;           /* a login check is answered */
	struct directory *auth_dir;      /* shared by the login and mailbox threads (SQLite serialises) */
	struct tls *tls;
	struct relay_credentials relay_creds;   /* read before dropping root */
	struct control *control;
	struct event *sig_term, *sig_int, *shutdown_timer;
	bool shutting_down;
	uint64_t next_conn_id;
	char run_id[RUN_ID_MAX];              /* first part of every log reference (util/id.h) */
	unsigned n_conns;
	unsigned n_refusing;             /* refused connections told so over TLS (not in n_conns) */
	struct conn *conns;              /* doubly linked, for shutdown */
	struct ip_count *ips[IP_BUCKETS];
	struct pop_login *pop_logins[POP_LOGIN_BUCKETS];
};

/* Why a connection is refused before any session exists. */
enum conn_refusal {
	CONN_REFUSE_TOTAL,       /* [limits] connections */
	CONN_REFUSE_ADDRESS,     /* [limits] connections_per_ip */
	CONN_REFUSE_RESERVED,    /* [limits] connections_reserved: kept for new addresses */
};

/* deadline.c: limits on how long a client may take (see there). */
enum deadline_kind { DEADLINE_LINE, DEADLINE_DATA_RATE, DEADLINE_LOGIN, DEADLINE_SESSION, DEADLINE_TLS, DEADLINE_NONE };

/* What the connection code needs from a listener's protocol (SMTP or POP3): the
 * transport knows no protocol words.  The first three act before a session exists
 * and write one line, in the client's own protocol, that is sent before closing. */
struct proto_ops {
	const char *name;
	bool (*start)(struct conn *c, const char *tls_desc);   /* create the session, greet; false: c freed */
	void (*refuse_busy)(struct buf *out, const struct conf *cf, enum conn_refusal why);
	void (*refuse_plaintext)(struct buf *out, const struct conf *cf);   /* on an implicit-TLS port */
	size_t (*feed)(void *s, const void *p, size_t n);
	struct buf *(*output)(void *s);
	bool (*wants_close)(const void *s);
	bool (*waiting)(const void *s);
	bool (*wants_tls)(const void *s);
	void (*tls_started)(void *s, const char *desc);
	void (*timeout)(void *s);
	void (*shutdown)(void *s);
	void (*disconnected)(void *s);
	void (*destroy)(void *s);
	bool (*streaming)(const void *s);   /* NULL: never streams */
	void (*pump)(void *s);
	/* For the deadlines (deadline.c). */
	bool (*line_pending)(const void *s);   /* a command line is partly received */
	bool (*in_data)(const void *s);        /* NULL: never receives message content */
	const char *(*login)(const void *s);   /* the logged-in user, or NULL */
	/* A deadline passed (not DEADLINE_TLS): reply in the protocol's words and close. */
	void (*deadline)(void *s, enum deadline_kind which, unsigned long long limit);
};

struct room_check;

struct conn {
	struct server *srv;
	const struct conf_listener *listener;
	struct bufferevent *bev;
	void *session;
	const struct proto_ops *ops;
	uint64_t id;
	char addr[INET6_ADDRSTRLEN];
	struct queue_writer *writer;     /* SMTP: the message being received */
	struct room_check *room;         /* SMTP: its local recipients' Maildirs, for the quota check */
	bool spool_no_space;             /* SMTP: the last spool failure was for lack of space */
	char qid[QUEUE_ID_LEN + 1];
	unsigned busy;                   /* jobs (commit, login check, mailbox) that point at us */
	bool closed;                     /* socket gone; freed when the jobs return */
	bool read_paused;
	bool trusted;                    /* client inside trusted_networks */
	bool refusing;                   /* refused: TLS handshake, then the refusal, then close */
	enum conn_refusal refusal;       /* with refusing */
	bool got_data;                   /* any byte received yet */
	bool tls_pending;                /* handshake running */
	bool tls_failed;                 /* handshake failed: sending the alert, then closing */
	SSL *ssl;                        /* owned by the TLS bufferevent */
	struct event *sniff;             /* implicit TLS: waiting for the ClientHello */
	struct event *delay;             /* a failed login's answer, held back */
	struct event *closer;            /* waiting for the last bytes to leave */
	unsigned close_checks;
	struct event *deadline;          /* the earliest deadline (deadline.c) */
	uint64_t since;                  /* ms, monotonic: accepted */
	uint64_t line_since;             /* a command line began (0: none pending) */
	uint64_t data_since;             /* message content began (0: not in DATA/BDAT) */
	uint64_t data_bytes;             /* content octets since data_since */
	uint64_t tls_since;              /* the handshake began (0: none running) */
	struct conn *prev, *next;
};

/* server.c */
void conn_process(struct conn *c);
void conn_free(struct conn *c);
void conn_flush(struct conn *c);

/* serve/smtp.c / serve/pop3.c: each protocol's operations. */
extern const struct proto_ops smtp_proto_ops;
extern const struct proto_ops pop3_proto_ops;
/* POP-before-SMTP: seconds since addr last logged in to POP3, or -1. */
long long pop3_glue_login_age(struct server *srv, const char *addr);
void pop3_glue_forget_all(struct server *srv);

/* deadline.c */
bool deadline_start(struct conn *c);     /* at accept; false: out of memory */
void deadline_update(struct conn *c);    /* after input, TLS or login progress */
void deadline_fed(struct conn *c, bool in_data, size_t n);   /* n octets fed to the session */
void deadline_stop(struct conn *c);

#endif
