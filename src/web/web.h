/* web.h - the web room: pure handlers for the listeners of role http (health,
 * autoconfig, Autodiscover, Apple profiles, MTA-STS policy, metrics).  They run on
 * the web worker threads serve/web.c starts, each with a struct web_worker of its
 * own (its directory handle), read the struct web_site serve built once at start,
 * and fill a struct http_response (net/http.h).  They never touch a socket, never
 * block the event loop, and never log a request's Authorization header, query
 * password or body.  The route table is web/router.c's. */
#ifndef POSTERN_WEB_WEB_H
#define POSTERN_WEB_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "auth/login.h"
#include "conf/conf.h"
#include "net/http.h"

struct directory;
struct events_reader;
struct explain_kb;
struct queue;
struct throttle_block_info;   /* webadmin's */
struct web_sessions;
struct web_templates;

/* What the web room asks of the rest of the server, set by serve/web.c on the site
 * before the web threads start (contracts14.md §B).  Each hook may be NULL. */
struct web_hooks {
	void *ctx;
	/* Blocking (web thread), bounded by a deadline: the login service's check with
	 * the throttle shared with SMTP and POP3, proto "http".  primary_only: the
	 * account's own password only, never an app password.  why: words for a
	 * refusal (LOGIN_BLOCKED: which block and until when). */
	enum login_result (*login)(void *ctx, const char *client_addr, bool tls, const char *user, const char *pass,
		bool primary_only, char *canonical, size_t canonsz, char *why, size_t whysz);
	int (*queue_control)(void *ctx, const char *command, char *reply, size_t replysz);
	size_t (*throttle_blocks)(void *ctx, struct throttle_block_info *out, size_t max);
	bool (*throttle_unblock)(void *ctx, const char *key);
};

/* A mail listener as the web services advertise it (autoconfig, profiles, SRV). */
struct web_mail_listener {
	const char *name;
	enum listener_role role;      /* ROLE_MX, ROLE_SUBMISSION, ROLE_POP3 */
	unsigned port;
	enum tls_mode tls;
};

/* Built once at start by serve (web/site.c), read-only afterwards; each helper adds
 * the fields its handlers need. */
struct web_site {
	const struct conf *conf;
	const char *hostname;                     /* [server] hostname */
	struct web_mail_listener mail[CONF_MAX_LISTENERS];
	size_t n_mail;
	struct queue *queue;                      /* for /healthz (queue_writable is thread-safe) */
	/* The server certificate, its chain and key, for signing (Apple profiles); read
	 * before the server drops root.  NULL when TLS is off or they could not be read. */
	X509 *certificate;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
	char certificate_file[CONF_PATH_MAX + 32];
	/* The account service (web/app.h): templates and static files loaded at start,
	 * the sessions (mutable, under their own lock), the hooks. */
	struct web_templates *templates;
	struct web_sessions *sessions;
	struct web_hooks hooks;
	/* The explain knowledge base (data/explain.ini), loaded once at start
	 * (with the templates, web_site_load_app): the words and fixes of the account pages.  NULL: not found. */
	struct explain_kb *kb;
};

/* Per web thread (serve/web.c makes one per thread). */
struct web_worker {
	struct directory *dir;                    /* its own handle (see serve/service.h) */
	struct events_reader *events;             /* the event store, opened on first use (web/outgoing.c);
	                                           * serve/web.c closes it with the thread */
	unsigned index;
};

typedef void web_handler_fn(const struct web_site *, struct web_worker *, const struct http_request *, struct http_response *);

enum web_route_flags {
	WEB_PREFIX = 1u << 0,     /* path is a prefix ("/autodiscover/autodiscover.json/") */
	WEB_NOCASE = 1u << 1,     /* path compared case-insensitively (Autodiscover) */
};

struct web_route {
	const char *method;       /* NULL: GET and HEAD */
	const char *path;
	unsigned flags;           /* enum web_route_flags */
	const char *service;      /* the listener's `services` must list it: "health", "autoconfig", ... */
	web_handler_fn *handle;
};

/* Does any route serve this exact path (for the nav: link only pages that exist)? */
bool web_route_exists(const char *path);

/* Route the request (router.c): 400/404/405 in words, HEAD as GET, OPTIONS with Allow. */
void web_handle(const struct web_site *, struct web_worker *, const struct http_request *, struct http_response *);

/* site.c: the site from the configuration and its mail listeners.  serve then
 * tells it the port each listener really bound (port = 0 in a test) and has it read
 * the certificate (before dropping root: the key may be readable by root only);
 * site->queue is set once the queue is open.  NULL: out of memory. */
struct web_site *web_site_new(const struct conf *cf);
/* Load the templates and make the session table (the account service); false:
 * err says which file and line. */
bool web_site_load_app(struct web_site *s, char *err, size_t errsz);
void web_site_bound(struct web_site *s, const char *listener, unsigned port);
void web_site_load_certificate(struct web_site *s);
void web_site_free(struct web_site **s);
/* The configured listener of that name, or NULL. */
const struct conf_listener *web_site_listener(const struct web_site *s, const char *name);

/* The handlers (one file each). */
web_handler_fn web_health;    /* health.c: GET /healthz */
web_handler_fn web_metrics;   /* metrics.c: GET /metrics (Prometheus text format 0.0.4) */
web_handler_fn web_mta_sts;   /* mta_sts.c: GET /.well-known/mta-sts.txt on mta-sts.DOMAIN */

#endif
