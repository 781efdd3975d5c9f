/* conf.h - the configuration: one INI file, read with inih, checked against one table
 * of settings (key, type, default, bounds, help) that also drives check-config and
 * the configuration reference (docs/configuration.md). */
#ifndef POSTERN_CONF_CONF_H
#define POSTERN_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_MAX_LISTENERS 16
#define CONF_MAX_DOMAINS 64
#define CONF_NAME_MAX 256
#define CONF_PATH_MAX 1024
#define CONF_MAX_NETWORKS 64
#define CONF_MAX_CERTS 16
#define CONF_MAX_SETTINGS 192  /* rows of the settings table (a unit test checks) */

/* An address block from trusted_networks: family AF_INET or AF_INET6. */
struct conf_network {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

/* A certificate chosen by SNI: [certificate NAME] sections. */
struct conf_certificate {
	char name[64];
	char certificate[CONF_PATH_MAX];
	char key[CONF_PATH_MAX];
	char names[CONF_MAX_DOMAINS][CONF_NAME_MAX];   /* host names it serves */
	size_t n_names;
	unsigned line;
};

enum conf_spf_mode { CONF_SPF_OFF, CONF_SPF_CHECK };   /* [mailauth] spf, in choice order */
enum conf_dmarc_mode { CONF_DMARC_OFF, CONF_DMARC_CHECK };   /* [mailauth] dmarc, in choice order */
/* [mta-sts] mode, in choice order: off publishes and serves nothing; the others are
 * the policy's mode (RFC 8461 §5). */
enum conf_directory_backend { CONF_DIRECTORY_SQLITE, CONF_DIRECTORY_POSTGRESQL };
enum conf_mta_sts_mode { CONF_MTA_STS_OFF, CONF_MTA_STS_NONE, CONF_MTA_STS_TESTING, CONF_MTA_STS_ENFORCE };

/* A content filter speaking the milter protocol: [milter NAME] sections. */
#define CONF_MAX_MILTERS 16
enum conf_milter_action { CONF_MILTER_TEMPFAIL, CONF_MILTER_ACCEPT, CONF_MILTER_REJECT };   /* default_action */
struct conf_milter {
	char name[64];                  /* the section's NAME */
	char display_name[64];          /* in refusals and logs; "" = name */
	char socket[256];               /* unix:/path, inet:host:port, inet6:[addr]:port */
	unsigned connect_timeout_ms, command_timeout_ms, content_timeout_ms;
	enum conf_milter_action default_action;   /* when the filter is down, slow or answers garbage */
	unsigned line;
};

/* ROLE_LOCAL: the local submission socket ([server] local_socket), never a [listener]. */
enum listener_role { ROLE_MX, ROLE_SUBMISSION, ROLE_POP3, ROLE_HTTP, ROLE_IMAP, ROLE_LOCAL, ROLE_LMTP, ROLE_CONTROL };

/* What a listener of role http serves (its `services` key), one bit each. */
enum conf_service { CONF_SERVICE_AUTOCONFIG = 1u << 0, CONF_SERVICE_MTA_STS = 1u << 1, CONF_SERVICE_HEALTH = 1u << 2,
	CONF_SERVICE_METRICS = 1u << 3, CONF_SERVICE_ACCOUNT = 1u << 4 };
#define CONF_SERVICES_DEFAULT (CONF_SERVICE_AUTOCONFIG | CONF_SERVICE_MTA_STS | CONF_SERVICE_HEALTH | CONF_SERVICE_ACCOUNT)
enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };

struct conf_listener {
	char name[64];
	char address[64];
	unsigned port;
	bool port_set;
	enum listener_role role;
	enum tls_mode tls;
	bool allow_plaintext_auth;  /* AUTH before TLS (logged as a warning) */
	unsigned services;      /* role http: enum conf_service bits */
	bool services_set;
	unsigned line;          /* where the section starts, for messages */
	/* milters = NAME, NAME: the content filters of this listener, in order (each a
	 * [milter NAME] section, indices into struct conf's milters after the check). */
	char milter_names[CONF_MAX_MILTERS][64];
	size_t n_milters;
	unsigned milters_line;
	unsigned milters[CONF_MAX_MILTERS];
};

struct conf {
	char path[CONF_PATH_MAX];   /* "(embedded)" for the built-in default */
	/* [server] */
	char hostname[CONF_NAME_MAX];
	char data_dir[CONF_PATH_MAX];
	char user[64];
	bool run_as_root;                   /* serve as root without user = (refused otherwise) */
	char local_socket[CONF_PATH_MAX];   /* sendmail's unix socket; "": data_dir/run/submit.sock, "none": off */
	char maildrop_dir[CONF_PATH_MAX];   /* sendmail's files while the server is down; "": data_dir/maildrop */
	char local_domain[CONF_NAME_MAX];   /* local users' sender domain; "": hostname */
	char local_domains[CONF_MAX_DOMAINS][CONF_NAME_MAX];
	size_t n_local_domains;
	char postmaster[CONF_NAME_MAX];
	uint64_t pop_before_smtp;           /* seconds; 0 = off */
	struct conf_network trusted_networks[CONF_MAX_NETWORKS];
	size_t n_trusted_networks;
	bool allow_open_relay;              /* trusted_networks may cover huge public ranges */
	/* [tls] */
	char tls_certificate[CONF_PATH_MAX];   /* empty: a self-signed one is generated */
	char tls_key[CONF_PATH_MAX];
	char tls_ciphers[512];                 /* TLS 1.2 cipher list (OpenSSL syntax) */
	struct conf_certificate certificates[CONF_MAX_CERTS];
	size_t n_certificates;
	/* [auth] */
	uint64_t auth_ip_failures;
	uint64_t auth_ip_accounts;
	uint64_t auth_known_for;
	uint64_t auth_account_ip_failures;
	uint64_t auth_window;
	uint64_t auth_block;
	bool check_from_header;
	bool auth_legacy_app_passwords;     /* app passwords without a selector still log in */
	uint64_t auth_cache_ttl;
	/* [limits] */
	uint64_t message_size;
	uint64_t recipients;
	uint64_t line_length;
	uint64_t message_line_length;       /* longest line in a message, CRLF excluded */
	uint64_t idle_timeout;
	uint64_t connections;
	uint64_t connections_per_ip;
	uint64_t connections_reserved;      /* percent kept for addresses with no connection */
	uint64_t bad_commands;
	uint64_t line_timeout;              /* deadlines (net/deadline.c): one command line */
	uint64_t data_min_rate;             /* octets/s over DATA/BDAT, after data_rate_grace; 0: off */
	uint64_t data_rate_grace;
	uint64_t tls_handshake_timeout;
	uint64_t login_timeout;             /* submission and POP3: connect to login */
	uint64_t session_timeout;
	uint64_t refused_recipients;        /* unknown recipients per session before 421 */
	uint64_t refused_recipients_delay_after;
	uint64_t refused_recipient_delay_ms;
	/* [limits]: outbound abuse limits (policy/limits_stage.c); 0 = off */
	uint64_t limits_messages_per_hour;          /* per account (login) */
	uint64_t limits_recipients_per_day;
	uint64_t limits_domain_messages_per_hour;   /* per sending domain */
	uint64_t limits_domain_recipients_per_day;
	bool limits_burst_hold;                     /* hold a burst's mail in the queue */
	uint64_t limits_burst_factor;               /* a burst: this many times the usual hourly volume */
	uint64_t limits_burst_floor;                /* the usual hourly volume is never taken below this */
	/* [quota] */
	bool quota_full_permanent;          /* 552 5.2.2 instead of 452 4.2.2 */
	uint64_t quota_warning_percent;
	uint64_t shutdown_timeout;          /* [server]: bound of a SIGTERM stop */
	uint64_t log_level;                 /* [server]: enum log_level of util/log.h, in choice order */
	/* [queue] */
	uint64_t commit_threads;
	uint64_t commit_batch_wait;         /* milliseconds (group commit, queue.h) */
	uint64_t delivery_threads;
	uint64_t retry_min;
	uint64_t retry_max;
	uint64_t min_free;                  /* bytes kept free on the queue's filesystem */
	uint64_t cleanup_interval;   /* seconds between passes over the leftovers */
	/* [delivery] */
	char resolver[CONF_NAME_MAX];      /* "" = /etc/resolv.conf; "ADDR@PORT" for tests */
	uint64_t remote_port;               /* 25; tests move it */
	uint64_t max_lifetime;
	uint64_t delay_notice;              /* 0 = never */
	uint64_t domain_concurrency;
	uint64_t connect_timeout;
	uint64_t command_timeout;
	uint64_t messages_per_connection;
	uint64_t connection_cache_time;     /* seconds an idle connection is kept (0: off) */
	uint64_t connection_cache_per_destination;
	uint64_t connection_cache_max;
	bool dane;                          /* RFC 7672 outbound DANE */
	bool mta_sts;                       /* RFC 8461 outbound MTA-STS */
	char dnssec_trust_anchor[CONF_PATH_MAX];   /* DS/DNSKEY file; "none": no DNSSEC validation */
	char tls_ca_file[CONF_PATH_MAX];    /* CAs trusted besides the system's (MTA-STS) */
	/* [mailauth] */
	uint64_t mailauth_spf;              /* CONF_SPF_OFF / CONF_SPF_CHECK */
	bool mailauth_spf_fail_refuse;      /* 550 5.7.23 at MAIL for a -all fail */
	uint64_t mailauth_spf_timeout;      /* seconds for one SPF check */
	struct conf_network skip_networks[CONF_MAX_NETWORKS];   /* clients not checked (SPF/DKIM/DMARC) */
	size_t n_skip_networks;
	/* [relay] (smarthost) */
	char relay_host[CONF_NAME_MAX];     /* "" = deliver by MX */
	uint64_t relay_port;
	enum tls_mode relay_tls;
	bool relay_tls_verify;
	char relay_credentials[CONF_PATH_MAX];
	/* [mailauth] */
	char authserv_id[CONF_NAME_MAX];    /* Authentication-Results; "" = hostname */
	bool dkim_signing;                  /* sign outbound mail of domains with a DKIM key */
	uint64_t mailauth_dmarc;            /* CONF_DMARC_OFF / CONF_DMARC_CHECK */
	bool dmarc_reject;                  /* honour p=reject */
	char dmarc_quarantine_header[64];   /* "" = none */
	uint64_t dmarc_timeout;             /* seconds for the DNS of one message's DKIM and DMARC checks */
	/* [http] (listeners of role http) */
	uint64_t http_header_max;           /* request line and header fields, octets */
	uint64_t http_body_max;             /* request body, octets */
	uint64_t http_request_timeout;      /* seconds from a request's first byte to its end */
	uint64_t http_threads;              /* web worker threads */
	/* [imap] (listeners of role imap) */
	uint64_t imap_threads;              /* IMAP worker threads (folder work) */
	uint64_t imap_autologout;           /* seconds of inactivity (RFC 3501 §5.4: at least 30 minutes) */
	uint64_t imap_idle_poll;            /* seconds between an IDLE's checks of its folder */
	/* [web] (the account pages, service "account") */
	uint64_t web_session_idle;          /* seconds without a request before a session ends */
	uint64_t web_session_max;           /* seconds after sign-in a session ends whatever its use */
	/* [events] (events/: the per-account event store) */
	bool events_enabled;
	uint64_t events_retention;          /* seconds */
	uint64_t events_queue_max;          /* records waiting for the writer */
	uint64_t events_account_max;        /* records kept per account */
	/* [directory] (directory/: where users live) */
	uint64_t directory_backend;         /* enum conf_directory_backend */
	char directory_connection[1024];    /* libpq connection string (backend postgresql) */
	uint64_t directory_pool;            /* connections per directory handle */
	uint64_t directory_timeout;         /* seconds a lookup may take */
	/* [cluster] (several nodes on one PostgreSQL directory; "" node = a single server) */
	char cluster_node[33];              /* this node's name, [a-z0-9-]{1,32} */
	char cluster_secret_file[CONF_PATH_MAX];   /* the shared secret of the node token (auth/node_token.h) */
	uint64_t cluster_heartbeat;         /* seconds between refreshes of the registry row */
	uint64_t cluster_down_after;        /* seconds: an older row is a node that is down */
	char cluster_advertise[CONF_NAME_MAX];   /* host peers use for listeners bound to a wildcard */
	/* [mta-sts] (the policy this server publishes for its domains, RFC 8461) */
	uint64_t mta_sts_mode;              /* enum conf_mta_sts_mode */
	uint64_t mta_sts_max_age;           /* seconds */
	char mta_sts_mx[512];               /* the policy's mx names, comma/space separated; "" = hostname */
	/* [milter NAME] */
	struct conf_milter milters[CONF_MAX_MILTERS];
	size_t n_milters;
	/* [listener NAME] */
	struct conf_listener listeners[CONF_MAX_LISTENERS];
	size_t n_listeners;
	/* the line each row of the settings table was set on (0: default) */
	unsigned setting_line[CONF_MAX_SETTINGS];
};

/* The configuration `make run` and a bare `postern serve` use. */
extern const char conf_embedded_default[];

/* Fill with defaults (no listeners). */
void conf_defaults(struct conf *c);
/* Read and validate a file.  On error returns false and writes "file:line: message"
 * into err. */
bool conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);
/* Same, but every error is kept (check-config): the first one first, each on a line
 * of its own, as many whole lines as err holds. */
bool conf_load_file_every_error(struct conf *c, const char *path, char *err, size_t errlen);
/* Same, from a string (the embedded default, tests). */
bool conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen);
/* The MTA-STS policy of [mta-sts] (conf/mta_sts.c; RFC 8461 §3.2: version, mode, one
 * mx line per name, max_age; CR LF line ends) into policy, and its id (the first 80
 * bits of the SHA-256 of the text, in hex: a new policy, a new id, §3.1) into id (may
 * be NULL).  The web listener serves the text, `postern dns` prints the id.  false:
 * nothing is published: mode = off, no mx listener offers STARTTLS (a policy would
 * only stop mail), or the text does not fit. */
#define CONF_MTA_STS_POLICY_MAX 1024
#define CONF_MTA_STS_ID_MAX 33              /* §3.1: 1*32 letters and digits */
bool conf_mta_sts_policy(const struct conf *c, char *policy, size_t policysz, char *id, size_t idsz);
/* Is `domain` (lower case, no trailing dot) listed in local_domains? */
bool conf_is_local_domain(const struct conf *c, const char *domain);
const char *conf_role_name(enum listener_role r);
const char *conf_tls_name(enum tls_mode t);
/* "health" -> CONF_SERVICE_HEALTH; 0 for an unknown name. */
unsigned conf_service_bit(const char *name);
/* The names of the services in `bits`, ", "-separated, in table order. */
const char *conf_service_names(unsigned bits, char *out, size_t outsz);
/* Does the listener (role http) serve this service ("autoconfig", "health", ...)? */
bool conf_listener_serves(const struct conf_listener *l, const char *service);
/* Is the address (text form) inside one of the trusted networks? */
bool conf_is_trusted(const struct conf *c, const char *addr);
/* Is the address (text form) inside [mailauth] skip_networks (not checked)? */
bool conf_is_check_skipped(const struct conf *c, const char *addr);
/* Parse "192.0.2.0/24" or "2001:db8::/32" (a bare address is a /32 or /128). */
bool conf_parse_network(const char *s, struct conf_network *out);
bool conf_network_contains(const struct conf_network *n, int family, const unsigned char *addr);
/* Where a setting comes from, for messages: "FILE:LINE: [section] key" when the
 * file sets it, "FILE: [section] key (default)" otherwise. */
const char *conf_where(const struct conf *c, const char *section, const char *key, char *out, size_t outsz);
/* Public (not private, loopback or link-local) addresses trusted_networks covers, as
 * a power-of-two-exact count per family (IPv4 and IPv6 separately). */
double conf_trusted_public_span(const struct conf *c, int family);
/* The authserv-id of Authentication-Results: [mailauth] authserv_id, or the hostname. */
const char *conf_authserv_id(const struct conf *c);
/* sendmail's ways in (docs/operations.md "sendmail"): the local submission socket
 * (false: local_socket = none, or the path does not fit), the maildrop directory,
 * and the domain of local users' addresses ([server] local_domain, else hostname). */
bool conf_local_socket(const struct conf *c, char *out, size_t outsz);
void conf_maildrop_dir(const struct conf *c, char *out, size_t outsz);
const char *conf_local_domain(const struct conf *c);
/* The name a filter goes by in refusals and logs: display_name, else the section's. */
const char *conf_milter_display(const struct conf_milter *m);
/* describe.c: the configuration as INI on out: the settings that differ from the
 * defaults (all: every setting), then the listener, certificate and milter sections
 * (`postern config show`). */
void conf_write(const struct conf *c, bool all, FILE *out);
/* The manual page postern.conf(5) in roff, from the settings table. */
void conf_write_man(const char *version, FILE *out);
/* What differs between the running configuration and a reloaded one, as "[section]
 * key" names, ", "-separated: those a reload applies at once ([server] log_level, the
 * [tls] and [certificate NAME] settings) into live, every other into restart
 * (listeners, milters, the rest of the table). */
void conf_differences(const struct conf *old, const struct conf *new, char *live, size_t livesz, char *restart,
	size_t restartsz);
/* Any listener with tls != none? */
bool conf_wants_tls(const struct conf *c);

#endif
