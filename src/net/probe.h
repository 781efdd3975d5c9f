/* probe.h - a blocking SMTP (and POP3) client connection for diagnostics (`postern doctor`):
 * connect with a time limit (optionally from a given source address), read replies
 * with a time limit, start TLS and describe the server's certificate.  Every wait is
 * bounded by the options; nothing here decides what a result means. */
#ifndef POSTERN_NET_PROBE_H
#define POSTERN_NET_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define PROBE_REPLY_TEXT_MAX 4096

struct probe;

struct probe_opts {
	int connect_ms;          /* per address tried */
	int reply_ms;            /* per reply, and for the TLS handshake */
	const char *source;      /* local address to bind, or NULL */
	FILE *transcript;        /* dialogue written here ("C: " / "S: "), or NULL */
};

enum probe_status {
	PROBE_OK,
	PROBE_REFUSED,       /* connection refused: nothing listens */
	PROBE_TIMEOUT,       /* no answer within the limit */
	PROBE_UNREACHABLE,   /* no route, network down, address not usable */
	PROBE_CLOSED,        /* the server closed the connection */
	PROBE_GARBAGE,       /* bytes that are not an SMTP reply (e.g. a TLS record) */
	PROBE_ERROR,         /* anything else (message in the error text) */
};

struct probe_reply {
	int code;
	char enh[16];
	char text[PROBE_REPLY_TEXT_MAX];   /* all lines, "CODE-..." prefixes kept, '\n' between */
	int lines;
};

struct probe_cert {
	bool present;
	bool chain_ok;           /* verified against the trusted CAs */
	bool self_signed;
	bool expired, not_yet_valid;
	bool name_ok;            /* X509_check_host / X509_check_ip_asc */
	long verify_code;        /* X509_V_* */
	char verify_error[128];
	char subject[256], issuer[256], not_after[64];
	int days_left;
	char protocol[32], cipher[64];
};

/* Resolve host (getaddrinfo); writes the addresses, space-separated.  Returns the
 * number found, 0 on failure (the reason in out). */
int probe_resolve(const char *host, char *out, size_t outsz);

/* Connect to host:port trying each address.  NULL on failure with *st and err set. */
struct probe *probe_connect(const char *host, unsigned port, const struct probe_opts *o,
	enum probe_status *st, char *err, size_t errsz);
void probe_close(struct probe **p);

/* Local address of the connection ("127.0.0.2"). */
const char *probe_local_address(const struct probe *p);

/* Read one (multi-line) reply within the reply limit. */
enum probe_status probe_read_reply(struct probe *p, struct probe_reply *r, char *err, size_t errsz);

/* Read one line (CR LF removed, cut to linesz - 1 bytes) within the reply limit: a
 * POP3 status line or a line of a multi-line POP3 answer.  The transcript shows it. */
enum probe_status probe_read_line(struct probe *p, char *line, size_t linesz, char *err, size_t errsz);

/* Send one command line (CR LF added).  `shown` is what the transcript shows instead
 * (a masked password), or NULL to show the line itself. */
bool probe_send(struct probe *p, const char *line, const char *shown);

/* Write raw bytes (the message body); false on error. */
bool probe_write(struct probe *p, const void *data, size_t len);

/* TLS handshake (after STARTTLS's 220, or at once for implicit TLS).  The handshake
 * does not stop at an untrusted certificate: `cert` says what is wrong with it.
 * ca_file adds trusted CAs (NULL: the system's only).  *wrong_version is set when
 * the peer answered the ClientHello with plaintext. */
bool probe_start_tls(struct probe *p, const char *name, const char *ca_file, struct probe_cert *cert,
	bool *wrong_version, char *err, size_t errsz);

#endif
