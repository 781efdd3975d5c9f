/* service.h - what the composition root built, shared by the files of serve/ only
 * (server.c builds it; the protocol adapters smtp.c, pop3.c and web.c and the transport
 * side of logins, login.c, use it).  The transport's own records stay in net/. */
#ifndef POSTERN_SERVE_SERVICE_H
#define POSTERN_SERVE_SERVICE_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <time.h>

#include "auth/node_token.h"
#include "delivery/remote.h"
#include "util/id.h"

#define POP_LOGIN_BUCKETS 1024
#define CONF_LISTENERS_BOUND 16   /* = CONF_MAX_LISTENERS (conf/conf.h; server.c checks) */

struct conf;
struct conn;
struct cluster;
struct control;
struct decider;
struct delivery;
struct directory;
struct imap_service;
struct event;
struct events;
struct event_base;
struct http_exchange;
struct limits_service;
struct local_submit;
struct login_service;
struct net;
struct queue;
struct policy_facts;
struct proxy_service;
struct net_client;
struct startup_identity;
struct state_feed;
struct reloader;
struct tls;
struct web_service;
struct web_site;
struct workq;

/* POP-before-SMTP: when an address last logged in to POP3. */
struct pop_login {
	char addr[INET6_ADDRSTRLEN];
	time_t when;
	struct pop_login *next;
};

/* Directory handles: one SQLite connection per group of threads, on purpose (not one
 * shared handle).  A connection opened FULLMUTEX runs one statement at a time, and a
 * statement that meets another process's write lock (postern user/app-password ...)
 * waits up to 5 s (the busy timeout) holding the connection's mutex.  The login
 * threads write (an app password's last use), so they can wait like that; a thread
 * sharing their connection would wait behind them, whatever it only wanted to read.
 * So each group that must not wait behind another has its own connection (WAL mode:
 * readers on their own connections never wait for a writer): `dir` below is the login
 * threads' and the POP3 maildrop opens' (on the commit threads); the decision threads
 * have theirs (serve/decide.c: MAIL, RCPT and end-of-data lookups must not queue behind
 * logins), each delivery thread its own.  The event loop has none: it never reads the
 * directory.  Per-connection SQLite state (sqlite3_errmsg, sqlite3_changes) is one
 * more reason to share a connection little: the directory's own error words are per
 * thread. */
struct service {
	const struct conf *conf;
	struct net *net;                 /* the transport: loop, listeners, connections, TLS */
	struct queue *queue;
	struct directory *dir;           /* the login and maildrop threads' (see above) */
	struct delivery *delivery;
	struct events *events;           /* the event store (events/events.h); NULL: [events] enabled = no */
	struct workq *commitq;
	struct event *commit_ev;
	struct login_service *logins;    /* password checks, the throttle (auth/login.h) */
	struct event *auth_ev;           /* a login check is answered */
	struct decider *decider;         /* SMTP decisions: the policy pipeline (serve/decide.h) */
	struct limits_service *limits;   /* outbound limits: counters, their state file, notices (send_limits.h) */
	struct state_feed *state;        /* what other nodes count, and what we tell them (state_feed.h); NULL: one server */
	struct relay_credentials relay_creds;   /* read before dropping root */
	struct control *control;
	struct web_site *site;           /* what the web handlers know (web/web.h) */
	struct web_service *web;         /* the web threads (web.c) */
	struct imap_service *imap;       /* the IMAP worker threads (imap.c), when an imap listener exists */
	struct proxy_service *proxy;     /* logins proxied to the home node (proxy.c), on a node of a cluster */
	struct local_submit *local;      /* the local socket and the maildrop pickup (local.c) */
	struct event *sig_term, *sig_int, *shutdown_timer;
	struct tls *tls;                 /* the server's TLS contexts (net owns them; a reload replaces what is inside) */
	struct reloader *reload;         /* SIGHUP (reload.c) */
	bool shutting_down;
	char run_id[RUN_ID_MAX];              /* first part of every log reference (util/id.h) */
	unsigned bound_port[CONF_LISTENERS_BOUND];   /* each listener's port as bound (port 0: the kernel's) */
	struct pop_login *pop_logins[POP_LOGIN_BUCKETS];
	/* [cluster] (cluster.h): the shared secret of the node token (read as root, before
	 * the drop; node_secret_len 0: not a node), handed to the rooms that sign or check
	 * tokens; the heartbeat of this node's registry row. */
	unsigned char node_secret[NODE_SECRET_MAX];
	size_t node_secret_len;
	struct cluster *cluster;
};

/* smtp.c / pop3.c: each protocol's operations (net/server.h). */
extern const struct proto_ops smtp_proto_ops;
extern const struct proto_ops pop3_proto_ops;
/* POP-before-SMTP: seconds since addr last logged in to POP3, or -1. */
long long pop3_login_age(struct service *svc, const char *addr);
/* A POP3 login from addr at `when` (here, or on another node: serve/state_feed.c); any thread. */
void pop3_login_seen(struct service *svc, const char *addr, time_t when);
void pop3_forget_logins(struct service *svc);

/* imap.c: IMAP's operations and its worker threads ([imap] threads, a directory handle of their own). */
extern const struct proto_ops imap_proto_ops;
struct imap_service *imap_service_new(struct event_base *base, const struct conf *cf, char *err, size_t errsz);
void imap_service_free(struct imap_service **is);   /* running jobs finish and are answered */

/* proxy.c: POP3 and IMAP logins for a mailbox kept on another node of the cluster
 * (contracts §O).  The threads and their directory handle; the node token's secret
 * is read from svc when needed. */
struct proxy_service *proxy_service_new(struct event_base *base, const struct service *svc, char *err, size_t errsz);
void proxy_service_free(struct proxy_service **ps);   /* running dialogues finish and are answered */
enum proxy_proto { PROXY_POP3, PROXY_IMAP };
struct proxy_outcome {
	enum { PROXY_LOCAL,          /* the mailbox is here (or no home node): go on as usual */
	       PROXY_CONNECTED,      /* the home node took the session: text is its answer, peer the connection */
	       PROXY_REFUSED,        /* the home node refused XCLIENT: text is its answer */
	       PROXY_UNAVAILABLE,    /* the home node cannot be reached: text says why */
	} kind;
	char node[33];               /* the home node's name */
	char untagged[4096];         /* IMAP: untagged lines before the tagged answer (CRLF each) */
	char text[1100];             /* POP3: the status line; IMAP: the tagged answer without its tag */
	struct net_client *peer;     /* with PROXY_CONNECTED: the adapter bridges it (conn_bridge) */
};
/* false: the connection was closed (and may be freed): touch it no more. */
typedef bool proxy_done_fn(void *arg, struct proxy_outcome *o);
/* After the password check succeeded for login: on a proxy thread, find the home
 * node and, if it is another node, hand the session over to it; done(arg, o) runs on
 * the loop (the connection kept alive meanwhile; after done, it is fed again unless
 * it was bridged).  false: not a node of a cluster (or out of memory): go on locally. */
bool proxy_login(struct service *svc, struct conn *c, enum proxy_proto proto, const char *login, proxy_done_fn *done,
	void *arg);
/* The home node's XCLIENT hook: is token valid for proto ("pop3", "imap"), addr and
 * login?  Then addr is the connection's client address from now on. */
bool proxy_xclient_check(const struct service *svc, struct conn *c, const char *proto, const char *token,
	const char *addr, const char *login, char *why, size_t whysz);

/* web.c: the web threads, each with its own directory handle ([http] threads). */
struct web_service *web_service_new(struct event_base *base, const struct conf *cf, const struct web_site *site, char *err, size_t errsz);
/* Running jobs finish and are answered (before the transport is freed). */
void web_service_free(struct web_service **ws);
/* The web room's hooks (web/web.h struct web_hooks) on the site: sign-ins through
 * the login service, answered on the loop thread while the web thread waits. */
void web_service_hooks(struct service *svc, struct web_site *site);
/* At the stop, before the login service goes: sign-ins still waiting end (TEMPFAIL). */
void web_service_stop_logins(struct web_service *ws);
/* The HTTP transport's handler (http_handler_fn); ctx is the struct service. */
void web_http_request(void *ctx, struct http_exchange *x);

/* local.c: sendmail's ways in.  As root, before the drop: the maildrop directory
 * (mode 1733) and the local socket (mode 0666) with the SMTP adapter on it. */
bool local_start_privileged(struct service *srv, const struct startup_identity *id, char *err, size_t errlen);
void local_pickup_start(struct service *srv);   /* the maildrop's thread: at once, then every few seconds */
void local_stop(struct service *srv);           /* the thread joined, the socket removed */
void local_free(struct service *srv);           /* after the transport is freed */
/* The name of the local user uid (getpwuid_r: off the loop), or "uidN". */
void local_user_name(unsigned uid, char *out, size_t outsz);
/* May local user uid/name use the sender of f (MAIL)?  own: their own address,
 * name@[server] local_domain.  Root and the server's user may use any. */
bool local_sender_allowed(const struct service *srv, unsigned uid, const char *name, const struct policy_facts *f,
	char *own, size_t ownsz);

#endif
