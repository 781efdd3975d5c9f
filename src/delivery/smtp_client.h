/* smtp_client.h - the SMTP client side of delivery (RFC 5321 §4, RFC 2920
 * PIPELINING, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 1870 SIZE, RFC 6152 8BITMIME,
 * RFC 6531 SMTPUTF8, RFC 3030 CHUNKING, RFC 3461 DSN).  The reply parser and the
 * capability parser are pure; the dialogue runs over a net/client connection. */
#ifndef POSTERN_DELIVERY_SMTP_CLIENT_H
#define POSTERN_DELIVERY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct net_client;
struct queue_envelope;

#define SMTP_REPLY_TEXT_MAX 1024

struct smtp_reply {
	int code;                         /* 0 until the first line */
	char enh[16];                     /* "5.1.1" or "" */
	char text[SMTP_REPLY_TEXT_MAX];   /* all lines' text, joined by " " */
	bool done;
};

void smtp_reply_reset(struct smtp_reply *r);
/* Feed one reply line (no CRLF).  Returns 1 when the reply is complete, 0 when more
 * lines follow, -1 when the line is not a reply line (or the code changes). */
int smtp_reply_feed(struct smtp_reply *r, const char *line);
/* "550 5.1.1 text" for logs and bounces. */
void smtp_reply_format(const struct smtp_reply *r, char *out, size_t outsz);

struct smtp_caps {
	bool esmtp, pipelining, starttls, eightbitmime, smtputf8, chunking, dsn, auth_plain, auth_login;
	uint64_t size;                    /* 0: not announced */
};
/* One EHLO reply line's text ("SIZE 1000", "AUTH PLAIN LOGIN"). */
void smtp_caps_line(struct smtp_caps *caps, const char *text);

enum smtp_tls_policy {
	SMTP_TLS_OPPORTUNISTIC,   /* STARTTLS when offered; plaintext if not */
	SMTP_TLS_REQUIRE,         /* STARTTLS must work (a smarthost set to starttls) */
	SMTP_TLS_IMPLICIT,        /* already TLS (port 465 style) */
	SMTP_TLS_NEVER,
};

struct smtp_client_opts {
	const char *helo;                 /* our host name */
	const char *peer_name;            /* for SNI and certificate checks */
	enum smtp_tls_policy tls;
	bool tls_verify;                  /* refuse an unverified certificate */
	const char *auth_user;            /* NULL: no AUTH */
	const char *auth_pass;
};

/* What happened to each recipient handed in. */
enum rcpt_outcome { OUT_DELIVERED, OUT_DEFER, OUT_FAIL };

struct rcpt_result {
	enum rcpt_outcome outcome;
	char reply[600];                  /* the reply that decided it, or the reason */
	char enh[16];                     /* for the DSN Status field */
};

/* The message to send: the envelope, the recipients (indexes into env->rcpts) and
 * the message bytes (CRLF line ends) in fd at off, size octets. */
struct smtp_client_msg {
	const struct queue_envelope *env;
	const size_t *rcpts;
	size_t n;
	int fd;
	off_t off;
	uint64_t size;
};

struct smtp_client;

/* Greeting, EHLO, STARTTLS, AUTH.  NULL on failure, with the reason in err and
 * *permanent telling whether retrying elsewhere is pointless (e.g. AUTH refused is
 * not: it is a setting the admin must change, so it is temporary). */
struct smtp_client *smtp_client_open(struct net_client *conn, const struct smtp_client_opts *o,
	char *err, size_t errlen, bool *permanent);
/* One transaction.  Fills results[i] for each msg->rcpts[i].  Returns false when the
 * connection broke (results then say DEFER for those not decided). */
bool smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg, struct rcpt_result *results);
/* QUIT and close (frees the connection too). */
void smtp_client_close(struct smtp_client **c);
const struct smtp_caps *smtp_client_caps(const struct smtp_client *c);
struct net_client *smtp_client_conn(struct smtp_client *c);

#endif
