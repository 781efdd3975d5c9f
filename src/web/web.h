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

#include "conf/conf.h"
#include "net/http.h"

struct directory;
struct queue;

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
};

/* Per web thread (serve/web.c makes one per thread). */
struct web_worker {
	struct directory *dir;                    /* its own handle (see serve/service.h) */
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

/* Route the request (router.c): 400/404/405 in words, HEAD as GET, OPTIONS with Allow. */
void web_handle(const struct web_site *, struct web_worker *, const struct http_request *, struct http_response *);

/* site.c: the site from the configuration and its mail listeners.  serve then
 * tells it the port each listener really bound (port = 0 in a test) and has it read
 * the certificate (before dropping root: the key may be readable by root only);
 * site->queue is set once the queue is open.  NULL: out of memory. */
struct web_site *web_site_new(const struct conf *cf);
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
